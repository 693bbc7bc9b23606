//! GTIDs as sluice carries them in headers and consistency tokens.
//!
//! MariaDB GTIDs are `domain-server-seq`; within one domain the sequence number
//! orders transactions, which is what watermarks compare. MySQL GTIDs
//! (`uuid:n`) are kept as opaque text.

use std::fmt;
use std::str::FromStr;

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
}
