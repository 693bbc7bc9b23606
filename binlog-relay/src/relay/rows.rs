//! The rows path: a rows event decoded (fast or general decoder) and each
//! row encoded, held back (Maxwell) or sent through [`Stream::send_row`],
//! the one outgoing path for row changes, binlog and snapshot alike.

use super::*;
use crate::decode::RowChange;
use crate::table::TableInfo;

/// One row change ready to send, from the binlog or from a snapshot: both
/// end in [`Stream::send_row`], the relay's one outgoing path for rows.
pub(super) struct RowMessage {
    pub(super) topic: Arc<str>,
    /// The partition the relay picked ([`format::partition`]); `None`: the
    /// key decides.
    pub(super) partition: Option<i32>,
    pub(super) key: Option<String>,
    pub(super) payload: format::Payload,
    pub(super) gtid: Option<String>,
    /// `file:pos` of the rows event (or of the snapshot's start).
    pub(super) pos: Arc<str>,
    pub(super) seq: u64,
    pub(super) replay: bool,
    pub(super) changed_at_us: Option<i64>,
    pub(super) traceparent: Option<String>,
    /// Followed by a tombstone (a delete, in a format and setting with them).
    pub(super) tombstone: bool,
}

impl RowMessage {
    pub(super) fn headers(&self) -> MessageHeaders<'_> {
        MessageHeaders {
            gtid: self.gtid.as_deref(),
            pos: &self.pos,
            seq: self.seq,
            replay: self.replay,
            changed_at_us: self.changed_at_us,
            traceparent: self.traceparent.as_deref(),
        }
    }
}

/// Where a drop-in row change stands ([`Stream::send_drop_in`]).
pub(super) struct DropInAt<'a> {
    topic: &'a Arc<str>,
    pos_text: &'a Arc<str>,
    full: &'a str,
    start: u64,
    row: usize,
    ts_ms: i64,
    now_ms: i64,
    replay: bool,
}

/// A Maxwell row held back until it is known whether it is its
/// transaction's last (`"commit": true`).
pub(super) struct Held {
    pub(super) tx_id: String,
    msg: RowMessage,
}

impl Stream<'_> {
    pub(super) async fn rows(
        &mut self,
        stream: &BinlogStream,
        rows: &RowsEventData<'_>,
        start: u64,
        ts_ms: i64,
    ) -> Result<()> {
        let tme = stream.get_tme(rows.table_id()).ok_or_else(|| {
            Error::Stream(format!(
                "rows event at {}:{start} without its table map",
                self.asm.file
            ))
        })?;
        let db = tme.database_name();
        let table = tme.table_name();
        if !self.relay.settings.filter.allows(&db, &table) {
            return Ok(());
        }
        let at = FilePos::new(self.asm.file.as_str(), start);
        let info = self.schema.table_info(tme, &at).await?;
        let op = decode::op_of(rows);
        let fmt = self.relay.settings.format;
        // Debezium envelopes straight from the event bytes when the table's
        // layout allows; the general decoder otherwise.
        // The Debezium drop-in encoding converts the general decoder's images.
        let drop_in = self.relay.settings.drop_in();
        let fast = match (&info.wire, fmt) {
            (Some(wire), Format::Debezium) if !drop_in => fastrow::decode(&info, wire, rows)?,
            _ => None,
        };
        let slow = match fast {
            Some(_) => Vec::new(),
            None => decode::decode_rows(&info, op, rows.rows(tme))?,
        };
        let count = fast.as_ref().map_or(slow.len(), fastrow::Rows::len);
        if count == 0 {
            return Ok(());
        }
        let mut slow = slow.into_iter();
        let prefix = self.prefix().to_owned();
        let topic: Arc<str> = topic::topic_for(&prefix, &info.db, &info.table).into();
        let mut partitions = None;
        if let Output::Kafka(sink) = self.output {
            sink.ensure_topic(&topic, None).await?;
            if format::picks_partition(fmt, &info) {
                partitions = Some(sink.partition_count(&topic).await?);
            }
        }
        self.asm.ensure_transaction(start);
        self.publish_begin(ts_ms).await?;
        let full = info.full_name();
        let pos_text: Arc<str> = format!("{}:{start}", self.asm.file).into();
        let replay = self.relay.is_replay(&self.asm.file, start);
        let counter = self
            .counters
            .entry((full.clone(), op))
            .or_insert_with(
                || metrics::counter!(m::EVENTS_TOTAL, "table" => full.clone(), "op" => op.code()),
            )
            .clone();
        let now_ms = chrono::Utc::now().timestamp_millis();
        for row in 0..count {
            let Some(place) = self.asm.row(&full, start, row as u64 + 1) else {
                break;
            };
            if drop_in {
                let change = slow.next().ok_or_else(|| {
                    Error::Stream(format!(
                        "rows event at {}:{start} lost a row",
                        self.asm.file
                    ))
                })?;
                counter.increment(1);
                let at = DropInAt {
                    topic: &topic,
                    pos_text: &pos_text,
                    full: &full,
                    start,
                    row,
                    ts_ms,
                    now_ms,
                    replay,
                };
                self.send_drop_in(&info, change, place, &at).await?;
                continue;
            }
            let RowPlace {
                tx_id,
                gtid,
                total_order: total,
                collection_order: coll,
                seq,
                traceparent,
            } = place;
            let held_tx = (fmt == Format::Maxwell).then(|| tx_id.clone());
            let meta = ChangeMeta {
                name: &prefix,
                server_id: self.relay.settings.server_id,
                gtid: gtid.as_deref(),
                file: &self.asm.file,
                pos: start,
                ts_ms,
                row: u32::try_from(row).unwrap_or(u32::MAX),
                snapshot: Snapshot::False,
                thread: None,
                transaction: Some(TransactionRef {
                    id: tx_id,
                    total_order: total,
                    data_collection_order: coll,
                }),
                now_ms,
            };
            let (key, partition, changed_at_us, payload) = match &fast {
                // Debezium only: its key places the row.
                Some(fast) => {
                    let (before, after) = fast.change(row);
                    (
                        fast.image(row, op)
                            .and_then(|img| format::key(fmt, &info, &img)),
                        None,
                        after
                            .or(before)
                            .and_then(|img| image::change_time_us(&info, &img)),
                        format::debezium(&info, op, before.as_ref(), after.as_ref(), &meta),
                    )
                }
                None => {
                    let change = slow.next().ok_or_else(|| {
                        Error::Stream(format!(
                            "rows event at {}:{start} lost a row",
                            self.asm.file
                        ))
                    })?;
                    let key = change.image().and_then(|img| format::key(fmt, &info, img));
                    let partition = partitions.and_then(|n| {
                        change
                            .image()
                            .and_then(|img| format::partition(fmt, &info, img, n))
                    });
                    let changed_at_us = change
                        .after
                        .as_ref()
                        .or(change.before.as_ref())
                        .and_then(|img| image::change_time_us(&info, img));
                    let payload = format::encode(fmt, &info, change, meta, seq)
                        .map_err(|e| Error::Stream(e.to_string()))?;
                    (key, partition, changed_at_us, payload)
                }
            };
            let msg = RowMessage {
                topic: topic.clone(),
                partition,
                tombstone: op == Op::Delete
                    && self.relay.settings.tombstones
                    && fmt.emits_tombstones()
                    && key.is_some(),
                key,
                payload,
                gtid,
                pos: pos_text.clone(),
                seq,
                replay,
                changed_at_us,
                traceparent,
            };
            counter.increment(1);
            match held_tx {
                // Sent once the next row or the transaction's end shows
                // whether it is the transaction's last.
                Some(tx_id) => {
                    if let Some(prev) = self.held.replace(Held { tx_id, msg }) {
                        self.emit_held(prev, false).await?;
                    }
                }
                None => self.send_row(&msg).await?,
            }
        }
        Ok(())
    }

    /// A streamed row change in the Debezium drop-in encoding
    /// ([`format::connect`]): a key change is two events (delete, create),
    /// the second placed in the transaction after the first.
    async fn send_drop_in(
        &mut self,
        info: &TableInfo,
        change: RowChange,
        first: RowPlace,
        at: &DropInAt<'_>,
    ) -> Result<()> {
        let changed_at_us = change
            .after
            .as_ref()
            .or(change.before.as_ref())
            .and_then(|img| image::change_time_us(info, img));
        let mut place = Some(first);
        for part in format::connect::split(info, change) {
            let p = match place.take() {
                Some(p) => p,
                None => match self.asm.row(at.full, at.start, at.row as u64 + 1) {
                    Some(p) => p,
                    None => break,
                },
            };
            let meta = ChangeMeta {
                name: self.prefix(),
                // Debezium's `source.server_id` is the source's.
                server_id: self.event_server_id,
                gtid: p.gtid.as_deref(),
                file: &self.asm.file,
                pos: at.start,
                ts_ms: at.ts_ms,
                row: u32::try_from(at.row).unwrap_or(u32::MAX),
                snapshot: Snapshot::False,
                thread: None,
                transaction: Some(TransactionRef {
                    id: p.tx_id.clone(),
                    total_order: p.total_order,
                    data_collection_order: p.collection_order,
                }),
                now_ms: at.now_ms,
            };
            let out = format::connect::encode(info, &part, &meta, self.relay.encoding());
            self.send_row(&RowMessage {
                topic: at.topic.clone(),
                partition: None,
                key: out.key,
                payload: out.payload,
                gtid: p.gtid,
                pos: at.pos_text.clone(),
                seq: p.seq,
                replay: at.replay,
                changed_at_us,
                traceparent: p.traceparent,
                tombstone: out.tombstone,
            })
            .await?;
        }
        Ok(())
    }

    /// The one outgoing path of row changes (binlog and snapshot): the
    /// message, then its tombstone when it has one (same key, same
    /// partition).
    pub(super) async fn send_row(&mut self, msg: &RowMessage) -> Result<()> {
        let headers = msg.headers();
        let key = msg.key.as_deref();
        self.emit_to(
            &msg.topic,
            msg.partition,
            key,
            Some(&msg.payload.bytes),
            &headers,
        )
        .await?;
        if msg.tombstone {
            self.emit_to(&msg.topic, msg.partition, key, None, &headers)
                .await?;
        }
        Ok(())
    }

    /// Sends a held-back Maxwell row; `last` marks it `"commit":true`.
    pub(super) async fn emit_held(&mut self, mut held: Held, last: bool) -> Result<()> {
        if last {
            held.msg.payload.mark_commit();
        }
        self.send_row(&held.msg).await
    }
}
