//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (binding, serving,
//! draining) is `service_kit::grpc::GrpcApp`'s; this file only connects what
//! the service needs.

use proto::count::v1::count_service_server::CountServiceServer;
use service_kit::grpc::{GrpcApp, GrpcService, Parts};

use crate::config::Settings;
use crate::grpc::CountGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use service_kit::readpath::{LayerSettings, Layers};

/// The count-service as the shared gRPC skeleton serves it.
pub struct CountService;

/// A built, bound, not yet serving count-service.
pub type Application = GrpcApp<CountService>;

impl GrpcService for CountService {
    const NAME: &'static str = "count-service";
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Settings = Settings;
    type Server = CountServiceServer<CountGrpc>;

    /// Connects to MySQL and Redis.
    async fn connect(settings: Settings) -> anyhow::Result<Parts<Self::Server>> {
        settings.validate()?;
        let mesh = settings.mesh.auth(settings.dev)?;
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = common::db::connect(&url, settings.mysql.max_connections.unwrap_or(32)).await?;
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
        let service = CountGrpc {
            counts: layers.counts(),
            barrier: layers.barrier(&settings.consistency),
        };
        Ok(Parts {
            pool,
            server: CountServiceServer::new(service),
            grpc_addr: settings.grpc_addr,
            admin_addr: settings.admin.addr,
            limits: settings.grpc,
            mesh,
        })
    }
}
