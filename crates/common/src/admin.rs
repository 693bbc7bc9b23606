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
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Buckets of every `*_seconds` histogram: 100 µs (a cache hit) to 30 s (a
/// stuck dependency).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Buckets of `*_size` histograms (batch sizes).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0,
];

/// Produces the `/status` document.
pub type StatusFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // `*_seconds` and `*_size` histograms as Prometheus histograms
        // (`_bucket` series that aggregate across processes), not summaries.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
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
