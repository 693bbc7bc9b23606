//! The applied watermark: the highest relay `seq` (and its GTID) such that
//! every change at or below it is visible in Redis (DESIGN §5) — the basis of
//! read-your-writes.
//!
//! # How it is derived
//! The relay's heartbeats carry its acknowledged position: `acked_seq` /
//! `acked_gtid`, the last transaction boundary up to which Kafka has
//! acknowledged every message, and `acked_offsets`, where those messages
//! landed: per row-change partition, the offset after the last of them.
//! These offsets are the one source of targets: a heartbeat without them
//! (a relay that has produced nothing since it started) cannot move the
//! watermark, and the syncer counts it.
//!
//! Every member of the group reads every heartbeat, outside the group (its
//! own consumer, assigned the heartbeat topic's partitions: a heartbeat
//! read inside the group would reach one member only). The positions it
//! compares with the targets are the group's, not its own: each owner
//! records, with a batch's Redis writes, the offset after the batch's last
//! message of each partition (`<ns>:{<ns>:syncer}:offsets`); a partition nobody
//! recorded yet counts at the group's committed offset. So a heartbeat
//! becomes the watermark only once *every* row-change partition it names
//! is applied past its target, whoever owns it; an unowned partition holds
//! it back. Never the fetch position, which runs ahead while the next batch
//! is consumed during an apply.
//!
//! Targets are kept in order, so a steady stream of heartbeats still
//! advances the watermark. Any member may publish it; a script writes
//! `<ns>:watermark` (`seq`, `gtid`, `ts_ms`) only when the new seq is
//! higher, so it never moves backwards, whichever member is behind. It is
//! also exported as a metric and shown in `/status`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::keys::Keys;
use common::redis_conn::Redis;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::Settings;
use crate::consumer::{StatusHandle, offset_in, partition_key};
use crate::error::Result;
use crate::metrics as m;

/// A published watermark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    pub seq: u64,
    pub gtid: Option<String>,
    /// When it was reached (ms since the epoch).
    pub ts_ms: i64,
}

/// A heartbeat waiting for the partitions to drain past its targets.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub gtid: Option<String>,
    /// `(topic, partition, offset)`: applied position needed on each partition.
    pub targets: Vec<(String, i32, i64)>,
}

/// Ordered pending heartbeats and the current watermark.
#[derive(Debug, Default)]
pub struct Tracker {
    pending: VecDeque<Pending>,
    pub current: Option<Watermark>,
}

/// Most heartbeats waiting at once; older ones are dropped first (a later
/// heartbeat subsumes them).
const MAX_PENDING: usize = 256;

impl Tracker {
    /// Queues a heartbeat's targets (ignored when not ahead of the last one).
    pub fn push(&mut self, p: Pending) {
        let last = self
            .pending
            .back()
            .map(|b| b.seq)
            .or(self.current.as_ref().map(|c| c.seq));
        if last.is_some_and(|l| p.seq <= l) {
            return;
        }
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(p);
    }

    /// Advances past every pending heartbeat whose targets are all reached;
    /// `position(topic, partition)` is the next offset to apply (everything
    /// below it applied). Returns the
    /// new watermark when it moved.
    pub fn advance(
        &mut self,
        position: impl Fn(&str, i32) -> Option<i64>,
        now_ms: i64,
    ) -> Option<Watermark> {
        let mut moved = None;
        while let Some(front) = self.pending.front() {
            let reached = front.targets.iter().all(|(t, p, target)| {
                *target <= 0 || position(t, *p).is_some_and(|pos| pos >= *target)
            });
            if !reached {
                break;
            }
            let p = self.pending.pop_front().expect("front exists");
            let w = Watermark {
                seq: p.seq,
                gtid: p.gtid,
                ts_ms: now_ms,
            };
            self.current = Some(w.clone());
            moved = Some(w);
        }
        moved
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Every partition a pending heartbeat names.
    fn partitions(&self) -> BTreeSet<(String, i32)> {
        self.pending
            .iter()
            .flat_map(|p| p.targets.iter().map(|(t, p, _)| (t.clone(), *p)))
            .collect()
    }

    /// The partitions the oldest pending heartbeat still waits for, as
    /// `topic/partition: position < target` (for `/status`).
    pub fn waiting_on(&self, position: impl Fn(&str, i32) -> Option<i64>) -> Vec<String> {
        let Some(front) = self.pending.front() else {
            return Vec::new();
        };
        front
            .targets
            .iter()
            .filter(|(t, p, target)| *target > 0 && position(t, *p).is_none_or(|pos| pos < *target))
            .map(|(t, p, target)| format!("{t}/{p}: {:?} < {target}", position(t, *p)))
            .collect()
    }
}

/// Writes the watermark only when its seq is higher than the stored one
/// (seqs compared as decimal strings: exact beyond 2^53).
const PUBLISH: &str = r"
local cur = redis.call('HGET', KEYS[1], 'seq')
if cur and (#cur > #ARGV[1] or (#cur == #ARGV[1] and cur >= ARGV[1])) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'ts_ms', ARGV[2])
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'gtid')
else
  redis.call('HSET', KEYS[1], 'gtid', ARGV[3])
end
return 1
";

/// How often pending heartbeats are looked at again without a wake-up.
const RECHECK: Duration = Duration::from_millis(200);
/// How often the group's committed offsets are asked for, at most.
const COMMITTED_EVERY: Duration = Duration::from_secs(1);

/// The member's heartbeat reader and watermark publisher (its own task).
pub(crate) struct Publisher {
    consumer: Arc<StreamConsumer>,
    heartbeat_topic: String,
    /// The group's topics: targets on other topics (the transaction topic)
    /// are nobody's to apply.
    topics: Vec<String>,
    redis: Redis,
    keys: Keys,
    tracker: Tracker,
    status: StatusHandle,
    /// Woken by the loop after each recorded batch.
    wake: Arc<tokio::sync::Notify>,
    /// The group's committed offsets, for partitions no owner recorded yet.
    committed: HashMap<String, i64>,
    committed_at: Option<Instant>,
    beats_without_offsets: u64,
    assigned: bool,
}

impl Publisher {
    /// A reader of the heartbeat topic outside the group (same `group.id`,
    /// used only to read the group's committed offsets; it never commits).
    pub fn new(
        settings: &Settings,
        redis: Redis,
        status: StatusHandle,
        wake: Arc<tokio::sync::Notify>,
    ) -> Result<Self> {
        let mut config = rdkafka::ClientConfig::new();
        for (k, v) in settings.kafka.client_properties() {
            config.set(k, v);
        }
        let consumer: StreamConsumer = config
            .set("group.id", &settings.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A heartbeat counts once its Kafka transaction committed.
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "500")
            .create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            heartbeat_topic: cdc_event::topic::heartbeat_topic(&settings.kafka.topic_prefix),
            topics: settings.topics(),
            redis,
            keys: settings.redis.keys(),
            tracker: Tracker::default(),
            status,
            wake,
            committed: HashMap::new(),
            committed_at: None,
            beats_without_offsets: 0,
            assigned: false,
        })
    }

    /// Reads heartbeats and publishes the watermark until `stop` fires.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        self.load_current().await;
        // Failures to advance while Redis is down: the first is logged at
        // once, then one line per `QUIET` with how many there were.
        const QUIET: Duration = Duration::from_secs(30);
        let (mut failing, mut last_warned) = (0u64, None::<Instant>);
        loop {
            if !self.assigned {
                self.assigned = self.assign().await;
            }
            tokio::select! {
                _ = stop.changed() => break,
                msg = self.consumer.recv(), if self.assigned => match msg {
                    Ok(m) => {
                        let beat = m.payload().map(<[u8]>::to_vec);
                        drop(m);
                        self.heartbeat(beat.as_deref());
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat consumer error"),
                },
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(RECHECK) => {}
            }
            match self.advance().await {
                Err(e) => {
                    failing += 1;
                    if last_warned.is_none_or(|t| t.elapsed() >= QUIET) {
                        tracing::warn!(error = %e, failures = failing, "cannot advance the watermark; retrying");
                        last_warned = Some(Instant::now());
                    }
                }
                Ok(()) if failing > 0 => {
                    tracing::info!(failures = failing, "the watermark advances again");
                    (failing, last_warned) = (0, None);
                }
                Ok(()) => {}
            }
        }
    }

    /// The stored watermark, so that `/status` shows it and older
    /// heartbeats are not queued.
    async fn load_current(&mut self) {
        let mut conn = self.redis.clone();
        let stored: redis::RedisResult<HashMap<String, String>> =
            redis::AsyncCommands::hgetall(&mut conn, self.keys.watermark()).await;
        if let Ok(stored) = stored
            && let Some(seq) = stored.get("seq").and_then(|s| s.parse().ok())
        {
            let w = Watermark {
                seq,
                gtid: stored.get("gtid").cloned(),
                ts_ms: stored
                    .get("ts_ms")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            };
            self.tracker.current = Some(w.clone());
            if let Ok(mut st) = self.status.lock() {
                st.watermark = Some(w);
            }
        }
    }

    /// Assigns every partition of the heartbeat topic from its last
    /// message; false while the topic does not exist yet.
    async fn assign(&self) -> bool {
        let consumer_topic = self.heartbeat_topic.clone();
        let metadata = {
            let topic = consumer_topic.clone();
            let consumer = Arc::clone(&self.consumer);
            tokio::task::spawn_blocking(move || {
                consumer
                    .fetch_metadata(Some(&topic), Duration::from_secs(5))
                    .ok()
                    .and_then(|md| {
                        md.topics()
                            .iter()
                            .find(|t| t.name() == topic && t.error().is_none())
                            .map(|t| t.partitions().len() as i32)
                    })
            })
            .await
            .ok()
            .flatten()
        };
        let Some(partitions) = metadata.filter(|n| *n > 0) else {
            return false;
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            if tpl
                .add_partition_offset(&consumer_topic, p, Offset::OffsetTail(1))
                .is_err()
            {
                return false;
            }
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot assign the heartbeat topic");
                false
            }
        }
    }

    /// Queues a heartbeat's targets: every partition of the group's topics
    /// it names.
    fn heartbeat(&mut self, payload: Option<&[u8]>) {
        let Some(beat) =
            payload.and_then(|b| serde_json::from_slice::<cdc_event::envelope::Heartbeat>(b).ok())
        else {
            return; // unreadable: proves nothing
        };
        let Some(seq) = beat.acked_seq else { return };
        if beat.acked_offsets.is_empty() {
            metrics::counter!(m::HEARTBEATS_WITHOUT_OFFSETS).increment(1);
            self.beats_without_offsets += 1;
            if self.beats_without_offsets == 1 {
                tracing::warn!(
                    acked_seq = seq,
                    "a relay heartbeat without acked_offsets cannot move the watermark; waiting for one with them"
                );
            }
            return;
        }
        let targets = beat
            .acked_offsets
            .iter()
            .filter(|o| self.topics.contains(&o.topic))
            .map(|o| (o.topic.clone(), o.partition, o.next))
            .collect();
        self.tracker.push(Pending {
            seq,
            gtid: beat.acked_gtid,
            targets,
        });
    }

    /// Moves the watermark past every heartbeat whose targets the group
    /// applied, and publishes it.
    async fn advance(&mut self) -> Result<()> {
        if self.tracker.pending() == 0 {
            return self.show(None);
        }
        let names: Vec<(String, i32)> = self.tracker.partitions().into_iter().collect();
        let fields: Vec<String> = names.iter().map(|(t, p)| partition_key(t, *p)).collect();
        let mut conn = self.redis.clone();
        let recorded: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.keys.syncer_offsets())
            .arg(&fields)
            .query_async(&mut conn)
            .await?;
        let mut positions: HashMap<String, i64> = HashMap::new();
        for (f, r) in fields.iter().zip(&recorded) {
            if let Some(r) = r {
                positions.insert(f.clone(), *r);
            }
        }
        // Partitions no owner recorded: the group's committed offsets.
        let unknown: Vec<(String, i32)> = names
            .iter()
            .zip(&recorded)
            .filter(|(_, r)| r.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        if !unknown.is_empty() {
            self.refresh_committed(&unknown).await;
            for (t, p) in &unknown {
                let key = partition_key(t, *p);
                if let Some(c) = self.committed.get(&key) {
                    positions.insert(key, *c);
                }
            }
        }
        let position = |t: &str, p: i32| positions.get(&partition_key(t, p)).copied();
        let moved = self
            .tracker
            .advance(position, chrono::Utc::now().timestamp_millis());
        if let Ok(mut st) = self.status.lock() {
            st.watermark_waiting_on = self.tracker.waiting_on(position);
        }
        let Some(w) = moved else {
            return self.show(None);
        };
        let _: i64 = redis::cmd("EVAL")
            .arg(PUBLISH)
            .arg(1)
            .arg(self.keys.watermark())
            .arg(w.seq.to_string())
            .arg(w.ts_ms)
            .arg(w.gtid.as_deref().unwrap_or(""))
            .query_async(&mut conn)
            .await?;
        metrics::gauge!(m::WATERMARK_SEQ).set(w.seq as f64);
        self.show(Some(w))
    }

    fn show(&self, moved: Option<Watermark>) -> Result<()> {
        if let Ok(mut st) = self.status.lock() {
            st.watermark_pending = self.tracker.pending();
            if self.tracker.pending() == 0 {
                st.watermark_waiting_on.clear();
            }
            if let Some(w) = moved {
                st.watermark = Some(w);
            }
        }
        Ok(())
    }

    /// Asks the broker for the group's committed offsets of `partitions`,
    /// at most every [`COMMITTED_EVERY`].
    async fn refresh_committed(&mut self, partitions: &[(String, i32)]) {
        if self
            .committed_at
            .is_some_and(|at| at.elapsed() < COMMITTED_EVERY)
        {
            return;
        }
        self.committed_at = Some(Instant::now());
        let mut tpl = TopicPartitionList::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        let consumer = Arc::clone(&self.consumer);
        let committed = tokio::task::spawn_blocking(move || {
            consumer.committed_offsets(tpl, Duration::from_secs(5))
        })
        .await;
        let Ok(Ok(committed)) = committed else { return };
        for (t, p) in partitions {
            // No committed offset: nothing applied, position 0.
            let c = offset_in(&committed, t, *p).unwrap_or(0);
            self.committed.insert(partition_key(t, *p), c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: u64, target: i64) -> Pending {
        Pending {
            seq,
            gtid: Some(format!("0-1-{seq}")),
            targets: vec![("t".into(), 0, target), ("t".into(), 1, 0)],
        }
    }

    #[test]
    fn watermark_moves_only_when_every_partition_reached_its_target() {
        let mut t = Tracker::default();
        t.push(pending(10, 5));
        assert_eq!(t.advance(|_, _| Some(4), 1), None);
        assert_eq!(t.advance(|_, _| None, 1), None);
        let w = t.advance(|_, p| (p == 0).then_some(5), 2).unwrap();
        assert_eq!((w.seq, w.gtid.as_deref()), (10, Some("0-1-10")));
    }

    #[test]
    fn queued_heartbeats_advance_in_order_under_load() {
        let mut t = Tracker::default();
        t.push(pending(10, 5));
        t.push(pending(20, 9));
        t.push(pending(15, 7)); // not ahead of 20: ignored
        assert_eq!(t.pending(), 2);
        assert_eq!(t.advance(|_, _| Some(6), 1).unwrap().seq, 10);
        assert_eq!(t.advance(|_, _| Some(9), 1).unwrap().seq, 20);
        t.push(pending(20, 1));
        assert_eq!(t.pending(), 0, "not ahead of the current watermark");
    }
}
