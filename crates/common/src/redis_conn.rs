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
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, RedisFuture, RedisResult, Value};

/// A connection to a single Redis or to a Redis Cluster. Cheap to clone.
#[derive(Clone)]
pub enum Redis {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

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
        let seeds: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let client = redis::cluster::ClusterClientBuilder::new(seeds)
            .connection_timeout(connect_timeout)
            .response_timeout(response_timeout)
            .build()?;
        Ok(Redis::Cluster(client.get_async_connection().await?))
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
            Self::Cluster(c) => c.req_packed_command(cmd),
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
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
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
                    let mut c = c.clone();
                    async move {
                        let route = match slot {
                            Some(s) => SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
                                s,
                                SlotAddr::Master,
                            )),
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
                        // A command's error inside the replies (as EXEC
                        // reports them) fails the batch, as on one server.
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
                        let reply = c.clone().route_command(cmd, route).await?;
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
        let reply = c
            .clone()
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
            )
            .await?;
        let ranges: Vec<Vec<Value>> = redis::from_redis_value(reply)?;
        let mut out: Vec<(String, u16)> = Vec::new();
        for range in ranges {
            // [start, end, [host, port, id, …], replicas…]
            let Some(master) = range.get(2) else { continue };
            let node: Vec<Value> = redis::from_redis_value(master.clone())?;
            if node.len() < 2 {
                continue;
            }
            let host: String = redis::from_redis_value(node[0].clone())?;
            let port: u16 = redis::from_redis_value(node[1].clone())?;
            if !out.iter().any(|(h, p)| *h == host && *p == port) {
                out.push((host, port));
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
