//! The admin HTTP server every binary runs on its own port: `/metrics`
//! (Prometheus text), `/healthz` (the process is alive), `/readyz` (it can do
//! its job: dependencies reachable, caught up enough), and `/status` (a JSON
//! document of the binary's own: positions, lag, watermark).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Produces the `/status` document.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed; then ours just renders nothing.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Shared readiness flag: set by the binary once its dependencies answer.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the admin server serves.
#[derive(Clone)]
pub struct Admin {
    pub ready: Readiness,
    pub status: Option<StatusFn>,
}

impl Admin {
    pub fn new(ready: Readiness) -> Self {
        Self {
            ready,
            status: None,
        }
    }

    pub fn with_status(mut self, f: StatusFn) -> Self {
        self.status = Some(f);
        self
    }

    /// The admin routes, to serve on their own or merge into another router.
    pub fn router(self) -> Router {
        let handle = prometheus();
        let ready = self.ready.clone();
        let status = self.status.clone();
        Router::new()
            .route(
                "/metrics",
                get(move || async move {
                    handle.run_upkeep();
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(move || async move {
                    if ready.get() {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                    }
                }),
            )
            .route(
                "/status",
                get(move || async move {
                    match &status {
                        Some(f) => axum::Json(f()).into_response(),
                        None => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body("no status for this binary".into())
                            .unwrap_or_default(),
                    }
                }),
            )
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}
