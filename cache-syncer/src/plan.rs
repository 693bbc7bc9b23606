//! Pure planning: one change event → the effects it has on Redis and on the
//! `user` table's redundant counters. No I/O here; most unit tests live here.
//!
//! Every effect carries an absolute value taken from the row image (never a
//! blind increment), so applying an effect twice, or replaying a partition,
//! leaves the same state.
//!
//! | table | op | effects |
//! |---|---|---|
//! | `counter` | c, u, r | set the bucket field (and the user column for kinds 1, 2) to `after.value` |
//! | `counter` | d | set it to 0 |
//! | `follow` | c, u, r with `deleted_at` NULL | add the edge to both ZSETs and the bloom filter |
//! | `follow` | u with `deleted_at` set, d | remove the edge from both ZSETs |
//! | `user` | any | drop the cached profile |
//! | other | any | nothing |

use std::borrow::Cow;
use std::fmt;

use cdc_event::{ChangeEvent, Op};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// One idempotent write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Counter `(owner, kind)` is now `value`.
    SetCounter { owner: u64, kind: u8, value: i64 },
    /// `from` follows `to` since `at_us` (µs since the epoch, the ZSET score).
    AddEdge { from: u64, to: u64, at_us: i64 },
    /// `from` no longer follows `to`.
    RemoveEdge { from: u64, to: u64 },
    /// The cached profile of `uid` is stale.
    InvalidateProfile { uid: u64 },
}

impl Effect {
    /// Metric label of the effect kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::SetCounter { .. } => "counter",
            Effect::AddEdge { .. } => "edge_add",
            Effect::RemoveEdge { .. } => "edge_remove",
            Effect::InvalidateProfile { .. } => "profile_invalidate",
        }
    }
}

/// What planning learned besides the effects: when the change happened,
/// from the row's own microsecond column (for the freshness metric).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub effects: Vec<Effect>,
    /// Change time in µs since the epoch, when the row carries one.
    pub changed_at_us: Option<i64>,
}

/// The parts of a change message the syncer reads, borrowed from its bytes.
/// Only the table name is taken from `source`, and the row images stay raw
/// until planning reads the one it needs into a typed row: no map of JSON
/// values is built per message (the consuming side's main cost before).
#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    #[serde(borrow)]
    before: Option<&'a RawValue>,
    #[serde(borrow)]
    after: Option<&'a RawValue>,
    #[serde(borrow)]
    source: SourceTable<'a>,
    pub op: Op,
}

#[derive(Debug, Deserialize)]
struct SourceTable<'a> {
    #[serde(borrow)]
    table: Cow<'a, str>,
}

impl<'a> Change<'a> {
    /// Reads the envelope of a message value (an invalid one is poison):
    /// sluice's, or the relay's Debezium drop-in encoding, bare or inside
    /// Kafka Connect's `{"schema":…,"payload":…}` (its `schemas_enable`).
    /// Drop-in values differ only where the syncer reads nothing or reads
    /// both forms: `DATETIME(6)` columns are epoch microseconds.
    pub fn parse(bytes: &'a [u8]) -> std::result::Result<Self, serde_json::Error> {
        if with_schema(bytes) {
            #[derive(Deserialize)]
            struct Wrapped<'b> {
                #[serde(borrow)]
                payload: Change<'b>,
            }
            return serde_json::from_slice::<Wrapped<'a>>(bytes).map(|w| w.payload);
        }
        serde_json::from_slice(bytes)
    }

    /// The table the change is of.
    pub fn table(&self) -> &str {
        &self.source.table
    }

    /// Plans the effects of the change. Unknown tables plan nothing; a known
    /// table with missing or ill-typed columns is a poison message.
    pub fn plan(&self) -> Result<Plan> {
        let known = matches!(self.table(), "counter" | "follow" | "user");
        if known && self.op == Op::Truncate {
            return Err(Error::Poison(format!(
                "TRUNCATE of {}: a truncate cannot be applied row by row; run `cache-syncer rebuild`",
                self.table()
            )));
        }
        match self.table() {
            "counter" => self.plan_counter(),
            "follow" => self.plan_follow(),
            "user" => self.plan_user(),
            _ => Ok(Plan::default()),
        }
    }

    /// The image that identifies the row: `after` for inserts, updates and
    /// snapshot reads, `before` for deletes.
    fn image<T: Deserialize<'a>>(&self) -> Result<T> {
        let raw = match self.op {
            Op::Delete => self.before,
            _ => self.after.or(self.before),
        };
        let raw = raw.ok_or_else(|| {
            Error::Poison(format!("{} event without a row image", self.op.code()))
        })?;
        row_of(raw, self.table())
    }

    fn plan_counter(&self) -> Result<Plan> {
        let row: CounterRow = self.image()?;
        let owner = row.owner_id;
        let kind = u8::try_from(row.kind)
            .map_err(|_| Error::Poison("counter.kind out of range".into()))?;
        let value = if self.op == Op::Delete { 0 } else { row.value };
        if value < 0 {
            return Err(Error::Poison(format!(
                "counter ({owner}, {kind}) has negative value {value}"
            )));
        }
        Ok(Plan {
            effects: vec![Effect::SetCounter { owner, kind, value }],
            changed_at_us: row.updated_at.0,
        })
    }

    fn plan_follow(&self) -> Result<Plan> {
        let row: FollowRow = self.image()?;
        let (from, to) = (row.from_id, row.to_id);
        let deleted_at = row.deleted_at.0;
        let created_at = row
            .created_at
            .0
            .ok_or_else(|| Error::Poison("column created_at is NULL".into()))?;
        let active = self.op != Op::Delete && deleted_at.is_none();
        let plan = if active {
            Plan {
                effects: vec![Effect::AddEdge {
                    from,
                    to,
                    at_us: created_at,
                }],
                changed_at_us: Some(created_at),
            }
        } else {
            Plan {
                effects: vec![Effect::RemoveEdge { from, to }],
                changed_at_us: deleted_at,
            }
        };
        // An update that moves an edge to another pair (not done by sluice,
        // but possible by hand) must also remove the old pair.
        if self.op == Op::Update
            && let Some(before) = self.before
        {
            let before: FollowPair = row_of(before, "follow")?;
            if (before.from_id, before.to_id) != (from, to) {
                let mut effects = vec![Effect::RemoveEdge {
                    from: before.from_id,
                    to: before.to_id,
                }];
                effects.extend(plan.effects);
                return Ok(Plan { effects, ..plan });
            }
        }
        Ok(plan)
    }

    fn plan_user(&self) -> Result<Plan> {
        let row: UserRow = self.image()?;
        Ok(Plan {
            effects: vec![Effect::InvalidateProfile { uid: row.id }],
            changed_at_us: row.updated_at.0,
        })
    }
}

/// The fuzz target's property (`fuzz/fuzz_targets/envelope.rs`): any bytes
/// are read as an envelope and planned without a panic, twice alike, and a
/// value that also reads as a whole [`ChangeEvent`] plans the same through
/// [`plan`] (the path the tests use). `Err` describes a violation.
#[doc(hidden)]
pub fn check_envelope(bytes: &[u8]) -> std::result::Result<(), String> {
    let Ok(change) = Change::parse(bytes) else {
        return Ok(());
    };
    let planned = change.plan();
    if format!("{planned:?}") != format!("{:?}", change.plan()) {
        return Err("planning twice differs".into());
    }
    if let (Ok(event), Ok(p)) = (serde_json::from_slice::<ChangeEvent>(bytes), &planned)
        && let Ok(q) = plan(&event)
        && q != *p
    {
        return Err(format!("bytes plan {p:?}, the parsed event plans {q:?}"));
    }
    Ok(())
}

/// Plans the effects of `event` (the same path as a message's bytes).
pub fn plan(event: &ChangeEvent) -> Result<Plan> {
    let bytes = serde_json::to_vec(event).map_err(|e| Error::Poison(e.to_string()))?;
    Change::parse(&bytes)
        .map_err(|e| Error::Poison(format!("invalid envelope: {e}")))?
        .plan()
}

/// A row image read into `T`; a bad one is poison naming the column.
fn row_of<'a, T: Deserialize<'a>>(raw: &'a RawValue, table: &str) -> Result<T> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let why = explain(table, raw).unwrap_or_else(|| e.to_string());
        Error::Poison(format!("{table} row image: {why}"))
    })
}

/// Whether a value is Kafka Connect's `{"schema":…,"payload":…}` (its
/// JsonConverter writes `schema` first).
fn with_schema(bytes: &[u8]) -> bool {
    let trimmed = bytes.trim_ascii_start();
    trimmed
        .strip_prefix(b"{")
        .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"\"schema\""))
}

/// What a column must hold.
#[derive(Clone, Copy)]
enum Col {
    Unsigned,
    Integer,
    /// A datetime text, epoch microseconds or NULL.
    Datetime,
}

/// The columns the syncer reads per table.
fn columns(table: &str) -> &'static [(&'static str, Col)] {
    match table {
        "counter" => &[
            ("owner_id", Col::Unsigned),
            ("kind", Col::Unsigned),
            ("value", Col::Integer),
            ("updated_at", Col::Datetime),
        ],
        "follow" => &[
            ("from_id", Col::Unsigned),
            ("to_id", Col::Unsigned),
            ("created_at", Col::Datetime),
            ("deleted_at", Col::Datetime),
        ],
        "user" => &[("id", Col::Unsigned), ("updated_at", Col::Datetime)],
        _ => &[],
    }
}

/// Names the column that made a row image unreadable (only after the
/// typed read failed, so the common path never builds a map).
fn explain(table: &str, raw: &RawValue) -> Option<String> {
    use serde_json::Value;
    let row: serde_json::Map<String, Value> = serde_json::from_str(raw.get()).ok()?;
    columns(table).iter().find_map(|&(name, col)| {
        let bad = match (col, row.get(name)) {
            (Col::Datetime, None | Some(Value::Null)) => None,
            (_, None) => return Some(format!("column {name} missing from the row image")),
            (Col::Unsigned, Some(v)) => v.as_u64().is_none().then_some("not an unsigned integer"),
            (Col::Integer, Some(v)) => v.as_i64().is_none().then_some("not an integer"),
            (Col::Datetime, Some(Value::Number(n))) => {
                n.as_i64().is_none().then_some("not epoch microseconds")
            }
            (Col::Datetime, Some(Value::String(t))) => {
                parse_datetime_us(t).is_none().then_some("not a datetime")
            }
            (Col::Datetime, Some(_)) => Some("not a datetime"),
        };
        bad.map(|why| format!("column {name} is {why}"))
    })
}

/// The `counter` columns the syncer reads.
#[derive(Deserialize)]
struct CounterRow {
    owner_id: u64,
    kind: u64,
    value: i64,
    #[serde(default)]
    updated_at: Micros,
}

/// The `follow` columns the syncer reads.
#[derive(Deserialize)]
struct FollowRow {
    from_id: u64,
    to_id: u64,
    #[serde(default)]
    created_at: Micros,
    #[serde(default)]
    deleted_at: Micros,
}

/// The pair of a `follow` row image.
#[derive(Deserialize)]
struct FollowPair {
    from_id: u64,
    to_id: u64,
}

/// The `user` columns the syncer reads.
#[derive(Deserialize)]
struct UserRow {
    id: u64,
    #[serde(default)]
    updated_at: Micros,
}

/// A DATETIME(6) column as the relay writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffff`, read as UTC) or epoch microseconds, in
/// µs since the epoch; `None` for NULL or a missing column.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Micros(Option<i64>);

impl<'de> Deserialize<'de> for Micros {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Micros;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a datetime or epoch microseconds")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Micros, E> {
                Ok(Micros(None))
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Micros, E> {
                Ok(Micros(None))
            }
            fn visit_some<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> std::result::Result<Micros, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Micros, E> {
                Ok(Micros(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Micros, E> {
                i64::try_from(v)
                    .map(|v| Micros(Some(v)))
                    .map_err(|_| E::custom("not epoch microseconds"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Micros, E> {
                parse_datetime_us(s)
                    .map(|v| Micros(Some(v)))
                    .ok_or_else(|| E::custom(format!("not a datetime: {s:?}")))
            }
        }
        d.deserialize_option(V)
    }
}

pub use cdc_event::time::parse_datetime_us;

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_event::{Snapshot, Source};
    use serde_json::{Value, json};

    #[test]
    fn the_relays_debezium_drop_in_encoding_plans_alike_with_or_without_its_schema() {
        // DATETIME(6) as io.debezium.time.MicroTimestamp (epoch µs).
        let payload = json!({
            "before": null,
            "after": {"id": 9, "from_id": 1, "to_id": 2, "created_at": 1_796_106_971_106_207i64, "deleted_at": null},
            "source": {"version": "0.1.0", "connector": "mariadb", "name": "sluice", "ts_ms": 1,
                       "snapshot": "false", "db": "sluice", "sequence": null, "ts_us": 1000, "ts_ns": 1_000_000,
                       "table": "follow", "server_id": 1, "gtid": "0-1-2", "file": "b.000001", "pos": 4,
                       "row": 0, "thread": null, "query": null},
            "transaction": null, "op": "c", "ts_ms": 2, "ts_us": 2000, "ts_ns": 2_000_000,
        });
        let want = Plan {
            effects: vec![Effect::AddEdge {
                from: 1,
                to: 2,
                at_us: 1_796_106_971_106_207,
            }],
            changed_at_us: Some(1_796_106_971_106_207),
        };
        let bare = serde_json::to_vec(&payload).unwrap();
        assert_eq!(Change::parse(&bare).unwrap().plan().unwrap(), want);
        let wrapped = serde_json::to_vec(
            &json!({"schema": {"type": "struct", "fields": []}, "payload": payload}),
        )
        .unwrap();
        assert_eq!(Change::parse(&wrapped).unwrap().plan().unwrap(), want);
    }

    #[test]
    fn the_fuzz_corpus_keeps_its_properties() {
        testkit::fuzz_corpus("envelope", |name, bytes| {
            check_envelope(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        });
    }

    fn event(table: &str, op: Op, before: Option<Value>, after: Option<Value>) -> ChangeEvent {
        let obj = |v: Value| v.as_object().unwrap().clone();
        ChangeEvent {
            before: before.map(obj),
            after: after.map(obj),
            source: Source {
                version: "t".into(),
                connector: "sluice".into(),
                name: "sluice".into(),
                ts_ms: 0,
                db: "sluice".into(),
                table: table.into(),
                server_id: 1,
                gtid: None,
                file: "f".into(),
                pos: 4,
                row: 0,
                snapshot: Snapshot::False,
                thread: None,
            },
            op,
            ts_ms: 0,
            transaction: None,
        }
    }

    const T0: &str = "2026-11-26T10:00:00.000001";
    const T0_US: i64 = 1_795_687_200_000_001;

    #[test]
    fn counter_upsert_sets_the_absolute_value() {
        let e = event(
            "counter",
            Op::Update,
            Some(json!({"owner_id": 7, "kind": 2, "value": 4, "updated_at": T0})),
            Some(json!({"owner_id": 7, "kind": 2, "value": 5, "updated_at": T0})),
        );
        let p = plan(&e).unwrap();
        assert_eq!(
            p.effects,
            [Effect::SetCounter {
                owner: 7,
                kind: 2,
                value: 5
            }]
        );
        assert_eq!(p.changed_at_us, Some(T0_US));
    }

    #[test]
    fn counter_delete_resets_to_zero() {
        let e = event(
            "counter",
            Op::Delete,
            Some(json!({"owner_id": 7, "kind": 1, "value": 9})),
            None,
        );
        assert_eq!(
            plan(&e).unwrap().effects,
            [Effect::SetCounter {
                owner: 7,
                kind: 1,
                value: 0
            }]
        );
    }

    #[test]
    fn follow_insert_and_snapshot_read_add_the_edge() {
        for op in [Op::Create, Op::Read] {
            let e = event(
                "follow",
                op,
                None,
                Some(
                    json!({"id": 1, "from_id": 1, "to_id": 2, "created_at": T0, "deleted_at": null}),
                ),
            );
            assert_eq!(
                plan(&e).unwrap().effects,
                [Effect::AddEdge {
                    from: 1,
                    to: 2,
                    at_us: T0_US
                }]
            );
        }
    }

    #[test]
    fn soft_delete_and_hard_delete_remove_the_edge() {
        let row = json!({"id": 1, "from_id": 1, "to_id": 2, "created_at": T0, "deleted_at": null});
        let mut gone = row.clone();
        gone["deleted_at"] = json!(T0);
        let soft = event("follow", Op::Update, Some(row.clone()), Some(gone));
        assert_eq!(
            plan(&soft).unwrap().effects,
            [Effect::RemoveEdge { from: 1, to: 2 }]
        );
        let hard = event("follow", Op::Delete, Some(row), None);
        assert_eq!(
            plan(&hard).unwrap().effects,
            [Effect::RemoveEdge { from: 1, to: 2 }]
        );
    }

    #[test]
    fn revive_re_adds_with_the_new_time() {
        let before = json!({"id": 1, "from_id": 1, "to_id": 2, "created_at": T0, "deleted_at": T0});
        let after = json!({"id": 1, "from_id": 1, "to_id": 2, "created_at": "2026-11-26T10:00:01.000000", "deleted_at": null});
        let p = plan(&event("follow", Op::Update, Some(before), Some(after))).unwrap();
        assert_eq!(
            p.effects,
            [Effect::AddEdge {
                from: 1,
                to: 2,
                at_us: T0_US + 999_999
            }]
        );
    }

    #[test]
    fn user_change_invalidates_the_profile() {
        let e = event(
            "user",
            Op::Update,
            None,
            Some(json!({"id": 3, "username": "x"})),
        );
        assert_eq!(
            plan(&e).unwrap().effects,
            [Effect::InvalidateProfile { uid: 3 }]
        );
    }

    #[test]
    fn datetimes_may_come_as_epoch_microseconds() {
        let e = event(
            "counter",
            Op::Create,
            None,
            Some(json!({"owner_id": 7, "kind": 2, "value": 5, "updated_at": T0_US})),
        );
        assert_eq!(plan(&e).unwrap().changed_at_us, Some(T0_US));
        let e = event(
            "follow",
            Op::Create,
            None,
            Some(json!({"id": 1, "from_id": 1, "to_id": 2, "created_at": null})),
        );
        assert!(matches!(plan(&e), Err(Error::Poison(m)) if m.contains("created_at")));
    }

    #[test]
    fn only_the_table_is_read_from_the_source_block() {
        let bytes = br#"{"before":null,"after":{"owner_id":1,"kind":1,"value":3},
            "source":{"table":"counter","whatever":[1,{"x":2}]},"op":"c","ts_ms":0}"#;
        let change = Change::parse(bytes).unwrap();
        assert_eq!(change.table(), "counter");
        assert_eq!(
            change.plan().unwrap().effects,
            [Effect::SetCounter {
                owner: 1,
                kind: 1,
                value: 3
            }]
        );
    }

    #[test]
    fn unknown_tables_plan_nothing() {
        let e = event("other", Op::Create, None, Some(json!({"id": 1})));
        assert!(plan(&e).unwrap().effects.is_empty());
    }

    #[test]
    fn ill_typed_rows_are_poison() {
        let e = event(
            "counter",
            Op::Create,
            None,
            Some(json!({"owner_id": "seven", "kind": 1, "value": 1})),
        );
        assert!(
            matches!(plan(&e), Err(Error::Poison(m)) if m.contains("column owner_id is not an unsigned integer"))
        );
        let e = event(
            "follow",
            Op::Create,
            None,
            Some(json!({"from_id": 1, "to_id": 2, "created_at": "yesterday"})),
        );
        assert!(
            matches!(plan(&e), Err(Error::Poison(m)) if m.contains("column created_at is not a datetime"))
        );
        let e = event("user", Op::Update, None, Some(json!({"username": "x"})));
        assert!(
            matches!(plan(&e), Err(Error::Poison(m)) if m.contains("column id missing from the row image"))
        );
        let e = event("counter", Op::Create, None, None);
        assert!(matches!(plan(&e), Err(Error::Poison(_))));
        let e = event(
            "counter",
            Op::Create,
            None,
            Some(json!({"owner_id": 1, "kind": 1, "value": -1})),
        );
        assert!(matches!(plan(&e), Err(Error::Poison(_))));
    }
}
