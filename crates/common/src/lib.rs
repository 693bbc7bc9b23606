//! Shared plumbing of every sluice binary.
//!
//! # Layout
//! - [`config`]: the one settings loader (defaults → optional TOML file → env
//!   with a per-binary prefix and `__` nesting) and the settings blocks that
//!   several binaries share (MySQL, Redis, Kafka, admin port).
//! - [`bloom`]: bit positions of the IsFollow bloom filter (writer and readers).
//! - [`keys`]: every Redis key sluice reads or writes (DESIGN §5).
//! - [`readpath`]: the services' read path (moka → Redis → MySQL).
//! - [`db`]: MySQL pool construction and the embedded migrations.
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`admin`]: the admin HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`).
//! - [`jwt`]: HS256 tokens (issued by user-service, checked by the gateway).
//! - [`ratelimit`]: keyed rate limits (per client address, per username).
//! - [`shutdown`]: the SIGINT/SIGTERM future every server stops on.
//! - [`service`]: the entry point of every service binary (command line,
//!   telemetry, exit code).
//!
//! Invariant: the only workspace crate this one depends on is `cdc-event`
//! (the pure wire contract, for its GTID text forms).

pub mod admin;
pub mod bloom;
pub mod config;
pub mod db;
pub mod grpc;
pub mod jwt;
pub mod keys;
pub mod mesh_auth;
pub mod ratelimit;
pub mod readpath;
pub mod service;
pub mod shutdown;
pub mod telemetry;
