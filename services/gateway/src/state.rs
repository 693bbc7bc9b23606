//! What every handler shares: one gRPC client per service (tonic channels
//! are cheap to clone and multiplex), the token checker and the edge cache.

use std::time::Duration;

use service_kit::jwt::JwtCodec;
use service_kit::mesh_auth::MeshClient;
use service_kit::pool::Pool;

use crate::edge_cache::EdgeCache;
use proto::count::v1::count_service_client::CountServiceClient;
use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;
use tonic::transport::{Channel, Endpoint};

/// A service's instances, each call signed for the mesh.
pub type Backend = tonic::service::interceptor::InterceptedService<Pool, MeshClient>;

/// Shared handler state.
#[derive(Clone)]
pub struct AppState {
    pub users: UserServiceClient<Backend>,
    pub relations: RelationServiceClient<Backend>,
    pub counts: CountServiceClient<Backend>,
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

/// The channel to `service`'s instances, a [`Pool`] (round-robin; a call
/// an instance refused goes to another):
/// - with etcd configured, over the instances registered there, following
///   registrations and withdrawals (`service_kit::discovery`);
/// - else over the static `urls` (one, or several comma-separated).
pub fn backend(
    service: &'static str,
    urls: &str,
    timeout: Duration,
    discovery: &service_kit::discovery::DiscoverySettings,
) -> Result<Pool, tonic::transport::Error> {
    let pool = Pool::new(service);
    if discovery.enabled() {
        service_kit::discovery::spawn_watch(discovery.clone(), service, pool.clone(), move |url| {
            channel(url, timeout).ok()
        });
        return Ok(pool);
    }
    for url in urls.split(',').map(str::trim) {
        pool.insert(url, channel(url, timeout)?);
    }
    Ok(pool)
}
