//! One Redis handle for both deployments sluice supports (DESIGN §5): a
//! single server (`ConnectionManager`: multiplexed, reconnecting) or a
//! Redis Cluster (the `redis` crate's async cluster client, which follows
//! MOVED/ASK and refreshes its slot map by itself).
//!
//! [`Redis`] implements `ConnectionLike`, so every single-key command and
//! every single-slot pipeline or script runs on either unchanged. What
//! differs is a batch over many keys: a cluster client refuses a pipeline
//! whose keys hash to different slots, so [`Redis::run`] splits such a
//! batch per slot (each part atomic when asked) and puts the replies back
//! in order, and [`Redis::scan`] walks every master.
//!
//! Cluster mode is chosen by the settings (`redis.cluster = true`) or by a
//! comma-separated `redis.url` list of seed nodes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, RedisFuture, RedisResult, Value};

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone.
#[derive(Clone)]
pub enum Redis {
    Single(ConnectionManager),
    Cluster(Cluster),
}

/// The cluster client and the slot → master map batches are grouped by.
#[derive(Clone)]
pub struct Cluster {
    conn: ClusterConnection,
    /// Read from CLUSTER SLOTS on first use; dropped when a batch meets a
    /// redirection or a lost node, and read again.
    map: Arc<RwLock<Option<Arc<NodeMap>>>>,
}

/// Which master serves each slot.
struct NodeMap {
    masters: Vec<(String, u16)>,
    /// Per slot, an index into `masters` (`u16::MAX`: no master).
    owner: Vec<u16>,
}

const SLOTS: usize = 16384;

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "Redis::Single",
            Self::Cluster(_) => "Redis::Cluster",
        })
    }
}

/// Whether `url` names a cluster: a comma-separated list of seed nodes.
pub fn is_cluster_url(url: &str) -> bool {
    url.contains(',')
}

/// The seed nodes of a comma-separated cluster `url`.
pub fn seeds(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Connects to `url` (a single server, or the cluster's seed nodes when
/// `cluster` is set or `url` is a comma-separated list), with a connect
/// timeout and a per-call response timeout.
pub async fn connect(
    url: &str,
    cluster: bool,
    connect_timeout: Duration,
    response_timeout: Duration,
) -> RedisResult<Redis> {
    if cluster || is_cluster_url(url) {
        let client = redis::cluster::ClusterClientBuilder::new(seeds(url))
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            .build()?;
        Ok(Redis::Cluster(Cluster {
            conn: client.get_async_connection().await?,
            map: Arc::new(RwLock::new(None)),
        }))
    } else {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout));
        Ok(Redis::Single(
            ConnectionManager::new_with_config(client, config).await?,
        ))
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.conn.get_db(),
        }
    }
}

/// The key a command of sluice's touches: its first argument after the name.
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
    match cmd.args_iter().nth(1)? {
        redis::Arg::Simple(k) => Some(k),
        _ => None,
    }
}

/// The hash slot of `key` (hash tags respected), as Redis Cluster computes it.
pub fn slot_of(key: &[u8]) -> Slot {
    Slot::for_key(key)
}

/// [`slot_of`] as a number: CRC16 (XMODEM) of the key, or of its hash tag
/// (the text between the first `{` and the next `}`, when not empty),
/// modulo 16384.
pub fn slot_number(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &b in tagged {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % SLOTS as u16
}

/// Whether `e` says the slot map moved under a batch (or a node went away):
/// the batch is then sent again slot by slot, which the client redirects.
fn map_is_stale(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(
            redis::ServerErrorKind::Moved
                | redis::ServerErrorKind::Ask
                | redis::ServerErrorKind::TryAgain
                | redis::ServerErrorKind::ClusterDown
        )
    ) || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
}

impl Cluster {
    /// The slot map, read once (CLUSTER SLOTS) and kept; `None` when it
    /// cannot be read (the batch then goes per slot).
    async fn node_map(&self) -> Option<Arc<NodeMap>> {
        if let Some(m) = self.map.read().ok().and_then(|m| m.clone()) {
            return Some(m);
        }
        let ranges = cluster_slots(&self.conn).await.ok()?;
        let mut masters: Vec<(String, u16)> = Vec::new();
        let mut owner = vec![u16::MAX; SLOTS];
        for (lo, hi, node) in ranges {
            let i = match masters.iter().position(|m| *m == node) {
                Some(i) => i,
                None => {
                    masters.push(node);
                    masters.len() - 1
                }
            };
            for slot in lo..=hi.min(SLOTS as u16 - 1) {
                owner[slot as usize] = i as u16;
            }
        }
        let map = Arc::new(NodeMap { masters, owner });
        if let Ok(mut m) = self.map.write() {
            *m = Some(Arc::clone(&map));
        }
        Some(map)
    }

    fn forget_map(&self) {
        if let Ok(mut m) = self.map.write() {
            *m = None;
        }
    }

    /// One pipeline per master, sent at once; with `atomic`, each slot's
    /// commands inside it are one MULTI/EXEC.
    async fn run_per_node(
        &self,
        map: &NodeMap,
        cmds: &[Cmd],
        atomic: bool,
    ) -> RedisResult<Vec<Value>> {
        // Per master: per slot, the indices of its commands (first-seen order).
        let mut nodes: HashMap<u16, Vec<(u16, Vec<usize>)>> = HashMap::new();
        for (i, cmd) in cmds.iter().enumerate() {
            let slot = key_of(cmd).map_or(0, slot_number);
            let node = map.owner[slot as usize];
            if node == u16::MAX {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown),
                    "a slot has no master",
                )));
            }
            let slots = nodes.entry(node).or_default();
            match slots.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, idx)) => idx.push(i),
                None => slots.push((slot, vec![i])),
            }
        }
        let runs = nodes.into_iter().map(|(node, slots)| {
            let (host, port) = map.masters[node as usize].clone();
            let mut conn = self.conn.clone();
            // The pipeline, and per slot where its replies are: the EXEC's
            // position (atomic) or the first command's.
            let mut pipe = redis::pipe();
            let mut parts: Vec<(Vec<usize>, usize, bool)> = Vec::new();
            for (_, idx) in slots {
                let wrap = atomic && idx.len() > 1;
                if wrap {
                    pipe.cmd("MULTI");
                }
                let first = pipe.len();
                for &i in &idx {
                    pipe.add_command(cmds[i].clone());
                }
                if wrap {
                    pipe.cmd("EXEC");
                    parts.push((idx, pipe.len() - 1, true));
                } else {
                    parts.push((idx, first, false));
                }
            }
            async move {
                let n = pipe.len();
                let route = SingleNodeRoutingInfo::ByAddress { host, port };
                let replies = conn.route_pipeline(pipe, 0, n, route).await?;
                let mut out: Vec<(usize, Value)> = Vec::with_capacity(n);
                for (idx, at, wrapped) in parts {
                    if wrapped {
                        // A command refused while queueing (a MOVED after a
                        // resharding) aborts the EXEC: report its own error.
                        for q in at.saturating_sub(idx.len())..at {
                            if let Some(v) = replies.get(q) {
                                v.clone().extract_error()?;
                            }
                        }
                        let exec = replies.get(at).cloned().unwrap_or(Value::Nil);
                        let Value::Array(values) = exec.extract_error()? else {
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::Client,
                                "a MULTI/EXEC of one slot was aborted",
                            )));
                        };
                        out.extend(idx.into_iter().zip(values));
                    } else {
                        for (k, i) in idx.into_iter().enumerate() {
                            let v = replies.get(at + k).cloned().unwrap_or(Value::Nil);
                            out.push((i, v.extract_error()?));
                        }
                    }
                }
                RedisResult::Ok(out)
            }
        });
        let done = futures::future::try_join_all(runs).await?;
        let mut out = vec![Value::Nil; cmds.len()];
        for (i, v) in done.into_iter().flatten() {
            out[i] = v;
        }
        Ok(out)
    }

    /// One pipeline per slot, routed (and redirected) by the client.
    async fn run_per_slot(&self, cmds: Vec<Cmd>, atomic: bool) -> RedisResult<Vec<Value>> {
        // Slot → (indices in `cmds`, pipeline), in first-seen order.
        let mut groups: Vec<(Option<Slot>, Vec<usize>, redis::Pipeline)> = Vec::new();
        let mut by_slot: HashMap<Option<Slot>, usize> = HashMap::new();
        let total = cmds.len();
        for (i, cmd) in cmds.into_iter().enumerate() {
            let slot = key_of(&cmd).map(slot_of);
            let g = *by_slot.entry(slot).or_insert_with(|| {
                let mut pipe = redis::pipe();
                if atomic {
                    pipe.atomic();
                }
                groups.push((slot, Vec::new(), pipe));
                groups.len() - 1
            });
            groups[g].1.push(i);
            groups[g].2.add_command(cmd);
        }
        let runs = groups.into_iter().map(|(slot, idx, pipe)| {
            let mut c = self.conn.clone();
            async move {
                let route = match slot {
                    Some(s) => {
                        SingleNodeRoutingInfo::SpecificNode(Route::with_slot(s, SlotAddr::Master))
                    }
                    None => SingleNodeRoutingInfo::RandomPrimary,
                };
                let n = idx.len();
                let replies = if atomic {
                    // MULTI, n QUEUED, EXEC: the EXEC's array.
                    let mut all = c.route_pipeline(pipe, n + 1, 1, route).await?;
                    match all.pop() {
                        Some(Value::Array(v)) => v,
                        Some(Value::Nil) | None => {
                            return Err(redis::RedisError::from((
                                redis::ErrorKind::Client,
                                "a MULTI/EXEC of one slot was aborted",
                            )));
                        }
                        Some(other) => vec![other],
                    }
                } else {
                    c.route_pipeline(pipe, 0, n, route).await?
                };
                // A command's error inside the replies (as EXEC reports
                // them) fails the batch, as on one server.
                let replies = match Value::Array(replies).extract_error()? {
                    Value::Array(v) => v,
                    other => vec![other],
                };
                RedisResult::Ok((idx, replies))
            }
        });
        let done = futures::future::try_join_all(runs).await?;
        let mut out = vec![Value::Nil; total];
        for (idx, replies) in done {
            for (i, v) in idx.into_iter().zip(replies) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// CLUSTER SLOTS as (first slot, last slot, master address).
async fn cluster_slots(conn: &ClusterConnection) -> RedisResult<Vec<(u16, u16, (String, u16))>> {
    let reply = conn
        .clone()
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        )
        .await?;
    let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
    let mut out = Vec::new();
    for range in ranges {
        // [start, end, [host, port, id, …], replicas…]
        if range.len() < 3 {
            continue;
        }
        let lo: u16 = redis::from_redis_value(range[0].clone())?;
        let hi: u16 = redis::from_redis_value(range[1].clone())?;
        let node: Vec<Value> = redis::from_redis_value(range[2].clone())?;
        if node.len() < 2 {
            continue;
        }
        let host: String = redis::from_redis_value(node[0].clone())?;
        let port: u16 = redis::from_redis_value(node[1].clone())?;
        out.push((lo, hi, (host, port)));
    }
    Ok(out)
}

impl Redis {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Runs `cmds` and returns every reply, in order. On a single server
    /// they are one pipeline, one MULTI/EXEC when `atomic`. On a cluster
    /// they are one pipeline per hash slot (each its own MULTI/EXEC when
    /// `atomic`: atomic per slot, not across slots), sent at once.
    pub async fn run(&self, cmds: Vec<Cmd>, atomic: bool) -> RedisResult<Vec<Value>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Single(c) => {
                let mut pipe = redis::pipe();
                if atomic {
                    pipe.atomic();
                }
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                let mut c = c.clone();
                pipe.query_async(&mut c).await
            }
            Self::Cluster(c) => {
                if let Some(map) = c.node_map().await {
                    match c.run_per_node(&map, &cmds, atomic).await {
                        Ok(out) => return Ok(out),
                        Err(e) if map_is_stale(&e) => {
                            // Every command is an absolute write or a read:
                            // sending them again is harmless.
                            tracing::debug!(error = %e, "redis cluster: slot map moved; batch sent again per slot");
                            c.forget_map();
                        }
                        Err(e) => return Err(e),
                    }
                }
                c.run_per_slot(cmds, atomic).await
            }
        }
    }

    /// [`run`](Self::run) without MULTI, each reply converted to `T`.
    pub async fn query_each<T: redis::FromRedisValue>(
        &self,
        cmds: Vec<Cmd>,
    ) -> RedisResult<Vec<T>> {
        self.run(cmds, false)
            .await?
            .into_iter()
            .map(|v| redis::from_redis_value(v).map_err(redis::RedisError::from))
            .collect()
    }

    /// Every key matching `pattern`: SCAN on the server, or on every
    /// master of the cluster. A key may be reported twice (SCAN's promise).
    pub async fn scan(&self, pattern: &str) -> RedisResult<Vec<String>> {
        match self {
            Self::Single(c) => {
                let mut c = c.clone();
                let mut it: redis::AsyncIter<String> =
                    redis::AsyncCommands::scan_match(&mut c, pattern).await?;
                let mut keys = Vec::new();
                while let Some(k) = it.next_item().await {
                    keys.push(k?);
                }
                Ok(keys)
            }
            Self::Cluster(c) => {
                let mut keys = Vec::new();
                for (host, port) in self.masters().await? {
                    let mut cursor = 0u64;
                    loop {
                        let mut cmd = redis::cmd("SCAN");
                        cmd.arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(1000);
                        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let reply = c.conn.clone().route_command(cmd, route).await?;
                        let (next, batch): (u64, Vec<String>) = redis::from_redis_value(reply)?;
                        keys.extend(batch);
                        if next == 0 {
                            break;
                        }
                        cursor = next;
                    }
                }
                Ok(keys)
            }
        }
    }

    /// The cluster's masters as `(host, port)` (from CLUSTER SLOTS); empty
    /// on a single server.
    pub async fn masters(&self) -> RedisResult<Vec<(String, u16)>> {
        let Self::Cluster(c) = self else {
            return Ok(Vec::new());
        };
        let mut out: Vec<(String, u16)> = Vec::new();
        for (_, _, node) in cluster_slots(&c.conn).await? {
            if !out.contains(&node) {
                out.push(node);
            }
        }
        Ok(out)
    }

    /// Deletes `keys` (UNLINK), per slot on a cluster; returns how many existed.
    pub async fn unlink(&self, keys: &[String]) -> RedisResult<u64> {
        let mut removed = 0u64;
        for chunk in keys.chunks(1000) {
            let cmds = chunk
                .iter()
                .map(|k| redis::cmd("UNLINK").arg(k).clone())
                .collect();
            for v in self.run(cmds, false).await? {
                removed += redis::from_redis_value::<u64>(v)?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_numbers_are_the_clusters() {
        for key in [
            &b"sluice:cnt:2:17"[..],
            b"",
            b"a",
            b"sluice:{sluice:syncer}:applied",
            b"{}x",
            b"x{}y{z}",
            b"{user1000}.following",
            b"\xff\x00{",
        ] {
            assert_eq!(Slot::new(slot_number(key)), Some(slot_of(key)), "{key:?}");
        }
        // Redis' own documented examples.
        assert_eq!(slot_number(b"123456789"), 0x31C3);
        assert_eq!(
            slot_number(b"{user1000}.following"),
            slot_number(b"{user1000}.followers")
        );
        for i in 0..10_000u32 {
            let key = format!("ns:followers:{i}");
            assert_eq!(
                Slot::new(slot_number(key.as_bytes())),
                Some(slot_of(key.as_bytes()))
            );
        }
    }
}
