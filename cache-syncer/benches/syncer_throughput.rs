//! Throughput benchmark (not a test): change events applied per second to
//! Redis and MySQL from a pre-filled topic.
//!
//! Fills a fresh topic with `BENCH_EVENTS` (200,000) counter-change envelopes
//! as the relay writes them (key, `sluice.seq` header), over
//! `BENCH_OWNERS` (50,000) users with both counter kinds, then starts a
//! syncer group member and times its pipelined `run` loop from the end of
//! the first batch to the last event applied (Redis pipeline + user-column
//! UPDATEs + offset store). The
//! apply path alone (no Kafka) is timed on the same events for comparison.
//!
//! `BENCH_MEMBERS=N` (default 1) runs N syncers in one consumer group (in
//! this process) over the topic's 6 partitions; the clock then starts once
//! every member holds partitions and the group covers all of them, and
//! stops when the positions the members recorded cover every event.
//!
//! The `counter` table holds each counter's last value, as after the
//! writes that produced the events: the user columns are read from it.
//!
//! Run: `make bench-syncer-throughput` (`scripts/bench-syncer.sh`: the
//! stack's Kafka broker, with the syncer's default consumer settings and
//! with `BENCH_CONSUMER`), `make bench-syncer-group` (1, 2 and 3 members),
//! or `cargo bench -p cache-syncer --bench syncer_throughput` against
//! `SLUICE_KAFKA_BROKERS`.

use std::time::{Duration, Instant};

use cache_syncer::apply::Record;
use cache_syncer::config::Settings;
use cache_syncer::consumer::{StatusHandle, SyncStatus, Syncer};
use cache_syncer::plan::{Change, Effect, plan};
use cdc_event::{ChangeEvent, Op, Snapshot, Source};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use secrecy::SecretString;
use testkit::{TestDb, TestKafka, TestRedis};

/// The machine's busy and total CPU time so far (`/proc/stat`, all cores,
/// in clock ticks): two readings give how many cores a stage kept busy.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    let total: u64 = fields.iter().take(8).sum();
    (total - idle, total)
}

/// Cores kept busy between `from` (a [`cpu_ticks`] reading) and now.
fn cores_busy(from: (u64, u64)) -> f64 {
    let (busy, total) = cpu_ticks();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    (busy - from.0) as f64 / ((total - from.1).max(1) as f64) * cores
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let events = env("BENCH_EVENTS", 200_000);
    let owners = env("BENCH_OWNERS", 50_000);
    let members = env("BENCH_MEMBERS", 1).max(1) as usize;
    let db = TestDb::new().await;
    let mut redis = TestRedis::new().await;
    let kafka = TestKafka::new().await;
    // Users exist, so the user-column UPDATEs do real work.
    for chunk in (1..=owners).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk.iter().map(|i| format!("({i},'u{i}','x')")).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO user (id, username, password_hash) VALUES {}",
            values.join(",")
        )))
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let mut settings = Settings::default();
    settings.mysql.url = Some(SecretString::from(db.url.clone()));
    settings.redis.url = Some(SecretString::from(redis.url.clone()));
    settings.redis.namespace = redis.namespace.clone();
    settings.kafka.brokers = kafka.brokers.clone();
    settings.kafka.topic_prefix = kafka.prefix.clone();
    settings.group_id = kafka.group.clone();
    settings.source_db = db.name.clone();
    // `BENCH_CONSUMER=fetch.max.bytes=8388608,…`: the `[consumer]` table.
    for kv in std::env::var("BENCH_CONSUMER")
        .unwrap_or_default()
        .split(',')
    {
        if let Some((k, v)) = kv.split_once('=') {
            settings.consumer.insert(k.trim().into(), v.trim().into());
        }
    }
    settings.validate().expect("bench settings");
    let mut topics = settings.topics();
    topics.push(cdc_event::topic::heartbeat_topic(&kafka.prefix));
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    kafka.create_topics(&refs, PARTITIONS).await;
    let topic = cdc_event::topic::topic_for(&kafka.prefix, &db.name, "counter");

    let envelopes: Vec<(String, ChangeEvent)> = (0..events)
        .map(|i| {
            let owner = 1 + (i * 7919) % owners;
            let kind = 1 + (i % 2) as u8;
            let row = serde_json::json!({"owner_id": owner, "kind": kind, "value": i / owners + 1,
                                         "updated_at": "2026-11-26T10:00:00.000000"});
            let event = ChangeEvent {
                before: None,
                after: Some(row.as_object().unwrap().clone()),
                source: Source {
                    version: "bench".into(),
                    connector: "sluice".into(),
                    name: kafka.prefix.clone(),
                    ts_ms: 0,
                    db: db.name.clone(),
                    table: "counter".into(),
                    server_id: 1,
                    gtid: None,
                    file: "mysql-bin.000001".into(),
                    pos: 4,
                    row: 0,
                    snapshot: Snapshot::False,
                    thread: None,
                },
                op: Op::Update,
                ts_ms: 0,
                transaction: None,
            };
            (format!(r#"{{"owner_id":{owner}}}"#), event)
        })
        .collect();
    // Each counter's last value, as the writes left the `counter` table.
    let mut last = std::collections::BTreeMap::new();
    for (_, e) in &envelopes {
        let after = e.after.as_ref().unwrap();
        last.insert(
            (
                after["owner_id"].as_u64().unwrap(),
                after["kind"].as_u64().unwrap(),
            ),
            after["value"].as_i64().unwrap(),
        );
    }
    let rows: Vec<String> = last
        .iter()
        .map(|((o, k), v)| format!("({o},{k},{v})"))
        .collect();
    for chunk in rows.chunks(1000) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO counter (owner_id, kind, value) VALUES {}",
            chunk.join(",")
        )))
        .execute(&db.pool)
        .await
        .unwrap();
    }

    let producer: FutureProducer = kafka
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let wire: Vec<(&str, Vec<u8>, String)> = envelopes
        .iter()
        .enumerate()
        .map(|(i, (key, event))| {
            (
                key.as_str(),
                serde_json::to_vec(event).unwrap(),
                (i + 1).to_string(),
            )
        })
        .collect();
    let (fill, fill_cpu) = (Instant::now(), cpu_ticks());
    for chunk in wire.chunks(10_000) {
        let sends = chunk.iter().map(|(key, payload, seq)| {
            let headers = OwnedHeaders::new().insert(Header {
                key: cdc_event::HEADER_SEQ,
                value: Some(seq.as_str()),
            });
            producer.send(
                FutureRecord::to(&topic)
                    .key(*key)
                    .payload(payload.as_slice())
                    .headers(headers),
                Duration::from_secs(60),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.expect("delivered");
        }
    }
    let (fill_secs, fill_cores) = (fill.elapsed().as_secs_f64(), cores_busy(fill_cpu));

    let applier = cache_syncer::startup::connect(&settings).await.unwrap();
    let (timed, consume_secs, consume_cores) = if members == 1 {
        one_member(&settings, &applier, events).await
    } else {
        group(&settings, &applier, &topic, events, members).await
    };

    // The apply path alone on the same events, from the state the syncer
    // started from: user columns at 0 and an empty Redis namespace. (Left
    // as the syncer wrote them, every UPDATE would find its rows already
    // right and write nothing, and the baseline would do less work.)
    let effects: Vec<Effect> = envelopes
        .iter()
        .flat_map(|(_, e)| plan(e).unwrap().effects)
        .collect();
    sqlx::query("UPDATE user SET follow_count = 0, follower_count = 0")
        .execute(&db.pool)
        .await
        .unwrap();
    redis.cleanup().await;
    let (apply, apply_cpu) = (Instant::now(), cpu_ticks());
    for chunk in effects.chunks(settings.batch_max) {
        applier.apply(chunk, &Record::default()).await.unwrap();
    }
    let (apply_secs, apply_cores) = (apply.elapsed().as_secs_f64(), cores_busy(apply_cpu));

    // The consuming side alone: the same fetch settings as the syncer, each
    // message decoded and planned, nothing applied (a fresh group).
    let mut cfg = cache_syncer::consumer::consumer_config(&settings);
    cfg.set("group.id", format!("{}-consume-only", kafka.group))
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = cfg.create().unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let first = consumer.recv().await.unwrap().detach();
    let (consume_only, consume_only_cpu) = (Instant::now(), cpu_ticks());
    let mut planned = usize::from(first.payload().is_some());
    for _ in 1..events {
        let m = consumer.recv().await.unwrap().detach();
        let change = Change::parse(m.payload().unwrap()).unwrap();
        planned += change.plan().unwrap().effects.len();
    }
    let (consume_only_secs, consume_only_cores) = (
        consume_only.elapsed().as_secs_f64(),
        cores_busy(consume_only_cpu),
    );
    assert!(planned >= events as usize);

    let n = events as f64;
    println!(
        "# syncer_throughput: {events} counter events over {owners} users x 2 kinds, batch_max {}, broker {}, consumer {:?}",
        settings.batch_max, kafka.brokers, settings.consumer
    );
    println!("| stage | seconds | events/s | cores busy (machine) |");
    println!("|---|---|---|---|");
    println!(
        "| fill the topic (producer, acks=all) | {fill_secs:.2} | {:.0} | {fill_cores:.2} |",
        n / fill_secs
    );
    println!(
        "| syncer, {members} member(s): consume + plan + apply + store offsets ({}) | {consume_secs:.2} | {:.0} | {consume_cores:.2} |",
        if members == 1 {
            "after the first batch"
        } else {
            "once the group holds every partition"
        },
        timed / consume_secs
    );
    println!(
        "| apply path only (Redis pipeline + user UPDATEs) | {apply_secs:.2} | {:.0} | {apply_cores:.2} |",
        n / apply_secs
    );
    println!(
        "| consume + plan only (no apply, after the first message) | {consume_only_secs:.2} | {:.0} | {consume_only_cores:.2} |",
        (n - 1.0) / consume_only_secs
    );
    redis.cleanup().await;
    db.drop_db().await;
    kafka.delete_topics().await;
}

/// Partitions of the bench's topics (as the local stack's).
const PARTITIONS: i32 = 6;

/// One member's pipelined `run`, the loop the binary uses, until every
/// event is applied. The first batch (joining the group takes seconds) is
/// not timed: the clock starts once it is done. Returns (events timed,
/// seconds, cores busy).
async fn one_member(
    settings: &Settings,
    applier: &cache_syncer::apply::Applier,
    events: u64,
) -> (f64, f64, f64) {
    let status: StatusHandle = std::sync::Arc::new(std::sync::Mutex::new(SyncStatus::default()));
    let syncer = Syncer::new(settings.clone(), applier.clone(), status.clone())
        .await
        .unwrap();
    let watch = status.clone();
    let running = tokio::spawn(syncer.run(async move {
        loop {
            if watch.lock().unwrap().events_applied >= events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }));
    let first = loop {
        let (done, applied) = {
            let st = status.lock().unwrap();
            (st.messages_done, st.events_applied)
        };
        if done > 0 {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (started, cpu) = (Instant::now(), cpu_ticks());
    running.await.unwrap().unwrap();
    let secs = started.elapsed().as_secs_f64();
    ((events - first) as f64, secs, cores_busy(cpu))
}

/// `members` syncers in one group. The clock starts once every member holds
/// partitions and together they hold all of them; it stops when the
/// positions the members recorded (`<ns>:{<ns>:syncer}:offsets`) cover every
/// event. Returns (events applied in between, seconds, cores busy).
async fn group(
    settings: &Settings,
    applier: &cache_syncer::apply::Applier,
    topic: &str,
    events: u64,
    members: usize,
) -> (f64, f64, f64) {
    use redis::AsyncCommands;
    let mut stops = Vec::new();
    let mut statuses = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..members {
        let status: StatusHandle =
            std::sync::Arc::new(std::sync::Mutex::new(SyncStatus::default()));
        let syncer = Syncer::new(settings.clone(), applier.clone(), status.clone())
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tasks.push(tokio::spawn(syncer.run(async move {
            let _ = stopped.await;
        })));
        stops.push(stop);
        statuses.push(status);
    }
    let mut redis = applier.redis.clone();
    let offsets_key = applier.keys.syncer_offsets();
    let prefix = format!("{topic}/");
    let wanted = prefix.clone();
    let mut recorded = async move || -> u64 {
        let all: std::collections::HashMap<String, u64> =
            redis.hgetall(&offsets_key).await.unwrap();
        all.iter()
            .filter(|(k, _)| k.starts_with(&wanted))
            .map(|(_, v)| *v)
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Every member holds partitions (of any topic; the assignor decides
        // how the bench topic's are shared) and the group holds all of
        // the bench topic's.
        let owned: Vec<(usize, usize)> = statuses
            .iter()
            .map(|s| {
                let st = s.lock().unwrap();
                let here = st.owned.iter().filter(|p| p.starts_with(&prefix)).count();
                (st.owned.len(), here)
            })
            .collect();
        if owned.iter().all(|(n, _)| *n > 0)
            && owned.iter().map(|(_, h)| h).sum::<usize>() == PARTITIONS as usize
        {
            println!(
                "# members' partitions of the bench topic: {:?}",
                owned.iter().map(|(_, h)| h).collect::<Vec<_>>()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group never settled: {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (from, started, cpu) = (recorded().await, Instant::now(), cpu_ticks());
    while recorded().await < events {
        assert!(
            Instant::now() < deadline + Duration::from_secs(600),
            "the group stalled"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (secs, cores) = (started.elapsed().as_secs_f64(), cores_busy(cpu));
    for s in stops {
        let _ = s.send(());
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    ((events - from) as f64, secs, cores)
}
