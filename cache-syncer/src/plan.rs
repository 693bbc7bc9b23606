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

use cdc_event::{ChangeEvent, Op, Row};
use serde_json::Value;

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

/// Plans the effects of `event`. Unknown tables plan nothing; a known table
/// with missing or ill-typed columns is a poison message.
pub fn plan(event: &ChangeEvent) -> Result<Plan> {
    match event.source.table.as_str() {
        "counter" => plan_counter(event),
        "follow" => plan_follow(event),
        "user" => plan_user(event),
        _ => Ok(Plan::default()),
    }
}

fn image(event: &ChangeEvent) -> Result<&Row> {
    event
        .image()
        .ok_or_else(|| Error::Poison(format!("{} event without a row image", event.op.code())))
}

fn plan_counter(event: &ChangeEvent) -> Result<Plan> {
    let row = image(event)?;
    let owner = uint(row, "owner_id")?;
    let kind = u8::try_from(uint(row, "kind")?)
        .map_err(|_| Error::Poison("counter.kind out of range".into()))?;
    let value = match event.op {
        Op::Delete => 0,
        Op::Truncate => {
            return Err(Error::Poison(
                "truncate of counter cannot be applied row by row".into(),
            ));
        }
        _ => int(row, "value")?,
    };
    if value < 0 {
        return Err(Error::Poison(format!(
            "counter ({owner}, {kind}) has negative value {value}"
        )));
    }
    Ok(Plan {
        effects: vec![Effect::SetCounter { owner, kind, value }],
        changed_at_us: opt_micros(row, "updated_at")?,
    })
}

fn plan_follow(event: &ChangeEvent) -> Result<Plan> {
    let row = image(event)?;
    let from = uint(row, "from_id")?;
    let to = uint(row, "to_id")?;
    let deleted_at = opt_micros(row, "deleted_at")?;
    let created_at = micros_field(row, "created_at")?;
    let active = event.op != Op::Delete && deleted_at.is_none();
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
    // An update that moves an edge to another pair (not done by sluice, but
    // possible by hand) must also remove the old pair.
    if event.op == Op::Update
        && let Some(before) = &event.before
    {
        let (bf, bt) = (uint(before, "from_id")?, uint(before, "to_id")?);
        if (bf, bt) != (from, to) {
            let mut effects = vec![Effect::RemoveEdge { from: bf, to: bt }];
            effects.extend(plan.effects);
            return Ok(Plan { effects, ..plan });
        }
    }
    Ok(plan)
}

fn plan_user(event: &ChangeEvent) -> Result<Plan> {
    let row = image(event)?;
    let uid = uint(row, "id")?;
    Ok(Plan {
        effects: vec![Effect::InvalidateProfile { uid }],
        changed_at_us: opt_micros(row, "updated_at")?,
    })
}

fn field<'a>(row: &'a Row, col: &str) -> Result<&'a Value> {
    row.get(col)
        .ok_or_else(|| Error::Poison(format!("column {col} missing from the row image")))
}

fn uint(row: &Row, col: &str) -> Result<u64> {
    field(row, col)?
        .as_u64()
        .ok_or_else(|| Error::Poison(format!("column {col} is not an unsigned integer")))
}

fn int(row: &Row, col: &str) -> Result<i64> {
    field(row, col)?
        .as_i64()
        .ok_or_else(|| Error::Poison(format!("column {col} is not an integer")))
}

fn micros_field(row: &Row, col: &str) -> Result<i64> {
    opt_micros(row, col)?.ok_or_else(|| Error::Poison(format!("column {col} is NULL")))
}

/// Parses a DATETIME(6) value as the relay writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffff`, read as UTC) or epoch microseconds.
fn opt_micros(row: &Row, col: &str) -> Result<Option<i64>> {
    match row.get(col) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| Error::Poison(format!("column {col} is not epoch microseconds"))),
        Some(Value::String(s)) => parse_datetime_us(s)
            .map(Some)
            .ok_or_else(|| Error::Poison(format!("column {col} is not a datetime: {s:?}"))),
        Some(_) => Err(Error::Poison(format!("column {col} is not a datetime"))),
    }
}

pub use cdc_event::time::parse_datetime_us;

#[cfg(test)]
mod tests {
    use super::*;
    use cdc_event::{Snapshot, Source};
    use serde_json::json;

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
        assert!(matches!(plan(&e), Err(Error::Poison(_))));
        let e = event(
            "follow",
            Op::Create,
            None,
            Some(json!({"from_id": 1, "to_id": 2, "created_at": "yesterday"})),
        );
        assert!(matches!(plan(&e), Err(Error::Poison(_))));
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
