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
use service_kit::readpath::{LayerSettings, Layers};

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
        let mesh = settings.mesh.auth(settings.dev)?;
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = crate::follow::connect_pool(&url, settings.mysql.max_connections.unwrap_or(32))
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to mysql: {e}"))?;
        let c = &settings.cache;
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
