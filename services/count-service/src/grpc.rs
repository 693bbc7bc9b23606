//! The `count.v1.CountService` gRPC edge.
//!
//! GetCounts answers up to [`MAX_USERS`] users × the requested kinds (empty =
//! every known kind) in request order, duplicates kept, missing counters 0.
//! With `consistency-token` metadata it waits (bounded) for the syncer's
//! watermark to cover that write, then reads Redis, else MySQL.
//! AwaitApplied exposes that wait on its own.

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
