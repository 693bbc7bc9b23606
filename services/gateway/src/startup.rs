//! The REST router, its middleware and the `Application` that serves it.
//!
//! # Middleware (outermost first)
//! 1. metrics: count and time every request by route template;
//! 2. guard: refuse with 429 when `max_in_flight` requests are already being
//!    served, and answer 503 when one takes longer than `request_timeout`;
//! 3. body limit (`body_limit` bytes; larger bodies: 413);
//! 4. on register and login only: the per-client attempt limit
//!    ([`crate::ratelimit`]; 429).
//!
//! Connections (timeouts, the connection cap) are the listener's
//! ([`crate::listener`]).
//!
//! `/readyz` on the admin port is 200 while all three services pass their
//! gRPC health check.
//!
//! Unknown routes answer 404 and known routes with the wrong method 405,
//! both as JSON errors.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use common::admin::{Admin, Readiness};
use service_kit::jwt::JwtCodec;
use service_kit::mesh_auth::MeshAuth;
use service_kit::pool::Pool;
use service_kit::settings::ServiceSettings;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;

use crate::config::Settings;
use crate::edge_cache::EdgeCache;
use crate::error::ApiError;
use crate::listener::Limits;
use crate::metrics::{REQUEST_DURATION_SECONDS, REQUESTS_TOTAL, SHED_TOTAL, TIMEOUTS_TOTAL};
use crate::ratelimit::PerClient;
use crate::state::{AppState, backend};
use crate::{counts, listener, openapi, ratelimit, relations, users};
use proto::count::v1::count_service_client::CountServiceClient;
use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::user::v1::user_service_client::UserServiceClient;

#[derive(Clone)]
struct Guard {
    in_flight: Arc<Semaphore>,
    timeout: Duration,
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let Ok(_permit) = g.in_flight.clone().try_acquire_owned() else {
        metrics::counter!(SHED_TOTAL).increment(1);
        return ApiError::too_many_requests("too many requests, retry later").into_response();
    };
    match tokio::time::timeout(g.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!(TIMEOUTS_TOTAL).increment(1);
            ApiError::unavailable("request timed out").into_response()
        }
    }
}

/// The metric label of an HTTP method: one of the nine standard methods,
/// else `other`. A client may send any token as its method; taken as a
/// label, each new one would add series to `/metrics` without bound.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

async fn track(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let route = matched
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let started = Instant::now();
    // The root of a request's trace (or a child of the client's, when it
    // sent a `traceparent`); exported only with tracing on.
    let span = tracing::info_span!(
        target: common::telemetry::SPANS,
        "http.server",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    common::telemetry::set_parent_from(&span, req.headers());
    let resp = next.run(req).instrument(span.clone()).await;
    span.record("http.response.status_code", resp.status().as_u16());
    if resp.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let status = resp.status().as_u16().to_string();
    metrics::histogram!(REQUEST_DURATION_SECONDS, "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(REQUESTS_TOTAL, "method" => method, "route" => route, "status" => status)
        .increment(1);
    resp
}

/// The REST API over `state`.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let guard_state = Guard {
        in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
        timeout: settings.request_timeout,
    };
    let limiter = PerClient::new(settings.auth_per_client);
    let per_client = || middleware::from_fn_with_state(limiter.clone(), ratelimit::per_client);
    Router::new()
        .route("/v1/users", post(users::register).route_layer(per_client()))
        .route("/v1/sessions", post(users::login).route_layer(per_client()))
        .route(
            "/v1/users/{id}",
            get(users::get_user).patch(users::update_profile),
        )
        .route(
            "/v1/users/{id}/following/{target}",
            get(relations::is_follow)
                .put(relations::follow)
                .delete(relations::unfollow),
        )
        .route("/v1/users/{id}/following", get(relations::following))
        .route("/v1/users/{id}/followers", get(relations::followers))
        .route("/v1/counts", get(counts::get_counts))
        .route("/v1/leaderboard/followers", get(counts::leaderboard))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn_with_state(guard_state, guard))
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// A built, bound, not yet serving gateway.
pub struct Application {
    http: TcpListener,
    admin: TcpListener,
    router: Router,
    limits: Limits,
    /// Channels to the services, for the readiness probe.
    backends: Vec<(&'static str, Pool)>,
}

impl Application {
    /// Creates the gRPC channels (lazily connecting) and binds the listeners.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let jwt = JwtCodec::new(settings.jwt.resolve_secret(settings.dev)?, settings.jwt.ttl);
        let t = settings.request_timeout;
        let d = &settings.discovery;
        let (user, relation, count) = (
            backend("user-service", &settings.user_url, t, d)?,
            backend("relation-service", &settings.relation_url, t, d)?,
            backend("count-service", &settings.count_url, t, d)?,
        );
        let backends = vec![
            ("user.v1.UserService", user.clone()),
            ("relation.v1.RelationService", relation.clone()),
            ("count.v1.CountService", count.clone()),
        ];
        let mesh = MeshAuth::new(settings.mesh.resolve_secret(settings.dev)?);
        let state = AppState {
            users: UserServiceClient::with_interceptor(user, mesh.client()),
            relations: RelationServiceClient::with_interceptor(relation, mesh.client()),
            counts: CountServiceClient::with_interceptor(count, mesh.client()),
            jwt,
            mesh,
            edge: EdgeCache::new(settings.edge_cache_ttl, settings.edge_cache_capacity),
        };
        let router = router(state, &settings);
        let limits = Limits {
            idle_timeout: settings.idle_timeout,
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
        };
        let http = TcpListener::bind(settings.http_addr).await?;
        let admin = TcpListener::bind(settings.admin.addr).await?;
        Ok(Self {
            http,
            admin,
            router,
            limits,
            backends,
        })
    }

    /// The bound REST port.
    pub fn port(&self) -> u16 {
        self.http.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound admin port.
    pub fn admin_port(&self) -> u16 {
        self.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The router, for in-process requests (tests).
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(common::shutdown::signal()).await
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = common::shutdown::Stop::spawn(shutdown);
        let ready = Readiness::default();
        spawn_readiness_probe(self.backends, ready.clone(), stop.wait());
        let admin = tokio::spawn(Admin::new(ready).serve(self.admin, stop.wait()));
        tracing::info!(addr = %self.http.local_addr()?, "gateway serving REST");
        listener::serve(self.http, self.router, self.limits, stop).await?;
        admin.await??;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Marks the gateway ready while every service answers its gRPC health
/// check with SERVING.
fn spawn_readiness_probe(
    backends: Vec<(&'static str, Pool)>,
    ready: Readiness,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let probe = async {
            loop {
                let mut all = true;
                for (service, channel) in &backends {
                    let req = HealthCheckRequest {
                        service: (*service).to_owned(),
                    };
                    let ok = HealthClient::new(channel.clone())
                        .check(req)
                        .await
                        .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32);
                    if !ok {
                        tracing::debug!(service, "backend not ready");
                    }
                    all &= ok;
                }
                ready.set(all);
                tokio::time::sleep(Duration::from_secs(if all { 5 } else { 1 })).await;
            }
        };
        tokio::select! {
            _ = probe => {},
            _ = stopped => ready.set(false),
        }
    });
}
