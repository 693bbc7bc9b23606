//! Metric names of the gateway. Labels are route templates, methods and
//! status codes, never ids.

/// REST requests, labelled `method`, `route` (template) and `status`.
pub const REQUESTS_TOTAL: &str = "gateway_requests_total";
/// REST request duration, labelled `method` and `route`.
pub const REQUEST_DURATION_SECONDS: &str = "gateway_request_duration_seconds";
/// Requests refused because too many were in flight.
pub const SHED_TOTAL: &str = "gateway_shed_total";
/// Requests that ran out of time.
pub const TIMEOUTS_TOTAL: &str = "gateway_timeouts_total";
/// Anonymous profile reads at the edge cache, labelled `result` (`hit`, `miss`).
pub const EDGE_CACHE_TOTAL: &str = "gateway_edge_cache_total";
/// Connections open on the REST listener (gauge).
pub const CONNECTIONS_OPEN: &str = "gateway_connections_open";
/// Connections the gateway closed on its own, labelled `reason`
/// (`idle_timeout`, `header_timeout`, `evicted` to make room at the cap).
pub const CONNECTIONS_DROPPED_TOTAL: &str = "gateway_connections_dropped_total";
/// Register and login attempts refused by the per-client limit, labelled
/// `route` (template).
pub const RATE_LIMITED_TOTAL: &str = "gateway_rate_limited_total";
