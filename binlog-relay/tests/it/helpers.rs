//! Test harness: a relay running in-process against the real MariaDB and
//! broker, scoped to its own database, topic prefix and checkpoint folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use binlog_relay::config::Filter;
use binlog_relay::{Application, RunOptions, Settings};
use common::config::{AdminSettings, KafkaSettings, MysqlSettings};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use secrecy::SecretString;
use serde_json::Value;
use testkit::{TestDb, TestKafka};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub partition: i32,
    pub key: Option<Value>,
    pub value: Option<Value>,
    pub headers: HashMap<String, String>,
}

impl Msg {
    pub fn seq(&self) -> u64 {
        self.headers
            .get(cdc_event::HEADER_SEQ)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// Database + topic prefix + checkpoint folder of one test.
pub struct Env {
    pub db: TestDb,
    pub kafka: TestKafka,
    pub state_dir: PathBuf,
    pub server_id: u32,
}

impl Env {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let kafka = TestKafka::new().await;
        let state_dir = std::env::temp_dir().join(format!("binlog-relay-it-{}", kafka.prefix));
        let _ = std::fs::remove_dir_all(&state_dir);
        // Every relay needs its own replica id: the server drops a second
        // connection with the same one.
        let server_id = 100_000 + (rand_u32() % 1_000_000_000);
        Self {
            db,
            kafka,
            state_dir,
            server_id,
        }
    }

    pub fn settings(&self) -> Settings {
        Settings {
            dev: true,
            mysql: MysqlSettings {
                url: Some(SecretString::from(self.db.url.clone())),
                max_connections: Some(3),
            },
            kafka: KafkaSettings {
                brokers: self.kafka.brokers.clone(),
                topic_prefix: self.kafka.prefix.clone(),
                ..KafkaSettings::default()
            },
            admin: AdminSettings {
                addr: "127.0.0.1:0".parse().expect("addr"),
            },
            server_id: self.server_id,
            state_dir: self.state_dir.clone(),
            filter: Filter {
                include_databases: vec![self.db.name.clone()],
                ..Filter::default()
            },
            heartbeat_interval: Duration::from_millis(500),
            checkpoint_interval: Duration::from_millis(50),
            topic_partitions: 1,
            retry_backoff: Duration::from_millis(200),
            ..Settings::default()
        }
    }

    pub fn topic(&self, table: &str) -> String {
        cdc_event::topic::topic_for(&self.kafka.prefix, &self.db.name, table)
    }

    pub fn tx_topic(&self) -> String {
        cdc_event::topic::transaction_topic(&self.kafka.prefix)
    }

    /// Creates the topics of `tables` (one partition each, so order is total) and the transaction topic.
    pub async fn create_topics(&self, tables: &[&str]) {
        let mut names: Vec<String> = tables.iter().map(|t| self.topic(t)).collect();
        names.push(self.tx_topic());
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.kafka.create_topics(&refs, 1).await;
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.db.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs statements in one transaction.
    pub async fn exec_tx(&self, stmts: &[&str]) {
        let mut tx = self.db.pool.begin().await.expect("begin");
        for s in stmts {
            sqlx::query(sqlx::AssertSqlSafe((*s).to_owned()))
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        tx.commit().await.expect("commit");
    }

    /// The server's current end of binlog as `file:pos`.
    pub async fn binlog_end(&self) -> String {
        let logs = binlog_relay::source::binary_logs(&self.db.pool)
            .await
            .expect("show binary logs");
        let (f, s) = logs.last().expect("a binlog file").clone();
        format!("{f}:{s}")
    }

    pub async fn start(&self, opts: RunOptions) -> Running {
        self.start_with(self.settings(), opts).await
    }

    pub async fn start_with(&self, settings: Settings, opts: RunOptions) -> Running {
        let app = Application::build(settings, opts)
            .await
            .expect("relay builds");
        let port = app.admin_port();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let running = Running {
            stop: Some(tx),
            handle,
            port,
        };
        // Ready = connected to the binlog; changes from now on are seen.
        let port = running.port;
        testkit::eventually(DEADLINE, "relay ready", || async move {
            http_get(port, "/readyz")
                .await
                .filter(|(code, _)| *code == 200)
                .map(|_| ())
        })
        .await;
        running
    }

    pub async fn cleanup(self) {
        let _ = std::fs::remove_dir_all(&self.state_dir);
        self.kafka.delete_topics().await;
        self.db.drop_db().await;
    }
}

/// A relay running in a task.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<binlog_relay::Result<()>>,
    pub port: u16,
}

impl Running {
    /// Asks it to stop and waits; returns its result.
    pub async fn stop(mut self) -> binlog_relay::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("relay stops in time")
            .expect("relay task")
    }

    pub async fn status(&self) -> Value {
        let (_, body) = http_get(self.port, "/status")
            .await
            .expect("status answers");
        serde_json::from_str(&body).expect("status is json")
    }
}

fn rand_u32() -> u32 {
    let s = testkit::unique_suffix();
    s.bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}

/// A minimal HTTP GET (no client crate needed for the admin port).
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // The admin server may answer chunked; strip chunk size lines for JSON bodies.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    Some((code, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Reads `topics` (every partition) from the beginning until `done` holds
/// for the messages so far, or panics after the deadline. Messages of one
/// partition keep their order; partitions interleave.
pub async fn consume_until(
    env: &Env,
    topics: &[String],
    what: &str,
    done: impl Fn(&[Msg]) -> bool,
) -> Vec<Msg> {
    consume_within(env, topics, DEADLINE, what, done).await
}

/// [`consume_until`] with its own deadline.
pub async fn consume_within(
    env: &Env,
    topics: &[String],
    deadline: Duration,
    what: &str,
    done: impl Fn(&[Msg]) -> bool,
) -> Vec<Msg> {
    let consumer: StreamConsumer = env
        .kafka
        .client_config()
        .set("group.id", &env.kafka.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // What sinks and the syncer see: committed transactions only.
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        let partitions = consumer
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .ok()
            .and_then(|md| md.topics().first().map(|t| t.partitions().len()))
            .filter(|n| *n > 0)
            .unwrap_or(1);
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(t, p, Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let start = std::time::Instant::now();
    // `done` may look at every message; asking it after each one would make
    // a 100,000-message read quadratic. Ask after geometric steps, and
    // whenever the topic goes quiet.
    let mut next_check = 0;
    let mut idle = false;
    loop {
        if (idle || got.len() >= next_check) && done(&got) {
            return got;
        }
        if got.len() >= next_check {
            next_check = got.len() + (got.len() / 8).max(1);
        }
        idle = false;
        let left = deadline.saturating_sub(start.elapsed());
        if left.is_zero() {
            panic!(
                "not true after {deadline:?}: {what}; got {} messages, the last: {:#?}",
                got.len(),
                got.last()
            );
        }
        match tokio::time::timeout(left.min(Duration::from_millis(500)), consumer.recv()).await {
            Ok(Ok(m)) => {
                // Keys of the transaction topic are plain GTIDs, not JSON.
                let parse = |b: Option<&[u8]>| {
                    b.map(|b| {
                        serde_json::from_slice::<Value>(b).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(b).into_owned())
                        })
                    })
                };
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value
                                        .map(|v| String::from_utf8_lossy(v).into_owned())
                                        .unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                got.push(Msg {
                    topic: m.topic().to_owned(),
                    partition: m.partition(),
                    key: parse(m.key()),
                    value: parse(m.payload()),
                    headers,
                });
            }
            // The shared broker has slow moments; the deadline decides.
            Ok(Err(e)) => eprintln!("consume (retrying): {e}"),
            Err(_) => idle = true,
        }
    }
}
