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
use std::collections::BTreeMap;
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

/// A MariaDB GTID position: the last GTID per replication domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct GtidPos {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// Records `gtid` as the latest of its domain.
    pub fn advance(&mut self, gtid: Gtid) {
        self.domains.insert(gtid.domain, gtid);
    }

    /// Whether `gtid` is at or before this position in its domain.
    pub fn covers(&self, gtid: &Gtid) -> bool {
        self.domains
            .get(&gtid.domain)
            .is_some_and(|g| g.seq >= gtid.seq)
    }

    /// Whether every domain of `other` is covered.
    pub fn covers_all(&self, other: &GtidPos) -> bool {
        other.domains.values().all(|g| self.covers(g))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Gtid> {
        self.domains.values()
    }
}

impl FromIterator<Gtid> for GtidPos {
    fn from_iter<I: IntoIterator<Item = Gtid>>(iter: I) -> Self {
        let mut pos = GtidPos::default();
        for g in iter {
            pos.advance(g);
        }
        pos
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for g in self.domains.values() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl FromStr for GtidPos {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pos = GtidPos::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: Gtid = part
                .parse()
                .map_err(|_| bad(s, "expected domain-server-seq[,...], e.g. 0-1-42"))?;
            if pos.domains.contains_key(&g.domain) {
                return Err(bad(s, "a domain appears twice"));
            }
            pos.advance(g);
        }
        Ok(pos)
    }
}

/// A MySQL GTID set: per source UUID, sorted disjoint intervals of
/// transaction numbers (inclusive), printed as MySQL does
/// (`uuid:1-42:50,uuid2:1-7`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sids: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    pub fn is_empty(&self) -> bool {
        self.sids.is_empty()
    }

    /// Adds transaction `gno` of `uuid` (a no-op when already in the set).
    pub fn add(&mut self, uuid: &str, gno: u64) {
        self.add_interval(uuid, gno, gno);
    }

    /// Adds transactions `start..=end` of `uuid`.
    pub fn add_interval(&mut self, uuid: &str, start: u64, end: u64) {
        let ivs = self.sids.entry(uuid.to_ascii_lowercase()).or_default();
        ivs.push((start, end));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(a, b) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ivs = merged;
    }

    /// Whether `gno` of `uuid` is in the set.
    pub fn contains(&self, uuid: &str, gno: u64) -> bool {
        self.sids
            .get(&uuid.to_ascii_lowercase())
            .is_some_and(|ivs| ivs.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// The set as `COM_BINLOG_DUMP_GTID` wants it (interval ends exclusive).
    pub fn sids(&self) -> Vec<mysql_async::Sid<'static>> {
        self.sids
            .iter()
            .filter_map(|(uuid, ivs)| {
                let bytes = uuid_bytes(uuid)?;
                Some(
                    ivs.iter()
                        .fold(mysql_async::Sid::new(bytes), |sid, &(a, b)| {
                            sid.with_interval(mysql_async::GnoInterval::new(a, b + 1))
                        }),
                )
            })
            .collect()
    }
}

/// `3e11fa47-71ca-11e1-9e33-c80aa9429562` → its 16 bytes.
fn uuid_bytes(uuid: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = uuid.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || uuid.len() != 36 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (uuid, ivs)) in self.sids.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(uuid)?;
            for &(a, b) in ivs {
                if a == b {
                    write!(f, ":{a}")?;
                } else {
                    write!(f, ":{a}-{b}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for GtidSet {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            bad(
                s,
                "expected uuid:n[-m][:n[-m]…][,uuid:…], e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42",
            )
        };
        let mut set = GtidSet::default();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let mut parts = item.split(':').map(str::trim);
            let uuid = parts.next().ok_or_else(err)?;
            uuid_bytes(uuid).ok_or_else(err)?;
            let mut any = false;
            for iv in parts {
                let (a, b) = match iv.split_once('-') {
                    Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                    None => (iv.parse::<u64>(), iv.parse::<u64>()),
                };
                let (a, b) = (a.map_err(|_| err())?, b.map_err(|_| err())?);
                if a == 0 || b < a {
                    return Err(err());
                }
                set.add_interval(uuid, a, b);
                any = true;
            }
            if !any {
                return Err(err());
            }
        }
        Ok(set)
    }
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
            StopAt::Gtid(stop) => gtid.is_some_and(|g| match stop.domains.get(&g.domain) {
                Some(s) => g.seq > s.seq,
                None => false,
            }),
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
        let sids = set.sids();
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
    fn gtid_positions_keep_one_gtid_per_domain() {
        let mut p: GtidPos = "0-1-42,1-2-7".parse().unwrap();
        assert_eq!(p.to_string(), "0-1-42,1-2-7");
        p.advance("0-1-43".parse().unwrap());
        assert_eq!(p.to_string(), "0-1-43,1-2-7");
        assert!(p.covers(&"0-1-40".parse().unwrap()));
        assert!(!p.covers(&"0-1-44".parse().unwrap()));
        assert!(!p.covers(&"5-1-1".parse().unwrap()));
        assert!("0-1-1,0-1-2".parse::<GtidPos>().is_err());
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
