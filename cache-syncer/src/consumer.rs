//! The consumer loop and its wiring: Kafka → decode → apply → record.
//!
//! # Layout
//! - here: [`Syncer`] (the group member and its one loop, [`Syncer::run`]),
//!   the heartbeat → watermark wiring, and `/status` ([`SyncStatus`]);
//! - `decode.rs`: a message into what to do with it, and the seq rule;
//! - `job.rs`: a batch's apply, with retries;
//! - `dlq.rs`: the dead-letter topic;
//! - `progress.rs`: per-partition applied position, offsets stored, status
//!   and metrics after each batch;
//! - `ownership.rs`: the rebalance callback, partition claims and the fence;
//! - `lag.rs`: the background consumer-lag check;
//! - `watermark.rs`: heartbeats, read outside the group, into the watermark.
//!
//! # A member of a group
//! Any number of syncers share the group (`group_id`) with the
//! cooperative-sticky assignor: a rebalance moves only the partitions that
//! change owner. A member assigned a partition claims it before any of its
//! messages is delivered (raising its epoch in Redis and reading its applied
//! seq, see `ownership.rs`); a revoked partition's offsets are no
//! longer stored; a batch applies only while its member's claims are
//! current, so a former owner's late batch is refused instead of landing
//! over the new owner's newer writes.
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
//! The loop overlaps the two stages: while one batch is applied (in its own
//! task), the next is consumed and planned. Batches still apply one at a
//! time, in order; an event below a seq already taken into a batch is
//! skipped, so a replayed older change cannot overtake a newer one.
//!
//! There is one loop: production and the integration tests both run
//! [`Syncer::run`]; tests wait on [`SyncStatus::messages_done`] and may hold
//! applies with the [`Syncer::with_apply_gate`] hook.
//!
//! # Watermark
//! A relay heartbeat names its acknowledged position and, in
//! `acked_offsets`, where the messages up to it landed. Each member reads
//! every heartbeat outside the group; once the group's applied position
//! (recorded by each partition's owner with its batches) has reached every
//! target, the heartbeat's position becomes the watermark (see
//! [`crate::watermark`]). A heartbeat without `acked_offsets` (a relay that
//! produced nothing since it started) cannot move it; it is counted
//! (`cache_syncer_heartbeats_without_offsets_total`).
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message as _, OwnedMessage};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::apply::Applier;
use crate::config::Settings;
use crate::decode::{Action, Decoder, Incoming};
use crate::dlq::DeadLetters;
use crate::error::{Error, Result};
use crate::job::{self, ApplyJob};
use crate::lag::LagCheck;
use crate::ownership::{Claimed, Ownership, SyncContext};
use crate::progress::{self, Applied};
use crate::watermark::{Publisher, Watermark};

/// The group member's Kafka consumer, with the rebalance callback.
pub type GroupConsumer = StreamConsumer<SyncContext>;

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
    /// Consumer-group rebalances this member took part in.
    pub rebalances: u64,
    /// Partitions this member owns (`topic/partition`), claimed or not yet.
    pub owned: Vec<String>,
    /// `topic/partition` → progress, for the partitions this member owns.
    pub partitions: BTreeMap<String, PartitionStatus>,
    /// Messages taken from Kafka (decoded), applied or not yet.
    pub events_received: u64,
    pub events_applied: u64,
    pub events_skipped: u64,
    pub dead_lettered: u64,
    /// Messages whose batch is finished — applied, skipped, dead-lettered,
    /// or left to a partition's new owner — with their offsets stored (for
    /// commit) where still owned. Grows once per batch, after its effects
    /// are in Redis and MySQL.
    pub messages_done: u64,
    /// Last apply error that is being retried, if any.
    pub retrying: Option<String>,
    /// Everything at or below this relay position is visible in Redis.
    pub watermark: Option<Watermark>,
    /// Relay heartbeats waiting for the group's partitions to be applied
    /// past them.
    pub watermark_pending: usize,
    /// What the oldest of them still waits for.
    pub watermark_waiting_on: Vec<String>,
}

/// Shared handle on the status.
pub type StatusHandle = Arc<Mutex<SyncStatus>>;

/// The syncer: one consumer-group member.
pub struct Syncer {
    settings: Settings,
    consumer: Arc<GroupConsumer>,
    /// Partitions owned and their claims (shared with the rebalance callback).
    ownership: Arc<Ownership>,
    dlq: DeadLetters,
    applier: Applier,
    /// Messages into actions; the seq rule's planned seqs.
    decoder: Decoder,
    /// Applied seqs and next offsets per partition.
    applied: Applied,
    /// When set, each apply first takes a permit (test hook: hold an apply
    /// while the next batch is consumed).
    apply_gate: Option<Arc<tokio::sync::Semaphore>>,
    status: StatusHandle,
    lag: LagCheck,
    /// Reads heartbeats and publishes the watermark (spawned by `run`).
    publisher: Option<Publisher>,
    /// Wakes the publisher after each recorded batch.
    wake: Arc<tokio::sync::Notify>,
}

/// How long shutdown waits for the batch being applied.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The group member's librdkafka settings: ours, then the `[consumer]`
/// table's overrides (validated not to touch the offset properties).
pub fn consumer_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (k, v) in settings.kafka.client_properties() {
        config.set(k, v);
    }
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Only committed Kafka transactions (the relay's exactly-once):
        // librdkafka's default, pinned here.
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // A rebalance moves only the partitions that change owner; the
        // others keep being applied meanwhile.
        .set("partition.assignment.strategy", "cooperative-sticky")
        // A member killed without leaving the group loses its partitions
        // after this long (librdkafka's default is 45 s); the broker's
        // lowest allowed value is 6 s.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
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
pub(crate) fn offset_in(tpl: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
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

impl Syncer {
    /// Creates the group member and subscribes; partitions are claimed as
    /// the group assigns them.
    pub async fn new(settings: Settings, applier: Applier, status: StatusHandle) -> Result<Self> {
        let redis_url = settings.redis.resolve_url(settings.dev)?;
        let client = crate::ownership::BlockingClient::open(
            redis_url.expose_secret(),
            settings.redis.cluster,
        )?;
        let ownership = Ownership::new(client, applier.keys.clone());
        let context = SyncContext {
            ownership: Arc::clone(&ownership),
        };
        let consumer: GroupConsumer = consumer_config(&settings).create_with_context(context)?;
        let topics = settings.topics();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs)?;
        let dlq = DeadLetters::new(&settings)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let publisher = Publisher::new(
            &settings,
            applier.redis.clone(),
            Arc::clone(&status),
            Arc::clone(&wake),
        )?;
        status
            .lock()
            .map(|mut s| s.group_id = settings.group_id.clone())
            .ok();
        Ok(Self {
            decoder: Decoder::new(settings.reapply, HashMap::new()),
            applied: Applied::new(HashMap::new()),
            settings,
            consumer: Arc::new(consumer),
            ownership,
            dlq,
            applier,
            apply_gate: None,
            status,
            lag: LagCheck::new(),
            publisher: Some(publisher),
            wake,
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
        let (stop_publisher, stopped) = tokio::sync::watch::channel(false);
        let publisher = self.publisher.take().map(|p| tokio::spawn(p.run(stopped)));
        let res = self.run_loop(shutdown).await;
        let _ = stop_publisher.send(true);
        if let Some(p) = publisher {
            let _ = p.await;
        }
        res
    }

    async fn run_loop(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
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
                self.top_up(&mut ready).await?;
            }
            let mut batch = std::mem::take(&mut ready);
            self.drop_stale(&mut batch);
            if batch.is_empty() {
                continue;
            }
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
            // Let the apply start now. Tokio runs a task spawned here next
            // on this same worker (its LIFO slot, which no other worker
            // takes), and a consumer with messages queued never yields on
            // its own: the apply would wait until the next batch had been
            // consumed, and the two stages would take turns.
            tokio::task::yield_now().await;
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
                                let inc = self.take(m.detach()).await?;
                                ready.push(inc);
                                // Give the worker up now and then (tokio's
                                // task budget), so the apply's wake-ups are
                                // not held behind a long run of messages.
                                tokio::task::consume_budget().await;
                            }
                            Err(e) => tracing::warn!(error = %e, "kafka consumer error"),
                        }
                    }
                }
            };
            if let Err(e) = applied {
                self.decoder.reset(self.applied.seqs());
                return Err(e);
            }
            self.finish(&batch, job).await?;
            self.lag.maybe_start(&self.consumer, &self.status);
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
    fn close(self) -> Result<()> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(())
            | Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Waits at most `wait` for a message, then takes what else is ready
    /// (up to `batch_max`), decoded and planned. When nothing came, does the
    /// idle chores (lag, watermark) and returns an empty batch.
    async fn receive(&mut self, wait: Duration) -> Result<Vec<Incoming>> {
        let first = match tokio::time::timeout(wait, self.consumer.recv()).await {
            Err(_) => {
                self.lag.maybe_start(&self.consumer, &self.status);
                self.sync_ownership().await?;
                // List refills a killed member left owed (retried at the
                // next idle moment when Redis or MySQL is away).
                match self.applier.recover_refills().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(lists = n, "ran list refills left owed"),
                    Err(e) => tracing::warn!(error = %e, "cannot run owed list refills yet"),
                }
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
        let mut batch = vec![self.take(first).await?];
        self.top_up(&mut batch).await?;
        Ok(batch)
    }

    /// Adds the messages that arrive without a pause (1 ms) to `batch`, up
    /// to `batch_max`.
    async fn top_up(&mut self, batch: &mut Vec<Incoming>) -> Result<()> {
        while batch.len() < self.settings.batch_max {
            match tokio::time::timeout(Duration::from_millis(1), self.consumer.recv()).await {
                Ok(Ok(m)) => {
                    let inc = self.take(m.detach()).await?;
                    batch.push(inc);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "kafka consumer error");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Takes a consumed message: counted as received, then decoded, after
    /// any rebalance since the last one is taken into the seq rule.
    async fn take(&mut self, msg: OwnedMessage) -> Result<Incoming> {
        self.sync_ownership().await?;
        if let Ok(mut st) = self.status.lock() {
            st.events_received += 1;
        }
        Ok(self.decoder.decode(msg))
    }

    /// Takes rebalances into the seq rule: a revoked partition is
    /// forgotten, a claimed one starts from the applied seq its claim found.
    /// Claims that failed in the rebalance callback (Redis unreachable) are
    /// retried here, before anything more is decoded.
    async fn sync_ownership(&mut self) -> Result<()> {
        if self.ownership.changed() {
            let changes = self.ownership.take_changes();
            for p in &changes.revoked {
                self.decoder.forget_partition(p);
                self.applied.restart_partition(p, None);
            }
            self.restart(&changes.claimed);
            if let Ok(mut st) = self.status.lock() {
                st.rebalances = self.ownership.rebalances();
                st.owned = self.ownership.owned();
                for p in &changes.revoked {
                    st.partitions.remove(p);
                }
            }
        }
        let mut pause = Duration::from_millis(100);
        while self.ownership.has_unclaimed() {
            let mut conn = self.applier.redis.clone();
            match self.ownership.claim_pending(&mut conn).await {
                Ok(claims) => self.restart(&claims),
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot claim assigned partitions; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn restart(&mut self, claims: &[Claimed]) {
        for c in claims {
            self.decoder
                .claim_partition(&c.partition, c.epoch, c.applied_seq);
            self.applied.restart_partition(&c.partition, c.applied_seq);
        }
    }

    /// Drops from `batch` the messages decoded under a claim this member no
    /// longer holds: their partition was revoked since (its new owner
    /// consumes them), or revoked and assigned back (claimed anew, and
    /// fetched again from the group's committed offset). Applying them would
    /// write changes over newer ones another member applied meanwhile, and
    /// storing their offsets could move the committed offset past messages
    /// of a batch the fence refused; nothing of them is applied or stored.
    fn drop_stale(&self, batch: &mut Vec<Incoming>) {
        // Per partition of the batch, its claim now: asked once each.
        let mut now: Vec<(&str, i32, Option<i64>)> = Vec::new();
        let mut stale = vec![false; batch.len()];
        for (inc, is_stale) in batch.iter().zip(stale.iter_mut()) {
            let (topic, partition) = (inc.msg.topic(), inc.msg.partition());
            let claim = match now.iter().find(|(t, p, _)| *p == partition && *t == topic) {
                Some((_, _, c)) => *c,
                None => {
                    let c = self.ownership.epoch(&partition_key(topic, partition));
                    now.push((topic, partition, c));
                    c
                }
            };
            *is_stale = claim.is_none() || inc.claim != claim;
        }
        let dropped = stale.iter().filter(|s| **s).count();
        if dropped > 0 {
            tracing::info!(
                messages = dropped,
                "dropping messages decoded under a claim given up since; they are consumed again from the committed offset"
            );
            metrics::counter!(crate::metrics::STALE_DROPPED).increment(dropped as u64);
            let mut flags = stale.into_iter();
            batch.retain(|_| !flags.next().unwrap_or(false));
        }
    }

    /// Dead-letters the batch's poison messages and gathers its effects,
    /// the partitions' new applied positions and this member's claims on
    /// them.
    async fn prepare(&self, batch: &[Incoming]) -> Result<ApplyJob> {
        for inc in batch {
            if let Action::Poison(reason) = &inc.action {
                self.dlq.send(&inc.msg, reason).await?;
            }
        }
        Ok(ApplyJob::new(batch, |p| self.ownership.epoch(p)))
    }

    /// After a batch's apply: stores its offsets (for the partitions still
    /// owned and not refused by the fence), updates progress and metrics,
    /// and wakes the watermark publisher.
    async fn finish(&mut self, batch: &[Incoming], job: ApplyJob) -> Result<()> {
        let applied_at = progress::now_us();
        drop(job.spans);
        // Changes that cannot be applied: to the dead-letter topic, before
        // the offsets past them are stored.
        for (at, reason) in &job.rejected {
            self.dlq
                .send(&batch[*at].msg, &format!("apply: {reason}"))
                .await?;
        }
        let rejected: Vec<usize> = job.rejected.iter().map(|(at, _)| *at).collect();
        job::count_effects(&job.effects);
        let ownership = &self.ownership;
        let settled = |p: &str| !job.lost.contains(p) && ownership.owns(p);
        self.applied.record(
            &self.consumer,
            &self.status,
            batch,
            &rejected,
            settled,
            applied_at,
        )?;
        self.wake.notify_one();
        Ok(())
    }
}
