//! Decoding a consumed message into what to do with it, and the seq rule.
//!
//! Pure: no Kafka client, no Redis; a [`Decoder`] turns an `OwnedMessage`
//! into an [`Incoming`] (apply these effects, skip, or poison to
//! dead-letter; relay heartbeats are read outside the group, by
//! [`crate::watermark`]) and keeps the one piece of state that needs:
//! the highest `sluice.seq` per partition taken into a batch.
//!
//! # The seq rule
//! An event whose `sluice.seq` is *below* the partition's planned seq (the
//! highest taken into a batch so far, starting from the applied seqs
//! recorded in Redis) is an old change seen again — a redelivery, a relay's
//! duplicate or replay — and is skipped, unless the syncer runs with
//! `reapply` or the relay marked it as part of an operator's replay
//! (`sluice.replay: 1`). An *equal* number is applied again: harmless, as
//! effects are absolute, and rows past a field's saturation share one
//! number. Because the planned seq moves at decode time, a replayed older
//! change cannot overtake a newer one that is still being applied.

use std::collections::HashMap;
use std::fmt::Write as _;

use rdkafka::message::{Headers, Message, OwnedMessage};

use crate::plan::{self, Effect};

/// A consumed message and what to do with it.
pub(crate) struct Incoming {
    pub msg: OwnedMessage,
    pub seq: Option<u64>,
    pub gtid: Option<String>,
    /// The relay transaction's span context (tracing on only).
    pub traceparent: Option<String>,
    /// The claim (epoch) this member held on the message's partition when
    /// it decoded it; `None` when it held none. A message decoded under a
    /// claim that has changed since is not applied (see
    /// [`crate::consumer`]): its action was decided against a seq rule
    /// that no longer holds, and the partition is fetched again from the
    /// group's committed offset anyway.
    pub claim: Option<i64>,
    pub action: Action,
}

pub(crate) enum Action {
    /// Apply these effects (table and op for metrics, change time for freshness).
    Apply {
        effects: Vec<Effect>,
        table: &'static str,
        op: &'static str,
        changed_at_us: Option<i64>,
    },
    /// Tombstone, or already applied.
    Skip,
    /// Cannot be applied: dead-letter it with this reason.
    Poison(String),
}

/// Decodes messages and applies the seq rule.
pub(crate) struct Decoder {
    /// Apply events below the partition's seq too (a fresh member replaying
    /// on purpose).
    reapply: bool,
    /// Highest seq per partition (`topic/partition`) taken into a batch:
    /// events below it are skipped, as they are applied already or will be
    /// before anything decoded later. Reset to the applied seqs when a batch
    /// fails.
    planned: HashMap<String, u64>,
    /// This member's claim (epoch) per partition it owns.
    claims: HashMap<String, i64>,
    /// Reused for the `topic/partition` key of each message decoded.
    key_buf: String,
}

impl Decoder {
    /// A decoder starting from the partitions' applied seqs.
    pub fn new(reapply: bool, applied: HashMap<String, u64>) -> Self {
        Self {
            reapply,
            planned: applied,
            claims: HashMap::new(),
            key_buf: String::new(),
        }
    }

    /// Forgets what was planned but not applied: back to `applied`.
    pub fn reset(&mut self, applied: &HashMap<String, u64>) {
        self.planned.clone_from(applied);
    }

    /// A partition claimed (anew) with `epoch`: its planned seq becomes the
    /// applied seq its claim found (none: everything is admitted), whatever
    /// this member planned when it owned the partition before (a batch of
    /// then may have been refused by the fence, never applied), and the
    /// messages decoded from now on carry the new claim.
    pub fn claim_partition(&mut self, partition: &str, epoch: i64, applied: Option<u64>) {
        match applied {
            Some(seq) => {
                self.planned.insert(partition.to_owned(), seq);
            }
            None => {
                self.planned.remove(partition);
            }
        }
        self.claims.insert(partition.to_owned(), epoch);
    }

    /// A partition revoked: what was planned for it and its claim are
    /// forgotten.
    pub fn forget_partition(&mut self, partition: &str) {
        self.planned.remove(partition);
        self.claims.remove(partition);
    }

    /// What to do with `msg`: a change that passes the seq rule is planned
    /// (and its seq taken into the partition's planned seq), an older one
    /// skipped; an unreadable one is poison.
    pub fn decode(&mut self, msg: OwnedMessage) -> Incoming {
        let seq = header_bytes(&msg, cdc_event::HEADER_SEQ)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
        let replay = header_bytes(&msg, cdc_event::HEADER_REPLAY) == Some(b"1");
        let gtid = header(&msg, cdc_event::HEADER_GTID);
        let traceparent = header(&msg, common::telemetry::TRACEPARENT);
        // The partition's key, written into a reused buffer: no allocation
        // per message.
        self.key_buf.clear();
        let _ = write!(self.key_buf, "{}/{}", msg.topic(), msg.partition());
        let claim = self.claims.get(self.key_buf.as_str()).copied();
        let action = match msg.payload() {
            None => Action::Skip,
            Some(bytes) => match plan::Change::parse(bytes) {
                Err(e) => Action::Poison(format!("invalid envelope: {e}")),
                Ok(change) => {
                    if self.admit(seq, replay) {
                        match change.plan() {
                            Ok(p) => Action::Apply {
                                effects: p.effects,
                                table: table_label(change.table()),
                                op: change.op.code(),
                                changed_at_us: p.changed_at_us,
                            },
                            Err(e) => Action::Poison(e.to_string()),
                        }
                    } else {
                        Action::Skip
                    }
                }
            },
        };
        Incoming {
            msg,
            seq,
            gtid,
            traceparent,
            claim,
            action,
        }
    }

    /// The seq rule: whether a change numbered `seq` on the partition in
    /// `key_buf` is applied (and then taken into the partition's planned
    /// seq).
    fn admit(&mut self, seq: Option<u64>, replay: bool) -> bool {
        let done = self.planned.get(self.key_buf.as_str()).copied();
        // Below what this partition applied or planned: an old change seen
        // again (redelivery, a relay's duplicate or replay), skipped unless
        // an operator replays on purpose. An equal number is applied again
        // (harmless: effects are absolute), since rows past a field's
        // saturation share one.
        let older = matches!((seq, done), (Some(s), Some(d)) if s < d);
        if older && !self.reapply && !replay {
            return false;
        }
        if let Some(s) = seq {
            match self.planned.get_mut(self.key_buf.as_str()) {
                Some(cur) => *cur = (*cur).max(s),
                None => {
                    self.planned.insert(self.key_buf.clone(), s);
                }
            }
        }
        true
    }
}

/// The metric label of a source table (the syncer consumes these three).
pub(crate) fn table_label(table: &str) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};

    const TOPIC: &str = "sluice.db.counter";

    /// A counter change (owner 1, kind 1) = `value` on partition 0, numbered
    /// `seq`, marked as an operator's replay when `replay`.
    fn change(value: i64, seq: u64, replay: bool) -> OwnedMessage {
        let payload = format!(
            r#"{{"before":null,"after":{{"owner_id":1,"kind":1,"value":{value}}},"source":{{"table":"counter"}},"op":"u","ts_ms":0}}"#
        );
        let seq = seq.to_string();
        let mut headers = OwnedHeaders::new().insert(Header {
            key: cdc_event::HEADER_SEQ,
            value: Some(seq.as_str()),
        });
        if replay {
            headers = headers.insert(Header {
                key: cdc_event::HEADER_REPLAY,
                value: Some("1"),
            });
        }
        OwnedMessage::new(
            Some(payload.into_bytes()),
            Some(br#"{"owner_id":1}"#.to_vec()),
            TOPIC.into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    /// A decoder whose partition 0 applied seq 10.
    fn decoder(reapply: bool) -> Decoder {
        let applied = HashMap::from([(format!("{TOPIC}/0"), 10)]);
        Decoder::new(reapply, applied)
    }

    fn applied(inc: &Incoming) -> bool {
        match &inc.action {
            Action::Apply { effects, .. } => !effects.is_empty(),
            Action::Skip => false,
            _ => panic!("neither applied nor skipped"),
        }
    }

    #[test]
    fn a_seq_below_the_partitions_is_skipped() {
        let mut d = decoder(false);
        assert!(!applied(&d.decode(change(1, 9, false))));
    }

    #[test]
    fn an_equal_seq_is_applied_again() {
        let mut d = decoder(false);
        assert!(applied(&d.decode(change(1, 10, false))));
        assert!(applied(&d.decode(change(2, 10, false))));
    }

    #[test]
    fn a_replay_header_applies_an_old_seq() {
        let mut d = decoder(false);
        assert!(applied(&d.decode(change(1, 3, true))));
    }

    #[test]
    fn reapply_applies_an_old_seq() {
        let mut d = decoder(true);
        assert!(applied(&d.decode(change(1, 3, false))));
    }

    #[test]
    fn a_planned_seq_skips_an_older_change_decoded_later() {
        // Seq 12 taken into a batch (not yet applied): a replayed 11 must
        // not overtake it; after a failed batch, only the applied seq counts.
        let mut d = decoder(false);
        assert!(applied(&d.decode(change(3, 12, false))));
        assert!(!applied(&d.decode(change(2, 11, false))));
        d.reset(&HashMap::from([(format!("{TOPIC}/0"), 10)]));
        assert!(applied(&d.decode(change(2, 11, false))));
    }

    #[test]
    fn another_partitions_seq_does_not_count() {
        let mut d = decoder(false);
        let m = change(1, 1, false).set_partition(1);
        assert!(applied(&d.decode(m)));
    }

    #[test]
    fn a_bad_envelope_is_poison() {
        let mut d = decoder(false);
        let bad = change(1, 11, false).set_payload(Some(b"{not json".to_vec()));
        assert!(
            matches!(d.decode(bad).action, Action::Poison(r) if r.starts_with("invalid envelope"))
        );
    }

    #[test]
    fn a_reclaimed_partition_starts_from_the_seq_its_claim_found() {
        // Seq 12 planned while this member owned partition 0; the batch was
        // refused by the fence. Claimed again with applied seq 10, 11 must
        // apply; with no applied seq at all, anything does.
        let mut d = decoder(false);
        assert!(applied(&d.decode(change(3, 12, false))));
        d.claim_partition(&format!("{TOPIC}/0"), 4, Some(10));
        assert!(applied(&d.decode(change(2, 11, false))));
        d.claim_partition(&format!("{TOPIC}/0"), 5, None);
        assert!(applied(&d.decode(change(1, 1, false))));
    }

    #[test]
    fn a_message_carries_the_claim_it_was_decoded_under() {
        let mut d = decoder(false);
        let p = format!("{TOPIC}/0");
        assert_eq!(d.decode(change(1, 11, false)).claim, None);
        d.claim_partition(&p, 7, Some(10));
        assert_eq!(d.decode(change(1, 12, false)).claim, Some(7));
        d.forget_partition(&p);
        assert_eq!(d.decode(change(1, 13, false)).claim, None);
    }

    #[test]
    fn tables_outside_the_three_share_one_label() {
        assert_eq!(table_label("follow"), "follow");
        assert_eq!(table_label("orders"), "other");
    }
}
