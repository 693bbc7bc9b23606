//! The `debezium` format's fast writer: the envelope of a row decoded
//! straight from the rows-event bytes ([`crate::fastrow`]), written without
//! row maps, byte for byte what [`crate::decode::envelope`] serializes for
//! the general path (the tests of `format` and `tests/it/fast.rs` compare).

use cdc_event::{Op, Snapshot};

use super::Payload;
use crate::decode::ChangeMeta;
use crate::fastrow;
use crate::table::TableInfo;

/// The Debezium envelope of one fast-decoded row change: the same JSON as
/// [`encode`] with [`Format::Debezium`] writes for the general path's
/// [`RowChange`] of the same row (checked by the tests and by
/// `tests/it/fast.rs` against a real binlog), built without row maps.
pub fn debezium_fast(
    info: &TableInfo,
    op: Op,
    before: Option<fastrow::Image<'_>>,
    after: Option<fastrow::Image<'_>>,
    meta: &ChangeMeta<'_>,
) -> Payload {
    fn num(out: &mut Vec<u8>, n: impl itoa::Integer) {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
    fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => fastrow::write_str(out, s),
            None => out.extend_from_slice(b"null"),
        }
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"before\":");
    match before {
        Some(img) => img.write(info, &mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"after\":");
    match after {
        Some(img) => img.write(info, &mut out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"source\":{\"version\":");
    fastrow::write_str(&mut out, env!("CARGO_PKG_VERSION"));
    out.extend_from_slice(b",\"connector\":\"sluice\",\"name\":");
    fastrow::write_str(&mut out, meta.name);
    out.extend_from_slice(b",\"ts_ms\":");
    num(&mut out, meta.ts_ms);
    out.extend_from_slice(b",\"db\":");
    fastrow::write_str(&mut out, &info.db);
    out.extend_from_slice(b",\"table\":");
    fastrow::write_str(&mut out, &info.table);
    out.extend_from_slice(b",\"server_id\":");
    num(&mut out, meta.server_id);
    out.extend_from_slice(b",\"gtid\":");
    opt_str(&mut out, meta.gtid);
    out.extend_from_slice(b",\"file\":");
    fastrow::write_str(&mut out, meta.file);
    out.extend_from_slice(b",\"pos\":");
    num(&mut out, meta.pos);
    out.extend_from_slice(b",\"row\":");
    num(&mut out, meta.row);
    out.extend_from_slice(match meta.snapshot {
        Snapshot::False => b",\"snapshot\":\"false\",\"thread\":".as_slice(),
        Snapshot::True => b",\"snapshot\":\"true\",\"thread\":",
        Snapshot::Last => b",\"snapshot\":\"last\",\"thread\":",
    });
    match meta.thread {
        Some(t) => num(&mut out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"},\"op\":\"");
    out.extend_from_slice(op.code().as_bytes());
    out.extend_from_slice(b"\",\"ts_ms\":");
    num(&mut out, meta.now_ms);
    out.extend_from_slice(b",\"transaction\":");
    match &meta.transaction {
        Some(t) => {
            out.extend_from_slice(b"{\"id\":");
            fastrow::write_str(&mut out, &t.id);
            out.extend_from_slice(b",\"total_order\":");
            num(&mut out, t.total_order);
            out.extend_from_slice(b",\"data_collection_order\":");
            num(&mut out, t.data_collection_order);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
    Payload {
        bytes: out,
        commit_at: None,
    }
}
