//! The fast decoding path: rows-event bytes → the JSON text of each row
//! image, written straight into one buffer per event, without a
//! `serde_json::Map` per image or `mysql_common`'s per-row work (it rebuilds
//! every column's metadata for each row it reads).
//!
//! A table's [`Wire`] layout is read once per table map. Integers and
//! strings are decoded here; every other type goes through `mysql_common`'s
//! value parser and [`value::value_to_json`], so each type prints exactly
//! as on the general path ([`crate::decode::decode_rows`]), which stays in use for
//! the canal and maxwell formats, for row images that are not FULL, and for
//! MySQL's partial JSON updates. Both decoders' images are read through
//! [`crate::image::Image`]; the envelope around them is written by
//! [`crate::format::debezium`].

use mysql_async::Value as MyValue;
use mysql_async::binlog::events::RowsEventData;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::consts::ColumnType;
use mysql_common::io::ParseBuf;
use serde_json::Value;

use cdc_event::write::write_str;

use crate::error::{Error, Result};
use crate::table::{ColumnInfo, TableInfo, Wire};
use crate::value;

/// The decoded rows of one rows event: the JSON text of every value, in one
/// buffer.
#[derive(Debug, Default)]
pub struct Rows {
    buf: Vec<u8>,
    /// Per image, per column: the value's text as `buf[start..end]`.
    spans: Vec<(u32, u32)>,
    /// Per change: the index of its before and after images.
    changes: Vec<(Option<u32>, Option<u32>)>,
    columns: usize,
}

/// One row image of a [`Rows`].
#[derive(Clone, Copy)]
pub struct Image<'r> {
    rows: &'r Rows,
    index: u32,
}

impl<'r> Image<'r> {
    /// The JSON text of column `c`.
    pub fn value(&self, c: usize) -> &'r [u8] {
        let (s, e) = self.rows.spans[self.index as usize * self.rows.columns + c];
        &self.rows.buf[s as usize..e as usize]
    }
}

impl crate::image::Image for Image<'_> {
    fn write_column(&self, _: &TableInfo, c: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(self.value(c));
    }

    fn column_time_us(&self, _: &TableInfo, c: usize) -> Option<i64> {
        let v = std::str::from_utf8(self.value(c)).ok()?;
        match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(s) => cdc_event::time::parse_datetime_us(s),
            None => v.parse().ok(),
        }
    }
}

impl Rows {
    /// Number of row changes.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether the event held no rows.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The image that identifies change `i` (its key and partition), as
    /// [`crate::decode::RowChange::image`] chooses it: before for deletes, else after.
    pub fn image(&self, i: usize, op: cdc_event::Op) -> Option<Image<'_>> {
        let (before, after) = self.change(i);
        match op {
            cdc_event::Op::Delete => before,
            _ => after.or(before),
        }
    }

    /// The before and after images of change `i`.
    pub fn change(&self, i: usize) -> (Option<Image<'_>>, Option<Image<'_>>) {
        let (b, a) = self.changes[i];
        let img = |index| Image { rows: self, index };
        (b.map(img), a.map(img))
    }
}

/// Decodes every row of `ev` with the table's layout; `Ok(None)` when the
/// event needs the general path (an image that is not FULL, a partial JSON
/// update).
pub fn decode(info: &TableInfo, wire: &[Wire], ev: &RowsEventData<'_>) -> Result<Option<Rows>> {
    if matches!(ev, RowsEventData::PartialUpdateRowsEvent(_)) {
        return Ok(None);
    }
    let n = info.columns.len();
    if wire.len() != n || usize::try_from(ev.num_columns()).ok() != Some(n) {
        return Ok(None);
    }
    let full_before = ev
        .columns_before_image()
        .is_none_or(|b| b.count_ones() == n && b.len() >= n && b[..n].all());
    let full_after = ev
        .columns_after_image()
        .is_none_or(|b| b.count_ones() == n && b.len() >= n && b[..n].all());
    if !full_before || !full_after {
        return Ok(None);
    }
    let has_before = ev.columns_before_image().is_some();
    let has_after = ev.columns_after_image().is_some();
    let data = ev.rows_data();
    let mut rows = Rows {
        buf: Vec::with_capacity(data.len() * 2),
        spans: Vec::new(),
        changes: Vec::new(),
        columns: n,
    };
    let mut at = 0usize;
    let mut images = 0u32;
    let bad = |reason: String| Error::Decode {
        table: info.full_name(),
        reason,
    };
    while at < data.len() {
        let mut image = || -> Result<u32> {
            at = read_image(info, wire, data, at, &mut rows).map_err(bad)?;
            images += 1;
            Ok(images - 1)
        };
        let before = if has_before { Some(image()?) } else { None };
        let after = if has_after { Some(image()?) } else { None };
        rows.changes.push((before, after));
    }
    Ok(Some(rows))
}

/// Reads one image starting at `at` into `rows`; the offset after it.
fn read_image(
    info: &TableInfo,
    wire: &[Wire],
    data: &[u8],
    mut at: usize,
    rows: &mut Rows,
) -> std::result::Result<usize, String> {
    let n = wire.len();
    let nulls = data
        .get(at..at + n.div_ceil(8))
        .ok_or("row image cut short in its null bitmap")?;
    at += nulls.len();
    for (c, (w, col)) in wire.iter().zip(&info.columns).enumerate() {
        let start = rows.buf.len();
        if nulls[c / 8] & (1 << (c % 8)) != 0 {
            rows.buf.extend_from_slice(b"null");
        } else {
            at = read_value(*w, col, data, at, &mut rows.buf)
                .map_err(|reason| format!("column {}: {reason}", col.name))?;
        }
        let end = rows.buf.len();
        let span = u32::try_from(start)
            .ok()
            .zip(u32::try_from(end).ok())
            .ok_or("rows event too large")?;
        rows.spans.push(span);
    }
    Ok(at)
}

fn take(data: &[u8], at: usize, len: usize) -> std::result::Result<&[u8], String> {
    data.get(at..at + len)
        .ok_or_else(|| format!("value cut short: {len} bytes wanted at offset {at}"))
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Reads one non-NULL value at `at`, writes its JSON text; the offset after it.
fn read_value(
    w: Wire,
    col: &ColumnInfo,
    data: &[u8],
    at: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<usize, String> {
    match w {
        Wire::Int { len, unsigned } => {
            let len = usize::from(len);
            let raw = le(take(data, at, len)?);
            let mut num = itoa::Buffer::new();
            let text = if unsigned {
                num.format(raw)
            } else {
                // Sign-extend from `len` bytes.
                let shift = 64 - 8 * len as u32;
                num.format(((raw << shift) as i64) >> shift)
            };
            out.extend_from_slice(text.as_bytes());
            Ok(at + len)
        }
        Wire::Bytes { prefix } => {
            let p = usize::from(prefix);
            let len = usize::try_from(le(take(data, at, p)?)).map_err(|e| e.to_string())?;
            let bytes = take(data, at + p, len)?;
            match std::str::from_utf8(bytes) {
                Ok(s) if !col.is_binary() && !col.json => write_str(out, s),
                _ => write_json(out, &value::text(col, bytes)),
            }
            Ok(at + p + len)
        }
        Wire::Other { ty, meta, unsigned } => {
            let rest: &[u8] = data.get(at..).ok_or("row image cut short")?;
            packed_in_range(ty, rest)?;
            let mut buf = ParseBuf(rest);
            let v: BinlogValue<'_> = buf
                .parse((ty, &meta[..], unsigned, false))
                .map_err(|e| e.to_string())?;
            let used = rest.len() - buf.0.len();
            match (&v, col.col_type) {
                (
                    BinlogValue::Value(MyValue::Date(y, mo, d, h, mi, s, us)),
                    ColumnType::MYSQL_TYPE_DATETIME2 | ColumnType::MYSQL_TYPE_DATETIME,
                ) => value::write_datetime(out, *y, *mo, *d, *h, *mi, *s, *us),
                _ => write_json(out, &value::value_to_json(col, &v)?),
            }
            Ok(at + used)
        }
    }
}

/// The fuzz target's property (`fuzz/fuzz_targets/rows_value.rs`): the
/// first byte picks a column layout, the next two its metadata, the rest is
/// one value's bytes. The fast reader and the general path
/// (`mysql_common`'s parser, then [`value::value_to_json`]) must both
/// accept the bytes with the same text and length, or both refuse them;
/// neither may panic. `Err` describes a disagreement.
#[doc(hidden)]
pub fn check_value_paths(data: &[u8]) -> std::result::Result<(), String> {
    use ColumnType::*;
    let [pick, m0, m1, value @ ..] = data else {
        return Ok(());
    };
    let int = |ty, len, unsigned| (ty, Wire::Int { len, unsigned }, unsigned, [0, 0]);
    let other = |ty, meta: [u8; 2]| {
        (
            ty,
            Wire::Other {
                ty,
                meta,
                unsigned: false,
            },
            false,
            meta,
        )
    };
    let bytes = |ty, prefix, meta| (ty, Wire::Bytes { prefix }, false, meta);
    let (ty, wire, unsigned, meta) = match pick % 24 {
        0 => int(MYSQL_TYPE_TINY, 1, false),
        1 => int(MYSQL_TYPE_TINY, 1, true),
        2 => int(MYSQL_TYPE_SHORT, 2, false),
        3 => int(MYSQL_TYPE_INT24, 3, false),
        4 => int(MYSQL_TYPE_INT24, 3, true),
        5 => int(MYSQL_TYPE_LONG, 4, false),
        6 => int(MYSQL_TYPE_LONGLONG, 8, false),
        7 => int(MYSQL_TYPE_LONGLONG, 8, true),
        8..=10 => bytes(MYSQL_TYPE_VARCHAR, 1, [*m0 | 1, 0]),
        11 => bytes(MYSQL_TYPE_VARCHAR, 2, [*m0, *m1 | 1]),
        12 | 13 => bytes(MYSQL_TYPE_BLOB, 1 + m0 % 4, [1 + m0 % 4, 0]),
        14 => other(MYSQL_TYPE_DATETIME2, [m0 % 7, 0]),
        15 => other(MYSQL_TYPE_TIMESTAMP2, [m0 % 7, 0]),
        16 => other(MYSQL_TYPE_TIME2, [m0 % 7, 0]),
        17 => other(MYSQL_TYPE_DATE, [0, 0]),
        18 => other(MYSQL_TYPE_NEWDECIMAL, [*m0, *m1]),
        19 => other(MYSQL_TYPE_YEAR, [0, 0]),
        20 => other(MYSQL_TYPE_BIT, [*m0, *m1]),
        21 => other(MYSQL_TYPE_DOUBLE, [8, 0]),
        22 => other(MYSQL_TYPE_FLOAT, [4, 0]),
        _ => other(MYSQL_TYPE_DATETIME, [0, 0]),
    };
    let mut col = ColumnInfo {
        name: "c".into(),
        col_type: ty,
        unsigned,
        charset: Some(45),
        enum_labels: vec![],
        set_labels: vec![],
        json: false,
        rule: crate::columns::ColumnRule::Keep,
        shape: crate::table::Shape::default(),
    };
    match pick % 24 {
        9 | 12 => col.charset = Some(crate::table::BINARY_CHARSET),
        10 | 13 => col.json = true,
        _ => {}
    }
    // The relay refuses such metadata when it reads the table map, before
    // either decoder sees a row (`schema::check_column_meta`).
    if crate::schema::check_column_meta(ty, &meta).is_err() {
        return Ok(());
    }
    let mut out = Vec::new();
    let fast = read_value(wire, &col, value, 0, &mut out)
        .map(|used| (String::from_utf8_lossy(&out).into_owned(), used));
    // The general path turns a parser panic into an error
    // (`decode::decode_rows`); libFuzzer aborts on any panic, so the values
    // that make `mysql_common` panic are screened here the same way.
    let mut buf = ParseBuf(value);
    let general = packed_in_range(ty, value)
        .and_then(|()| {
            buf.parse::<BinlogValue<'_>>((ty, &meta[..], unsigned, false))
                .map_err(|e| e.to_string())
        })
        .and_then(|v| value::value_to_json(&col, &v))
        .map(|v| (v.to_string(), value.len() - buf.0.len()));
    match (fast, general) {
        (Ok(f), Ok(g)) if f == g => Ok(()),
        (Err(_), Err(_)) => Ok(()),
        (f, g) => Err(format!("{ty:?} meta {meta:?}: fast {f:?}, general {g:?}")),
    }
}

/// Refuses packed values `mysql_common` cannot read without overflowing: a
/// DATETIME2 whose 40-bit integer part lies below the format's zero point
/// (a negative date, which no server writes). See [`crate::decode::decode_rows`].
fn packed_in_range(ty: ColumnType, bytes: &[u8]) -> std::result::Result<(), String> {
    const DATETIMEF_INT_OFS: u64 = 0x80_0000_0000;
    if ty == ColumnType::MYSQL_TYPE_DATETIME2
        && let Some(int) = bytes.get(..5)
        && int.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)) < DATETIMEF_INT_OFS
    {
        return Err("DATETIME2 value before year 0: corrupt row image".into());
    }
    Ok(())
}

fn write_json(out: &mut Vec<u8>, v: &Value) {
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_corpus_decodes_alike_on_both_paths() {
        testkit::fuzz_corpus("rows_value", |name, bytes| {
            check_value_paths(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        });
    }

    fn col(col_type: ColumnType, unsigned: bool) -> ColumnInfo {
        ColumnInfo::text_column("c", col_type, unsigned)
    }

    /// The general path's text for the same bytes: mysql_common's parser and
    /// `value_to_json`.
    fn general(ty: ColumnType, meta: &[u8], c: &ColumnInfo, bytes: &[u8]) -> String {
        let v: BinlogValue<'_> = ParseBuf(bytes)
            .parse((ty, meta, c.unsigned, false))
            .unwrap();
        value::value_to_json(c, &v).unwrap().to_string()
    }

    fn fast(w: Wire, c: &ColumnInfo, bytes: &[u8]) -> (String, usize) {
        let mut out = Vec::new();
        let used = read_value(w, c, bytes, 0, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), used)
    }

    /// A small deterministic generator (no dependency for a test).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn integers_print_as_the_general_path_prints_them() {
        use ColumnType::*;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (ty, len) in [
            (MYSQL_TYPE_TINY, 1u8),
            (MYSQL_TYPE_SHORT, 2),
            (MYSQL_TYPE_INT24, 3),
            (MYSQL_TYPE_LONG, 4),
            (MYSQL_TYPE_LONGLONG, 8),
        ] {
            for unsigned in [false, true] {
                let c = col(ty, unsigned);
                let mut cases: Vec<u64> = vec![0, 1, u64::MAX, 1 << (8 * len as u32 - 1)];
                cases.extend((0..200).map(|_| next(&mut seed)));
                for raw in cases {
                    let bytes = &raw.to_le_bytes()[..usize::from(len)];
                    let (text, used) = fast(Wire::Int { len, unsigned }, &c, bytes);
                    assert_eq!(used, usize::from(len));
                    assert_eq!(
                        text,
                        general(ty, &[], &c, bytes),
                        "{ty:?} unsigned={unsigned} {bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn strings_print_as_the_general_path_prints_them() {
        use ColumnType::*;
        let texts: [&[u8]; 5] = [
            b"",
            b"plain",
            "h\u{e9}llo \u{1f980} \"quoted\" \\ \n\t\u{1}".as_bytes(),
            &[0xff, 0xfe, 0],
            br#"{"a":[1,2]}"#,
        ];
        for t in texts {
            for (binary, json) in [(false, false), (true, false), (false, true)] {
                let mut c = col(MYSQL_TYPE_VARCHAR, false);
                if binary {
                    c.charset = Some(crate::table::BINARY_CHARSET);
                }
                c.json = json;
                let mut bytes = vec![t.len() as u8];
                bytes.extend_from_slice(t);
                let (text, used) = fast(Wire::Bytes { prefix: 1 }, &c, &bytes);
                assert_eq!(used, bytes.len());
                assert_eq!(text, general(MYSQL_TYPE_VARCHAR, &[10, 0], &c, &bytes));
                // A 2-byte prefix (VARCHAR over 255 bytes), and a BLOB's 4.
                let mut two = (t.len() as u16).to_le_bytes().to_vec();
                two.extend_from_slice(t);
                assert_eq!(fast(Wire::Bytes { prefix: 2 }, &c, &two).0, text);
                let mut blob = c.clone();
                blob.col_type = MYSQL_TYPE_BLOB;
                let mut four = (t.len() as u32).to_le_bytes().to_vec();
                four.extend_from_slice(t);
                let (b, used) = fast(Wire::Bytes { prefix: 4 }, &blob, &four);
                assert_eq!(used, four.len());
                assert_eq!(b, general(MYSQL_TYPE_BLOB, &[4], &blob, &four));
            }
        }
    }

    #[test]
    fn datetimes_print_as_the_general_path_prints_them() {
        use ColumnType::*;
        let mut seed = 42u64;
        for fsp in 0u8..=6 {
            let c = col(MYSQL_TYPE_DATETIME2, false);
            let w = Wire::Other {
                ty: MYSQL_TYPE_DATETIME2,
                meta: [fsp, 0],
                unsigned: false,
            };
            for _ in 0..300 {
                // A valid packed DATETIME2: year*13+month, day, h, m, s.
                let r = next(&mut seed);
                let (y, mo, d) = (r % 10_000, (r >> 14) % 13, (r >> 18) % 32);
                let (h, mi, s) = ((r >> 23) % 24, (r >> 28) % 60, (r >> 34) % 60);
                let ymd = ((y * 13 + mo) << 5) | d;
                let hms = (h << 12) | (mi << 6) | s;
                let int = ((ymd << 17) | hms) + 0x80_0000_0000;
                let mut bytes = int.to_be_bytes()[3..].to_vec();
                let frac_len = usize::from(fsp.div_ceil(2));
                let frac = (r >> 40) % 10u64.pow(2 * frac_len as u32);
                bytes.extend_from_slice(&frac.to_be_bytes()[8 - frac_len..]);
                let (text, used) = fast(w, &c, &bytes);
                assert_eq!(used, bytes.len());
                assert_eq!(text, general(MYSQL_TYPE_DATETIME2, &[fsp], &c, &bytes));
            }
        }
    }

    #[test]
    fn other_types_go_through_the_general_printer() {
        use ColumnType::*;
        let mut c = col(MYSQL_TYPE_NEWDECIMAL, false);
        let w = Wire::Other {
            ty: MYSQL_TYPE_NEWDECIMAL,
            meta: [10, 4],
            unsigned: false,
        };
        // DECIMAL(10,4) 123456.7890: 6 integer digits (3 bytes), 4 fraction
        // digits (2 bytes), sign bit flipped for a positive value.
        let bytes = [0x81, 0xe2, 0x40, 0x1e, 0xd2];
        let (text, used) = fast(w, &c, &bytes);
        assert_eq!(used, 5);
        assert_eq!(text, general(MYSQL_TYPE_NEWDECIMAL, &[10, 4], &c, &bytes));
        assert_eq!(text, r#""123456.7890""#);
        c.col_type = MYSQL_TYPE_YEAR;
        let w = Wire::Other {
            ty: MYSQL_TYPE_YEAR,
            meta: [0, 0],
            unsigned: false,
        };
        assert_eq!(fast(w, &c, &[124]).0, "2024");
    }

    #[test]
    fn a_value_past_the_end_is_an_error_not_a_panic() {
        let c = col(ColumnType::MYSQL_TYPE_VARCHAR, false);
        let mut out = Vec::new();
        assert!(read_value(Wire::Bytes { prefix: 1 }, &c, &[9, b'a'], 0, &mut out).is_err());
        assert!(
            read_value(
                Wire::Int {
                    len: 8,
                    unsigned: false
                },
                &c,
                &[1, 2],
                0,
                &mut out
            )
            .is_err()
        );
    }
}
