//! gateway settings: defaults → optional TOML file → `GATEWAY_*` environment
//! variables (`GATEWAY_USER_URL`, `GATEWAY_JWT__SECRET`, …).

use std::net::SocketAddr;
use std::time::Duration;

use common::config::{AdminSettings, ConfigError, RateLimitSettings};
use serde::{Deserialize, Serialize};
use service_kit::jwt::JwtSettings;
use service_kit::settings::{ServiceSettings, check_listeners};

/// Everything the gateway can be configured with.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dev mode: the JWT secret defaults to the development key (`SLUICE_DEV=true`).
    pub dev: bool,
    /// REST listen address.
    pub http_addr: SocketAddr,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: AdminSettings,
    /// gRPC endpoint of user-service; several, comma-separated, are
    /// balanced over. Unused when `discovery.etcd` is set.
    pub user_url: String,
    /// gRPC endpoint(s) of relation-service (as `user_url`).
    pub relation_url: String,
    /// gRPC endpoint(s) of count-service (as `user_url`).
    pub count_url: String,
    /// The services' instances from etcd (`GATEWAY_DISCOVERY__ETCD`): when
    /// set, the gateway balances over the registered instances and follows
    /// their registrations and withdrawals instead of the static URLs.
    pub discovery: service_kit::discovery::DiscoverySettings,
    /// Token checking; must share user-service's secret.
    pub jwt: JwtSettings,
    /// The mesh secret the gateway signs its gRPC calls with
    /// (`GATEWAY_MESH__SECRET`; see `service_kit::mesh_auth`).
    pub mesh: service_kit::mesh_auth::MeshSettings,
    /// Budget of one REST request, gRPC calls included; past it: 503.
    #[serde(with = "common::config::duration")]
    pub request_timeout: Duration,
    /// Largest accepted request body, in bytes; larger: 413.
    pub body_limit: usize,
    /// Requests served at once; more are refused with 429.
    pub max_in_flight: usize,
    /// How long an anonymous `GET /v1/users/{id}` answer is kept at the
    /// edge (no bearer token, no consistency token); 0 turns it off.
    #[serde(with = "common::config::duration")]
    pub edge_cache_ttl: Duration,
    /// Most profiles the edge cache keeps.
    pub edge_cache_capacity: u64,
    /// A connection waiting for a request (just accepted, or after its
    /// previous answer) that sends no byte of one for this long is closed.
    #[serde(with = "common::config::duration")]
    pub idle_timeout: Duration,
    /// Once the first byte of a request has arrived, its head (request line
    /// and headers) must be complete within this; else the connection is
    /// closed.
    #[serde(with = "common::config::duration")]
    pub header_read_timeout: Duration,
    /// Most connections open at once; at the cap the one idle longest is
    /// closed to make room (see [`crate::listener`]). Keep it below the
    /// process's open-file limit.
    pub max_connections: usize,
    /// Register and login attempts per client address (an IPv4 address, an
    /// IPv6 /64), counted whatever their outcome; over it: 429.
    pub auth_per_client: RateLimitSettings,
}

/// Largest accepted `max_connections`.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

impl Default for Settings {
    fn default() -> Self {
        Self {
            dev: false,
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8888)),
            admin: AdminSettings::on_port(9888),
            user_url: "http://127.0.0.1:8080".into(),
            relation_url: "http://127.0.0.1:8082".into(),
            count_url: "http://127.0.0.1:8081".into(),
            discovery: Default::default(),
            jwt: JwtSettings::default(),
            mesh: Default::default(),
            request_timeout: Duration::from_secs(5),
            body_limit: 16 * 1024,
            max_in_flight: 4096,
            edge_cache_ttl: Duration::from_millis(200),
            edge_cache_capacity: 100_000,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 4096,
            auth_per_client: RateLimitSettings::new(60, Duration::from_secs(60)),
        }
    }
}

impl ServiceSettings for Settings {
    const ENV_PREFIX: &'static str = "GATEWAY_";

    fn validate(&self) -> Result<(), ConfigError> {
        check_listeners(self.dev, ("http_addr", self.http_addr), &self.admin)?;
        self.jwt.resolve_secret(self.dev)?;
        self.mesh.resolve_secret(self.dev)?;
        for (name, url) in [
            ("user_url", &self.user_url),
            ("relation_url", &self.relation_url),
            ("count_url", &self.count_url),
        ] {
            for url in url.split(',').map(str::trim) {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::Invalid(format!(
                        "{name} must be http:// or https:// urls (comma-separated), got {url:?}"
                    )));
                }
            }
        }
        self.discovery.validate()?;
        if self.body_limit == 0 || self.max_in_flight == 0 {
            return Err(ConfigError::Invalid(
                "body_limit and max_in_flight must be positive".into(),
            ));
        }
        if self.idle_timeout.is_zero() || self.header_read_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "idle_timeout and header_read_timeout must be positive".into(),
            ));
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&self.max_connections) {
            return Err(ConfigError::Invalid(format!(
                "max_connections must be 1..={MAX_CONNECTIONS_LIMIT}, got {}",
                self.max_connections
            )));
        }
        self.auth_per_client.validate("auth_per_client")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults in dev mode: valid.
    fn dev() -> Settings {
        let dev = Settings {
            dev: true,
            ..Settings::default()
        };
        dev.validate().unwrap();
        dev
    }

    #[test]
    fn dev_mode_refuses_a_public_listener_and_a_short_secret() {
        let dev = dev();
        let public = Settings {
            http_addr: "0.0.0.0:8888".parse().unwrap(),
            ..dev.clone()
        };
        let err = public.validate().unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        let mut short = dev.clone();
        short.jwt.secret = Some("too-short".to_owned().into());
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("at least 32 bytes"), "{err}");
    }

    #[test]
    fn connection_limits_and_the_client_rate_limit_are_validated() {
        let ok = dev();
        for bad in [
            Settings {
                idle_timeout: Duration::ZERO,
                ..ok.clone()
            },
            Settings {
                header_read_timeout: Duration::ZERO,
                ..ok.clone()
            },
            Settings {
                max_connections: 0,
                ..ok.clone()
            },
            Settings {
                auth_per_client: RateLimitSettings::new(3, Duration::ZERO),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
