//! relation-service: follow and unfollow in one MySQL transaction with their
//! counters (DESIGN §3), cursor-paginated following / follower lists,
//! IsFollow and relation counts over gRPC (`relation.v1`, port 8082).
//!
//! # Layout
//! - [`config`]: `Settings` (`RELATION_*` env).
//! - [`error`]: the error enum and its mapping to `tonic::Status`.
//! - [`startup`]: `Application` (build, port, run_until_stopped).
//! - [`metrics`]: metric names.
//! - [`follow`]: the write transaction with deadlock retries.
//! - [`list`]: cursor pagination over the covering indexes, cached first pages.
//! - reads go through `service_kit::readpath` (moka → Redis → MySQL).
//! - [`grpc`]: the tonic service.
//!
//! Invariant: no code here writes Redis; the cache-syncer owns it.

pub mod config;
pub mod error;
pub mod follow;
pub mod grpc;
pub mod list;
pub mod metrics;
pub mod startup;
