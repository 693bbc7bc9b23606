//! user-service settings: defaults → optional TOML file → `USER_*`
//! environment variables (`USER_MYSQL__URL`, `USER_GRPC_ADDR`, …).

use std::net::SocketAddr;
use std::time::Duration;

use common::config::{
    AdminSettings, ConfigError, ConsistencySettings, GrpcServerSettings, MysqlSettings,
    RateLimitSettings, RedisSettings,
};
use serde::{Deserialize, Serialize};
use service_kit::jwt::JwtSettings;

/// Environment prefix of this binary.
pub const ENV_PREFIX: &str = "USER_";

/// Everything user-service can be configured with.
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
    /// Token signing (`USER_JWT__SECRET`, `USER_JWT__TTL`); the gateway must use the same secret.
    pub jwt: JwtSettings,
    /// Password hashing and attempt limits of Register and Login (`USER_PASSWORD__…`).
    pub password: PasswordSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dev: false,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: AdminSettings::on_port(9080),
            grpc: GrpcServerSettings::default(),
            mesh: Default::default(),
            mysql: MysqlSettings::default(),
            redis: RedisSettings::default(),
            cache: CacheSettings::default(),
            consistency: ConsistencySettings::default(),
            jwt: JwtSettings::default(),
            password: PasswordSettings::default(),
        }
    }
}

/// How much password work Register and Login may cause (see
/// [`crate::hashing`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordSettings {
    /// Password hashes running at once; 0: one per core
    /// (`available_parallelism`).
    pub hash_slots: usize,
    /// Longest a Register or Login waits for a hashing slot; then it is
    /// refused with UNAVAILABLE (`retry-after` metadata; the gateway: 503).
    #[serde(with = "common::config::duration")]
    pub queue_wait: Duration,
    /// Register and Login attempts per username (ignoring case), counted
    /// whatever their outcome; over it: RESOURCE_EXHAUSTED (`retry-after`
    /// metadata; the gateway: 429).
    pub per_username: RateLimitSettings,
}

impl Default for PasswordSettings {
    fn default() -> Self {
        Self {
            hash_slots: 0,
            queue_wait: Duration::from_millis(500),
            per_username: RateLimitSettings::new(10, Duration::from_secs(60)),
        }
    }
}

/// The in-process read cache in front of Redis and MySQL.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheSettings {
    /// Entries kept per cache.
    pub capacity: u64,
    /// Lifetime of a cached counter / is_follow answer.
    #[serde(with = "common::config::duration")]
    pub ttl: Duration,
    /// Lifetime of a cached profile in process.
    #[serde(with = "common::config::duration")]
    pub profile_ttl: Duration,
    /// Lifetime of a cached "no such user" answer.
    #[serde(with = "common::config::duration")]
    pub negative_ttl: Duration,
    /// Lifetime of the profile copy user-service puts in Redis (cache-aside;
    /// the syncer deletes it when the row changes).
    #[serde(with = "common::config::duration")]
    pub redis_profile_ttl: Duration,
    /// Budget of one Redis call; past it the read falls through to MySQL.
    #[serde(with = "common::config::duration")]
    pub redis_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            ttl: Duration::from_secs(1),
            profile_ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(2),
            redis_profile_ttl: Duration::from_secs(60),
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
        self.password
            .per_username
            .validate("password.per_username")?;
        self.jwt.resolve_secret(self.dev)?;
        Ok(())
    }
}
