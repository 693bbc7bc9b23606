//! What every gRPC service of sluice serves the same way: the standard
//! health service, server reflection (grpcurl and ghz work unchanged), RED
//! metrics for every method, a readiness probe on MySQL, the admin port, and
//! a graceful stop that drains in-flight calls.
//!
//! # Limits ([`GrpcServerSettings`])
//! At most `max_connections` connections are open: at the cap the accept
//! loop waits for a slot ([`capped`]), so new clients queue in the kernel
//! instead of the server taking on more than it was sized for. Every
//! connection lives at most `max_connection_age` (+ grace), is pinged while
//! idle (a dead peer goes after `keepalive_timeout`), and serves at most
//! `concurrency_per_connection` calls at once, each for at most `timeout`.
//! So a slot held by a client that never speaks HTTP/2 frees up after
//! `max_connection_age + max_connection_age_grace` at the latest.
//!
//! Metrics (labels are names, never ids):
//! - `grpc_server_requests_total{service, method, code}` — `code` is the
//!   gRPC status name (`OK`, `NotFound`, …);
//! - `grpc_server_request_duration_seconds{service, method}`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use secrecy::SecretString;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tracing::Instrument;

use common::admin::{Admin, Readiness};
use common::config::GrpcServerSettings;

use crate::conn::Attached;
use crate::settings::{GrpcSettings, ServiceSettings};

/// gRPC calls served, by service, method and status code.
pub const REQUESTS_TOTAL: &str = "grpc_server_requests_total";
/// gRPC call duration, by service and method.
pub const REQUEST_DURATION_SECONDS: &str = "grpc_server_request_duration_seconds";

/// Metadata of a refusal (RESOURCE_EXHAUSTED, UNAVAILABLE) that says after
/// how many whole seconds the client may try again; the gateway turns it
/// into a `Retry-After` header.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

/// A status refusing a call for now, with [`RETRY_AFTER_METADATA`] set.
pub fn refusal(
    code: tonic::Code,
    message: impl Into<String>,
    retry_after_secs: u64,
) -> tonic::Status {
    let mut status = tonic::Status::new(code, message);
    status.metadata_mut().insert(
        RETRY_AFTER_METADATA,
        tonic::metadata::MetadataValue::from(retry_after_secs),
    );
    status
}

/// The [`RETRY_AFTER_METADATA`] of a status, in seconds, if it has one.
pub fn retry_after(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER_METADATA)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A service ready to serve: its name (for logs), the encoded descriptor
/// set of its protos (for reflection), its listeners and the MySQL pool its
/// readiness depends on.
pub struct Serve {
    pub name: &'static str,
    pub descriptors: &'static [u8],
    pub grpc: TcpListener,
    pub admin: TcpListener,
    pub pool: sqlx::MySqlPool,
    pub ready: Readiness,
    pub limits: GrpcServerSettings,
    /// Checks every call of the service (health and reflection stay open).
    pub mesh: crate::mesh_auth::MeshAuth,
    /// Where the instance registers (nowhere when etcd is not configured).
    pub discovery: crate::discovery::DiscoverySettings,
}

impl Serve {
    /// Serves `service` until `shutdown` resolves, then drains.
    pub async fn run<S>(
        self,
        service: S,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()>
    where
        S: GrpcServer,
    {
        let stop = common::shutdown::Stop::spawn(shutdown);

        describe();
        let (health, health_svc) = tonic_health::server::health_reporter();
        // NOT_SERVING until the first readiness check finds MySQL.
        health.set_not_serving::<S>().await;
        // Reflection lists this port's service only (plus health and
        // reflection themselves), in both protocol versions: v1 (grpcurl)
        // and v1alpha (grpcio-reflection, older clients).
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(self.descriptors)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name(<S as NamedService>::NAME)
                .with_service_name(HEALTH_SERVICE)
        };
        let reflection_v1 = reflection()
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .build_v1()?;
        let reflection_v1alpha = reflection()
            .with_service_name("grpc.reflection.v1alpha.ServerReflection")
            .build_v1alpha()?;

        spawn_readiness_probe(
            self.pool,
            self.ready.clone(),
            Health::of::<S>(health),
            stop.wait(),
        );
        // Registered once ready, withdrawn as soon as the stop is asked for
        // (while the server drains).
        let registration = self.discovery.enabled().then(|| {
            let address = self.discovery.advertise.clone().unwrap_or_else(|| {
                let addr = self.grpc.local_addr().map(|a| a.to_string());
                format!("http://{}", addr.unwrap_or_default())
            });
            crate::discovery::spawn_registration(
                self.discovery.clone(),
                self.name,
                address,
                self.ready.clone(),
                stop.wait(),
            )
        });
        let admin = tokio::spawn(Admin::new(self.ready).serve(self.admin, stop.wait()));

        tracing::info!(addr = %self.grpc.local_addr()?, "{} serving gRPC", self.name);
        // Answers are small and leave in one write each: no Nagle delay.
        let incoming = TcpIncoming::from(self.grpc).with_nodelay(Some(true));
        let incoming = capped(incoming, self.limits.max_connections);
        let l = &self.limits;
        tonic::transport::Server::builder()
            .timeout(l.timeout)
            .concurrency_limit_per_connection(l.concurrency_per_connection)
            .max_concurrent_streams(u32::try_from(l.concurrency_per_connection).unwrap_or(u32::MAX))
            .http2_keepalive_interval(Some(l.keepalive_interval))
            .http2_keepalive_timeout(Some(l.keepalive_timeout))
            .max_connection_age(l.max_connection_age)
            .max_connection_age_grace(l.max_connection_age_grace)
            .layer(RedLayer::default())
            .add_service(health_svc)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(tonic::service::interceptor::InterceptedService::new(
                service,
                self.mesh.server(),
            ))
            .serve_with_incoming_shutdown(incoming, stop.wait())
            .await?;
        if let Some(r) = registration {
            let _ = r.await;
        }
        admin.await??;
        tracing::info!("{} stopped", self.name);
        Ok(())
    }
}

/// A tonic server sluice can serve: what every generated
/// `XServiceServer<Impl>` is.
pub trait GrpcServer:
    tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
        Error = Infallible,
        Future: Send + 'static,
    > + NamedService
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> GrpcServer for S where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// What one gRPC service crate adds to the skeleton every sluice service
/// shares ([`GrpcApp`]), implemented by its `Settings` (whose
/// [`GrpcSettings`] give the name, the env prefix and the shared block):
/// the protos it serves and how the settings become a server.
pub trait GrpcService: GrpcSettings + Send {
    /// The encoded descriptor set of its protos (for reflection).
    const DESCRIPTORS: &'static [u8];
    /// The tonic server it serves.
    type Server: GrpcServer;

    /// Opens the MySQL pool the service and its readiness use (by default
    /// `common::db::connect`).
    fn connect_pool(
        url: &SecretString,
        max_connections: u32,
    ) -> impl Future<Output = anyhow::Result<sqlx::MySqlPool>> + Send {
        async move { Ok(common::db::connect(url, max_connections).await?) }
    }

    /// Builds the server over `pool` (connecting what else it needs, such
    /// as Redis). The settings are validated and no port is bound yet.
    fn connect(
        self,
        pool: sqlx::MySqlPool,
    ) -> impl Future<Output = anyhow::Result<Self::Server>> + Send;
}

/// Default size of a service's MySQL pool (`mysql.max_connections`).
const DEFAULT_POOL_SIZE: u32 = 32;

/// A built, bound, not yet serving gRPC service: each service's
/// `startup::Application`. `build` binds both ports (0 picks a free one,
/// as tests do); `run_until_stopped` serves until SIGINT/SIGTERM, draining
/// in-flight requests.
pub struct GrpcApp<S: GrpcService> {
    serve: Serve,
    server: S::Server,
}

impl<S: GrpcService> GrpcApp<S> {
    /// Validates the settings, resolves the mesh key, opens the MySQL pool,
    /// builds the server ([`GrpcService::connect`]) and binds the
    /// listeners.
    pub async fn build(settings: S) -> anyhow::Result<Self> {
        settings.validate()?;
        let shared = settings.service();
        let mesh = shared.mesh.auth(shared.dev)?;
        let url = shared.mysql.resolve_url(shared.dev)?;
        let pool_size = shared.mysql.max_connections.unwrap_or(DEFAULT_POOL_SIZE);
        let (grpc_addr, admin_addr) = (shared.grpc_addr, shared.admin.addr);
        let limits = shared.grpc.clone();
        let discovery = shared.discovery.clone();
        let pool = S::connect_pool(&url, pool_size).await?;
        let server = settings.connect(pool.clone()).await?;
        let grpc = TcpListener::bind(grpc_addr).await?;
        let admin = TcpListener::bind(admin_addr).await?;
        Ok(Self {
            serve: Serve {
                name: S::NAME,
                descriptors: S::DESCRIPTORS,
                grpc,
                admin,
                pool,
                ready: Readiness::default(),
                limits,
                mesh,
                discovery,
            },
            server,
        })
    }

    /// The bound gRPC port.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// The bound admin port.
    pub fn admin_port(&self) -> u16 {
        self.serve.admin.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.serve
            .grpc
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
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
        self.serve.run(self.server, shutdown).await
    }
}

/// Accepted connections, at most `max` open at once: the next one is taken
/// from the listener only once a slot is free, and each connection holds
/// its slot until it is closed (dropped).
pub fn capped(
    incoming: TcpIncoming,
    max: usize,
) -> impl Stream<Item = std::io::Result<Capped<TcpStream>>> {
    let slots = Arc::new(Semaphore::new(max));
    futures::stream::unfold((incoming, slots), |(mut incoming, slots)| async move {
        // The semaphore is never closed, so this only waits.
        let slot = slots.clone().acquire_owned().await.ok()?;
        let io = incoming.next().await?;
        Some((io.map(|io| Attached::new(io, slot)), (incoming, slots)))
    })
}

/// A connection holding one of [`capped`]'s slots.
pub type Capped<T> = Attached<T, OwnedSemaphorePermit>;

/// The gRPC health service's name.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// How often the readiness probe asks MySQL.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The health reporter of one served service: its own status and the
/// server's overall one (`""`).
pub struct Health {
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
}

impl Health {
    pub fn of<S: NamedService>(reporter: tonic_health::server::HealthReporter) -> Self {
        Self {
            reporter,
            service: S::NAME,
        }
    }

    async fn set(&self, serving: bool) {
        let status = if serving {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        for name in [self.service, ""] {
            self.reporter.set_service_status(name, status).await;
        }
    }
}

/// Marks the service ready, and its gRPC health SERVING, while MySQL
/// answers `SELECT 1` (asked every second); NOT_SERVING and not ready while
/// it does not, and once the stop is asked for.
pub fn spawn_readiness_probe(
    pool: sqlx::MySqlPool,
    ready: Readiness,
    health: Health,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    tokio::spawn(async move {
        let probe = async {
            let mut last = None;
            loop {
                let ok = sqlx::query("SELECT 1").execute(&pool).await.is_ok();
                ready.set(ok);
                if last != Some(ok) {
                    if last.is_some() {
                        tracing::warn!(
                            serving = ok,
                            "MySQL {}; health is now {}",
                            if ok {
                                "answers again"
                            } else {
                                "does not answer"
                            },
                            if ok { "SERVING" } else { "NOT_SERVING" }
                        );
                    }
                    health.set(ok).await;
                    last = Some(ok);
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        };
        tokio::select! {
            _ = probe => {},
            _ = stopped => {
                ready.set(false);
                health.set(false).await;
            }
        }
    });
}

fn describe() {
    common::admin::prometheus();
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        "gRPC calls served, by service, method and code"
    );
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "gRPC call duration, by service and method"
    );
}

/// Tower layer recording [`REQUESTS_TOTAL`] and [`REQUEST_DURATION_SECONDS`].
///
/// The metric handles of each method are looked up once and kept (at most
/// [`MAX_KEPT_METHODS`] methods; a path beyond that, or one that is not a
/// gRPC method, is recorded through the registry each time), so a call
/// costs no label strings or registry lookups on the success path.
#[derive(Debug, Clone, Default)]
pub struct RedLayer {
    methods: Arc<RwLock<HashMap<String, Arc<MethodMetrics>>>>,
}

/// Most methods whose metric handles [`RedLayer`] keeps.
pub const MAX_KEPT_METHODS: usize = 256;

/// One method's labels and its handles for the common outcome.
#[derive(Debug)]
struct MethodMetrics {
    service: String,
    method: String,
    duration: metrics::Histogram,
    ok: metrics::Counter,
}

impl MethodMetrics {
    fn new(service: String, method: String) -> Self {
        let duration = metrics::histogram!(REQUEST_DURATION_SECONDS, "service" => service.clone(), "method" => method.clone());
        let ok = metrics::counter!(REQUESTS_TOTAL, "service" => service.clone(), "method" => method.clone(), "code" => code_name(tonic::Code::Ok));
        Self {
            service,
            method,
            duration,
            ok,
        }
    }

    fn record(&self, code: tonic::Code, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        if code == tonic::Code::Ok {
            self.ok.increment(1);
        } else {
            metrics::counter!(REQUESTS_TOTAL, "service" => self.service.clone(), "method" => self.method.clone(), "code" => code_name(code))
                .increment(1);
        }
    }
}

impl RedLayer {
    /// The kept handles of `path`, if it has been served before.
    fn kept(&self, path: &str) -> Option<Arc<MethodMetrics>> {
        self.methods.read().ok().and_then(|m| m.get(path).cloned())
    }

    /// The handles of a path the server answered UNIMPLEMENTED (no such
    /// service or method): one `unknown/unknown` series for all of them, so
    /// a client's invented paths never become labels.
    fn unknown(&self) -> Arc<MethodMetrics> {
        static UNKNOWN: std::sync::OnceLock<Arc<MethodMetrics>> = std::sync::OnceLock::new();
        UNKNOWN
            .get_or_init(|| Arc::new(MethodMetrics::new("unknown".into(), "unknown".into())))
            .clone()
    }

    /// The kept handles of `path`, made (and kept, while there is room) on first use.
    fn method(&self, path: &str) -> Arc<MethodMetrics> {
        if let Some(m) = self.kept(path) {
            return m;
        }
        let (service, method) = split_path(path);
        let m = Arc::new(MethodMetrics::new(service, method));
        if m.service != "unknown"
            && let Ok(mut kept) = self.methods.write()
            && kept.len() < MAX_KEPT_METHODS
        {
            kept.insert(path.to_owned(), m.clone());
        }
        m
    }
}

impl<S> tower::Layer<S> for RedLayer {
    type Service = Red<S>;
    fn layer(&self, inner: S) -> Red<S> {
        Red {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`RedLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct Red<S> {
    inner: S,
    layer: RedLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for Red<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_owned();
        let (service, method) = split_path_ref(&path);
        let layer = self.layer.clone();
        let started = Instant::now();
        // One server span per call, a child of the caller's span when the
        // request carries a `traceparent` (exported only with tracing on).
        let span = tracing::info_span!(
            target: common::telemetry::SPANS,
            "grpc.server",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        common::telemetry::set_parent_from(&span, req.headers());
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        let record = span.clone();
        Box::pin(
            async move {
                let res = fut.await;
                // A failing unary call answers "trailers-only": the status is in
                // the headers. A successful one carries it in the trailers, so
                // no status header means OK.
                let code = match &res {
                    Ok(r) => r
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                    Err(_) => tonic::Code::Unavailable,
                };
                record.record("rpc.grpc.status_code", code as i32);
                if code != tonic::Code::Ok {
                    record.record("otel.status_code", "ERROR");
                }
                // Labels only for paths the server serves: a path answered
                // UNIMPLEMENTED is counted as unknown/unknown.
                let m = match layer.kept(&path) {
                    Some(m) => m,
                    None if code == tonic::Code::Unimplemented => layer.unknown(),
                    None => layer.method(&path),
                };
                m.record(code, started.elapsed());
                res
            }
            .instrument(span),
        )
    }
}

/// A channel whose calls carry the membership proof and the caller's
/// trace context (see [`crate::mesh_auth`]).
pub type TracedChannel = crate::mesh_auth::MeshChannel;

/// `/user.v1.UserService/GetUser` → (`user.v1.UserService`, `GetUser`).
/// Anything else (a scanner's path) is folded into one label value so the
/// label set stays bounded.
fn split_path(path: &str) -> (String, String) {
    let (s, m) = split_path_ref(path);
    (s.to_owned(), m.to_owned())
}

/// `/package.Service/Method` → (`package.Service`, `Method`); anything else
/// (or too long) → (`unknown`, `unknown`).
fn split_path_ref(path: &str) -> (&str, &str) {
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    match (parts.next(), parts.next()) {
        (Some(s), Some(m))
            if !s.is_empty()
                && !m.is_empty()
                && !m.contains('/')
                && s.len() <= 128
                && m.len() <= 64 =>
        {
            (s, m)
        }
        _ => ("unknown", "unknown"),
    }
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Cancelled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/user.v1.UserService/GetUser"),
            ("user.v1.UserService".into(), "GetUser".into())
        );
        assert_eq!(split_path("/"), ("unknown".into(), "unknown".into()));
        assert_eq!(split_path("/a/b/c"), ("unknown".into(), "unknown".into()));
        assert_eq!(split_path("/svc/"), ("unknown".into(), "unknown".into()));
    }

    #[test]
    fn method_handles_are_kept_for_grpc_paths_only_and_up_to_the_cap() {
        let layer = RedLayer::default();
        let a = layer.method("/user.v1.UserService/GetUser");
        assert!(Arc::ptr_eq(
            &a,
            &layer.method("/user.v1.UserService/GetUser")
        ));
        assert_eq!(
            (a.service.as_str(), a.method.as_str()),
            ("user.v1.UserService", "GetUser")
        );
        // Not a method path: labelled `unknown`, never kept.
        let u = layer.method("/a/b/c");
        assert_eq!(
            (u.service.as_str(), u.method.as_str()),
            ("unknown", "unknown")
        );
        assert!(!Arc::ptr_eq(&u, &layer.method("/a/b/c")));
        // A scanner's flood of method-like paths keeps the map bounded.
        for i in 0..2 * MAX_KEPT_METHODS {
            layer.method(&format!("/scan{i}.Svc/M"));
        }
        assert_eq!(layer.methods.read().unwrap().len(), MAX_KEPT_METHODS);
        assert!(Arc::ptr_eq(
            &a,
            &layer.method("/user.v1.UserService/GetUser")
        ));
    }

    #[test]
    fn status_codes_have_their_grpc_names() {
        assert_eq!(code_name(tonic::Code::from_i32(5)), "NotFound");
        assert_eq!(code_name(tonic::Code::from_i32(0)), "OK");
        assert_eq!(code_name(tonic::Code::from_i32(999)), "Unknown");
    }
}
