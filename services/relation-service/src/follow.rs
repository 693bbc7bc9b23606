//! The follow write path (DESIGN §3): one transaction per call holding the
//! `follow` row and both `counter` rows.
//!
//! # Transaction
//! 1. validate `from ≠ to` (before any SQL);
//! 2. lock the pair's `follow` row (`SELECT … FOR UPDATE`); insert it (an
//!    `INSERT … SELECT` joining both `user` rows, so it inserts only when both
//!    users exist), revive it (`deleted_at = NULL`, `created_at = NOW(6)`),
//!    or — when it already has the wanted state — roll back and report
//!    `changed = false`;
//! 3. upsert `(from, following)` and `(to, followers)` on `counter` in one
//!    statement, rows ordered by `(owner_id, kind)` so every transaction takes
//!    counter locks in one global order; an unfollow never takes a counter
//!    below 0;
//! 4. COMMIT, then its GTID on the same connection (`commit_token`): the
//!    consistency token.
//!
//! # Error handling
//! The transaction runs at READ COMMITTED ([`common::db::connect_read_committed`]; no gap locks,
//! and the binlog is ROW so this is replication-safe). A new follow costs six
//! round trips: BEGIN, the locking read, the insert, the counter upsert,
//! COMMIT and the GTID read. Deadlocks (1213), lock-wait timeouts (1205)
//! and the duplicate-key race of two first follows of one pair (1062) roll
//! the transaction back and run it again after a short jittered pause, up
//! to `write_attempts` times; a caller never sees a deadlock. The attempt
//! budget exhausted surfaces as [`Error::Contention`] (UNAVAILABLE).

use std::time::{Duration, Instant};

use common::keys::CounterKind;
use rand::Rng;
use sqlx::{Connection, MySqlConnection, MySqlPool};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::metrics::{WRITE_DURATION_SECONDS, WRITE_RETRIES_TOTAL, WRITES_TOTAL};
use service_kit::store::mysql_error_number;

/// MySQL error numbers after which the whole transaction is run again.
const ER_DUP_ENTRY: u16 = 1062;
const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
const ER_LOCK_DEADLOCK: u16 = 1213;

/// Which way a write goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Follow,
    Unfollow,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Follow => "follow",
            Op::Unfollow => "unfollow",
        }
    }
}

/// The result of a follow or unfollow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether `from` follows `to` after the call.
    pub following: bool,
    /// Whether this call changed anything.
    pub changed: bool,
    /// GTID of the committed transaction; empty when nothing changed.
    pub consistency_token: String,
}

/// Runs a follow or unfollow, retrying lock conflicts internally.
pub async fn write(pool: &MySqlPool, op: Op, from: u64, to: u64, attempts: u32) -> Result<Outcome> {
    if from == 0 || to == 0 {
        return Err(Error::InvalidArgument(
            "from_id and to_id are required".into(),
        ));
    }
    if from == to {
        return Err(Error::InvalidArgument(
            "a user cannot follow themselves".into(),
        ));
    }
    let started = Instant::now();
    let result = retry(op, attempts, || {
        // One client span per attempt: the transaction as MySQL sees it.
        // `sluice.tx` (its GTID) is also on the relay's span of the same
        // transaction: the tag that finds both traces in Jaeger.
        let span = tracing::info_span!(
            target: common::telemetry::SPANS,
            "mysql.transaction",
            otel.name = %format_args!("{} transaction", op.name()),
            otel.kind = "client",
            db.system.name = "mysql",
            db.operation.name = op.name(),
            db.collection.name = "follow",
            sluice.tx = tracing::field::Empty,
        );
        let record = span.clone();
        async move {
            let mut conn = pool.acquire().await?;
            let out = run_once(&mut conn, op, from, to).await;
            if let Ok(o) = &out
                && !o.consistency_token.is_empty()
            {
                record.record("sluice.tx", o.consistency_token.as_str());
            }
            out
        }
        .instrument(span)
    })
    .await;
    metrics::histogram!(WRITE_DURATION_SECONDS, "op" => op.name())
        .record(started.elapsed().as_secs_f64());
    let outcome = match &result {
        Ok(o) if o.changed => "changed",
        Ok(_) => "unchanged",
        Err(_) => "error",
    };
    metrics::counter!(WRITES_TOTAL, "op" => op.name(), "outcome" => outcome).increment(1);
    result
}

async fn retry<F, Fut>(op: Op, attempts: u32, mut once: F) -> Result<Outcome>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Outcome, TxError>>,
{
    let attempts = attempts.max(1);
    for attempt in 1..=attempts {
        match once().await {
            Ok(o) => return Ok(o),
            Err(TxError::Domain(e)) => return Err(e),
            Err(TxError::Sql(e)) => {
                let retryable = matches!(
                    mysql_error_number(&e),
                    Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT | ER_DUP_ENTRY)
                );
                if !retryable {
                    return Err(e.into());
                }
                metrics::counter!(WRITE_RETRIES_TOTAL, "op" => op.name()).increment(1);
                tracing::debug!(attempt, error = %e, "write transaction conflicted; retrying");
                if attempt < attempts {
                    let max_ms = 2u64 << attempt.min(6);
                    let pause = rand::rng().random_range(1..=max_ms);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        }
    }
    Err(Error::Contention)
}

/// Either a SQL error (maybe retryable) or a final domain answer.
enum TxError {
    Sql(sqlx::Error),
    Domain(Error),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Sql(e)
    }
}

async fn run_once(
    conn: &mut MySqlConnection,
    op: Op,
    from: u64,
    to: u64,
) -> std::result::Result<Outcome, TxError> {
    // The pool's sessions run at READ COMMITTED (see `common::db::connect_read_committed`).
    let mut tx = conn.begin().await?;

    let active: Option<i64> = sqlx::query_scalar(
        "SELECT deleted_at IS NULL FROM follow WHERE from_id = ? AND to_id = ? FOR UPDATE",
    )
    .bind(from)
    .bind(to)
    .fetch_optional(&mut *tx)
    .await?;
    let delta: i8 = match (op, active) {
        (Op::Follow, Some(1)) | (Op::Unfollow, Some(0)) => {
            tx.rollback().await?;
            return Ok(unchanged(op));
        }
        (Op::Unfollow, None) => {
            // Nothing to undo; still tell an unknown user apart.
            check_users(&mut tx, from, to).await?;
            tx.rollback().await?;
            return Ok(unchanged(op));
        }
        (Op::Follow, None) => {
            // Inserts only when both users exist: validation and insert in one statement.
            let inserted = sqlx::query(
                "INSERT INTO follow (from_id, to_id, created_at) \
                 SELECT a.id, b.id, NOW(6) FROM user a JOIN user b ON b.id = ? WHERE a.id = ?",
            )
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() == 0 {
                check_users(&mut tx, from, to).await?;
                return Err(TxError::Domain(Error::NotFound("user not found".into())));
            }
            1
        }
        (Op::Follow, Some(_)) => {
            sqlx::query(
                "UPDATE follow SET deleted_at = NULL, created_at = NOW(6) \
                 WHERE from_id = ? AND to_id = ?",
            )
            .bind(from)
            .bind(to)
            .execute(&mut *tx)
            .await?;
            1
        }
        (Op::Unfollow, Some(_)) => {
            sqlx::query("UPDATE follow SET deleted_at = NOW(6) WHERE from_id = ? AND to_id = ?")
                .bind(from)
                .bind(to)
                .execute(&mut *tx)
                .await?;
            -1
        }
    };

    // Both counter rows in one statement; InnoDB locks them in VALUES order,
    // which is sorted by (owner_id, kind).
    let mut rows = [
        (from, CounterKind::Following.code()),
        (to, CounterKind::Followers.code()),
    ];
    rows.sort_unstable();
    let sql = if delta > 0 {
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (?, ?, 1, NOW(6)), (?, ?, 1, NOW(6)) \
         ON DUPLICATE KEY UPDATE value = value + 1, updated_at = NOW(6)"
    } else {
        "INSERT INTO counter (owner_id, kind, value, updated_at) \
         VALUES (?, ?, 0, NOW(6)), (?, ?, 0, NOW(6)) \
         ON DUPLICATE KEY UPDATE value = IF(value > 0, value - 1, 0), updated_at = NOW(6)"
    };
    sqlx::query(sql)
        .bind(rows[0].0)
        .bind(rows[0].1)
        .bind(rows[1].0)
        .bind(rows[1].1)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let token = service_kit::write::commit_token(conn).await?;
    Ok(Outcome {
        following: op == Op::Follow,
        changed: true,
        consistency_token: token,
    })
}

fn unchanged(op: Op) -> Outcome {
    Outcome {
        following: op == Op::Follow,
        changed: false,
        consistency_token: String::new(),
    }
}

/// NotFound naming the first of `from`, `to` that does not exist.
async fn check_users(
    conn: &mut MySqlConnection,
    from: u64,
    to: u64,
) -> std::result::Result<(), TxError> {
    let existing: Vec<u64> = sqlx::query_scalar("SELECT id FROM user WHERE id IN (?, ?)")
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?;
    for id in [from, to] {
        if !existing.contains(&id) {
            return Err(TxError::Domain(Error::NotFound(format!(
                "user {id} not found"
            ))));
        }
    }
    Ok(())
}
