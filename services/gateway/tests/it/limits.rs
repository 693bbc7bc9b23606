//! The public listener's bounds (timeouts, connection cap) and the attempt
//! limits of register and login, over real connections to the gateway.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::Method;
use common::config::RateLimitSettings;
use testkit::eventually;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{
    assert_error, call, closed_within, raw_request, read_reply, spawn_mesh_tweaked, spawn_mesh_with,
};

/// Slack for a timeout to fire and the close to reach the client on a
/// busy machine.
const SLACK: Duration = Duration::from_secs(3);

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway")
}

#[tokio::test]
async fn a_connection_trickling_its_headers_or_sending_a_bare_request_line_is_closed_after_the_header_read_timeout()
 {
    let header = Duration::from_secs(1);
    let m = spawn_mesh_with(|s| {
        s.header_read_timeout = header;
        // Long: what closes these connections is the header timer.
        s.idle_timeout = Duration::from_secs(60);
    })
    .await;

    // One header line every 200 ms: the head is never complete.
    let (mut rd, mut wr) = connect(m.port).await.into_split();
    wr.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        for i in 0.. {
            tick.tick().await;
            if wr
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let closed = closed_within(&mut rd, header + SLACK).await;
    trickle.abort();
    let closed = closed.expect("a trickling connection stayed open");
    assert!(
        started.elapsed() >= header - Duration::from_millis(100),
        "closed after {closed:?}, before the header timeout"
    );

    // A bare request line, then nothing.
    let mut bare = connect(m.port).await;
    bare.write_all(b"GET /openapi.json HTTP/1.1\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut bare, header + SLACK)
        .await
        .expect("a bare request line stayed open");
    assert!(closed <= header + SLACK, "{closed:?}");
    m.cleanup().await;
}

#[tokio::test]
async fn a_silent_connection_and_an_idle_keep_alive_connection_are_closed_after_the_idle_timeout() {
    let idle = Duration::from_secs(1);
    let m = spawn_mesh_with(|s| {
        s.idle_timeout = idle;
        s.header_read_timeout = Duration::from_secs(60);
    })
    .await;

    // Connects and never sends a byte.
    let mut silent = connect(m.port).await;
    let started = Instant::now();
    closed_within(&mut silent, idle + SLACK)
        .await
        .expect("a silent connection stayed open");
    assert!(started.elapsed() >= idle - Duration::from_millis(100));

    // Served once, then kept alive and idle: the timer runs from the answer.
    let mut kept = connect(m.port).await;
    kept.write_all(&raw_request("GET", "/openapi.json", None, false))
        .await
        .unwrap();
    let reply = read_reply(&mut kept).await.unwrap();
    assert_eq!(reply.status, 200);
    assert_ne!(reply.header("connection"), Some("close"));
    let answered = Instant::now();
    closed_within(&mut kept, idle + SLACK)
        .await
        .expect("an idle keep-alive connection stayed open");
    assert!(answered.elapsed() >= idle - Duration::from_millis(100));
    m.cleanup().await;
}

#[tokio::test]
async fn a_thousand_idle_connections_over_the_cap_make_room_and_a_new_client_is_served_at_once() {
    let cap = 50;
    let m = spawn_mesh_with(|s| {
        s.max_connections = cap;
        // Long timers: what frees the slots is eviction.
        s.idle_timeout = Duration::from_secs(60);
        s.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let closed = Arc::new(AtomicUsize::new(0));
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut s = connect(m.port).await;
        let closed = closed.clone();
        idle.push(tokio::spawn(async move {
            if closed_within(&mut s, Duration::from_secs(120))
                .await
                .is_some()
            {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let started = Instant::now();
    let reply = call(m.port, "GET", "/openapi.json", None).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 200);
    assert!(waited < Duration::from_secs(2), "served after {waited:?}");

    // The gateway holds at most `cap` of them: the rest were closed.
    eventually(Duration::from_secs(10), "idle connections evicted", || {
        let n = closed.load(Ordering::Relaxed);
        async move { (n >= 1000 - cap).then_some(()) }
    })
    .await;
    for t in idle {
        t.abort();
    }
    m.cleanup().await;
}

#[tokio::test]
async fn when_every_connection_is_busy_a_new_client_is_served_once_one_times_out() {
    let header = Duration::from_secs(1);
    let m = spawn_mesh_with(|s| {
        s.max_connections = 3;
        s.header_read_timeout = header;
        s.idle_timeout = Duration::from_secs(60);
    })
    .await;
    // Three connections hold the three slots, each inside a request head.
    let mut heads = Vec::new();
    for _ in 0..3 {
        let mut s = connect(m.port).await;
        s.write_all(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        heads.push(s);
    }
    let started = Instant::now();
    let reply = call(m.port, "GET", "/openapi.json", None).await;
    let waited = started.elapsed();
    assert_eq!(reply.status, 200);
    assert!(waited < header + SLACK, "served after {waited:?}");
    for mut s in heads {
        closed_within(&mut s, header + SLACK)
            .await
            .expect("a connection stuck in its head stayed open");
    }
    m.cleanup().await;
}

#[tokio::test]
async fn the_login_attempt_over_the_per_username_limit_is_429_with_retry_after() {
    let m = spawn_mesh_tweaked(
        |g| g.auth_per_client = RateLimitSettings::default(),
        |u| u.password.per_username = RateLimitSettings::new(3, Duration::from_secs(60)),
    )
    .await;
    let login = |name: &str, password: &str| {
        serde_json::json!({"username": name, "password": password}).to_string()
    };
    // Register, a good and a bad login: the three attempts alice has.
    m.register("alice").await;
    let r = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&login("alice", "password1")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&login("alice", "wrong-password")),
        )
        .await;
    assert_error(&r, 401, "unauthenticated");

    // The fourth, even with the right password and another spelling, is refused.
    for name in ["alice", "ALICE"] {
        let r = m
            .send(
                Method::POST,
                "/v1/sessions",
                None,
                Some(&login(name, "password1")),
            )
            .await;
        assert_error(&r, 429, "too_many_requests");
        let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
    }
    // Another username is not affected.
    m.register("bob").await;
    let r = m
        .send(
            Method::POST,
            "/v1/sessions",
            None,
            Some(&login("bob", "password1")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    m.cleanup().await;
}

#[tokio::test]
async fn register_and_login_over_the_per_client_limit_are_429_with_retry_after() {
    let m = spawn_mesh_with(|g| {
        g.auth_per_client = RateLimitSettings::new(3, Duration::from_secs(60));
    })
    .await;
    let body =
        |name: &str| serde_json::json!({"username": name, "password": "password1"}).to_string();
    // Three attempts from this address, on either route.
    let r = call(m.port, "POST", "/v1/users", Some(&body("carol"))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    for name in ["carol", "nobody"] {
        let r = call(m.port, "POST", "/v1/sessions", Some(&body(name))).await;
        assert!(matches!(r.status, 200 | 401), "{} {}", r.status, r.body);
    }
    for (path, name) in [("/v1/sessions", "carol"), ("/v1/users", "dave")] {
        let r = call(m.port, "POST", path, Some(&body(name))).await;
        assert_eq!(r.status, 429, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "too_many_requests");
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=20).contains(&wait), "{wait}");
    }
    // Nothing was created by the refused register; other routes still answer.
    assert_eq!(m.count("SELECT COUNT(*) FROM user").await, 1);
    assert_eq!(call(m.port, "GET", "/openapi.json", None).await.status, 200);
    m.cleanup().await;
}
