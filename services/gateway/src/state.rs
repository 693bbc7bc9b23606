//! What every handler shares: one gRPC client per service (tonic channels
//! are cheap to clone and multiplex), the token checker and the edge cache.

use std::time::Duration;

use service_kit::grpc::TracedChannel;
use service_kit::jwt::JwtCodec;

use crate::edge_cache::EdgeCache;
use proto::count::v1::count_service_client::CountServiceClient;
use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;
use tonic::transport::{Channel, Endpoint};

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    pub users: UserServiceClient<TracedChannel>,
    pub relations: RelationServiceClient<TracedChannel>,
    pub counts: CountServiceClient<TracedChannel>,
    pub jwt: JwtCodec,
    /// Signs the calls made for a user (`service_kit::mesh_auth`).
    pub mesh: service_kit::mesh_auth::MeshAuth,
    /// Anonymous profile reads kept at the edge.
    pub edge: EdgeCache,
}

/// A lazily connecting channel: the gateway starts even when a service is
/// down, and calls to it fail fast with 503 until it is back.
pub fn channel(url: &str, timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy())
}
