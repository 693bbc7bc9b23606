//! Wiring: pools, caches, listeners, the gRPC server (with reflection and
//! health) and the admin server. `Application::build` binds both ports (0
//! picks a free one, as tests do); `run_until_stopped` serves until SIGINT/
//! SIGTERM, draining in-flight requests.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use common::admin::{Admin, Readiness};
use proto::count::v1::count_service_server::CountServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::config::Settings;
use crate::grpc::CountGrpc;
use crate::metrics::{READS_TOTAL, REDIS_ERRORS_TOTAL};
use common::readpath::counts::CountReader;
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
        let keys = settings.redis.keys();
        let c = &settings.cache;
        let service = CountGrpc {
            counts: CountReader::new(pool.clone(), redis, keys, c.capacity, c.ttl, READS_TOTAL),
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
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };

        let (health, health_svc) = tonic_health::server::health_reporter();
        health.set_serving::<CountServiceServer<CountGrpc>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;

        spawn_readiness_probe(self.pool.clone(), self.ready.clone(), stopped());
        let admin = Admin::new(self.ready.clone()).serve(self.admin, stopped());
        let admin = tokio::spawn(admin);

        tracing::info!(addr = %self.grpc.local_addr()?, "count-service serving gRPC");
        tonic::transport::Server::builder()
            .add_service(health_svc)
            .add_service(reflection)
            .add_service(CountServiceServer::new(self.service))
            .serve_with_incoming_shutdown(TcpIncoming::from(self.grpc), stopped())
            .await?;
        admin.await??;
        tracing::info!("count-service stopped");
        Ok(())
    }
}

/// Marks the service ready while MySQL answers `SELECT 1`.
fn spawn_readiness_probe(
    pool: sqlx::MySqlPool,
    ready: Readiness,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let probe = async {
            loop {
                let ok = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
                ready.set(ok);
                tokio::time::sleep(Duration::from_secs(if ok { 5 } else { 1 })).await;
            }
        };
        tokio::select! {
            _ = probe => {},
            _ = stopped => ready.set(false),
        }
    });
}
