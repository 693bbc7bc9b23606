//! cache-syncer integration tests against the real broker, MariaDB and Redis.
//! Change events are produced to per-test topics the way the relay writes
//! them (envelope, key, seq/gtid headers); the syncer runs its production
//! loop (`Syncer::run`) in a task and tests wait on its status.

mod e2e;
mod group;
mod harness;
mod ops;
mod ryw;
mod sync;
