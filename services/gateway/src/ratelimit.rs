//! The per-client limit on register and login (`auth_per_client`): each
//! client address gets that many attempts per window, whatever their
//! outcome; past it the gateway answers 429 with `Retry-After` before
//! calling user-service (which limits each username on its own).
//!
//! A client is its TCP peer address as the listener saw it: an IPv4
//! address, or an IPv6 /64 (one subscriber's usual allocation, so rotating
//! addresses within it gains nothing). `X-Forwarded-For` is not read: a
//! gateway behind a proxy sees the proxy. Requests that did not come through
//! the listener (the router driven in-process) have no peer and no limit.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::config::RateLimitSettings;
use service_kit::ratelimit::KeyedLimiter;

use crate::error::ApiError;
use crate::metrics::RATE_LIMITED_TOTAL;

/// The per-client limiter, shared by the routes it guards.
#[derive(Debug, Clone)]
pub struct PerClient(Arc<KeyedLimiter<IpAddr>>);

impl PerClient {
    pub fn new(settings: RateLimitSettings) -> Self {
        Self(Arc::new(KeyedLimiter::new(settings)))
    }
}

/// The key of a client address: IPv4 (or IPv4-mapped IPv6) as is, other
/// IPv6 addresses by their /64 prefix.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Middleware: counts the attempt of the request's client; 429 when over.
pub async fn per_client(State(limiter): State<PerClient>, req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(limited) = limiter.0.check(&client_key(peer.ip()))
    {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
        metrics::counter!(RATE_LIMITED_TOTAL, "route" => route).increment(1);
        return ApiError::too_many_requests("too many attempts from this address, retry later")
            .with_retry_after(limited.retry_after_secs())
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix_and_ipv4_as_is() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), v4);
    }
}
