//! gateway: REST gateway over the sluice gRPC services.
//!
//! Not built yet: this crate only reserves its place in the workspace
//! (tracked by issue #4). Its binary says so and exits non-zero.
