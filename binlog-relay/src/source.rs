//! The binlog connection: registers as a replica with `mysql_async` and adds
//! the small MariaDB layer `mysql_common` lacks.
//!
//! # MariaDB
//! Before the dump request the connection declares
//! `@mariadb_slave_capability=4`, so the server sends its real GTID (0xA2)
//! and GTID_LIST (0xA3) events instead of failing to replace them with MySQL
//! ones; `mysql_common` reports those as unknown events and this module
//! decodes their payload itself. Starting from a GTID position sets
//! `@slave_connect_state` (with strict mode) and asks for an empty file name.
//!
//! # Positions
//! Every event header carries the offset of the *next* event (`log_pos`); the
//! file name comes from ROTATE events (the server sends a fake one first). An
//! event starts at `log_pos - event_size`.

use std::time::Duration;

use mysql_async::binlog::events::Event;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
use crate::position::{FilePos, GtidPos, GtidSet};
use cdc_event::Gtid;

/// MariaDB's ANNOTATE_ROWS event type (the SQL text, ignored).
pub const MARIADB_ANNOTATE_ROWS: u8 = 0xa0;
/// MariaDB's BINLOG_CHECKPOINT event type (ignored).
pub const MARIADB_BINLOG_CHECKPOINT: u8 = 0xa1;
/// MariaDB's GTID event type: starts an event group.
pub const MARIADB_GTID: u8 = 0xa2;
/// MariaDB's GTID_LIST event type: the GTID state at the start of a file.
pub const MARIADB_GTID_LIST: u8 = 0xa3;

/// Which server family the relay talks to (one definition, in cdc-event).
pub use cdc_event::gtid::Flavor;

/// A decoded MariaDB GTID event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariaGtid {
    pub gtid: Gtid,
    /// The group is a single statement without BEGIN/COMMIT (DDL).
    pub standalone: bool,
}

/// Decodes a MariaDB GTID event body: `seq_no` u64 LE, `domain_id` u32 LE,
/// `flags` u8 (bit 0: standalone), then optional fields.
pub fn parse_mariadb_gtid(server_id: u32, data: &[u8]) -> Option<MariaGtid> {
    let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
    let flags = *data.get(12)?;
    Some(MariaGtid {
        gtid: Gtid {
            domain,
            server: server_id,
            seq,
        },
        standalone: flags & 1 != 0,
    })
}

/// Decodes a MariaDB GTID_LIST event body: a u32 count (low 28 bits) and
/// that many `domain` u32, `server` u32, `seq` u64 entries.
pub fn parse_mariadb_gtid_list(data: &[u8]) -> Option<GtidPos> {
    let count = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) & 0x0fff_ffff;
    let mut pos = GtidPos::default();
    for i in 0..count as usize {
        let at = 4 + i * 16;
        let entry = data.get(at..at + 16)?;
        let domain = u32::from_le_bytes(entry[0..4].try_into().ok()?);
        let server = u32::from_le_bytes(entry[4..8].try_into().ok()?);
        let seq = u64::from_le_bytes(entry[8..16].try_into().ok()?);
        pos.advance(Gtid {
            domain,
            server,
            seq,
        });
    }
    Some(pos)
}

/// Where one binlog connection starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamStart {
    FilePos(FilePos),
    /// MariaDB only: after these GTIDs.
    Gtid(GtidPos),
    /// MySQL only: every transaction not in this set (`COM_BINLOG_DUMP_GTID`).
    MysqlGtid(GtidSet),
}

/// How the binlog connection is made.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub url: SecretString,
    pub server_id: u32,
    pub flavor: Flavor,
    /// Server heartbeat period while idle.
    pub heartbeat: Duration,
    /// End the stream at the current end of the binlog instead of waiting.
    pub non_blocking: bool,
}

/// Opens a binlog stream at `start`.
pub async fn open(opts: &SourceOptions, start: &StreamStart) -> Result<BinlogStream> {
    let my_opts = Opts::from_url(opts.url.expose_secret())
        .map_err(|e| Error::Stream(format!("invalid mysql url: {e}")))?;
    let mut conn = Conn::new(my_opts).await?;
    let period_ns = opts
        .heartbeat
        .as_nanos()
        .clamp(1_000_000, 4_294_967_000_000_000);
    conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
        .await?;
    if opts.flavor == Flavor::MariaDb {
        conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    }
    let mut mysql_set = None;
    let (file, pos) = match start {
        StreamStart::FilePos(p) => (p.file.clone(), p.pos),
        StreamStart::MysqlGtid(set) => {
            if opts.flavor != Flavor::MySql {
                return Err(Error::BadStart(
                    "a MySQL GTID set (uuid:n-m) needs a MySQL server; MariaDB takes domain-server-seq"
                        .into(),
                ));
            }
            mysql_set = Some(crate::position::dump_sids(set));
            (String::new(), 4)
        }
        StreamStart::Gtid(g) => {
            if opts.flavor != Flavor::MariaDb {
                return Err(Error::BadStart(
                    "GTID start positions are supported on MariaDB only; use file:pos".into(),
                ));
            }
            conn.query_drop(format!("SET @slave_connect_state = '{g}'"))
                .await?;
            conn.query_drop("SET @slave_gtid_strict_mode = 1").await?;
            conn.query_drop("SET @slave_gtid_ignore_duplicates = 0")
                .await?;
            (String::new(), 4)
        }
    };
    let mut req = BinlogStreamRequest::new(opts.server_id)
        .with_filename(file.as_bytes())
        .with_pos(pos);
    if let Some(sids) = mysql_set {
        req = req.with_gtid().with_gtid_set(sids);
    }
    if opts.non_blocking {
        req = req.with_non_blocking();
    }
    Ok(conn.get_binlog_stream(req).await?)
}

/// The file name of a ROTATE event. The server's first (fake) ROTATE comes
/// before the format description, so `mysql_common` cannot know a checksum
/// follows and leaves the 4 CRC bytes on the name; they are cut off here.
pub fn rotate_file_name(raw: &[u8]) -> String {
    let is_binlog_name = |b: &[u8]| {
        b.iter().all(|c| c.is_ascii_graphic())
            && b.iter()
                .rposition(|c| *c == b'.')
                .is_some_and(|dot| dot + 1 < b.len() && b[dot + 1..].iter().all(u8::is_ascii_digit))
    };
    if !is_binlog_name(raw) && raw.len() > 4 && is_binlog_name(&raw[..raw.len() - 4]) {
        return String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned();
    }
    String::from_utf8_lossy(raw).into_owned()
}

/// Start offset of an event (its header carries the end offset).
pub fn event_start(ev: &Event) -> u64 {
    let h = ev.header();
    u64::from(h.log_pos()).saturating_sub(u64::from(h.event_size()))
}

/// The server's binlog files with their sizes, oldest first.
pub async fn binary_logs(pool: &sqlx::MySqlPool) -> Result<Vec<(String, u64)>> {
    use sqlx::Row as _;
    let rows = sqlx::query("SHOW BINARY LOGS").fetch_all(pool).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name: String = r.try_get::<String, _>(0).or_else(|_| {
            r.try_get::<Vec<u8>, _>(0)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })?;
        let size: u64 = r
            .try_get::<u64, _>(1)
            .or_else(|_| r.try_get::<i64, _>(1).map(|v| v.max(0) as u64))?;
        out.push((name, size));
    }
    Ok(out)
}

/// The server's current end of binlog.
pub async fn current_position(pool: &sqlx::MySqlPool) -> Result<FilePos> {
    let logs = binary_logs(pool).await?;
    let (file, size) = logs
        .last()
        .ok_or_else(|| Error::BadStart("the server has no binary logs (log_bin=OFF?)".into()))?;
    Ok(FilePos::new(file.clone(), *size))
}

/// The server's current GTID position (MariaDB `@@gtid_binlog_pos`).
pub async fn current_gtid(pool: &sqlx::MySqlPool, flavor: Flavor) -> Result<Option<GtidPos>> {
    if flavor != Flavor::MariaDb {
        return Ok(None);
    }
    let (g,): (String,) = sqlx::query_as(Flavor::MariaDb.committed_query())
        .fetch_one(pool)
        .await?;
    Ok(g.parse::<GtidPos>().ok())
}

/// Binlog bytes between `pos` and the end of `logs`.
pub fn bytes_behind(logs: &[(String, u64)], pos: &FilePos) -> u64 {
    let mut behind = 0u64;
    let mut seen = false;
    for (name, size) in logs {
        if *name == pos.file {
            seen = true;
            behind += size.saturating_sub(pos.pos);
        } else if seen {
            behind += size;
        }
    }
    if !seen {
        // The file is not listed (purged, or newer than the listing): fall
        // back to comparing by order.
        return logs
            .iter()
            .filter(|(n, _)| FilePos::new(n.clone(), 4) > FilePos::new(pos.file.clone(), 4))
            .map(|(_, s)| *s)
            .sum();
    }
    behind
}

/// Checks that `pos` names an existing, unpurged file and an event boundary in it.
pub async fn validate_file_pos(pool: &sqlx::MySqlPool, pos: &FilePos) -> Result<()> {
    let logs = binary_logs(pool).await?;
    let Some((_, size)) = logs.iter().find(|(n, _)| *n == pos.file) else {
        let oldest = logs.first().map(|(n, _)| n.as_str()).unwrap_or("none");
        return Err(Error::BadStart(format!(
            "{pos}: binlog file {} is not on the server (purged or never existed; oldest is {oldest})",
            pos.file
        )));
    };
    if pos.pos > *size {
        return Err(Error::BadStart(format!(
            "{pos}: beyond the end of {} ({size} bytes)",
            pos.file
        )));
    }
    if pos.pos == *size {
        return Ok(());
    }
    // SHOW BINLOG EVENTS from a boundary lists an event starting exactly there.
    let q = format!(
        "SHOW BINLOG EVENTS IN '{}' FROM {} LIMIT 1",
        pos.file.replace('\'', ""),
        pos.pos
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(q))
        .fetch_optional(pool)
        .await;
    use sqlx::Row as _;
    match row {
        Ok(Some(r)) => {
            let at: u64 = r
                .try_get::<u64, _>(1)
                .or_else(|_| r.try_get::<i64, _>(1).map(|v| v.max(0) as u64))?;
            if at == pos.pos {
                Ok(())
            } else {
                Err(Error::BadStart(format!(
                    "{pos} is not an event boundary (the next event starts at {at})"
                )))
            }
        }
        Ok(None) => Ok(()),
        Err(e) => Err(Error::BadStart(format!(
            "{pos} is not an event boundary: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_mariadb_gtid_event_body() {
        let mut body = Vec::new();
        body.extend_from_slice(&42u64.to_le_bytes());
        body.extend_from_slice(&3u32.to_le_bytes());
        body.push(1); // standalone
        let g = parse_mariadb_gtid(7, &body).unwrap();
        assert_eq!(g.gtid.to_string(), "3-7-42");
        assert!(g.standalone);
        body[12] = 0;
        body.extend_from_slice(&99u64.to_le_bytes()); // commit id, ignored
        assert!(!parse_mariadb_gtid(7, &body).unwrap().standalone);
        assert_eq!(parse_mariadb_gtid(7, &body[..10]), None);
    }

    #[test]
    fn decodes_a_mariadb_gtid_list_event_body() {
        let mut body = Vec::new();
        body.extend_from_slice(&2u32.to_le_bytes());
        for (d, s, n) in [(0u32, 1u32, 10u64), (1, 2, 5)] {
            body.extend_from_slice(&d.to_le_bytes());
            body.extend_from_slice(&s.to_le_bytes());
            body.extend_from_slice(&n.to_le_bytes());
        }
        assert_eq!(
            parse_mariadb_gtid_list(&body).unwrap().to_string(),
            "0-1-10,1-2-5"
        );
        assert_eq!(parse_mariadb_gtid_list(&body[..20]), None);
        assert!(
            parse_mariadb_gtid_list(&0u32.to_le_bytes())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn rotate_names_lose_a_trailing_checksum() {
        assert_eq!(rotate_file_name(b"mysql-bin.000001"), "mysql-bin.000001");
        assert_eq!(
            rotate_file_name(b"mysql-bin.000001\x043\xff\x17"),
            "mysql-bin.000001"
        );
        assert_eq!(rotate_file_name(b"odd-name"), "odd-name");
    }

    #[test]
    fn lag_counts_bytes_to_the_end_of_the_last_file() {
        let logs = vec![("b.000001".to_owned(), 1000), ("b.000002".to_owned(), 500)];
        assert_eq!(
            bytes_behind(&logs, &FilePos::new("b.000001", 900)),
            100 + 500
        );
        assert_eq!(bytes_behind(&logs, &FilePos::new("b.000002", 500)), 0);
    }

    #[test]
    fn flavor_comes_from_the_version_string() {
        assert_eq!(
            Flavor::from_version("10.11.19-MariaDB-log"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.40"), Flavor::MySql);
    }
}
