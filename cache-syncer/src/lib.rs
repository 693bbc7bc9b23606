//! cache-syncer: Consumes the CDC topics and keeps Redis and the user table's redundant counters equal to MySQL.
//!
//! Not built yet: this crate only reserves its place in the workspace
//! (tracked by issue #5). Its binary says so and exits non-zero.
