//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. `Application::build` binds both ports (0
//! picks a free one, as tests do); `run_until_stopped` serves until SIGINT/
//! SIGTERM, draining in-flight requests.

use std::future::Future;
use std::net::SocketAddr;

use common::admin::Readiness;
use common::grpc::Serve;
use proto::count::v1::count_service_server::CountServiceServer;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::grpc::CountGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use common::readpath::Layers;
use common::readpath::redis_cache::RedisCache;

/// A built, bound, not yet serving count-service.
pub struct Application {
    grpc: TcpListener,
    admin: TcpListener,
    service: CountGrpc,
    pool: sqlx::MySqlPool,
    ready: Readiness,
}

impl Application {
    /// Connects to MySQL and Redis and binds the listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = common::db::connect(&url, settings.mysql.max_connections.unwrap_or(32)).await?;
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
        let service = CountGrpc {
            counts: layers.counts(),
            barrier: layers.barrier(&settings.consistency),
        };
        let grpc = TcpListener::bind(settings.grpc_addr).await?;
        let admin = TcpListener::bind(settings.admin.addr).await?;
        Ok(Self {
            grpc,
            admin,
            service,
            pool,
            ready: Readiness::default(),
        })
    }

    /// The bound gRPC port.
    pub fn port(&self) -> u16 {
        self.grpc.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Serves until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let serve = Serve {
            name: "count-service",
            descriptors: proto::FILE_DESCRIPTOR_SET,
            pool: self.pool,
            grpc: self.grpc,
            admin: self.admin,
            ready: self.ready,
        };
        serve
            .run(CountServiceServer::new(self.service), shutdown)
            .await
    }
}
