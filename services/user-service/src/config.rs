//! user-service settings: defaults → optional TOML file → `USER_*`
//! environment variables (`USER_MYSQL__URL`, `USER_GRPC_ADDR`, …).

use std::time::Duration;

use common::config::{ConfigError, RateLimitSettings};
use serde::{Deserialize, Serialize};
use service_kit::jwt::JwtSettings;
use service_kit::settings::{GrpcSettings, ServiceCommon};

/// Everything user-service can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Listeners, gRPC limits, mesh secret, MySQL, Redis and the
    /// read-your-writes wait, as every gRPC service has them (keys stay
    /// top-level: `USER_GRPC_ADDR`, `USER_MYSQL__URL`, …).
    #[serde(flatten)]
    pub service: ServiceCommon,
    /// Token signing (`USER_JWT__SECRET`, `USER_JWT__TTL`); the gateway must use the same secret.
    pub jwt: JwtSettings,
    /// Password hashing and attempt limits of Register and Login (`USER_PASSWORD__…`).
    pub password: PasswordSettings,
    pub cache: CacheSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            service: ServiceCommon::on_ports(8080, 9080),
            jwt: JwtSettings::default(),
            password: PasswordSettings::default(),
            cache: CacheSettings::default(),
        }
    }
}

impl GrpcSettings for Settings {
    const NAME: &'static str = "user-service";
    const ENV_PREFIX: &'static str = "USER_";

    fn validate_own(&self) -> Result<(), ConfigError> {
        self.password
            .per_username
            .validate("password.per_username")?;
        self.jwt.resolve_secret(self.service.dev)?;
        Ok(())
    }

    fn service(&self) -> &ServiceCommon {
        &self.service
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

impl CacheSettings {
    /// What the shared read path (counters, is_follow) takes of these.
    pub fn read_path(&self) -> service_kit::readpath::CacheSettings {
        service_kit::readpath::CacheSettings {
            capacity: self.capacity,
            ttl: self.ttl,
            redis_timeout: self.redis_timeout,
        }
    }
}
