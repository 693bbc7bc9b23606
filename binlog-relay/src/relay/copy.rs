//! The snapshot copy: the pending tables chunk by chunk, each row sent
//! through the relay's one outgoing path ([`Stream::send_row`]) and a
//! checkpoint mark queued after each chunk.

use super::rows::RowMessage;
use super::*;

/// The `sluice.seq` of every row of a snapshot: its start point's number
/// (see [`seqno`]), not below the changes before it, below those after.
fn snapshot_seq(flavor: Flavor, p: &SnapshotProgress) -> u64 {
    match p.start_gtid.as_deref().and_then(seqno::snapshot_gtid_seq) {
        Some(n) => seqno::of_gtid(n, seqno::SNAPSHOT_ROW),
        // MariaDB numbers by GTID even before its first transaction.
        None if flavor == Flavor::MariaDb => seqno::of_gtid(0, seqno::SNAPSHOT_ROW),
        None => seqno::of_position(&p.start_file, p.start_pos, seqno::SNAPSHOT_ROW),
    }
}

impl Stream<'_> {
    /// Copies the pending tables chunk by chunk, checkpointing after each chunk.
    pub(super) async fn snapshot(
        &mut self,
        mut progress: SnapshotProgress,
        stop: &watch::Receiver<bool>,
    ) -> Result<Flow> {
        let settings = &self.relay.settings;
        let chunk_size = settings.snapshot.chunk_size;
        let fmt = settings.format;
        let prefix = settings.kafka.topic_prefix.clone();
        let server_id = settings.server_id;
        let pending_gauge = metrics::gauge!(m::SNAPSHOT_TABLES_PENDING);
        tracing::info!(tables = ?progress.pending, start = %format!("{}:{}", progress.start_file, progress.start_pos), "snapshot starts");
        // The drop-in encoding's `first` marker: no row sent yet by this copy.
        let mut copied_any = false;
        while let Some(table) = progress.pending.first().cloned() {
            pending_gauge.set(progress.pending.len() as f64);
            let mut reader = snapshot::TableReader::open(
                &self.relay.url,
                &self.relay.pool,
                &table,
                chunk_size,
                &self.relay.columns,
                &self.relay.keys,
            )
            .await?;
            if self.relay.settings.drop_in() {
                reader.info.keep_json_text();
            }
            let topic: Arc<str> = snapshot::topic_of(&prefix, &reader.info).into();
            let mut partitions = None;
            if let Output::Kafka(sink) = self.output {
                sink.ensure_topic(&topic, None).await?;
                if format::picks_partition(fmt, &reader.info) {
                    partitions = Some(sink.partition_count(&topic).await?);
                }
            }
            let rows_counter = metrics::counter!(m::SNAPSHOT_ROWS_TOTAL, "table" => table.clone());
            let events = metrics::counter!(m::EVENTS_TOTAL, "table" => table.clone(), "op" => Op::Read.code());
            let bar = snapshot::progress_bar(
                &table,
                snapshot::estimate_rows(&self.relay.pool, &table).await,
            );
            let pos_text: Arc<str> =
                format!("{}:{}", progress.start_file, progress.start_pos).into();
            let snapshot_seq = snapshot_seq(self.relay.flavor, &progress);
            loop {
                if *stop.borrow() {
                    bar.abandon();
                    reader.close().await;
                    return Ok(Flow::Stop);
                }
                let table_start = progress.last_key.is_none();
                let chunk = reader.next(progress.last_key.as_ref()).await?;
                let n = chunk.rows.len();
                let table_done = !chunk.more;
                // The snapshot's last row: this table's, when the tables
                // still to copy are empty (Debezium's `snapshot: "last"`).
                let final_chunk = table_done
                    && n > 0
                    && (progress.pending.len() == 1
                        || snapshot::all_empty(&self.relay.pool, &progress.pending[1..]).await?);
                let now_ms = chrono::Utc::now().timestamp_millis();
                for (i, change) in chunk.rows.into_iter().enumerate() {
                    self.asm.snapshot_row(snapshot_seq);
                    let last = final_chunk && i + 1 == n;
                    let key = change
                        .image()
                        .and_then(|img| format::key(fmt, &reader.info, img));
                    let partition = partitions.and_then(|n| {
                        change
                            .image()
                            .and_then(|img| format::partition(fmt, &reader.info, img, n))
                    });
                    let meta = snapshot::meta(&prefix, server_id, &progress, last, now_ms);
                    let (key, partition, payload) = if self.relay.settings.drop_in() {
                        let marker = format::connect::snapshot_row_marker(
                            !copied_any,
                            table_start && i == 0,
                            table_done && i + 1 == n,
                            last,
                        );
                        copied_any = true;
                        let part = format::connect::encode_marked(
                            &reader.info,
                            &change,
                            &meta,
                            self.relay.encoding(),
                            marker,
                        );
                        (part.key, None, part.payload)
                    } else {
                        let payload = format::encode(fmt, &reader.info, change, meta, self.asm.seq)
                            .map_err(|e| Error::Stream(e.to_string()))?;
                        (key, partition, payload)
                    };
                    self.send_row(&RowMessage {
                        topic: topic.clone(),
                        partition,
                        key,
                        payload,
                        gtid: progress.start_gtid.clone(),
                        pos: pos_text.clone(),
                        seq: self.asm.seq,
                        replay: false,
                        changed_at_us: None,
                        traceparent: None,
                        tombstone: false,
                    })
                    .await?;
                }
                rows_counter.increment(n as u64);
                events.increment(n as u64);
                bar.inc(n as u64);
                if table_done {
                    progress.pending.remove(0);
                    progress.last_key = None;
                } else {
                    progress.last_key = chunk.last_key;
                }
                let cp = Checkpoint {
                    file: progress.start_file.clone(),
                    pos: progress.start_pos,
                    gtid: progress.start_gtid.clone(),
                    seq: self.asm.seq,
                    changes: self.asm.changes,
                    saved_at_ms: 0,
                    snapshot: (!progress.pending.is_empty()).then(|| progress.clone()),
                };
                self.mark(cp).await?;
                if table_done {
                    break;
                }
            }
            bar.finish();
            reader.close().await;
            tracing::info!(table = %table, "snapshot of table done");
        }
        pending_gauge.set(0.0);
        tracing::info!("snapshot done; streaming from its start position");
        Ok(Flow::Continue)
    }
}
