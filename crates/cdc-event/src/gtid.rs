//! GTIDs as sluice carries them in headers, checkpoints, watermarks and
//! consistency tokens: the one place their text forms are parsed and printed.
//!
//! - [`Gtid`]: one MariaDB GTID, `domain-server-seq`; within one domain the
//!   sequence number orders transactions, which is what watermarks compare.
//! - [`GtidPos`]: a MariaDB position, the last GTID per domain
//!   (`gtid_slave_pos` form, `0-1-42,1-2-7`).
//! - [`GtidSet`]: a MySQL GTID set, per source UUID sorted disjoint
//!   intervals (`uuid:1-42:50,uuid2:1-7`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Which server family a GTID text comes from: MariaDB (`domain-server-seq`
/// positions) or MySQL (`uuid:interval` sets). The one detection, used by
/// the relay and by the services' consistency tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    /// Detects the flavour from `SELECT VERSION()`.
    pub fn from_version(version: &str) -> Self {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    /// The query that reads every transaction the server has committed:
    /// `@@gtid_binlog_pos` (a [`GtidPos`]) or `@@global.gtid_executed` (a
    /// [`GtidSet`]), as text.
    pub fn committed_query(self) -> &'static str {
        match self {
            Flavor::MariaDb => "SELECT CAST(@@gtid_binlog_pos AS CHAR)",
            Flavor::MySql => "SELECT CAST(@@global.gtid_executed AS CHAR)",
        }
    }
}

/// A GTID position or set text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid position {input:?}: {reason}")]
pub struct GtidTextError {
    pub input: String,
    pub reason: &'static str,
}

fn text_error(input: &str, reason: &'static str) -> GtidTextError {
    GtidTextError {
        input: input.to_owned(),
        reason,
    }
}

/// A MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

/// Why a GTID string was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid gtid {0:?}: expected domain-server-seq, e.g. 0-1-42")]
pub struct GtidParseError(pub String);

impl FromStr for Gtid {
    type Err = GtidParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || GtidParseError(s.to_owned());
        let mut parts = s.trim().splitn(3, '-');
        let domain = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        let server = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        let seq = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        Ok(Gtid {
            domain,
            server,
            seq,
        })
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
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

    /// The GTID of `domain`, when the position has one.
    pub fn domain(&self, domain: u32) -> Option<&Gtid> {
        self.domains.get(&domain)
    }

    /// The highest sequence number of any domain.
    pub fn max_seq(&self) -> Option<u64> {
        self.domains.values().map(|g| g.seq).max()
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
    type Err = GtidTextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut pos = GtidPos::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: Gtid = part
                .parse()
                .map_err(|_| text_error(s, "expected domain-server-seq[,...], e.g. 0-1-42"))?;
            if pos.domains.contains_key(&g.domain) {
                return Err(text_error(s, "a domain appears twice"));
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

    /// Per source UUID (lowercase), its sorted disjoint intervals.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[(u64, u64)])> {
        self.sids
            .iter()
            .map(|(u, ivs)| (u.as_str(), ivs.as_slice()))
    }

    /// The highest transaction number of any source.
    pub fn last_gno(&self) -> Option<u64> {
        self.sids
            .values()
            .filter_map(|ivs| ivs.last().map(|iv| iv.1))
            .max()
    }
}

/// `3e11fa47-71ca-11e1-9e33-c80aa9429562` → its 16 bytes.
pub fn uuid_bytes(uuid: &str) -> Option<[u8; 16]> {
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
    type Err = GtidTextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            text_error(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_mariadb_gtids() {
        let g: Gtid = "0-1-20009".parse().unwrap();
        assert_eq!(
            g,
            Gtid {
                domain: 0,
                server: 1,
                seq: 20009
            }
        );
        assert_eq!(g.to_string(), "0-1-20009");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "0-1", "a-b-c", "0-1-x", "-1-2-3", "0-1-2-3"] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad:?} accepted");
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
}
