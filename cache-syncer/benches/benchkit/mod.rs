//! What the memory benchmarks share: a private redis-server for the run,
//! its `used_memory`, and Pareto-distributed sizes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::Rng;

/// A redis-server started for one run; killed when dropped.
pub struct RedisProc(Child);

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

/// Starts a private redis-server (no persistence) on a free loopback port
/// and connects to it: the process, a connection and the server version.
pub async fn start_redis() -> (RedisProc, redis::aio::ConnectionManager, String) {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("sluice-bench-redis-{port}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let proc = RedisProc(
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
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = loop {
        match redis::aio::ConnectionManager::new(client.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    (proc, conn, version)
}

/// Redis's `used_memory`, in bytes.
pub async fn used_memory(conn: &mut redis::aio::ConnectionManager) -> i64 {
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

/// A `CONFIG GET` value.
pub async fn config(conn: &mut redis::aio::ConnectionManager, name: &str) -> String {
    let v: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
        .unwrap();
    v.get(1).cloned().unwrap_or_default()
}

/// Pareto(α, x_min = 1) sample, capped.
pub fn pareto(rng: &mut impl Rng, alpha: f64, cap: f64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    (u.powf(-1.0 / alpha)).min(cap).floor() as i64
}

/// `BENCH_<name>` from the environment, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
