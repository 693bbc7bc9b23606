//! count-service: counters of many users and kinds in one gRPC call
//! (`count.v1`, port 8081), read through moka → Redis hash buckets → MySQL.
//!
//! # Layout
//! - [`config`]: `Settings` (`COUNT_*` env).
//! - [`error`]: the error enum and its mapping to `tonic::Status`.
//! - [`startup`]: `Application` (build, port, run_until_stopped).
//! - [`metrics`]: metric names.
//! - reads go through `service_kit::readpath` (moka → Redis → MySQL).
//! - [`grpc`]: the tonic service.
//!
//! Invariant: read-only; nothing here writes MySQL or Redis.

pub mod config;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod startup;
