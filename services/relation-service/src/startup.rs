//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (binding, serving,
//! draining) is `service_kit::grpc::GrpcApp`'s; this file only connects what
//! the service needs.

use proto::relation::v1::relation_service_server::RelationServiceServer;
use service_kit::grpc::{GrpcApp, GrpcService, Parts};

use crate::config::Settings;
use crate::grpc::RelationGrpc;
use crate::list::FirstPages;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use service_kit::readpath::Layers;
use service_kit::readpath::redis_cache::RedisCache;

/// The relation-service as the shared gRPC skeleton serves it.
pub struct RelationService;

/// A built, bound, not yet serving relation-service.
pub type Application = GrpcApp<RelationService>;

impl GrpcService for RelationService {
    const NAME: &'static str = "relation-service";
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Settings = Settings;
    type Server = RelationServiceServer<RelationGrpc>;

    /// Connects to MySQL and Redis.
    async fn connect(settings: Settings) -> anyhow::Result<Parts<Self::Server>> {
        settings.validate()?;
        let mesh =
            service_kit::mesh_auth::MeshAuth::new(settings.mesh.resolve_secret(settings.dev)?);
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = crate::follow::connect_pool(&url, settings.mysql.max_connections.unwrap_or(32))
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to mysql: {e}"))?;
        let redis_url = settings.redis.resolve_url(settings.dev)?;
        let redis =
            RedisCache::connect(&redis_url, settings.cache.redis_timeout, REDIS_ERRORS_TOTAL).await;
        let c = &settings.cache;
        let layers = Layers {
            pool: pool.clone(),
            redis,
            keys: settings.redis.keys(),
            capacity: c.capacity,
            ttl: c.ttl,
            reads_metric: READS_TOTAL,
        };
        let service = RelationGrpc {
            counts: layers.counts(),
            follows: layers.follows(),
            barrier: layers.barrier(&settings.consistency),
            first_pages: FirstPages::new(pool.clone(), c.capacity, c.ttl),
            pool,
            write_attempts: settings.write_attempts,
        };
        Ok(Parts {
            pool: service.pool.clone(),
            server: RelationServiceServer::new(service),
            grpc_addr: settings.grpc_addr,
            admin_addr: settings.admin.addr,
            limits: settings.grpc,
            mesh,
        })
    }
}
