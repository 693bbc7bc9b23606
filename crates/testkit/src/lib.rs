//! Helpers for integration tests that talk to the real local stack
//! (`make up` / `scripts/stack.sh up`): MariaDB on 3307, Redis on 6380 and the
//! Apache Kafka broker on 9092, or wherever `SLUICE_MYSQL_URL`,
//! `SLUICE_REDIS_URL` and `SLUICE_KAFKA_BROKERS` point.
//!
//! Every test gets its own database (migrated), topic prefix, consumer group
//! and Redis namespace, so tests run in parallel against shared servers. When
//! the stack is not up, helpers fail fast with a message naming the command
//! to run, instead of hanging.
//!
//! This crate is a dev-dependency only.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use redis::AsyncCommands;
use secrecy::SecretString;
use sqlx::{Connection, MySqlPool};

const START_HINT: &str =
    "the local stack is not up: run `make up` (or `scripts/stack.sh up`) first";

/// Server URL (no database) of the test MariaDB.
pub fn mysql_server_url() -> String {
    std::env::var("SLUICE_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3307".into())
}

/// URL of the test Redis: with `SLUICE_REDIS_CLUSTER=1` the local Redis
/// Cluster's seed nodes (`SLUICE_REDIS_CLUSTER_URLS`, comma-separated, which
/// every sluice binary takes as cluster mode), else the single Redis.
pub fn redis_url() -> String {
    if redis_cluster() {
        return std::env::var("SLUICE_REDIS_CLUSTER_URLS").unwrap_or_else(|_| {
            "redis://127.0.0.1:7001,redis://127.0.0.1:7002,redis://127.0.0.1:7003".into()
        });
    }
    std::env::var("SLUICE_REDIS_URL").unwrap_or_else(|_| common::config::dev::REDIS_URL.into())
}

/// Whether the tests run against the local Redis Cluster (`SLUICE_REDIS_CLUSTER=1`).
pub fn redis_cluster() -> bool {
    std::env::var("SLUICE_REDIS_CLUSTER")
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Bootstrap servers of the test broker.
pub fn kafka_brokers() -> String {
    std::env::var("SLUICE_KAFKA_BROKERS")
        .unwrap_or_else(|_| common::config::dev::KAFKA_BROKERS.into())
}

/// A short random lowercase suffix for names that must not collide.
pub fn unique_suffix() -> String {
    let mut rng = rand::rng();
    (0..10)
        .map(|_| (b'a' + rng.random_range(0..26)) as char)
        .collect()
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
/// Use it instead of sleeping for eventual consistency.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() >= deadline {
            panic!("not true after {deadline:?}: {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A fresh, migrated database named `sluice_t_<suffix>`.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: MySqlPool,
}

impl TestDb {
    /// Creates and migrates a new database. Panics with a hint when MariaDB is not up.
    pub async fn new() -> Self {
        let server = mysql_server_url();
        let name = format!("sluice_t_{}", unique_suffix());
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::MySqlConnection::connect(&server),
        )
        .await
        .unwrap_or_else(|_| panic!("mariadb at {server} did not answer in 5s; {START_HINT}"))
        .unwrap_or_else(|e| panic!("cannot connect to mariadb at {server}: {e}; {START_HINT}"));
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await
        .expect("create test database");
        conn.close().await.ok();
        let url = format!("{server}/{name}");
        let pool = common::db::connect(&SecretString::from(url.clone()), 20)
            .await
            .expect("connect test database");
        common::db::migrate(&pool)
            .await
            .expect("migrate test database");
        Self { name, url, pool }
    }

    /// Drops the database (call at the end of a test; a leftover one is
    /// harmless and removed by the next `make test`).
    pub async fn drop_db(self) {
        self.pool.close().await;
        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_server_url()).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS `{}`",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A Redis connection scoped to a fresh namespace.
#[derive(Clone)]
pub struct TestRedis {
    pub namespace: String,
    pub url: String,
    /// A single server's connection, or the cluster client.
    pub conn: common::redis_conn::Redis,
}

impl TestRedis {
    /// Connects and picks a new namespace. Panics with a hint when Redis is not up.
    pub async fn new() -> Self {
        Self::at(redis_url()).await
    }

    /// The single Redis even when the tests run on the cluster: for tests
    /// that put a proxy between a service and its one Redis server (a
    /// cluster client would follow the nodes' own addresses around it).
    pub async fn single() -> Self {
        Self::at(
            std::env::var("SLUICE_REDIS_URL")
                .unwrap_or_else(|_| common::config::dev::REDIS_URL.into()),
        )
        .await
    }

    async fn at(url: String) -> Self {
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            common::redis_conn::connect(
                &url,
                false,
                Duration::from_secs(2),
                Duration::from_secs(10),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("redis at {url} did not answer in 5s; {START_HINT}"))
        .unwrap_or_else(|e| panic!("cannot connect to redis at {url}: {e}; {START_HINT}"));
        Self {
            namespace: format!("t_{}", unique_suffix()),
            url,
            conn,
        }
    }

    /// The key builder for this namespace.
    /// The key builder for this namespace, as the binaries build it from
    /// settings naming this Redis (so a cluster's bloom filter is sharded).
    pub fn keys(&self, buckets: u64) -> common::keys::Keys {
        common::config::RedisSettings {
            url: Some(self.url.clone().into()),
            namespace: self.namespace.clone(),
            counter_buckets: buckets,
            ..Default::default()
        }
        .keys()
    }

    /// Waits until the cache-syncer's applied watermark in this namespace
    /// covers `token` (a write's `consistency_token`): from then on every
    /// change up to that write is visible in Redis. Panics after `deadline`
    /// with the watermark it last saw. The read-your-writes barrier for
    /// tests — use it instead of sleeping.
    pub async fn await_applied(&self, token: &str, deadline: Duration) {
        let t: service_kit::readpath::consistency::Token = token
            .parse()
            .unwrap_or_else(|e| panic!("await_applied: {e}"));
        let key = self.keys(1).watermark();
        let mut conn = self.conn.clone();
        let mut last: Option<String> = None;
        let until = tokio::time::Instant::now() + deadline;
        loop {
            last = conn.hget(&key, "gtid").await.unwrap_or(last);
            let covered = last
                .as_deref()
                .and_then(service_kit::readpath::consistency::Position::parse)
                .is_some_and(|p| p.covers(&t));
            if covered {
                return;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "the syncer's watermark did not reach {token} within {deadline:?} (last seen: {last:?})"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Deletes every key of this namespace (on every master of a cluster).
    pub async fn cleanup(&mut self) {
        let keys = self
            .conn
            .scan(&format!("{}:*", self.namespace))
            .await
            .expect("scan test namespace");
        self.conn.unlink(&keys).await.expect("delete test keys");
    }
}

/// A per-test topic prefix and consumer group on the shared broker.
#[derive(Debug, Clone)]
pub struct TestKafka {
    pub brokers: String,
    /// Topic prefix, e.g. `t_abcdefghij`.
    pub prefix: String,
    /// Consumer group id for this test.
    pub group: String,
}

impl TestKafka {
    /// Picks a fresh prefix and group and checks the broker answers.
    pub async fn new() -> Self {
        let brokers = kafka_brokers();
        let suffix = unique_suffix();
        let kafka = Self {
            brokers,
            prefix: format!("t_{suffix}"),
            group: format!("g_{suffix}"),
        };
        let addr = kafka
            .brokers
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned();
        match tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect(&addr),
        )
        .await
        {
            Ok(Ok(_)) => kafka,
            _ => panic!("kafka broker at {addr} does not answer; {START_HINT}"),
        }
    }

    /// Base client config pointing at the test broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", &self.brokers);
        cfg
    }

    /// Deletes every topic of this test's prefix (`<prefix>.…`), so the
    /// shared broker does not collect them. Tests call it at the end;
    /// `scripts/test.sh` sweeps what failed tests left behind.
    pub async fn delete_topics(&self) {
        let admin = self.admin();
        let prefix = format!("{}.", self.prefix);
        let names: Vec<String> = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .map(|md| {
                md.topics()
                    .iter()
                    .map(|t| t.name().to_owned())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .expect("topic metadata");
        if names.is_empty() {
            return;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = admin
            .delete_topics(&refs, &admin_options())
            .await
            .expect("delete topics request");
        check_topic_results(
            "deleting",
            results,
            rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition,
        );
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("kafka admin client")
    }

    /// Creates topics (the broker does not auto-create them). Existing topics are fine.
    pub async fn create_topics(&self, names: &[&str], partitions: i32) {
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
            .collect();
        let results = self
            .admin()
            .create_topics(topics.iter(), &admin_options())
            .await
            .expect("create topics request");
        check_topic_results(
            "creating",
            results,
            rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
        );
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

/// Panics on a failed topic operation, except for `fine` (the topic was
/// already there, or already gone).
fn check_topic_results(
    what: &str,
    results: Vec<rdkafka::admin::TopicResult>,
    fine: rdkafka::types::RDKafkaErrorCode,
) {
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, code)) if code == fine => {}
            Err((topic, code)) => panic!("{what} topic {topic} failed: {code}"),
        }
    }
}

/// Calls `check(file name, bytes)` for every input kept for the fuzz target
/// `target` (`fuzz/corpus/<target>/`: the checked-in seeds and every input
/// that once crashed it), so `cargo test` replays them without nightly.
/// Panics when the folder is missing or empty.
pub fn fuzz_corpus(target: &str, mut check: impl FnMut(&str, &[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("fuzz corpus {}: {e}", dir.display()));
    let mut n = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let bytes = std::fs::read(&path).expect("corpus file");
        check(
            &path.file_name().unwrap_or_default().to_string_lossy(),
            &bytes,
        );
        n += 1;
    }
    assert!(n > 0, "fuzz corpus {} is empty", dir.display());
}

/// A client channel to a sluice gRPC service at `url` whose calls carry
/// the dev mesh's membership proof (the services answer members only; see
/// `service_kit::mesh_auth`). Calls made for a user add
/// `MeshAuth::dev().acting(user, request)`.
pub async fn mesh_channel(url: impl Into<String>) -> service_kit::mesh_auth::MeshChannel {
    let url = url.into();
    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tonic::service::interceptor::InterceptedService::new(
        channel,
        service_kit::mesh_auth::MeshAuth::dev().client(),
    )
}

/// The `read-source` metadata of a service's answer (`cache`,
/// `synced-cache`, `primary`), or `None` when it set none.
pub fn read_source<T>(resp: &tonic::Response<T>) -> Option<String> {
    resp.metadata()
        .get(service_kit::readpath::consistency::READ_SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The mesh settings of in-process services and gateways in tests: the dev
/// mesh key, which [`mesh_channel`] signs with.
pub fn mesh_settings() -> service_kit::mesh_auth::MeshSettings {
    service_kit::mesh_auth::MeshSettings {
        secret: Some(secrecy::SecretString::from(
            service_kit::mesh_auth::DEV_SECRET,
        )),
    }
}

/// The settings block every gRPC service shares, for an in-process service
/// in a test: ports 0, the dev mesh key ([`mesh_settings`]), this test's
/// database and Redis namespace; everything else the defaults.
pub fn service_common(db: &TestDb, redis: &TestRedis) -> service_kit::settings::ServiceCommon {
    use common::config::{MysqlSettings, RedisSettings};
    service_kit::settings::ServiceCommon {
        mesh: mesh_settings(),
        mysql: MysqlSettings {
            url: Some(SecretString::from(db.url.clone())),
            ..Default::default()
        },
        redis: RedisSettings {
            url: Some(SecretString::from(redis.url.clone())),
            namespace: redis.namespace.clone(),
            ..Default::default()
        },
        ..service_kit::settings::ServiceCommon::on_ports(0, 0)
    }
}

/// A TCP proxy in front of one of the stack's servers that a test can cut
/// (every connection closed, nothing accepted) and restore on the same
/// port: the server unreachable for one service, without stopping the
/// shared server the other tests use.
pub struct TcpProxy {
    /// `host:port` forwarded to.
    target: String,
    port: u16,
    tasks: Option<tokio::task::JoinSet<()>>,
}

impl TcpProxy {
    /// A proxy, up, in front of the server `url` names
    /// (`scheme://[user[:pass]@]host:port[/path]`).
    pub async fn for_url(url: &str) -> Self {
        let (_, authority, _) = split_url(url);
        let target = authority
            .rsplit_once('@')
            .map_or(authority, |(_, hostport)| hostport)
            .to_owned();
        let mut p = Self {
            target,
            port: 0,
            tasks: None,
        };
        p.up().await;
        p
    }

    /// Listens (again) on the proxy's port and forwards every connection.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("proxy port");
        self.port = listener.local_addr().expect("proxy address").port();
        let target = self.target.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let conns = std::sync::Arc::new(tokio::sync::Mutex::new(tokio::task::JoinSet::new()));
        let held = conns.clone();
        tasks.spawn(async move {
            // Connections live in their own set, dropped (aborted) with it.
            let _held = held;
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let target = target.clone();
                conns.lock().await.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    /// Closes every connection and stops listening.
    pub async fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// `url` with its host and port replaced by the proxy's (user, password
    /// and path kept).
    pub fn url(&self, url: &str) -> String {
        let (scheme, authority, path) = split_url(url);
        let user = authority
            .rsplit_once('@')
            .map_or(String::new(), |(u, _)| format!("{u}@"));
        format!("{scheme}://{user}127.0.0.1:{}{path}", self.port)
    }
}

/// `scheme://authority/path` → (scheme, authority, `/path` or "").
fn split_url(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = url.split_once("://").expect("scheme:// in the url");
    match rest.find('/') {
        Some(i) => (scheme, &rest[..i], &rest[i..]),
        None => (scheme, rest, ""),
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_proxy_url_keeps_user_and_path_and_swaps_the_address() {
        let p = super::TcpProxy::for_url("mysql://root:pw@127.0.0.1:3307/db").await;
        assert_eq!(p.target, "127.0.0.1:3307");
        assert_eq!(
            p.url("mysql://root:pw@127.0.0.1:3307/db"),
            format!("mysql://root:pw@127.0.0.1:{}/db", p.port)
        );
        assert_eq!(
            p.url("redis://127.0.0.1:6380"),
            format!("redis://127.0.0.1:{}", p.port)
        );
    }
}
