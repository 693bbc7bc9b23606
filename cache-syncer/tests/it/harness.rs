use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cache_syncer::apply::Applier;
use cache_syncer::config::Settings;
use cache_syncer::consumer::{StatusHandle, SyncStatus, Syncer};
use cdc_event::{ChangeEvent, Op, Snapshot, Source};
use proto::relation::v1::relation_service_client::RelationServiceClient;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::AsyncCommands;
use secrecy::SecretString;
use serde_json::Value;
use testkit::{TestDb, TestKafka, TestRedis};

pub struct Harness {
    pub db: TestDb,
    pub redis: TestRedis,
    pub kafka: TestKafka,
    pub settings: Settings,
    pub producer: FutureProducer,
    pub seq: u64,
    /// Per (topic, partition), the offset after the last message produced:
    /// what the relay's heartbeats carry as `acked_offsets`.
    acked: Mutex<BTreeMap<(String, i32), i64>>,
}

/// A syncer running its production loop ([`Syncer::run`]) in a task, as the
/// binary runs it; tests wait on its status instead of stepping it.
pub struct RunningSyncer {
    pub status: StatusHandle,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<cache_syncer::error::Result<()>>,
    /// `messages_done` the test has waited for so far.
    drained: u64,
}

impl RunningSyncer {
    /// Spawns `syncer.run` with a stop signal.
    pub fn spawn(syncer: Syncer, status: StatusHandle) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(syncer.run(async move {
            let _ = stopped.await;
        }));
        Self {
            status,
            stop,
            task,
            drained: 0,
        }
    }

    /// Waits until `n` more messages were finished by the loop (applied,
    /// skipped, dead-lettered or heartbeats, their offsets stored) than at
    /// the end of the previous `drain`.
    pub async fn drain(&mut self, n: usize) {
        let target = self.drained + n as u64;
        // Generous: a consumer-group join on a loaded 2-core machine can be slow.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let done = self.status.lock().unwrap().messages_done;
            if done >= target {
                break;
            }
            if self.task.is_finished() {
                let res = (&mut self.task).await;
                panic!("the syncer stopped after {done} messages: {res:?}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} messages consumed in 120s",
                done.saturating_sub(self.drained)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.drained = target;
    }

    /// Stops the loop and waits for its clean close (stored offsets
    /// committed).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("syncer task")
            .expect("syncer stops cleanly");
    }
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_partitions(2).await
    }

    /// A harness whose topics have `partitions` partitions each.
    pub async fn with_partitions(partitions: i32) -> Self {
        let _ = common::telemetry::init("cache-syncer-test");
        let db = TestDb::new().await;
        let redis = TestRedis::new().await;
        let kafka = TestKafka::new().await;
        let mut settings = Settings::default();
        settings.mysql.url = Some(SecretString::from(db.url.clone()));
        settings.redis.url = Some(SecretString::from(redis.url.clone()));
        settings.redis.namespace = redis.namespace.clone();
        settings.redis.counter_buckets = 16;
        settings.kafka.brokers = kafka.brokers.clone();
        settings.kafka.topic_prefix = kafka.prefix.clone();
        settings.group_id = kafka.group.clone();
        settings.source_db = db.name.clone();
        settings.list_cap = 3;
        settings.redis.bloom.bits_log2 = 16;
        settings.admin.addr = "127.0.0.1:0".parse().unwrap();
        let mut topics = settings.topics();
        topics.push(cdc_event::topic::dlq_topic(&kafka.prefix));
        topics.push(cdc_event::topic::heartbeat_topic(&kafka.prefix));
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        kafka.create_topics(&refs, partitions).await;
        let producer = kafka
            .client_config()
            .set("acks", "all")
            .create()
            .expect("producer");
        Self {
            db,
            redis,
            kafka,
            settings,
            producer,
            seq: 0,
            acked: Mutex::default(),
        }
    }

    pub async fn applier(&self) -> Applier {
        cache_syncer::startup::connect(&self.settings)
            .await
            .expect("connect")
    }

    /// A syncer group member over the harness' settings, not yet running.
    pub async fn build_syncer(&self) -> (Syncer, StatusHandle) {
        let status = StatusHandle::new(std::sync::Mutex::new(SyncStatus::default()));
        let s = Syncer::new(self.settings.clone(), self.applier().await, status.clone())
            .await
            .expect("syncer");
        (s, status)
    }

    /// A syncer group member over the harness' settings, running.
    pub async fn syncer(&self) -> (RunningSyncer, StatusHandle) {
        let (s, status) = self.build_syncer().await;
        (RunningSyncer::spawn(s, status.clone()), status)
    }

    pub fn topic(&self, table: &str) -> String {
        cdc_event::topic::topic_for(&self.kafka.prefix, &self.db.name, table)
    }

    pub fn event(
        &self,
        table: &str,
        op: Op,
        before: Option<Value>,
        after: Option<Value>,
    ) -> ChangeEvent {
        let obj = |v: Value| v.as_object().unwrap().clone();
        ChangeEvent {
            before: before.map(obj),
            after: after.map(obj),
            source: Source {
                version: "test".into(),
                connector: "sluice".into(),
                name: self.kafka.prefix.clone(),
                ts_ms: 0,
                db: self.db.name.clone(),
                table: table.into(),
                server_id: 1,
                gtid: None,
                file: "mysql-bin.000001".into(),
                pos: 4,
                row: 0,
                snapshot: Snapshot::False,
                thread: None,
            },
            op,
            ts_ms: 0,
            transaction: None,
        }
    }

    /// Produces `event` keyed by `key` with the next seq (or `seq`).
    pub async fn send(&mut self, key: &str, event: &ChangeEvent, seq: Option<u64>) -> u64 {
        let seq = seq.unwrap_or_else(|| {
            self.seq += 1;
            self.seq
        });
        let payload = serde_json::to_vec(event).unwrap();
        self.send_raw(
            &self.topic(&event.source.table),
            key,
            Some(&payload),
            Some(seq),
        )
        .await;
        seq
    }

    /// Produces `event` with `seq`, marked as part of an operator's replay.
    pub async fn send_replayed(&self, key: &str, event: &ChangeEvent, seq: u64) {
        let payload = serde_json::to_vec(event).unwrap();
        let topic = self.topic(&event.source.table);
        self.send_with(&topic, key, Some(&payload), Some(seq), true)
            .await;
    }

    pub async fn send_raw(&self, topic: &str, key: &str, payload: Option<&[u8]>, seq: Option<u64>) {
        self.send_with(topic, key, payload, seq, false).await;
    }

    async fn send_with(
        &self,
        topic: &str,
        key: &str,
        payload: Option<&[u8]>,
        seq: Option<u64>,
        replay: bool,
    ) {
        let mut headers = OwnedHeaders::new();
        if replay {
            headers = headers.insert(Header {
                key: cdc_event::HEADER_REPLAY,
                value: Some("1"),
            });
        }
        let seq_s = seq.map(|s| s.to_string());
        if let Some(s) = &seq_s {
            headers = headers.insert(Header {
                key: cdc_event::HEADER_SEQ,
                value: Some(s.as_str()),
            });
        }
        let mut rec = FutureRecord::<str, [u8]>::to(topic)
            .key(key)
            .headers(headers);
        if let Some(p) = payload {
            rec = rec.payload(p);
        }
        let delivered = self
            .producer
            .send(rec, Duration::from_secs(10))
            .await
            .expect("produce");
        let mut acked = self.acked.lock().unwrap();
        let next = acked
            .entry((topic.to_owned(), delivered.partition))
            .or_default();
        *next = (*next).max(delivered.offset + 1);
    }

    /// Where the row changes produced so far landed, as the relay's
    /// heartbeats carry it (`acked_offsets`: per partition, the offset after
    /// the last acknowledged message).
    pub fn acked_offsets(&self) -> Value {
        let heartbeats = cdc_event::topic::heartbeat_topic(&self.kafka.prefix);
        let acked = self.acked.lock().unwrap();
        acked
            .iter()
            .filter(|((topic, _), _)| *topic != heartbeats)
            .map(|((topic, partition), next)| {
                serde_json::json!({"topic": topic, "partition": partition, "next": next})
            })
            .collect()
    }

    /// Produces a relay heartbeat (`beat`, its JSON) to the heartbeat topic.
    pub async fn send_heartbeat(&self, beat: &Value) {
        let topic = cdc_event::topic::heartbeat_topic(&self.kafka.prefix);
        let payload = serde_json::to_vec(beat).unwrap();
        self.send_raw(&topic, &self.kafka.prefix, Some(&payload), None)
            .await;
    }

    /// Waits until the running syncer finished `n` more messages.
    pub async fn drain(&self, syncer: &mut RunningSyncer, n: usize) {
        syncer.drain(n).await;
    }

    /// Everything in the namespace, type-aware, for before/after comparisons.
    pub async fn redis_state(&mut self) -> BTreeMap<String, String> {
        let mut conn = self.redis.conn.clone();
        let keys: Vec<String> = conn
            .scan(&format!("{}:*", self.redis.namespace))
            .await
            .unwrap();
        let mut out = BTreeMap::new();
        for k in keys {
            // The syncer's own bookkeeping (positions, claims), not state.
            if k.contains(":syncer}:") {
                continue;
            }
            let t: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            let v = match t.as_str() {
                "hash" => format!(
                    "{:?}",
                    conn.hgetall::<_, BTreeMap<String, String>>(&k)
                        .await
                        .unwrap()
                ),
                "zset" => format!(
                    "{:?}",
                    conn.zrange_withscores::<_, Vec<(String, String)>>(&k, 0, -1)
                        .await
                        .unwrap()
                ),
                "string" => format!("{:?}", conn.get::<_, Vec<u8>>(&k).await.unwrap()),
                other => other.to_owned(),
            };
            out.insert(k, v);
        }
        out
    }

    pub async fn add_users(&self, n: u64) {
        for i in 1..=n {
            sqlx::query("INSERT INTO user (id, username, password_hash) VALUES (?, ?, 'x')")
                .bind(i)
                .bind(format!("u{i}"))
                .execute(&self.db.pool)
                .await
                .unwrap();
        }
    }

    /// Sets MySQL's counter row (`owner`, `kind`) to `value`, as the
    /// services' transactions leave it (the user columns are read from it).
    pub async fn set_counter(&self, owner: u64, kind: u8, value: i64) {
        sqlx::query(
            "INSERT INTO counter (owner_id, kind, value) VALUES (?, ?, ?) \
             ON DUPLICATE KEY UPDATE value = VALUES(value)",
        )
        .bind(owner)
        .bind(kind)
        .bind(value)
        .execute(&self.db.pool)
        .await
        .unwrap();
    }
}

/// A child process, killed (-9) when dropped.
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The cache-syncer binary over the harness' settings, as a child process
/// (so a test can kill -9 it).
pub fn spawn_syncer_process(h: &Harness) -> Killed {
    let s = &h.settings;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cache-syncer"))
        .env("SYNCER_MYSQL__URL", &h.db.url)
        .env("SYNCER_REDIS__URL", &h.redis.url)
        .env("SYNCER_REDIS__NAMESPACE", &s.redis.namespace)
        .env(
            "SYNCER_REDIS__COUNTER_BUCKETS",
            s.redis.counter_buckets.to_string(),
        )
        .env(
            "SYNCER_REDIS__BLOOM__BITS_LOG2",
            s.redis.bloom.bits_log2.to_string(),
        )
        .env("SYNCER_KAFKA__BROKERS", &s.kafka.brokers)
        .env("SYNCER_KAFKA__TOPIC_PREFIX", &s.kafka.topic_prefix)
        .env("SYNCER_GROUP_ID", &s.group_id)
        .env("SYNCER_SOURCE_DB", &s.source_db)
        .env("SYNCER_LIST_CAP", s.list_cap.to_string())
        .env("SYNCER_ADMIN__ADDR", "127.0.0.1:0")
        .env(
            "RUST_LOG",
            std::env::var("SYNCER_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .spawn()
        .expect("spawn cache-syncer");
    Killed(child)
}

pub const T1: &str = "2026-11-26T10:00:00.000001";
pub const T1_US: i64 = 1_795_687_200_000_001;
pub const T2: &str = "2026-11-26T10:00:02.000000";

pub const CONVERGE: Duration = Duration::from_secs(240);

/// The relay over the harness' database and topic prefix, in-process.
pub async fn start_relay(h: &Harness) -> tokio::sync::oneshot::Sender<()> {
    start_relay_with(h, binlog_relay::RunOptions::default())
        .await
        .0
}

/// The state folder of the harness' relay.
pub fn relay_state_dir(h: &Harness) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("syncer-e2e-{}", h.kafka.prefix))
}

/// [`start_relay`] with run options; also returns the relay's task. Once
/// this returns, the start point is pinned (`latest` included).
pub async fn start_relay_with(
    h: &Harness,
    opts: binlog_relay::RunOptions,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<binlog_relay::Result<()>>,
) {
    let mut s = binlog_relay::Settings {
        dev: true,
        server_id: 200_000 + rand::random::<u32>() % 1_000_000_000,
        state_dir: relay_state_dir(h),
        heartbeat_interval: Duration::from_millis(300),
        checkpoint_interval: Duration::from_millis(50),
        ..binlog_relay::Settings::default()
    };
    s.mysql.url = Some(SecretString::from(h.db.url.clone()));
    s.kafka = h.settings.kafka.clone();
    s.admin.addr = "127.0.0.1:0".parse().unwrap();
    s.filter.include_databases = vec![h.db.name.clone()];
    let app = binlog_relay::Application::build(s, opts)
        .await
        .expect("relay builds");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (tx, task)
}

/// The relation-service over the harness' database, in-process; its port.
pub async fn spawn_relation_service(h: &Harness) -> u16 {
    let mut s = relation_service::config::Settings {
        service: service_kit::settings::ServiceCommon {
            redis: h.settings.redis.clone(),
            mesh: testkit::mesh_settings(),
            ..service_kit::settings::ServiceCommon::on_ports(0, 0)
        },
        ..Default::default()
    };
    s.service.mysql.url = Some(SecretString::from(h.db.url.clone()));
    let app = relation_service::startup::Application::build(s)
        .await
        .expect("relation-service builds");
    let port = app.port();
    tokio::spawn(app.run_until(std::future::pending()));
    port
}

pub async fn start_relation_service(
    h: &Harness,
) -> RelationServiceClient<service_kit::mesh_auth::MeshChannel> {
    let port = spawn_relation_service(h).await;
    RelationServiceClient::new(testkit::mesh_channel(format!("http://127.0.0.1:{port}")).await)
}

pub async fn converged(h: &Harness) {
    let applier = h.applier().await;
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let r = cache_syncer::verify::verify(&applier, false)
            .await
            .expect("verify runs");
        if r.diffs.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {} differences after {CONVERGE:?}:\n  {}",
            r.diffs.len(),
            r.diffs
                .iter()
                .take(20)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The whole pipeline in-process: relay, relation-service and syncer over
/// the harness' database, topics and namespace. Keep the returned sender
/// alive for as long as the relay should run.
pub async fn start_pipeline(
    h: &Harness,
) -> (
    tokio::sync::oneshot::Sender<()>,
    RelationServiceClient<service_kit::mesh_auth::MeshChannel>,
) {
    let relay = start_relay(h).await;
    let client = start_relation_service(h).await;
    let syncer = cache_syncer::startup::Application::build(h.settings.clone())
        .await
        .expect("syncer builds");
    tokio::spawn(syncer.run_until_stopped(std::future::pending()));
    (relay, client)
}

/// Follows (`follow`) or unfollows `to` as `from` through relation-service;
/// the write's answer, or its error.
pub async fn set_follow(
    client: &mut RelationServiceClient<service_kit::mesh_auth::MeshChannel>,
    from: u64,
    to: u64,
    follow: bool,
) -> Result<proto::relation::v1::FollowResponse, tonic::Status> {
    let req = proto::relation::v1::FollowRequest {
        from_id: from,
        to_id: to,
    };
    let auth = service_kit::mesh_auth::MeshAuth::dev();
    let answer = if follow {
        client.follow(auth.acting(from, req)).await
    } else {
        client.unfollow(auth.acting(from, req)).await
    };
    answer.map(tonic::Response::into_inner)
}
