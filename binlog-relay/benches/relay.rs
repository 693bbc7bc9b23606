//! Relay throughput benchmark (not a test): `make bench-relay`
//! (`scripts/bench-relay.sh`), or `cargo bench -p binlog-relay --bench relay`
//! against brokers of your own.
//!
//! Against MariaDB (`SLUICE_MYSQL_URL`) it writes two workloads into a fresh
//! database, each into a binlog range of its own:
//! - **batch**: `BENCH_ROWS` rows (default 1,000,000) as 10,000-row
//!   `INSERT … SELECT` statements;
//! - **mixed**: `BENCH_TXS` (default 20,000) small transactions from 4
//!   writers, each a follow-shaped write (one `follow` row inserted, updated
//!   or soft-deleted, plus two `counter` upserts: 3 rows).
//!
//! Then, in one run:
//! 1. decode-only (batch, then mixed): binlog read + decode + envelope, key
//!    and change time, no publish — with the relay's fast decoder and, for
//!    comparison, the general one (row maps); next to `mariadb-binlog --read-from-remote-server --verbose
//!    --base64-output=decode-rows` over the same binlog range;
//! 2. for each broker of `BENCH_BROKERS` (`name=host:port,…`, default
//!    `kafka=$SLUICE_KAFKA_BROKERS`):
//!    - publish ceiling: as many envelope-sized messages as the batch has
//!      rows, from a bare idempotent rdkafka producer, all acknowledged;
//!    - the relay over the batch range and over the mixed range
//!      (`--from … --until …`, every message acknowledged), rows/s, first
//!      at-least-once (`exactly_once.mode = off`), then through Kafka
//!      transactions (`on`, every transaction committed).
//!
//!    `BENCH_BROKERS=` (empty) measures decoding only, e.g. under a profiler.
//!
//! Output: one line per measurement, and with `BENCH_JSON=1` a JSON summary.

use std::time::{Duration, Instant};

use binlog_relay::config::Filter;
use binlog_relay::config::{ExactlyOnceMode, ExactlyOnceSettings};
use binlog_relay::decode::{self, ChangeMeta};
use binlog_relay::fastrow;
use binlog_relay::format::{self, Format};
use binlog_relay::image;
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
use serde_json::json;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// A binlog range and the row changes in it.
struct Range {
    from: FilePos,
    until: FilePos,
    rows: u64,
}

async fn exec(pool: &sqlx::MySqlPool, sql: String) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

async fn write_batch(pool: &sqlx::MySqlPool, rows: u64) -> anyhow::Result<Range> {
    exec(pool, "FLUSH BINARY LOGS".into()).await?;
    let from = source::current_position(pool).await?;
    let t = Instant::now();
    let batch = 10_000u64;
    let mut done = 0u64;
    while done < rows {
        let n = batch.min(rows - done);
        exec(
            pool,
            format!(
                "INSERT INTO counter SELECT seq, 1, seq, NOW(6) FROM seq_{}_to_{}",
                done + 1,
                done + n
            ),
        )
        .await?;
        done += n;
    }
    let until = source::current_position(pool).await?;
    println!(
        "batch: wrote {rows} rows in {:.1}s ({from} .. {until})",
        t.elapsed().as_secs_f64()
    );
    Ok(Range { from, until, rows })
}

/// `txs` follow-shaped transactions from 4 writers over 1,000 users.
async fn write_mixed(pool: &sqlx::MySqlPool, txs: u64) -> anyhow::Result<Range> {
    exec(pool, "FLUSH BINARY LOGS".into()).await?;
    let from = source::current_position(pool).await?;
    let t = Instant::now();
    let writers = 4u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut rows = 0u64;
            for i in 0..txs / writers {
                let n = w * (txs / writers) + i;
                let (from_id, to_id) = (n % 1000 + 1, (n * 7 + 3) % 1000 + 1);
                let mut tx = pool.begin().await?;
                // Insert the pair, or flip its deleted_at when it exists.
                sqlx::query(
                    "INSERT INTO follow (from_id, to_id, created_at) VALUES (?, ?, NOW(6)) \
                     ON DUPLICATE KEY UPDATE deleted_at = IF(deleted_at IS NULL, NOW(6), NULL)",
                )
                .bind(from_id)
                .bind(to_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO counter (owner_id, kind, value, updated_at) \
                     VALUES (?, 1, 1, NOW(6)), (?, 2, 1, NOW(6)) \
                     ON DUPLICATE KEY UPDATE value = value + 1, updated_at = NOW(6)",
                )
                .bind(from_id + 10_000_000)
                .bind(to_id + 10_000_000)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                rows += 3;
            }
            anyhow::Ok(rows)
        }));
    }
    let mut rows = 0;
    for t in tasks {
        rows += t.await??;
    }
    let until = source::current_position(pool).await?;
    println!(
        "mixed: wrote {} transactions ({rows} rows) in {:.1}s ({from} .. {until})",
        txs / writers * writers,
        t.elapsed().as_secs_f64()
    );
    Ok(Range { from, until, rows })
}

/// Reads and decodes `range` without publishing, the relay's work per row:
/// the Debezium envelope, the key and the change time; with `general` the
/// general decoder (row maps) instead of the fast one. (rows, avg envelope
/// bytes, rows/s).
async fn decode_only(
    url: &str,
    db: &str,
    range: &Range,
    general: bool,
) -> anyhow::Result<(u64, usize, f64)> {
    let pool = sqlx::MySqlPool::connect(url).await?;
    let t = Instant::now();
    let opts = SourceOptions {
        url: SecretString::from(url.to_owned()),
        server_id: 900_000 + std::process::id() % 100_000,
        flavor: Flavor::MariaDb,
        heartbeat: Duration::from_secs(5),
        non_blocking: true,
    };
    let mut stream = source::open(&opts, &StreamStart::FilePos(range.from.clone())).await?;
    let mut schema = SchemaTracker::new(Some(pool), Default::default());
    let mut decoded = 0u64;
    let mut bytes = 0usize;
    let mut file = range.from.file.clone();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if FilePos::new(file.clone(), u64::from(ev.header().log_pos())) > range.until
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
                let info = schema
                    .table_info(tme, &FilePos::new(file.clone(), 0))
                    .await?;
                let op = decode::op_of(&r);
                let meta = |i: usize| ChangeMeta {
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
                };
                let fast = match (&info.wire, general) {
                    (Some(wire), false) => fastrow::decode(&info, wire, &r)?,
                    _ => None,
                };
                if let Some(fast) = fast {
                    for i in 0..fast.len() {
                        let (before, after) = fast.change(i);
                        let key = fast
                            .image(i, op)
                            .and_then(|img| format::key(Format::Debezium, &info, &img));
                        let at = after
                            .or(before)
                            .and_then(|img| image::change_time_us(&info, &img));
                        let payload =
                            format::debezium(&info, op, before.as_ref(), after.as_ref(), &meta(i));
                        bytes += payload.bytes.len();
                        std::hint::black_box((key, at));
                        decoded += 1;
                    }
                    continue;
                }
                let changes = decode::decode_rows(&info, op, r.rows(tme))?;
                for (i, c) in changes.into_iter().enumerate() {
                    let key = c
                        .image()
                        .and_then(|img| format::key(Format::Debezium, &info, img));
                    let at = c
                        .after
                        .as_ref()
                        .or(c.before.as_ref())
                        .and_then(|img| image::change_time_us(&info, img));
                    let payload = format::encode(Format::Debezium, &info, c, meta(i), 0)?;
                    bytes += payload.bytes.len();
                    std::hint::black_box((key, at));
                    decoded += 1;
                }
            }
            _ => {}
        }
    }
    let secs = t.elapsed().as_secs_f64();
    Ok((
        decoded,
        bytes / decoded.max(1) as usize,
        decoded as f64 / secs,
    ))
}

/// `mariadb-binlog` decoding the same range to text; rows/s, or None when
/// the tool is missing or the range spans files.
fn mariadb_binlog(port: &str, range: &Range) -> Option<f64> {
    if range.from.file != range.until.file {
        println!("mariadb-binlog: skipped (the range spans binlog files)");
        return None;
    }
    let t = Instant::now();
    let status = std::process::Command::new("mariadb-binlog")
        .args([
            "--no-defaults",
            "--read-from-remote-server",
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--user=root",
            "--verbose",
            "--base64-output=decode-rows",
            &format!("--start-position={}", range.from.pos),
            &format!("--stop-position={}", range.until.pos),
            &range.from.file,
        ])
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Some(range.rows as f64 / t.elapsed().as_secs_f64()),
        other => {
            println!("mariadb-binlog: failed ({other:?})");
            None
        }
    }
}

/// Deletes the topics this run wrote (names starting with `prefix`): each
/// run leaves about 750 MB of messages behind otherwise, more than a few
/// runs' worth of the machine's free disk.
async fn delete_bench_topics(brokers: &str, prefix: &str) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let admin: rdkafka::admin::AdminClient<_> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let meta: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let names: Vec<String> = meta
        .fetch_metadata(None, Duration::from_secs(10))?
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if !names.is_empty() {
        admin
            .delete_topics(&names, &rdkafka::admin::AdminOptions::new())
            .await?;
    }
    Ok(())
}

async fn publish_ceiling(brokers: &str, topic: &str, n: u64, avg: usize) -> anyhow::Result<f64> {
    let admin = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    binlog_relay::sink::create_topics(&admin, &[topic], 4).await?;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let payload = vec![b'x'; avg];
    let t = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for i in 0..n {
        let key = format!("{{\"owner_id\":{i},\"kind\":1}}");
        let mut rec = FutureRecord::to(topic).key(&key).payload(&payload);
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
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// The relay over `range` into `brokers`, exactly-once `on` or `off`; rows/s.
async fn relay(
    url: &str,
    db: &str,
    brokers: &str,
    prefix: &str,
    range: &Range,
    exactly_once: ExactlyOnceMode,
) -> anyhow::Result<f64> {
    let state = std::env::temp_dir().join(format!("relay-bench-{prefix}"));
    let settings = Settings {
        dev: true,
        mysql: MysqlSettings {
            url: Some(SecretString::from(url.to_owned())),
            max_connections: Some(3),
        },
        kafka: KafkaSettings {
            brokers: brokers.to_owned(),
            topic_prefix: prefix.to_owned(),
            ..KafkaSettings::default()
        },
        admin: AdminSettings {
            addr: "127.0.0.1:0".parse()?,
        },
        server_id: 800_000 + std::process::id() % 100_000,
        state_dir: state.clone(),
        filter: Filter {
            include_databases: vec![db.to_owned()],
            ..Filter::default()
        },
        // `BENCH_RELAY_PRODUCER=linger.ms=5,…`: producer properties to try.
        producer: env_or("BENCH_RELAY_PRODUCER", "")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        exactly_once: ExactlyOnceSettings {
            mode: exactly_once,
            // `BENCH_COMMIT_INTERVAL_MS=300`: another commit interval to try.
            commit_interval: Duration::from_millis(
                env_or("BENCH_COMMIT_INTERVAL_MS", "100").parse()?,
            ),
            ..ExactlyOnceSettings::default()
        },
        ..Settings::default()
    };
    let app = Application::build(
        settings,
        RunOptions {
            from: Some(StartFrom::FilePos(range.from.clone())),
            until: Some(StopAt::FilePos(range.until.clone())),
            ..RunOptions::default()
        },
    )
    .await?;
    let t = Instant::now();
    app.run_until_stopped(std::future::pending()).await?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(state);
    Ok(range.rows as f64 / secs)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: u64 = env_or("BENCH_ROWS", "1000000").parse()?;
    let txs: u64 = env_or("BENCH_TXS", "20000").parse()?;
    let server = env_or("SLUICE_MYSQL_URL", "mysql://root@127.0.0.1:3307");
    let port = env_or("SLUICE_MYSQL_PORT", "3307");
    let default_brokers = format!("kafka={}", env_or("SLUICE_KAFKA_BROKERS", "127.0.0.1:9092"));
    let brokers: Vec<(String, String)> = env_or("BENCH_BROKERS", &default_brokers)
        .split(',')
        .filter_map(|b| b.split_once('=').map(|(n, a)| (n.to_owned(), a.to_owned())))
        .collect();
    if brokers.is_empty() {
        println!("BENCH_BROKERS names no broker: decode-only");
    }
    let tag = format!("{}", std::process::id());
    let db = format!("relay_bench_{tag}");
    let admin_pool = sqlx::MySqlPool::connect(&server).await?;
    exec(&admin_pool, format!("CREATE DATABASE `{db}`")).await?;
    let url = format!("{server}/{db}");
    let pool = sqlx::MySqlPool::connect(&url).await?;
    exec(
        &pool,
        "CREATE TABLE counter (owner_id BIGINT UNSIGNED NOT NULL, kind TINYINT UNSIGNED NOT NULL, \
         value BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL, PRIMARY KEY (owner_id, kind))"
            .into(),
    )
    .await?;
    exec(
        &pool,
        "CREATE TABLE follow (from_id BIGINT UNSIGNED NOT NULL, to_id BIGINT UNSIGNED NOT NULL, \
         created_at DATETIME(6) NOT NULL, deleted_at DATETIME(6) NULL, PRIMARY KEY (from_id, to_id))"
            .into(),
    )
    .await?;

    let batch = write_batch(&pool, rows).await?;
    let mixed = write_mixed(&pool, txs).await?;

    let (decoded, avg, decode_rate) = decode_only(&url, &db, &batch, false).await?;
    println!(
        "decode-only (batch): {decoded} rows = {decode_rate:.0} rows/s (avg envelope {avg} B)"
    );
    let (_, _, general_rate) = decode_only(&url, &db, &batch, true).await?;
    println!("decode-only with the general decoder (batch): {general_rate:.0} rows/s");
    let tool = mariadb_binlog(&port, &batch);
    if let Some(r) = tool {
        println!("mariadb-binlog --verbose --base64-output=decode-rows (batch): {r:.0} rows/s");
    }
    let (_, _, mixed_decode) = decode_only(&url, &db, &mixed, false).await?;
    println!("decode-only (mixed): {mixed_decode:.0} rows/s");
    let (_, _, mixed_general) = decode_only(&url, &db, &mixed, true).await?;
    println!("decode-only with the general decoder (mixed): {mixed_general:.0} rows/s");

    let mut per_broker = Vec::new();
    for (name, addr) in &brokers {
        let ceiling =
            publish_ceiling(addr, &format!("bench_{tag}_{name}.ceiling"), decoded, avg).await?;
        println!("[{name}] publish ceiling: {decoded} msgs = {ceiling:.0} msg/s");
        let off = ExactlyOnceMode::Off;
        let b = relay(
            &url,
            &db,
            addr,
            &format!("bench_{tag}_{name}_b"),
            &batch,
            off,
        )
        .await?;
        println!(
            "[{name}] relay, batch inserts: {} rows = {b:.0} rows/s ({:.0}% of the ceiling)",
            batch.rows,
            100.0 * b / ceiling
        );
        let m = relay(
            &url,
            &db,
            addr,
            &format!("bench_{tag}_{name}_m"),
            &mixed,
            off,
        )
        .await?;
        println!(
            "[{name}] relay, small mixed transactions: {} rows = {m:.0} rows/s",
            mixed.rows
        );
        // Exactly-once: the same ranges through Kafka transactions.
        let on = ExactlyOnceMode::On;
        let bt = relay(
            &url,
            &db,
            addr,
            &format!("bench_{tag}_{name}_bt"),
            &batch,
            on,
        )
        .await?;
        println!(
            "[{name}] relay, batch inserts, exactly-once: {} rows = {bt:.0} rows/s ({:.0}% of the ceiling, {:.0}% of at-least-once)",
            batch.rows,
            100.0 * bt / ceiling,
            100.0 * bt / b
        );
        let mt = relay(
            &url,
            &db,
            addr,
            &format!("bench_{tag}_{name}_mt"),
            &mixed,
            on,
        )
        .await?;
        println!(
            "[{name}] relay, small mixed transactions, exactly-once: {} rows = {mt:.0} rows/s ({:.0}% of at-least-once)",
            mixed.rows,
            100.0 * mt / m
        );
        delete_bench_topics(addr, &format!("bench_{tag}_")).await?;
        per_broker.push(json!({
            "broker": name, "ceiling_msgs_per_s": ceiling.round(),
            "relay_batch_rows_per_s": b.round(), "relay_mixed_rows_per_s": m.round(),
            "relay_share_of_ceiling": (b / ceiling * 100.0).round(),
            "relay_exactly_once_batch_rows_per_s": bt.round(),
            "relay_exactly_once_mixed_rows_per_s": mt.round(),
        }));
    }
    if std::env::var("BENCH_JSON").is_ok_and(|v| v == "1") {
        println!(
            "{}",
            json!({
                "batch_rows": batch.rows, "mixed_rows": mixed.rows,
                "decode_only_rows_per_s": decode_rate.round(),
                "decode_only_mixed_rows_per_s": mixed_decode.round(),
                "decode_only_general_rows_per_s": general_rate.round(),
                "decode_only_general_mixed_rows_per_s": mixed_general.round(),
                "mariadb_binlog_rows_per_s": tool.map(f64::round),
                "avg_envelope_bytes": avg, "brokers": per_broker,
            })
        );
    }

    exec(&admin_pool, format!("DROP DATABASE `{db}`")).await?;
    Ok(())
}
