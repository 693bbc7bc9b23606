//! The client side of several instances of one service: a [`Pool`] of
//! channels, one per instance, that is itself a gRPC channel.
//!
//! # Picking and failing over
//! Calls go round-robin over the instances not marked down. A call whose
//! connection to its instance is refused never reached it: the instance is
//! marked down for [`DOWN_FOR`] and the call is sent to another one, so a
//! dead instance costs its callers nothing but that one refused connect.
//! A call whose connection breaks while it is on the way may have been
//! executed: it fails (it was in flight on the instance), and the instance
//! is marked down too. After [`DOWN_FOR`] a marked instance is tried again
//! (a restarted one comes back without waiting for the registry); one that
//! the registry withdraws ([`Pool::remove`]) is dropped at once.
//!
//! A dead instance's address can be taken by another server before the
//! registry drops it (its port reused by another process). An answer that
//! says the server there does not serve the call (`UNIMPLEMENTED`, or not
//! gRPC at all and not found) never ran it either: the instance is marked
//! down and the call goes to another one. Only when every instance answers
//! so does the caller get that answer. (No sluice service answers
//! `UNIMPLEMENTED` of its own accord; one that did would have each call of
//! that method tried on every instance.)
//!
//! Requests are unary gRPC calls, small: each is buffered so that it can be
//! sent again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use tonic::transport::Channel;
use tower::ServiceExt as _;

/// How long an instance whose connection failed is left out.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Instance {
    key: String,
    channel: Channel,
    down_until: Mutex<Option<Instant>>,
}

impl Instance {
    fn is_up(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .map(|d| d.is_none_or(|until| until <= now))
            .unwrap_or(true)
    }

    fn mark_down(&self) {
        if let Ok(mut d) = self.down_until.lock() {
            *d = Some(Instant::now() + DOWN_FOR);
        }
    }
}

struct Inner {
    service: String,
    instances: RwLock<Vec<Arc<Instance>>>,
    next: AtomicUsize,
}

/// The instances of one service; clone it freely (one shared set).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

/// Why a pool could not send a call.
#[derive(Debug, thiserror::Error)]
#[error("no instance of {0} is reachable")]
pub struct NoInstance(String);

impl Pool {
    pub fn new(service: impl Into<String>) -> Self {
        Self(Arc::new(Inner {
            service: service.into(),
            instances: RwLock::new(Vec::new()),
            next: AtomicUsize::new(0),
        }))
    }

    /// Adds (or replaces) the instance `key`.
    pub fn insert(&self, key: impl Into<String>, channel: Channel) {
        let key = key.into();
        let instance = Arc::new(Instance {
            key: key.clone(),
            channel,
            down_until: Mutex::new(None),
        });
        if let Ok(mut all) = self.0.instances.write() {
            all.retain(|i| i.key != key);
            all.push(instance);
        }
    }

    /// Drops the instance `key` (withdrawn from the registry).
    pub fn remove(&self, key: &str) {
        if let Ok(mut all) = self.0.instances.write() {
            all.retain(|i| i.key != key);
        }
    }

    /// Instances known (up or down).
    pub fn len(&self) -> usize {
        self.0.instances.read().map(|a| a.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next instance round-robin among those up, skipping `tried`; when
    /// every untried one is down, the one marked down longest ago.
    fn pick(&self, tried: &[String]) -> Option<Arc<Instance>> {
        let all = self.0.instances.read().ok()?;
        let candidates: Vec<&Arc<Instance>> =
            all.iter().filter(|i| !tried.contains(&i.key)).collect();
        if candidates.is_empty() {
            return None;
        }
        let now = Instant::now();
        let start = self.0.next.fetch_add(1, Ordering::Relaxed);
        let n = candidates.len();
        (0..n)
            .map(|k| candidates[(start + k) % n])
            .find(|i| i.is_up(now))
            .or_else(|| {
                candidates
                    .iter()
                    .min_by_key(|i| i.down_until.lock().ok().and_then(|d| *d))
                    .copied()
            })
            .cloned()
    }
}

/// Whether `error` says the connection to the instance was refused: the
/// call never reached it and may go to another instance.
fn never_sent(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Why `resp` cannot be the answer of the service the call was for, if it
/// cannot: the server at the instance's address does not serve the call,
/// so it never ran it.
fn not_served<B>(resp: &http::Response<B>) -> Option<&'static str> {
    let grpc = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if !grpc {
        // What gRPC reads as UNIMPLEMENTED: no such path there. Any other
        // non-gRPC answer (a proxy's 502, say) may have followed a call that
        // ran, and is left to the caller.
        return matches!(
            resp.status(),
            http::StatusCode::NOT_FOUND | http::StatusCode::METHOD_NOT_ALLOWED
        )
        .then_some("not a gRPC server for this call");
    }
    // A trailers-only answer carries its status in the headers.
    let code = resp.headers().get("grpc-status").map(|v| v.as_bytes());
    (code == Some(b"12")).then_some("the method is not implemented there")
}

impl tower::Service<http::Request<tonic::body::Body>> for Pool {
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let pool = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let mut tried: Vec<String> = Vec::new();
            // The last answer of a server that does not serve the call.
            let mut unserved = None;
            loop {
                let Some(instance) = pool.pick(&tried) else {
                    if let Some(resp) = unserved {
                        return Ok(resp);
                    }
                    let none = NoInstance(pool.0.service.clone());
                    return Err(Box::new(tonic::Status::unavailable(none.to_string())) as BoxError);
                };
                let mut req = http::Request::new(tonic::body::Body::new(
                    http_body_util::Full::new(bytes.clone()),
                ));
                *req.method_mut() = parts.method.clone();
                *req.uri_mut() = parts.uri.clone();
                *req.version_mut() = parts.version;
                *req.headers_mut() = parts.headers.clone();
                match instance.channel.clone().oneshot(req).await {
                    Ok(resp) => {
                        let Some(why) = not_served(&resp) else {
                            return Ok(resp);
                        };
                        instance.mark_down();
                        tracing::warn!(service = %pool.0.service, instance = %instance.key, why, "the instance's address answers for another server; the call goes to another instance");
                        tried.push(instance.key.clone());
                        unserved = Some(resp);
                    }
                    Err(e) => {
                        instance.mark_down();
                        if never_sent(&e) {
                            tracing::info!(service = %pool.0.service, instance = %instance.key, "connection refused; the call goes to another instance");
                            tried.push(instance.key.clone());
                            continue;
                        }
                        tracing::warn!(service = %pool.0.service, instance = %instance.key, error = %e, "call failed on its way to the instance");
                        // UNAVAILABLE, as a lost connection is (the
                        // caller's 503), with the cause for the logs.
                        let status = tonic::Status::unavailable(format!(
                            "{} instance {}: {e}",
                            pool.0.service, instance.key
                        ));
                        return Err(Box::new(status) as BoxError);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy(port: u16) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_lazy()
    }

    #[tokio::test]
    async fn picks_go_round_robin_and_skip_instances_marked_down() {
        let pool = Pool::new("demo");
        pool.insert("a", lazy(1));
        pool.insert("b", lazy(2));
        let first = pool.pick(&[]).unwrap().key.clone();
        let second = pool.pick(&[]).unwrap().key.clone();
        assert_ne!(first, second);
        let down = pool.pick(&[]).unwrap();
        down.mark_down();
        let up: Vec<String> = (0..4)
            .map(|_| pool.pick(&[]).unwrap().key.clone())
            .collect();
        assert!(
            up.iter().all(|k| *k != down.key),
            "{up:?} includes {}",
            down.key
        );
        // With only down instances left to try, the one down longest is.
        assert_eq!(pool.pick(&[up[0].clone()]).unwrap().key, down.key);
        pool.remove("a");
        pool.remove("b");
        assert!(pool.pick(&[]).is_none());
    }

    /// Serves `routes` on a loopback port; returns the port.
    async fn serve(routes: tonic::service::Routes) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_routes(routes)
                .serve_with_incoming(incoming),
        );
        port
    }

    #[tokio::test]
    async fn a_server_that_does_not_serve_the_call_at_an_instances_address_is_skipped() {
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        // "a": the address of a dead instance, now another server's (no
        // health service there); "b": the service.
        let other = serve(tonic::service::Routes::default()).await;
        let (_, health) = tonic_health::server::health_reporter();
        let service = serve(tonic::service::Routes::new(health)).await;
        let pool = Pool::new("health");
        pool.insert("a", lazy(other));
        pool.insert("b", lazy(service));
        let mut client = HealthClient::new(pool.clone());
        for _ in 0..4 {
            let reply = client.check(HealthCheckRequest::default()).await;
            assert!(reply.is_ok(), "{reply:?}");
        }
        let a = pool.pick(&["b".into()]).unwrap();
        assert!(
            !a.is_up(Instant::now()),
            "the other server's instance is down"
        );

        // With only that server left, its answer is the caller's.
        pool.remove("b");
        let status = client
            .check(HealthCheckRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    }

    #[test]
    fn answers_that_never_ran_the_call_are_told_from_those_that_may_have() {
        let answer = |status: u16, content_type: Option<&str>, grpc_status: Option<&str>| {
            let mut resp = http::Response::builder().status(status);
            if let Some(ct) = content_type {
                resp = resp.header(http::header::CONTENT_TYPE, ct);
            }
            if let Some(code) = grpc_status {
                resp = resp.header("grpc-status", code);
            }
            not_served(&resp.body(()).unwrap())
        };
        assert!(answer(200, Some("application/grpc"), Some("12")).is_some());
        assert!(answer(404, Some("text/plain"), None).is_some());
        assert!(answer(405, None, None).is_some());
        // Served: a reply, an error the service returned, a proxy's 502.
        assert!(answer(200, Some("application/grpc"), None).is_none());
        assert!(answer(200, Some("application/grpc+proto"), Some("5")).is_none());
        assert!(answer(502, Some("text/html"), None).is_none());
    }

    #[test]
    fn a_refused_connection_is_never_sent_and_a_reset_is_not_known_to_be() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_sent(&refused));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!never_sent(&reset));
    }
}
