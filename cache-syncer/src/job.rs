//! One batch's apply: its effects gathered into an [`ApplyJob`], applied by
//! the [`Applier`] with retries, apart from the consumer (the running loop
//! applies a job in its own task while it consumes the next batch).
//!
//! # Errors
//! Redis or MySQL being down (or a lock timeout) is transient: the batch is
//! retried with backoff for as long as that lasts, and nothing is recorded
//! or committed meanwhile. A definite error (a Redis key of the wrong type,
//! a value a column cannot hold) is retried [`DEFINITE_ATTEMPTS`] times;
//! then the batch's events are applied one at a time and those that still
//! fail are left in [`ApplyJob::rejected`] for the dead-letter topic, so one
//! bad change never stalls the stream.
//!
//! # Fencing
//! A job carries the member's claims on its partitions ([`Record::epochs`]).
//! When the apply finds one of them taken over by another member, the
//! partition's events are dropped from the job ([`ApplyJob::lost`]) and the
//! rest is applied: the new owner applies them from the group's committed
//! offset.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::{Duration, Instant};

use rdkafka::message::Message;

use crate::apply::{Applier, Outcome, Record};
use crate::consumer::{StatusHandle, partition_key};
use crate::decode::{Action, Incoming};
use crate::error::Result;
use crate::metrics as m;
use crate::plan::Effect;

/// A batch's writes, ready to apply without borrowing the syncer (so the
/// next batch can be consumed meanwhile).
pub(crate) struct ApplyJob {
    pub effects: Vec<Effect>,
    /// Each applied event's place in the batch, its partition and its slice
    /// of `effects`.
    events: Vec<(usize, String, Range<usize>)>,
    record: Record,
    /// Trace spans covering the apply (empty unless tracing).
    pub spans: Vec<tracing::Span>,
    /// Events that failed definitively on their own (batch index, error):
    /// dead-lettered before the batch's offsets are stored.
    pub rejected: Vec<(usize, String)>,
    /// Partitions of the batch this member no longer holds a claim on
    /// (revoked, or claimed by another member since): their events were
    /// not applied and their offsets are not stored; the new owner
    /// consumes them again from the group's committed offset.
    pub lost: BTreeSet<String>,
}

/// Attempts of a batch (and then of each of its events) that failed with a
/// definite error before giving up on it.
pub(crate) const DEFINITE_ATTEMPTS: u32 = 3;

impl ApplyJob {
    /// Gathers the batch's effects, the partitions' new applied seqs and
    /// offsets, and the claims they are fenced by: `epoch_of(partition)`,
    /// asked once per partition of the batch. Partitions without a claim
    /// are lost from the start.
    pub fn new(batch: &[Incoming], epoch_of: impl Fn(&str) -> Option<i64>) -> Self {
        let mut effects = Vec::new();
        let mut events = Vec::new();
        let mut record = Record::default();
        let mut lost = BTreeSet::new();
        // Per partition of the batch, its key and claim, found once.
        let mut parts: Vec<(&str, i32, String, bool)> = Vec::new();
        for (at, inc) in batch.iter().enumerate() {
            let (topic, partition) = (inc.msg.topic(), inc.msg.partition());
            let at_part = match parts
                .iter()
                .position(|(t, p, _, _)| *p == partition && *t == topic)
            {
                Some(i) => i,
                None => {
                    let key = partition_key(topic, partition);
                    let claimed = match epoch_of(&key) {
                        Some(epoch) => {
                            record.epochs.insert(key.clone(), epoch);
                            true
                        }
                        None => false,
                    };
                    parts.push((topic, partition, key, claimed));
                    parts.len() - 1
                }
            };
            let (_, _, key, claimed) = &parts[at_part];
            if !claimed {
                lost.insert(key.clone());
                continue;
            }
            let key = key.clone();
            let next = record.offsets.entry(key.clone()).or_insert(0);
            *next = (*next).max(inc.msg.offset() + 1);
            if let Action::Apply { effects: e, .. } = &inc.action {
                let from = effects.len();
                effects.extend(e.iter().cloned());
                if let Some(seq) = inc.seq {
                    let entry = record.seqs.entry(key.clone()).or_insert(seq);
                    *entry = (*entry).max(seq);
                }
                events.push((at, key, from..effects.len()));
            }
        }
        Self {
            effects,
            events,
            record,
            spans: apply_spans(batch),
            rejected: Vec::new(),
            lost,
        }
    }

    /// Applies the batch. Transient failures (Redis or MySQL down, a lock
    /// timeout) are retried with backoff for as long as they last; nothing
    /// is recorded or committed meanwhile. A definite failure (a key of the
    /// wrong type, a value a column cannot hold) is retried
    /// [`DEFINITE_ATTEMPTS`] times; then the events are applied one by one
    /// (in order; effects are absolute, so applying the others again is
    /// harmless) and those that still fail are left in `rejected` for the
    /// dead-letter topic, so one bad change never stalls the stream.
    ///
    /// Partitions another member has claimed since are dropped from the
    /// batch (into `lost`) and the rest is applied.
    pub async fn run(&mut self, applier: Applier, status: StatusHandle) -> Result<()> {
        let started = Instant::now();
        let whole = loop {
            match apply_with_retries(&applier, &status, &self.effects, &self.record).await {
                Ok(Outcome::Lost(parts)) => self.drop_partitions(parts),
                Ok(Outcome::Applied) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = whole {
            tracing::warn!(error = %e, events = self.events.len(), "a batch cannot be applied; applying its events one at a time");
            let mut at_event = 0;
            while at_event < self.events.len() {
                let (at, part, range) = &self.events[at_event];
                let fence = Record {
                    epochs: self
                        .record
                        .epochs
                        .get_key_value(part)
                        .map(|(k, v)| (k.clone(), *v))
                        .into_iter()
                        .collect(),
                    ..Record::default()
                };
                match apply_with_retries(&applier, &status, &self.effects[range.clone()], &fence)
                    .await
                {
                    Ok(Outcome::Applied) => at_event += 1,
                    Ok(Outcome::Lost(parts)) => self.drop_partitions(parts),
                    Err(e) => {
                        tracing::error!(error = %e, "an event cannot be applied; dead-lettering it");
                        self.rejected.push((*at, e.to_string()));
                        at_event += 1;
                    }
                }
            }
            // The batch's positions, on their own.
            loop {
                let record = self.record.clone();
                match apply_with_retries(&applier, &status, &[], &record).await? {
                    Outcome::Applied => break,
                    Outcome::Lost(parts) => self.drop_partitions(parts),
                }
            }
        }
        metrics::histogram!(m::APPLY_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Drops `parts` from the batch: their events, seqs, offsets and claims.
    fn drop_partitions(&mut self, parts: Vec<String>) {
        tracing::info!(partitions = ?parts, "partitions claimed by another member; their events in this batch are left to it");
        metrics::counter!(m::FENCED_BATCHES).increment(1);
        let mut effects = Vec::with_capacity(self.effects.len());
        let mut events = Vec::with_capacity(self.events.len());
        for (at, part, range) in self.events.drain(..) {
            if parts.contains(&part) {
                continue;
            }
            let from = effects.len();
            effects.extend_from_slice(&self.effects[range]);
            events.push((at, part, from..effects.len()));
        }
        self.effects = effects;
        self.events = events;
        for p in parts {
            self.record.epochs.remove(&p);
            self.record.seqs.remove(&p);
            self.record.offsets.remove(&p);
            self.lost.insert(p);
        }
    }
}

/// Counts a finished batch's effects by kind: one counter update per kind
/// and batch, not per effect.
pub(crate) fn count_effects(effects: &[Effect]) {
    let mut by_kind: Vec<(&'static str, u64)> = Vec::new();
    for e in effects {
        match by_kind.iter_mut().find(|(k, _)| *k == e.kind()) {
            Some((_, n)) => *n += 1,
            None => by_kind.push((e.kind(), 1)),
        }
    }
    for (kind, n) in by_kind {
        metrics::counter!(m::EFFECTS, "kind" => kind).increment(n);
    }
}

/// One apply, retried: transient errors as long as they last, definite ones
/// up to [`DEFINITE_ATTEMPTS`] times (then the error is returned).
pub(crate) async fn apply_with_retries(
    applier: &Applier,
    status: &StatusHandle,
    effects: &[Effect],
    record: &Record,
) -> Result<Outcome> {
    let mut pause = Duration::from_millis(50);
    let mut definite = 0;
    loop {
        match applier.apply(effects, record).await {
            Ok(outcome) => {
                status.lock().map(|mut s| s.retrying = None).ok();
                return Ok(outcome);
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
