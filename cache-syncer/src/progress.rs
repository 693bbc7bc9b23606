//! What the syncer has applied, per partition, and recording a finished
//! batch: its offsets stored, `/status` and the metrics updated.
//!
//! # Invariants
//! - An offset is stored (for librdkafka to commit) only after the batch
//!   holding its message was applied, skipped or dead-lettered: at least
//!   once, never past an unapplied change.
//! - The *next offset to apply* of a partition is one past the last message
//!   whose batch was recorded here, or the group's committed offset for a
//!   partition this member has not applied to yet. The watermark rests on
//!   it, never on the fetch position, which runs ahead while the next batch
//!   is consumed during an apply.
//! - Applied seqs only grow; they are the floor of the seq rule after a
//!   failed batch (see [`crate::decode`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};

use crate::consumer::{StatusHandle, offset_in, partition_key};
use crate::decode::{Action, Incoming};
use crate::error::{Error, Result};
use crate::metrics as m;

/// Per partition (`topic/partition`): the highest applied seq and the next
/// offset to apply.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Highest seq recorded as applied (after the apply).
    seqs: HashMap<String, u64>,
    /// Next offset to apply (see the module doc).
    next: HashMap<String, i64>,
}

impl Applied {
    /// Starts from the applied seqs recorded in Redis.
    pub fn new(seqs: HashMap<String, u64>) -> Self {
        Self {
            seqs,
            next: HashMap::new(),
        }
    }

    pub fn seqs(&self) -> &HashMap<String, u64> {
        &self.seqs
    }

    /// The next offset to apply on `topic`/`partition` (everything below it
    /// applied), when known.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.next.get(&partition_key(topic, partition)).copied()
    }

    /// For target partitions this member has applied nothing to yet, the
    /// next offset to apply is the group's committed offset (everything
    /// below it was applied by an earlier run); 0 when the group has none.
    /// Asked of the broker once per such partition.
    pub async fn load_committed_for(
        &mut self,
        consumer: &Arc<StreamConsumer>,
        targets: &[(String, i32, i64)],
    ) {
        let missing = targets
            .iter()
            .any(|(t, p, target)| *target > 0 && !self.next.contains_key(&partition_key(t, *p)));
        if !missing {
            return;
        }
        let consumer = Arc::clone(consumer);
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
            self.next.entry(partition_key(t, *p)).or_insert(next);
        }
    }

    /// Records a batch after its apply: stores its offsets, updates progress,
    /// `/status` and metrics. `rejected` are the batch indexes of events
    /// that were dead-lettered after the apply; `applied_at` (µs since the
    /// epoch) dates the batch's changes for the freshness histogram.
    pub fn record(
        &mut self,
        consumer: &StreamConsumer,
        status: &StatusHandle,
        batch: &[Incoming],
        rejected: &[usize],
        applied_at: i64,
    ) -> Result<()> {
        // Per partition: the last offset, the highest applied seq and the
        // GTID of the last applied event that had one. One offset store,
        // status entry and gauge per partition, one counter per table and
        // op, instead of per message.
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
        let mut status = status
            .lock()
            .map_err(|_| Error::Other("status lock poisoned".into()))?;
        status.events_applied += applied_n;
        status.events_skipped += skipped_n;
        status.dead_lettered += dead_n;
        for last in parts {
            consumer.store_offset(last.topic, last.partition, last.offset)?;
            let key = partition_key(last.topic, last.partition);
            let next = self.next.entry(key.clone()).or_insert(0);
            *next = (*next).max(last.offset + 1);
            let ps = status.partitions.entry(key.clone()).or_default();
            ps.next_offset = Some(last.offset + 1);
            if let Some((seq, gtid)) = last.applied {
                let cur = self.seqs.entry(key).or_insert(seq);
                *cur = (*cur).max(seq);
                ps.applied_seq = Some(*cur);
                ps.applied_gtid = gtid.cloned().or(ps.applied_gtid.take());
                metrics::gauge!(m::APPLIED_SEQ, "topic" => last.topic.to_owned(), "partition" => last.partition.to_string())
                    .set(*cur as f64);
            }
        }
        status.messages_done += batch.len() as u64;
        Ok(())
    }
}

/// Now, in µs since the epoch.
pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
