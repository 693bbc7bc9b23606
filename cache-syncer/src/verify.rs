//! `cache-syncer verify [--repair]`: proves Redis (and the user counter
//! columns) equal MySQL, chunk by chunk, and optionally fixes what differs.
//!
//! Checks:
//! - every `counter` row has its value in its bucket field (a missing field
//!   counts as 0), and no bucket field holds a non-zero counter MySQL lacks;
//! - every user's `follow_count` / `follower_count` equals its counter rows;
//! - every user's following / followers ZSET is the newest part of its
//!   active follows in MySQL (members and scores), holding all of them when
//!   there are at most `list_cap`;
//! - the bloom filter has every bit of every active follow (no false negatives);
//! - the followers leaderboard holds exactly the users with followers, each
//!   scored with its `counter` value.
//!
//! Run it when the pipeline is quiet (after `await_applied` or when lag is
//! 0): changes in flight show up as differences.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use redis::AsyncCommands;
use sqlx::{MySqlConnection, Row};

use crate::apply::Applier;
use crate::error::Result;
use crate::rebuild::{CHUNK, fix_user_columns, progress_bar};

/// One difference between MySQL and Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    Counter {
        owner: u64,
        kind: u8,
        mysql: i64,
        redis: Option<i64>,
    },
    UserColumn {
        uid: u64,
        column: &'static str,
        user: i64,
        counter: i64,
    },
    List {
        key: String,
        detail: String,
    },
    Bloom {
        from: u64,
        to: u64,
    },
    /// A leaderboard member missing, extra, or scored differently.
    Leaderboard {
        owner: u64,
        mysql: Option<i64>,
        redis: Option<i64>,
    },
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diff::Counter {
                owner,
                kind,
                mysql,
                redis,
            } => {
                write!(
                    f,
                    "counter owner={owner} kind={kind}: mysql={mysql} redis={redis:?}"
                )
            }
            Diff::UserColumn {
                uid,
                column,
                user,
                counter,
            } => {
                write!(f, "user {uid} {column}: column={user} counter={counter}")
            }
            Diff::List { key, detail } => write!(f, "list {key}: {detail}"),
            Diff::Bloom { from, to } => {
                write!(f, "bloom: follow {from}->{to} is missing (false negative)")
            }
            Diff::Leaderboard {
                owner,
                mysql,
                redis,
            } => write!(
                f,
                "leaderboard user {owner}: followers mysql={mysql:?} redis={redis:?}"
            ),
        }
    }
}

/// Outcome of a verify run.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub diffs: Vec<Diff>,
    pub counters_checked: u64,
    pub users_checked: u64,
    pub follows_checked: u64,
    pub repaired: u64,
}

/// Compares everything; with `repair`, rewrites what differs from MySQL.
pub async fn verify(applier: &Applier, repair: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut conn = applier.pool.acquire().await?;
    let conn: &mut MySqlConnection = &mut conn;
    sqlx::query("SET time_zone = '+00:00'")
        .execute(&mut *conn)
        .await?;
    check_counters(applier, conn, &mut report).await?;
    check_stray_counters(applier, conn, &mut report).await?;
    check_user_columns(conn, &mut report).await?;
    check_lists(applier, conn, &mut report).await?;
    check_bloom(applier, conn, &mut report).await?;
    check_leaderboard(applier, conn, &mut report).await?;
    if repair && !report.diffs.is_empty() {
        report.repaired = repair_all(applier, &report.diffs).await?;
    }
    Ok(report)
}

async fn check_counters(
    applier: &Applier,
    conn: &mut MySqlConnection,
    report: &mut VerifyReport,
) -> Result<()> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM counter")
        .fetch_one(&mut *conn)
        .await?;
    let bar = progress_bar(total as u64, "counters");
    let (mut owner, mut kind) = (0u64, 0u8);
    loop {
        let rows = sqlx::query(
            "SELECT owner_id, kind, value FROM counter WHERE (owner_id, kind) > (?, ?) ORDER BY owner_id, kind LIMIT ?",
        )
        .bind(owner)
        .bind(kind)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        (owner, kind) = (last.try_get(0)?, last.try_get(1)?);
        let mut cmds = Vec::with_capacity(rows.len());
        let mut want = Vec::with_capacity(rows.len());
        for r in &rows {
            let (o, k, v): (u64, u8, i64) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let slot = applier.keys.counter(k, o);
            cmds.push(redis::Cmd::hget(slot.key, slot.field));
            want.push((o, k, v));
        }
        let got: Vec<Option<i64>> = applier.redis.query_each(cmds).await?;
        for ((o, k, v), g) in want.into_iter().zip(got) {
            if g.unwrap_or(0) != v {
                report.diffs.push(Diff::Counter {
                    owner: o,
                    kind: k,
                    mysql: v,
                    redis: g,
                });
            }
        }
        report.counters_checked += rows.len() as u64;
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Bucket fields holding a non-zero counter that MySQL does not have.
async fn check_stray_counters(
    applier: &Applier,
    conn: &mut MySqlConnection,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut redis = applier.redis.clone();
    let prefix = format!("{}:cnt:", applier.keys.namespace());
    let mut keys = applier.redis.scan(&format!("{prefix}*")).await?;
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let Some((kind, bucket)) = key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(k, b)| Some((k.parse::<u8>().ok()?, b.parse::<u64>().ok()?)))
        else {
            continue;
        };
        let fields: HashMap<u64, i64> = redis.hgetall(&key).await?;
        let owners: Vec<(u64, i64)> = fields
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .map(|(f, v)| (applier.keys.owner_of(bucket, f), v))
            .collect();
        for chunk in owners.chunks(1000) {
            let sql = format!(
                "SELECT owner_id FROM counter WHERE kind = ? AND owner_id IN ({})",
                vec!["?"; chunk.len()].join(",")
            );
            let mut q = sqlx::query_scalar::<_, u64>(sqlx::AssertSqlSafe(sql)).bind(kind);
            for (o, _) in chunk {
                q = q.bind(o);
            }
            let present: std::collections::HashSet<u64> =
                q.fetch_all(&mut *conn).await?.into_iter().collect();
            for (o, v) in chunk {
                if !present.contains(o) {
                    report.diffs.push(Diff::Counter {
                        owner: *o,
                        kind,
                        mysql: 0,
                        redis: Some(*v),
                    });
                }
            }
        }
    }
    Ok(())
}

async fn check_user_columns(conn: &mut MySqlConnection, report: &mut VerifyReport) -> Result<()> {
    let rows = sqlx::query(
        "SELECT u.id, CAST(u.follow_count AS SIGNED), CAST(u.follower_count AS SIGNED), \
                COALESCE(c1.value, 0), COALESCE(c2.value, 0) \
         FROM user u \
         LEFT JOIN counter c1 ON c1.owner_id = u.id AND c1.kind = 1 \
         LEFT JOIN counter c2 ON c2.owner_id = u.id AND c2.kind = 2 \
         WHERE u.follow_count <> COALESCE(c1.value, 0) OR u.follower_count <> COALESCE(c2.value, 0)",
    )
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        let (uid, fc, frc, c1, c2): (u64, i64, i64, i64, i64) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        if fc != c1 {
            report.diffs.push(Diff::UserColumn {
                uid,
                column: "follow_count",
                user: fc,
                counter: c1,
            });
        }
        if frc != c2 {
            report.diffs.push(Diff::UserColumn {
                uid,
                column: "follower_count",
                user: frc,
                counter: c2,
            });
        }
    }
    Ok(())
}

/// Per user, newest-first active edges `(member, score)` from MySQL.
type Edges = BTreeMap<u64, Vec<(u64, i64)>>;

async fn active_edges(conn: &mut MySqlConnection, by: &str, lo: u64, hi: u64) -> Result<Edges> {
    let (owner, other) = if by == "following" {
        ("from_id", "to_id")
    } else {
        ("to_id", "from_id")
    };
    let sql = format!(
        "SELECT {owner}, {other}, CAST(UNIX_TIMESTAMP(created_at) * 1000000 AS SIGNED) FROM follow \
         WHERE {owner} BETWEEN ? AND ? AND deleted_at IS NULL"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lo)
        .bind(hi)
        .fetch_all(&mut *conn)
        .await?;
    let mut edges = Edges::new();
    for r in rows {
        edges
            .entry(r.try_get(0)?)
            .or_default()
            .push((r.try_get(1)?, r.try_get(2)?));
    }
    for v in edges.values_mut() {
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    }
    Ok(edges)
}

async fn check_lists(
    applier: &Applier,
    conn: &mut MySqlConnection,
    report: &mut VerifyReport,
) -> Result<()> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user")
        .fetch_one(&mut *conn)
        .await?;
    let bar = progress_bar(total as u64, "lists");
    let cap = applier.list_cap;
    let mut last = 0u64;
    loop {
        let ids: Vec<u64> =
            sqlx::query_scalar("SELECT id FROM user WHERE id > ? ORDER BY id LIMIT 1000")
                .bind(last)
                .fetch_all(&mut *conn)
                .await?;
        let (Some(&lo), Some(&hi)) = (ids.first(), ids.last()) else {
            break;
        };
        last = hi;
        for by in ["following", "followers"] {
            let edges = active_edges(conn, by, lo, hi).await?;
            let cmds = ids
                .iter()
                .map(|&uid| {
                    let key = if by == "following" {
                        applier.keys.following(uid)
                    } else {
                        applier.keys.followers(uid)
                    };
                    redis::Cmd::zrevrange_withscores(key, 0, -1)
                })
                .collect();
            let got: Vec<Vec<(u64, i64)>> = applier.redis.query_each(cmds).await?;
            for (&uid, zset) in ids.iter().zip(got) {
                let want = edges.get(&uid).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(detail) = compare_list(want, &zset, cap) {
                    let key = if by == "following" {
                        applier.keys.following(uid)
                    } else {
                        applier.keys.followers(uid)
                    };
                    report.diffs.push(Diff::List { key, detail });
                }
            }
        }
        report.users_checked += ids.len() as u64;
        bar.inc(ids.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// `None` when `zset` (newest first) is a valid cached head of `want`.
pub fn compare_list(want: &[(u64, i64)], zset: &[(u64, i64)], cap: usize) -> Option<String> {
    let k = zset.len();
    if k > cap {
        return Some(format!("{k} entries, over the cap of {cap}"));
    }
    if want.len() <= cap && k != want.len() {
        return Some(format!("{k} entries, mysql has {}", want.len()));
    }
    if k > want.len() {
        return Some(format!("{k} entries, mysql has only {}", want.len()));
    }
    let mut a: Vec<(u64, i64)> = want[..k].to_vec();
    let mut b: Vec<(u64, i64)> = zset.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        let missing: Vec<_> = a.iter().filter(|x| !b.contains(x)).take(3).collect();
        let extra: Vec<_> = b.iter().filter(|x| !a.contains(x)).take(3).collect();
        return Some(format!(
            "differs from mysql's newest {k}: missing {missing:?}, unexpected {extra:?}"
        ));
    }
    None
}

async fn check_bloom(
    applier: &Applier,
    conn: &mut MySqlConnection,
    report: &mut VerifyReport,
) -> Result<()> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM follow WHERE deleted_at IS NULL")
        .fetch_one(&mut *conn)
        .await?;
    let bar = progress_bar(total as u64, "bloom");
    let mut last = 0u64;
    loop {
        let rows: Vec<(u64, u64, u64)> = sqlx::query_as(
            "SELECT id, from_id, to_id FROM follow WHERE id > ? AND deleted_at IS NULL ORDER BY id LIMIT ?",
        )
        .bind(last)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(l) = rows.last() else { break };
        last = l.0;
        let mut cmds = Vec::new();
        for &(_, from, to) in &rows {
            let key = applier.keys.follow_bloom(from, to);
            for bit in applier.keys.bloom().positions(from, to) {
                cmds.push(redis::Cmd::getbit(&key, bit as usize));
            }
        }
        let bits: Vec<u8> = applier.redis.query_each(cmds).await?;
        let per = applier.keys.bloom().hashes.max(1) as usize;
        for (&(_, from, to), chunk) in rows.iter().zip(bits.chunks(per)) {
            if chunk.contains(&0) {
                report.diffs.push(Diff::Bloom { from, to });
            }
        }
        report.follows_checked += rows.len() as u64;
        bar.inc(rows.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// The followers leaderboard against `counter` (kind 2, value > 0): both
/// read whole, in chunks (one member per user with followers).
async fn check_leaderboard(
    applier: &Applier,
    conn: &mut MySqlConnection,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut want: BTreeMap<u64, i64> = BTreeMap::new();
    let mut owner = 0u64;
    loop {
        let rows: Vec<(u64, i64)> = sqlx::query_as(
            "SELECT owner_id, value FROM counter WHERE kind = 2 AND value > 0 AND owner_id > ? \
             ORDER BY owner_id LIMIT ?",
        )
        .bind(owner)
        .bind(CHUNK)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else { break };
        owner = last.0;
        want.extend(rows);
    }
    let mut redis = applier.redis.clone();
    let board = applier.keys.leaderboard_followers();
    let mut got: BTreeMap<u64, i64> = BTreeMap::new();
    let mut from = 0isize;
    loop {
        let chunk: Vec<(u64, i64)> = redis
            .zrange_withscores(&board, from, from + CHUNK as isize - 1)
            .await?;
        if chunk.is_empty() {
            break;
        }
        from += chunk.len() as isize;
        got.extend(chunk);
    }
    for (o, v) in &want {
        if got.get(o) != Some(v) {
            report.diffs.push(Diff::Leaderboard {
                owner: *o,
                mysql: Some(*v),
                redis: got.get(o).copied(),
            });
        }
    }
    for (o, v) in &got {
        if !want.contains_key(o) {
            report.diffs.push(Diff::Leaderboard {
                owner: *o,
                mysql: None,
                redis: Some(*v),
            });
        }
    }
    Ok(())
}

/// Rewrites every differing item from MySQL. Returns how many were fixed.
async fn repair_all(applier: &Applier, diffs: &[Diff]) -> Result<u64> {
    let mut redis = applier.redis.clone();
    let mut conn = applier.pool.acquire().await?;
    sqlx::query("SET time_zone = '+00:00'")
        .execute(&mut *conn)
        .await?;
    let mut fixed = 0;
    let mut user_columns = false;
    for d in diffs {
        match d {
            Diff::Counter {
                owner, kind, mysql, ..
            } => {
                let slot = applier.keys.counter(*kind, *owner);
                let _: () = redis.hset(slot.key, slot.field, *mysql).await?;
            }
            Diff::UserColumn { .. } => user_columns = true,
            Diff::List { key, .. } => {
                let (by, uid) = key
                    .rsplit_once(':')
                    .and_then(|(head, uid)| {
                        Some((head.rsplit(':').next()?, uid.parse::<u64>().ok()?))
                    })
                    .ok_or_else(|| {
                        crate::error::Error::Other(format!("unexpected list key {key}"))
                    })?;
                let edges = active_edges(&mut conn, by, uid, uid).await?;
                let want = edges.get(&uid).map(Vec::as_slice).unwrap_or(&[]);
                let head = &want[..want.len().min(applier.list_cap)];
                let mut pipe = redis::pipe();
                pipe.atomic().del(key).ignore();
                for (member, score) in head {
                    pipe.zadd(key, member, score).ignore();
                }
                let _: () = pipe.query_async(&mut redis).await?;
            }
            Diff::Bloom { from, to } => {
                let key = applier.keys.follow_bloom(*from, *to);
                let mut pipe = redis::pipe();
                for bit in applier.keys.bloom().positions(*from, *to) {
                    pipe.setbit(&key, bit as usize, true).ignore();
                }
                let _: () = pipe.query_async(&mut redis).await?;
            }
            Diff::Leaderboard { owner, mysql, .. } => {
                let board = applier.keys.leaderboard_followers();
                let _: () = match mysql {
                    Some(v) => redis.zadd(board, *owner, *v).await?,
                    None => redis.zrem(board, *owner).await?,
                };
            }
        }
        fixed += 1;
    }
    if user_columns {
        fix_user_columns(applier).await?;
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::compare_list;

    #[test]
    fn full_list_under_the_cap_must_match_exactly() {
        let want = [(3, 30), (2, 20), (1, 10)];
        assert_eq!(compare_list(&want, &want, 10), None);
        assert!(compare_list(&want, &want[..2], 10).is_some());
        assert!(compare_list(&want, &[(3, 30), (2, 20), (9, 10)], 10).is_some());
        assert!(compare_list(&want, &[(3, 31), (2, 20), (1, 10)], 10).is_some());
    }

    #[test]
    fn capped_list_is_a_newest_prefix() {
        let want = [(4, 40), (3, 30), (2, 20), (1, 10)];
        assert_eq!(compare_list(&want, &want[..2], 2), None);
        // After an unfollow in a full list the head may be shorter.
        assert_eq!(compare_list(&want, &want[..1], 2), None);
        assert!(compare_list(&want, &[(4, 40), (1, 10)], 2).is_some());
        assert!(compare_list(&want, &want[..3], 2).is_some());
    }
}
