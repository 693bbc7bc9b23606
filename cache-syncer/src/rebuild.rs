//! `cache-syncer rebuild`: refill Redis and the user counter columns from
//! MySQL, chunk by chunk, with a progress bar on a terminal.
//!
//! Reads run inside one `START TRANSACTION WITH CONSISTENT SNAPSHOT`, so the
//! rebuilt state is one point in time. Run it with the syncer stopped (or
//! before starting it): afterwards the syncer resumes from its committed
//! offsets, and every change after that point is still ahead of them in the
//! stream, so there is no gap; changes before it that are replayed are
//! overwritten by newer ones in order.

use std::collections::HashSet;

use indicatif::{ProgressBar, ProgressStyle};
use sqlx::{MySqlConnection, Row};

use crate::apply::{Applier, Record};
use crate::error::Result;
use crate::plan::Effect;

/// Rows read per chunk.
pub const CHUNK: u64 = 5_000;

/// What a rebuild wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub counters: u64,
    pub follows: u64,
    pub keys_deleted: u64,
}

pub(crate) fn progress_bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Deletes the namespace's cache keys (not the syncer's progress), then
/// refills counters, lists and the bloom filter, then the user columns.
pub async fn rebuild(applier: &Applier) -> Result<RebuildReport> {
    let mut report = RebuildReport {
        keys_deleted: clear_cache_keys(applier).await?,
        ..Default::default()
    };
    let mut conn = applier.pool.acquire().await?;
    let conn: &mut MySqlConnection = &mut conn;
    // Scores are UTC microseconds, as the relay renders DATETIME(6).
    sqlx::query("SET time_zone = '+00:00'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *conn)
        .await?;
    sqlx::query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .execute(&mut *conn)
        .await?;

    // Counters, keyset-paginated on the primary key.
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM counter")
        .fetch_one(&mut *conn)
        .await?;
    let bar = progress_bar(total as u64, "counters");
    let (mut owner, mut kind) = (0u64, 0u8);
    loop {
        let rows = sqlx::query(
            "SELECT owner_id, kind, value FROM counter WHERE (owner_id, kind) > (?, ?) \
             ORDER BY owner_id, kind LIMIT ?",
        )
        .bind(owner)
        .bind(kind)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        (owner, kind) = (last.try_get(0)?, last.try_get(1)?);
        let mut effects = Vec::with_capacity(rows.len());
        for r in &rows {
            effects.push(Effect::SetCounter {
                owner: r.try_get(0)?,
                kind: r.try_get(1)?,
                value: r.try_get(2)?,
            });
        }
        applier.apply(&effects, &Record::default()).await?;
        report.counters += rows.len() as u64;
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();

    // Active follows, oldest first so the ZSET trim keeps the newest.
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM follow WHERE deleted_at IS NULL")
        .fetch_one(&mut *conn)
        .await?;
    let bar = progress_bar(total as u64, "follows");
    let mut last_id = 0u64;
    loop {
        let rows = sqlx::query(
            "SELECT id, from_id, to_id, CAST(UNIX_TIMESTAMP(created_at) * 1000000 AS SIGNED) \
             FROM follow WHERE id > ? AND deleted_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(last_id)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        last_id = last.try_get(0)?;
        let mut effects = Vec::with_capacity(rows.len());
        for r in &rows {
            effects.push(Effect::AddEdge {
                from: r.try_get(1)?,
                to: r.try_get(2)?,
                at_us: r.try_get(3)?,
            });
        }
        applier.apply(&effects, &Record::default()).await?;
        report.follows += rows.len() as u64;
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    sqlx::query("COMMIT").execute(&mut *conn).await?;

    fix_user_columns(applier).await?;
    Ok(report)
}

/// Sets every user's redundant counters from the `counter` table, writing
/// only the rows that differ.
pub async fn fix_user_columns(applier: &Applier) -> Result<u64> {
    let res = sqlx::query(
        "UPDATE user u \
         LEFT JOIN counter c1 ON c1.owner_id = u.id AND c1.kind = 1 \
         LEFT JOIN counter c2 ON c2.owner_id = u.id AND c2.kind = 2 \
         SET u.follow_count = COALESCE(c1.value, 0), u.follower_count = COALESCE(c2.value, 0) \
         WHERE u.follow_count <> COALESCE(c1.value, 0) OR u.follower_count <> COALESCE(c2.value, 0)",
    )
    .execute(&applier.pool)
    .await?;
    Ok(res.rows_affected())
}

/// Deletes counters, lists, the bloom filter, the leaderboard and cached
/// profiles of the namespace (the counters' refill fills the leaderboard).
async fn clear_cache_keys(applier: &Applier) -> Result<u64> {
    let ns = applier.keys.namespace();
    let mut deleted = 0u64;
    for pattern in [
        format!("{ns}:cnt:*"),
        format!("{ns}:following:*"),
        format!("{ns}:followers:*"),
        format!("{ns}:user:*"),
    ] {
        let keys: HashSet<String> = applier.redis.scan(&pattern).await?.into_iter().collect();
        let keys: Vec<String> = keys.into_iter().collect();
        deleted += applier.redis.unlink(&keys).await?;
    }
    let mut fixed = applier.keys.follow_bloom_keys();
    fixed.push(applier.keys.leaderboard_followers());
    Ok(deleted + applier.redis.unlink(&fixed).await?)
}
