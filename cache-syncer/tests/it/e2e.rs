//! End to end: writes through the real relation-service, the real relay
//! reading the binlog, the broker, and the syncer; Redis and the user
//! counter columns must converge to MySQL (`verify` reports no difference).

use std::sync::Arc;
use std::time::Duration;

use proto::relation::v1::FollowRequest;
use redis::AsyncCommands;

use crate::harness::{
    CONVERGE, Harness, converged, relay_state_dir, set_follow, spawn_syncer_process,
    start_pipeline, start_relation_service, start_relay, start_relay_with,
};

#[tokio::test]
async fn follows_and_unfollows_through_the_relation_service_converge_in_redis_and_mysql() {
    let h = Harness::new().await;
    h.add_users(4).await;
    let (_relay, mut client) = start_pipeline(&h).await;

    for (from, to) in [(1, 2), (3, 2), (1, 3), (4, 2)] {
        client
            .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
                from,
                FollowRequest {
                    from_id: from,
                    to_id: to,
                },
            ))
            .await
            .unwrap();
    }
    client
        .unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(
            3,
            FollowRequest {
                from_id: 3,
                to_id: 2,
            },
        ))
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
    let mut bit_count = 0i64;
    for key in keys.follow_bloom_keys() {
        bit_count += r.bitcount::<_, i64>(key).await.unwrap();
    }
    assert!(bit_count > 0, "the bloom filter is fed");
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
                c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(
                    from,
                    FollowRequest {
                        from_id: from,
                        to_id: to,
                    },
                ))
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

/// Follows and unfollows on users `1..=users` from 4 clients until `stop`;
/// counts the calls made.
fn follow_traffic(
    client: &proto::relation::v1::relation_service_client::RelationServiceClient<
        service_kit::mesh_auth::MeshChannel,
    >,
    users: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering::Relaxed;
    (0..4u64)
        .map(|k| {
            let mut c = client.clone();
            let (stop, done) = (stop.clone(), done.clone());
            tokio::spawn(async move {
                let mut i = k;
                while !stop.load(Relaxed) {
                    let from = 1 + i % users;
                    let to = 1 + (i * 7 + 3) % users;
                    i += 4;
                    if from == to {
                        continue;
                    }
                    let req = FollowRequest {
                        from_id: from,
                        to_id: to,
                    };
                    // Every third call undoes an earlier follow: counts go
                    // down as well as up. Refusals (already following) are fine.
                    let _ = if i % 3 == 0 {
                        c.unfollow(service_kit::mesh_auth::MeshAuth::dev().acting(req.from_id, req))
                            .await
                    } else {
                        c.follow(service_kit::mesh_auth::MeshAuth::dev().acting(req.from_id, req))
                            .await
                    };
                    done.fetch_add(1, Relaxed);
                }
            })
        })
        .collect()
}

async fn wait_for_calls(done: &std::sync::atomic::AtomicU64, n: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.load(std::sync::atomic::Ordering::Relaxed) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "follow traffic too slow"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop_relay(
    relay: (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<binlog_relay::Result<()>>,
    ),
) {
    let _ = relay.0.send(());
    tokio::time::timeout(Duration::from_secs(60), relay.1)
        .await
        .expect("relay stops in time")
        .expect("relay task")
        .expect("relay stops cleanly");
}

#[tokio::test]
async fn a_relay_that_lost_its_state_goes_on_from_latest_and_a_replay_converges() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let h = Harness::new().await;
    let users = 40u64;
    h.add_users(users + 2).await;
    let relay = start_relay_with(&h, binlog_relay::RunOptions::default()).await;
    let client = start_relation_service(&h).await;
    let syncer = cache_syncer::startup::Application::build(h.settings.clone())
        .await
        .expect("syncer builds");
    tokio::spawn(syncer.run_until_stopped(std::future::pending()));

    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let traffic = follow_traffic(&client, users, stop.clone(), done.clone());
    wait_for_calls(&done, 150).await;
    let logs = binlog_relay::source::binary_logs(&h.db.pool)
        .await
        .expect("binary logs");
    let (file, size) = logs.last().expect("a binlog file").clone();
    let before_loss = binlog_relay::position::FilePos::new(file, size);
    wait_for_calls(&done, done.load(Relaxed) + 50).await;

    // The relay stops and its state folder is lost; follows go on.
    stop_relay(relay).await;
    // (A relay that has not saved a file checkpoint yet has no folder.)
    match std::fs::remove_dir_all(relay_state_dir(&h)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("delete the relay's state: {e}"),
    }
    wait_for_calls(&done, done.load(Relaxed) + 100).await;

    // A new relay without state starts at the end of the binlog (the
    // changes made while none ran are not read: that is what `latest` means).
    let from_latest = binlog_relay::RunOptions {
        from: Some(binlog_relay::position::StartFrom::Latest),
        ..Default::default()
    };
    let relay = start_relay_with(&h, from_latest).await;
    wait_for_calls(&done, done.load(Relaxed) + 100).await;
    // A change made now reaches Redis: the new relay's numbers carry on
    // from the binlog, not from zero (which the syncer would skip as old).
    let (probe_from, probe_to) = (users + 1, users + 2);
    client
        .clone()
        .follow(service_kit::mesh_auth::MeshAuth::dev().acting(
            probe_from,
            FollowRequest {
                from_id: probe_from,
                to_id: probe_to,
            },
        ))
        .await
        .expect("follow");
    let keys = h.settings.redis.keys();
    let mut r = h.redis.conn.clone();
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let followers: Vec<u64> = r.zrange(keys.followers(probe_to), 0, -1).await.unwrap();
        if followers == [probe_from] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a follow made after the relay restarted without its state never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Once more without state, replaying from before the loss: the changes
    // the gap missed are applied, and everything ends where MySQL is.
    stop_relay(relay).await;
    // (A relay that has not saved a file checkpoint yet has no folder.)
    match std::fs::remove_dir_all(relay_state_dir(&h)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("delete the relay's state: {e}"),
    }
    let replay = binlog_relay::RunOptions {
        from: Some(binlog_relay::position::StartFrom::FilePos(before_loss)),
        ..Default::default()
    };
    let relay = start_relay_with(&h, replay).await;
    wait_for_calls(&done, done.load(Relaxed) + 100).await;
    stop.store(true, Relaxed);
    for t in traffic {
        t.await.unwrap();
    }
    converged(&h).await;
    // The API's view: the follower counts the relation-service reports match
    // MySQL's rows for every user.
    for uid in 1..=users + 2 {
        let rows: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM follow WHERE to_id = ? AND deleted_at IS NULL",
        )
        .bind(uid)
        .fetch_one(&h.db.pool)
        .await
        .unwrap();
        let slot = keys.counter(2, uid);
        let cached: Option<i64> = r.hget(&slot.key, slot.field).await.unwrap();
        assert_eq!(cached.unwrap_or(0), rows, "user {uid}'s follower count");
    }
    stop_relay(relay).await;
}

/// The followers leaderboard (`<ns>:leaderboard:followers`) as readers
/// order it: most followers first, equal counts by lower id.
async fn leaderboard(h: &Harness) -> Vec<(u64, i64)> {
    let mut r = h.redis.conn.clone();
    let mut all: Vec<(u64, i64)> = r
        .zrange_withscores(h.settings.redis.keys().leaderboard_followers(), 0, -1)
        .await
        .unwrap();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    all
}

/// MySQL's answer to the same question.
async fn most_followed(h: &Harness) -> Vec<(u64, i64)> {
    sqlx::query_as(
        "SELECT owner_id, value FROM counter WHERE kind = 2 AND value > 0 \
         ORDER BY value DESC, owner_id",
    )
    .fetch_all(&h.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_leaderboard_is_the_counter_tables_order_after_random_follows_after_rebuild_and_in_verify()
 {
    use rand::{Rng, SeedableRng};
    // The harness's list cap is 3: the unfollows also exercise the refill
    // of full lists (`verify` checks the lists too).
    let h = Harness::new().await;
    let users = 30u64;
    h.add_users(users).await;
    let (_relay, mut client) = start_pipeline(&h).await;
    // Random follows and unfollows (some repeated: refusals are fine).
    let mut rng = rand::rngs::StdRng::seed_from_u64(18);
    for _ in 0..300 {
        let (from, to) = (rng.random_range(1..=users), rng.random_range(1..=users / 3));
        if from != to {
            let _ = set_follow(&mut client, from, to, !rng.random_bool(0.25)).await;
        }
    }
    // `verify` (leaderboard included) reports nothing once converged.
    converged(&h).await;
    let want = most_followed(&h).await;
    assert!(want.len() > 3, "too few users with followers: {want:?}");
    assert_eq!(leaderboard(&h).await, want, "after the follows");

    // Wiped, then rebuilt from MySQL.
    let mut r = h.redis.conn.clone();
    let _: () = r
        .del(h.settings.redis.keys().leaderboard_followers())
        .await
        .unwrap();
    let applier = h.applier().await;
    cache_syncer::rebuild::rebuild(&applier).await.unwrap();
    assert_eq!(leaderboard(&h).await, want, "after rebuild");

    // A wrong score and a member MySQL does not have: verify names both,
    // repair rewrites them.
    let board = h.settings.redis.keys().leaderboard_followers();
    let _: () = r.zadd(&board, want[0].0, want[0].1 + 5).await.unwrap();
    let _: () = r.zadd(&board, 9_999u64, 3).await.unwrap();
    let found = cache_syncer::verify::verify(&applier, false).await.unwrap();
    let text: Vec<String> = found.diffs.iter().map(ToString::to_string).collect();
    assert_eq!(
        text.iter().filter(|d| d.starts_with("leaderboard")).count(),
        2,
        "{text:#?}"
    );
    let repaired = cache_syncer::verify::verify(&applier, true).await.unwrap();
    assert_eq!(repaired.repaired, 2, "{:#?}", repaired.diffs);
    assert_eq!(leaderboard(&h).await, want, "after repair");
}

/// Walks every page of `user`'s list in `dir` at page size `limit` through
/// the relation-service (with `token`, when given), comparing each page with
/// MySQL's page for the same cursor. Returns how many pages came from the
/// ZSETs (`cache` or `synced-cache`) and how many from MySQL (`primary`).
async fn compare_pages(
    h: &Harness,
    client: &mut proto::relation::v1::relation_service_client::RelationServiceClient<
        service_kit::mesh_auth::MeshChannel,
    >,
    dir: relation_service::list::Direction,
    user: u64,
    limit: u32,
    token: Option<&str>,
) -> (u32, u32) {
    use relation_service::list::Direction;
    let (mut redis, mut mysql) = (0, 0);
    let mut cursor = String::new();
    loop {
        let mut req = tonic::Request::new(proto::relation::v1::ListRequest {
            user_id: user,
            cursor: cursor.clone(),
            limit,
        });
        if let Some(t) = token {
            req.metadata_mut()
                .insert("consistency-token", t.parse().expect("ascii token"));
        }
        let resp = match dir {
            Direction::Following => client.following_list(req).await,
            Direction::Followers => client.follower_list(req).await,
        }
        .expect("list page");
        let source = testkit::read_source(&resp).expect("every list answer names its source");
        let got = resp.into_inner();
        let want = relation_service::list::page(&h.db.pool, dir, user, &cursor, limit)
            .await
            .expect("mysql page");
        let got_items: Vec<(u64, i64)> = got
            .items
            .iter()
            .map(|e| (e.user_id, e.followed_at_us))
            .collect();
        let want_items: Vec<(u64, i64)> = want
            .items
            .iter()
            .map(|e| (e.user_id, e.followed_at_us))
            .collect();
        let where_ = format!("{dir:?} of {user}, limit {limit}, cursor {cursor:?}, from {source}");
        assert_eq!(got_items, want_items, "{where_}");
        assert_eq!(
            got.next_cursor,
            want.next.map(|c| c.encode()).unwrap_or_default(),
            "{where_}"
        );
        match source.as_str() {
            "primary" => mysql += 1,
            "cache" | "synced-cache" => redis += 1,
            other => panic!("unknown read-source {other:?}"),
        }
        if got.next_cursor.is_empty() {
            return (redis, mysql);
        }
        cursor = got.next_cursor;
    }
}

#[tokio::test]
async fn list_pages_from_redis_equal_mysql_pages_for_the_same_cursors_while_follows_arrive() {
    use rand::{Rng, SeedableRng};
    use relation_service::list::Direction;
    // The harness's list cap is 3: the followers of users 1..=3 outgrow it,
    // so their deeper pages must come from MySQL and their first from Redis.
    let h = Harness::new().await;
    let users = 12u64;
    h.add_users(users).await;
    let (_relay, mut client) = start_pipeline(&h).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let (mut redis, mut mysql) = (0u32, 0u32);
    for round in 0..5 {
        // A burst of follows and unfollows, then every page of every list
        // compared, with the burst's last token and without one.
        let mut token = None;
        for _ in 0..25 {
            let from = rng.random_range(1..=users);
            let to = if rng.random_bool(0.6) {
                rng.random_range(1..=3)
            } else {
                rng.random_range(1..=users)
            };
            if from == to {
                continue;
            }
            let r = set_follow(&mut client, from, to, !rng.random_bool(0.2))
                .await
                .expect("write");
            if r.changed {
                token = Some(r.consistency_token);
            }
        }
        let Some(token) = token else { continue };
        h.redis.await_applied(&token, CONVERGE).await;
        for user in 1..=users {
            for dir in [Direction::Following, Direction::Followers] {
                for limit in [1, 2, 5] {
                    for t in [Some(token.as_str()), None] {
                        let (r, m) = compare_pages(&h, &mut client, dir, user, limit, t).await;
                        redis += r;
                        mysql += m;
                    }
                }
            }
        }
        println!("round {round}: {redis} pages from the ZSETs, {mysql} from MySQL so far");
    }
    assert!(redis > 100, "only {redis} pages came from the ZSETs");
    assert!(mysql > 10, "only {mysql} pages came from MySQL");
}
