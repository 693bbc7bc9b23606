//! The `count.v1.CountService` gRPC edge.
//!
//! GetCounts answers up to [`MAX_USERS`] users × the requested kinds (empty =
//! every known kind) in request order, duplicates kept, missing counters 0.
//! With `consistency-token` metadata it waits (bounded) for the syncer's
//! watermark to cover that write, then reads Redis, else MySQL.
//! AwaitApplied exposes that wait on its own. Leaderboard reads the
//! syncer's followers ZSET (`<ns>:leaderboard:followers`), else MySQL.

use common::keys::CounterKind;
use pb::count_service_server::CountService;
use proto::count::v1 as pb;
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};
use crate::metrics::{BATCH_SIZE, REQUESTS_TOTAL};
use service_kit::readpath::consistency::{self, Barrier, ReadMode};
use service_kit::readpath::counts::CountReader;

/// Most users one GetCounts call may name.
pub const MAX_USERS: usize = 1000;

/// gRPC metadata key of the read-your-writes token.
pub const CONSISTENCY_METADATA: &str = consistency::TOKEN_METADATA;

/// Shared state of the count service.
#[derive(Clone)]
pub struct CountGrpc {
    pub counts: CountReader,
    pub barrier: Barrier,
    pub leaderboard: Leaderboard,
}

/// Most entries one Leaderboard call may ask for.
pub const MAX_LEADERBOARD: u32 = 100;

/// The most-followed users: Redis's ZSET (every user with followers,
/// scored by their count), else MySQL's `counter` rows.
#[derive(Clone)]
pub struct Leaderboard {
    pool: sqlx::MySqlPool,
    redis: service_kit::readpath::redis_cache::RedisCache,
    keys: common::keys::Keys,
    /// The top [`MAX_LEADERBOARD`] as Redis answered it moments ago (kept
    /// `cache.ttl`), cut to any smaller `limit`: the order is total, so the
    /// first `limit` of the top 100 are the top `limit`.
    local: moka::future::Cache<(), std::sync::Arc<Vec<Entry>>>,
}

/// One leaderboard entry: (user id, followers).
pub type Entry = (u64, u64);

impl Leaderboard {
    /// Over the service's read layers; Redis answers kept `layers.ttl`.
    pub fn new(layers: &service_kit::readpath::Layers) -> Self {
        Self {
            pool: layers.pool.clone(),
            redis: layers.redis.clone(),
            keys: layers.keys.clone(),
            local: moka::future::Cache::builder()
                .max_capacity(1)
                .time_to_live(layers.ttl)
                .build(),
        }
    }

    /// The top `limit`, and where they were read (`Cached`: the local
    /// entry or Redis, `Synced`: Redis, `Primary`: MySQL). An empty ZSET is
    /// answered by MySQL: it may not be built yet (a wiped Redis before
    /// `rebuild`), and such an answer is not kept.
    pub async fn top(&self, limit: usize, mode: ReadMode) -> Result<(Vec<Entry>, ReadMode)> {
        let cut = |top: &[Entry]| top[..top.len().min(limit)].to_vec();
        if mode == ReadMode::Cached {
            if let Some(top) = self.local.get(&()).await {
                return Ok((cut(&top), mode));
            }
            if let Some(top) = self.read_redis(MAX_LEADERBOARD as usize).await
                && !top.is_empty()
            {
                let top = std::sync::Arc::new(top);
                self.local.insert((), top.clone()).await;
                return Ok((cut(&top), mode));
            }
        } else if mode == ReadMode::Synced
            && let Some(top) = self.read_redis(limit).await
            && !top.is_empty()
        {
            return Ok((top, mode));
        }
        Ok((self.read_mysql(limit).await?, ReadMode::Primary))
    }

    /// ZREVRANGE orders equal scores by member, as strings; MySQL's order
    /// is by user id. So the whole run of the last score is read and the
    /// answer sorted by (followers desc, id asc).
    async fn read_redis(&self, limit: usize) -> Option<Vec<Entry>> {
        let board = self.keys.leaderboard_followers();
        self.redis
            .run(|mut conn| async move {
                use redis::AsyncCommands as _;
                let top: Vec<(u64, u64)> = conn
                    .zrevrange_withscores(&board, 0, limit as isize - 1)
                    .await?;
                let Some(&(_, last)) = top.last() else {
                    return Ok(Vec::new());
                };
                let ties: Vec<(u64, u64)> =
                    conn.zrangebyscore_withscores(&board, last, last).await?;
                let mut all: Vec<Entry> = top.into_iter().filter(|(_, s)| *s > last).collect();
                all.extend(ties);
                all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                all.truncate(limit);
                Ok(all)
            })
            .await
    }

    async fn read_mysql(&self, limit: usize) -> Result<Vec<Entry>> {
        let rows: Vec<(u64, i64)> = sqlx::query_as(
            "SELECT owner_id, value FROM counter WHERE kind = 2 AND value > 0 \
             ORDER BY value DESC, owner_id LIMIT ?",
        )
        .bind(limit as u64)
        .fetch_all(&self.pool)
        .await
        .map_err(service_kit::store::StoreError::from)?;
        Ok(rows
            .into_iter()
            .map(|(o, v)| (o, v.max(0) as u64))
            .collect())
    }
}

/// Longest wait an `AwaitApplied` call may ask for.
pub const MAX_AWAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Checks a request and resolves its kinds.
pub fn parse_request(req: &pb::GetCountsRequest) -> Result<Vec<CounterKind>> {
    if req.user_ids.is_empty() {
        return Err(Error::InvalidArgument("user_ids must not be empty".into()));
    }
    if req.user_ids.len() > MAX_USERS {
        return Err(Error::InvalidArgument(format!(
            "at most {MAX_USERS} user_ids per call"
        )));
    }
    if req.user_ids.contains(&0) {
        return Err(Error::InvalidArgument("user id 0 does not exist".into()));
    }
    if req.kinds.is_empty() {
        return Ok(vec![CounterKind::Following, CounterKind::Followers]);
    }
    req.kinds
        .iter()
        .map(|&k| {
            CounterKind::from_code(u64::from(k)).ok_or_else(|| {
                Error::InvalidArgument(format!("unknown counter kind {k} (known: 1, 2)"))
            })
        })
        .collect()
}

impl CountGrpc {
    async fn get_counts_inner(
        &self,
        req: pb::GetCountsRequest,
        mode: ReadMode,
    ) -> Result<pb::GetCountsResponse> {
        let kinds = parse_request(&req)?;
        metrics::histogram!(BATCH_SIZE).record((req.user_ids.len() * kinds.len()) as f64);
        let found = self.counts.get_many(&req.user_ids, mode).await?;
        let counts = req
            .user_ids
            .iter()
            .flat_map(|o| {
                let c = found.get(o).copied().unwrap_or_default();
                kinds.iter().map(move |&k| pb::Count {
                    owner_id: *o,
                    kind: u32::from(k.code()),
                    value: c.get(k),
                })
            })
            .collect();
        Ok(pb::GetCountsResponse { counts })
    }
}

#[tonic::async_trait]
impl CountService for CountGrpc {
    #[tracing::instrument(target = "sluice_trace", skip_all, fields(users = req.get_ref().user_ids.len()))]
    async fn get_counts(
        &self,
        req: Request<pb::GetCountsRequest>,
    ) -> Result<Response<pb::GetCountsResponse>, Status> {
        parse_request(req.get_ref())?;
        let mode = self.barrier.for_request(&req).await?;
        let result = self.get_counts_inner(req.into_inner(), mode).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(REQUESTS_TOTAL, "outcome" => outcome).increment(1);
        Ok(consistency::tag(Response::new(result?), mode))
    }

    #[tracing::instrument(target = "sluice_trace", skip_all, fields(limit = req.get_ref().limit))]
    async fn leaderboard(
        &self,
        req: Request<pb::LeaderboardRequest>,
    ) -> Result<Response<pb::LeaderboardResponse>, Status> {
        let limit = req.get_ref().limit;
        if !(1..=MAX_LEADERBOARD).contains(&limit) {
            return Err(Status::invalid_argument(format!(
                "limit must be 1..={MAX_LEADERBOARD}, got {limit}"
            )));
        }
        let mode = self.barrier.for_request(&req).await?;
        let (top, source) = self.leaderboard.top(limit as usize, mode).await?;
        let entries = top
            .into_iter()
            .map(|(user_id, followers)| pb::LeaderboardEntry { user_id, followers })
            .collect();
        let mut resp = Response::new(pb::LeaderboardResponse { entries });
        resp.metadata_mut().insert(
            consistency::READ_SOURCE_HEADER,
            tonic::metadata::MetadataValue::from_static(source.as_str()),
        );
        Ok(resp)
    }

    async fn await_applied(
        &self,
        req: Request<pb::AwaitAppliedRequest>,
    ) -> Result<Response<pb::AwaitAppliedResponse>, Status> {
        let r = req.into_inner();
        let timeout = std::time::Duration::from_millis(r.timeout_ms);
        if timeout > MAX_AWAIT {
            return Err(Status::invalid_argument(format!(
                "timeout_ms must be at most {}",
                MAX_AWAIT.as_millis()
            )));
        }
        let applied = self
            .barrier
            .await_applied(&r.token, timeout)
            .await
            .map_err(consistency::to_status)?;
        Ok(Response::new(pb::AwaitAppliedResponse { applied }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_kinds_mean_every_known_kind() {
        let req = pb::GetCountsRequest {
            user_ids: vec![1],
            kinds: vec![],
        };
        assert_eq!(
            parse_request(&req).unwrap(),
            vec![CounterKind::Following, CounterKind::Followers]
        );
    }

    #[test]
    fn too_many_users_unknown_kinds_and_empty_requests_are_refused() {
        let many = pb::GetCountsRequest {
            user_ids: (1..=1001).collect(),
            kinds: vec![],
        };
        assert!(parse_request(&many).is_err());
        let bad_kind = pb::GetCountsRequest {
            user_ids: vec![1],
            kinds: vec![9],
        };
        assert!(parse_request(&bad_kind).is_err());
        assert!(parse_request(&pb::GetCountsRequest::default()).is_err());
        let thousand = pb::GetCountsRequest {
            user_ids: (1..=1000).collect(),
            kinds: vec![2],
        };
        assert_eq!(
            parse_request(&thousand).unwrap(),
            vec![CounterKind::Followers]
        );
    }
}
