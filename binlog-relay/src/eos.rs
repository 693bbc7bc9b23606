//! Exactly-once publishing on Apache Kafka: the relay's messages go through
//! Kafka transactions, and the checkpoint goes into the same transaction as
//! the changes it covers.
//!
//! # How it holds
//! - One transactional producer per logical relay: `transactional.id` is
//!   `sluice-relay.<prefix>.<ha.name>` ([`crate::config::Settings::transactional_id`]).
//!   A relay that starts (or takes over as leader) calls
//!   `init_transactions`, which aborts whatever its predecessor left open
//!   and fences that producer: a frozen former leader that wakes up can no
//!   longer commit anything.
//! - Kafka transactions end only at source transaction boundaries (one
//!   Kafka transaction carries every source transaction completed within
//!   `exactly_once.commit_interval`). Before the commit, every message is
//!   delivered; then a heartbeat naming the offsets of the last complete
//!   source transaction and a [`CheckpointRecord`] on
//!   `<prefix>.relay-checkpoints` (compacted, keyed by `ha.name`) join the
//!   transaction. A `read_committed` reader sees the changes, the heartbeat
//!   that covers them and the checkpoint together, or none of them.
//! - At start the relay reads its last committed record back (after
//!   `init_transactions`, so nothing of its predecessor is still open) and
//!   resumes there, or at the file / table checkpoint when that one is later
//!   (exactly-once was off for a while). The file or table checkpoint is
//!   still written, after each commit, for `/status` and for relays with
//!   exactly-once off.
//! - A source transaction larger than `exactly_once.max_messages` is split
//!   over several Kafka transactions; the checkpoint stays at its start
//!   until its end. A crash in the middle of it publishes its committed part
//!   again (the syncer skips those by `sluice.seq`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_event::envelope::PartitionOffset;
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::config::Settings;
use crate::error::{Error, Result};

/// What the relay commits on `<prefix>.relay-checkpoints` with each Kafka
/// transaction that completes a source transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    /// The relay's `ha.name` (also the message key).
    pub name: String,
    /// With `ha` on: the epoch of the leader that committed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// Who committed it (`host:pid`).
    pub relay: String,
    pub checkpoint: Checkpoint,
    /// Per partition the relay wrote, the offset after the last message up
    /// to `checkpoint`: where a restarted relay's heartbeats start from
    /// (the partitions' ends also count transaction markers, which no
    /// reader ever applies).
    pub offsets: Vec<PartitionOffset>,
}

impl CheckpointRecord {
    /// The offsets as the acker keeps them.
    pub fn offset_map(&self) -> HashMap<(Arc<str>, i32), i64> {
        self.offsets
            .iter()
            .map(|o| ((Arc::from(o.topic.as_str()), o.partition), o.next))
            .collect()
    }
}

/// The later of two checkpoints of one relay: the file / table one when it
/// is strictly past the committed record's (written while exactly-once was
/// off), else the committed one.
pub fn later(
    stored: Option<Checkpoint>,
    committed: Option<&CheckpointRecord>,
) -> (Option<Checkpoint>, bool) {
    match (stored, committed) {
        (Some(s), Some(c)) if s.file_pos() > c.checkpoint.file_pos() => (Some(s), false),
        (_, Some(c)) => (Some(c.checkpoint.clone()), true),
        (s, None) => (s, false),
    }
}

/// Reads the last committed [`CheckpointRecord`] of `name` (blocking: run
/// it on a blocking thread). `None` when the topic does not exist or holds
/// none of this relay's.
pub fn read_last(
    settings: &Settings,
    name: &str,
    timeout: Duration,
) -> Result<Option<CheckpointRecord>> {
    let topic = cdc_event::topic::relay_checkpoints_topic(&settings.kafka.topic_prefix);
    let reader = TopicReader::new(settings, &topic, "checkpoint-reader", timeout)?;
    let mut best: Option<CheckpointRecord> = None;
    for (p, low, high) in reader.partitions.clone() {
        // The relay's own records are the most recent ones: look at the
        // tail first, and at the whole partition only when the tail holds
        // none of them.
        let tail = (high - 4096).max(low);
        let mut found = last_of(&reader, p, tail, name)?;
        if found.is_none() && tail > low {
            found = last_of(&reader, p, low, name)?;
        }
        if let Some(r) = found
            && best
                .as_ref()
                .is_none_or(|b| r.checkpoint.file_pos() >= b.checkpoint.file_pos())
        {
            best = Some(r);
        }
    }
    Ok(best)
}

/// The last record keyed `name` in `partition` from `from` on.
fn last_of(
    reader: &TopicReader,
    partition: i32,
    from: i64,
    name: &str,
) -> Result<Option<CheckpointRecord>> {
    let mut last = None;
    reader.read(partition, from, |key, payload, offset| {
        if key != Some(name.as_bytes()) {
            return Ok(());
        }
        // A null value (a deleted relay's tombstone) forgets it.
        last = match payload {
            None => None,
            Some(p) => Some(serde_json::from_slice::<CheckpointRecord>(p).map_err(|e| {
                Error::BadStart(format!(
                    "the committed checkpoint at {}/{partition}@{offset} is unreadable: {e}",
                    reader.topic
                ))
            })?),
        };
        Ok(())
    })?;
    Ok(last)
}

/// A `read_committed` reader of one of the relay's own topics, from an
/// offset to the last stable offset (blocking).
pub(crate) struct TopicReader {
    consumer: BaseConsumer<EofIsNoError>,
    pub(crate) topic: String,
    /// Each partition with its low and high watermarks (non-empty ones only).
    pub(crate) partitions: Vec<(i32, i64, i64)>,
    deadline: Instant,
}

impl TopicReader {
    /// A reader of `topic` (no partitions when it does not exist) that gives
    /// up after `timeout`.
    pub(crate) fn new(
        settings: &Settings,
        topic: &str,
        role: &str,
        timeout: Duration,
    ) -> Result<Self> {
        let consumer: BaseConsumer<EofIsNoError> = crate::sink::client_config(settings)
            .set(
                "group.id",
                format!("{}.{role}", settings.transactional_id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create_with_context(EofIsNoError)?;
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        let ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut partitions = Vec::new();
        for p in ids {
            let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
            if high > low {
                partitions.push((p, low, high));
            }
        }
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partitions,
            deadline: Instant::now() + timeout,
        })
    }

    /// Calls `f(key, payload, offset)` for every committed record of
    /// `partition` from `from` to its end.
    pub(crate) fn read(
        &self,
        partition: i32,
        from: i64,
        mut f: impl FnMut(Option<&[u8]>, Option<&[u8]>, i64) -> Result<()>,
    ) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, partition, Offset::Offset(from))?;
        self.consumer.assign(&tpl)?;
        loop {
            if Instant::now() > self.deadline {
                return Err(Error::Delivery(format!(
                    "reading {} back: timed out",
                    self.topic
                )));
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(_))) => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(m)) => f(m.key(), m.payload(), m.offset())?,
            }
        }
    }
}

/// The reader's context: reaching a partition's end is how it knows it is
/// done, not an error to log.
struct EofIsNoError;

impl ClientContext for EofIsNoError {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::warn!(%error, reason, "reading a relay topic back");
        }
    }
}

impl ConsumerContext for EofIsNoError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(file: &str, pos: u64) -> Checkpoint {
        Checkpoint {
            file: file.into(),
            pos,
            gtid: None,
            seq: pos,
            changes: 0,
            saved_at_ms: 0,
            snapshot: None,
        }
    }

    fn record(c: Checkpoint) -> CheckpointRecord {
        CheckpointRecord {
            name: "sluice".into(),
            epoch: Some(3),
            relay: "h:1".into(),
            checkpoint: c,
            offsets: vec![PartitionOffset {
                topic: "sluice.db.t".into(),
                partition: 2,
                next: 10,
            }],
        }
    }

    #[test]
    fn the_committed_record_wins_unless_the_stored_one_is_later() {
        let r = record(cp("b.000002", 100));
        assert_eq!(later(None, Some(&r)), (Some(cp("b.000002", 100)), true));
        assert_eq!(
            later(Some(cp("b.000002", 50)), Some(&r)),
            (Some(cp("b.000002", 100)), true)
        );
        assert_eq!(
            later(Some(cp("b.000002", 100)), Some(&r)),
            (Some(cp("b.000002", 100)), true)
        );
        // Written while exactly-once was off: later than the record.
        assert_eq!(
            later(Some(cp("b.000003", 4)), Some(&r)),
            (Some(cp("b.000003", 4)), false)
        );
        assert_eq!(
            later(Some(cp("b.000001", 4)), None),
            (Some(cp("b.000001", 4)), false)
        );
        assert_eq!(later(None, None), (None, false));
    }

    #[test]
    fn a_record_round_trips_and_gives_its_offsets() {
        let r = record(cp("b.000002", 100));
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<CheckpointRecord>(&text).unwrap(), r);
        let m = r.offset_map();
        assert_eq!(m.get(&(Arc::from("sluice.db.t"), 2)), Some(&10));
    }
}
