//! Which partitions this member owns, and the claims that fence a former
//! owner out.
//!
//! # Claims
//! When the group assigns a partition to this member (the rebalance
//! callback, before any of its messages is delivered), the member raises the
//! partition's epoch in `<ns>:{<ns>:syncer}:epoch` and reads its applied seq from
//! `<ns>:{<ns>:syncer}:applied` (one hash tag, so one slot in a cluster), both in one Lua script: either a former owner's
//! last batch landed before the claim, and its seqs are read with it, or it
//! lands after and is refused (each batch's Redis writes are conditional on
//! the member's epochs; see [`crate::apply`]). The loop folds the seqs into
//! its seq rule before decoding the partition's first message, so changes
//! the former owner applied past the committed offset are skipped, not
//! applied again over newer values.
//!
//! A claim that fails (Redis unreachable during the rebalance) is retried by
//! the loop before it decodes anything more ([`Ownership::claim_pending`]).
//!
//! # Revocation
//! A revoked partition is dropped at once: the loop stores no offset for it
//! after that (the new owner starts from the group's committed offset), and
//! the batch in flight, if it still holds the partition's messages, is
//! refused by the fence once the new owner has claimed it, or lands first
//! and is then seen by the new owner's claim.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::keys::Keys;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::consumer::partition_key;
use crate::error::{Error, Result};

/// Raises each partition's epoch and returns, per partition, the new epoch
/// and the applied seq (nil when none): one atomic step.
const CLAIM: &str = r"
local out = {}
for i, p in ipairs(ARGV) do
  out[2 * i - 1] = redis.call('HINCRBY', KEYS[1], p, 1)
  out[2 * i] = redis.call('HGET', KEYS[2], p)
end
return out
";

/// A partition newly claimed: its epoch and the applied seq found with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimed {
    pub partition: String,
    pub epoch: i64,
    pub applied_seq: Option<u64>,
}

/// What changed since the loop last looked.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    pub claimed: Vec<Claimed>,
    pub revoked: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Owned partitions and their epoch (`None`: the claim is still to do).
    owned: HashMap<String, Option<i64>>,
    changes: Changes,
    /// Rebalances seen (for `/status` and tests).
    rebalances: u64,
}

/// The member's partitions and claims, shared by the rebalance callback and
/// the loop.
pub(crate) struct Ownership {
    state: Mutex<State>,
    changed: AtomicBool,
    /// Set while some owned partition's claim is still to do (checked per
    /// message, so an atomic rather than the lock).
    unclaimed: AtomicBool,
    client: BlockingClient,
    keys: Keys,
}

/// Where the rebalance callback's blocking claim connects: the callback
/// runs on librdkafka's polling thread, outside the async runtime.
pub(crate) enum BlockingClient {
    Single(redis::Client),
    Cluster(Box<redis::cluster::ClusterClient>),
}

impl BlockingClient {
    /// The client for `url`: a cluster when `cluster` is set or `url` is a
    /// comma-separated list of seed nodes.
    pub fn open(url: &str, cluster: bool) -> Result<Self> {
        if cluster || common::redis_conn::is_cluster_url(url) {
            Ok(Self::Cluster(Box::new(
                redis::cluster::ClusterClientBuilder::new(common::redis_conn::seeds(url))
                    .connection_timeout(Duration::from_secs(2))
                    .response_timeout(Duration::from_secs(2))
                    .build()?,
            )))
        } else {
            Ok(Self::Single(redis::Client::open(url)?))
        }
    }
}

impl Ownership {
    pub fn new(client: BlockingClient, keys: Keys) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            changed: AtomicBool::new(false),
            unclaimed: AtomicBool::new(false),
            client,
            keys,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The rebalance callback's half of an assignment: claims the
    /// partitions (blocking, bounded: it runs on the polling thread before
    /// any of their messages is delivered); a failed claim is left to
    /// [`claim_pending`](Self::claim_pending).
    fn assigned(&self, partitions: Vec<String>) {
        let claimed = self.claim_blocking(&partitions);
        let mut st = self.state();
        st.rebalances += 1;
        metrics::counter!(crate::metrics::REBALANCES).increment(1);
        match claimed {
            Ok(claims) => {
                for c in &claims {
                    st.owned.insert(c.partition.clone(), Some(c.epoch));
                }
                tracing::info!(partitions = ?partitions, "partitions assigned and claimed");
                st.changes.claimed.extend(claims);
            }
            Err(e) => {
                tracing::warn!(error = %e, partitions = ?partitions, "partitions assigned; claiming them failed, retried before their messages are applied");
                for p in partitions {
                    st.owned.insert(p, None);
                }
                self.unclaimed.store(true, Ordering::Release);
            }
        }
        drop(st);
        self.changed.store(true, Ordering::Release);
    }

    fn revoked(&self, partitions: Vec<String>) {
        let mut st = self.state();
        st.rebalances += 1;
        metrics::counter!(crate::metrics::REBALANCES).increment(1);
        for p in &partitions {
            st.owned.remove(p);
        }
        tracing::info!(partitions = ?partitions, "partitions revoked");
        st.changes.revoked.extend(partitions);
        drop(st);
        self.changed.store(true, Ordering::Release);
    }

    /// Whether anything changed since the last [`take_changes`](Self::take_changes).
    pub fn changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// Claims and revocations since the last call.
    pub fn take_changes(&self) -> Changes {
        self.changed.store(false, Ordering::Release);
        std::mem::take(&mut self.state().changes)
    }

    /// Whether some owned partition's claim failed in the callback.
    pub fn has_unclaimed(&self) -> bool {
        self.unclaimed.load(Ordering::Acquire)
    }

    /// Partitions owned whose claim failed in the callback.
    pub fn unclaimed(&self) -> Vec<String> {
        let st = self.state();
        st.owned
            .iter()
            .filter(|(_, e)| e.is_none())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Claims the partitions whose claim failed in the callback, and returns
    /// what the claims found. Partitions revoked meanwhile are left alone.
    pub async fn claim_pending(
        &self,
        conn: &mut common::redis_conn::Redis,
    ) -> Result<Vec<Claimed>> {
        let pending = self.unclaimed();
        if pending.is_empty() {
            self.unclaimed.store(false, Ordering::Release);
            return Ok(Vec::new());
        }
        let reply: Vec<redis::Value> = self.claim_cmd(&pending).query_async(conn).await?;
        let claims = parse_claims(&pending, reply)?;
        let mut st = self.state();
        let mut out = Vec::new();
        for c in claims {
            if let Some(slot) = st.owned.get_mut(&c.partition) {
                *slot = Some(c.epoch);
                out.push(c);
            }
        }
        if st.owned.values().all(Option::is_some) {
            self.unclaimed.store(false, Ordering::Release);
        }
        Ok(out)
    }

    /// This member's epoch for `partition`, when it owns and claimed it.
    pub fn epoch(&self, partition: &str) -> Option<i64> {
        self.state().owned.get(partition).copied().flatten()
    }

    /// Whether this member owns `partition` now.
    pub fn owns(&self, partition: &str) -> bool {
        self.state().owned.contains_key(partition)
    }

    /// The partitions owned, sorted.
    pub fn owned(&self) -> Vec<String> {
        let mut owned: Vec<String> = self.state().owned.keys().cloned().collect();
        owned.sort();
        owned
    }

    /// Rebalances seen since the start.
    pub fn rebalances(&self) -> u64 {
        self.state().rebalances
    }

    /// The claim script for `partitions` (EVAL: Redis keeps the compiled
    /// script cached by its hash).
    fn claim_cmd(&self, partitions: &[String]) -> redis::Cmd {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM)
            .arg(2)
            .arg(self.keys.syncer_epochs())
            .arg(self.keys.syncer_applied())
            .arg(partitions);
        cmd
    }

    fn claim_blocking(&self, partitions: &[String]) -> Result<Vec<Claimed>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let reply: Vec<redis::Value> = match &self.client {
            BlockingClient::Single(client) => {
                let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
                conn.set_read_timeout(Some(Duration::from_secs(2)))?;
                conn.set_write_timeout(Some(Duration::from_secs(2)))?;
                self.claim_cmd(partitions).query(&mut conn)?
            }
            // The script's two keys share the syncer's hash tag: one slot.
            BlockingClient::Cluster(client) => {
                let mut conn = client.get_connection()?;
                self.claim_cmd(partitions).query(&mut conn)?
            }
        };
        parse_claims(partitions, reply)
    }
}

/// The claim script's reply, `[epoch, seq|nil, …]`, per partition.
fn parse_claims(partitions: &[String], reply: Vec<redis::Value>) -> Result<Vec<Claimed>> {
    if reply.len() != partitions.len() * 2 {
        return Err(Error::Other(format!(
            "claim script returned {} values for {} partitions",
            reply.len(),
            partitions.len()
        )));
    }
    let mut out = Vec::with_capacity(partitions.len());
    for (p, pair) in partitions.iter().zip(reply.chunks(2)) {
        let epoch: i64 = redis::from_redis_value_ref(&pair[0]).map_err(redis::RedisError::from)?;
        let applied_seq: Option<u64> =
            redis::from_redis_value_ref(&pair[1]).map_err(redis::RedisError::from)?;
        out.push(Claimed {
            partition: p.clone(),
            epoch,
            applied_seq,
        });
    }
    Ok(out)
}

/// The consumer's context: rebalances update the [`Ownership`].
pub struct SyncContext {
    pub(crate) ownership: Arc<Ownership>,
}

impl ClientContext for SyncContext {}

impl ConsumerContext for SyncContext {
    /// Before librdkafka changes the assignment: a revoke drops the
    /// partitions here (no offset is stored for them after this), an assign
    /// claims the new ones before any of their messages is fetched.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.ownership.revoked(keys_of(tpl)),
            Rebalance::Assign(tpl) => self.ownership.assigned(keys_of(tpl)),
            Rebalance::Error(e) => tracing::warn!(error = %e, "consumer group rebalance error"),
        }
    }
}

fn keys_of(tpl: &TopicPartitionList) -> Vec<String> {
    tpl.elements()
        .iter()
        .map(|e| partition_key(e.topic(), e.partition()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_reply_pairs_each_partition_with_its_epoch_and_seq() {
        let parts = vec!["t/0".to_owned(), "t/1".to_owned()];
        let reply = vec![
            redis::Value::Int(3),
            redis::Value::BulkString(b"42".to_vec()),
            redis::Value::Int(1),
            redis::Value::Nil,
        ];
        let claims = parse_claims(&parts, reply).unwrap();
        assert_eq!(
            claims,
            vec![
                Claimed {
                    partition: "t/0".into(),
                    epoch: 3,
                    applied_seq: Some(42)
                },
                Claimed {
                    partition: "t/1".into(),
                    epoch: 1,
                    applied_seq: None
                },
            ]
        );
        assert!(parse_claims(&parts, vec![redis::Value::Int(1)]).is_err());
    }
}
