//! gateway: the REST API of sluice (DESIGN §6, port 8888) over the gRPC
//! services. It holds no data of its own: every route is one or two gRPC
//! calls, except anonymous profile reads that its edge cache answers.
//!
//! # Layout
//! - [`config`]: `Settings` (`GATEWAY_*` env).
//! - [`error`]: `ApiError`, the JSON error body and the gRPC → HTTP status map.
//! - [`startup`]: the router, middleware and `Application`.
//! - [`listener`]: accepting and serving connections: timeouts, the connection cap.
//! - [`ratelimit`]: the per-client limit on register and login.
//! - [`metrics`]: metric names.
//! - [`extract`]: bearer auth (the acting user comes from the token only),
//!   JSON bodies, path ids, the consistency token.
//! - [`users`], [`relations`], [`counts`]: the handlers.
//! - [`openapi`]: `/openapi.json`, built from the route table.
//! - [`state`]: the gRPC clients.
//! - [`edge_cache`]: anonymous profile reads kept for a fraction of a second.

pub mod config;
pub mod counts;
pub mod edge_cache;
pub mod error;
pub mod extract;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod relations;
pub mod startup;
pub mod state;
pub mod users;
