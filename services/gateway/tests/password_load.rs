//! A burst of concurrent logins against the in-process mesh: user-service's
//! memory stays bounded and every client gets an answer (a session, or a
//! 429/503 refusal with `Retry-After`) quickly.
//!
//! A binary of its own: it measures the process's resident memory, which
//! other tests running beside it in one binary would disturb.

#[path = "it/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::RateLimitSettings;
use tokio::io::AsyncWriteExt;

use helpers::{raw_request, read_reply, spawn_mesh_with};

const LOGINS: usize = 64;
/// Most the process's RSS may grow during the burst.
const MAX_GROWTH_BYTES: u64 = 200 * 1024 * 1024;
/// Longest any one answer may take.
const MAX_LATENCY: Duration = Duration::from_secs(2);

/// This process's resident set (`VmRSS`), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_logins_keep_memory_bounded_and_every_answer_under_two_seconds() {
    // One address sends every login here: no per-client limit, so that the
    // hashing bound is what is measured.
    let m = spawn_mesh_with(|g| g.auth_per_client = RateLimitSettings::default()).await;
    // Before any hash: the hashing threads' memory counts as growth.
    let baseline = rss_bytes();
    // 64 users sharing one password hash (registering each would cost a hash).
    m.register("load0").await;
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM user WHERE username = 'load0'")
            .fetch_one(&m.db.pool)
            .await
            .unwrap();
    for i in 1..LOGINS {
        sqlx::query("INSERT INTO user (username, password_hash) VALUES (?, ?)")
            .bind(format!("load{i}"))
            .bind(&hash)
            .execute(&m.db.pool)
            .await
            .unwrap();
    }
    // One login first: the path works before it is loaded.
    let body = |i: usize| {
        serde_json::json!({"username": format!("load{i}"), "password": "password1"}).to_string()
    };
    assert_eq!(
        helpers::call(m.port, "POST", "/v1/sessions", Some(&body(0)))
            .await
            .status,
        200
    );

    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = Arc::new(tokio::sync::Notify::new());
    let sampler = tokio::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => { peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed); }
                    _ = done.notified() => break,
                }
            }
        }
    });

    // Every client connects first, then all send at once.
    let start = Arc::new(tokio::sync::Barrier::new(LOGINS));
    let mut clients = Vec::new();
    for i in 0..LOGINS {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", m.port))
            .await
            .unwrap();
        let start = start.clone();
        let req = raw_request("POST", "/v1/sessions", Some(&body(i)), true);
        clients.push(tokio::spawn(async move {
            start.wait().await;
            let sent = Instant::now();
            s.write_all(&req).await.unwrap();
            let reply = read_reply(&mut s).await.unwrap();
            (reply, sent.elapsed())
        }));
    }
    let mut answers = Vec::new();
    for c in clients {
        answers.push(c.await.unwrap());
    }
    done.notify_one();
    sampler.await.unwrap();
    let growth = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline);

    let mut latencies: Vec<Duration> = answers.iter().map(|(_, t)| *t).collect();
    latencies.sort();
    let count = |s: u16| answers.iter().filter(|(r, _)| r.status == s).count();
    eprintln!(
        "{LOGINS} logins: {} ok, {} 429, {} 503; latency p50 {:?}, max {:?}; RSS {} MiB -> +{} MiB",
        count(200),
        count(429),
        count(503),
        latencies[LOGINS / 2],
        latencies[LOGINS - 1],
        baseline / (1024 * 1024),
        growth / (1024 * 1024),
    );
    for (r, t) in &answers {
        assert!(
            matches!(r.status, 200 | 429 | 503),
            "{} {}",
            r.status,
            r.body
        );
        if r.status != 200 {
            assert!(
                r.header("retry-after").is_some(),
                "{} without Retry-After",
                r.status
            );
            assert!(r.body["error"]["code"].is_string(), "{}", r.body);
        }
        assert!(*t < MAX_LATENCY, "an answer took {t:?}");
    }
    assert!(count(200) > 0, "no login was served");
    assert!(
        growth < MAX_GROWTH_BYTES,
        "RSS grew by {} MiB",
        growth / (1024 * 1024)
    );
    m.cleanup().await;
}
