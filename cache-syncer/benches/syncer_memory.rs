//! Memory benchmark (not a test): Redis bytes per counter for the hash-bucket
//! layout next to one string key per counter, in the same run.
//!
//! 1,000,000 users with Pareto-distributed follower counts (α = 1.2, so a
//! few users have hundreds of thousands of followers and most have a
//! handful) and following counts; both kinds are loaded through the
//! syncer's own apply path (`Applier::apply` with `SetCounter` effects) into
//! a private redis-server started for the run, so nothing else is counted.
//!
//! Run: `make bench-syncer` (or `cargo bench -p cache-syncer --bench syncer_memory`).
//! Env: `BENCH_USERS` (1000000), `BENCH_BUCKETS` (4096).
//!
//! With `BENCH_REDIS_CLUSTER=1` the same counters are also loaded through
//! the same apply path into the stack's Redis Cluster (`SLUICE_REDIS_CLUSTER=1
//! make up`; seeds in `SLUICE_REDIS_CLUSTER_URLS`), under the namespace
//! `benchcl`, and the growth of `used_memory` summed over its masters is
//! reported per counter (the cluster should be otherwise idle); the keys
//! are deleted afterwards.

mod benchkit;

use std::time::Instant;

use benchkit::{config, env_or, pareto, start_redis, used_memory};
use cache_syncer::apply::{Applier, Record};
use cache_syncer::plan::Effect;
use common::keys::Keys;
use rand::SeedableRng;

#[tokio::main]
async fn main() {
    let users: u64 = env_or("BENCH_USERS", 1_000_000);
    let buckets: u64 = env_or("BENCH_BUCKETS", 4096);
    let (_redis, mut conn, version) = start_redis().await;
    let max_entries = config(&mut conn, "hash-max-listpack-entries").await;

    // The applier also writes the user columns: give it a throwaway database
    // with no user rows (the UPDATEs match nothing), dropped at the end.
    let db = testkit::TestDb::new().await;
    let pool = db.pool.clone();
    let applier = Applier {
        redis: common::redis_conn::Redis::Single(conn.clone()),
        fence: common::redis_conn::Redis::Single(conn.clone()),
        pool,
        keys: Keys::new("bench", buckets),
        list_cap: 1000,
    };

    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let counters: Vec<(u64, u8, i64)> = (0..users)
        .flat_map(|i| {
            let followers = pareto(&mut rng, 1.2, 5_000_000.0);
            let following = pareto(&mut rng, 2.0, 5_000.0);
            [(i + 1, 2u8, followers), (i + 1, 1u8, following)]
        })
        .collect();
    let n = counters.len() as f64;

    let base = used_memory(&mut conn).await;
    let apply_secs = load(&applier, &counters).await;
    // The apply path also fills the followers leaderboard (#21), one ZSET
    // member per user with followers: reported apart, not per counter.
    let board_mem = leaderboard_bytes(&mut conn, "bench").await;
    let buckets_mem = used_memory(&mut conn).await - base - board_mem;

    // Every bucket must still be a listpack.
    let mut non_listpack = 0;
    for kind in [1u8, 2] {
        for b in 0..buckets {
            let key = format!("bench:cnt:{kind}:{b}");
            let enc: Option<String> = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            if enc.is_some_and(|e| e != "listpack") {
                non_listpack += 1;
            }
        }
    }

    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let base = used_memory(&mut conn).await;
    for chunk in counters.chunks(5_000) {
        let mut pipe = redis::pipe();
        for &(owner, kind, value) in chunk {
            pipe.set(format!("bench:cnt:{kind}:{owner}"), value)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await.unwrap();
    }
    let strings_mem = used_memory(&mut conn).await - base;
    let max_val = counters.iter().map(|c| c.2).max().unwrap_or(0);

    println!(
        "# syncer_memory: redis {version}, {users} users x 2 kinds = {n} counters, B = {buckets} buckets per kind"
    );
    println!("#   hash-max-listpack-entries {max_entries}; largest follower count {max_val}");
    println!("| layout | used_memory | bytes per counter |");
    println!("|---|---|---|");
    println!(
        "| hash buckets (sluice) | {buckets_mem} | {:.2} |",
        buckets_mem as f64 / n
    );
    println!(
        "| one string per counter | {strings_mem} | {:.2} |",
        strings_mem as f64 / n
    );
    println!(
        "buckets not listpack-encoded: {non_listpack}; the leaderboard ZSET beside them (not counted above): {board_mem} bytes"
    );
    println!(
        "apply path: {n} counters in {apply_secs:.2}s = {:.0} counters/s",
        n / apply_secs
    );
    if std::env::var("BENCH_REDIS_CLUSTER").is_ok_and(|v| v == "1") {
        cluster_memory(&counters, buckets, db.pool.clone()).await;
    }
    db.drop_db().await;
}

/// The counters through the apply path into the stack's Redis Cluster.
async fn cluster_memory(counters: &[(u64, u8, i64)], buckets: u64, pool: sqlx::MySqlPool) {
    let urls = std::env::var("SLUICE_REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
        "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
    });
    let cl = common::redis_conn::connect(
        &urls,
        true,
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )
    .await
    .expect("the stack's redis cluster (SLUICE_REDIS_CLUSTER=1 make up)");
    let mut nodes = Vec::new();
    for (host, port) in cl.masters().await.expect("cluster masters") {
        let client = redis::Client::open(format!("redis://{host}:{port}")).unwrap();
        nodes.push(redis::aio::ConnectionManager::new(client).await.unwrap());
    }
    async fn total(nodes: &mut [redis::aio::ConnectionManager]) -> i64 {
        let mut sum = 0;
        for n in nodes.iter_mut() {
            sum += used_memory(n).await;
        }
        sum
    }
    let applier = Applier {
        redis: cl.clone(),
        fence: cl.clone(),
        pool,
        keys: Keys::new("benchcl", buckets),
        list_cap: 1000,
    };
    let stale = cl.scan("benchcl:*").await.unwrap();
    cl.unlink(&stale).await.unwrap();
    let n = counters.len() as f64;
    let base = total(&mut nodes).await;
    let secs = load(&applier, counters).await;
    let board_mem = leaderboard_bytes(&mut cl.clone(), "benchcl").await;
    let mem = total(&mut nodes).await - base - board_mem;
    println!(
        "| hash buckets on the {}-master cluster (sluice, cluster mode) | {mem} | {:.2} |",
        nodes.len(),
        mem as f64 / n
    );
    println!(
        "cluster apply path: {n} counters in {secs:.2}s = {:.0} counters/s",
        n / secs
    );
    let keys = cl.scan("benchcl:*").await.unwrap();
    cl.unlink(&keys).await.unwrap();
}

/// Loads `counters` through the apply path, 5,000 per batch; returns the seconds taken.
async fn load(applier: &Applier, counters: &[(u64, u8, i64)]) -> f64 {
    let started = Instant::now();
    for chunk in counters.chunks(5_000) {
        let effects: Vec<Effect> = chunk
            .iter()
            .map(|&(owner, kind, value)| Effect::SetCounter { owner, kind, value })
            .collect();
        applier
            .apply(&effects, &Record::default())
            .await
            .expect("apply");
    }
    started.elapsed().as_secs_f64()
}

/// `MEMORY USAGE … SAMPLES 0` of the namespace's followers leaderboard.
async fn leaderboard_bytes(conn: &mut impl redis::aio::ConnectionLike, ns: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(format!("{ns}:leaderboard:followers"))
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await
        .unwrap_or(0)
}
