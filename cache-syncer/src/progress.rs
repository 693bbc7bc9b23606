//! What the syncer has applied, per partition, and recording a finished
//! batch: its offsets stored, `/status` and the metrics updated.
//!
//! # Invariants
//! - An offset is stored (for librdkafka to commit) only after the batch
//!   holding its message was applied, skipped or dead-lettered: at least
//!   once, never past an unapplied change.
//! - No offset is stored for a partition this member no longer owns, nor for
//!   one whose events the fence refused (the new owner consumes them again).
//! - The applied position the watermark rests on is recorded in Redis with
//!   the batch's writes (see [`crate::apply`]), never taken from the fetch
//!   position, which runs ahead while the next batch is consumed.
//! - Applied seqs only grow while a partition is owned; they are the floor
//!   of the seq rule after a failed batch (see [`crate::decode`]). A
//!   partition claimed anew starts from the seq its claim found.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rdkafka::Message;
use rdkafka::consumer::Consumer;

use crate::consumer::{GroupConsumer, StatusHandle, partition_key};
use crate::decode::{Action, Incoming};
use crate::error::{Error, Result};
use crate::metrics as m;

/// Per partition (`topic/partition`): the highest applied seq.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Highest seq recorded as applied (after the apply).
    seqs: HashMap<String, u64>,
}

impl Applied {
    /// Starts from the applied seqs recorded in Redis.
    pub fn new(seqs: HashMap<String, u64>) -> Self {
        Self { seqs }
    }

    pub fn seqs(&self) -> &HashMap<String, u64> {
        &self.seqs
    }

    /// A partition claimed anew: its applied seq is what the claim found.
    pub fn restart_partition(&mut self, partition: &str, applied: Option<u64>) {
        match applied {
            Some(seq) => {
                self.seqs.insert(partition.to_owned(), seq);
            }
            None => {
                self.seqs.remove(partition);
            }
        }
    }

    /// Records a batch after its apply: stores its offsets, updates progress,
    /// `/status` and metrics. `rejected` are the batch indexes of events
    /// that were dead-lettered after the apply; `settled(partition)` says
    /// whether the partition's messages are this member's to record (owned,
    /// and not refused by the fence); `applied_at` (µs since the epoch)
    /// dates the batch's changes for the freshness histogram.
    pub fn record(
        &mut self,
        consumer: &GroupConsumer,
        status: &StatusHandle,
        batch: &[Incoming],
        rejected: &[usize],
        settled: impl Fn(&str) -> bool,
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
            settled: bool,
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
                        settled: settled(&partition_key(topic, partition)),
                    });
                    parts.len() - 1
                }
            };
            let last = &mut parts[at];
            last.offset = last.offset.max(inc.msg.offset());
            if !last.settled {
                continue;
            }
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
            if !last.settled {
                continue;
            }
            let key = partition_key(last.topic, last.partition);
            if let Err(e) = consumer.store_offset(last.topic, last.partition, last.offset) {
                // Revoked between the check and the store: the new owner
                // consumes these messages again from the committed offset.
                tracing::info!(error = %e, partition = %key, "offset not stored: the partition is no longer assigned");
                continue;
            }
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
