//! The checkpoint: where the relay resumes after a restart or a crash.
//!
//! # Invariants
//! - A checkpoint names a transaction boundary (the position right after a
//!   commit), never the middle of a transaction.
//! - It is saved only after Kafka acknowledged every message of every
//!   transaction before it, so resuming there loses nothing; at most the
//!   unacknowledged window is emitted twice.
//! - It is written atomically: a temporary file is written and fsynced,
//!   renamed over the old file, and the directory is fsynced, so a kill -9 or
//!   power loss leaves either the old or the new checkpoint, never a torn one.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::position::{FilePos, GtidPos};

/// A saved resume point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Binlog file of the next event to read.
    pub file: String,
    /// Offset of the next event to read.
    pub pos: u64,
    /// GTID position (MariaDB `domain-server-seq` per domain) at that point, if known.
    pub gtid: Option<String>,
    /// `sluice.seq` of the last change before this point (see `seqno`).
    pub seq: u64,
    /// How many changes were published under this state folder up to this
    /// point: a statistic for operators and tests, not a position.
    #[serde(default)]
    pub changes: u64,
    /// When the checkpoint was written (ms since the epoch).
    pub saved_at_ms: i64,
    /// Progress of an unfinished snapshot, when one is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotProgress>,
}

impl Checkpoint {
    pub fn file_pos(&self) -> FilePos {
        FilePos::new(self.file.clone(), self.pos)
    }

    /// The GTID position, when one is recorded and valid.
    pub fn gtid_pos(&self) -> Option<GtidPos> {
        self.gtid
            .as_deref()
            .and_then(|g| g.parse::<GtidPos>().ok())
            .filter(|g| !g.is_empty())
    }
}

/// How far a snapshot got: tables done, and the last key copied of the
/// table in progress, so that a restarted snapshot continues after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    /// Binlog position consistent with the snapshot: streaming starts there.
    pub start_file: String,
    pub start_pos: u64,
    pub start_gtid: Option<String>,
    /// `db.table` entries still to copy, in order; the first is in progress.
    pub pending: Vec<String>,
    /// Primary-key values (JSON array) of the last row copied of the first pending table.
    pub last_key: Option<serde_json::Value>,
}

/// Where the checkpoint lives: a file in the state folder (one relay), or
/// the source database's state table under the leader's epoch (`ha`, see
/// [`crate::ha`]).
#[derive(Clone)]
pub enum CheckpointStore {
    File(FileStore),
    Table(crate::ha::Leadership),
}

impl CheckpointStore {
    /// The file store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::File(FileStore::new(path))
    }

    /// Where it is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(f) => f.path().display().to_string(),
            Self::Table(_) => format!("the table {}", crate::ha::STATE_TABLE),
        }
    }

    /// The saved checkpoint, or `None` when there is none yet.
    pub async fn load(&self) -> Result<Option<Checkpoint>> {
        match self {
            Self::File(f) => f.load(),
            Self::Table(t) => t.load().await,
        }
    }

    /// Saves `cp` (see [`FileStore::save`] and [`crate::ha::Leadership::save`]).
    pub async fn save(&self, cp: &Checkpoint) -> Result<()> {
        match self {
            Self::File(f) => f.save(cp),
            Self::Table(t) => t.save(cp).await,
        }
    }
}

/// Reads and atomically replaces the checkpoint file.
#[derive(Debug, Clone)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: std::io::Error) -> Error {
        Error::Checkpoint {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The saved checkpoint, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Checkpoint>> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                self.err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("unreadable: {e}"),
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Replaces the checkpoint atomically (tmp file, fsync, rename, fsync dir).
    pub fn save(&self, cp: &Checkpoint) -> Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        let tmp = self.path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(cp).map_err(|e| self.err(std::io::Error::other(e)))?;
        {
            let mut f = fs::File::create(&tmp).map_err(|e| self.err(e))?;
            f.write_all(&bytes).map_err(|e| self.err(e))?;
            f.sync_all().map_err(|e| self.err(e))?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| self.err(e))?;
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Removes the checkpoint (used by `--from`, which starts elsewhere on purpose).
    pub fn clear(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("relay-cp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_saved_checkpoint_loads_back_and_replaces_the_old_one() {
        let dir = temp_dir("roundtrip");
        let store = FileStore::new(dir.join("sub").join("checkpoint.json"));
        assert_eq!(store.load().unwrap(), None);
        let mut cp = Checkpoint {
            file: "mysql-bin.000001".into(),
            pos: 1234,
            gtid: Some("0-1-9".into()),
            seq: 17,
            changes: 17,
            saved_at_ms: 1,
            snapshot: None,
        };
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap(), Some(cp.clone()));
        cp.pos = 5678;
        store.save(&cp).unwrap();
        assert_eq!(store.load().unwrap().unwrap().pos, 5678);
        assert_eq!(cp.gtid_pos().unwrap().to_string(), "0-1-9");
        assert!(!dir.join("sub").join("checkpoint.json.tmp").exists());
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn a_corrupt_checkpoint_is_a_clear_error_not_a_fresh_start() {
        let dir = temp_dir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.json");
        fs::write(&path, b"{not json").unwrap();
        let err = FileStore::new(&path).load().unwrap_err();
        assert!(err.to_string().contains("unreadable"), "{err}");
        let _ = fs::remove_dir_all(dir);
    }
}
