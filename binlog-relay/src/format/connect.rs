//! The Debezium drop-in encoding (`debezium.value_encoding = debezium`,
//! `binlog-relay run --value-encoding debezium`): row changes as Debezium's
//! MySQL/MariaDB connector produces them and Kafka Connect's `JsonConverter`
//! writes them, for sinks and stream processors built for Debezium.
//!
//! Each value is converted from sluice's typing ([`crate::value`]) with the
//! column's declared size ([`crate::table::Shape`]), under Debezium's four
//! most used settings ([`DebeziumSettings`]):
//!
//! | column | Debezium's default encoding | schema (`type`, `name`) |
//! |---|---|---|
//! | TINYINT, SMALLINT | number | `int16` (SMALLINT UNSIGNED `int32`) |
//! | MEDIUMINT, INT | number | `int32` (INT UNSIGNED `int64`) |
//! | BIGINT | number; UNSIGNED above 2^63 wraps (`long`), or `precise`: Decimal | `int64` |
//! | DECIMAL | `precise`: base64 of the unscaled two's complement; `double`; `string` | `bytes` `org.apache.kafka.connect.data.Decimal` |
//! | FLOAT, DOUBLE | number | `float64` |
//! | DATE | days since 1970-01-01 | `int32` `io.debezium.time.Date` |
//! | TIME(n) | microseconds (`connect`: milliseconds) | `int64` `io.debezium.time.MicroTime` |
//! | DATETIME(0–3) | epoch milliseconds | `int64` `io.debezium.time.Timestamp` |
//! | DATETIME(4–6) | epoch microseconds (`connect`: milliseconds) | `int64` `io.debezium.time.MicroTimestamp` |
//! | TIMESTAMP(n) | `"YYYY-MM-DDTHH:MM:SS[.f…]Z"`, n fraction digits | `string` `io.debezium.time.ZonedTimestamp` |
//! | YEAR | number | `int32` `io.debezium.time.Year` |
//! | BIT(1) | boolean | `boolean` |
//! | BIT(n) | little-endian bytes | `bytes` `io.debezium.data.Bits` |
//! | ENUM, SET | label(s) | `string` `io.debezium.data.Enum` / `EnumSet` |
//! | JSON | the JSON text | `string` `io.debezium.data.Json` |
//! | binary strings | base64 (`binary.handling.mode`: `bytes`, `base64`, `base64-url-safe`, `hex`) | `bytes` |
//! | GEOMETRY | `{"wkb": base64, "srid": n}` | `io.debezium.data.geometry.Geometry` |
//! | zero dates | null | |
//!
//! The envelope: `before`, `after`, `source` (`version` = sluice's,
//! `connector` = `mariadb` or `mysql` as Debezium's, `name`, `ts_ms`,
//! `snapshot`, `db`, `sequence`, `ts_us`, `ts_ns`, `table`, `server_id`,
//! `gtid`, `file`, `pos`, `row`, `thread`, `query`), `transaction`, `op`,
//! `ts_ms`, `ts_us`, `ts_ns`. With `schemas_enable`, key and value are
//! `{"schema":…,"payload":…}`. An update that changes the key columns is a
//! delete (with its tombstone) under the old key and a create under the new
//! one, as Debezium sends it ([`split`]); the transaction topic's records
//! are Debezium's too ([`transaction_record`]).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE as BASE64_URL};
use mysql_async::consts::ColumnType;
use serde_json::{Map, Value, json};

use cdc_event::write::{SLUICE_VERSION, num, opt_str, write_str, write_transaction};
use cdc_event::{Op, Row, Snapshot};

use super::Payload;
use crate::columns::ColumnRule;
use crate::config::{
    BigintUnsignedMode, BinaryMode, DebeziumSettings, DecimalMode, TimePrecisionMode,
};
use crate::decode::{ChangeMeta, RowChange};
use crate::image;
use crate::table::{ColumnInfo, TableInfo};

/// One message of a row change in this encoding.
#[derive(Debug)]
pub struct Part {
    pub key: Option<String>,
    pub payload: Payload,
    /// Followed by a tombstone under the same key.
    pub tombstone: bool,
}

/// Everything the encoding needs besides the row.
#[derive(Debug, Clone, Copy)]
pub struct Encoding<'a> {
    pub settings: &'a DebeziumSettings,
    /// `mariadb` or `mysql`, as Debezium's connectors name themselves.
    pub connector: &'a str,
    pub tombstones: bool,
}

/// A row change as Debezium sends it: an update that changes the key
/// columns becomes a delete (followed by its tombstone) of the old row and
/// a create of the new one; anything else stays one change.
pub fn split(info: &TableInfo, change: RowChange) -> Vec<RowChange> {
    if change.op == Op::Update
        && let (Some(before), Some(after)) = (&change.before, &change.after)
        && !info.key_columns().is_empty()
        && image::key(info, before) != image::key(info, after)
    {
        return vec![
            RowChange {
                op: Op::Delete,
                before: change.before,
                after: None,
            },
            RowChange {
                op: Op::Create,
                before: None,
                after: change.after,
            },
        ];
    }
    vec![change]
}

/// The message of one row change (after [`split`]), written straight into
/// its bytes (no intermediate maps: this runs once per row).
pub fn encode(
    info: &TableInfo,
    change: &RowChange,
    meta: &ChangeMeta<'_>,
    e: Encoding<'_>,
) -> Part {
    encode_marked(info, change, meta, e, snapshot_marker(meta.snapshot))
}

/// Debezium's `source.snapshot` marker of a snapshot row: `first` (the
/// snapshot's first row), `first_in_data_collection` / `last_in_data_collection`
/// (a table's first / last row), `last` (the snapshot's last row), else
/// `true`. The last row wins over the first when they are one.
pub fn snapshot_row_marker(
    first_of_snapshot: bool,
    first_of_table: bool,
    last_of_table: bool,
    last_of_snapshot: bool,
) -> &'static str {
    if last_of_snapshot {
        "last"
    } else if first_of_snapshot {
        "first"
    } else if last_of_table {
        "last_in_data_collection"
    } else if first_of_table {
        "first_in_data_collection"
    } else {
        "true"
    }
}

/// [`encode`] with `source.snapshot` given (snapshot rows).
pub fn encode_marked(
    info: &TableInfo,
    change: &RowChange,
    meta: &ChangeMeta<'_>,
    e: Encoding<'_>,
    marker: &'static str,
) -> Part {
    let image = match change.op {
        Op::Delete => change.before.as_ref(),
        _ => change.after.as_ref().or(change.before.as_ref()),
    };
    let mut out = Vec::with_capacity(super::PAYLOAD_CAPACITY * 2);
    if e.settings.schemas_enable {
        out.extend_from_slice(b"{\"schema\":");
        out.extend_from_slice(value_schema(info, meta.name, e).to_string().as_bytes());
        out.extend_from_slice(b",\"payload\":");
    }
    write_envelope(&mut out, info, change, meta, e, marker);
    if e.settings.schemas_enable {
        out.push(b'}');
    }
    Part {
        key: image.and_then(|r| key(info, r, meta.name, e)),
        payload: Payload::from_bytes(out),
        // Debezium sends a delete's tombstone even without a key.
        tombstone: change.op == Op::Delete && e.tombstones,
    }
}

/// A transaction record (BEGIN / END) as Debezium's transaction topic has
/// it: key `{"id":…}` and the record, each with its schema on request.
pub fn transaction_record(
    record: &cdc_event::envelope::TransactionRecord,
    e: Encoding<'_>,
) -> (String, Vec<u8>) {
    let key = json!({"id": record.id});
    let value = serde_json::to_value(record).unwrap_or(Value::Null);
    if !e.settings.schemas_enable {
        return (key.to_string(), value.to_string().into_bytes());
    }
    let f = |ty: &str, optional: bool, field: &str| json!({"type": ty, "optional": optional, "field": field});
    let key = json!({
        "schema": {"type": "struct", "fields": [f("string", false, "id")], "optional": false,
                   "name": "io.debezium.connector.common.TransactionMetadataKey", "version": 1},
        "payload": key,
    });
    let value = json!({
        "schema": {"type": "struct", "fields": [
                f("string", false, "status"), f("string", false, "id"), f("int64", true, "event_count"),
                {"type": "array", "items": {"type": "struct", "fields": [
                        f("string", false, "data_collection"), f("int64", false, "event_count")],
                    "optional": true, "name": "event.collection", "version": 1},
                 "optional": true, "field": "data_collections"},
                f("int64", false, "ts_ms")],
            "optional": false, "name": "io.debezium.connector.common.TransactionMetadataValue",
            "version": 1},
        "payload": value,
    });
    (key.to_string(), value.to_string().into_bytes())
}

fn snapshot_marker(s: Snapshot) -> &'static str {
    match s {
        Snapshot::False => "false",
        Snapshot::True => "true",
        Snapshot::Last => "last",
    }
}

/// A row image in Debezium's encoding, or `null`.
fn write_image(out: &mut Vec<u8>, info: &TableInfo, row: Option<&Row>, s: &DebeziumSettings) {
    let Some(row) = row else {
        out.extend_from_slice(b"null");
        return;
    };
    out.push(b'{');
    let mut first = true;
    for c in &info.columns {
        let Some(v) = row.get(&c.name) else { continue };
        if !first {
            out.push(b',');
        }
        first = false;
        write_str(out, &c.name);
        out.push(b':');
        // Writing a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &value(c, v, s));
    }
    out.push(b'}');
}

/// Debezium's envelope, field by field in its order.
fn write_envelope(
    out: &mut Vec<u8>,
    info: &TableInfo,
    change: &RowChange,
    meta: &ChangeMeta<'_>,
    e: Encoding<'_>,
    marker: &str,
) {
    let s = e.settings;
    out.extend_from_slice(b"{\"before\":");
    write_image(out, info, change.before.as_ref(), s);
    out.extend_from_slice(b",\"after\":");
    write_image(out, info, change.after.as_ref(), s);
    out.extend_from_slice(b",\"source\":{\"version\":");
    write_str(out, SLUICE_VERSION);
    out.extend_from_slice(b",\"connector\":");
    write_str(out, e.connector);
    out.extend_from_slice(b",\"name\":");
    write_str(out, meta.name);
    out.extend_from_slice(b",\"ts_ms\":");
    num(out, meta.ts_ms);
    out.extend_from_slice(b",\"snapshot\":");
    write_str(out, marker);
    out.extend_from_slice(b",\"db\":");
    write_str(out, &info.db);
    out.extend_from_slice(b",\"sequence\":null,\"ts_us\":");
    num(out, meta.ts_ms.saturating_mul(1000));
    out.extend_from_slice(b",\"ts_ns\":");
    num(out, meta.ts_ms.saturating_mul(1_000_000));
    out.extend_from_slice(b",\"table\":");
    write_str(out, &info.table);
    out.extend_from_slice(b",\"server_id\":");
    num(out, meta.server_id);
    out.extend_from_slice(b",\"gtid\":");
    opt_str(out, meta.gtid);
    out.extend_from_slice(b",\"file\":");
    write_str(out, meta.file);
    out.extend_from_slice(b",\"pos\":");
    num(out, meta.pos);
    out.extend_from_slice(b",\"row\":");
    num(out, meta.row);
    out.extend_from_slice(b",\"thread\":");
    match meta.thread {
        Some(t) => num(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"query\":null},\"transaction\":");
    write_transaction(out, meta.transaction.as_ref());
    out.extend_from_slice(b",\"op\":");
    write_str(out, change.op.code());
    let now_us = meta.now_ms.saturating_mul(1000);
    out.extend_from_slice(b",\"ts_ms\":");
    num(out, meta.now_ms);
    out.extend_from_slice(b",\"ts_us\":");
    num(out, now_us);
    out.extend_from_slice(b",\"ts_ns\":");
    num(out, now_us.saturating_mul(1000));
    out.push(b'}');
}

/// The key: the key columns, converted; with `schemas_enable`, with its schema.
fn key(info: &TableInfo, row: &Row, prefix: &str, e: Encoding<'_>) -> Option<String> {
    let cols = info.key_columns();
    if cols.is_empty() {
        return None;
    }
    let mut payload = Map::new();
    for &i in cols {
        let c = info.columns.get(i)?;
        let v = row
            .get(&c.name)
            .map_or(Value::Null, |v| value(c, v, e.settings).into_owned());
        payload.insert(c.name.clone(), v);
    }
    let payload = Value::Object(payload);
    Some(if e.settings.schemas_enable {
        let fields: Vec<Value> = cols
            .iter()
            .filter_map(|&i| info.columns.get(i))
            .map(|c| field_schema(c, e.settings, false))
            .collect();
        json!({
            "schema": {
                "type": "struct",
                "fields": fields,
                "optional": false,
                "name": format!("{prefix}.{}.{}.Key", info.db, info.table),
            },
            "payload": payload,
        })
        .to_string()
    } else {
        payload.to_string()
    })
}

/// One value (sluice's typing) in Debezium's encoding: borrowed where the
/// two encodings agree.
pub fn value<'a>(col: &ColumnInfo, v: &'a Value, s: &DebeziumSettings) -> Cow<'a, Value> {
    match convert(col, v, s) {
        Some(x) => Cow::Owned(x),
        None => Cow::Borrowed(v),
    }
}

/// `None`: the value is the same in both encodings.
fn convert(col: &ColumnInfo, v: &Value, s: &DebeziumSettings) -> Option<Value> {
    use ColumnType::*;
    // NULL, and a masked column's mask (a string), pass as they are.
    if v.is_null() || col.rule != ColumnRule::Keep {
        return None;
    }
    let text = v.as_str();
    Some(match col.col_type {
        MYSQL_TYPE_LONGLONG if col.unsigned => {
            match (v.as_u64(), s.bigint_unsigned_handling_mode) {
                // Debezium's `long`: the bits of the u64 as a signed long.
                (Some(u), BigintUnsignedMode::Long) => Value::from(u as i64),
                (Some(u), BigintUnsignedMode::Precise) => decimal(&u.to_string(), 0, s),
                _ => return None,
            }
        }
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => match text {
            Some(t) => decimal(t, col.shape.scale, s),
            None => return None,
        },
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => {
            text.and_then(epoch_days).map_or(Value::Null, Value::from)
        }
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => match text.and_then(epoch_us) {
            Some(us) if micro_timestamp(col, s) => Value::from(us),
            Some(us) => Value::from(us.div_euclid(1000)),
            None => Value::Null,
        },
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Value::String(zoned(text?, col.shape.fsp)),
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => text
            .and_then(time_us)
            .map(|us| match s.time_precision_mode {
                TimePrecisionMode::AdaptiveTimeMicroseconds => Value::from(us),
                TimePrecisionMode::Connect => Value::from(us.div_euclid(1000)),
            })
            .unwrap_or(Value::Null),
        MYSQL_TYPE_BIT => match v.as_u64() {
            Some(n) if col.shape.bits <= 1 => Value::Bool(n != 0),
            Some(n) => {
                let len = usize::from(col.shape.bits.div_ceil(8)).clamp(1, 8);
                binary(&n.to_le_bytes()[..len], s)
            }
            None => return None,
        },
        MYSQL_TYPE_GEOMETRY => match text.and_then(|t| BASE64.decode(t).ok()) {
            Some(b) if b.len() >= 4 => {
                let srid = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                json!({
                    "wkb": BASE64.encode(&b[4..]),
                    // Debezium leaves SRID 0 (none) out.
                    "srid": (srid != 0).then_some(srid),
                })
            }
            _ => return None,
        },
        MYSQL_TYPE_JSON => match v {
            Value::String(_) => return None,
            other => Value::String(other.to_string()),
        },
        _ if col.shape.json_text => match v {
            Value::String(_) => return None,
            other => Value::String(other.to_string()),
        },
        _ if col.is_binary() => match text.and_then(|t| BASE64.decode(t).ok()) {
            // BINARY(n): the binlog drops trailing zero bytes, Debezium
            // sends the column's n bytes.
            Some(mut b) => {
                if col.col_type == MYSQL_TYPE_STRING {
                    let n = usize::from(col.shape.length);
                    if b.len() < n {
                        b.resize(n, 0);
                    }
                }
                binary(&b, s)
            }
            None => return None,
        },
        _ => return None,
    })
}

/// The decimal number in `b` (digits only).
fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

/// `"YYYY-MM-DD…"` → days since 1970-01-01; `None` for a zero or invalid date.
fn epoch_days(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    )?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some(date.signed_duration_since(epoch).num_days())
}

/// `"YYYY-MM-DDTHH:MM:SS[.ffffff]"` (sluice's DATETIME) → epoch
/// microseconds, read as UTC as Debezium does; `None` for a zero date.
fn epoch_us(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let days = epoch_days(t)?;
    let (h, mi, sec) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let us = match b.get(19) {
        Some(b'.') => {
            let f = &b[20..b.len().min(26)];
            digits(f)? * 10i64.pow(6 - u32::try_from(f.len()).ok()?)
        }
        _ => 0,
    };
    Some((((days * 24 + h) * 60 + mi) * 60 + sec) * 1_000_000 + us)
}

/// DATETIME(4–6) in microseconds (`adaptive_time_microseconds`).
fn micro_timestamp(col: &ColumnInfo, s: &DebeziumSettings) -> bool {
    s.time_precision_mode == TimePrecisionMode::AdaptiveTimeMicroseconds && col.shape.fsp > 3
}

/// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` → `fsp` fraction digits.
fn zoned(t: &str, fsp: u8) -> String {
    let body = t.strip_suffix('Z').unwrap_or(t);
    let (secs, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits: String = frac
        .chars()
        .chain(std::iter::repeat('0'))
        .take(usize::from(fsp))
        .collect();
    if digits.is_empty() {
        format!("{secs}Z")
    } else {
        format!("{secs}.{digits}Z")
    }
}

/// `"[-]HH:MM:SS[.ffffff]"` → microseconds.
fn time_us(t: &str) -> Option<i64> {
    let (neg, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec: i64 = parts.next()?.parse().ok()?;
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    let us: i64 = frac.parse().ok()?;
    let total = ((h * 60 + m) * 60 + sec) * 1_000_000 + us;
    Some(if neg { -total } else { total })
}

fn binary(bytes: &[u8], s: &DebeziumSettings) -> Value {
    Value::String(match s.binary_handling_mode {
        BinaryMode::Bytes | BinaryMode::Base64 => BASE64.encode(bytes),
        BinaryMode::Base64UrlSafe => BASE64_URL.encode(bytes),
        BinaryMode::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

fn decimal(text: &str, scale: u8, s: &DebeziumSettings) -> Value {
    match s.decimal_handling_mode {
        DecimalMode::String => Value::String(text.to_owned()),
        DecimalMode::Double => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        DecimalMode::Precise => {
            let scale = if scale == 0 {
                // Unknown scale (no metadata): the text's own.
                text.split_once('.').map_or(0, |(_, f)| f.len())
            } else {
                usize::from(scale)
            };
            unscaled_bytes(text, scale).map_or(Value::Null, |b| Value::String(BASE64.encode(b)))
        }
    }
}

/// A decimal's unscaled value at `scale` as Java's `BigInteger.toByteArray`
/// gives it: big-endian two's complement, the fewest bytes that keep the sign.
pub fn unscaled_bytes(text: &str, scale: usize) -> Option<Vec<u8>> {
    let (neg, t) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = int
        .bytes()
        .chain(frac.bytes().chain(std::iter::repeat(b'0')).take(scale));
    // Little-endian base-256 magnitude.
    let mut mag: Vec<u8> = Vec::new();
    for d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let mut carry = u32::from(d - b'0');
        for b in &mut mag {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while mag.last() == Some(&0) {
        mag.pop();
    }
    let negative = neg && !mag.is_empty();
    // One spare byte for the sign.
    mag.push(0);
    if negative {
        let mut carry = 1u16;
        for b in &mut mag {
            let v = u16::from(!*b) + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    mag.reverse();
    // Drop leading bytes that only repeat the sign.
    let fill = if negative { 0xff } else { 0x00 };
    while mag.len() > 1 && mag[0] == fill && (mag[1] & 0x80 == 0x80) == negative {
        mag.remove(0);
    }
    Some(mag)
}

/// A Connect schema in `JsonConverter`'s field order: `type`, `fields`,
/// `optional`, `default`, `name`, `version`, `doc`, `parameters`, `field`.
#[derive(Default)]
struct Schema<'a> {
    ty: &'a str,
    fields: Option<Value>,
    name: Option<&'a str>,
    doc: Option<&'a str>,
    parameters: Option<Value>,
}

impl Schema<'_> {
    fn plain(ty: &str) -> Schema<'_> {
        Schema {
            ty,
            ..Schema::default()
        }
    }

    fn named<'a>(ty: &'a str, name: &'a str) -> Schema<'a> {
        Schema {
            ty,
            name: Some(name),
            ..Schema::default()
        }
    }

    fn with_parameters(self, parameters: Value) -> Self {
        Schema {
            parameters: Some(parameters),
            ..self
        }
    }

    fn write(self, optional: bool, field: &str) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), Value::from(self.ty));
        if let Some(f) = self.fields {
            m.insert("fields".into(), f);
        }
        m.insert("optional".into(), Value::Bool(optional));
        if let Some(n) = self.name {
            m.insert("name".into(), Value::from(n));
            m.insert("version".into(), Value::from(1));
        }
        if let Some(d) = self.doc {
            m.insert("doc".into(), Value::from(d));
        }
        if let Some(p) = self.parameters {
            m.insert("parameters".into(), p);
        }
        m.insert("field".into(), Value::from(field));
        Value::Object(m)
    }
}

/// A column's Connect schema as `JsonConverter` writes it, with its field name.
fn field_schema(col: &ColumnInfo, s: &DebeziumSettings, optional: bool) -> Value {
    use ColumnType::*;
    let adaptive = s.time_precision_mode == TimePrecisionMode::AdaptiveTimeMicroseconds;
    let schema = match col.col_type {
        _ if col.rule != ColumnRule::Keep => Schema::plain("string"),
        MYSQL_TYPE_TINY => Schema::plain("int16"),
        MYSQL_TYPE_SHORT if col.unsigned => Schema::plain("int32"),
        MYSQL_TYPE_SHORT => Schema::plain("int16"),
        MYSQL_TYPE_INT24 => Schema::plain("int32"),
        MYSQL_TYPE_LONG if col.unsigned => Schema::plain("int64"),
        MYSQL_TYPE_LONG => Schema::plain("int32"),
        MYSQL_TYPE_LONGLONG
            if col.unsigned && s.bigint_unsigned_handling_mode == BigintUnsignedMode::Precise =>
        {
            decimal_schema(20, 0)
        }
        MYSQL_TYPE_LONGLONG => Schema::plain("int64"),
        MYSQL_TYPE_FLOAT => Schema::plain("float"),
        MYSQL_TYPE_DOUBLE => Schema::plain("double"),
        MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => match s.decimal_handling_mode {
            DecimalMode::Precise => decimal_schema(col.shape.precision, col.shape.scale),
            DecimalMode::Double => Schema::plain("double"),
            DecimalMode::String => Schema::plain("string"),
        },
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE if adaptive => {
            Schema::named("int32", "io.debezium.time.Date")
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => {
            Schema::named("int32", "org.apache.kafka.connect.data.Date")
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 if adaptive => {
            Schema::named("int64", "io.debezium.time.MicroTime")
        }
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => {
            Schema::named("int32", "org.apache.kafka.connect.data.Time")
        }
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 if !adaptive => {
            Schema::named("int64", "org.apache.kafka.connect.data.Timestamp")
        }
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 if micro_timestamp(col, s) => {
            Schema::named("int64", "io.debezium.time.MicroTimestamp")
        }
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => {
            Schema::named("int64", "io.debezium.time.Timestamp")
        }
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => {
            Schema::named("string", "io.debezium.time.ZonedTimestamp")
        }
        MYSQL_TYPE_YEAR => Schema::named("int32", "io.debezium.time.Year"),
        MYSQL_TYPE_BIT if col.shape.bits <= 1 => Schema::plain("boolean"),
        MYSQL_TYPE_BIT => Schema::named("bytes", "io.debezium.data.Bits")
            .with_parameters(json!({"length": col.shape.bits.to_string()})),
        MYSQL_TYPE_ENUM => Schema::named("string", "io.debezium.data.Enum")
            .with_parameters(json!({"allowed": col.enum_labels.join(",")})),
        MYSQL_TYPE_SET => Schema::named("string", "io.debezium.data.EnumSet")
            .with_parameters(json!({"allowed": col.set_labels.join(",")})),
        // MySQL's JSON type; MariaDB's alias is a LONGTEXT to Debezium too.
        MYSQL_TYPE_JSON => Schema::named("string", "io.debezium.data.Json"),
        MYSQL_TYPE_GEOMETRY => Schema {
            ty: "struct",
            fields: Some(json!([
                {"type": "bytes", "optional": false, "field": "wkb"},
                {"type": "int32", "optional": true, "field": "srid"}])),
            name: Some("io.debezium.data.geometry.Geometry"),
            doc: Some("Geometry"),
            parameters: None,
        },
        _ if col.is_binary() && s.binary_handling_mode == BinaryMode::Bytes => {
            Schema::plain("bytes")
        }
        _ => Schema::plain("string"),
    };
    schema.write(optional, &col.name)
}

fn decimal_schema(precision: u8, scale: u8) -> Schema<'static> {
    Schema::named("bytes", "org.apache.kafka.connect.data.Decimal").with_parameters(
        json!({"scale": scale.to_string(), "connect.decimal.precision": precision.to_string()}),
    )
}

/// The envelope's Connect schema (`<prefix>.<db>.<table>.Envelope`).
fn value_schema(info: &TableInfo, prefix: &str, e: Encoding<'_>) -> Value {
    let base = format!("{prefix}.{}.{}", info.db, info.table);
    let columns: Vec<Value> = info
        .columns
        .iter()
        .filter(|c| c.rule.publishes())
        .map(|c| field_schema(c, e.settings, c.shape.nullable))
        .collect();
    let row = |field: &str| {
        json!({"type": "struct", "fields": columns, "optional": true,
        "name": format!("{base}.Value"), "field": field})
    };
    let f = |ty: &str, optional: bool, field: &str| json!({"type": ty, "optional": optional, "field": field});
    let source = json!({"type": "struct", "fields": [
            f("string", false, "version"), f("string", false, "connector"), f("string", false, "name"),
            f("int64", false, "ts_ms"),
            {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
             "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
             "default": "false", "field": "snapshot"},
            f("string", false, "db"), f("string", true, "sequence"), f("int64", true, "ts_us"),
            f("int64", true, "ts_ns"), f("string", true, "table"), f("int64", false, "server_id"),
            f("string", true, "gtid"), f("string", false, "file"), f("int64", false, "pos"),
            f("int32", false, "row"), f("int64", true, "thread"), f("string", true, "query")],
        "optional": false, "name": format!("io.debezium.connector.{}.Source", e.connector),
        "version": 1, "field": "source"});
    let transaction = json!({"type": "struct", "fields": [
            f("string", false, "id"), f("int64", false, "total_order"),
            f("int64", false, "data_collection_order")],
        "optional": true, "name": "event.block", "version": 1, "field": "transaction"});
    json!({
        "type": "struct",
        "fields": [row("before"), row("after"), source, transaction,
            f("string", false, "op"), f("int64", true, "ts_ms"), f("int64", true, "ts_us"),
            f("int64", true, "ts_ns")],
        "optional": false,
        "name": format!("{base}.Envelope"),
        "version": 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Shape;

    fn col(ty: ColumnType, shape: Shape) -> ColumnInfo {
        let mut c = ColumnInfo::text_column("c", ty, false);
        c.shape = shape;
        c
    }

    fn val(c: &ColumnInfo, v: &Value, s: &DebeziumSettings) -> Value {
        value(c, v, s).into_owned()
    }

    fn d() -> DebeziumSettings {
        DebeziumSettings::default()
    }

    #[test]
    fn decimals_are_javas_big_integer_bytes() {
        let b = |t: &str, scale| BASE64.encode(unscaled_bytes(t, scale).unwrap());
        // 12345 = 0x3039; -12345 = 0xCFC7; 128 needs a sign byte; -128 does not.
        assert_eq!(b("123.45", 2), BASE64.encode([0x30, 0x39]));
        assert_eq!(b("-123.45", 2), BASE64.encode([0xcf, 0xc7]));
        assert_eq!(b("1.28", 2), BASE64.encode([0x00, 0x80]));
        assert_eq!(b("-1.28", 2), BASE64.encode([0x80]));
        assert_eq!(b("0.00", 2), BASE64.encode([0x00]));
        assert_eq!(b("-0.00", 2), BASE64.encode([0x00]));
        assert_eq!(b("1.5", 2), BASE64.encode([0x00, 0x96]));
        let mut s = d();
        s.decimal_handling_mode = DecimalMode::String;
        assert_eq!(decimal("1.50", 2, &s), json!("1.50"));
        s.decimal_handling_mode = DecimalMode::Double;
        assert_eq!(decimal("1.50", 2, &s), json!(1.5));
    }

    #[test]
    fn times_follow_the_precision_mode() {
        use ColumnType::*;
        let s = d();
        let dt3 = col(
            MYSQL_TYPE_DATETIME2,
            Shape {
                fsp: 3,
                ..Shape::default()
            },
        );
        let dt6 = col(
            MYSQL_TYPE_DATETIME2,
            Shape {
                fsp: 6,
                ..Shape::default()
            },
        );
        let t = json!("2026-12-01T06:36:11.106207");
        assert_eq!(val(&dt3, &t, &s), json!(1_796_106_971_106i64));
        assert_eq!(val(&dt6, &t, &s), json!(1_796_106_971_106_207i64));
        let date = col(MYSQL_TYPE_DATE, Shape::default());
        assert_eq!(val(&date, &json!("1970-01-02"), &s), json!(1));
        assert_eq!(val(&date, &json!("0000-00-00"), &s), Value::Null);
        let time = col(MYSQL_TYPE_TIME2, Shape::default());
        assert_eq!(
            val(&time, &json!("-01:00:00.5"), &s),
            json!(-3_600_500_000i64)
        );
        let ts = col(
            MYSQL_TYPE_TIMESTAMP2,
            Shape {
                fsp: 3,
                ..Shape::default()
            },
        );
        assert_eq!(
            val(&ts, &json!("2026-12-01T06:36:11.106207Z"), &s),
            json!("2026-12-01T06:36:11.106Z")
        );
        let ts0 = col(MYSQL_TYPE_TIMESTAMP2, Shape::default());
        assert_eq!(
            val(&ts0, &json!("2026-12-01T06:36:11.000000Z"), &s),
            json!("2026-12-01T06:36:11Z")
        );
        let mut c = d();
        c.time_precision_mode = TimePrecisionMode::Connect;
        assert_eq!(val(&dt6, &t, &c), json!(1_796_106_971_106i64));
        assert_eq!(val(&time, &json!("00:00:01.5"), &c), json!(1500));
    }

    #[test]
    fn snapshot_markers_are_debeziums() {
        assert_eq!(snapshot_row_marker(true, true, false, false), "first");
        assert_eq!(
            snapshot_row_marker(false, true, false, false),
            "first_in_data_collection"
        );
        assert_eq!(snapshot_row_marker(false, false, false, false), "true");
        assert_eq!(
            snapshot_row_marker(false, false, true, false),
            "last_in_data_collection"
        );
        assert_eq!(snapshot_row_marker(false, true, true, true), "last");
        assert_eq!(snapshot_row_marker(true, true, true, true), "last");
    }

    #[test]
    fn bits_unsigned_bigints_and_binary() {
        use ColumnType::*;
        let s = d();
        let bit1 = col(
            MYSQL_TYPE_BIT,
            Shape {
                bits: 1,
                ..Shape::default()
            },
        );
        assert_eq!(val(&bit1, &json!(1), &s), json!(true));
        let bit12 = col(
            MYSQL_TYPE_BIT,
            Shape {
                bits: 12,
                ..Shape::default()
            },
        );
        assert_eq!(
            val(&bit12, &json!(0x0102), &s),
            json!(BASE64.encode([0x02, 0x01]))
        );
        let mut big = ColumnInfo::text_column("c", MYSQL_TYPE_LONGLONG, true);
        big.shape = Shape::default();
        assert_eq!(val(&big, &json!(u64::MAX), &s), json!(-1));
        let mut p = d();
        p.bigint_unsigned_handling_mode = BigintUnsignedMode::Precise;
        assert_eq!(
            val(&big, &json!(u64::MAX), &p),
            json!(BASE64.encode([0, 255, 255, 255, 255, 255, 255, 255, 255]))
        );
        let mut bin = ColumnInfo::text_column("c", MYSQL_TYPE_BLOB, false);
        bin.charset = Some(crate::table::BINARY_CHARSET);
        let v = json!(BASE64.encode([0xfb, 0xff]));
        assert_eq!(val(&bin, &v, &s), v);
        let mut h = d();
        h.binary_handling_mode = BinaryMode::Hex;
        assert_eq!(val(&bin, &v, &h), json!("fbff"));
        h.binary_handling_mode = BinaryMode::Base64UrlSafe;
        assert_eq!(val(&bin, &v, &h), json!("-_8="));
    }
}
