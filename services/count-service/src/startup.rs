//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (validating, connecting
//! MySQL, binding, serving, draining) is `service_kit::grpc::GrpcApp`'s;
//! this file only builds the service over the pool.

use proto::count::v1::count_service_server::CountServiceServer;
use service_kit::grpc::{GrpcApp, GrpcService};
use service_kit::readpath::{Layers, ReadMetrics};

use crate::config::Settings;
use crate::grpc::CountGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};

/// A built, bound, not yet serving count-service.
pub type Application = GrpcApp<Settings>;

impl GrpcService for Settings {
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Server = CountServiceServer<CountGrpc>;

    /// Connects Redis; reads only.
    async fn connect(self, pool: sqlx::MySqlPool) -> anyhow::Result<Self::Server> {
        let metrics = ReadMetrics::new(READS_TOTAL, REDIS_ERRORS_TOTAL);
        let layers = Layers::connect(pool, &self.service, &self.cache, metrics).await?;
        Ok(CountServiceServer::new(CountGrpc {
            counts: layers.counts(),
            barrier: layers.barrier(&self.service.consistency),
            leaderboard: crate::grpc::Leaderboard::new(&layers),
        }))
    }
}
