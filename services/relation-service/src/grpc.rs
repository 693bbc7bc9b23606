//! The `relation.v1.RelationService` gRPC edge: request checks, calls into
//! the domain modules, and the one place errors become `tonic::Status`.
//!
//! A read carrying `consistency-token` metadata (the gateway forwards the
//! `Consistency-Token` header) waits, bounded, until the cache-syncer's
//! applied watermark covers that write, then reads Redis; past the deadline
//! it reads MySQL (`service_kit::readpath::consistency`). The `read-source`
//! response metadata says which way a token-carrying read went; list pages
//! always say where they were read (`crate::list`).

use pb::relation_service_server::RelationService;
use proto::relation::v1 as pb;
use service_kit::mesh_auth::acting_user;
use tonic::{Request, Response, Status};

use crate::follow::{self, Op};
use crate::list::{Direction, Lists};
use service_kit::readpath::consistency::{self, Barrier};
use service_kit::readpath::counts::CountReader;
use service_kit::readpath::follow_check::FollowChecker;

/// gRPC metadata key of the read-your-writes token.
pub const CONSISTENCY_METADATA: &str = consistency::TOKEN_METADATA;

/// Shared state of the relation service.
#[derive(Clone)]
pub struct RelationGrpc {
    pub pool: sqlx::MySqlPool,
    pub counts: CountReader,
    pub follows: FollowChecker,
    pub lists: Lists,
    pub barrier: Barrier,
    pub write_attempts: u32,
}

impl RelationGrpc {
    async fn write(&self, op: Op, req: pb::FollowRequest) -> Result<pb::FollowResponse, Status> {
        let outcome =
            follow::write(&self.pool, op, req.from_id, req.to_id, self.write_attempts).await?;
        if outcome.changed {
            // Our own local cache only; Redis belongs to the syncer.
            self.follows.invalidate(req.from_id, req.to_id).await;
            self.counts.invalidate(req.from_id).await;
            self.counts.invalidate(req.to_id).await;
            self.lists
                .invalidate(Direction::Following, req.from_id)
                .await;
            self.lists.invalidate(Direction::Followers, req.to_id).await;
        }
        Ok(pb::FollowResponse {
            following: outcome.following,
            changed: outcome.changed,
            consistency_token: outcome.consistency_token,
        })
    }

    /// A list page, tagged with where it was read.
    async fn list(
        &self,
        dir: Direction,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        if req.get_ref().user_id == 0 {
            return Err(Status::invalid_argument("user_id is required"));
        }
        let mode = self.barrier.for_request(&req).await?;
        let req = req.into_inner();
        let (page, source) = self
            .lists
            .page(dir, req.user_id, &req.cursor, req.limit, mode)
            .await?;
        metrics::counter!(crate::metrics::LIST_PAGES_TOTAL, "list" => dir.name()).increment(1);
        let mut resp = Response::new(pb::ListResponse {
            items: page
                .items
                .into_iter()
                .map(|e| pb::Edge {
                    user_id: e.user_id,
                    followed_at_us: e.followed_at_us,
                })
                .collect(),
            next_cursor: page.next.map(|c| c.encode()).unwrap_or_default(),
        });
        resp.metadata_mut().insert(
            consistency::READ_SOURCE_HEADER,
            tonic::metadata::MetadataValue::from_static(source.as_str()),
        );
        Ok(resp)
    }
}

#[tonic::async_trait]
impl RelationService for RelationGrpc {
    #[tracing::instrument(target = "sluice_trace", skip_all, fields(from = req.get_ref().from_id, to = req.get_ref().to_id))]
    async fn follow(
        &self,
        req: Request<pb::FollowRequest>,
    ) -> Result<Response<pb::FollowResponse>, Status> {
        // The follower is the user the gateway vouches for, never the body alone.
        acting_user(&req, req.get_ref().from_id)?;
        self.write(Op::Follow, req.into_inner())
            .await
            .map(Response::new)
    }

    #[tracing::instrument(target = "sluice_trace", skip_all, fields(from = req.get_ref().from_id, to = req.get_ref().to_id))]
    async fn unfollow(
        &self,
        req: Request<pb::FollowRequest>,
    ) -> Result<Response<pb::FollowResponse>, Status> {
        acting_user(&req, req.get_ref().from_id)?;
        self.write(Op::Unfollow, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn following_list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.list(Direction::Following, req).await
    }

    async fn follower_list(
        &self,
        req: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        self.list(Direction::Followers, req).await
    }

    async fn is_follow(
        &self,
        req: Request<pb::IsFollowRequest>,
    ) -> Result<Response<pb::IsFollowResponse>, Status> {
        let r = req.get_ref();
        if r.from_id == 0 || r.to_id == 0 {
            return Err(Status::invalid_argument("from_id and to_id are required"));
        }
        let mode = self.barrier.for_request(&req).await?;
        let r = req.into_inner();
        let following = self
            .follows
            .is_follow(r.from_id, r.to_id, mode)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(consistency::tag(
            Response::new(pb::IsFollowResponse { following }),
            mode,
        ))
    }

    async fn get_relation_count(
        &self,
        req: Request<pb::GetRelationCountRequest>,
    ) -> Result<Response<pb::GetRelationCountResponse>, Status> {
        if req.get_ref().user_id == 0 {
            return Err(Status::invalid_argument("user_id is required"));
        }
        let mode = self.barrier.for_request(&req).await?;
        let c = self
            .counts
            .get(req.get_ref().user_id, mode)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(consistency::tag(
            Response::new(pb::GetRelationCountResponse {
                follow_count: c.following,
                follower_count: c.followers,
            }),
            mode,
        ))
    }
}
