//! count-service settings: defaults → optional TOML file → `COUNT_*`
//! environment variables (`COUNT_MYSQL__URL`, `COUNT_GRPC_ADDR`, …).

use std::net::SocketAddr;
use std::time::Duration;

use common::config::{
    AdminSettings, ConfigError, ConsistencySettings, GrpcServerSettings, MysqlSettings,
    RedisSettings,
};
use serde::{Deserialize, Serialize};

/// Environment prefix of this binary.
pub const ENV_PREFIX: &str = "COUNT_";

/// Everything count-service can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dev mode: secrets default to the local stack (`SLUICE_DEV=true`).
    pub dev: bool,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: AdminSettings,
    /// Limits of the gRPC server (`*_GRPC__MAX_CONNECTIONS`, …).
    pub grpc: GrpcServerSettings,
    /// The mesh secret calls must be signed with (`<PREFIX>_MESH__SECRET`;
    /// see `service_kit::mesh_auth`).
    pub mesh: service_kit::mesh_auth::MeshSettings,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    pub cache: CacheSettings,
    /// Read-your-writes wait (`*_CONSISTENCY__WAIT`).
    pub consistency: ConsistencySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dev: false,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            admin: AdminSettings::on_port(9081),
            grpc: GrpcServerSettings::default(),
            mesh: Default::default(),
            mysql: MysqlSettings::default(),
            redis: RedisSettings::default(),
            cache: CacheSettings::default(),
            consistency: ConsistencySettings::default(),
        }
    }
}

/// The in-process read cache in front of Redis and MySQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    /// Entries kept per cache.
    pub capacity: u64,
    /// Lifetime of a cached answer.
    #[serde(with = "common::config::duration")]
    pub ttl: Duration,
    /// Budget of one Redis call; past it the read falls through to MySQL.
    #[serde(with = "common::config::duration")]
    pub redis_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(1),
            redis_timeout: Duration::from_millis(100),
        }
    }
}

impl Settings {
    /// Loads settings from the optional file and the environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let s: Self = common::config::load(ENV_PREFIX, file)?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what cannot be checked by types alone.
    pub fn validate(&self) -> Result<(), ConfigError> {
        common::config::check_dev_listeners(
            self.dev,
            &[
                ("grpc_addr", self.grpc_addr),
                ("admin.addr", self.admin.addr),
            ],
        )?;
        self.mysql.resolve_url(self.dev)?;
        self.redis.resolve_url(self.dev)?;
        self.grpc.validate()?;
        self.mesh.resolve_secret(self.dev)?;
        Ok(())
    }
}
