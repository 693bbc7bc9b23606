//! cache-syncer integration tests against the real broker, MariaDB and Redis.
//! Change events are produced to per-test topics the way the relay writes
//! them (envelope, key, seq/gtid headers); the syncer is driven step by step.

mod e2e;
mod harness;
mod ops;
mod ryw;
mod sync;
