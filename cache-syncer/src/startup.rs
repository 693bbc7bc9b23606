//! Building the syncer from settings and running it with its admin server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::admin::{Admin, Readiness};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::apply::Applier;
use crate::config::Settings;
use crate::consumer::{StatusHandle, SyncStatus, Syncer};
use crate::error::{Error, Result};

/// How long one Redis call of the syncer, `rebuild` or `verify` may take.
/// Their calls are whole batches (a MULTI/EXEC of thousands of writes, a
/// chunk of buckets); redis-rs's 500 ms default timed such calls out on a
/// loaded 2-core machine and the retries, each re-sending the batch, kept
/// Redis busier still. A dead Redis is still noticed within this bound.
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects MySQL (pool, READ COMMITTED) and Redis (multiplexed,
/// reconnecting; a second connection for the fenced writes), a single
/// server or a cluster.
pub async fn connect(settings: &Settings) -> Result<Applier> {
    let url = settings.mysql.resolve_url(settings.dev)?;
    // READ COMMITTED: the user-column UPDATE reads `counter` without
    // locking it (see `apply`).
    let pool =
        common::db::connect_read_committed(&url, settings.mysql.max_connections.unwrap_or(4))
            .await?;
    let redis_url = settings.redis.resolve_url(settings.dev)?;
    let open = || {
        common::redis_conn::connect(
            redis_url.expose_secret(),
            settings.redis.cluster,
            Duration::from_secs(2),
            REDIS_RESPONSE_TIMEOUT,
        )
    };
    let redis = open().await?;
    // On a cluster no WATCH is used: one handle serves both.
    let fence = if redis.is_cluster() {
        redis.clone()
    } else {
        open().await?
    };
    Ok(Applier {
        redis,
        fence,
        pool,
        keys: settings.redis.keys(),
        list_cap: settings.list_cap,
    })
}

/// A built, not yet running syncer with its admin listener bound.
pub struct Application {
    syncer: Syncer,
    admin: Admin,
    listener: TcpListener,
    status: StatusHandle,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self> {
        settings.validate()?;
        crate::metrics::describe();
        let applier = connect(&settings).await?;
        let status: StatusHandle = Arc::new(Mutex::new(SyncStatus::default()));
        let listener = TcpListener::bind(settings.admin.addr).await.map_err(|e| {
            Error::Other(format!(
                "cannot bind admin port {}: {e}",
                settings.admin.addr
            ))
        })?;
        let syncer = Syncer::new(settings, applier, Arc::clone(&status)).await?;
        let ready = Readiness::default();
        ready.set(true);
        let st = Arc::clone(&status);
        let admin = Admin::new(ready).with_status(Arc::new(move || {
            st.lock()
                .map(|s| serde_json::to_value(&*s).unwrap_or_default())
                .unwrap_or_default()
        }));
        Ok(Self {
            syncer,
            admin,
            listener,
            status,
        })
    }

    /// Where the admin server listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Shared status (what `/status` serves).
    pub fn status(&self) -> StatusHandle {
        Arc::clone(&self.status)
    }

    /// Consumes until `shutdown` resolves, then commits and stops the admin server.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut admin_rx = rx.clone();
        let admin = tokio::spawn(self.admin.serve(self.listener, async move {
            let _ = admin_rx.wait_for(|v| *v).await;
        }));
        tracing::info!("cache-syncer running");
        let res = self.syncer.run(shutdown).await;
        let _ = tx.send(true);
        let _ = admin.await;
        res
    }
}
