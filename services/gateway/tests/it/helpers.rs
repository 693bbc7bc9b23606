//! Spawning the mesh and calling the gateway.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::config::AdminSettings;
use secrecy::SecretString;
use serde_json::Value;
use service_kit::jwt::JwtSettings;
use testkit::{TestDb, TestRedis};
use tower::ServiceExt;

pub struct Mesh {
    pub db: TestDb,
    pub redis: TestRedis,
    pub router: Router,
    /// REST port of the gateway (its real listener).
    pub port: u16,
    /// Admin port of the gateway.
    pub admin_port: u16,
}

/// A response: status, headers, JSON body (Null when not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub fn jwt_secret() -> SecretString {
    SecretString::from("integration-test-secret-integration-test-secret")
}

pub async fn spawn_mesh() -> Mesh {
    spawn_mesh_with(|_| {}).await
}

pub async fn spawn_mesh_with(tweak: impl FnOnce(&mut gateway::config::Settings)) -> Mesh {
    spawn_mesh_tweaked(tweak, |_| {}).await
}

/// The mesh with the gateway's and user-service's settings tweaked.
pub async fn spawn_mesh_tweaked(
    tweak: impl FnOnce(&mut gateway::config::Settings),
    tweak_user: impl FnOnce(&mut user_service::config::Settings),
) -> Mesh {
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let service = service_kit::settings::ServiceCommon {
        consistency: no_syncer_wait(),
        ..testkit::service_common(&db, &redis)
    };
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();

    let mut us = user_service::config::Settings {
        service: service.clone(),
        jwt: JwtSettings {
            secret: Some(jwt_secret()),
            ..Default::default()
        },
        ..Default::default()
    };
    tweak_user(&mut us);
    let user = user_service::startup::Application::build(us)
        .await
        .expect("user-service");
    let user_port = user.port();
    tokio::spawn(user.run_until(std::future::pending()));

    let relation =
        relation_service::startup::Application::build(relation_service::config::Settings {
            service: service.clone(),
            ..Default::default()
        })
        .await
        .expect("relation-service");
    let relation_port = relation.port();
    tokio::spawn(relation.run_until(std::future::pending()));

    let count = count_service::startup::Application::build(count_service::config::Settings {
        service,
        ..Default::default()
    })
    .await
    .expect("count-service");
    let count_port = count.port();
    tokio::spawn(count.run_until(std::future::pending()));

    let mut gs = gateway::config::Settings {
        mesh: testkit::mesh_settings(),
        http_addr: any,
        admin: AdminSettings::on_port(0),
        user_url: format!("http://127.0.0.1:{user_port}"),
        relation_url: format!("http://127.0.0.1:{relation_port}"),
        count_url: format!("http://127.0.0.1:{count_port}"),
        jwt: JwtSettings {
            secret: Some(jwt_secret()),
            ..Default::default()
        },
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    tweak(&mut gs);
    let gw = gateway::startup::Application::build(gs)
        .await
        .expect("gateway");
    let router = gw.router();
    let port = gw.port();
    let admin_port = gw.admin_port();
    tokio::spawn(gw.run_until(std::future::pending()));
    Mesh {
        db,
        redis,
        router,
        port,
        admin_port,
    }
}

impl Mesh {
    /// Sends a request with a JSON (or raw) body and optional bearer token.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.send_with(method, path, token, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        self.send_request(req).await
    }

    /// Sends a request built by the caller (raw bytes in URIs or headers).
    pub async fn send_request(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Registers `name` (password "password1"); returns (id, token).
    pub async fn register(&self, name: &str) -> (u64, String) {
        let body = serde_json::json!({"username": name, "password": "password1"}).to_string();
        let r = self
            .send(Method::POST, "/v1/users", None, Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["id"].as_u64().unwrap(),
            r.body["token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Rows in user, follow and counter: "nothing written" checks compare these.
    pub async fn rows(&self) -> (i64, i64, i64) {
        (
            self.count("SELECT COUNT(*) FROM user").await,
            self.count("SELECT COUNT(*) FROM follow").await,
            self.count("SELECT CAST(COALESCE(SUM(value), 0) AS SIGNED) FROM counter")
                .await,
        )
    }

    pub async fn cleanup(mut self) {
        self.redis.cleanup().await;
        self.db.drop_db().await;
    }
}

/// Asserts the JSON error shape and status.
pub fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert!(r.body["error"]["message"].is_string(), "body: {}", r.body);
}

/// A plain HTTP/1.1 GET against a local port; returns the status line and body.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// No cache-syncer runs beside these services: a token-carrying read waits
/// briefly for a watermark that never comes, then reads MySQL.
fn no_syncer_wait() -> common::config::ConsistencySettings {
    common::config::ConsistencySettings {
        wait: Duration::from_millis(200),
        ..Default::default()
    }
}

/// An answer read off a real connection to the gateway's listener.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 request with an optional JSON body, as bytes.
pub fn raw_request(method: &str, path: &str, body: Option<&str>, close: bool) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: gateway\r\n");
    if close {
        req.push_str("Connection: close\r\n");
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    req.into_bytes()
}

/// Reads one answer (head, then `Content-Length` bytes of body) from `r`.
pub async fn read_reply<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> std::io::Result<RawReply> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; len - body.len()];
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(RawReply {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

/// One request on a new connection to the gateway's listener.
pub async fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> RawReply {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gateway");
    s.write_all(&raw_request(method, path, body, true))
        .await
        .expect("send the request");
    read_reply(&mut s).await.expect("read the answer")
}

/// Waits until the peer closes `r` (EOF or reset), at most `deadline`;
/// how long that took, or `None` if it stayed open.
pub async fn closed_within<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    deadline: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let until_closed = async {
        let mut sink = [0u8; 1024];
        while let Ok(n) = r.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(deadline, until_closed)
        .await
        .ok()
        .map(|()| started.elapsed())
}
