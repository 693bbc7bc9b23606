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
//! watermark, and the syncer counts it. Once the syncer's *applied*
//! position on every partition has reached its target — one past the last
//! message whose batch was applied and recorded, never the fetch position,
//! which runs ahead while the next batch is consumed during an apply — the
//! heartbeat's position becomes the watermark. Targets are kept in order, so
//! a steady stream of heartbeats still advances the watermark, and it never
//! moves backwards.
//!
//! The watermark is stored in Redis (`<ns>:watermark`: `seq`, `gtid`,
//! `ts_ms`), exported as a metric and shown in `/status`.
//!
//! Limitation: the computation assumes one syncer holds all partitions of
//! the group; with several members each publishes over its own partitions.

use std::collections::VecDeque;

use serde::Serialize;

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
