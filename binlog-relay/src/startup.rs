//! `Application`: builds everything the relay needs (pool, preflight, start
//! point, admin listener) and runs it until stopped.

use std::future::Future;
use std::sync::Arc;

use common::admin::{Admin, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::preflight;
use crate::relay::{Relay, RunOptions};
use crate::source::Flavor;
use crate::status::{Shared, probe_lag};

/// A built relay with its admin server, ready to run.
pub struct Application {
    listener: TcpListener,
    port: u16,
    start: Start,
    pool: sqlx::MySqlPool,
    shared: Shared,
    ready: Readiness,
}

/// The relay, or (with `ha` on) what it is built from once it holds the
/// lease: a standby must not pin a start point or read the checkpoint
/// before it leads.
enum Start {
    Now(Box<Relay>),
    OnLease {
        settings: Box<Settings>,
        url: secrecy::SecretString,
        flavor: Flavor,
        opts: RunOptions,
    },
}

impl Application {
    /// Validates settings, runs the preflight checks, pins the start
    /// position and binds the admin port (port 0 picks a free one).
    pub async fn build(settings: Settings, opts: RunOptions) -> Result<Self> {
        settings.validate()?;
        let url = settings.mysql.resolve_url(settings.dev)?;
        let pool = common::db::connect(&url, settings.mysql.max_connections.unwrap_or(3)).await?;
        let facts = preflight::run(&pool, settings.server_id).await?;
        let flavor = facts.flavor.unwrap_or(Flavor::MySql);
        let listener = TcpListener::bind(settings.admin.addr).await?;
        let port = listener.local_addr()?.port();
        let shared = Shared::default();
        shared.update(|s| s.state = "starting".into());
        let ready = Readiness::default();
        let start = if settings.ha.enabled {
            Start::OnLease {
                settings: Box::new(settings),
                url,
                flavor,
                opts,
            }
        } else {
            Start::Now(Box::new(
                Relay::new(
                    settings,
                    url,
                    pool.clone(),
                    flavor,
                    opts,
                    shared.clone(),
                    ready.clone(),
                    None,
                )
                .await?,
            ))
        };
        Ok(Self {
            listener,
            port,
            start,
            pool,
            shared,
            ready,
        })
    }

    /// The admin port actually bound.
    pub fn admin_port(&self) -> u16 {
        self.port
    }

    /// The live status shared with `/status`.
    pub fn shared(&self) -> Shared {
        self.shared.clone()
    }

    /// Runs until `shutdown` resolves, `--until` is reached or a definite error.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopper = {
            let stop_tx = stop_tx.clone();
            tokio::spawn(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
        };
        let shared = self.shared.clone();
        let status = Arc::new(move || shared.document());
        let admin = Admin::new(self.ready.clone()).with_status(status);
        let mut admin_stop = stop_rx.clone();
        let admin_task = tokio::spawn(admin.serve(self.listener, async move {
            while !*admin_stop.borrow() {
                if admin_stop.changed().await.is_err() {
                    break;
                }
            }
        }));
        let lag = tokio::spawn(probe_lag(
            self.pool.clone(),
            self.shared.clone(),
            stop_rx.clone(),
        ));
        let result = match self.start {
            Start::Now(relay) => relay.run(stop_rx).await,
            Start::OnLease {
                settings,
                url,
                flavor,
                opts,
            } => loop {
                // Leads while it holds the lease; a leader that loses it
                // (another relay took over, or `step-down`) waits as a
                // standby again.
                let mut stop = stop_rx.clone();
                let lease =
                    match crate::ha::acquire(&url, &settings.ha, &self.shared, &mut stop).await {
                        Ok(Some(lease)) => lease,
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    };
                let relay = match Relay::new(
                    (*settings).clone(),
                    url.clone(),
                    self.pool.clone(),
                    flavor,
                    opts.clone(),
                    self.shared.clone(),
                    self.ready.clone(),
                    Some(lease),
                )
                .await
                {
                    Ok(relay) => relay,
                    Err(e) => break Err(e),
                };
                match relay.run(stop_rx.clone()).await {
                    Err(Error::Fenced(reason)) if !*stop_rx.borrow() => {
                        tracing::warn!(%reason, "no longer the leader; waiting as a standby again");
                        self.ready.set(false);
                        self.shared.update(|s| s.last_error = Some(reason));
                    }
                    other => break other,
                }
            },
        };
        let _ = stop_tx.send(true);
        stopper.abort();
        let _ = lag.await;
        let _ = admin_task.await;
        self.pool.close().await;
        result
    }
}
