//! What the gRPC services and the gateway share beyond the runtime plumbing
//! of `common`: the service skeleton, service-to-service authentication,
//! tokens, rate limits, the read path and the write side's commit token.
//! The relay and the cache-syncer do not depend on it.
//!
//! # Layout
//! - [`service`]: the entry point of every service binary (command line,
//!   telemetry, exit code; [`service_main!`]).
//! - [`settings`]: loading and validating a binary's settings, and the
//!   settings block every gRPC service shares (listeners, limits, mesh key,
//!   MySQL, Redis).
//! - [`grpc`]: one skeleton for a gRPC service (validate, connect, bind,
//!   serve, drain), the RED metrics layer, the client channel type.
//! - [`discovery`]: registration in etcd under a lease, and the watch the
//!   gateway balances over; [`pool`]: the channel over several instances
//!   that fails over from a dead one.
//! - [`conn`]: the accepted-connection wrapper of the gRPC services and the
//!   gateway (a slot or a read hook attached to the socket).
//! - [`mesh_auth`]: membership proofs and acting-user assertions between
//!   the gateway and the services.
//! - [`jwt`]: HS256 tokens (issued by user-service, checked by the gateway).
//! - [`ratelimit`]: keyed rate limits (per client address, per username).
//! - [`readpath`]: the services' read path (moka → Redis → MySQL) and the
//!   read-your-writes barrier.
//! - [`store`]: the MySQL failure of every service and its one gRPC status.
//! - [`write`]: the consistency token of a committed write.
//!
//! Depends on `common` and `cdc-event` only among workspace crates.

pub mod conn;
pub mod discovery;
pub mod grpc;
pub mod jwt;
pub mod mesh_auth;
pub mod pool;
pub mod ratelimit;
pub mod readpath;
pub mod service;
pub mod settings;
pub mod store;
pub mod write;
