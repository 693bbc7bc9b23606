//! relation-service settings: defaults → optional TOML file → `RELATION_*`
//! environment variables (`RELATION_MYSQL__URL`, `RELATION_GRPC_ADDR`, …).

use common::config::ConfigError;
use serde::{Deserialize, Serialize};
pub use service_kit::readpath::CacheSettings;
use service_kit::settings::{GrpcSettings, ServiceCommon};

/// Everything relation-service can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Listeners, gRPC limits, mesh secret, MySQL, Redis and the
    /// read-your-writes wait, as every gRPC service has them (keys stay
    /// top-level: `RELATION_GRPC_ADDR`, `RELATION_MYSQL__URL`, …).
    #[serde(flatten)]
    pub service: ServiceCommon,
    /// Attempts of one follow/unfollow transaction when it hits a deadlock
    /// or lock-wait timeout before the caller sees an error.
    pub write_attempts: u32,
    pub cache: CacheSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceCommon::on_ports(8082, 9082),
            write_attempts: 8,
            cache: CacheSettings::default(),
        }
    }
}

impl GrpcSettings for Settings {
    const NAME: &'static str = "relation-service";
    const ENV_PREFIX: &'static str = "RELATION_";

    fn validate_own(&self) -> Result<(), ConfigError> {
        if self.write_attempts == 0 {
            return Err(ConfigError::Invalid(
                "write_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn service(&self) -> &ServiceCommon {
        &self.service
    }
}
