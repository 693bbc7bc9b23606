//! Where a run starts: the saved checkpoint, or a `--from` resolved against
//! the server (`earliest`, `latest`, `file:pos`, GTIDs, a time), with the
//! GTID state and counters the stream resumes with, and a snapshot to run
//! first when one is planned or unfinished.

use std::time::Duration;

use futures::StreamExt;
use mysql_async::binlog::events::EventData;
use secrecy::SecretString;
use sqlx::MySqlPool;

use crate::checkpoint::{Checkpoint, SnapshotProgress};
use crate::error::{Error, Result, stream_error};
use crate::position::{FilePos, GtidPos, GtidSet, StartFrom};
use crate::source::{self, Flavor, SourceOptions, StreamStart};

/// Where the current stream resumes and with which counters.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    pub(crate) start: StreamStart,
    pub(crate) gtid: GtidPos,
    /// MySQL: the GTID set at `start`, as far as known (see `Stream::mysql`).
    pub(crate) mysql: GtidSet,
    pub(crate) seq: u64,
    /// Changes published under this state folder so far (a statistic).
    pub(crate) changes: u64,
    /// A snapshot to run (or finish) before streaming from `start`.
    pub(crate) snapshot: Option<SnapshotProgress>,
}

impl Resume {
    pub(crate) fn from_checkpoint(cp: &Checkpoint) -> Self {
        match &cp.snapshot {
            Some(sp) => Resume {
                start: StreamStart::FilePos(FilePos::new(sp.start_file.clone(), sp.start_pos)),
                gtid: sp
                    .start_gtid
                    .as_deref()
                    .and_then(|g| g.parse().ok())
                    .unwrap_or_default(),
                mysql: mysql_set(sp.start_gtid.as_deref()),
                seq: cp.seq,
                changes: cp.changes,
                snapshot: Some(sp.clone()),
            },
            None => Resume {
                start: StreamStart::FilePos(cp.file_pos()),
                gtid: cp.gtid_pos().unwrap_or_default(),
                mysql: mysql_set(cp.gtid.as_deref()),
                seq: cp.seq,
                changes: cp.changes,
                snapshot: None,
            },
        }
    }

    /// Plans a snapshot of `tables` that hands over to the stream at this start.
    pub(crate) fn with_snapshot(mut self, tables: Vec<String>) -> Result<Self> {
        if tables.is_empty() {
            return Ok(self);
        }
        let StreamStart::FilePos(p) = &self.start else {
            return Err(Error::BadStart(
                "a snapshot needs a file:pos start, not a GTID".into(),
            ));
        };
        self.snapshot = Some(SnapshotProgress {
            start_file: p.file.clone(),
            start_pos: p.pos,
            start_gtid: gtid_text(&self.gtid, &self.mysql),
            pending: tables,
            last_key: None,
        });
        Ok(self)
    }
}

/// A checkpoint's GTID text read as a MySQL set (empty for MariaDB text).
pub(crate) fn mysql_set(text: Option<&str>) -> GtidSet {
    text.filter(|t| t.contains(':'))
        .and_then(|t| t.parse().ok())
        .unwrap_or_default()
}

/// The GTID text of a checkpoint or heartbeat: the MariaDB position, else
/// the MySQL set, else none.
pub(crate) fn gtid_text(mariadb: &GtidPos, mysql: &GtidSet) -> Option<String> {
    if !mariadb.is_empty() {
        Some(mariadb.to_string())
    } else if !mysql.is_empty() {
        Some(mysql.to_string())
    } else {
        None
    }
}

pub(crate) fn uuid_text(sid: &[u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Turns a `--from` into a concrete stream start.
pub(crate) async fn resolve_from(
    pool: &MySqlPool,
    url: &SecretString,
    flavor: Flavor,
    server_id: u32,
    from: &StartFrom,
    seq: u64,
) -> Result<Resume> {
    let resume = |start, gtid, mysql| Resume {
        start,
        gtid,
        mysql,
        seq,
        changes: 0,
        snapshot: None,
    };
    match from {
        StartFrom::Earliest => {
            let logs = source::binary_logs(pool).await?;
            let (first, _) = logs
                .first()
                .ok_or_else(|| Error::BadStart("the server has no binary logs".into()))?;
            Ok(resume(
                StreamStart::FilePos(FilePos::new(first.clone(), 4)),
                GtidPos::default(),
                GtidSet::default(),
            ))
        }
        StartFrom::Latest => {
            // MySQL: the executed set is read before the position, so it can
            // only lack transactions before the position (a resume from it
            // repeats them), never claim one after it.
            let mysql = match flavor {
                Flavor::MySql => sqlx::query_scalar::<_, String>(Flavor::MySql.committed_query())
                    .fetch_one(pool)
                    .await
                    .ok()
                    .and_then(|t| t.parse::<GtidSet>().ok())
                    .unwrap_or_default(),
                Flavor::MariaDb => GtidSet::default(),
            };
            let pos = source::current_position(pool).await?;
            let gtid = source::current_gtid(pool, flavor)
                .await?
                .unwrap_or_default();
            Ok(resume(StreamStart::FilePos(pos), gtid, mysql))
        }
        StartFrom::FilePos(p) => {
            source::validate_file_pos(pool, p).await?;
            Ok(resume(
                StreamStart::FilePos(p.clone()),
                GtidPos::default(),
                GtidSet::default(),
            ))
        }
        StartFrom::Gtid(g) => {
            if flavor != Flavor::MariaDb {
                return Err(Error::BadStart(
                    "gtid: start positions need MariaDB; use file:pos on MySQL".into(),
                ));
            }
            Ok(resume(
                StreamStart::Gtid(g.clone()),
                g.clone(),
                GtidSet::default(),
            ))
        }
        StartFrom::MysqlGtid(set) => {
            if flavor != Flavor::MySql {
                return Err(Error::BadStart(
                    "a MySQL GTID set (uuid:n-m) needs a MySQL server; MariaDB takes gtid:domain-server-seq"
                        .into(),
                ));
            }
            Ok(resume(
                StreamStart::MysqlGtid(set.clone()),
                GtidPos::default(),
                set.clone(),
            ))
        }
        StartFrom::Time(t) => {
            let pos = find_time(pool, url, flavor, server_id, t.timestamp()).await?;
            Ok(resume(
                StreamStart::FilePos(pos),
                GtidPos::default(),
                GtidSet::default(),
            ))
        }
    }
}

/// The start of the first transaction committed at or after `epoch_secs`,
/// or the current end of binlog when there is none.
async fn find_time(
    pool: &MySqlPool,
    url: &SecretString,
    flavor: Flavor,
    server_id: u32,
    epoch_secs: i64,
) -> Result<FilePos> {
    let logs = source::binary_logs(pool).await?;
    let (first, _) = logs
        .first()
        .ok_or_else(|| Error::BadStart("the server has no binary logs".into()))?;
    let opts = SourceOptions {
        url: url.clone(),
        server_id,
        flavor,
        heartbeat: Duration::from_secs(5),
        non_blocking: true,
    };
    let mut stream =
        source::open(&opts, &StreamStart::FilePos(FilePos::new(first.clone(), 4))).await?;
    let mut file = first.clone();
    while let Some(ev) = stream.next().await {
        let ev = ev.map_err(stream_error)?;
        let h = ev.header();
        let starts_tx = match h.event_type_raw() {
            source::MARIADB_GTID => true,
            _ => match ev.read_data() {
                Ok(Some(EventData::RotateEvent(r))) => {
                    file = source::rotate_file_name(r.name_raw());
                    false
                }
                Ok(Some(EventData::GtidEvent(_))) => true,
                Ok(Some(EventData::QueryEvent(q))) => q
                    .query()
                    .trim_start()
                    .to_ascii_uppercase()
                    .starts_with("BEGIN"),
                _ => false,
            },
        };
        if starts_tx && h.timestamp() != 0 && i64::from(h.timestamp()) >= epoch_secs {
            return Ok(FilePos::new(file, source::event_start(&ev)));
        }
    }
    source::current_position(pool).await
}
