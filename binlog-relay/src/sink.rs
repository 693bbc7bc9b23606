//! The Kafka side: an idempotent producer (`enable.idempotence=true`,
//! `acks=all`), transactional when exactly-once is on (see [`crate::eos`]),
//! topic creation, and the acknowledgement tracker that decides when a
//! checkpoint may be saved.
//!
//! # At-least-once
//! Messages and checkpoint marks go through one ordered queue to the
//! [`Acker`]. It awaits every delivery in order; a mark is saved only once
//! every message queued before it was acknowledged. A failed delivery is
//! never skipped: the acker stops, the relay sees the error and resumes from
//! the last saved checkpoint.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::config::{ExactlyOnceMode, Settings};
use crate::error::{Error, Result};
use crate::metrics;

/// Headers every change message carries.
#[derive(Debug, Clone, Default)]
pub struct MessageHeaders<'a> {
    pub gtid: Option<&'a str>,
    /// `file:pos`.
    pub pos: &'a str,
    pub seq: u64,
    /// Part of an operator's replay (`sluice.replay: 1`).
    pub replay: bool,
    /// Not a header: when the change was made (µs since the epoch, from the
    /// row image), for the commit-to-acknowledgement histogram.
    pub changed_at_us: Option<i64>,
    /// W3C context of the source transaction's span (tracing on only).
    pub traceparent: Option<&'a str>,
}

impl MessageHeaders<'_> {
    fn to_owned_headers(&self) -> OwnedHeaders {
        let seq = self.seq.to_string();
        let mut h = OwnedHeaders::new_with_capacity(4);
        if let Some(g) = self.gtid {
            h = h.insert(Header {
                key: cdc_event::HEADER_GTID,
                value: Some(g),
            });
        }
        if let Some(tp) = self.traceparent {
            h = h.insert(Header {
                key: common::telemetry::TRACEPARENT,
                value: Some(tp),
            });
        }
        if self.replay {
            h = h.insert(Header {
                key: cdc_event::HEADER_REPLAY,
                value: Some("1"),
            });
        }
        h.insert(Header {
            key: cdc_event::HEADER_POS,
            value: Some(self.pos),
        })
        .insert(Header {
            key: cdc_event::HEADER_SEQ,
            value: Some(&seq),
        })
    }
}

/// Producer plus topic bookkeeping.
pub struct Sink {
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    known_topics: HashSet<String>,
    /// Partition counts of topics the relay picks partitions in
    /// ([`Sink::partition_count`]).
    partition_counts: HashMap<String, i32>,
    create_topics: bool,
    partitions: i32,
    /// Exactly-once on: the open Kafka transaction.
    txn: Option<Txn>,
}

/// The transactional producer's state (exactly-once on).
#[derive(Debug)]
struct Txn {
    /// `init_transactions` succeeded.
    started: bool,
    /// A Kafka transaction is open (begun at its first message).
    open: bool,
    /// Messages in the open transaction.
    messages: usize,
    last_commit: Instant,
    /// The last checkpoint committed with a transaction (or the start
    /// point): where the relay resumes after a transient error.
    committed: Option<Checkpoint>,
}

/// Longest wait for a transaction's commit or abort, and for
/// `init_transactions` (it may wait for a predecessor's transaction to be
/// aborted).
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// librdkafka settings shared by the producer and the admin client.
pub fn client_config(settings: &Settings) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    for (k, v) in settings.kafka.client_properties() {
        cfg.set(k, v);
    }
    cfg
}

impl Sink {
    /// The producer, transactional when [`Settings::wants_transactions`];
    /// [`Sink::start_transactions`] then makes it usable.
    pub fn new(settings: &Settings) -> Result<Self> {
        let transactional = settings.wants_transactions();
        let producer = Self::producer(settings, transactional)?;
        let admin = client_config(settings).create()?;
        Ok(Self {
            producer,
            admin,
            known_topics: HashSet::new(),
            partition_counts: HashMap::new(),
            create_topics: settings.create_topics,
            partitions: settings.topic_partitions,
            txn: transactional.then(|| Txn {
                started: false,
                open: false,
                messages: 0,
                last_commit: Instant::now(),
                committed: None,
            }),
        })
    }

    fn producer(settings: &Settings, transactional: bool) -> Result<FutureProducer> {
        let mut cfg = client_config(settings);
        if settings.idempotence {
            cfg.set("enable.idempotence", "true");
        } else {
            cfg.set("enable.idempotence", "false")
                .set("max.in.flight.requests.per.connection", "1");
        }
        cfg.set("acks", "all")
            // No artificial wait: librdkafka still batches while up to 5
            // requests are in flight, so bursts keep their throughput, and
            // an idle commit is acknowledged in ~2 ms instead of ~7 (measured
            // against the local broker; freshness and read-your-writes
            // budgets are tens of ms). Under a heavy write load `[producer]
            // linger.ms = 20` cuts the broker's work (one produce request
            // per row otherwise): on 2 cores it took 3 syncers from
            // 821-856 to 1,000 follow transactions/s, and cost commit →
            // Redis p50 34 → 97 ms at 100/s (BENCHMARKS.md, fifteenth session).
            .set("linger.ms", "0")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set("message.timeout.ms", "60000");
        for (k, v) in &settings.producer {
            cfg.set(k, v);
        }
        // Whatever `[producer]` says: every message acknowledged by all
        // replicas, and idempotence as configured.
        cfg.set("acks", "all").set(
            "enable.idempotence",
            if settings.idempotence {
                "true"
            } else {
                "false"
            },
        );
        if transactional {
            cfg.set("transactional.id", settings.transactional_id());
        }
        Ok(cfg.create()?)
    }

    /// Exactly-once: registers the transactional producer with the broker,
    /// which aborts what a predecessor of the same `transactional.id` left
    /// open and fences it. With `exactly_once.mode = auto` a broker that
    /// refuses falls back to the idempotent producer (logged); with `on`
    /// the refusal is the error.
    pub async fn start_transactions(&mut self, settings: &Settings) -> Result<()> {
        if !self.needs_start() {
            return Ok(());
        }
        let producer = self.producer.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || producer.init_transactions(TXN_TIMEOUT))
            .await
            .map_err(|e| Error::Delivery(format!("init_transactions: {e}")))?;
        match outcome {
            Ok(()) => {
                tracing::info!(
                    transactional_id = %settings.transactional_id(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "exactly-once: Kafka transactions on"
                );
                if let Some(t) = &mut self.txn {
                    t.started = true;
                }
                Ok(())
            }
            Err(e)
                if settings.exactly_once.mode == ExactlyOnceMode::Auto
                    && transactions_unsupported(&e) =>
            {
                tracing::warn!(error = %e, "exactly-once: the broker did not accept a transactional producer; publishing at-least-once with the idempotent producer (exactly_once.mode = auto)");
                self.producer = Self::producer(settings, false)?;
                self.txn = None;
                Ok(())
            }
            Err(e) => Err(match txn_error("init_transactions", e) {
                Error::Delivery(m) => Error::Delivery(format!(
                    "{m} (a broker that cannot host transactions? check its \
                     transaction.state.log.* settings, or set RELAY_EXACTLY_ONCE__MODE=off)"
                )),
                other => other,
            }),
        }
    }

    /// Exactly-once is wanted and `init_transactions` has not succeeded yet.
    pub fn needs_start(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| !t.started)
    }

    /// Whether messages go through Kafka transactions.
    pub fn transactional(&self) -> bool {
        self.txn.is_some()
    }

    /// A Kafka transaction is open.
    pub fn txn_open(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.open)
    }

    /// Messages in the open Kafka transaction.
    pub fn txn_messages(&self) -> usize {
        self.txn.as_ref().map_or(0, |t| t.messages)
    }

    /// Time since the last commit.
    pub fn since_commit(&self) -> Duration {
        self.txn
            .as_ref()
            .map_or(Duration::ZERO, |t| t.last_commit.elapsed())
    }

    /// The last checkpoint committed with a Kafka transaction (or set as
    /// the start point).
    pub fn committed(&self) -> Option<&Checkpoint> {
        self.txn.as_ref().and_then(|t| t.committed.as_ref())
    }

    /// Records `cp` as committed (the start point, or after a commit).
    pub fn set_committed(&mut self, cp: Checkpoint) {
        if let Some(t) = &mut self.txn {
            t.committed = Some(cp);
        }
    }

    /// Commits the open Kafka transaction. A failure the producer survives
    /// aborts the transaction and is transient (the relay resumes from the
    /// last committed checkpoint); a fenced producer is [`Error::Fenced`].
    pub async fn commit(&mut self) -> Result<()> {
        let Some(txn) = &mut self.txn else {
            return Ok(());
        };
        if !txn.open {
            return Ok(());
        }
        let producer = self.producer.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || {
            // rust-rdkafka's commit first flushes, and its flush sleeps
            // 100 ms whenever librdkafka still counts a message: it polls
            // a queue the producer's own thread drains. The relay waited
            // for every delivery already, but librdkafka forgets a message
            // only once its delivery report is dropped, just after the
            // relay saw it. Wait for that here, briefly, so the flush
            // finds nothing (this was the 100-200 ms tail of commits).
            let until = Instant::now() + Duration::from_secs(1);
            while producer.in_flight_count() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_micros(100));
            }
            producer.commit_transaction(TXN_TIMEOUT)
        })
        .await
        .map_err(|e| Error::Delivery(format!("commit_transaction: {e}")))?;
        match outcome {
            Ok(()) => {
                txn.open = false;
                txn.messages = 0;
                txn.last_commit = Instant::now();
                ::metrics::counter!(metrics::KAFKA_TRANSACTIONS_TOTAL, "outcome" => "commit")
                    .increment(1);
                ::metrics::histogram!(metrics::KAFKA_COMMIT_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                Ok(())
            }
            Err(e) => {
                let err = txn_error("commit_transaction", e);
                if !matches!(err, Error::Fenced(_)) {
                    self.abort().await;
                }
                Err(err)
            }
        }
    }

    /// Aborts the open Kafka transaction, if any: nothing of it becomes
    /// visible to `read_committed` readers. Failures are logged (a fenced
    /// producer cannot abort; its transaction was aborted by the one that
    /// fenced it).
    pub async fn abort(&mut self) {
        let Some(txn) = &mut self.txn else { return };
        if !txn.open {
            return;
        }
        let producer = self.producer.clone();
        let outcome =
            tokio::task::spawn_blocking(move || producer.abort_transaction(TXN_TIMEOUT)).await;
        match outcome {
            Ok(Ok(())) => {
                ::metrics::counter!(metrics::KAFKA_TRANSACTIONS_TOTAL, "outcome" => "abort")
                    .increment(1);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "aborting the Kafka transaction"),
            Err(e) => tracing::warn!(error = %e, "aborting the Kafka transaction"),
        }
        txn.open = false;
        txn.messages = 0;
    }

    /// Per partition of every row-change topic under `prefix`, the offset
    /// after its last message (its high watermark), asked of the broker.
    /// At start-up everything an earlier relay process had acknowledged is
    /// below these, so heartbeats that name them never let the syncer's
    /// watermark pass a change it has not applied.
    pub async fn row_topic_ends(&self, prefix: &str) -> Result<HashMap<(Arc<str>, i32), i64>> {
        let client = self.producer.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let timeout = Duration::from_secs(5);
            let md = client.client().fetch_metadata(None, timeout)?;
            let mut out = HashMap::new();
            for t in md.topics() {
                if cdc_event::topic::parse_table_topic(&prefix, t.name()).is_none() {
                    continue;
                }
                let name: Arc<str> = Arc::from(t.name());
                for p in t.partitions() {
                    let (_, high) = client
                        .client()
                        .fetch_watermarks(t.name(), p.id(), timeout)?;
                    out.insert((Arc::clone(&name), p.id()), high);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Stream(format!("topic ends: {e}")))?
    }

    /// Makes sure the compacted checkpoint topic of exactly-once exists
    /// (when topic creation is on): one partition, compacted, its segments
    /// rolled hourly so that compaction keeps it small.
    pub async fn ensure_checkpoint_topic(&mut self, topic: &str) -> Result<()> {
        if !self.create_topics || self.known_topics.contains(topic) {
            return Ok(());
        }
        create_checkpoint_topic(&self.admin, topic).await?;
        self.known_topics.insert(topic.to_owned());
        Ok(())
    }

    /// Makes sure the schema history topic exists (when topic creation is
    /// on): one partition, never deleted by time or size.
    pub async fn ensure_history_topic(&mut self, topic: &str) -> Result<()> {
        if !self.create_topics || self.known_topics.contains(topic) {
            return Ok(());
        }
        create_history_topic(&self.admin, topic).await?;
        self.known_topics.insert(topic.to_owned());
        Ok(())
    }

    /// Makes sure `topic` exists (when topic creation is on).
    pub async fn ensure_topic(&mut self, topic: &str, partitions: Option<i32>) -> Result<()> {
        if !self.create_topics || self.known_topics.contains(topic) {
            return Ok(());
        }
        create_topics(&self.admin, &[topic], partitions.unwrap_or(self.partitions)).await?;
        self.known_topics.insert(topic.to_owned());
        Ok(())
    }

    /// How many partitions `topic` has, asked of the broker once per topic
    /// (for rows whose partition the relay picks, see
    /// [`crate::format::partition`]). A topic the broker does not know yet
    /// (just created) is asked again for a few seconds; then the error is
    /// transient and the relay resumes from its checkpoint.
    pub async fn partition_count(&mut self, topic: &str) -> Result<i32> {
        if let Some(&n) = self.partition_counts.get(topic) {
            return Ok(n);
        }
        let client = self.producer.clone();
        let name = topic.to_owned();
        let n = tokio::task::spawn_blocking(move || {
            let mut last = String::new();
            for _ in 0..50 {
                match client
                    .client()
                    .fetch_metadata(Some(&name), Duration::from_secs(5))
                {
                    Ok(md) => {
                        let n = md
                            .topics()
                            .iter()
                            .find(|t| t.name() == name && t.error().is_none())
                            .map_or(0, |t| t.partitions().len());
                        if n > 0 {
                            return Ok(i32::try_from(n).unwrap_or(i32::MAX));
                        }
                        last = "no partitions yet".into();
                    }
                    Err(e) => last = e.to_string(),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(Error::Stream(format!(
                "partition count of topic {name}: {last}"
            )))
        })
        .await
        .map_err(|e| Error::Stream(format!("partition count: {e}")))??;
        self.partition_counts.insert(topic.to_owned(), n);
        Ok(n)
    }

    /// Hands one message to the producer, waiting while its queue is full
    /// (exactly-once: inside the open Kafka transaction, begun if needed).
    /// `partition`: the one the relay picked; `None` lets the partitioner
    /// place the message by its key.
    pub async fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&str>,
        payload: Option<&[u8]>,
        headers: &MessageHeaders<'_>,
    ) -> Result<DeliveryFuture> {
        let mut record: FutureRecord<'_, str, [u8]> =
            FutureRecord::to(topic).headers(headers.to_owned_headers());
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        if let Some(txn) = &mut self.txn {
            if !txn.open {
                self.producer
                    .begin_transaction()
                    .map_err(|e| txn_error("begin_transaction", e))?;
                txn.open = true;
            }
            txn.messages += 1;
        }
        loop {
            match self.producer.send_result(record) {
                Ok(f) => return Ok(f),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until every queued message was delivered or failed.
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer as _;
        let _ = self.producer.flush(timeout);
    }
}

/// The broker cannot (or may not) run transactions: `auto` falls back.
fn transactions_unsupported(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::UnsupportedVersion
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
        )
    )
}

/// A transaction call's error: [`Error::Fenced`] when the producer can no
/// longer be used (another relay of this name fenced it), else a transient
/// delivery error.
fn txn_error(what: &str, e: KafkaError) -> Error {
    match &e {
        KafkaError::Transaction(r) if r.is_fatal() => Error::Fenced(format!(
            "{what}: {e} (another relay with this transactional.id took over)"
        )),
        _ => Error::Delivery(format!("{what}: {e}")),
    }
}

/// Creates topics, tolerating ones that already exist.
pub async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    names: &[&str],
    partitions: i32,
) -> Result<()> {
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    create(admin, &topics).await
}

/// Creates `topics`, tolerating existing ones.
async fn create(admin: &AdminClient<DefaultClientContext>, topics: &[NewTopic<'_>]) -> Result<()> {
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in admin.create_topics(topics.iter(), &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Delivery(format!("creating topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

/// Creates the compacted checkpoint topic of exactly-once, tolerating an
/// existing one.
pub async fn create_checkpoint_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> Result<()> {
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "3600000")
        .set("min.cleanable.dirty.ratio", "0.1");
    create(admin, &[topic]).await
}

/// Creates the schema history topic, tolerating an existing one: one
/// partition (records in binlog order), kept forever (a replay from any
/// position needs every record before it).
pub async fn create_history_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> Result<()> {
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "delete")
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1");
    create(admin, &[topic]).await
}

/// One entry of the ordered acknowledgement queue.
pub enum AckItem {
    /// A message, its topic, when it was handed to the producer, and when
    /// its change was made (µs since the epoch), if known.
    Message(DeliveryFuture, Arc<str>, Instant, Option<i64>),
    /// Everything before this point is part of complete transactions.
    Mark(Checkpoint),
    /// Exactly-once: answers, once every message queued before it was
    /// acknowledged, with the offsets after the last of them per partition.
    Offsets(tokio::sync::oneshot::Sender<HashMap<(Arc<str>, i32), i64>>),
}

/// The checkpoint state shared with `/status`.
#[derive(Debug, Clone, Default)]
pub struct AckState {
    /// Last checkpoint written to disk.
    pub saved: Option<Checkpoint>,
    /// Messages acknowledged so far in this process.
    pub acked: u64,
    /// Latest transaction boundary behind which every message is
    /// acknowledged (saved to disk or not yet); heartbeats publish it.
    pub acked_mark: Option<Checkpoint>,
    /// At `acked_mark`: per (topic, partition), the offset after the last
    /// acknowledged message. Heartbeats publish it with the mark.
    pub acked_offsets: HashMap<(Arc<str>, i32), i64>,
}

/// Awaits deliveries in order and saves checkpoints behind them.
pub struct Acker {
    tx: mpsc::Sender<AckItem>,
    failed: watch::Receiver<Option<String>>,
    handle: JoinHandle<Result<()>>,
}

impl Acker {
    /// Starts the tracker. `store` is `None` in dry-run mode (nothing saved).
    pub fn spawn(
        store: Option<CheckpointStore>,
        interval: Duration,
        state: Arc<Mutex<AckState>>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<AckItem>(100_000);
        let (fail_tx, failed) = watch::channel(None);
        let handle = tokio::spawn(async move {
            let latency = ::metrics::histogram!(metrics::PUBLISH_LATENCY_SECONDS);
            let freshness = ::metrics::histogram!(metrics::COMMIT_TO_ACK_SECONDS);
            let saves = ::metrics::counter!(metrics::CHECKPOINTS_TOTAL);
            let mut pending: Option<Checkpoint> = None;
            // Offsets acknowledged so far, published at each mark: carried
            // over from before a reconnect (and from the topics' ends at
            // start-up), so no partition written earlier drops out.
            let mut seen: HashMap<(Arc<str>, i32), i64> = state
                .lock()
                .map(|s| s.acked_offsets.clone())
                .unwrap_or_default();
            let mut last_save = Instant::now();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let save = async |cp: &mut Option<Checkpoint>| -> Result<()> {
                if let (Some(store), Some(c)) = (&store, cp.take()) {
                    let mut c = c;
                    c.saved_at_ms = chrono::Utc::now().timestamp_millis();
                    store.save(&c).await?;
                    saves.increment(1);
                    if let Ok(mut s) = state.lock() {
                        s.saved = Some(c);
                    }
                }
                Ok(())
            };
            loop {
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(AckItem::Message(fut, topic, sent, changed_at_us)) => {
                            let outcome = match fut.await {
                                Ok(Ok(d)) => {
                                    seen.insert((topic, d.partition), d.offset + 1);
                                    Ok(())
                                }
                                Ok(Err((e, _))) => Err(e.to_string()),
                                Err(_) => Err("the producer dropped the message".to_owned()),
                            };
                            if let Err(reason) = outcome {
                                let _ = fail_tx.send(Some(reason.clone()));
                                // Save what was fully acknowledged before the failure.
                                return Err(Error::Delivery(reason));
                            }
                            latency.record(sent.elapsed().as_secs_f64());
                            if let Some(at) = changed_at_us {
                                let now = chrono::Utc::now().timestamp_micros();
                                freshness.record((now - at).max(0) as f64 / 1e6);
                            }
                            if let Ok(mut s) = state.lock() {
                                s.acked += 1;
                            }
                        }
                        Some(AckItem::Offsets(reply)) => {
                            let _ = reply.send(seen.clone());
                        }
                        Some(AckItem::Mark(cp)) => {
                            if let Ok(mut s) = state.lock() {
                                s.acked_mark = Some(cp.clone());
                                s.acked_offsets.clone_from(&seen);
                            }
                            pending = Some(cp);
                            if last_save.elapsed() >= interval {
                                save(&mut pending).await?;
                                last_save = Instant::now();
                            }
                        }
                        None => {
                            save(&mut pending).await?;
                            return Ok(());
                        }
                    },
                    _ = tick.tick() => {
                        if pending.is_some() && last_save.elapsed() >= interval {
                            save(&mut pending).await?;
                            last_save = Instant::now();
                        }
                    }
                }
            }
        });
        Self { tx, failed, handle }
    }

    /// Queues an item; fails when the tracker stopped (a delivery failed).
    pub async fn push(&self, item: AckItem) -> Result<()> {
        if let Some(reason) = self.failed.borrow().clone() {
            return Err(Error::Delivery(reason));
        }
        self.tx.send(item).await.map_err(|_| self.failure())
    }

    fn failure(&self) -> Error {
        Error::Delivery(
            self.failed
                .borrow()
                .clone()
                .unwrap_or_else(|| "the acknowledgement tracker stopped".into()),
        )
    }

    /// Exactly-once: the offsets after the last acknowledged message per
    /// partition, once everything queued so far is acknowledged.
    pub async fn offsets(&self) -> Result<HashMap<(Arc<str>, i32), i64>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.push(AckItem::Offsets(tx)).await?;
        rx.await.map_err(|_| self.failure())
    }

    /// Resolves when a delivery failed.
    pub async fn failed(&mut self) -> Error {
        loop {
            if let Some(reason) = self.failed.borrow_and_update().clone() {
                return Error::Delivery(reason);
            }
            if self.failed.changed().await.is_err() {
                // The tracker ended; only a failure ends it early.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits for every queued delivery and saves the last complete checkpoint.
    pub async fn finish(self) -> Result<()> {
        drop(self.tx);
        match self.handle.await {
            Ok(r) => r,
            Err(e) => Err(Error::Delivery(format!(
                "acknowledgement tracker panicked: {e}"
            ))),
        }
    }
}
