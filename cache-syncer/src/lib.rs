//! cache-syncer: consumes the relay's CDC topics and keeps Redis and the
//! `user` table's redundant counter columns equal to MySQL, without dual
//! writes (DESIGN §5).
//!
//! # Layout
//! - [`config`]: settings (`SYNCER_…` env).
//! - [`plan`]: pure planning per table: `Change::parse(bytes)?.plan()` (borrowed, typed rows).
//! - [`apply`]: idempotent application of effects to Redis and MySQL.
//! - [`consumer`]: the consumer-group loop (at-least-once, DLQ, seq skip, lag).
//! - [`watermark`]: the applied watermark (read-your-writes basis).
//! - [`rebuild`] / [`verify`]: refill from MySQL; prove Redis == MySQL.
//! - [`startup`]: wiring with the admin server.
//!
//! Invariant: every Redis write holds an absolute value taken from a row
//! image or from MySQL, so any replay or redelivery converges.

pub mod apply;
pub mod config;
pub mod consumer;
pub mod error;
pub mod metrics;
pub mod plan;
pub mod rebuild;
pub mod startup;
pub mod verify;
pub mod watermark;
