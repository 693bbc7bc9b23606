//! Spawning the mesh and calling the gateway.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::config::{AdminSettings, MysqlSettings, RedisSettings};
use common::jwt::JwtSettings;
use secrecy::SecretString;
use serde_json::Value;
use testkit::{TestDb, TestRedis};
use tower::ServiceExt;

pub struct Mesh {
    pub db: TestDb,
    pub redis: TestRedis,
    pub router: Router,
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
    let db = TestDb::new().await;
    let redis = TestRedis::new().await;
    let mysql = MysqlSettings {
        url: Some(SecretString::from(db.url.clone())),
        ..Default::default()
    };
    let redis_settings = RedisSettings {
        url: Some(SecretString::from(redis.url.clone())),
        namespace: redis.namespace.clone(),
        ..Default::default()
    };
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();

    let user = user_service::startup::Application::build(user_service::config::Settings {
        grpc_addr: any,
        admin: AdminSettings::on_port(0),
        mysql: mysql.clone(),
        redis: redis_settings.clone(),
        consistency: no_syncer_wait(),
        jwt: JwtSettings {
            secret: Some(jwt_secret()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("user-service");
    let user_port = user.port();
    tokio::spawn(user.run_until(std::future::pending()));

    let relation =
        relation_service::startup::Application::build(relation_service::config::Settings {
            grpc_addr: any,
            admin: AdminSettings::on_port(0),
            mysql: mysql.clone(),
            redis: redis_settings.clone(),
            consistency: no_syncer_wait(),
            ..Default::default()
        })
        .await
        .expect("relation-service");
    let relation_port = relation.port();
    tokio::spawn(relation.run_until(std::future::pending()));

    let count = count_service::startup::Application::build(count_service::config::Settings {
        grpc_addr: any,
        admin: AdminSettings::on_port(0),
        mysql,
        redis: redis_settings,
        consistency: no_syncer_wait(),
        ..Default::default()
    })
    .await
    .expect("count-service");
    let count_port = count.port();
    tokio::spawn(count.run_until(std::future::pending()));

    let mut gs = gateway::config::Settings {
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
    let admin_port = gw.admin_port();
    tokio::spawn(gw.run_until(std::future::pending()));
    Mesh {
        db,
        redis,
        router,
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
