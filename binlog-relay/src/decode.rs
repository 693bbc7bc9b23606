//! Pure decoding: rows events plus their table map → typed row images and
//! change envelopes. No I/O; most of the relay's unit tests live here.
//!
//! # Value typing (the documented wire format)
//! | column | JSON |
//! |---|---|
//! | TINYINT … BIGINT (signed or UNSIGNED) | number (exact, also above 2^53) |
//! | DECIMAL | string, exact (`"12345.6789"`) |
//! | FLOAT, DOUBLE | number (NaN/∞ → null) |
//! | CHAR, VARCHAR, TEXT (utf8mb4) | string |
//! | BINARY, VARBINARY, BLOB, GEOMETRY | base64 string |
//! | DATE | `"YYYY-MM-DD"` |
//! | DATETIME(n) | `"YYYY-MM-DDTHH:MM:SS.ffffff"` (always 6 digits, no zone) |
//! | TIMESTAMP(n) | `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` (UTC) |
//! | TIME(n) | `"[-]HH:MM:SS[.ffffff]"` (hours may exceed 24) |
//! | YEAR | number |
//! | ENUM | label string; SET: labels joined with `,` |
//! | BIT(n) | number |
//! | JSON (MySQL binary JSON or MariaDB LONGTEXT+json_valid) | JSON value |
//! | NULL | null |

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cdc_event::{ChangeEvent, Op, Row, Snapshot, Source, TransactionRef};
use mysql_async::Value as MyValue;
use mysql_async::binlog::events::RowsEventData;
use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use serde_json::{Number, Value};

use crate::error::{Error, Result};
use crate::table::{ColumnInfo, TableInfo};

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
            Some(v) => value_to_json(col, v).map_err(|reason| Error::Decode {
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

fn number_f64(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A string column's bytes: text, JSON for JSON columns, base64 for binary.
pub fn text(col: &ColumnInfo, bytes: &[u8]) -> Value {
    if col.is_binary() {
        return Value::String(BASE64.encode(bytes));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if col.json => {
            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
        }
        Ok(s) => Value::String(s.to_owned()),
        // Without charset metadata a BLOB is indistinguishable from TEXT: bytes
        // that are not UTF-8 are kept exact as base64.
        Err(_) => Value::String(BASE64.encode(bytes)),
    }
}

fn datetime(y: u16, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> String {
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}")
}

/// Epoch seconds (with optional `.ffffff`) → `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn timestamp_text(raw: &str) -> std::result::Result<String, String> {
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, "0"));
    let secs: i64 = secs.parse().map_err(|_| format!("bad TIMESTAMP {raw:?}"))?;
    let mut frac = frac.to_owned();
    frac.truncate(6);
    while frac.len() < 6 {
        frac.push('0');
    }
    let micros: u32 = frac.parse().map_err(|_| format!("bad TIMESTAMP {raw:?}"))?;
    let t = chrono::DateTime::from_timestamp(secs, micros * 1000)
        .ok_or_else(|| format!("TIMESTAMP out of range {raw:?}"))?;
    Ok(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Converts one binlog value to the documented JSON form.
pub fn value_to_json(col: &ColumnInfo, v: &BinlogValue<'_>) -> std::result::Result<Value, String> {
    use ColumnType::*;
    let v = match v {
        BinlogValue::Value(v) => v,
        BinlogValue::Jsonb(j) => {
            return serde_json::Value::try_from(j.clone()).map_err(|e| format!("binary JSON: {e}"));
        }
        BinlogValue::JsonDiff(_) => {
            return Err(
                "partial JSON update: set binlog_row_value_options='' so the full value is logged"
                    .into(),
            );
        }
    };
    Ok(match (col.col_type, v) {
        (_, MyValue::NULL) => Value::Null,
        (MYSQL_TYPE_ENUM, MyValue::Int(i)) => match usize::try_from(*i) {
            // 0 is MySQL's "invalid value" entry, shown as an empty string.
            Ok(0) => Value::String(String::new()),
            Ok(n) if n <= col.enum_labels.len() => Value::String(col.enum_labels[n - 1].clone()),
            _ if col.enum_labels.is_empty() => Value::from(*i),
            _ => {
                return Err(format!(
                    "ENUM index {i} outside {} labels",
                    col.enum_labels.len()
                ));
            }
        },
        // mysql_common reads a signed MEDIUMINT without sign extension.
        (MYSQL_TYPE_INT24, MyValue::Int(i)) if !col.unsigned && *i >= 0x80_0000 => {
            Value::from(*i - 0x100_0000)
        }
        (MYSQL_TYPE_TIMESTAMP, MyValue::Int(secs)) => {
            Value::String(timestamp_text(&secs.to_string())?)
        }
        (_, MyValue::Int(i)) => Value::from(*i),
        (_, MyValue::UInt(u)) => Value::from(*u),
        // Print the f32 the way MySQL does (shortest round-trip form), not its widened f64.
        (_, MyValue::Float(f)) => format!("{f}")
            .parse::<f64>()
            .map(number_f64)
            .unwrap_or(Value::Null),
        (_, MyValue::Double(d)) => number_f64(*d),
        (MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE, MyValue::Date(y, mo, d, ..)) => {
            Value::String(format!("{y:04}-{mo:02}-{d:02}"))
        }
        (_, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            Value::String(datetime(*y, *mo, *d, *h, *mi, *s, *us))
        }
        (_, MyValue::Time(neg, days, h, m, s, us)) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            if *us == 0 {
                Value::String(format!("{sign}{hours:02}:{m:02}:{s:02}"))
            } else {
                Value::String(format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}"))
            }
        }
        (MYSQL_TYPE_TIMESTAMP2, MyValue::Bytes(b)) => Value::String(timestamp_text(
            std::str::from_utf8(b).map_err(|_| "bad TIMESTAMP bytes")?,
        )?),
        (MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL, MyValue::Bytes(b)) => {
            Value::String(String::from_utf8(b.clone()).map_err(|_| "bad DECIMAL bytes")?)
        }
        (MYSQL_TYPE_YEAR, MyValue::Bytes(b)) => {
            let y: u16 = std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("bad YEAR bytes")?;
            // The decoder adds 1900 to the stored byte; byte 0 is YEAR 0000.
            Value::from(if y == 1900 { 0 } else { y })
        }
        (MYSQL_TYPE_BIT, MyValue::Bytes(b)) => {
            if b.len() > 8 {
                return Err(format!("BIT value of {} bytes", b.len()));
            }
            Value::from(
                b.iter()
                    .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)),
            )
        }
        (MYSQL_TYPE_SET, MyValue::Bytes(b)) => {
            let bits = b.iter().enumerate().fold(0u64, |acc, (i, byte)| {
                acc | (u64::from(*byte) << (8 * i.min(7)))
            });
            if col.set_labels.is_empty() {
                Value::from(bits)
            } else {
                let labels: Vec<&str> = col
                    .set_labels
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < 64 && bits & (1u64 << i) != 0)
                    .map(|(_, l)| l.as_str())
                    .collect();
                Value::String(labels.join(","))
            }
        }
        (MYSQL_TYPE_GEOMETRY, MyValue::Bytes(b)) => Value::String(BASE64.encode(b)),
        (_, MyValue::Bytes(b)) => text(col, b),
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

/// Wraps a row change into the Debezium-style envelope.
pub fn envelope(info: &TableInfo, change: RowChange, meta: ChangeMeta<'_>) -> ChangeEvent {
    ChangeEvent {
        before: change.before,
        after: change.after,
        source: Source {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            connector: "sluice".to_owned(),
            name: meta.name.to_owned(),
            ts_ms: meta.ts_ms,
            db: info.db.clone(),
            table: info.table.clone(),
            server_id: meta.server_id,
            gtid: meta.gtid.map(str::to_owned),
            file: meta.file.to_owned(),
            pos: meta.pos,
            row: meta.row,
            snapshot: meta.snapshot,
            thread: meta.thread,
        },
        op: change.op,
        ts_ms: meta.now_ms,
        transaction: meta.transaction,
    }
}

/// The message key of a row: its primary key as JSON, `None` without a primary key.
pub fn key_of(info: &TableInfo, image: &Row) -> Option<String> {
    if info.pk.is_empty() {
        return None;
    }
    Some(cdc_event::key::encode_key(&info.pk_names(), image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parser_panic_becomes_a_decode_error() {
        let t = ColumnInfo::text_column("c", MYSQL_TYPE_LONG, false);
        let info = TableInfo {
            db: "d".into(),
            table: "t".into(),
            columns: vec![t],
            pk: vec![],
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

    fn conv(c: &ColumnInfo, v: MyValue) -> Value {
        value_to_json(c, &BinlogValue::Value(v)).unwrap()
    }

    use ColumnType::*;

    #[test]
    fn integers_stay_exact_numbers_including_bigint_unsigned_max() {
        assert_eq!(conv(&col(MYSQL_TYPE_TINY), MyValue::Int(-128)), json!(-128));
        assert_eq!(
            conv(&col(MYSQL_TYPE_LONGLONG), MyValue::Int(i64::MIN)),
            json!(i64::MIN)
        );
        let v = conv(&col(MYSQL_TYPE_LONGLONG), MyValue::UInt(u64::MAX));
        assert_eq!(v.to_string(), "18446744073709551615");
    }

    #[test]
    fn negative_mediumints_are_sign_extended() {
        let c = col(MYSQL_TYPE_INT24);
        assert_eq!(conv(&c, MyValue::Int(0x80_0000)), json!(-8_388_608));
        assert_eq!(conv(&c, MyValue::Int(0xff_ffff)), json!(-1));
        assert_eq!(conv(&c, MyValue::Int(8_388_607)), json!(8_388_607));
        let mut u = col(MYSQL_TYPE_INT24);
        u.unsigned = true;
        assert_eq!(conv(&u, MyValue::Int(0xff_ffff)), json!(16_777_215));
    }

    #[test]
    fn decimals_are_exact_strings() {
        assert_eq!(
            conv(
                &col(MYSQL_TYPE_NEWDECIMAL),
                MyValue::Bytes(b"-12345.6789".to_vec())
            ),
            json!("-12345.6789")
        );
    }

    #[test]
    fn floats_print_like_mysql_and_non_finite_is_null() {
        assert_eq!(
            conv(&col(MYSQL_TYPE_FLOAT), MyValue::Float(1.1)).to_string(),
            "1.1"
        );
        assert_eq!(
            conv(&col(MYSQL_TYPE_DOUBLE), MyValue::Double(2.5e-300)),
            json!(2.5e-300)
        );
        assert_eq!(
            conv(&col(MYSQL_TYPE_DOUBLE), MyValue::Double(f64::NAN)),
            Value::Null
        );
    }

    #[test]
    fn utf8mb4_text_keeps_emoji() {
        assert_eq!(
            conv(
                &col(MYSQL_TYPE_VARCHAR),
                MyValue::Bytes("héllo 🦀".as_bytes().to_vec())
            ),
            json!("héllo 🦀")
        );
    }

    #[test]
    fn binary_columns_are_base64() {
        let mut c = col(MYSQL_TYPE_BLOB);
        c.charset = Some(crate::table::BINARY_CHARSET);
        assert_eq!(
            conv(&c, MyValue::Bytes(vec![0, 1, 2, 255])),
            json!("AAEC/w==")
        );
        // Without charset metadata, bytes that are not UTF-8 are still kept exact.
        c.charset = None;
        assert_eq!(conv(&c, MyValue::Bytes(vec![0xff, 0xfe])), json!("//4="));
    }

    #[test]
    fn dates_and_datetimes_are_iso_8601() {
        assert_eq!(
            conv(
                &col(MYSQL_TYPE_NEWDATE),
                MyValue::Date(2026, 11, 26, 0, 0, 0, 0)
            ),
            json!("2026-11-26")
        );
        assert_eq!(
            conv(
                &col(MYSQL_TYPE_DATETIME2),
                MyValue::Date(2026, 11, 26, 10, 38, 37, 123456)
            ),
            json!("2026-11-26T10:38:37.123456")
        );
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        let c = col(MYSQL_TYPE_TIMESTAMP2);
        assert_eq!(
            conv(&c, MyValue::Bytes(b"1700000000.000123".to_vec())),
            json!("2023-11-14T22:13:20.000123Z")
        );
        assert_eq!(
            conv(&c, MyValue::Bytes(b"1700000000".to_vec())),
            json!("2023-11-14T22:13:20.000000Z")
        );
        assert_eq!(
            conv(&col(MYSQL_TYPE_TIMESTAMP), MyValue::Int(0)),
            json!("1970-01-01T00:00:00.000000Z")
        );
    }

    #[test]
    fn times_may_be_negative_and_exceed_a_day() {
        let c = col(MYSQL_TYPE_TIME2);
        assert_eq!(
            conv(&c, MyValue::Time(true, 1, 2, 3, 4, 0)),
            json!("-26:03:04")
        );
        assert_eq!(
            conv(&c, MyValue::Time(false, 0, 10, 0, 1, 500)),
            json!("10:00:01.000500")
        );
    }

    #[test]
    fn years_are_numbers_and_zero_year_is_zero() {
        let c = col(MYSQL_TYPE_YEAR);
        assert_eq!(conv(&c, MyValue::Bytes(b"2024".to_vec())), json!(2024));
        assert_eq!(conv(&c, MyValue::Bytes(b"1900".to_vec())), json!(0));
    }

    #[test]
    fn enums_and_sets_become_labels() {
        let mut e = col(MYSQL_TYPE_ENUM);
        e.enum_labels = vec!["small".into(), "large".into()];
        assert_eq!(conv(&e, MyValue::Int(2)), json!("large"));
        assert_eq!(conv(&e, MyValue::Int(0)), json!(""));
        assert!(value_to_json(&e, &BinlogValue::Value(MyValue::Int(3))).is_err());
        let mut s = col(MYSQL_TYPE_SET);
        s.set_labels = vec!["a".into(), "b".into(), "c".into()];
        assert_eq!(conv(&s, MyValue::Bytes(vec![0b101])), json!("a,c"));
        assert_eq!(conv(&s, MyValue::Bytes(vec![0])), json!(""));
    }

    #[test]
    fn bits_are_big_endian_numbers() {
        assert_eq!(
            conv(&col(MYSQL_TYPE_BIT), MyValue::Bytes(vec![0x01, 0x02])),
            json!(258)
        );
        assert!(
            value_to_json(
                &col(MYSQL_TYPE_BIT),
                &BinlogValue::Value(MyValue::Bytes(vec![1; 9]))
            )
            .is_err()
        );
    }

    #[test]
    fn mariadb_json_text_becomes_json_and_invalid_json_stays_text() {
        let mut c = col(MYSQL_TYPE_BLOB);
        c.json = true;
        assert_eq!(
            conv(&c, MyValue::Bytes(br#"{"a":[1,2]}"#.to_vec())),
            json!({"a":[1,2]})
        );
        assert_eq!(conv(&c, MyValue::Bytes(b"{oops".to_vec())), json!("{oops"));
    }

    #[test]
    fn null_is_null_for_every_type() {
        for t in [
            MYSQL_TYPE_LONG,
            MYSQL_TYPE_VARCHAR,
            MYSQL_TYPE_DATETIME2,
            MYSQL_TYPE_ENUM,
        ] {
            assert_eq!(conv(&col(t), MyValue::NULL), Value::Null);
        }
    }

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
            wire: None,
        }
    }

    #[test]
    fn keys_are_primary_key_json_in_index_order() {
        let t = table();
        let row = json!({"owner_id": 7, "kind": 2, "value": 3});
        assert_eq!(
            key_of(&t, row.as_object().unwrap()).unwrap(),
            r#"{"owner_id":7,"kind":2}"#
        );
        let no_pk = TableInfo { pk: vec![], ..t };
        assert_eq!(key_of(&no_pk, row.as_object().unwrap()), None);
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
