//! Tracing subscriber set-up shared by every binary.
//!
//! `RUST_LOG` filters (default `info`); `SLUICE_LOG_FORMAT=json` switches to
//! JSON lines for log shippers.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls
/// are ignored), so tests may call it too.
pub fn init(service: &str) {
    // The metrics recorder first: a metric handle created before it exists
    // would record into the void for the life of the process.
    crate::admin::prometheus();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let res = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if res.is_ok() {
        tracing::debug!(service, "telemetry initialised");
    }
}
