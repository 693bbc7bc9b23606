//! Pure decoding: rows events plus their table map → typed row images and
//! change envelopes. No I/O. Each value is typed by [`crate::value`].

use cdc_event::write::SourceRef;
use cdc_event::{ChangeEvent, Op, Row, Snapshot, TransactionRef};
use mysql_async::binlog::events::RowsEventData;
use mysql_async::binlog::row::BinlogRow;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::table::TableInfo;
use crate::value;

/// One decoded row change, before it is wrapped into an envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub op: Op,
    pub before: Option<Row>,
    pub after: Option<Row>,
}

impl RowChange {
    /// The image that identifies the row (after, or before for deletes).
    pub fn image(&self) -> Option<&Row> {
        match self.op {
            Op::Delete => self.before.as_ref(),
            _ => self.after.as_ref().or(self.before.as_ref()),
        }
    }
}

/// The op of a rows event.
pub fn op_of(ev: &RowsEventData<'_>) -> Op {
    match ev {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Create,
        RowsEventData::DeleteRowsEventV1(_) | RowsEventData::DeleteRowsEvent(_) => Op::Delete,
        RowsEventData::UpdateRowsEventV1(_)
        | RowsEventData::UpdateRowsEvent(_)
        | RowsEventData::PartialUpdateRowsEvent(_) => Op::Update,
    }
}

/// Decodes one binlog row image into column name → typed value.
pub fn row_image(info: &TableInfo, row: &BinlogRow) -> Result<Row> {
    if row.len() != info.columns.len() {
        return Err(Error::Decode {
            table: info.full_name(),
            reason: format!(
                "row image has {} of {} columns: binlog_row_image must be FULL",
                row.len(),
                info.columns.len()
            ),
        });
    }
    let mut out = Row::with_capacity(info.columns.len());
    for (i, col) in info.columns.iter().enumerate() {
        let v = match row.as_ref(i) {
            Some(v) => value::value_to_json(col, v).map_err(|reason| Error::Decode {
                table: info.full_name(),
                reason: format!("column {}: {reason}", col.name),
            })?,
            None => Value::Null,
        };
        if let Some(v) = col.rule.apply(v) {
            out.insert(col.name.clone(), v);
        }
    }
    Ok(out)
}

/// Decodes every row of a rows event.
///
/// `mysql_common` parses the values as `rows` is iterated, and a few of its
/// parsers overflow on bytes no server writes (an all-zero DATETIME2, found
/// by `fuzz/`): a debug build panics there, a release build wraps. A panic
/// is turned into a decode error naming the table, so corrupt bytes stop the
/// relay with a clear error rather than take the process down (the fast
/// decoder refuses such values itself: [`crate::fastrow`]).
pub fn decode_rows(
    info: &TableInfo,
    op: Op,
    rows: impl Iterator<Item = std::io::Result<(Option<BinlogRow>, Option<BinlogRow>)>>,
) -> Result<Vec<RowChange>> {
    let decode = std::panic::AssertUnwindSafe(|| {
        let mut out = Vec::new();
        for r in rows {
            let (before, after) = r.map_err(|e| Error::Decode {
                table: info.full_name(),
                reason: e.to_string(),
            })?;
            let before = before.as_ref().map(|b| row_image(info, b)).transpose()?;
            let after = after.as_ref().map(|a| row_image(info, a)).transpose()?;
            out.push(RowChange { op, before, after });
        }
        Ok(out)
    });
    std::panic::catch_unwind(decode).unwrap_or_else(|_| {
        Err(Error::Decode {
            table: info.full_name(),
            reason: "the binlog row parser failed on this event's bytes".into(),
        })
    })
}

/// Where a change sits: everything the `source` block and the transaction
/// block need besides the row itself.
#[derive(Debug, Clone)]
pub struct ChangeMeta<'a> {
    /// Logical server name (the topic prefix).
    pub name: &'a str,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    /// Start offset of the rows event.
    pub pos: u64,
    /// Commit time from the event header (ms).
    pub ts_ms: i64,
    pub row: u32,
    pub snapshot: Snapshot,
    pub thread: Option<u64>,
    pub transaction: Option<TransactionRef>,
    /// Production time (ms).
    pub now_ms: i64,
}

impl ChangeMeta<'_> {
    /// The envelope's `source` block for a row of `info`.
    pub fn source<'a>(&'a self, info: &'a TableInfo) -> SourceRef<'a> {
        SourceRef {
            name: self.name,
            ts_ms: self.ts_ms,
            db: &info.db,
            table: &info.table,
            server_id: self.server_id,
            gtid: self.gtid,
            file: self.file,
            pos: self.pos,
            row: self.row,
            snapshot: self.snapshot,
            thread: self.thread,
        }
    }
}

/// Wraps a row change into the Debezium-style envelope.
pub fn envelope(info: &TableInfo, change: RowChange, meta: ChangeMeta<'_>) -> ChangeEvent {
    ChangeEvent {
        before: change.before,
        after: change.after,
        source: meta.source(info).to_source(),
        op: change.op,
        ts_ms: meta.now_ms,
        transaction: meta.transaction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnInfo;
    use mysql_async::consts::ColumnType;
    use serde_json::json;

    #[test]
    fn a_parser_panic_becomes_a_decode_error() {
        let t = ColumnInfo::text_column("c", MYSQL_TYPE_LONG, false);
        let info = TableInfo {
            db: "d".into(),
            table: "t".into(),
            columns: vec![t],
            pk: vec![],
            key: None,
            wire: None,
        };
        let rows = std::iter::from_fn(|| -> Option<std::io::Result<_>> {
            panic!("a parser overflowed (expected by this test)")
        });
        let err = decode_rows(&info, Op::Create, rows).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
    }

    fn col(col_type: ColumnType) -> ColumnInfo {
        ColumnInfo::text_column("c", col_type, false)
    }

    use ColumnType::*;

    fn table() -> TableInfo {
        let mut id = col(MYSQL_TYPE_LONGLONG);
        id.name = "owner_id".into();
        let mut kind = col(MYSQL_TYPE_TINY);
        kind.name = "kind".into();
        let mut value = col(MYSQL_TYPE_LONGLONG);
        value.name = "value".into();
        TableInfo {
            db: "app".into(),
            table: "counter".into(),
            columns: vec![id, kind, value],
            pk: vec![0, 1],
            key: None,
            wire: None,
        }
    }

    #[test]
    fn envelopes_carry_source_and_transaction_blocks() {
        let t = table();
        let after = json!({"owner_id": 7, "kind": 2, "value": 3})
            .as_object()
            .unwrap()
            .clone();
        let before = json!({"owner_id": 7, "kind": 2, "value": 2})
            .as_object()
            .unwrap()
            .clone();
        let change = RowChange {
            op: Op::Update,
            before: Some(before),
            after: Some(after),
        };
        let ev = envelope(
            &t,
            change,
            ChangeMeta {
                name: "sluice",
                server_id: 1,
                gtid: Some("0-1-5"),
                file: "mysql-bin.000001",
                pos: 400,
                ts_ms: 1_000,
                row: 0,
                snapshot: Snapshot::False,
                thread: None,
                transaction: Some(TransactionRef {
                    id: "0-1-5".into(),
                    total_order: 1,
                    data_collection_order: 1,
                }),
                now_ms: 2_000,
            },
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["op"], "u");
        assert_eq!(v["before"]["value"], 2);
        assert_eq!(v["after"]["value"], 3);
        assert_eq!(v["source"]["table"], "counter");
        assert_eq!(v["source"]["gtid"], "0-1-5");
        assert_eq!(v["transaction"]["id"], "0-1-5");
    }
}
