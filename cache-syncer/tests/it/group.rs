//! Several syncers in one consumer group (#18): three member processes over
//! six partitions per topic while follows stream in and one member is
//! killed (-9) and restarted every few seconds. Redis and the user columns
//! must converge (`verify`: 0 differences), a read carrying its write's
//! token must never be stale, and the published watermark must never move
//! backwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use proto::relation::v1::{GetRelationCountRequest, IsFollowRequest};
use redis::AsyncCommands;
use tonic::Request;

use crate::harness::{
    Harness, converged, set_follow, spawn_syncer_process, start_relation_service, start_relay,
};

const MEMBERS: usize = 3;
const PARTITIONS: i32 = 6;
/// Users the background traffic follows and unfollows among.
const USERS: u64 = 150;

fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut()
        .insert("consistency-token", token.parse().expect("ascii token"));
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_with_one_killed_every_few_seconds_converge_and_never_serve_a_stale_token_read()
 {
    // Long enough for several kills, each within a rebalance of the last.
    let run_for = Duration::from_secs(
        std::env::var("GROUP_TEST_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let kill_every = Duration::from_secs(6);

    let h = Harness::with_partitions(PARTITIONS).await;
    // Two more users for the read-your-writes pair, apart from the traffic.
    h.add_users(USERS + 2).await;
    let _relay = start_relay(&h).await;
    let client = start_relation_service(&h).await;
    let mut members: Vec<_> = (0..MEMBERS).map(|_| spawn_syncer_process(&h)).collect();

    // The watermark, sampled: it must never decrease.
    let stop = Arc::new(AtomicBool::new(false));
    let watermark_key = h.settings.redis.keys().watermark();
    let monitor = {
        let (mut r, stop) = (h.redis.conn.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut last, mut samples, mut moves) = (0u64, 0u64, 0u64);
            while !stop.load(Relaxed) {
                let seq: Option<u64> = r.hget(&watermark_key, "seq").await.unwrap();
                if let Some(seq) = seq {
                    assert!(seq >= last, "the watermark went back from {last} to {seq}");
                    moves += u64::from(seq > last);
                    last = seq;
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (samples, moves)
        })
    };

    // Background follows and unfollows from 4 clients, each toggling pairs
    // of its own (`from` ≡ client mod 4), so every call changes something.
    let calls = Arc::new(AtomicU64::new(0));
    let traffic: Vec<_> = (0..4u64)
        .map(|k| {
            let mut c = client.clone();
            let (stop, calls) = (stop.clone(), calls.clone());
            tokio::spawn(async move {
                let mut state = k * 7919 + 17;
                let mut following = std::collections::HashSet::new();
                while !stop.load(Relaxed) {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let from = k + 1 + 4 * ((state >> 33) % (USERS / 4));
                    let to = 1 + (state >> 13) % USERS;
                    if from == to {
                        continue;
                    }
                    let follow = !following.contains(&(from, to));
                    let res = set_follow(&mut c, from, to, follow).await;
                    if res.is_ok_and(|r| r.changed) {
                        if !following.remove(&(from, to)) {
                            following.insert((from, to));
                        }
                        calls.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();

    // Read-your-writes: one pair toggled, each write read back with its token.
    let ryw = {
        let (mut c, stop) = (client.clone(), stop.clone());
        let (a, b) = (USERS + 1, USERS + 2);
        tokio::spawn(async move {
            let (mut reads, mut stale) = (0u64, Vec::new());
            let mut following = false;
            while !stop.load(Relaxed) {
                following = !following;
                let w = set_follow(&mut c, a, b, following).await.expect("write");
                let count = c
                    .get_relation_count(with_token(
                        GetRelationCountRequest { user_id: b },
                        &w.consistency_token,
                    ))
                    .await
                    .expect("count read")
                    .into_inner();
                let is = c
                    .is_follow(with_token(
                        IsFollowRequest {
                            from_id: a,
                            to_id: b,
                        },
                        &w.consistency_token,
                    ))
                    .await
                    .expect("is_follow read")
                    .into_inner();
                reads += 2;
                if count.follower_count != u64::from(following) {
                    stale.push(format!(
                        "follower_count {} after following={following}",
                        count.follower_count
                    ));
                }
                if is.following != following {
                    stale.push(format!(
                        "is_follow {} after following={following}",
                        is.following
                    ));
                }
            }
            (reads, stale)
        })
    };

    // One member killed (-9) and restarted every `kill_every`, in turn.
    let started = Instant::now();
    let mut kills = 0usize;
    while started.elapsed() < run_for {
        tokio::time::sleep(kill_every.min(run_for.saturating_sub(started.elapsed()))).await;
        if started.elapsed() >= run_for {
            break;
        }
        let at = kills % MEMBERS;
        members[at].0.kill().expect("kill -9");
        members[at].0.wait().expect("reaped");
        members[at] = spawn_syncer_process(&h);
        kills += 1;
    }
    stop.store(true, Relaxed);
    for t in traffic {
        t.await.expect("traffic task");
    }
    let (reads, stale) = ryw.await.expect("read-your-writes task");
    let (samples, moves) = monitor.await.expect("the watermark never went back");

    converged(&h).await;
    let total = calls.load(Relaxed);
    println!(
        "group of {MEMBERS} over {PARTITIONS} partitions, {run_for:?}: {total} writes, \
         {kills} kills; {reads} token reads, {} stale; watermark sampled {samples} times, \
         moved {moves} times",
        stale.len()
    );
    assert!(kills >= 2, "only {kills} kills in {run_for:?}");
    assert!(total > 0 && reads > 0, "no traffic");
    assert!(moves > 0, "the watermark never moved");
    assert!(
        stale.is_empty(),
        "{} stale token reads, e.g. {}",
        stale.len(),
        stale[0]
    );
    drop(members);
    h.kafka.delete_topics().await;
}
