//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. The skeleton (validating, connecting
//! MySQL, binding, serving, draining) is `service_kit::grpc::GrpcApp`'s;
//! this file only builds the service over the pool.

use proto::relation::v1::relation_service_server::RelationServiceServer;
use secrecy::SecretString;
use service_kit::grpc::{GrpcApp, GrpcService};
use service_kit::readpath::{Layers, ReadMetrics};
use sqlx::MySqlPool;

use crate::config::Settings;
use crate::grpc::RelationGrpc;
use crate::list::Lists;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};

/// A built, bound, not yet serving relation-service.
pub type Application = GrpcApp<Settings>;

impl GrpcService for Settings {
    const DESCRIPTORS: &'static [u8] = proto::FILE_DESCRIPTOR_SET;
    type Server = RelationServiceServer<RelationGrpc>;

    /// Sessions at READ COMMITTED ([`common::db::connect_read_committed`]):
    /// no gap locks, so two first follows of different pairs never block
    /// each other on index gaps.
    async fn connect_pool(url: &SecretString, max_connections: u32) -> anyhow::Result<MySqlPool> {
        Ok(common::db::connect_read_committed(url, max_connections).await?)
    }

    /// Connects Redis; follows are written in MySQL only.
    async fn connect(self, pool: MySqlPool) -> anyhow::Result<Self::Server> {
        let c = &self.cache;
        let metrics = ReadMetrics::new(READS_TOTAL, REDIS_ERRORS_TOTAL);
        let layers = Layers::connect(pool.clone(), &self.service, c, metrics).await?;
        Ok(RelationServiceServer::new(RelationGrpc {
            counts: layers.counts(),
            follows: layers.follows(),
            barrier: layers.barrier(&self.service.consistency),
            lists: Lists::new(&layers),
            pool,
            write_attempts: self.write_attempts,
        }))
    }
}
