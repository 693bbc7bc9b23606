//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (validating, connecting
//! MySQL, binding, serving, draining) is `service_kit::grpc::GrpcApp`'s;
//! this file only builds the service over the pool.

use std::sync::Arc;

use proto::user::v1::user_service_server::UserServiceServer;
use service_kit::grpc::{GrpcApp, GrpcService};
use service_kit::jwt::JwtCodec;
use service_kit::readpath::{Layers, ReadMetrics};

use crate::account::Accounts;
use crate::config::Settings;
use crate::grpc::UserGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use crate::profile::Profiles;

/// A built, bound, not yet serving user-service.
pub type Application = GrpcApp<Settings>;

impl GrpcService for Settings {
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Server = UserServiceServer<UserGrpc>;

    /// Connects Redis, sets up password hashing and token signing.
    async fn connect(self, pool: sqlx::MySqlPool) -> anyhow::Result<Self::Server> {
        let c = &self.cache;
        let jwt = JwtCodec::new(self.jwt.resolve_secret(self.service.dev)?, self.jwt.ttl);
        let metrics = ReadMetrics::new(READS_TOTAL, REDIS_ERRORS_TOTAL);
        let layers = Layers::connect(pool.clone(), &self.service, &c.read_path(), metrics).await?;
        Ok(UserServiceServer::new(UserGrpc {
            accounts: Arc::new(Accounts::new(pool.clone(), &self.password)?),
            jwt,
            profiles: Profiles::new(pool.clone(), layers.redis.clone(), layers.keys.clone(), c),
            counts: layers.counts(),
            follows: layers.follows(),
            barrier: layers.barrier(&self.service.consistency),
            pool,
        }))
    }
}
