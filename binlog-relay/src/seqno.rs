//! `sluice.seq`: a change's number, derived from where the change is in the
//! source's binlog, never from a counter of the relay process. Any relay,
//! after any restart, with or without its checkpoint, in any replay, gives
//! one change the same number, and numbers grow in commit order for one
//! source.
//!
//! Two layouts of the 64 bits, one per kind of source:
//! - **GTID sources** (MariaDB, always; MySQL with `gtid_mode=ON`): the
//!   transaction's GTID sequence number in the upper 44 bits, the row's
//!   index in its transaction (from 1) in the lower 20. Since the GTID is
//!   replicated, a relay reading a replica numbers the changes as one
//!   reading the primary.
//! - **Position sources** (MySQL without GTIDs): the binlog file's number in
//!   the upper 20 bits, the rows event's offset in the next 32, the row's
//!   index in that event (from 1) in the lower 12.
//!
//! Each field saturates at its largest value rather than wrapping (a
//! transaction of more than 1,048,575 rows, a file number above 1,048,575):
//! numbers then repeat but never go backwards, and the cache-syncer only
//! skips a change whose number is *below* what a partition has applied, so
//! a repeated number is applied again (harmless: effects are absolute).
//!
//! Snapshot rows carry the number of their snapshot's start point with the
//! row field at its largest value: not below any change before that point,
//! below every change after it.

/// Bits of the row index under a GTID sequence number.
const GTID_ROW_BITS: u32 = 20;
/// Bits of the GTID sequence number.
const GTID_BITS: u32 = 64 - GTID_ROW_BITS;
/// Bits of the binlog file number (position layout).
const FILE_BITS: u32 = 20;
/// Bits of the event offset (position layout).
const POS_BITS: u32 = 32;
/// Bits of the row index in its event (position layout).
const EVENT_ROW_BITS: u32 = 64 - FILE_BITS - POS_BITS;

/// Snapshot rows: the row field at its largest value.
pub const SNAPSHOT_ROW: u64 = u64::MAX;

fn sat(value: u64, bits: u32) -> u64 {
    value.min((1u64 << bits) - 1)
}

/// The number of row `row` (from 1) of the transaction with GTID sequence
/// number `gtid_seq` (MariaDB `domain-server-seq`'s seq, MySQL's `gno`).
pub fn of_gtid(gtid_seq: u64, row: u64) -> u64 {
    sat(gtid_seq, GTID_BITS) << GTID_ROW_BITS | sat(row, GTID_ROW_BITS)
}

/// The number of row `row` (from 1) of the rows event at `file:pos`.
pub fn of_position(file: &str, pos: u64, row: u64) -> u64 {
    let file_no = file
        .rsplit_once('.')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .unwrap_or(0);
    sat(file_no, FILE_BITS) << (POS_BITS + EVENT_ROW_BITS)
        | sat(pos, POS_BITS) << EVENT_ROW_BITS
        | sat(row, EVENT_ROW_BITS)
}

/// Where a transaction's numbers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The transaction's GTID sequence number.
    Gtid(u64),
    /// The position of each rows event (no GTID).
    Position,
}

impl Base {
    /// Row `row_in_tx` (from 1) of the transaction, which is row
    /// `row_in_event` (from 1) of the rows event at `file:pos`.
    pub fn number(self, file: &str, pos: u64, row_in_tx: u64, row_in_event: u64) -> u64 {
        match self {
            Base::Gtid(n) => of_gtid(n, row_in_tx),
            Base::Position => of_position(file, pos, row_in_event),
        }
    }
}

/// The GTID sequence number a snapshot started at, from its GTID text: the
/// highest sequence number of a MariaDB position (`0-1-42,1-2-7`) or the
/// highest transaction number of a MySQL set (`uuid:1-42`). `None` when the
/// text holds neither.
pub fn snapshot_gtid_seq(text: &str) -> Option<u64> {
    use cdc_event::gtid::{GtidPos, GtidSet};
    match text.parse::<GtidPos>() {
        Ok(pos) => pos.max_seq(),
        Err(_) => text.parse::<GtidSet>().ok()?.last_gno(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_numbers_grow_with_the_transaction_then_the_row() {
        assert!(of_gtid(7, 1) < of_gtid(7, 2));
        assert!(of_gtid(7, 900_000) < of_gtid(8, 1));
        assert_eq!(of_gtid(7, 3), (7 << 20) | 3);
        // A snapshot at GTID 7 sits after every row of 7 and before 8's.
        assert!(of_gtid(7, 5_000_000) <= of_gtid(7, SNAPSHOT_ROW));
        assert!(of_gtid(7, SNAPSHOT_ROW) < of_gtid(8, 1));
    }

    #[test]
    fn oversized_fields_saturate_instead_of_wrapping() {
        let big_row = of_gtid(7, 2_000_000);
        assert_eq!(big_row, of_gtid(7, (1 << 20) - 1));
        assert!(big_row < of_gtid(8, 1));
        assert_eq!(of_gtid(u64::MAX, 1), of_gtid(1 << 44, 1));
        assert!(of_gtid(u64::MAX, 1) > of_gtid((1 << 44) - 2, 1));
    }

    #[test]
    fn position_numbers_follow_file_then_offset_then_row() {
        let a = of_position("mysql-bin.000001", 4_000_000, 2);
        let b = of_position("mysql-bin.000001", 4_000_100, 1);
        let c = of_position("mysql-bin.000002", 4, 1);
        assert!(a < b && b < c);
        assert!(of_position("mysql-bin.000002", 4, 1) < of_position("mysql-bin.000002", 4, 2));
    }

    #[test]
    fn the_same_change_gets_the_same_number_whoever_reads_it() {
        // Two relays (or one after losing its state) computing from the
        // same binlog coordinates agree.
        let first = Base::Gtid(42).number("mariadb-bin.000003", 1234, 3, 1);
        let again = Base::Gtid(42).number("mariadb-bin.000009", 77, 3, 1);
        assert_eq!(first, again, "a GTID number does not depend on the file");
        assert_eq!(
            Base::Position.number("mysql-bin.000003", 1234, 9, 2),
            of_position("mysql-bin.000003", 1234, 2)
        );
    }

    #[test]
    fn a_snapshot_start_reads_mariadb_and_mysql_gtid_texts() {
        assert_eq!(snapshot_gtid_seq("0-1-42"), Some(42));
        assert_eq!(snapshot_gtid_seq("0-1-42,1-2-7"), Some(42));
        assert_eq!(
            snapshot_gtid_seq("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42:50-60"),
            Some(60)
        );
        assert_eq!(snapshot_gtid_seq(""), None);
    }
}
