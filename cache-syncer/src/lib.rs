//! cache-syncer: consumes the relay's CDC topics and keeps Redis and the
//! `user` table's redundant counter columns equal to MySQL, without dual
//! writes (DESIGN §5).
//!
//! # Layout
//! - [`config`]: settings (`SYNCER_…` env).
//! - [`plan`]: pure planning per table: `Change::parse(bytes)?.plan()` (borrowed, typed rows).
//! - [`apply`]: idempotent application of effects to Redis and MySQL.
//! - [`consumer`]: the consumer-group member and its one loop,
//!   [`Syncer::run`](consumer::Syncer::run) (at-least-once, batching,
//!   pipelining), with heartbeats into the watermark, and `/status`; its
//!   parts, private to the crate:
//!   - `decode`: a message into what to do with it, and the seq rule;
//!   - `job`: a batch's apply with retries (transient / definite errors);
//!   - `dlq`: the dead-letter producer;
//!   - `progress`: per-partition applied position, offsets stored, status
//!     and metrics after each batch;
//!   - `ownership`: the rebalance callback, partition claims, the fence;
//!   - `lag`: the background consumer-lag check.
//! - [`watermark`]: heartbeats read outside the group into the applied
//!   watermark (read-your-writes basis), from the group's recorded positions.
//! - [`rebuild`] / [`verify`]: refill from MySQL; prove Redis == MySQL.
//! - [`startup`]: wiring with the admin server.
//!
//! Invariant: every Redis write holds an absolute value taken from a row
//! image or from MySQL, so any replay or redelivery converges.

pub mod apply;
pub mod config;
pub mod consumer;
mod decode;
mod dlq;
pub mod error;
mod job;
mod lag;
pub mod metrics;
mod ownership;
pub mod plan;
mod progress;
pub mod rebuild;
pub mod startup;
pub mod verify;
pub mod watermark;
