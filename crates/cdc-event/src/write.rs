//! The change envelope written straight as bytes: what `serde_json` makes
//! of a [`ChangeEvent`], byte for byte, without building one. The relay's
//! fast path (row images decoded from the binlog bytes into JSON text)
//! writes every Debezium-format message through [`write_envelope`]; the
//! equality tests below hold it to the serde types above it, so a field
//! added to [`Source`] or [`ChangeEvent`] that this writer misses fails
//! here, beside the types.

use crate::envelope::{ChangeEvent, Op, Row, Snapshot, Source, TransactionRef};

/// The version every envelope names in `source.version` (the workspace's
/// version, shared by the relay).
pub const SLUICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `source.connector` of every envelope.
pub const CONNECTOR: &str = "sluice";

/// A [`Source`] borrowed from where the change was read.
#[derive(Debug, Clone, Copy)]
pub struct SourceRef<'a> {
    pub name: &'a str,
    pub ts_ms: i64,
    pub db: &'a str,
    pub table: &'a str,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    pub pos: u64,
    pub row: u32,
    pub snapshot: Snapshot,
    pub thread: Option<u64>,
}

impl SourceRef<'_> {
    /// The owned [`Source`] the serde path puts in a [`ChangeEvent`].
    pub fn to_source(&self) -> Source {
        Source {
            version: SLUICE_VERSION.to_owned(),
            connector: CONNECTOR.to_owned(),
            name: self.name.to_owned(),
            ts_ms: self.ts_ms,
            db: self.db.to_owned(),
            table: self.table.to_owned(),
            server_id: self.server_id,
            gtid: self.gtid.map(str::to_owned),
            file: self.file.to_owned(),
            pos: self.pos,
            row: self.row,
            snapshot: self.snapshot,
            thread: self.thread,
        }
    }
}

impl Source {
    /// This source as a [`SourceRef`] (`version` and `connector` are the
    /// writer's constants).
    pub fn borrowed(&self) -> SourceRef<'_> {
        SourceRef {
            name: &self.name,
            ts_ms: self.ts_ms,
            db: &self.db,
            table: &self.table,
            server_id: self.server_id,
            gtid: self.gtid.as_deref(),
            file: &self.file,
            pos: self.pos,
            row: self.row,
            snapshot: self.snapshot,
            thread: self.thread,
        }
    }
}

/// A row image that writes itself as a JSON object (columns in table
/// order), as `serde_json` writes a [`Row`].
pub trait RowJson {
    fn write_row(&self, out: &mut Vec<u8>);
}

impl RowJson for Row {
    fn write_row(&self, out: &mut Vec<u8>) {
        // Writing a map of JSON values into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, self);
    }
}

/// A JSON string, escaped exactly as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Most names and values need no escaping: copy them as they are.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// An integer as JSON.
pub fn num(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A string as JSON, or `null`.
pub fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn image(out: &mut Vec<u8>, row: Option<&dyn RowJson>) {
    match row {
        Some(row) => row.write_row(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the envelope of one row change to `out`: the bytes
/// `serde_json::to_vec(&ChangeEvent { before, after, source, op, ts_ms,
/// transaction })` would produce.
pub fn write_envelope(
    out: &mut Vec<u8>,
    before: Option<&dyn RowJson>,
    after: Option<&dyn RowJson>,
    source: &SourceRef<'_>,
    op: Op,
    ts_ms: i64,
    transaction: Option<&TransactionRef>,
) {
    out.extend_from_slice(b"{\"before\":");
    image(out, before);
    out.extend_from_slice(b",\"after\":");
    image(out, after);
    out.extend_from_slice(b",\"source\":{\"version\":");
    write_str(out, SLUICE_VERSION);
    out.extend_from_slice(b",\"connector\":");
    write_str(out, CONNECTOR);
    out.extend_from_slice(b",\"name\":");
    write_str(out, source.name);
    out.extend_from_slice(b",\"ts_ms\":");
    num(out, source.ts_ms);
    out.extend_from_slice(b",\"db\":");
    write_str(out, source.db);
    out.extend_from_slice(b",\"table\":");
    write_str(out, source.table);
    out.extend_from_slice(b",\"server_id\":");
    num(out, source.server_id);
    out.extend_from_slice(b",\"gtid\":");
    opt_str(out, source.gtid);
    out.extend_from_slice(b",\"file\":");
    write_str(out, source.file);
    out.extend_from_slice(b",\"pos\":");
    num(out, source.pos);
    out.extend_from_slice(b",\"row\":");
    num(out, source.row);
    out.extend_from_slice(match source.snapshot {
        Snapshot::False => b",\"snapshot\":\"false\",\"thread\":".as_slice(),
        Snapshot::True => b",\"snapshot\":\"true\",\"thread\":",
        Snapshot::Last => b",\"snapshot\":\"last\",\"thread\":",
    });
    match source.thread {
        Some(t) => num(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"},\"op\":\"");
    out.extend_from_slice(op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    num(out, ts_ms);
    out.extend_from_slice(b",\"transaction\":");
    write_transaction(out, transaction);
    out.push(b'}');
}

/// The envelope's `transaction` block (`null` without one).
pub fn write_transaction(out: &mut Vec<u8>, transaction: Option<&TransactionRef>) {
    match transaction {
        Some(t) => {
            out.extend_from_slice(b"{\"id\":");
            write_str(out, &t.id);
            out.extend_from_slice(b",\"total_order\":");
            num(out, t.total_order);
            out.extend_from_slice(b",\"data_collection_order\":");
            num(out, t.data_collection_order);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
}

/// [`write_envelope`] of a [`ChangeEvent`]: the equality tests' bridge.
#[doc(hidden)]
pub fn write_event(out: &mut Vec<u8>, e: &ChangeEvent) {
    write_envelope(
        out,
        e.before.as_ref().map(|r| r as &dyn RowJson),
        e.after.as_ref().map(|r| r as &dyn RowJson),
        &e.source.borrowed(),
        e.op,
        e.ts_ms,
        e.transaction.as_ref(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: serde_json::Value) -> Option<Row> {
        v.as_object().cloned()
    }

    /// Every shape of every field: both images present or absent, each op
    /// and snapshot marker, optional fields set and unset, extreme numbers,
    /// and strings that need escaping.
    fn events() -> Vec<ChangeEvent> {
        let mut out = Vec::new();
        let ops = [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate];
        let snaps = [Snapshot::False, Snapshot::True, Snapshot::Last];
        for (i, op) in ops.into_iter().enumerate() {
            for (j, snapshot) in snaps.into_iter().enumerate() {
                let odd = (i + j) % 2 == 1;
                let img = row(json!({
                    "id": u64::MAX,
                    "neg": i64::MIN,
                    "f": 1.5,
                    "s": "quote \" backslash \\ tab \t nul \u{0} é ✓",
                    "n": null,
                    "j": {"a": [1, "b"]},
                }));
                out.push(ChangeEvent {
                    before: if odd { img.clone() } else { None },
                    after: if j == 2 { None } else { img },
                    source: Source {
                        version: SLUICE_VERSION.into(),
                        connector: CONNECTOR.into(),
                        name: if odd {
                            "pre\"fix".into()
                        } else {
                            "sluice".into()
                        },
                        ts_ms: if odd { i64::MIN } else { 1_764_151_117_000 },
                        db: "d\\b".into(),
                        table: "t\u{1f}".into(),
                        server_id: u32::MAX,
                        gtid: odd.then(|| "0-1-42".into()),
                        file: "mysql-bin.000001".into(),
                        pos: u64::MAX,
                        row: u32::MAX,
                        snapshot,
                        thread: (!odd).then_some(u64::MAX),
                    },
                    op,
                    ts_ms: -1,
                    transaction: odd.then(|| TransactionRef {
                        id: "0-1-42\"".into(),
                        total_order: u64::MAX,
                        data_collection_order: 0,
                    }),
                });
            }
        }
        out
    }

    #[test]
    fn the_byte_writer_writes_what_serde_writes_for_every_field_shape() {
        for e in events() {
            let mut fast = Vec::new();
            write_event(&mut fast, &e);
            let serde = serde_json::to_vec(&e).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&serde)
            );
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_escapes_them() {
        for s in ["plain", "", "a\"b", "c\\d", "\u{7f}", "\n\r\u{8}", "ümlaut"] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn a_borrowed_source_becomes_the_same_owned_source() {
        for e in events() {
            assert_eq!(e.source.borrowed().to_source(), e.source);
        }
    }
}
