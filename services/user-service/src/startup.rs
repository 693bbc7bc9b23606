//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (binding, serving,
//! draining) is `service_kit::grpc::GrpcApp`'s; this file only connects what
//! the service needs.

use std::sync::Arc;

use proto::user::v1::user_service_server::UserServiceServer;
use service_kit::grpc::{GrpcApp, GrpcService, Parts};
use service_kit::jwt::JwtCodec;

use crate::account::Accounts;
use crate::config::Settings;
use crate::grpc::UserGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use crate::profile::Profiles;
use service_kit::readpath::{LayerSettings, Layers};

/// The user-service as the shared gRPC skeleton serves it.
pub struct UserService;

/// A built, bound, not yet serving user-service.
pub type Application = GrpcApp<UserService>;

impl GrpcService for UserService {
    const NAME: &'static str = "user-service";
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Settings = Settings;
    type Server = UserServiceServer<UserGrpc>;

    /// Connects to MySQL and Redis.
    async fn connect(settings: Settings) -> anyhow::Result<Parts<Self::Server>> {
        settings.validate()?;
        let mesh = settings.mesh.auth(settings.dev)?;
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = common::db::connect(&url, settings.mysql.max_connections.unwrap_or(32)).await?;
        let c = &settings.cache;
        let jwt = JwtCodec::new(settings.jwt.resolve_secret(settings.dev)?, settings.jwt.ttl);
        let layers = Layers::connect(
            pool.clone(),
            LayerSettings {
                dev: settings.dev,
                redis: &settings.redis,
                redis_timeout: c.redis_timeout,
                capacity: c.capacity,
                ttl: c.ttl,
                reads_metric: READS_TOTAL,
                redis_errors_metric: REDIS_ERRORS_TOTAL,
            },
        )
        .await?;
        let service = UserGrpc {
            accounts: Arc::new(Accounts::new(pool.clone(), &settings.password)?),
            jwt,
            profiles: Profiles::new(
                pool.clone(),
                layers.redis.clone(),
                layers.keys.clone(),
                c.capacity,
                c.profile_ttl,
                c.negative_ttl,
                c.redis_profile_ttl,
            ),
            counts: layers.counts(),
            follows: layers.follows(),
            barrier: layers.barrier(&settings.consistency),
            pool,
        };
        Ok(Parts {
            pool: service.pool.clone(),
            server: UserServiceServer::new(service),
            grpc_addr: settings.grpc_addr,
            admin_addr: settings.admin.addr,
            limits: settings.grpc,
            mesh,
        })
    }
}
