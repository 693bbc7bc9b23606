//! user-service: registration, login (argon2 + HS256 JWT), profiles with
//! their follow counters and the caller's is_follow, and profile updates,
//! over gRPC (`user.v1`, port 8080).
//!
//! # Layout
//! - [`config`]: `Settings` (`USER_*` env).
//! - [`error`]: the error enum and its mapping to `tonic::Status`.
//! - [`startup`]: `Application` (build, port, run_until_stopped).
//! - [`metrics`]: metric names.
//! - [`account`]: username/password rules, Register, Login, the per-username limit.
//! - [`hashing`]: argon2id on the blocking pool, a bounded number at a time.
//! - [`profile`]: cached profile reads, UpdateProfile.
//! - reads go through `service_kit::readpath` (moka → Redis → MySQL).
//! - [`grpc`]: the tonic service.
//!
//! Invariant: the only Redis key written here is the profile cache
//! (`keys.user_profile`), cache-aside; counters and lists belong to the syncer.

pub mod account;
pub mod config;
pub mod error;
pub mod grpc;
pub mod hashing;
pub mod metrics;
pub mod profile;
pub mod startup;
