//! The transaction assembler: the pure bookkeeping of where the stream is
//! and which transaction it is in. Binlog boundaries (GTID events, `BEGIN`,
//! `COMMIT`/XID, self-contained statements, rotations) and the rows read go
//! in; each row's coordinates (transaction id and orders, `sluice.seq`),
//! the transaction's BEGIN/END records and the checkpoint marks come out.
//! No I/O, so every boundary is unit-tested with hand-built inputs.
//!
//! A transaction starts at a MariaDB GTID event, a MySQL GTID event or a
//! `BEGIN` query (or, without any of them, at its first rows event), and
//! ends at XID, `COMMIT`, or right after a statement that is its own
//! transaction (DDL). Its BEGIN record is handed out lazily, with its first
//! relayed row, so transactions whose rows are all filtered out produce no
//! metadata.

use cdc_event::Gtid;
use cdc_event::envelope::{DataCollection, TransactionRecord, TxStatus};

use crate::checkpoint::Checkpoint;
use crate::events::Payloads;
use crate::position::{FilePos, GtidPos, GtidSet, StopAt};
use crate::seqno::Base;

/// The transaction being read.
#[derive(Debug)]
struct Tx {
    id: String,
    /// `file:pos` where the transaction starts.
    begin_pos: String,
    gtid: Option<String>,
    /// Where its rows' `sluice.seq` numbers come from.
    base: Base,
    /// Inside BEGIN … COMMIT (as opposed to a single-statement group).
    in_begin: bool,
    total: u64,
    per_table: Vec<(String, u64)>,
    begun: bool,
    /// The transaction's span (exported only with tracing on); its context
    /// travels in every message's `traceparent` header.
    span: tracing::Span,
    /// `traceparent` of `span`, computed once, at the first row.
    traceparent: Option<Option<String>>,
}

/// A record for the transaction topic, with its messages' coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct TxMessage {
    pub record: TransactionRecord,
    pub id: String,
    pub gtid: Option<String>,
    /// `file:pos` where the transaction starts.
    pub pos: String,
}

/// Where one row change stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowPlace {
    pub tx_id: String,
    pub gtid: Option<String>,
    /// Its place among the transaction's relayed rows (from 1).
    pub total_order: u64,
    /// Its place among the transaction's rows of its table (from 1).
    pub collection_order: u64,
    /// Its `sluice.seq` (see `seqno`).
    pub seq: u64,
    /// W3C context of the transaction's span (tracing on only).
    pub traceparent: Option<String>,
}

/// What the end of a transaction produced.
#[derive(Debug, Default, PartialEq)]
pub struct Committed {
    /// A transaction was open (and is now closed).
    pub closed: bool,
    /// Its END record, when its BEGIN was published.
    pub end: Option<TxMessage>,
    /// The resume point after it; none where the server gave no offset
    /// (MariaDB 11.4+ inside a transaction): only real boundaries count.
    pub mark: Option<Checkpoint>,
    /// `--until` is covered: stop after this transaction.
    pub done: bool,
}

/// Position, GTID state and the open transaction of one stream.
#[derive(Debug)]
pub struct Assembler {
    /// The binlog file being read.
    pub file: String,
    /// MariaDB: the GTID position read.
    pub gtid: GtidPos,
    /// MySQL: the GTIDs read (see `relay::Stream` on when this is exact).
    pub mysql: GtidSet,
    /// `sluice.seq` of the last change placed.
    pub seq: u64,
    /// Changes placed under this state folder (a statistic).
    pub changes: u64,
    until: Option<StopAt>,
    tx: Option<Tx>,
    payloads: Payloads,
}

impl Assembler {
    pub fn new(
        file: String,
        gtid: GtidPos,
        mysql: GtidSet,
        seq: u64,
        changes: u64,
        until: Option<StopAt>,
    ) -> Self {
        Self {
            file,
            gtid,
            mysql,
            seq,
            changes,
            until,
            tx: None,
            payloads: Payloads::default(),
        }
    }

    /// The offsets the event of type `code` read at `start..end` stands at
    /// (inside a compressed transaction: its payload's; see `events`).
    pub fn place(&mut self, code: u8, start: u64, end: u64) -> Result<(u64, u64), String> {
        self.payloads
            .place(code, start, end)
            .map_err(|e| format!("{e} (binlog file {})", self.file))
    }

    /// Whether `--until` is reached at `at` (and `gtid`, for a MariaDB GTID).
    pub fn until_reached(&self, at: &FilePos, gtid: Option<&Gtid>) -> bool {
        self.until.as_ref().is_some_and(|u| u.reached(at, gtid))
    }

    /// `FilePos` of `pos` in the current file.
    pub fn at(&self, pos: u64) -> FilePos {
        FilePos::new(self.file.clone(), pos)
    }

    /// Starts a transaction at `start`.
    pub fn begin(
        &mut self,
        id: String,
        gtid: Option<String>,
        base: Base,
        in_begin: bool,
        start: u64,
    ) {
        let begin_pos = format!("{}:{start}", self.file);
        let span = tracing::info_span!(
            target: common::telemetry::SPANS,
            parent: None,
            "relay.transaction",
            otel.name = "binlog transaction",
            otel.kind = "producer",
            messaging.system = "kafka",
            sluice.tx = %id,
            sluice.pos = %begin_pos,
            sluice.rows = tracing::field::Empty,
        );
        self.tx = Some(Tx {
            id,
            begin_pos,
            gtid,
            base,
            in_begin,
            total: 0,
            per_table: Vec::new(),
            begun: false,
            span,
            traceparent: None,
        });
    }

    /// A `BEGIN` query at `start`: inside a GTID group it opens BEGIN …
    /// COMMIT; without one it starts a transaction numbered by position.
    pub fn begin_query(&mut self, start: u64) {
        match &mut self.tx {
            Some(tx) => tx.in_begin = true,
            None => {
                let id = format!("{}:{start}", self.file);
                self.begin(id, None, Base::Position, true, start);
            }
        }
    }

    /// Whether a transaction is open.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether the open transaction is a BEGIN … COMMIT one.
    pub fn in_begin(&self) -> bool {
        self.tx.as_ref().is_some_and(|t| t.in_begin)
    }

    /// The open transaction's GTID.
    pub fn tx_gtid(&self) -> Option<&str> {
        self.tx.as_ref().and_then(|t| t.gtid.as_deref())
    }

    /// The open transaction's id.
    pub fn tx_id(&self) -> Option<&str> {
        self.tx.as_ref().map(|t| t.id.as_str())
    }

    /// Rows without an open transaction (no GTID, no BEGIN seen): one starts
    /// at their event, numbered by position.
    pub fn ensure_transaction(&mut self, start: u64) {
        if self.tx.is_none() {
            let id = format!("{}:{start}", self.file);
            self.begin(id, None, Base::Position, true, start);
        }
    }

    /// The transaction's BEGIN record, the first time it is asked for.
    pub fn begin_record(&mut self, ts_ms: i64) -> Option<TxMessage> {
        let tx = self.tx.as_mut().filter(|t| !t.begun)?;
        tx.begun = true;
        Some(TxMessage {
            record: TransactionRecord {
                status: TxStatus::Begin,
                id: tx.id.clone(),
                event_count: None,
                data_collections: None,
                ts_ms,
            },
            id: tx.id.clone(),
            gtid: tx.gtid.clone(),
            pos: tx.begin_pos.clone(),
        })
    }

    /// Places row `row_in_event` (from 1) of the rows event at `start` on
    /// `table` (`db.table`) in the open transaction.
    pub fn row(&mut self, table: &str, start: u64, row_in_event: u64) -> Option<RowPlace> {
        let tx = self.tx.as_mut()?;
        let traceparent = tx
            .traceparent
            .get_or_insert_with(|| common::telemetry::traceparent_of(&tx.span))
            .clone();
        tx.total += 1;
        let collection_order = match tx.per_table.iter_mut().find(|(t, _)| t == table) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                tx.per_table.push((table.to_owned(), 1));
                1
            }
        };
        self.seq = tx.base.number(&self.file, start, tx.total, row_in_event);
        self.changes += 1;
        Some(RowPlace {
            tx_id: tx.id.clone(),
            gtid: tx.gtid.clone(),
            total_order: tx.total,
            collection_order,
            seq: self.seq,
            traceparent,
        })
    }

    /// A snapshot row numbered `seq`.
    pub fn snapshot_row(&mut self, seq: u64) {
        self.seq = seq;
        self.changes += 1;
    }

    /// The GTID text of a checkpoint or heartbeat: the MariaDB position,
    /// else the MySQL set, else none.
    pub fn gtid_text(&self) -> Option<String> {
        crate::start::gtid_text(&self.gtid, &self.mysql)
    }

    /// Ends the open transaction (if any) at `end`.
    pub fn commit(&mut self, end: u64, ts_ms: i64) -> Committed {
        // A compressed transaction ends where its payload event ends.
        let end = self.payloads.commit_end(end);
        let mut out = Committed::default();
        if let Some(tx) = self.tx.take() {
            out.closed = true;
            tx.span.record("sluice.rows", tx.total);
            if tx.begun {
                out.end = Some(TxMessage {
                    record: TransactionRecord {
                        status: TxStatus::End,
                        id: tx.id.clone(),
                        event_count: Some(tx.total),
                        data_collections: Some(
                            tx.per_table
                                .iter()
                                .map(|(t, n)| DataCollection {
                                    data_collection: t.clone(),
                                    event_count: *n,
                                })
                                .collect(),
                        ),
                        ts_ms,
                    },
                    id: tx.id.clone(),
                    gtid: tx.gtid.clone(),
                    pos: tx.begin_pos.clone(),
                });
            }
            if let Some(g) = tx.gtid.as_deref() {
                if let Ok(g) = g.parse::<Gtid>() {
                    self.gtid.advance(g);
                } else if let Some((uuid, n)) = g.split_once(':')
                    && let Ok(n) = n.parse::<u64>()
                {
                    self.mysql.add(uuid, n);
                }
            }
        }
        if end == 0 {
            return out;
        }
        out.mark = Some(Checkpoint {
            file: self.file.clone(),
            pos: end,
            gtid: self.gtid_text(),
            seq: self.seq,
            changes: self.changes,
            saved_at_ms: 0,
            snapshot: None,
        });
        out.done = match &self.until {
            Some(StopAt::FilePos(stop)) => self.at(end) >= *stop,
            Some(StopAt::Gtid(stop)) => self.gtid.covers_all(stop),
            None => false,
        };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seqno;

    fn assembler() -> Assembler {
        Assembler::new(
            "mysql-bin.000003".into(),
            GtidPos::default(),
            GtidSet::default(),
            0,
            0,
            None,
        )
    }

    fn mariadb_gtid(a: &mut Assembler, seq: u64, start: u64) {
        let id = format!("0-1-{seq}");
        a.begin(id.clone(), Some(id), Base::Gtid(seq), true, start);
    }

    #[test]
    fn a_transaction_numbers_its_rows_and_ends_with_records_and_a_mark() {
        let mut a = assembler();
        mariadb_gtid(&mut a, 42, 100);
        a.begin_query(140);
        assert!(a.in_begin());
        let begin = a.begin_record(5).expect("BEGIN with the first row");
        assert_eq!(
            (begin.record.status, begin.pos.as_str()),
            (TxStatus::Begin, "mysql-bin.000003:100")
        );
        assert!(a.begin_record(5).is_none(), "once per transaction");
        let r1 = a.row("db.follow", 200, 1).unwrap();
        let r2 = a.row("db.counter", 300, 1).unwrap();
        let r3 = a.row("db.counter", 300, 2).unwrap();
        assert_eq!((r1.total_order, r1.collection_order), (1, 1));
        assert_eq!((r3.total_order, r3.collection_order), (3, 2));
        assert_eq!(
            [r1.seq, r2.seq, r3.seq],
            [
                seqno::of_gtid(42, 1),
                seqno::of_gtid(42, 2),
                seqno::of_gtid(42, 3)
            ]
        );
        assert_eq!(r2.gtid.as_deref(), Some("0-1-42"));

        let done = a.commit(400, 9);
        assert!(done.closed && !done.done);
        let end = done.end.expect("END record");
        assert_eq!(end.record.event_count, Some(3));
        let per_table = end.record.data_collections.unwrap();
        assert_eq!(per_table[1].data_collection, "db.counter");
        assert_eq!(per_table[1].event_count, 2);
        let mark = done.mark.expect("a checkpoint after the commit");
        assert_eq!(
            (mark.file.as_str(), mark.pos, mark.gtid.as_deref()),
            ("mysql-bin.000003", 400, Some("0-1-42"))
        );
        assert_eq!((mark.seq, mark.changes), (seqno::of_gtid(42, 3), 3));
        assert!(!a.in_transaction());
    }

    #[test]
    fn a_transaction_without_relayed_rows_publishes_no_records_but_moves_the_mark() {
        let mut a = assembler();
        mariadb_gtid(&mut a, 7, 100);
        let done = a.commit(250, 0);
        assert!(done.closed);
        assert_eq!(done.end, None, "no BEGIN was published, so no END");
        assert_eq!(done.mark.unwrap().gtid.as_deref(), Some("0-1-7"));
    }

    #[test]
    fn rows_without_a_gtid_or_begin_start_a_transaction_numbered_by_position() {
        let mut a = assembler();
        a.ensure_transaction(500);
        assert_eq!(a.tx_id(), Some("mysql-bin.000003:500"));
        let r = a.row("db.t", 520, 2).unwrap();
        assert_eq!(r.seq, seqno::of_position("mysql-bin.000003", 520, 2));
        assert_eq!(r.gtid, None);
    }

    #[test]
    fn an_offset_of_zero_is_no_boundary_to_resume_at() {
        // MariaDB 11.4+ may leave in-transaction offsets out.
        let mut a = assembler();
        mariadb_gtid(&mut a, 3, 100);
        let done = a.commit(0, 0);
        assert!(done.closed && done.mark.is_none() && !done.done);
        assert!(
            a.gtid.covers(&"0-1-3".parse().unwrap()),
            "the GTID still counts as read"
        );
    }

    #[test]
    fn a_compressed_transaction_ends_where_its_payload_ends() {
        let mut a = assembler();
        a.begin(
            "uuid:5".into(),
            Some("3e11fa47-71ca-11e1-9e33-c80aa9429562:5".into()),
            Base::Gtid(5),
            false,
            100,
        );
        assert_eq!(a.place(0x28, 180, 900), Ok((180, 900)));
        // The events inside carry no offsets of their own.
        assert_eq!(a.place(0x02, 0, 0), Ok((180, 0)));
        a.begin_query(180);
        a.begin_record(0);
        let r = a.row("db.t", 180, 1).unwrap();
        assert_eq!(r.seq, seqno::of_gtid(5, 1));
        assert_eq!(a.place(0x10, 0, 0), Ok((180, 0)));
        let done = a.commit(0, 0);
        assert_eq!(done.mark.unwrap().pos, 900);
        assert!(a.mysql.contains("3e11fa47-71ca-11e1-9e33-c80aa9429562", 5));
    }

    #[test]
    fn until_stops_after_the_transaction_that_reaches_it() {
        let stop = StopAt::FilePos(FilePos::new("mysql-bin.000003", 400));
        let mut a = Assembler::new(
            "mysql-bin.000003".into(),
            GtidPos::default(),
            GtidSet::default(),
            0,
            0,
            Some(stop),
        );
        mariadb_gtid(&mut a, 1, 100);
        assert!(!a.commit(300, 0).done);
        assert!(!a.until_reached(&a.at(300), None));
        mariadb_gtid(&mut a, 2, 300);
        assert!(a.commit(450, 0).done);
        assert!(a.until_reached(&a.at(450), None));
    }

    #[test]
    fn snapshot_rows_count_and_carry_their_number() {
        let mut a = assembler();
        a.snapshot_row(seqno::of_gtid(9, seqno::SNAPSHOT_ROW));
        a.snapshot_row(seqno::of_gtid(9, seqno::SNAPSHOT_ROW));
        assert_eq!(
            (a.seq, a.changes),
            (seqno::of_gtid(9, seqno::SNAPSHOT_ROW), 2)
        );
    }
}
