//! Idempotent application of planned effects to Redis and to the `user`
//! table's redundant counter columns, fenced against a former owner.
//!
//! One call applies a whole batch, in two steps:
//! 1. the counter columns of the users whose counters changed, in one
//!    `UPDATE user SET follow_count = (SELECT value FROM counter …)` per
//!    1,000 users: computed from the `counter` table inside the statement,
//!    never from the batch, so a late or repeated write (a former owner's
//!    batch landing after the new owner's) writes today's value, not an
//!    older one. The pool runs at READ COMMITTED, where that subquery is a
//!    consistent read that locks no `counter` row (at REPEATABLE READ it
//!    would take shared locks and deadlock with the follow transactions);
//! 2. every Redis write of the batch in one MULTI/EXEC (all or nothing),
//!    together with the partitions' new applied seqs and offsets, and only
//!    while this member's claims on those partitions are still current (a
//!    WATCH on the claims hash; see [`Record`]);
//! 3. the capped follow lists an unfollow may have left short: refilled
//!    from MySQL's newest rows (a full list had dropped its oldest entries;
//!    see `refill_lists`).
//!
//! The seqs are recorded with the Redis writes and after the UPDATE: a crash
//! before step 2 leaves the batch to be delivered and applied again, which
//! changes nothing, as every effect is absolute. (Recording them before the
//! UPDATE would let a crash in between skip the redelivered batch and leave
//! the columns behind.) Remaining window: two members' UPDATEs of one user
//! running at the same instant, the older statement's read view taken before
//! the newer's commit and its row write after it, leave the columns one
//! change behind until the user's next counter change; `verify` shows it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use futures::StreamExt as _;

use common::keys::{CounterKind, Keys};
use redis::aio::ConnectionManager;
use sqlx::MySqlPool;

use crate::error::Result;
use crate::plan::Effect;

/// Writes effects. Cheap to clone.
#[derive(Clone)]
pub struct Applier {
    pub redis: ConnectionManager,
    /// A connection of its own for the fenced MULTI/EXEC (its WATCH must
    /// not be shared with other callers' commands); used by one apply at a
    /// time.
    pub fence: ConnectionManager,
    pub pool: MySqlPool,
    pub keys: Keys,
    pub list_cap: usize,
}

/// New applied seq of one partition (`topic/partition` → seq).
pub type Progress = BTreeMap<String, u64>;

/// What a batch records with its Redis writes, and the claims that must
/// still hold for them to land.
#[derive(Debug, Default, Clone)]
pub struct Record {
    /// Partition → the epoch this member claimed it with. When set, the
    /// writes land only if every one of them is still the partition's
    /// current epoch (`<ns>:syncer:epoch`); a member assigned the partition
    /// since has raised it.
    pub epochs: BTreeMap<String, i64>,
    /// Partition → its new applied seq (`<ns>:syncer:applied`).
    pub seqs: Progress,
    /// Partition → the offset after its last message in the batch
    /// (`<ns>:syncer:offsets`), the applied position the watermark rests on.
    pub offsets: BTreeMap<String, i64>,
}

impl Record {
    /// Only applied seqs, no fence (tests, tools).
    pub fn seqs(seqs: Progress) -> Self {
        Self {
            seqs,
            ..Self::default()
        }
    }

    fn is_empty(&self) -> bool {
        self.seqs.is_empty() && self.offsets.is_empty()
    }
}

/// How a fenced apply ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is written and recorded.
    Applied,
    /// Nothing was written to Redis: these partitions were claimed by
    /// another member since this one claimed them. The caller drops their
    /// events and applies the rest.
    Lost(Vec<String>),
}

impl Applier {
    /// Applies `effects` in order: the user counter columns, then Redis
    /// atomically with `record`, fenced by its epochs (see the module doc).
    pub async fn apply(&self, effects: &[Effect], record: &Record) -> Result<Outcome> {
        if effects.is_empty() && record.is_empty() {
            return Ok(Outcome::Applied);
        }
        self.write_user_columns(effects).await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.queue_effects(&mut pipe, effects);
        // The length of every list an unfollow shortened, after the batch
        // (the EXEC's only replies, in this order).
        let shortened = shortened_lists(effects);
        for (list, _) in &shortened {
            pipe.zcard(self.list_key(list));
        }
        if !record.seqs.is_empty() {
            pipe.hset_multiple(self.keys.syncer_applied(), &fields(&record.seqs))
                .ignore();
        }
        if !record.offsets.is_empty() {
            pipe.hset_multiple(self.keys.syncer_offsets(), &fields(&record.offsets))
                .ignore();
        }
        if record.epochs.is_empty() {
            let mut conn = self.redis.clone();
            let lengths: Vec<usize> = pipe.query_async(&mut conn).await?;
            self.refill_lists(&shortened, &lengths).await?;
            return Ok(Outcome::Applied);
        }
        let epochs_key = self.keys.syncer_epochs();
        let names: Vec<&str> = record.epochs.keys().map(String::as_str).collect();
        let mut conn = self.fence.clone();
        loop {
            let (current,): (Vec<Option<i64>>,) = redis::pipe()
                .cmd("WATCH")
                .arg(&epochs_key)
                .ignore()
                .cmd("HMGET")
                .arg(&epochs_key)
                .arg(&names)
                .query_async(&mut conn)
                .await?;
            let lost: Vec<String> = record
                .epochs
                .iter()
                .zip(&current)
                .filter(|((_, mine), now)| **now != Some(**mine))
                .map(|((p, _), _)| p.clone())
                .collect();
            if !lost.is_empty() {
                let _: () = redis::cmd("UNWATCH").query_async(&mut conn).await?;
                return Ok(Outcome::Lost(lost));
            }
            // Nil: the claims hash changed between WATCH and EXEC (some
            // member was assigned some partition); look again.
            let done: Option<Vec<usize>> = pipe.query_async(&mut conn).await?;
            if let Some(lengths) = done {
                self.refill_lists(&shortened, &lengths).await?;
                return Ok(Outcome::Applied);
            }
        }
    }

    fn list_key(&self, list: &List) -> String {
        match *list {
            List::Following(uid) => self.keys.following(uid),
            List::Followers(uid) => self.keys.followers(uid),
        }
    }

    /// Refills from MySQL every list an unfollow left shorter than the cap
    /// while it may have been full before the batch (its length plus the
    /// batch's removals from it reach the cap): a full list has dropped its
    /// oldest entries, and removing a newer one must bring the next older
    /// back, which only MySQL knows.
    ///
    /// A list is written by several members (follows are keyed by their
    /// pair), so the write is conditional on the list not changing between
    /// MySQL's read and the write (WATCH on the list): otherwise an unfollow
    /// committed after the read and applied by another member before the
    /// write would be undone. On a change the refill starts over (bounded);
    /// a member whose removal changed it refills the list itself.
    async fn refill_lists(&self, shortened: &[(List, usize)], lengths: &[usize]) -> Result<()> {
        const ATTEMPTS: usize = 5;
        let cap = self.list_cap;
        let mut conn = self.fence.clone();
        for ((list, removed), &len) in shortened.iter().zip(lengths) {
            if len >= cap || len + removed < cap {
                continue;
            }
            let key = self.list_key(list);
            for _ in 0..ATTEMPTS {
                let (_, len): ((), usize) = redis::pipe()
                    .cmd("WATCH")
                    .arg(&key)
                    .zcard(&key)
                    .query_async(&mut conn)
                    .await?;
                let newest = if len >= cap {
                    Vec::new()
                } else {
                    self.newest_in_mysql(list).await?
                };
                if newest.is_empty() {
                    let _: () = redis::cmd("UNWATCH").query_async(&mut conn).await?;
                    break;
                }
                let mut pipe = redis::pipe();
                pipe.atomic();
                for (member, score) in &newest {
                    pipe.zadd(&key, member, score).ignore();
                }
                pipe.zremrangebyrank(&key, 0, -(cap as isize + 1)).ignore();
                // Nil: the list changed since the WATCH; read again.
                let done: Option<()> = pipe.query_async(&mut conn).await?;
                if done.is_some() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The newest `list_cap` entries of `list` in MySQL: (member, score).
    async fn newest_in_mysql(&self, list: &List) -> Result<Vec<(u64, i64)>> {
        let (column, by) = match *list {
            List::Following(uid) => ("to_id", ("from_id", uid)),
            List::Followers(uid) => ("from_id", ("to_id", uid)),
        };
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {column}, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', created_at) \
             FROM follow WHERE {} = ? AND deleted_at IS NULL \
             ORDER BY created_at DESC LIMIT ?",
            by.0
        )))
        .bind(by.1)
        .bind(self.list_cap as u64)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The Redis writes of `effects`, in order, into `pipe`.
    fn queue_effects(&self, pipe: &mut redis::Pipeline, effects: &[Effect]) {
        let cap = self.list_cap as isize;
        for e in effects {
            match *e {
                Effect::SetCounter { owner, kind, value } => {
                    let slot = self.keys.counter(kind, owner);
                    pipe.hset(&slot.key, slot.field, value).ignore();
                    // The leaderboard holds every user with followers.
                    if kind == CounterKind::Followers.code() {
                        let board = self.keys.leaderboard_followers();
                        if value > 0 {
                            pipe.zadd(board, owner, value).ignore();
                        } else {
                            pipe.zrem(board, owner).ignore();
                        }
                    }
                }
                Effect::AddEdge { from, to, at_us } => {
                    let following = self.keys.following(from);
                    let followers = self.keys.followers(to);
                    pipe.zadd(&following, to, at_us).ignore();
                    pipe.zremrangebyrank(&following, 0, -(cap + 1)).ignore();
                    pipe.zadd(&followers, from, at_us).ignore();
                    pipe.zremrangebyrank(&followers, 0, -(cap + 1)).ignore();
                    let bloom = self.keys.follow_bloom();
                    for bit in self.keys.bloom().positions(from, to) {
                        pipe.setbit(&bloom, bit as usize, true).ignore();
                    }
                }
                Effect::RemoveEdge { from, to } => {
                    pipe.zrem(self.keys.following(from), to).ignore();
                    pipe.zrem(self.keys.followers(to), from).ignore();
                }
                Effect::InvalidateProfile { uid } => {
                    pipe.del(self.keys.user_profile(uid)).ignore();
                }
            }
        }
    }

    /// The counter columns of every user whose counters the batch changes,
    /// computed from the `counter` table ([`user_columns_sql`]): 1,000
    /// users per statement, two statements at a time over disjoint id
    /// ranges (so they never wait on each other's row locks).
    async fn write_user_columns(&self, effects: &[Effect]) -> Result<()> {
        let (following, followers) = (CounterKind::Following.code(), CounterKind::Followers.code());
        let mut owners: Vec<u64> = effects
            .iter()
            .filter_map(|e| match *e {
                Effect::SetCounter { owner, kind, .. }
                    if kind == following || kind == followers =>
                {
                    Some(owner)
                }
                _ => None,
            })
            .collect();
        if owners.is_empty() {
            return Ok(());
        }
        owners.sort_unstable();
        owners.dedup();
        let statements: Vec<_> = owners
            .chunks(1000)
            .map(|c| sqlx::raw_sql(sqlx::AssertSqlSafe(user_columns_sql(c))).execute(&self.pool))
            .collect();
        let mut running = futures::stream::iter(statements).buffer_unordered(2);
        while let Some(done) = running.next().await {
            done?;
        }
        Ok(())
    }
}

/// A capped follow list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Following(u64),
    Followers(u64),
}

/// Every list the batch removes from, with how many removals.
fn shortened_lists(effects: &[Effect]) -> Vec<(List, usize)> {
    let mut out: Vec<(List, usize)> = Vec::new();
    for e in effects {
        if let Effect::RemoveEdge { from, to } = *e {
            for list in [List::Following(from), List::Followers(to)] {
                match out.iter_mut().find(|(l, _)| *l == list) {
                    Some((_, n)) => *n += 1,
                    None => out.push((list, 1)),
                }
            }
        }
    }
    out
}

fn fields<V: Copy>(map: &BTreeMap<String, V>) -> Vec<(&str, V)> {
    map.iter().map(|(k, v)| (k.as_str(), *v)).collect()
}

/// `UPDATE user SET follow_count = (SELECT value FROM counter …), … WHERE id
/// IN (…)` for `owners`: each column becomes its `counter` row's value (0
/// without one). Rows already right are not written, so a replay adds no
/// binlog noise. The ids are integers written into the text: no prepared
/// statement per chunk size, nothing to inject.
pub fn user_columns_sql(owners: &[u64]) -> String {
    let (following, followers) = (CounterKind::Following.code(), CounterKind::Followers.code());
    let mut sql = String::with_capacity(320 + owners.len() * 8);
    let _ = write!(
        sql,
        "UPDATE user SET \
         follow_count = COALESCE((SELECT c.value FROM counter c \
                                  WHERE c.owner_id = user.id AND c.kind = {following}), 0), \
         follower_count = COALESCE((SELECT c.value FROM counter c \
                                    WHERE c.owner_id = user.id AND c.kind = {followers}), 0) \
         WHERE id IN ("
    );
    for (i, owner) in owners.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}{owner}");
    }
    sql.push(')');
    sql
}
