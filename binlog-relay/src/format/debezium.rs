//! The `debezium` format: the envelope of [`cdc_event::ChangeEvent`],
//! written by [`cdc_event::write::write_envelope`] (held equal to the serde
//! types there) around the row images of either decoder, through
//! [`crate::image::write_object`]. Nothing of the envelope is written
//! anywhere else.

use cdc_event::Op;
use cdc_event::write::{RowJson, write_envelope};

use super::{PAYLOAD_CAPACITY, Payload};
use crate::decode::ChangeMeta;
use crate::image::{self, Image};
use crate::table::TableInfo;

/// A row image of a table as the envelope's `before`/`after` object.
struct Object<'a, I>(&'a TableInfo, &'a I);

impl<I: Image> RowJson for Object<'_, I> {
    fn write_row(&self, out: &mut Vec<u8>) {
        image::write_object(self.0, self.1, out);
    }
}

/// The Debezium envelope of one row change, its images from either decoder.
pub fn debezium<I: Image>(
    info: &TableInfo,
    op: Op,
    before: Option<&I>,
    after: Option<&I>,
    meta: &ChangeMeta<'_>,
) -> Payload {
    let before = before.map(|i| Object(info, i));
    let after = after.map(|i| Object(info, i));
    let mut out = Vec::with_capacity(PAYLOAD_CAPACITY);
    write_envelope(
        &mut out,
        before.as_ref().map(|o| o as &dyn RowJson),
        after.as_ref().map(|o| o as &dyn RowJson),
        &meta.source(info),
        op,
        meta.now_ms,
        meta.transaction.as_ref(),
    );
    Payload {
        bytes: out,
        commit_at: None,
    }
}
