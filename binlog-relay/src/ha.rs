//! Several relays of one logical name (`ha.name`), one streaming: a lease
//! on the source database and a checkpoint there, fenced by an epoch.
//!
//! # Lease
//! A relay holds the lease while one dedicated session of its own holds the
//! named lock `GET_LOCK('sluice-relay:<name>')`. That session runs with
//! `wait_timeout` = `ha.lease_timeout`, so the server ends it, and frees
//! the lock, once the holder has said nothing for that long: a frozen or
//! cut-off leader loses the lease within the timeout; a killed one at once
//! (its connection closes). A standby waits on the lock (half-second tries,
//! `/status` role `standby`). The leader checks every third of the timeout
//! that its session still holds the lock, and stops when it does not (a
//! definite error: it never reconnects to the binlog after losing the
//! lease, where it would cut the new leader's dump, which uses the same
//! `server_id`).
//!
//! # Epoch and checkpoint
//! On taking the lease the relay raises its name's epoch in the table
//! [`STATE_TABLE`] of the source database, and every checkpoint it writes
//! there is conditional on that epoch (`… WHERE name = ? AND epoch = ?`): a
//! former leader that wakes up after another took over cannot move the
//! checkpoint back. The writes go through the lease's own session with
//! `sql_log_bin = 0` where the account may set it (else they are
//! binlogged; the relay never relays its own table). A first leader with no
//! checkpoint in the table starts from the file checkpoint in its
//! `state_dir` when there is one (migration from a single relay).

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::MySqlConnection;
use tokio::sync::{Mutex, watch};

use crate::checkpoint::Checkpoint;
use crate::config::HaSettings;
use crate::error::{Error, Result};
use crate::status::Shared;

/// The relay's own table in the source database: one row per logical
/// relay. Never relayed (see `Filter::allows`).
pub const STATE_TABLE: &str = "sluice_relay_state";

const CREATE_STATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS sluice_relay_state (\
     name VARCHAR(64) NOT NULL PRIMARY KEY, \
     epoch BIGINT UNSIGNED NOT NULL, \
     leader VARCHAR(255) NULL, \
     checkpoint LONGTEXT NULL, \
     saved_at DATETIME(6) NULL) ENGINE=InnoDB";

/// This relay's leadership of its name: the lease session and the epoch.
/// Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    /// The session holding the lock; also writes the checkpoint.
    conn: Mutex<MySqlConnection>,
    name: String,
    lock: String,
    epoch: u64,
    check_every: Duration,
}

/// The lock name of a logical relay.
fn lock_name(name: &str) -> String {
    format!("sluice-relay:{name}")
}

/// Who holds the lease, for operators reading the table.
pub(crate) fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    format!("{host}:{}", std::process::id())
}

/// Waits until this relay holds the lease of `ha.name` (role `standby`
/// meanwhile), then raises the epoch (role `leader`). `None` when `stop`
/// turned true first.
pub async fn acquire(
    url: &SecretString,
    ha: &HaSettings,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Leadership>> {
    let pool = common::db::connect(url, 1).await?;
    let mut conn = pool.acquire().await?.detach();
    let secs = ha.lease_timeout.as_secs().max(1);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET SESSION wait_timeout = {secs}, SESSION interactive_timeout = {secs}"
    )))
    .execute(&mut conn)
    .await?;
    if let Err(e) = sqlx::query("SET SESSION sql_log_bin = 0")
        .execute(&mut conn)
        .await
    {
        tracing::warn!(error = %e, "cannot turn the binlog off for checkpoint writes; they are binlogged (and not relayed)");
    }
    sqlx::query(CREATE_STATE_TABLE).execute(&mut conn).await?;
    let lock = lock_name(&ha.name);
    shared.update(|s| {
        s.role = Some("standby".into());
        s.state = "standby".into();
    });
    metrics::gauge!(crate::metrics::LEADER).set(0.0);
    tracing::info!(name = %ha.name, "waiting for the lease (standby)");
    loop {
        if *stop.borrow() {
            return Ok(None);
        }
        // Who leads now, for `/status`.
        let current: Option<(Option<String>, u64)> =
            sqlx::query_as("SELECT leader, epoch FROM sluice_relay_state WHERE name = ?")
                .bind(&ha.name)
                .fetch_optional(&mut conn)
                .await?;
        if let Some((leader, epoch)) = current {
            shared.update(|s| {
                s.leader = leader;
                s.epoch = Some(epoch);
            });
        }
        // Half-second tries: under sqlx's one-second slow-statement warning.
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0.5)")
            .bind(&lock)
            .fetch_one(&mut conn)
            .await?;
        if got == Some(1) {
            break;
        }
    }
    let me = holder();
    sqlx::query(
        "INSERT INTO sluice_relay_state (name, epoch, leader) VALUES (?, 1, ?) \
         ON DUPLICATE KEY UPDATE epoch = epoch + 1, leader = VALUES(leader)",
    )
    .bind(&ha.name)
    .bind(&me)
    .execute(&mut conn)
    .await?;
    let epoch: u64 = sqlx::query_scalar("SELECT epoch FROM sluice_relay_state WHERE name = ?")
        .bind(&ha.name)
        .fetch_one(&mut conn)
        .await?;
    shared.update(|s| {
        s.role = Some("leader".into());
        s.epoch = Some(epoch);
        s.leader = Some(me.clone());
    });
    metrics::gauge!(crate::metrics::LEADER).set(1.0);
    tracing::info!(name = %ha.name, epoch, "took the lease (leader)");
    Ok(Some(Leadership {
        inner: Arc::new(Inner {
            conn: Mutex::new(conn),
            name: ha.name.clone(),
            lock,
            epoch,
            check_every: (ha.lease_timeout / 3).max(Duration::from_millis(300)),
        }),
    }))
}

impl Leadership {
    /// The epoch this leadership raised.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// `Ok` while the lease session still holds the lock.
    pub async fn check(&self) -> Result<()> {
        let mut conn = self.inner.conn.lock().await;
        let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
            .bind(&self.inner.lock)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::Fenced(format!("the lease session is gone ({e})")))?;
        if held == Some(1) {
            Ok(())
        } else {
            Err(Error::Fenced(format!(
                "the lease of {:?} is no longer this relay's",
                self.inner.name
            )))
        }
    }

    /// Resolves with the error once the lease is lost (checked every third
    /// of the lease timeout).
    pub async fn lost(&self) -> Error {
        loop {
            tokio::time::sleep(self.inner.check_every).await;
            if let Err(e) = self.check().await {
                return e;
            }
        }
    }

    /// The checkpoint saved under this name, if any.
    pub async fn load(&self) -> Result<Option<Checkpoint>> {
        let mut conn = self.inner.conn.lock().await;
        let text: Option<Option<String>> =
            sqlx::query_scalar("SELECT checkpoint FROM sluice_relay_state WHERE name = ?")
                .bind(&self.inner.name)
                .fetch_optional(&mut *conn)
                .await?;
        match text.flatten() {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                Error::BadStart(format!(
                    "the checkpoint of {:?} in {STATE_TABLE} is unreadable: {e}",
                    self.inner.name
                ))
            }),
        }
    }

    /// Saves `cp` if this relay's epoch is still the name's; otherwise
    /// [`Error::Fenced`] (another relay took over).
    pub async fn save(&self, cp: &Checkpoint) -> Result<()> {
        let text = serde_json::to_string(cp).map_err(|e| Error::Stream(e.to_string()))?;
        let mut conn = self.inner.conn.lock().await;
        let done = sqlx::query(
            "UPDATE sluice_relay_state SET checkpoint = ?, saved_at = NOW(6) \
             WHERE name = ? AND epoch = ?",
        )
        .bind(text)
        .bind(&self.inner.name)
        .bind(self.inner.epoch)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::Fenced(format!("cannot save the checkpoint ({e})")))?;
        if done.rows_affected() == 0 {
            return Err(Error::Fenced(format!(
                "the epoch of {:?} moved past {}: another relay leads it",
                self.inner.name, self.inner.epoch
            )));
        }
        Ok(())
    }
}

/// The leader a [`step_down`] asked to stand down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteppedDown {
    /// Its lease session, ended.
    pub session: u64,
    /// `host:pid`, as it recorded itself.
    pub leader: Option<String>,
    pub epoch: Option<u64>,
}

/// Makes the current leader of `name` stand down: ends its lease session
/// (`KILL`, which needs the same account or `CONNECTION ADMIN`). The leader
/// notices within a third of its lease timeout, stops streaming and waits
/// as a standby; whichever relay takes the lock next leads (possibly the
/// same one, if no other waits). `None` when no relay leads `name`.
pub async fn step_down(url: &SecretString, name: &str) -> Result<Option<SteppedDown>> {
    let pool = common::db::connect(url, 1).await?;
    let session: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?)")
        .bind(lock_name(name))
        .fetch_one(&pool)
        .await?;
    let Some(session) = session.and_then(|s| u64::try_from(s).ok()) else {
        pool.close().await;
        return Ok(None);
    };
    let row: Option<(Option<String>, u64)> =
        sqlx::query_as("SELECT leader, epoch FROM sluice_relay_state WHERE name = ?")
            .bind(name)
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {session}")))
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(Some(SteppedDown {
        session,
        leader: row.as_ref().and_then(|r| r.0.clone()),
        epoch: row.map(|r| r.1),
    }))
}
