//! binlog-relay: Reads the MySQL/MariaDB binlog as a replica and publishes every committed row change to Kafka.
//!
//! Not built yet: this crate only reserves its place in the workspace
//! (tracked by issue #3). Its binary says so and exits non-zero.
