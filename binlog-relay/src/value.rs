//! Value typing: one binlog value of a column → its JSON form, the one
//! table both decoders follow. The general decoder ([`crate::decode`])
//! calls [`value_to_json`] for every value; the fast decoder
//! ([`crate::fastrow`]) prints integers, UTF-8 strings and DATETIMEs itself
//! and hands every other value here. Its own spellings are held equal to
//! this table by its unit tests, by `tests/it/fast.rs` over a real binlog
//! of every column type, and by the `rows_value` fuzz target.
//!
//! # The table (the documented wire format)
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
use mysql_async::Value as MyValue;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use serde_json::{Number, Value};

use cdc_event::write::write_str;

use crate::table::ColumnInfo;

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

/// `"YYYY-MM-DDTHH:MM:SS.ffffff"`, as [`value_to_json`] prints a DATETIME: the fast decoder's
/// spelling, without `format!`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_datetime(
    out: &mut Vec<u8>,
    y: u16,
    mo: u8,
    d: u8,
    h: u8,
    mi: u8,
    s: u8,
    us: u32,
) {
    fn digits(out: &mut Vec<u8>, v: u32, width: u32) {
        let mut p = 10u32.pow(width - 1);
        while p > 0 {
            out.push(b'0' + ((v / p) % 10) as u8);
            p /= 10;
        }
    }
    if y > 9999 || us > 999_999 {
        // Out of the printable range: let the general formatter say it.
        let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}");
        return write_str(out, &text);
    }
    out.push(b'"');
    digits(out, u32::from(y), 4);
    out.push(b'-');
    digits(out, u32::from(mo), 2);
    out.push(b'-');
    digits(out, u32::from(d), 2);
    out.push(b'T');
    digits(out, u32::from(h), 2);
    out.push(b':');
    digits(out, u32::from(mi), 2);
    out.push(b':');
    digits(out, u32::from(s), 2);
    out.push(b'.');
    digits(out, us, 6);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
