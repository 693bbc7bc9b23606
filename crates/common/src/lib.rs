//! Runtime plumbing every sluice binary needs, and nothing more: the relay
//! and the cache-syncer depend on this crate alone, so they compile no gRPC
//! server, read cache or rate limiter (the services' kit is
//! `crates/service-kit`).
//!
//! # Layout
//! - [`config`]: the one settings loader (defaults → optional TOML file → env
//!   with a per-binary prefix and `__` nesting) and the settings blocks that
//!   several binaries share (MySQL, Redis, Kafka, admin port, and the plain
//!   settings of the services' gRPC servers, read barrier and rate limits).
//! - [`bloom`]: bit positions of the IsFollow bloom filter (writer and readers).
//! - [`keys`]: every Redis key sluice reads or writes (DESIGN §5).
//! - `redis_conn` (feature `redis`): one Redis handle for a single server
//!   or a Redis Cluster, with per-slot batches and a SCAN over every master.
//! - [`db`]: MySQL pool construction and the embedded migrations.
//! - [`error`]: transient vs definite, and the one classification of MySQL
//!   errors the relay and the syncer retry on.
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`admin`]: the admin HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`).
//! - [`shutdown`]: the SIGINT/SIGTERM future every server stops on.
//!
//! Invariant: this crate depends on no other workspace crate.

pub mod admin;
pub mod bloom;
pub mod config;
pub mod db;
pub mod error;
pub mod keys;
#[cfg(feature = "redis")]
pub mod redis_conn;
pub mod shutdown;
pub mod telemetry;
