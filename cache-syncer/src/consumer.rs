//! The consumer loop: Kafka → plan → apply → store offsets.
//!
//! # At-least-once
//! Offsets are stored (`enable.auto.offset.store=false`) only after a batch's
//! effects are applied to Redis and MySQL; librdkafka commits stored offsets
//! in the background and once more, synchronously, on shutdown. A crash
//! redelivers at most the uncommitted tail, which is harmless: effects are
//! absolute values, and events whose `sluice.seq` is below the partition's
//! applied seq (recorded in Redis once the batch's effects are in) are
//! skipped, unless `reapply` is set or the relay marked them as part of an
//! operator's replay (`sluice.replay`). `sluice.seq` is derived from the
//! binlog position, so a relay that lost its state numbers changes as before.
//!
//! # Order and parallelism
//! A batch holds the messages of every assigned partition that are ready,
//! applied in arrival order, so each key's changes stay in order while all
//! partitions advance together; scale-out is more processes in the group.
//! The running loop overlaps the two stages: while one batch is applied (in
//! its own task), the next is consumed and planned. Batches still apply one
//! at a time, in order; an event below a seq already taken into a batch is
//! skipped, so a replayed older change cannot overtake a newer one.
//!
//! # Errors
//! A message that cannot be planned goes to `<prefix>.dlq` with the reason
//! and the stream goes on. Redis or MySQL being down (or a lock timeout) is
//! transient: the batch is retried with backoff and nothing is committed
//! meanwhile. A definite apply error (a Redis key of the wrong type, a value
//! a column cannot hold) is retried a few times, then the batch's events are
//! applied one at a time and the ones that still fail go to `<prefix>.dlq`
//! with the error (`apply: …`), so the stream never stalls on one change;
//! `verify` then shows the difference.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use redis::AsyncCommands;
use serde::Serialize;

use crate::apply::{Applier, Progress};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::metrics as m;
use crate::plan::{self, Effect};
use crate::watermark::{Pending, Tracker, Watermark};

/// One apply span per source transaction in the batch, each a child of the
/// relay's transaction span named by the messages' `traceparent`; they cover
/// the batch's apply. Empty unless the relay traces.
fn apply_spans(batch: &[Incoming]) -> Vec<tracing::Span> {
    let mut spans: Vec<(&str, tracing::Span)> = Vec::new();
    for inc in batch {
        let (Action::Apply { table, op, .. }, Some(tp)) = (&inc.action, inc.traceparent.as_deref())
        else {
            continue;
        };
        if spans.iter().any(|(seen, _)| *seen == tp) {
            continue;
        }
        let span = tracing::info_span!(
            target: common::telemetry::SPANS,
            "syncer.apply",
            otel.name = "apply",
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = %inc.msg.topic(),
            messaging.kafka.offset = inc.msg.offset(),
            sluice.table = %table,
            sluice.op = *op,
            sluice.batch = batch.len(),
        );
        common::telemetry::set_parent(&span, tp);
        spans.push((tp, span));
    }
    spans.into_iter().map(|(_, s)| s).collect()
}

/// Progress of one partition, as `/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PartitionStatus {
    /// Highest applied `sluice.seq`.
    pub applied_seq: Option<u64>,
    /// GTID of the last applied event.
    pub applied_gtid: Option<String>,
    /// Next offset to consume (last stored + 1).
    pub next_offset: Option<i64>,
    /// Messages behind the partition's high watermark.
    pub lag: Option<i64>,
}

/// What `/status` serves.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncStatus {
    pub group_id: String,
    /// `topic/partition` → progress.
    pub partitions: BTreeMap<String, PartitionStatus>,
    /// Messages taken from Kafka (decoded), applied or not yet.
    pub events_received: u64,
    pub events_applied: u64,
    pub events_skipped: u64,
    pub dead_lettered: u64,
    /// Last apply error that is being retried, if any.
    pub retrying: Option<String>,
    /// Everything at or below this relay position is visible in Redis.
    pub watermark: Option<Watermark>,
    /// Relay heartbeats waiting for the partitions to drain past them.
    pub watermark_pending: usize,
    /// What the oldest of them still waits for.
    pub watermark_waiting_on: Vec<String>,
}

/// Shared handle on the status.
pub type StatusHandle = Arc<Mutex<SyncStatus>>;

/// A consumed message and what to do with it.
struct Incoming {
    msg: OwnedMessage,
    seq: Option<u64>,
    gtid: Option<String>,
    /// The relay transaction's span context (tracing on only).
    traceparent: Option<String>,
    action: Action,
}

enum Action {
    /// Apply these effects (table and op for metrics, change time for freshness).
    Apply {
        effects: Vec<Effect>,
        table: &'static str,
        op: &'static str,
        changed_at_us: Option<i64>,
    },
    /// Tombstone, or already applied.
    Skip,
    /// A relay heartbeat with its acknowledged position.
    Heartbeat {
        acked_seq: Option<u64>,
        acked_gtid: Option<String>,
        /// Where the messages up to `acked_seq` landed (newer relays).
        acked_offsets: Vec<cdc_event::envelope::PartitionOffset>,
    },
    /// Cannot be applied: dead-letter it with this reason.
    Poison(String),
}

/// A batch's writes, ready to apply without borrowing the syncer (so the
/// next batch can be consumed meanwhile).
struct ApplyJob {
    effects: Vec<Effect>,
    /// Each applied event's place in the batch and its slice of `effects`.
    events: Vec<(usize, std::ops::Range<usize>)>,
    progress: Progress,
    /// Trace spans covering the apply (empty unless tracing).
    spans: Vec<tracing::Span>,
    /// Events that failed definitively on their own (batch index, error):
    /// dead-lettered before the batch's offsets are stored.
    rejected: Vec<(usize, String)>,
}

/// Attempts of a batch (and then of each of its events) that failed with a
/// definite error before giving up on it.
const DEFINITE_ATTEMPTS: u32 = 3;

impl ApplyJob {
    /// Applies the batch. Transient failures (Redis or MySQL down, a lock
    /// timeout) are retried with backoff for as long as they last; nothing
    /// is recorded or committed meanwhile. A definite failure (a key of the
    /// wrong type, a value a column cannot hold) is retried
    /// [`DEFINITE_ATTEMPTS`] times; then the events are applied one by one
    /// (in order; effects are absolute, so applying the others again is
    /// harmless) and those that still fail are left in `rejected` for the
    /// dead-letter topic, so one bad change never stalls the stream.
    async fn run(&mut self, applier: Applier, status: StatusHandle) -> Result<()> {
        let started = Instant::now();
        if let Err(e) = apply_with_retries(&applier, &status, &self.effects, &self.progress).await {
            tracing::warn!(error = %e, events = self.events.len(), "a batch cannot be applied; applying its events one at a time");
            let none = Progress::new();
            for (at, range) in &self.events {
                let effects = &self.effects[range.clone()];
                if let Err(e) = apply_with_retries(&applier, &status, effects, &none).await {
                    tracing::error!(error = %e, "an event cannot be applied; dead-lettering it");
                    self.rejected.push((*at, e.to_string()));
                }
            }
            apply_with_retries(&applier, &status, &[], &self.progress).await?;
        }
        metrics::histogram!(m::APPLY_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// One apply, retried: transient errors as long as they last, definite ones
/// up to [`DEFINITE_ATTEMPTS`] times (then the error is returned).
async fn apply_with_retries(
    applier: &Applier,
    status: &StatusHandle,
    effects: &[Effect],
    progress: &Progress,
) -> Result<()> {
    let mut pause = Duration::from_millis(50);
    let mut definite = 0;
    loop {
        match applier.apply(effects, progress).await {
            Ok(()) => {
                status.lock().map(|mut s| s.retrying = None).ok();
                return Ok(());
            }
            Err(e) => {
                if !e.is_transient() {
                    definite += 1;
                    if definite >= DEFINITE_ATTEMPTS {
                        return Err(e);
                    }
                }
                metrics::counter!(m::RETRIES).increment(1);
                tracing::warn!(error = %e, retry_in = ?pause, "apply failed; retrying without committing");
                status
                    .lock()
                    .map(|mut s| s.retrying = Some(e.to_string()))
                    .ok();
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The syncer: one consumer-group member.
pub struct Syncer {
    settings: Settings,
    consumer: Arc<StreamConsumer>,
    dlq: FutureProducer,
    applier: Applier,
    /// Highest seq per partition recorded as applied (after the apply).
    applied: HashMap<String, u64>,
    /// Highest seq per partition taken into a batch (at decode): events at
    /// or below it are skipped, as they are applied already or will be
    /// before anything decoded later. Reset to `applied` when a batch fails.
    planned: HashMap<String, u64>,
    /// Next offset to apply per partition (`topic/partition`): one past the
    /// last message whose batch was applied and recorded, or the group's
    /// committed offset for a partition this member has not applied to yet.
    /// The watermark rests on this, never on the fetch position, which runs
    /// ahead while the next batch is consumed during an apply.
    applied_next: HashMap<String, i64>,
    /// When set, each pipelined apply first takes a permit (test hook: hold
    /// an apply while the next batch is consumed).
    apply_gate: Option<Arc<tokio::sync::Semaphore>>,
    status: StatusHandle,
    last_lag_check: Instant,
    /// The lag check running in the background, if any.
    lag_check: Option<tokio::task::JoinHandle<()>>,
    heartbeat_topic: String,
    tracker: Tracker,
    /// Reused for the `topic/partition` key of each message decoded.
    key_buf: String,
}

/// How long shutdown waits for the batch being applied.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The group member's librdkafka settings: ours, then the `[consumer]`
/// table's overrides (validated not to touch the offset properties).
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.kafka.brokers)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Notice topics the relay creates after the syncer started.
        .set("topic.metadata.refresh.interval.ms", "10000")
        // Kafka answers a fetch as soon as one byte is there
        // (`fetch.min.bytes` = 1), so a long wait costs no freshness: it
        // only bounds how often an idle member asks again.
        .set("fetch.wait.max.ms", "500");
    for (k, v) in &settings.consumer {
        config.set(k, v);
    }
    config
}

/// The offset `tpl` holds for `topic`/`partition`, when it is a real one
/// (not unset, beginning, end, …).
fn offset_in(tpl: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    tpl.find_partition(topic, partition)
        .and_then(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
}

/// `topic/partition`, the key of per-partition progress.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// The metric label of a source table (the syncer consumes these three).
fn table_label(table: &str) -> &'static str {
    match table {
        "counter" => "counter",
        "follow" => "follow",
        "user" => "user",
        _ => "other",
    }
}

fn header_bytes<'m>(msg: &'m OwnedMessage, name: &str) -> Option<&'m [u8]> {
    msg.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
}

fn header(msg: &OwnedMessage, name: &str) -> Option<String> {
    header_bytes(msg, name).map(|v| String::from_utf8_lossy(v).into_owned())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Syncer {
    /// Creates the group member, subscribes, and loads the applied seqs.
    pub async fn new(settings: Settings, applier: Applier, status: StatusHandle) -> Result<Self> {
        let consumer: StreamConsumer = consumer_config(&settings).create()?;
        let heartbeat_topic = cdc_event::topic::heartbeat_topic(&settings.kafka.topic_prefix);
        let mut topics = settings.topics();
        topics.push(heartbeat_topic.clone());
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs)?;
        let dlq: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &settings.kafka.brokers)
            .set("acks", "all")
            // Idempotent: a retried dead letter is written once.
            .set("enable.idempotence", "true")
            .create()?;
        let mut conn = applier.redis.clone();
        let applied: HashMap<String, u64> = conn.hgetall(applier.keys.syncer_applied()).await?;
        status
            .lock()
            .map(|mut s| s.group_id = settings.group_id.clone())
            .ok();
        Ok(Self {
            settings,
            consumer: Arc::new(consumer),
            dlq,
            applier,
            planned: applied.clone(),
            applied,
            applied_next: HashMap::new(),
            apply_gate: None,
            status,
            last_lag_check: Instant::now(),
            lag_check: None,
            heartbeat_topic,
            tracker: Tracker::default(),
            key_buf: String::new(),
        })
    }

    /// Runs until `shutdown` resolves, then finishes the batch in flight and
    /// commits what was applied.
    ///
    /// Pipelined: while one batch is applied to Redis and MySQL, the next is
    /// consumed and planned, so the two stages overlap instead of taking
    /// turns. Batches are still applied one after the other, in order, and
    /// a batch's offsets are stored only after its own apply succeeded.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut ready: Vec<Incoming> = Vec::new();
        loop {
            if ready.is_empty() {
                tokio::select! {
                    _ = &mut shutdown => break,
                    res = self.receive(Duration::from_millis(500)) => ready = res?,
                }
                if ready.is_empty() {
                    continue;
                }
            } else {
                self.top_up(&mut ready).await;
            }
            let batch = std::mem::take(&mut ready);
            let job = self.prepare(&batch).await?;
            let mut stop = false;
            // The apply runs as its own task (on the other worker thread
            // when there is one) while this one consumes and plans.
            let (applier, status) = (self.applier.clone(), Arc::clone(&self.status));
            let gate = self.apply_gate.clone();
            let mut apply = tokio::spawn(async move {
                let mut job = job;
                if let Some(g) = &gate
                    && let Ok(permit) = g.acquire().await
                {
                    permit.forget();
                }
                let res = job.run(applier, status).await;
                (job, res)
            });
            let (job, applied) = loop {
                tokio::select! {
                    biased;
                    res = &mut apply => {
                        break res.map_err(|e| Error::Other(format!("apply task failed: {e}")))?;
                    }
                    _ = &mut shutdown, if !stop => stop = true,
                    // A batch that cannot be applied (Redis or MySQL down,
                    // retrying) must not hold the shutdown up: it was not
                    // recorded, so it is delivered again after the restart.
                    _ = tokio::time::sleep(DRAIN_TIMEOUT), if stop => {
                        apply.abort();
                        tracing::warn!("shutting down with a batch still unapplied; it will be redelivered");
                        return self.close();
                    }
                    res = self.consumer.recv(), if !stop && ready.len() < self.settings.batch_max => {
                        match res {
                            Ok(m) => {
                                let inc = self.decode(m.detach());
                                ready.push(inc);
                            }
                            Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                        }
                    }
                }
            };
            if let Err(e) = applied {
                self.planned = self.applied.clone();
                return Err(e);
            }
            self.finish(&batch, job).await?;
            self.maybe_check_lag().await;
            if stop {
                break;
            }
        }
        self.close()
    }

    /// Test hook: every apply of [`run`](Self::run) first takes one permit
    /// of `gate`, so a test can hold batch N's apply while batch N+1 is
    /// consumed.
    #[doc(hidden)]
    pub fn with_apply_gate(mut self, gate: Arc<tokio::sync::Semaphore>) -> Self {
        self.apply_gate = Some(gate);
        self
    }

    /// Commits stored offsets synchronously (clean drain).
    pub fn close(self) -> Result<()> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Consumes up to `batch_max` ready messages (waiting at most `wait` for
    /// the first), applies them and stores their offsets. Returns how many
    /// messages were handled. Tests drive the syncer with this; [`run`]
    /// does the same with consuming and applying overlapped.
    ///
    /// [`run`]: Self::run
    pub async fn step(&mut self, wait: Duration) -> Result<usize> {
        let batch = self.receive(wait).await?;
        let n = batch.len();
        if n > 0 {
            self.handle(batch).await?;
            self.maybe_check_lag().await;
        }
        Ok(n)
    }

    /// Waits at most `wait` for a message, then takes what else is ready
    /// (up to `batch_max`), decoded and planned. When nothing came, does the
    /// idle chores (lag, watermark) and returns an empty batch.
    async fn receive(&mut self, wait: Duration) -> Result<Vec<Incoming>> {
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => {
                self.maybe_check_lag().await;
                self.advance_watermark().await?;
                return Ok(Vec::new());
            }
            Ok(Err(e)) => {
                // Consumer errors (a topic not created yet, a broker restart)
                // are reported here and recovered by librdkafka itself.
                tracing::warn!(error = %e, "kafka consumer error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Ok(Vec::new());
            }
            Ok(Ok(m)) => m.detach(),
        };
        let mut batch = vec![self.decode(first)];
        self.top_up(&mut batch).await;
        Ok(batch)
    }

    /// Adds the messages that arrive without a pause (1 ms) to `batch`, up
    /// to `batch_max`.
    async fn top_up(&mut self, batch: &mut Vec<Incoming>) {
        while batch.len() < self.settings.batch_max {
            match tokio::time::timeout(Duration::from_millis(1), self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    let inc = self.decode(m.detach());
                    batch.push(inc);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
    }

    fn decode(&mut self, msg: OwnedMessage) -> Incoming {
        if let Ok(mut st) = self.status.lock() {
            st.events_received += 1;
        }
        let seq = header_bytes(&msg, cdc_event::HEADER_SEQ)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
        let replay = header_bytes(&msg, cdc_event::HEADER_REPLAY) == Some(b"1");
        let gtid = header(&msg, cdc_event::HEADER_GTID);
        let traceparent = header(&msg, common::telemetry::TRACEPARENT);
        let action = match msg.payload() {
            None => Action::Skip,
            Some(bytes) if msg.topic() == self.heartbeat_topic => {
                match serde_json::from_slice::<cdc_event::envelope::Heartbeat>(bytes) {
                    Ok(hb) => Action::Heartbeat {
                        acked_seq: hb.acked_seq,
                        acked_gtid: hb.acked_gtid,
                        acked_offsets: hb.acked_offsets,
                    },
                    // A heartbeat proves nothing when unreadable; not poison.
                    Err(_) => Action::Skip,
                }
            }
            Some(bytes) => match plan::Change::parse(bytes) {
                Err(e) => Action::Poison(format!("invalid envelope: {e}")),
                Ok(change) => {
                    // The partition's key, written into a reused buffer: no
                    // allocation per message.
                    self.key_buf.clear();
                    let _ = write!(self.key_buf, "{}/{}", msg.topic(), msg.partition());
                    let done = self.planned.get(self.key_buf.as_str()).copied();
                    // Below what this partition applied or planned: an old
                    // change seen again (redelivery, a relay's duplicate or
                    // replay), skipped unless an operator replays on purpose.
                    // An equal number is applied again (harmless: effects are
                    // absolute), since rows past a field's saturation share one.
                    let older = matches!((seq, done), (Some(s), Some(d)) if s < d);
                    if older && !self.settings.reapply && !replay {
                        Action::Skip
                    } else {
                        if let Some(s) = seq {
                            match self.planned.get_mut(self.key_buf.as_str()) {
                                Some(cur) => *cur = (*cur).max(s),
                                None => {
                                    self.planned.insert(self.key_buf.clone(), s);
                                }
                            }
                        }
                        match change.plan() {
                            Ok(p) => Action::Apply {
                                effects: p.effects,
                                table: table_label(change.table()),
                                op: change.op.code(),
                                changed_at_us: p.changed_at_us,
                            },
                            Err(e) => Action::Poison(e.to_string()),
                        }
                    }
                }
            },
        };
        Incoming {
            msg,
            seq,
            gtid,
            traceparent,
            action,
        }
    }

    async fn handle(&mut self, batch: Vec<Incoming>) -> Result<()> {
        let mut job = self.prepare(&batch).await?;
        if let Err(e) = job
            .run(self.applier.clone(), Arc::clone(&self.status))
            .await
        {
            self.planned = self.applied.clone();
            return Err(e);
        }
        self.finish(&batch, job).await
    }

    /// Dead-letters the batch's poison messages and gathers its effects and
    /// the partitions' new applied seqs.
    async fn prepare(&self, batch: &[Incoming]) -> Result<ApplyJob> {
        let mut effects = Vec::new();
        let mut events = Vec::new();
        let mut progress = Progress::new();
        for (at, inc) in batch.iter().enumerate() {
            match &inc.action {
                Action::Apply { effects: e, .. } => {
                    let from = effects.len();
                    effects.extend(e.iter().cloned());
                    events.push((at, from..effects.len()));
                    if let Some(seq) = inc.seq {
                        let key = partition_key(inc.msg.topic(), inc.msg.partition());
                        let entry = progress.entry(key).or_insert(seq);
                        *entry = (*entry).max(seq);
                    }
                }
                Action::Poison(reason) => self.dead_letter(&inc.msg, reason).await?,
                Action::Skip | Action::Heartbeat { .. } => {}
            }
        }
        Ok(ApplyJob {
            effects,
            events,
            progress,
            spans: apply_spans(batch),
            rejected: Vec::new(),
        })
    }

    /// After a batch's apply: stores its offsets, updates progress and
    /// metrics, and moves the watermark past a drained heartbeat.
    async fn finish(&mut self, batch: &[Incoming], job: ApplyJob) -> Result<()> {
        let applied_at = now_us();
        drop(job.spans);
        // Changes that cannot be applied: to the dead-letter topic, before
        // the offsets past them are stored.
        for (at, reason) in &job.rejected {
            self.dead_letter(&batch[*at].msg, &format!("apply: {reason}"))
                .await?;
        }
        let rejected: Vec<usize> = job.rejected.iter().map(|(at, _)| *at).collect();
        // One counter update per kind and batch, not per effect.
        let mut by_kind: Vec<(&'static str, u64)> = Vec::new();
        for e in &job.effects {
            match by_kind.iter_mut().find(|(k, _)| *k == e.kind()) {
                Some((_, n)) => *n += 1,
                None => by_kind.push((e.kind(), 1)),
            }
        }
        for (kind, n) in by_kind {
            metrics::counter!(m::EFFECTS, "kind" => kind).increment(n);
        }
        self.record(batch, &rejected, applied_at)?;
        let beat = batch.iter().rev().find_map(|inc| match &inc.action {
            Action::Heartbeat {
                acked_seq: Some(seq),
                acked_gtid,
                acked_offsets,
            } => Some((*seq, acked_gtid.clone(), acked_offsets)),
            _ => None,
        });
        if let Some((seq, gtid, offsets)) = beat {
            // The relay says where its acknowledged messages landed: no
            // broker round trip. Older relays don't; then ask the broker.
            let targets = if offsets.is_empty() {
                self.drain_targets().await
            } else {
                self.assigned_targets(offsets)
            };
            if let Some(targets) = targets {
                self.load_committed_for(&targets).await;
                self.tracker.push(Pending { seq, gtid, targets });
            }
        }
        self.advance_watermark().await
    }

    /// For target partitions this member has applied nothing to yet, the
    /// next offset to apply is the group's committed offset (everything
    /// below it was applied by an earlier run); 0 when the group has none.
    /// Asked of the broker once per such partition.
    async fn load_committed_for(&mut self, targets: &[(String, i32, i64)]) {
        let missing = targets.iter().any(|(t, p, target)| {
            *target > 0 && !self.applied_next.contains_key(&partition_key(t, *p))
        });
        if !missing {
            return;
        }
        let consumer = Arc::clone(&self.consumer);
        let committed =
            tokio::task::spawn_blocking(move || consumer.committed(Duration::from_secs(5)))
                .await
                .ok()
                .and_then(|r| r.ok());
        let Some(committed) = committed else {
            return; // asked again with the next heartbeat
        };
        for (t, p, _) in targets {
            let next = offset_in(&committed, t, *p).unwrap_or(0);
            self.applied_next
                .entry(partition_key(t, *p))
                .or_insert(next);
        }
    }

    /// The heartbeat's offsets for the partitions this member holds (the
    /// others are another member's business). `None` before any assignment.
    fn assigned_targets(
        &self,
        offsets: &[cdc_event::envelope::PartitionOffset],
    ) -> Option<Vec<(String, i32, i64)>> {
        let assigned = self.consumer.assignment().ok()?;
        let targets: Vec<_> = offsets
            .iter()
            .filter(|o| o.topic != self.heartbeat_topic)
            .filter(|o| assigned.find_partition(&o.topic, o.partition).is_some())
            .map(|o| (o.topic.clone(), o.partition, o.next))
            .collect();
        (assigned.count() > 0).then_some(targets)
    }

    /// For every assigned row-change partition, the offset the syncer must
    /// have applied up to: the broker's high watermark now. Partitions
    /// already there (or empty) get target 0. `None` when that cannot be
    /// known (no assignment yet, a broker call failed): the heartbeat then
    /// proves nothing, and a later one will.
    async fn drain_targets(&self) -> Option<Vec<(String, i32, i64)>> {
        let consumer = Arc::clone(&self.consumer);
        let hb = self.heartbeat_topic.clone();
        let applied = self.applied_next.clone();
        tokio::task::spawn_blocking(move || {
            let assigned = consumer.assignment().ok()?;
            let committed = consumer.committed(Duration::from_secs(5)).ok()?;
            let mut out = Vec::new();
            for el in assigned.elements().iter().filter(|e| e.topic() != hb) {
                let (t, p) = (el.topic(), el.partition());
                let (_, high) = consumer
                    .fetch_watermarks(t, p, Duration::from_secs(5))
                    .ok()?;
                let done = applied
                    .get(&partition_key(t, p))
                    .copied()
                    .or_else(|| offset_in(&committed, t, p))
                    .unwrap_or(0);
                out.push((t.to_owned(), p, if done >= high { 0 } else { high }));
            }
            (!out.is_empty()).then_some(out)
        })
        .await
        .ok()
        .flatten()
    }

    /// Moves the watermark past every heartbeat whose targets are applied
    /// (recorded after their batch's apply, not merely fetched) and
    /// publishes it.
    async fn advance_watermark(&mut self) -> Result<()> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let applied = &self.applied_next;
        let position = |t: &str, p: i32| applied.get(&partition_key(t, p)).copied();
        let moved = self.tracker.advance(position, now_ms);
        if let Ok(mut st) = self.status.lock() {
            st.watermark_pending = self.tracker.pending();
            st.watermark_waiting_on = self.tracker.waiting_on(position);
        }
        let Some(w) = moved else { return Ok(()) };
        let mut conn = self.applier.redis.clone();
        let mut fields = vec![("seq", w.seq.to_string()), ("ts_ms", w.ts_ms.to_string())];
        if let Some(g) = &w.gtid {
            fields.push(("gtid", g.clone()));
        }
        let _: () = conn
            .hset_multiple(self.applier.keys.watermark(), &fields)
            .await?;
        metrics::gauge!(m::WATERMARK_SEQ).set(w.seq as f64);
        if let Ok(mut st) = self.status.lock() {
            st.watermark = Some(w);
        }
        Ok(())
    }

    /// Stores offsets and updates progress after a successful apply.
    fn record(&mut self, batch: &[Incoming], rejected: &[usize], applied_at: i64) -> Result<()> {
        // Per partition: the last offset, the highest applied seq and the
        // GTID of the last applied event that had one. One offset store, status entry and gauge
        // per partition, one counter per table and op, instead of per message.
        struct Last<'a> {
            topic: &'a str,
            partition: i32,
            offset: i64,
            applied: Option<(u64, Option<&'a String>)>,
        }
        let mut parts: Vec<Last<'_>> = Vec::new();
        let mut applied_by: Vec<(&str, &'static str, u64)> = Vec::new();
        let (mut applied_n, mut skipped_n, mut dead_n) = (0u64, 0u64, 0u64);
        let fresh = metrics::histogram!(m::FRESHNESS_SECONDS);
        for (i, inc) in batch.iter().enumerate() {
            let (topic, partition) = (inc.msg.topic(), inc.msg.partition());
            let at = match parts
                .iter()
                .position(|p| p.partition == partition && p.topic == topic)
            {
                Some(at) => at,
                None => {
                    parts.push(Last {
                        topic,
                        partition,
                        offset: inc.msg.offset(),
                        applied: None,
                    });
                    parts.len() - 1
                }
            };
            let last = &mut parts[at];
            last.offset = last.offset.max(inc.msg.offset());
            if rejected.contains(&i) {
                dead_n += 1;
                continue;
            }
            match &inc.action {
                Action::Apply {
                    table,
                    op,
                    changed_at_us,
                    ..
                } => {
                    applied_n += 1;
                    if let Some(seq) = inc.seq {
                        let (max, gtid) = last.applied.unwrap_or((seq, None));
                        last.applied = Some((max.max(seq), inc.gtid.as_ref().or(gtid)));
                    }
                    match applied_by
                        .iter_mut()
                        .find(|(t, o, _)| t == table && o == op)
                    {
                        Some((_, _, n)) => *n += 1,
                        None => applied_by.push((table, op, 1)),
                    }
                    if let Some(at) = changed_at_us {
                        fresh.record((applied_at - at).max(0) as f64 / 1e6);
                    }
                }
                Action::Heartbeat { .. } => {}
                Action::Skip => skipped_n += u64::from(inc.msg.payload().is_some()),
                Action::Poison(_) => dead_n += 1,
            }
        }
        for (table, op, n) in applied_by {
            metrics::counter!(m::EVENTS_APPLIED, "table" => table.to_owned(), "op" => op)
                .increment(n);
        }
        if skipped_n > 0 {
            metrics::counter!(m::EVENTS_SKIPPED).increment(skipped_n);
        }
        let mut status = self
            .status
            .lock()
            .map_err(|_| Error::Other("status lock poisoned".into()))?;
        status.events_applied += applied_n;
        status.events_skipped += skipped_n;
        status.dead_lettered += dead_n;
        for last in parts {
            self.consumer
                .store_offset(last.topic, last.partition, last.offset)?;
            let key = partition_key(last.topic, last.partition);
            let next = self.applied_next.entry(key.clone()).or_insert(0);
            *next = (*next).max(last.offset + 1);
            let ps = status.partitions.entry(key.clone()).or_default();
            ps.next_offset = Some(last.offset + 1);
            if let Some((seq, gtid)) = last.applied {
                let cur = self.applied.entry(key).or_insert(seq);
                *cur = (*cur).max(seq);
                ps.applied_seq = Some(*cur);
                ps.applied_gtid = gtid.cloned().or(ps.applied_gtid.take());
                metrics::gauge!(m::APPLIED_SEQ, "topic" => last.topic.to_owned(), "partition" => last.partition.to_string())
                    .set(*cur as f64);
            }
        }
        Ok(())
    }

    async fn dead_letter(&self, msg: &OwnedMessage, reason: &str) -> Result<()> {
        if !self.settings.dlq {
            return Err(Error::Poison(format!(
                "{} partition {} offset {}: {reason} (dlq disabled)",
                msg.topic(),
                msg.partition(),
                msg.offset()
            )));
        }
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            reason,
            "dead-lettering message"
        );
        let topic = cdc_event::topic::dlq_topic(&self.settings.kafka.topic_prefix);
        let origin = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: cdc_event::HEADER_DLQ_REASON,
                value: Some(reason),
            })
            .insert(Header {
                key: "sluice.dlq.origin",
                value: Some(&origin),
            });
        if let Some(h) = msg.headers() {
            for h in h.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let mut record = FutureRecord::to(&topic).headers(headers);
        if let Some(k) = msg.key() {
            record = record.key(k);
        }
        if let Some(p) = msg.payload() {
            record = record.payload(p);
        }
        self.dlq
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        let kind = reason.split(':').next().unwrap_or("unknown").to_owned();
        metrics::counter!(m::DLQ_TOTAL, "reason" => kind).increment(1);
        Ok(())
    }

    /// Every 2 s: consumer lag per assigned partition (high watermark −
    /// position), asked of the broker on a blocking thread in the background
    /// — one broker round trip per partition must not hold up the batches.
    async fn maybe_check_lag(&mut self) {
        if self.last_lag_check.elapsed() < Duration::from_secs(2)
            || self.lag_check.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.last_lag_check = Instant::now();
        let consumer = Arc::clone(&self.consumer);
        let status = Arc::clone(&self.status);
        self.lag_check = Some(tokio::task::spawn_blocking(move || {
            let Ok(assigned) = consumer.assignment() else {
                return;
            };
            let positions = consumer
                .position()
                .unwrap_or_else(|_| TopicPartitionList::new());
            let mut out = Vec::new();
            for el in assigned.elements() {
                let Ok((_, high)) =
                    consumer.fetch_watermarks(el.topic(), el.partition(), Duration::from_secs(2))
                else {
                    continue;
                };
                let pos = offset_in(&positions, el.topic(), el.partition());
                let lag = pos.map(|p| (high - p).max(0)).unwrap_or(high);
                out.push((el.topic().to_owned(), el.partition(), lag));
            }
            if let Ok(mut status) = status.lock() {
                for (topic, partition, lag) in out {
                    metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(lag as f64);
                    status
                        .partitions
                        .entry(partition_key(&topic, partition))
                        .or_default()
                        .lag = Some(lag);
                }
            }
        }));
    }
}
