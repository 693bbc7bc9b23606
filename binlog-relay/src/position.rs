//! Binlog positions: `file:pos` coordinates, MariaDB GTID positions, and the
//! `--from` / `--until` arguments built from them.
//!
//! # Ordering
//! A [`FilePos`] orders by the numeric suffix of the file name
//! (`mysql-bin.000010` comes after `mysql-bin.000009`), then by offset. A
//! [`GtidPos`] holds the last GTID of every replication domain (MariaDB's
//! `gtid_slave_pos` format, `0-1-42,1-2-7`); within one domain the sequence
//! number orders transactions, so one position *covers* a GTID when the
//! GTID's sequence number is not above the domain's.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use cdc_event::Gtid;
use chrono::{DateTime, Utc};

/// A position was written in a form the relay does not understand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position {input:?}: {reason}")]
pub struct PositionParseError {
    pub input: String,
    pub reason: &'static str,
}

fn bad(input: &str, reason: &'static str) -> PositionParseError {
    PositionParseError {
        input: input.to_owned(),
        reason,
    }
}

/// A binlog coordinate: the file and the byte offset of an event in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilePos {
    pub file: String,
    pub pos: u64,
}

impl FilePos {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        Self {
            file: file.into(),
            pos,
        }
    }

    /// The numeric suffix of the file name (`mysql-bin.000042` → 42).
    pub fn file_index(&self) -> Option<u64> {
        self.file.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
    }
}

impl Ord for FilePos {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_file = match (self.file_index(), other.file_index()) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.file.cmp(&other.file),
        };
        by_file.then(self.pos.cmp(&other.pos))
    }
}

impl PartialOrd for FilePos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for FilePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for FilePos {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, pos) = s
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| bad(s, "expected file:pos"))?;
        if file.is_empty() {
            return Err(bad(s, "the file name is empty"));
        }
        let pos = pos
            .parse()
            .map_err(|_| bad(s, "the offset is not a number"))?;
        if pos < 4 {
            return Err(bad(s, "offsets start at 4 (after the binlog magic)"));
        }
        Ok(FilePos::new(file, pos))
    }
}

pub use cdc_event::gtid::{GtidPos, GtidSet};

impl From<cdc_event::gtid::GtidTextError> for PositionParseError {
    fn from(e: cdc_event::gtid::GtidTextError) -> Self {
        PositionParseError {
            input: e.input,
            reason: e.reason,
        }
    }
}

/// A MySQL GTID set as `COM_BINLOG_DUMP_GTID` wants it (interval ends
/// exclusive).
pub fn dump_sids(set: &GtidSet) -> Vec<mysql_async::Sid<'static>> {
    set.iter()
        .filter_map(|(uuid, ivs)| {
            let bytes = cdc_event::gtid::uuid_bytes(uuid)?;
            Some(
                ivs.iter()
                    .fold(mysql_async::Sid::new(bytes), |sid, &(a, b)| {
                        sid.with_interval(mysql_async::GnoInterval::new(a, b + 1))
                    }),
            )
        })
        .collect()
}

/// Where a run starts reading (`--from`).
#[derive(Debug, Clone, PartialEq)]
pub enum StartFrom {
    /// The oldest binlog file the server still has.
    Earliest,
    /// The server's current end of binlog: only changes from now on.
    Latest,
    /// An exact event boundary.
    FilePos(FilePos),
    /// After the given GTIDs (MariaDB).
    Gtid(GtidPos),
    /// Every transaction not in this MySQL GTID set.
    MysqlGtid(GtidSet),
    /// The first transaction committed at or after this time.
    Time(DateTime<Utc>),
}

impl fmt::Display for StartFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartFrom::Earliest => f.write_str("earliest"),
            StartFrom::Latest => f.write_str("latest"),
            StartFrom::FilePos(p) => write!(f, "{p}"),
            StartFrom::Gtid(g) => write!(f, "gtid:{g}"),
            StartFrom::MysqlGtid(g) => write!(f, "gtid:{g}"),
            StartFrom::Time(t) => write!(f, "time:{}", t.to_rfc3339()),
        }
    }
}

impl FromStr for StartFrom {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t {
            "earliest" => return Ok(StartFrom::Earliest),
            "latest" => return Ok(StartFrom::Latest),
            _ => {}
        }
        if let Some(g) = t.strip_prefix("gtid:") {
            // MySQL sets name a server UUID before a colon; MariaDB GTIDs don't.
            if g.contains(':') {
                let set: GtidSet = g.parse()?;
                if set.is_empty() {
                    return Err(bad(s, "the GTID set is empty"));
                }
                return Ok(StartFrom::MysqlGtid(set));
            }
            let pos: GtidPos = g.parse()?;
            if pos.is_empty() {
                return Err(bad(s, "the GTID position is empty"));
            }
            return Ok(StartFrom::Gtid(pos));
        }
        if let Some(ts) = t.strip_prefix("time:") {
            let at = DateTime::parse_from_rfc3339(ts)
                .map_err(|_| bad(s, "expected an RFC 3339 time"))?;
            return Ok(StartFrom::Time(at.with_timezone(&Utc)));
        }
        let fp = t.strip_prefix("file:").unwrap_or(t);
        fp.parse::<FilePos>().map(StartFrom::FilePos).map_err(|_| {
            bad(
                s,
                "expected earliest, latest, file:pos, gtid:<set> or time:<RFC3339>",
            )
        })
    }
}

/// Where a run stops (`--until`): the first transaction at or beyond it is
/// not emitted.
#[derive(Debug, Clone, PartialEq)]
pub enum StopAt {
    FilePos(FilePos),
    Gtid(GtidPos),
}

impl StopAt {
    /// Whether a transaction that starts at `pos` with `gtid` lies beyond the stop point.
    pub fn reached(&self, pos: &FilePos, gtid: Option<&Gtid>) -> bool {
        match self {
            StopAt::FilePos(stop) => pos >= stop,
            StopAt::Gtid(stop) => {
                gtid.is_some_and(|g| stop.domain(g.domain).is_some_and(|s| g.seq > s.seq))
            }
        }
    }
}

impl FromStr for StopAt {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<StartFrom>() {
            Ok(StartFrom::FilePos(p)) => Ok(StopAt::FilePos(p)),
            Ok(StartFrom::Gtid(g)) => Ok(StopAt::Gtid(g)),
            Ok(StartFrom::MysqlGtid(_)) => Err(bad(
                s,
                "--until takes a MariaDB gtid position; on MySQL use file:pos",
            )),
            _ => Err(bad(s, "--until takes file:pos or gtid:<set>")),
        }
    }
}

impl fmt::Display for StopAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopAt::FilePos(p) => write!(f, "{p}"),
            StopAt::Gtid(g) => write!(f, "gtid:{g}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mysql_gtid_sets_parse_merge_and_print_as_mysql_does() {
        let set: GtidSet = format!(
            "{}:1-5:7, 1C2AAD49-AE92-409A-B4DF-D05A03E4702E:3",
            U1.to_uppercase()
        )
        .parse()
        .unwrap();
        assert_eq!(
            set.to_string(),
            format!("1c2aad49-ae92-409a-b4df-d05a03e4702e:3,{U1}:1-5:7")
        );
        let mut set = set;
        set.add(U1, 6);
        set.add(U1, 6);
        assert_eq!(
            set.to_string(),
            format!("1c2aad49-ae92-409a-b4df-d05a03e4702e:3,{U1}:1-7")
        );
        assert!(set.contains(U1, 7) && !set.contains(U1, 8));
        let sids = dump_sids(&set);
        assert_eq!(sids.len(), 2);
        // The wire interval's end is exclusive.
        assert_eq!(
            (sids[1].intervals()[0].start(), sids[1].intervals()[0].end()),
            (1, 8)
        );
        for bad in [
            "nope:1",
            U1,
            &format!("{U1}:0"),
            &format!("{U1}:5-3"),
            &format!("{U1}:x"),
        ] {
            assert!(bad.parse::<GtidSet>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn gtid_starts_tell_the_flavours_apart() {
        assert!(matches!(
            format!("gtid:{U1}:1-42").parse::<StartFrom>(),
            Ok(StartFrom::MysqlGtid(_))
        ));
        assert!(matches!(
            "gtid:0-1-42".parse::<StartFrom>(),
            Ok(StartFrom::Gtid(_))
        ));
        assert!(format!("gtid:{U1}:1-42").parse::<StopAt>().is_err());
        let from = format!("gtid:{U1}:1-42");
        assert_eq!(from.parse::<StartFrom>().unwrap().to_string(), from);
    }

    #[test]
    fn file_positions_order_by_file_number_then_offset() {
        let a: FilePos = "mysql-bin.000009:900".parse().unwrap();
        let b: FilePos = "mysql-bin.000010:4".parse().unwrap();
        let c: FilePos = "mysql-bin.000010:120".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(c.to_string(), "mysql-bin.000010:120");
    }

    #[test]
    fn file_positions_reject_garbage() {
        for bad in ["", "mysql-bin.000001", ":4", "f:x", "f:2"] {
            assert!(bad.parse::<FilePos>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn start_positions_parse_every_documented_form() {
        assert_eq!(
            "earliest".parse::<StartFrom>().unwrap(),
            StartFrom::Earliest
        );
        assert_eq!("latest".parse::<StartFrom>().unwrap(), StartFrom::Latest);
        assert_eq!(
            "mysql-bin.000003:1234".parse::<StartFrom>().unwrap(),
            StartFrom::FilePos(FilePos::new("mysql-bin.000003", 1234))
        );
        assert!(matches!(
            "gtid:0-1-9".parse::<StartFrom>().unwrap(),
            StartFrom::Gtid(_)
        ));
        assert!(matches!(
            "time:2026-11-26T10:00:00Z".parse::<StartFrom>().unwrap(),
            StartFrom::Time(_)
        ));
        assert!("gtid:".parse::<StartFrom>().is_err());
        assert!("time:yesterday".parse::<StartFrom>().is_err());
        assert!("somewhere".parse::<StartFrom>().is_err());
    }

    #[test]
    fn stop_points_compare_positions_and_gtids() {
        let stop: StopAt = "mysql-bin.000002:500".parse().unwrap();
        assert!(!stop.reached(&FilePos::new("mysql-bin.000002", 499), None));
        assert!(stop.reached(&FilePos::new("mysql-bin.000002", 500), None));
        let stop: StopAt = "gtid:0-1-10".parse().unwrap();
        let here = FilePos::new("f.1", 4);
        assert!(!stop.reached(&here, Some(&"0-1-10".parse().unwrap())));
        assert!(stop.reached(&here, Some(&"0-1-11".parse().unwrap())));
        assert!("latest".parse::<StopAt>().is_err());
    }
}
