//! End to end: writes through the real relation-service, the real relay
//! reading the binlog, the broker, and the syncer; Redis and the user
//! counter columns must converge to MySQL (`verify` reports no difference).

use std::process::{Child, Command};
use std::time::Duration;

use proto::relation::v1::FollowRequest;
use redis::AsyncCommands;

use crate::harness::{Harness, converged, start_pipeline, start_relation_service, start_relay};

#[tokio::test]
async fn follows_and_unfollows_through_the_relation_service_converge_in_redis_and_mysql() {
    let h = Harness::new().await;
    h.add_users(4).await;
    let (_relay, mut client) = start_pipeline(&h).await;

    for (from, to) in [(1, 2), (3, 2), (1, 3), (4, 2)] {
        client
            .follow(FollowRequest {
                from_id: from,
                to_id: to,
            })
            .await
            .unwrap();
    }
    client
        .unfollow(FollowRequest {
            from_id: 3,
            to_id: 2,
        })
        .await
        .unwrap();
    converged(&h).await;

    let keys = h.settings.redis.keys();
    let mut r = h.redis.conn.clone();
    let mut followers: Vec<u64> = r.zrange(keys.followers(2), 0, -1).await.unwrap();
    followers.sort();
    assert_eq!(followers, [1, 4]);
    let slot = keys.counter(2, 2);
    assert_eq!(
        r.hget::<_, _, Option<i64>>(&slot.key, slot.field)
            .await
            .unwrap(),
        Some(2)
    );
    let cols: (u64, u64) =
        sqlx::query_as("SELECT follow_count, follower_count FROM user WHERE id = 2")
            .fetch_one(&h.db.pool)
            .await
            .unwrap();
    assert_eq!(cols, (0, 2));
    let bit_count: i64 = r.bitcount(keys.follow_bloom()).await.unwrap();
    assert!(bit_count > 0, "the bloom filter is fed");
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_syncer_process(h: &Harness) -> Killed {
    let s = &h.settings;
    let child = Command::new(env!("CARGO_BIN_EXE_cache-syncer"))
        .env("SYNCER_MYSQL__URL", &h.db.url)
        .env("SYNCER_REDIS__URL", &h.redis.url)
        .env("SYNCER_REDIS__NAMESPACE", &s.redis.namespace)
        .env(
            "SYNCER_REDIS__COUNTER_BUCKETS",
            s.redis.counter_buckets.to_string(),
        )
        .env(
            "SYNCER_REDIS__BLOOM__BITS_LOG2",
            s.redis.bloom.bits_log2.to_string(),
        )
        .env("SYNCER_KAFKA__BROKERS", &s.kafka.brokers)
        .env("SYNCER_KAFKA__TOPIC_PREFIX", &s.kafka.topic_prefix)
        .env("SYNCER_GROUP_ID", &s.group_id)
        .env("SYNCER_SOURCE_DB", &s.source_db)
        .env("SYNCER_LIST_CAP", s.list_cap.to_string())
        .env("SYNCER_ADMIN__ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("spawn cache-syncer");
    Killed(child)
}

#[tokio::test]
async fn kill_9_of_the_syncer_during_600_follows_then_restart_converges() {
    kill_9_during_follows(600).await;
}

/// The size (~1 minute on the local stack).
#[tokio::test]
async fn kill_9_of_the_syncer_during_5000_follows_then_restart_converges() {
    kill_9_during_follows(5_000).await;
}

async fn kill_9_during_follows(n: u64) {
    let h = Harness::new().await;
    let users = 120u64;
    h.add_users(users).await;
    let _relay = start_relay(&h).await;
    let client = start_relation_service(&h).await;
    let mut syncer = spawn_syncer_process(&h);

    // n distinct pairs, written by 16 concurrent clients.
    let pairs: Vec<(u64, u64)> = (0..n)
        .map(|i| (1 + i % users, 1 + (i / users + 1 + i % users) % users))
        .collect();
    let pairs: Vec<(u64, u64)> = pairs.into_iter().filter(|(a, b)| a != b).collect();
    let total = pairs.len();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for chunk in pairs.chunks(total.div_ceil(16)) {
        let chunk = chunk.to_vec();
        let mut c = client.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            for (from, to) in chunk {
                c.follow(FollowRequest {
                    from_id: from,
                    to_id: to,
                })
                .await
                .expect("follow");
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    // Kill -9 the syncer once a third of the follows are committed.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.load(std::sync::atomic::Ordering::Relaxed) < total / 3 {
        assert!(std::time::Instant::now() < deadline, "follows too slow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    syncer.0.kill().expect("kill -9");
    syncer.0.wait().unwrap();
    syncer = spawn_syncer_process(&h);
    for t in tasks {
        t.await.unwrap();
    }
    let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM follow WHERE deleted_at IS NULL")
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
    assert_eq!(active as usize, total);
    converged(&h).await;
    drop(syncer);
}
