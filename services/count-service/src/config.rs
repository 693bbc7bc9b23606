//! count-service settings: defaults → optional TOML file → `COUNT_*`
//! environment variables (`COUNT_MYSQL__URL`, `COUNT_GRPC_ADDR`, …).

use serde::{Deserialize, Serialize};
pub use service_kit::readpath::CacheSettings;
use service_kit::settings::{GrpcSettings, ServiceCommon};

/// Everything count-service can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Listeners, gRPC limits, mesh secret, MySQL, Redis and the
    /// read-your-writes wait, as every gRPC service has them (keys stay
    /// top-level: `COUNT_GRPC_ADDR`, `COUNT_MYSQL__URL`, …).
    #[serde(flatten)]
    pub service: ServiceCommon,
    pub cache: CacheSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceCommon::on_ports(8081, 9081),
            cache: CacheSettings::default(),
        }
    }
}

impl GrpcSettings for Settings {
    const NAME: &'static str = "count-service";
    const ENV_PREFIX: &'static str = "COUNT_";

    fn service(&self) -> &ServiceCommon {
        &self.service
    }
}
