//! Idempotent application of planned effects to Redis and to the `user`
//! table's redundant counter columns.
//!
//! One call applies a whole batch: every Redis write of the batch goes in one
//! MULTI/EXEC pipeline (all or nothing) while, at the same time, the counter
//! columns are written with one `UPDATE … CASE` per kind, only for the latest
//! value of each counter in the batch. Only when both succeeded are the
//! partitions' new applied seqs recorded: a crash before that leaves the
//! batch to be delivered and applied again, which changes nothing, as every
//! effect is absolute. (Recording the seqs with the Redis writes, before the
//! UPDATE, would let a crash in between skip the redelivered batch and leave
//! the columns behind.)

use std::collections::BTreeMap;

use common::keys::{CounterKind, Keys};
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use sqlx::MySqlPool;

use crate::error::Result;
use crate::plan::Effect;

/// Writes effects. Cheap to clone.
#[derive(Clone)]
pub struct Applier {
    pub redis: ConnectionManager,
    pub pool: MySqlPool,
    pub keys: Keys,
    pub list_cap: usize,
}

/// New applied seq of one partition (`topic/partition` → seq).
pub type Progress = BTreeMap<String, u64>;

impl Applier {
    /// Applies `effects` in order to Redis (atomically) and to the user
    /// counter columns in MySQL, concurrently; then records `progress`.
    pub async fn apply(&self, effects: &[Effect], progress: &Progress) -> Result<()> {
        if effects.is_empty() && progress.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let cap = self.list_cap as isize;
        for e in effects {
            match *e {
                Effect::SetCounter { owner, kind, value } => {
                    let slot = self.keys.counter(kind, owner);
                    pipe.hset(&slot.key, slot.field, value).ignore();
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
        let redis_writes = async {
            if !effects.is_empty() {
                let mut conn = self.redis.clone();
                let _: () = pipe.query_async(&mut conn).await?;
            }
            Ok::<(), crate::error::Error>(())
        };
        let (redis, mysql) = tokio::join!(redis_writes, self.write_user_columns(effects));
        redis?;
        mysql?;
        if !progress.is_empty() {
            let fields: Vec<(&str, u64)> = progress.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let mut conn = self.redis.clone();
            let _: () = conn
                .hset_multiple(self.keys.syncer_applied(), &fields)
                .await?;
        }
        Ok(())
    }

    /// `UPDATE user SET <column> = CASE id WHEN … END WHERE id IN (…)` with
    /// the last value of each counter in the batch.
    async fn write_user_columns(&self, effects: &[Effect]) -> Result<()> {
        let mut latest: BTreeMap<(u8, u64), i64> = BTreeMap::new();
        for e in effects {
            if let Effect::SetCounter { owner, kind, value } = *e {
                latest.insert((kind, owner), value);
            }
        }
        for (kind, column) in [
            (CounterKind::Following, "follow_count"),
            (CounterKind::Followers, "follower_count"),
        ] {
            let rows: Vec<(u64, i64)> = latest
                .iter()
                .filter(|((k, _), _)| *k == kind.code())
                .map(|((_, o), v)| (*o, *v))
                .collect();
            for chunk in rows.chunks(500) {
                let mut sql = format!("UPDATE user SET {column} = CASE id");
                for _ in chunk {
                    sql.push_str(" WHEN ? THEN ?");
                }
                sql.push_str(" END WHERE id IN (");
                sql.push_str(&vec!["?"; chunk.len()].join(","));
                // Skip rows already right: no binlog noise on replays.
                sql.push_str(&format!(") AND {column} <> CASE id"));
                for _ in chunk {
                    sql.push_str(" WHEN ? THEN ?");
                }
                sql.push_str(" END");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (owner, value) in chunk {
                    q = q.bind(owner).bind(value);
                }
                for (owner, _) in chunk {
                    q = q.bind(owner);
                }
                for (owner, value) in chunk {
                    q = q.bind(owner).bind(value);
                }
                q.execute(&self.pool).await?;
            }
        }
        Ok(())
    }
}
