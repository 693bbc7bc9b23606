//! The public listener: accepts TCP connections and serves HTTP/1.1 on each
//! with hyper, bounded in time and in number.
//!
//! # Timeouts (per connection)
//! - `idle_timeout`: a connection waiting for a request (just accepted, or
//!   after its previous answer) that has sent no byte of one for this long
//!   is closed.
//! - `header_read_timeout`: once the first byte of a request has arrived,
//!   its head (request line and headers) must be complete within this, else
//!   the connection is closed: a bare request line, or headers trickled a
//!   line at a time, end here.
//! - hyper's own header timer is armed at `idle_timeout +
//!   header_read_timeout`, the longest any head may take under the two
//!   rules above, as a backstop.
//! - A request being served is bounded by the router's `request_timeout`,
//!   not here.
//!
//! A connection's phase ([`Phase`]) decides which timer runs: the byte
//! counter on its socket ([`Watched`]) moves it from idle to reading a
//! head, the router being called moves it to busy, the answer back to idle.
//! Nothing here parses HTTP; hyper does.
//!
//! # Connection cap
//! At most `max_connections` are open. When one more arrives, the
//! connection idle longest is closed to make room: its client loses only a
//! kept-alive socket it was not using and reconnects when it needs one (a
//! request that arrives just as its connection is chosen is answered
//! first).
//! When none is idle (every connection is sending a head or being served)
//! the listener stops accepting until one closes, which each does within
//! `header_read_timeout` or `request_timeout` (plus writing its answer); so
//! a new client waits in the kernel's accept queue at most that long, then
//! is served like any other.
//!
//! Why these semantics: refusing connections at the cap would let anyone
//! holding `max_connections` idle sockets lock every other client out, and
//! answering them 503 would be an answer but never a service. Idle
//! connections are the ones that cost their owner nothing to lose, and
//! every busy one ends within a bound the settings give.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use service_kit::conn::{Attached, Attachment};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::metrics::{CONNECTIONS_DROPPED_TOTAL, CONNECTIONS_OPEN};

/// The listener's bounds (from [`crate::config::Settings`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Why the gateway closed a connection on its own (the `reason` label of
/// [`CONNECTIONS_DROPPED_TOTAL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dropped {
    IdleTimeout,
    HeaderTimeout,
    Evicted,
}

impl Dropped {
    fn label(self) -> &'static str {
        match self {
            Dropped::IdleTimeout => "idle_timeout",
            Dropped::HeaderTimeout => "header_timeout",
            Dropped::Evicted => "evicted",
        }
    }
}

/// What a connection is doing; its timer follows from it.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request, no byte of one yet, since then.
    Idle(Instant),
    /// Reading a request head whose first byte arrived then.
    Head(Instant),
    /// Serving this many requests; `evicted`: close once they are answered.
    Busy { requests: usize, evicted: bool },
    /// Chosen for eviction: close now (no request is being served).
    Evicted,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves a consistent phase.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open connection's shared state.
#[derive(Debug)]
struct Conn {
    phase: Mutex<Phase>,
    /// Woken on every phase change, so the connection's timer re-arms.
    changed: Notify,
}

impl Attachment for Conn {
    /// Bytes arrived from the client: an idle connection starts reading a
    /// request head.
    fn on_read(&self) {
        let mut phase = lock(&self.phase);
        if let Phase::Idle(_) = *phase {
            self.set(&mut phase, Phase::Head(Instant::now()));
        }
    }
}

impl Conn {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> Phase {
        *lock(&self.phase)
    }

    fn set(&self, phase: &mut Phase, next: Phase) {
        *phase = next;
        self.changed.notify_one();
    }

    /// A request head is complete and goes to the router. A request that
    /// arrived just as its connection was chosen for eviction is served
    /// first; the connection closes after answering it.
    fn on_request(&self) {
        let mut phase = lock(&self.phase);
        let next = match *phase {
            Phase::Busy { requests, evicted } => Phase::Busy {
                requests: requests + 1,
                evicted,
            },
            Phase::Evicted => Phase::Busy {
                requests: 1,
                evicted: true,
            },
            Phase::Idle(_) | Phase::Head(_) => Phase::Busy {
                requests: 1,
                evicted: false,
            },
        };
        self.set(&mut phase, next);
    }

    /// The router answered (or the request was dropped); true when the
    /// connection is now idle.
    fn on_answer(&self) -> bool {
        let mut phase = lock(&self.phase);
        let (next, idle) = match *phase {
            Phase::Busy { requests, evicted } if requests > 1 => (
                Phase::Busy {
                    requests: requests - 1,
                    evicted,
                },
                false,
            ),
            Phase::Busy { evicted: true, .. } => (Phase::Evicted, false),
            Phase::Busy { evicted: false, .. } => (Phase::Idle(Instant::now()), true),
            other => (other, false),
        };
        self.set(&mut phase, next);
        idle
    }

    /// Resolves when the connection must be closed, and why.
    async fn expiry(&self, limits: Limits) -> Dropped {
        loop {
            let deadline = match self.phase() {
                Phase::Idle(since) => Some((since + limits.idle_timeout, Dropped::IdleTimeout)),
                Phase::Head(since) => {
                    Some((since + limits.header_read_timeout, Dropped::HeaderTimeout))
                }
                Phase::Busy { .. } => None,
                Phase::Evicted => return Dropped::Evicted,
            };
            match deadline {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {},
                        _ = self.changed.notified() => {},
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// Every open connection, for eviction.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Woken when a connection becomes idle: the accept loop, waiting at
    /// the cap, may then evict it.
    idle: Notify,
}

impl Registry {
    fn insert(&self, id: u64, conn: Arc<Conn>) {
        lock(&self.conns).insert(id, conn);
    }

    fn remove(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Marks the connection idle longest for closing; false when none is idle.
    fn evict_idlest(&self) -> bool {
        let conns = lock(&self.conns);
        let idlest = conns
            .values()
            .filter_map(|c| match c.phase() {
                Phase::Idle(since) => Some((since, c)),
                _ => None,
            })
            .min_by_key(|(since, _)| *since);
        let Some((_, conn)) = idlest else {
            return false;
        };
        let mut phase = lock(&conn.phase);
        // Still idle: the phase may have moved since the scan.
        if let Phase::Idle(_) = *phase {
            conn.set(&mut phase, Phase::Evicted);
            return true;
        }
        false
    }
}

/// Serves `router` on `listener` within `limits` until `stop`, then stops
/// accepting, lets every connection finish its request and close, and
/// returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: common::shutdown::Stop,
) -> std::io::Result<()> {
    let registry = Arc::new(Registry::default());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                on_accept_error(e).await;
                continue;
            }
        };
        let Some(slot) = take_slot(&slots, &registry, &stop).await else {
            break;
        };
        // Answers are small and leave in one write each: no Nagle delay.
        let _ = stream.set_nodelay(true);
        next_id += 1;
        let conn = Arc::new(Conn::new());
        registry.insert(next_id, conn.clone());
        let task = Connection {
            id: next_id,
            peer,
            conn,
            registry: registry.clone(),
            router: router.clone(),
            limits,
            stop: stop.clone(),
        };
        tokio::spawn(task.run(stream, slot));
    }
    drop(listener);
    // Every connection holds a slot until it has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
    Ok(())
}

/// Errors of one connection (the peer gave up before we accepted) are
/// skipped; others (out of file descriptors) are logged and retried after a
/// pause, as they will not clear at once.
async fn on_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// A slot for one more connection: a free one, else one an idle connection
/// gives up, else the first to free up. `None` once the gateway stops.
async fn take_slot(
    slots: &Arc<Semaphore>,
    registry: &Registry,
    stop: &common::shutdown::Stop,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        let evicted = registry.evict_idlest();
        tokio::select! {
            // The semaphore is never closed: an error cannot happen.
            slot = slots.clone().acquire_owned() => return slot.ok(),
            // Every connection is busy: wait for one to become idle.
            _ = registry.idle.notified(), if !evicted => {},
            _ = stop.wait() => return None,
        }
    }
}

/// One accepted connection and what it needs to be served.
struct Connection {
    id: u64,
    peer: SocketAddr,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    router: Router,
    limits: Limits,
    stop: common::shutdown::Stop,
}

impl Connection {
    async fn run(self, stream: TcpStream, _slot: OwnedSemaphorePermit) {
        metrics::gauge!(CONNECTIONS_OPEN).increment(1.0);
        let Connection {
            id,
            peer,
            conn,
            registry,
            router,
            limits,
            stop,
        } = self;
        let service = {
            let (conn, registry) = (conn.clone(), registry.clone());
            tower::service_fn(move |mut req: Request<Incoming>| {
                // The client's address, for the per-client rate limit.
                req.extensions_mut().insert(ConnectInfo(peer));
                let answer = Answer::start(conn.clone(), registry.clone());
                let router = router.clone();
                async move {
                    let resp = router.oneshot(req).await;
                    drop(answer);
                    resp
                }
            })
        };
        let io = TokioIo::new(Watched::new(stream, conn.clone()));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.idle_timeout + limits.header_read_timeout);
        let mut served = pin!(http.serve_connection(io, TowerToHyperService::new(service)));
        let mut expiry = pin!(conn.expiry(limits));
        let mut stopping = pin!(stop.wait());
        let mut draining = false;
        loop {
            tokio::select! {
                res = served.as_mut() => {
                    if let Err(e) = res {
                        if e.is_timeout() {
                            dropped(Dropped::HeaderTimeout);
                        }
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                    break;
                }
                // Only when no request is being served: dropping the
                // connection closes the socket.
                why = expiry.as_mut() => {
                    dropped(why);
                    break;
                }
                _ = stopping.as_mut(), if !draining => {
                    draining = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
        registry.remove(id);
        metrics::gauge!(CONNECTIONS_OPEN).decrement(1.0);
    }
}

fn dropped(why: Dropped) {
    metrics::counter!(CONNECTIONS_DROPPED_TOTAL, "reason" => why.label()).increment(1);
}

/// A request being answered: the connection is busy from its start until
/// this is dropped (answered, or dropped by hyper).
struct Answer {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Answer {
    fn start(conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        conn.on_request();
        Self { conn, registry }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if self.conn.on_answer() {
            self.registry.idle.notify_one();
        }
    }
}

/// The socket of a connection, noting when bytes arrive
/// ([`Attachment::on_read`] of its [`Conn`]); reads and writes pass through
/// unchanged.
type Watched = Attached<TcpStream, Arc<Conn>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 2,
        }
    }

    #[test]
    fn a_connection_moves_idle_head_busy_idle() {
        let c = Conn::new();
        assert!(matches!(c.phase(), Phase::Idle(_)));
        c.on_read();
        assert!(matches!(c.phase(), Phase::Head(_)));
        c.on_read();
        assert!(matches!(c.phase(), Phase::Head(_)));
        c.on_request();
        c.on_read(); // a pipelined request's bytes: still busy
        assert!(matches!(c.phase(), Phase::Busy { requests: 1, .. }));
        assert!(c.on_answer());
        assert!(matches!(c.phase(), Phase::Idle(_)));
    }

    #[test]
    fn a_request_racing_its_eviction_is_answered_then_the_connection_closes() {
        let r = Registry::default();
        let c = Arc::new(Conn::new());
        r.insert(1, c.clone());
        assert!(r.evict_idlest());
        c.on_request();
        assert!(matches!(c.phase(), Phase::Busy { evicted: true, .. }));
        assert!(!c.on_answer(), "not idle: evicted");
        assert!(matches!(c.phase(), Phase::Evicted));
    }

    #[test]
    fn eviction_picks_the_connection_idle_longest_and_never_a_busy_one() {
        let r = Registry::default();
        let (old, busy, new) = (
            Arc::new(Conn::new()),
            Arc::new(Conn::new()),
            Arc::new(Conn::new()),
        );
        *lock(&old.phase) = Phase::Idle(Instant::now() - Duration::from_secs(5));
        busy.on_request();
        r.insert(1, old.clone());
        r.insert(2, busy.clone());
        r.insert(3, new.clone());
        assert!(r.evict_idlest());
        assert!(matches!(old.phase(), Phase::Evicted));
        assert!(r.evict_idlest());
        assert!(matches!(new.phase(), Phase::Evicted));
        assert!(!r.evict_idlest(), "the busy one stays");
        assert!(matches!(busy.phase(), Phase::Busy { requests: 1, .. }));
    }

    #[tokio::test]
    async fn the_idle_timer_runs_from_the_answer_and_the_head_timer_from_the_first_byte() {
        let short = Duration::from_millis(50);
        let idle_only = Limits {
            idle_timeout: short,
            ..limits()
        };
        let c = Conn::new();
        c.on_request();
        assert!(c.on_answer());
        let started = Instant::now();
        assert_eq!(c.expiry(idle_only).await, Dropped::IdleTimeout);
        assert!(started.elapsed() >= short);

        // The first byte switches to the (here much shorter) head timer.
        let head_only = Limits {
            header_read_timeout: short,
            ..limits()
        };
        let c = Conn::new();
        let started = Instant::now();
        c.on_read();
        assert_eq!(c.expiry(head_only).await, Dropped::HeaderTimeout);
        assert!(started.elapsed() >= short);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
