//! Relay throughput benchmark (not a test): `cargo bench -p binlog-relay --bench relay`.
//!
//! Against the running local stack (or `SLUICE_MYSQL_URL` / `SLUICE_KAFKA_BROKERS`),
//! in one run it measures, for `BENCH_ROWS` rows (default 1,000,000) written
//! as multi-row batch inserts into a fresh database:
//! 1. decode-only: binlog read + decode + envelope serialisation, no publish;
//! 2. publish ceiling: the same number of envelope-sized messages from a bare
//!    idempotent rdkafka producer, acknowledged;
//! 3. relay: the full relay from the position before the inserts to the
//!    position after them (`--from … --until …`), every message acknowledged.
//!
//! Point `SLUICE_KAFKA_BROKERS` at a broker with in-memory or durable storage
//! to compare the two.

use std::time::{Duration, Instant};

use binlog_relay::config::Filter;
use binlog_relay::decode::{self, ChangeMeta};
use binlog_relay::position::{FilePos, StartFrom, StopAt};
use binlog_relay::schema::SchemaTracker;
use binlog_relay::source::{self, Flavor, SourceOptions, StreamStart};
use binlog_relay::{Application, RunOptions, Settings};
use cdc_event::Snapshot;
use common::config::{AdminSettings, KafkaSettings, MysqlSettings};
use futures::StreamExt;
use mysql_async::binlog::events::EventData;
use rdkafka::producer::{FutureProducer, FutureRecord};
use secrecy::SecretString;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = env_or("BENCH_ROWS", "1000000").parse()?;
    let server = env_or("SLUICE_MYSQL_URL", "mysql://root@127.0.0.1:3307");
    let brokers = env_or("SLUICE_KAFKA_BROKERS", "127.0.0.1:9092");
    let tag = format!("{}", std::process::id());
    let db = format!("relay_bench_{tag}");
    let admin_pool = sqlx::MySqlPool::connect(&server).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db}`")))
        .execute(&admin_pool)
        .await?;
    let url = format!("{server}/{db}");
    let pool = sqlx::MySqlPool::connect(&url).await?;
    sqlx::query(
        "CREATE TABLE counter (owner_id BIGINT UNSIGNED NOT NULL, kind TINYINT UNSIGNED NOT NULL, \
         value BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL, PRIMARY KEY (owner_id, kind))",
    )
    .execute(&pool)
    .await?;

    let from = source::current_position(&pool).await?;
    let t = Instant::now();
    let batch = 10_000u64;
    let mut done = 0u64;
    while done < rows {
        let n = batch.min(rows - done);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO counter SELECT seq, 1, seq, NOW(6) FROM seq_{}_to_{}",
            done + 1,
            done + n
        )))
        .execute(&pool)
        .await?;
        done += n;
    }
    let until = source::current_position(&pool).await?;
    println!(
        "wrote {rows} rows in {:.1}s ({from} .. {until})",
        t.elapsed().as_secs_f64()
    );

    // 1. decode-only
    let t = Instant::now();
    let opts = SourceOptions {
        url: SecretString::from(url.clone()),
        server_id: 900_000 + std::process::id() % 100_000,
        flavor: Flavor::MariaDb,
        heartbeat: Duration::from_secs(5),
        non_blocking: true,
    };
    let mut stream = source::open(&opts, &StreamStart::FilePos(from.clone())).await?;
    let mut schema = SchemaTracker::new(Some(pool.clone()));
    let mut decoded = 0u64;
    let mut bytes = 0usize;
    let mut file = from.file.clone();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if FilePos::new(file.clone(), u64::from(ev.header().log_pos())) > until
            && ev.header().log_pos() != 0
        {
            break;
        }
        match ev.read_data()? {
            Some(EventData::RotateEvent(r)) => file = source::rotate_file_name(r.name_raw()),
            Some(EventData::RowsEvent(r)) => {
                let Some(tme) = stream.get_tme(r.table_id()) else {
                    continue;
                };
                if tme.database_name() != db {
                    continue;
                }
                let info = schema.table_info(tme).await?;
                let changes = decode::decode_rows(&info, decode::op_of(&r), r.rows(tme))?;
                for (i, c) in changes.into_iter().enumerate() {
                    let e = decode::envelope(
                        &info,
                        c,
                        ChangeMeta {
                            name: "bench",
                            server_id: 1,
                            gtid: None,
                            file: &file,
                            pos: 0,
                            ts_ms: 0,
                            row: i as u32,
                            snapshot: Snapshot::False,
                            thread: None,
                            transaction: None,
                            now_ms: 0,
                        },
                    );
                    bytes += serde_json::to_vec(&e)?.len();
                    decoded += 1;
                }
            }
            _ => {}
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let avg = bytes / decoded.max(1) as usize;
    println!(
        "decode-only: {decoded} rows in {secs:.2}s = {:.0} rows/s (avg envelope {avg} B)",
        decoded as f64 / secs
    );

    // 2. publish ceiling
    let topic = format!("bench_{tag}.ceiling");
    let admin = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()?;
    binlog_relay::sink::create_topics(&admin, &[topic.as_str()], 4).await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let payload = vec![b'x'; avg];
    let t = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..decoded {
        let key = format!("{{\"owner_id\":{i},\"kind\":1}}");
        let mut rec = FutureRecord::to(&topic).key(&key).payload(&payload);
        loop {
            match producer.send_result(rec) {
                Ok(f) => {
                    pending.push_back(f);
                    break;
                }
                Err((_, back)) => {
                    rec = back;
                    if let Some(f) = pending.pop_front() {
                        let _ = f.await;
                    }
                }
            }
        }
    }
    for f in pending {
        f.await?.map_err(|(e, _)| e)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let ceiling = decoded as f64 / secs;
    println!("publish ceiling: {decoded} msgs in {secs:.2}s = {ceiling:.0} msg/s");

    // 3. the relay, from..until, every message acknowledged
    let state = std::env::temp_dir().join(format!("relay-bench-{tag}"));
    let settings = Settings {
        dev: true,
        mysql: MysqlSettings {
            url: Some(SecretString::from(url.clone())),
            max_connections: Some(3),
        },
        kafka: KafkaSettings {
            brokers: brokers.clone(),
            topic_prefix: format!("bench_{tag}"),
        },
        admin: AdminSettings {
            addr: "127.0.0.1:0".parse()?,
        },
        server_id: 800_000 + std::process::id() % 100_000,
        state_dir: state.clone(),
        filter: Filter {
            include_databases: vec![db.clone()],
            ..Filter::default()
        },
        ..Settings::default()
    };
    let app = Application::build(
        settings,
        RunOptions {
            from: Some(StartFrom::FilePos(from)),
            until: Some(StopAt::FilePos(until)),
            ..RunOptions::default()
        },
    )
    .await?;
    let t = Instant::now();
    app.run_until_stopped(std::future::pending()).await?;
    let secs = t.elapsed().as_secs_f64();
    let relay = decoded as f64 / secs;
    println!(
        "relay: {decoded} rows in {secs:.2}s = {relay:.0} rows/s ({:.0}% of the publish ceiling)",
        100.0 * relay / ceiling
    );

    let _ = std::fs::remove_dir_all(state);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE `{db}`")))
        .execute(&admin_pool)
        .await?;
    Ok(())
}
