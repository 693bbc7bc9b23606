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

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cache_syncer::apply::{Applier, Record};
use cache_syncer::plan::Effect;
use common::keys::Keys;
use rand::{Rng, SeedableRng};

struct RedisProc(Child);
impl Drop for RedisProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn used_memory(conn: &mut redis::aio::ConnectionManager) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// Pareto(α, x_min = 1) sample, capped.
fn pareto(rng: &mut impl Rng, alpha: f64, cap: f64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (u.powf(-1.0 / alpha)).min(cap).floor() as i64
}

#[tokio::main]
async fn main() {
    let users: u64 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let buckets: u64 = std::env::var("BENCH_BUCKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096);
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("sluice-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _redis = RedisProc(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = loop {
        match redis::aio::ConnectionManager::new(client.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let version: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let max_entries: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hash-max-listpack-entries")
        .query_async(&mut conn)
        .await
        .unwrap();

    // The applier also writes the user columns: give it a throwaway database
    // with no user rows (the UPDATEs match nothing), dropped at the end.
    let db = testkit::TestDb::new().await;
    let pool = db.pool.clone();
    let applier = Applier {
        redis: conn.clone(),
        fence: conn.clone(),
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
    let apply_secs = started.elapsed().as_secs_f64();
    let buckets_mem = used_memory(&mut conn).await - base;

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
    println!(
        "#   hash-max-listpack-entries {:?}; largest follower count {max_val}",
        max_entries.get(1)
    );
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
    println!("buckets not listpack-encoded: {non_listpack}");
    println!(
        "apply path: {n} counters in {apply_secs:.2}s = {:.0} counters/s",
        n / apply_secs
    );
    db.drop_db().await;
}
