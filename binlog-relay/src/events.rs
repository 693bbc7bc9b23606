//! Every binlog event type the relay can meet, and what it does with it.
//!
//! Nothing is skipped by default: an event type is either read by the relay
//! (`Read`), or known to carry no row change (`NoRows`, with the reason), or
//! it stops the relay with its name (`Refused`), because it may carry row
//! changes the relay cannot decode. An unknown type is refused too: dropping
//! a transaction without a word is the one thing a CDC relay must not do.
//!
//! MySQL 8's `TRANSACTION_PAYLOAD_EVENT` (`binlog_transaction_compression=ON`)
//! is read: the binlog client decompresses it (zstd) and hands the relay the
//! events inside it, which are handled like any others. MariaDB's compressed
//! events (`log_bin_compress=ON`) are refused, and preflight refuses the
//! setting before the stream starts.

use crate::source;

/// What the relay does with one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Read by the relay (transactions, rows, positions, GTIDs).
    Read,
    /// Carries no row change; the reason says why it is safe to pass over.
    NoRows(&'static str),
    /// May carry row changes the relay cannot read: stop, naming it.
    Refused(&'static str),
}

/// One event type's name and handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventKind {
    pub code: u8,
    pub name: &'static str,
    pub handling: Handling,
}

const STATEMENT: &str = "statement-based change (LOAD DATA); the relay needs binlog_format=ROW";
const COMPRESSED: &str = "MariaDB compressed binlog event; set log_bin_compress=OFF on the server (preflight refuses it)";

/// The relay's handling of the event type `code` (the header's raw byte).
pub fn kind(code: u8) -> EventKind {
    use Handling::*;
    let (name, handling) = match code {
        0x00 => ("UNKNOWN_EVENT", Refused("never written by a server")),
        0x01 => ("START_EVENT_V3", NoRows("binlog v3 file header")),
        0x02 => ("QUERY_EVENT", Read),
        0x03 => ("STOP_EVENT", NoRows("the server stopped")),
        0x04 => ("ROTATE_EVENT", Read),
        0x05 => (
            "INTVAR_EVENT",
            NoRows("auto-increment context of the next statement"),
        ),
        0x06 => ("LOAD_EVENT", Refused(STATEMENT)),
        0x07 => ("SLAVE_EVENT", NoRows("never written")),
        0x08 => ("CREATE_FILE_EVENT", Refused(STATEMENT)),
        0x09 => ("APPEND_BLOCK_EVENT", Refused(STATEMENT)),
        0x0a => ("EXEC_LOAD_EVENT", Refused(STATEMENT)),
        0x0b => ("DELETE_FILE_EVENT", Refused(STATEMENT)),
        0x0c => ("NEW_LOAD_EVENT", Refused(STATEMENT)),
        0x0d => ("RAND_EVENT", NoRows("RAND() seed of the next statement")),
        0x0e => (
            "USER_VAR_EVENT",
            NoRows("user variable of the next statement"),
        ),
        0x0f => ("FORMAT_DESCRIPTION_EVENT", Read),
        0x10 => ("XID_EVENT", Read),
        0x11 => ("BEGIN_LOAD_QUERY_EVENT", Refused(STATEMENT)),
        0x12 => ("EXECUTE_LOAD_QUERY_EVENT", Refused(STATEMENT)),
        0x13 => ("TABLE_MAP_EVENT", Read),
        0x14 => (
            "PRE_GA_WRITE_ROWS_EVENT",
            Refused("MySQL 5.1 pre-GA rows event"),
        ),
        0x15 => (
            "PRE_GA_UPDATE_ROWS_EVENT",
            Refused("MySQL 5.1 pre-GA rows event"),
        ),
        0x16 => (
            "PRE_GA_DELETE_ROWS_EVENT",
            Refused("MySQL 5.1 pre-GA rows event"),
        ),
        0x17 => ("WRITE_ROWS_EVENT_V1", Read),
        0x18 => ("UPDATE_ROWS_EVENT_V1", Read),
        0x19 => ("DELETE_ROWS_EVENT_V1", Read),
        0x1a => (
            "INCIDENT_EVENT",
            Refused("the server reports that changes may be missing from its binlog"),
        ),
        0x1b => ("HEARTBEAT_EVENT", NoRows("keep-alive from the server")),
        0x1c => ("IGNORABLE_EVENT", NoRows("marked ignorable by the server")),
        0x1d => (
            "ROWS_QUERY_EVENT",
            NoRows("the statement text of the rows that follow"),
        ),
        0x1e => ("WRITE_ROWS_EVENT", Read),
        0x1f => ("UPDATE_ROWS_EVENT", Read),
        0x20 => ("DELETE_ROWS_EVENT", Read),
        0x21 => ("GTID_EVENT", Read),
        0x22 => (
            "ANONYMOUS_GTID_EVENT",
            NoRows("starts a transaction without a GTID; its BEGIN follows"),
        ),
        0x23 => ("PREVIOUS_GTIDS_EVENT", Read),
        0x24 => (
            "TRANSACTION_CONTEXT_EVENT",
            NoRows("group replication certification data"),
        ),
        0x25 => (
            "VIEW_CHANGE_EVENT",
            NoRows("group replication membership change"),
        ),
        0x26 => (
            "XA_PREPARE_LOG_EVENT",
            Refused("XA transactions are not supported: their rows may still be rolled back"),
        ),
        0x27 => (
            "PARTIAL_UPDATE_ROWS_EVENT",
            Refused("partial JSON updates; set binlog_row_value_options='' on the server"),
        ),
        0x28 => ("TRANSACTION_PAYLOAD_EVENT", Read),
        0x29 => (
            "HEARTBEAT_LOG_EVENT_V2",
            NoRows("keep-alive from the server"),
        ),
        0x2a => (
            "GTID_TAGGED_LOG_EVENT",
            Refused("tagged GTIDs (MySQL 8.3+) are not supported"),
        ),
        source::MARIADB_ANNOTATE_ROWS => (
            "ANNOTATE_ROWS_EVENT",
            NoRows("the statement text of the rows that follow"),
        ),
        source::MARIADB_BINLOG_CHECKPOINT => (
            "BINLOG_CHECKPOINT_EVENT",
            NoRows("crash-recovery marker of the server"),
        ),
        source::MARIADB_GTID => ("GTID_EVENT (MariaDB)", Read),
        source::MARIADB_GTID_LIST => ("GTID_LIST_EVENT", Read),
        0xa4 => (
            "START_ENCRYPTION_EVENT",
            NoRows("the server decrypts events before sending them to a replica"),
        ),
        0xa5 => ("QUERY_COMPRESSED_EVENT", Refused(COMPRESSED)),
        0xa6 => ("WRITE_ROWS_COMPRESSED_EVENT_V1", Refused(COMPRESSED)),
        0xa7 => ("UPDATE_ROWS_COMPRESSED_EVENT_V1", Refused(COMPRESSED)),
        0xa8 => ("DELETE_ROWS_COMPRESSED_EVENT_V1", Refused(COMPRESSED)),
        0xa9 => ("WRITE_ROWS_COMPRESSED_EVENT", Refused(COMPRESSED)),
        0xaa => ("UPDATE_ROWS_COMPRESSED_EVENT", Refused(COMPRESSED)),
        0xab => ("DELETE_ROWS_COMPRESSED_EVENT", Refused(COMPRESSED)),
        _ => (
            "an unknown event type",
            Refused("the relay does not know this event type and it may carry row changes"),
        ),
    };
    EventKind {
        code,
        name,
        handling,
    }
}

/// Whether `code` is one of MariaDB's compressed rows events, whose table
/// id (the first 6 bytes of the body) is not compressed: one of a table the
/// relay does not include can be passed over.
pub fn is_compressed_rows(code: u8) -> bool {
    (0xa6..=0xab).contains(&code)
}

/// The table id of a rows event body.
pub fn rows_table_id(body: &[u8]) -> Option<u64> {
    let b = body.get(..6)?;
    Some(u64::from_le_bytes([
        b[0], b[1], b[2], b[3], b[4], b[5], 0, 0,
    ]))
}

/// `TRANSACTION_PAYLOAD_EVENT`.
pub const TRANSACTION_PAYLOAD: u8 = 0x28;

/// Event types that start a transaction outside any payload.
fn starts_transaction(code: u8) -> bool {
    matches!(
        code,
        0x21 | 0x22 | TRANSACTION_PAYLOAD | source::MARIADB_GTID
    )
}

/// Where the events of a MySQL compressed transaction stand. The binlog
/// client hands the payload event over, then the events decompressed from
/// it, which carry no offsets of their own: they stand at the payload's
/// start, and the transaction they form ends where the payload ends.
#[derive(Debug, Default)]
pub struct Payloads {
    /// The open payload's start and end offsets.
    open: Option<(u64, u64)>,
}

impl Payloads {
    /// The `(start, end)` offsets the event of type `code` read at
    /// `start..end` stands at (`end` 0 inside a payload: not a boundary).
    /// A transaction that starts while a payload is open means the payload
    /// gave no events (it could not be decompressed): an error naming it.
    pub fn place(&mut self, code: u8, start: u64, end: u64) -> Result<(u64, u64), String> {
        match self.open {
            Some((p_start, _)) if starts_transaction(code) => Err(format!(
                "the compressed transaction at offset {p_start} ended without its commit: \
                 its events could not be read (zstd); next came {} at offset {start}",
                kind(code).name
            )),
            Some((p_start, _)) => Ok((p_start, 0)),
            None => {
                if code == TRANSACTION_PAYLOAD {
                    self.open = Some((start, end));
                }
                Ok((start, end))
            }
        }
    }

    /// At a transaction's end read at `end`: where it ends (a payload's
    /// end when the transaction came in one, which closes it).
    pub fn commit_end(&mut self, end: u64) -> u64 {
        self.open.take().map_or(end, |(_, payload_end)| payload_end)
    }
}

impl EventKind {
    /// The error text when this kind is refused at `at` (`file:pos`).
    pub fn refusal(&self, at: &str) -> Option<String> {
        match self.handling {
            Handling::Refused(why) => Some(format!(
                "binlog event {} (type 0x{:02x}) at {at}: {why}; the relay stops rather than skip it",
                self.name, self.code
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_code_has_an_explicit_answer() {
        // Every code a MySQL or MariaDB server defines is named; the rest
        // are refused as unknown.
        for code in (0x00..=0x2a).chain(0xa0..=0xab) {
            let k = kind(code);
            assert_ne!(k.name, "an unknown event type", "0x{code:02x}");
        }
        for code in [0x2b, 0x7f, 0x9f, 0xac, 0xff] {
            assert!(
                matches!(kind(code).handling, Handling::Refused(_)),
                "0x{code:02x}"
            );
        }
    }

    #[test]
    fn row_carrying_types_are_read_or_refused_never_passed_over() {
        let rows = [
            0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1e, 0x1f, 0x20, 0x27, 0x28,
        ];
        let mariadb_rows = 0xa5..=0xab;
        for code in rows.into_iter().chain(mariadb_rows) {
            assert!(
                !matches!(kind(code).handling, Handling::NoRows(_)),
                "0x{code:02x} may carry rows"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_event_and_where_it_was() {
        let text = kind(0xa9).refusal("mysql-bin.000003:1234").unwrap();
        assert!(text.contains("WRITE_ROWS_COMPRESSED_EVENT"), "{text}");
        assert!(text.contains("mysql-bin.000003:1234"), "{text}");
        assert!(text.contains("log_bin_compress"), "{text}");
        assert!(kind(0x1e).refusal("x:4").is_none());
    }

    use mysql_common::binlog::consts::TransactionPayloadCompressionType;
    use mysql_common::binlog::events::TransactionPayloadEvent;
    use mysql_common::proto::MySerialize as _;

    /// One event's bytes: the v4 header (no checksum) and `body`.
    fn event_bytes(code: u8, log_pos: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1_795_687_200u32.to_le_bytes()); // timestamp
        out.push(code);
        out.extend_from_slice(&1u32.to_le_bytes()); // server id
        out.extend_from_slice(&(19 + body.len() as u32).to_le_bytes());
        out.extend_from_slice(&log_pos.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(body);
        out
    }

    /// A MySQL 8 compressed transaction as the server sends it (built here:
    /// no MySQL 8 server runs on the development machines): BEGIN, a table
    /// map of `db.t (id INT)`, one inserted row (42) and the XID, zstd
    /// compressed into one `TRANSACTION_PAYLOAD_EVENT` ending at offset 900.
    fn compressed_transaction() -> Vec<u8> {
        let mut begin = Vec::new();
        begin.extend_from_slice(&7u32.to_le_bytes()); // thread id
        begin.extend_from_slice(&0u32.to_le_bytes()); // execution time
        begin.push(2); // schema length
        begin.extend_from_slice(&0u16.to_le_bytes()); // error code
        begin.extend_from_slice(&0u16.to_le_bytes()); // status vars length
        begin.extend_from_slice(b"db\0BEGIN");
        let mut map = vec![0x2a, 0, 0, 0, 0, 0, 1, 0]; // table id 42, flags
        map.extend_from_slice(b"\x02db\0\x01t\0");
        map.extend_from_slice(&[1, 0x03, 0, 0x00]); // 1 column: INT; no metadata; nullability
        let mut rows = vec![0x2a, 0, 0, 0, 0, 0, 1, 0]; // table id 42, flags
        rows.extend_from_slice(&[1, 0x01]); // 1 column, present
        rows.push(0x00); // null bitmap
        rows.extend_from_slice(&42i32.to_le_bytes());
        let xid = 99u64.to_le_bytes();
        let inner = [
            event_bytes(0x02, 0, &begin),
            event_bytes(0x13, 0, &map),
            event_bytes(0x17, 0, &rows),
            event_bytes(0x10, 0, &xid),
        ]
        .concat();
        let packed = zstd::encode_all(&inner[..], 3).unwrap();
        let event = TransactionPayloadEvent::new(
            packed.len() as u64,
            TransactionPayloadCompressionType::ZSTD,
            inner.len() as u64,
            packed,
        );
        let mut body = Vec::new();
        event.serialize(&mut body);
        event_bytes(TRANSACTION_PAYLOAD, 900, &body)
    }

    #[test]
    fn a_compressed_transaction_is_read_event_by_event_and_ends_at_its_payload() {
        use mysql_common::binlog::EventStreamReader;
        use mysql_common::binlog::consts::BinlogVersion;
        use mysql_common::binlog::events::EventData;

        let bytes = compressed_transaction();
        let size = bytes.len() as u64;
        // What the binlog client does: read the payload event, then the
        // events decompressed from it.
        let mut reader = EventStreamReader::new(BinlogVersion::Version4);
        let outer = reader.read(&bytes[..]).unwrap().unwrap();
        let Some(EventData::TransactionPayloadEvent(payload)) = outer.read_data().unwrap() else {
            panic!("not a payload event");
        };
        let mut payloads = Payloads::default();
        let ty = outer.header().event_type_raw();
        assert_eq!(kind(ty).handling, Handling::Read);
        assert_eq!(payloads.place(ty, 900 - size, 900), Ok((900 - size, 900)));

        let mut inner = payload.decompressed().unwrap();
        let mut seen = Vec::new();
        let mut row = None;
        while let Some(ev) = reader.read_decompressed(&mut inner).unwrap() {
            let code = ev.header().event_type_raw();
            assert_eq!(kind(code).handling, Handling::Read, "{}", kind(code).name);
            let end = u64::from(ev.header().log_pos());
            assert_eq!(payloads.place(code, 0, end), Ok((900 - size, 0)));
            if let Some(EventData::RowsEvent(rows)) = ev.read_data().unwrap() {
                let tme = reader
                    .get_tme(rows.table_id())
                    .expect("its table map came first");
                assert_eq!((&*tme.database_name(), &*tme.table_name()), ("db", "t"));
                let (_, after) = rows.rows(tme).next().unwrap().unwrap();
                row = after.map(|r| format!("{:?}", r.unwrap()));
            }
            seen.push(kind(code).name);
        }
        assert_eq!(
            seen,
            [
                "QUERY_EVENT",
                "TABLE_MAP_EVENT",
                "WRITE_ROWS_EVENT_V1",
                "XID_EVENT"
            ]
        );
        assert!(row.is_some_and(|r| r.contains("42")), "the row decodes");
        assert_eq!(
            payloads.commit_end(0),
            900,
            "the transaction ends with its payload"
        );
        assert_eq!(payloads.place(0x21, 900, 1000), Ok((900, 1000)));
    }

    #[test]
    fn a_payload_that_gives_no_events_is_an_error_not_a_skip() {
        let mut payloads = Payloads::default();
        payloads.place(TRANSACTION_PAYLOAD, 100, 900).unwrap();
        let err = payloads.place(0x21, 900, 1000).unwrap_err();
        assert!(
            err.contains("compressed transaction at offset 100"),
            "{err}"
        );
        assert!(err.contains("GTID_EVENT"), "{err}");
    }

    #[test]
    fn a_compressed_rows_event_names_its_table_id() {
        assert!(is_compressed_rows(0xa6) && is_compressed_rows(0xab));
        assert!(!is_compressed_rows(0xa5) && !is_compressed_rows(0x1e));
        assert_eq!(rows_table_id(&[0x2a, 0x01, 0, 0, 0, 0, 0xff]), Some(0x012a));
        assert_eq!(rows_table_id(&[1, 2]), None);
    }
}
