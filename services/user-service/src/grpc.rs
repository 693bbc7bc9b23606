//! The `user.v1.UserService` gRPC edge.
//!
//! A read carrying `consistency-token` metadata waits, bounded, for the
//! cache-syncer's watermark to cover that write, then reads counters and
//! IsFollow from Redis (else MySQL); the profile itself is read from MySQL
//! (its Redis entry is filled cache-aside, so a racing reader could put an
//! older copy back after the syncer's invalidation). BatchGetUsers takes at
//! most [`MAX_BATCH`] ids.

use std::collections::HashMap;
use std::sync::Arc;

use pb::user_service_server::UserService;
use proto::user::v1 as pb;
use service_kit::jwt::JwtCodec;
use tonic::{Request, Response, Status};

use crate::account::Accounts;
use crate::error::{Error, Result};
use crate::metrics::{LOGINS_TOTAL, REGISTRATIONS_TOTAL};
use crate::profile::{Profile, ProfileChange, Profiles};
use service_kit::readpath::consistency::{self, Barrier, ReadMode};
use service_kit::readpath::counts::{CountReader, UserCounts};
use service_kit::readpath::follow_check::FollowChecker;

/// Most ids one BatchGetUsers call may name.
pub const MAX_BATCH: usize = 100;

/// gRPC metadata key of the read-your-writes token.
pub const CONSISTENCY_METADATA: &str = consistency::TOKEN_METADATA;

/// Shared state of the user service.
#[derive(Clone)]
pub struct UserGrpc {
    pub pool: sqlx::MySqlPool,
    /// Register and Login (bounded hashing, per-username limit).
    pub accounts: Arc<Accounts>,
    pub jwt: JwtCodec,
    pub profiles: Profiles,
    pub counts: CountReader,
    pub follows: FollowChecker,
    pub barrier: Barrier,
}

/// The `outcome` label of a refused Register or Login.
fn refusal_outcome(e: &Error) -> Option<&'static str> {
    match e {
        Error::RateLimited(_) => Some("limited"),
        Error::Busy { .. } => Some("busy"),
        _ => None,
    }
}

fn to_pb(p: &Profile, c: UserCounts, is_follow: bool) -> pb::User {
    pb::User {
        id: p.id,
        username: p.username.clone(),
        avatar: p.avatar.clone(),
        background_image: p.background_image.clone(),
        signature: p.signature.clone(),
        follow_count: c.following,
        follower_count: c.followers,
        is_follow,
        created_at_ms: p.created_at_ms,
    }
}

impl UserGrpc {
    /// One user with its counters and `is_follow` for `viewer`. Counters
    /// come from the cache layers (local, Redis), else from the `user` row
    /// read with the profile (Redis down, user not synced yet: one query for
    /// both); with a token the watermark covered (`Synced`) from that row
    /// (exact then); with one it did not (`Primary`) from `counter`.
    async fn get_user_inner(&self, user_id: u64, viewer: u64, mode: ReadMode) -> Result<pb::User> {
        let fresh = mode != ReadMode::Cached;
        if user_id == 0 {
            return Err(Error::InvalidArgument("user_id is required".into()));
        }
        let not_found = || Error::NotFound(format!("user {user_id} not found"));
        let is_follow = async {
            if viewer == 0 || viewer == user_id {
                Ok(false)
            } else {
                Ok(self.follows.is_follow(viewer, user_id, mode).await?)
            }
        };
        let counts = async {
            match mode {
                ReadMode::Cached => Ok(self.counts.get_cached(user_id).await),
                ReadMode::Synced => Ok(None),
                ReadMode::Primary => Ok(Some(self.counts.get(user_id, mode).await?)),
            }
        };
        let (profile, counts, is_follow) =
            tokio::try_join!(self.profiles.get(user_id, fresh), counts, is_follow)?;
        let profile = profile.ok_or_else(not_found)?;
        let counts = match counts {
            Some(c) => c,
            None => self
                .profiles
                .row_counts(user_id)
                .await?
                .ok_or_else(not_found)?,
        };
        Ok(to_pb(&profile, counts, is_follow))
    }

    async fn batch_inner(&self, ids: &[u64], viewer: u64, mode: ReadMode) -> Result<Vec<pb::User>> {
        let fresh = mode != ReadMode::Cached;
        if ids.len() > MAX_BATCH {
            return Err(Error::InvalidArgument(format!(
                "at most {MAX_BATCH} user_ids per call"
            )));
        }
        let mut unique: Vec<u64> = Vec::with_capacity(ids.len());
        for &id in ids {
            if id != 0 && !unique.contains(&id) {
                unique.push(id);
            }
        }
        let profiles =
            futures::future::try_join_all(unique.iter().map(|&id| self.profiles.get(id, fresh)))
                .await?;
        let found: Vec<_> = profiles.into_iter().flatten().collect();
        let found_ids: Vec<u64> = found.iter().map(|p| p.id).collect();
        // As for one user (see `get_user_inner`): the cache layers, else
        // the user rows read with the profiles (or in one query).
        let counts = match mode {
            ReadMode::Cached => {
                let mut counts = self.counts.get_many_cached(&found_ids).await;
                let rest: Vec<u64> = found_ids
                    .iter()
                    .copied()
                    .filter(|id| !counts.contains_key(id))
                    .collect();
                if !rest.is_empty() {
                    counts.extend(self.profiles.row_counts_many(&rest).await?);
                }
                counts
            }
            ReadMode::Synced => self.profiles.row_counts_many(&found_ids).await?,
            ReadMode::Primary => self.counts.get_many(&found_ids, mode).await?,
        };
        let follows: HashMap<u64, bool> = if viewer == 0 {
            HashMap::new()
        } else {
            self.follows
                .is_follow_many(viewer, &found_ids, mode)
                .await?
        };
        Ok(found
            .iter()
            .map(|p| {
                let c = counts.get(&p.id).copied().unwrap_or_default();
                let f = p.id != viewer && follows.get(&p.id).copied().unwrap_or(false);
                to_pb(p, c, f)
            })
            .collect())
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    #[tracing::instrument(target = "sluice_trace", skip_all)]
    async fn register(
        &self,
        req: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = req.into_inner();
        let result = self.accounts.register(&r.username, &r.password).await;
        let outcome = match &result {
            Ok(_) => "created",
            Err(Error::UsernameTaken) => "taken",
            Err(Error::InvalidArgument(_)) => "invalid",
            Err(e) => refusal_outcome(e).unwrap_or("error"),
        };
        metrics::counter!(REGISTRATIONS_TOTAL, "outcome" => outcome).increment(1);
        let id = result?;
        Ok(Response::new(pb::RegisterResponse {
            id,
            username: r.username,
            token: self.jwt.issue(id),
        }))
    }

    #[tracing::instrument(target = "sluice_trace", skip_all)]
    async fn login(
        &self,
        req: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let r = req.into_inner();
        let result = self.accounts.login(&r.username, &r.password).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Error::BadCredentials) => "denied",
            Err(e) => refusal_outcome(e).unwrap_or("error"),
        };
        metrics::counter!(LOGINS_TOTAL, "outcome" => outcome).increment(1);
        let user_id = result?;
        Ok(Response::new(pb::LoginResponse {
            user_id,
            token: self.jwt.issue(user_id),
        }))
    }

    #[tracing::instrument(target = "sluice_trace", skip_all, fields(user_id = req.get_ref().user_id))]
    async fn get_user(
        &self,
        req: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        if req.get_ref().user_id == 0 {
            return Err(Error::InvalidArgument("user_id is required".into()).into());
        }
        let mode = self.barrier.for_request(&req).await?;
        let r = req.into_inner();
        let user = self.get_user_inner(r.user_id, r.viewer_id, mode).await?;
        Ok(consistency::tag(
            Response::new(pb::GetUserResponse { user: Some(user) }),
            mode,
        ))
    }

    #[tracing::instrument(target = "sluice_trace", skip_all, fields(n = req.get_ref().user_ids.len()))]
    async fn batch_get_users(
        &self,
        req: Request<pb::BatchGetUsersRequest>,
    ) -> Result<Response<pb::BatchGetUsersResponse>, Status> {
        let mode = self.barrier.for_request(&req).await?;
        let r = req.into_inner();
        let users = self.batch_inner(&r.user_ids, r.viewer_id, mode).await?;
        Ok(consistency::tag(
            Response::new(pb::BatchGetUsersResponse { users }),
            mode,
        ))
    }

    #[tracing::instrument(target = "sluice_trace", skip_all, fields(user_id = req.get_ref().user_id))]
    async fn update_profile(
        &self,
        req: Request<pb::UpdateProfileRequest>,
    ) -> Result<Response<pb::UpdateProfileResponse>, Status> {
        // Whose profile changes comes from the gateway's proof, not the body alone.
        service_kit::mesh_auth::acting_user(&req, req.get_ref().user_id)?;
        let r = req.into_inner();
        if r.user_id == 0 {
            return Err(Error::InvalidArgument("user_id is required".into()).into());
        }
        let change = ProfileChange {
            avatar: r.avatar,
            signature: r.signature,
            background_image: r.background_image,
        };
        let (profile, token) = self.profiles.update(r.user_id, &change).await?;
        let counts = self
            .counts
            .get(r.user_id, ReadMode::Primary)
            .await
            .map_err(crate::error::Error::from)?;
        Ok(Response::new(pb::UpdateProfileResponse {
            user: Some(to_pb(&profile, counts, false)),
            consistency_token: token,
        }))
    }
}
