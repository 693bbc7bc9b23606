//! The settings every service binary (the three gRPC services and the
//! gateway) has the same way: how they are loaded and validated
//! ([`ServiceSettings`]), and the block every gRPC service shares
//! ([`ServiceCommon`]: listeners, server limits, mesh key, MySQL, Redis,
//! read-your-writes wait) with its one `validate`.
//!
//! # Keys
//! [`ServiceCommon`] is `#[serde(flatten)]`ed into each service's
//! `Settings`, so its keys stay top-level: `USER_GRPC_ADDR`,
//! `COUNT_MYSQL__URL`, `RELATION_MESH__SECRET`, … (the README's
//! configuration tables). A service's own settings sit beside it.
//!
//! # Error messages
//! serde reads a flattened block from a buffer, and figment's errors then
//! lose the key and the source of a bad value. So when a gRPC service's
//! settings fail to load, the shared block is loaded once more on its own
//! (with the service's defaults), and its error, which names the key
//! (`for key "GRPC.TIMEOUT" in COUNT_ environment variable(s)`), is the one
//! reported.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::Path;

use common::config::{
    AdminSettings, ConfigError, ConsistencySettings, GrpcServerSettings, MysqlSettings,
    RedisSettings,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::mesh_auth::MeshSettings;

/// The settings of a service binary: defaults → optional TOML file →
/// `<ENV_PREFIX>*` environment variables (`common::config::load`), then
/// [`validate`](Self::validate)d.
pub trait ServiceSettings: Serialize + DeserializeOwned + Default {
    /// Environment prefix of the binary (`GATEWAY_`).
    const ENV_PREFIX: &'static str;

    /// Checks what cannot be checked by types alone.
    fn validate(&self) -> Result<(), ConfigError>;

    /// Loads settings from the optional file and the environment and
    /// validates them.
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let s: Self = common::config::load(Self::ENV_PREFIX, file)?;
        s.validate()?;
        Ok(s)
    }
}

/// The settings of a gRPC service binary: the shared [`ServiceCommon`]
/// block and what the service adds. Every `GrpcSettings` is a
/// [`ServiceSettings`] whose `validate` checks the shared block, then
/// [`validate_own`](Self::validate_own).
pub trait GrpcSettings: Serialize + DeserializeOwned + Default {
    /// Name of the binary, for logs (`user-service`).
    const NAME: &'static str;
    /// Environment prefix of the binary (`USER_`).
    const ENV_PREFIX: &'static str;

    /// The block every gRPC service shares.
    fn service(&self) -> &ServiceCommon;

    /// Checks the service's own settings (the shared block is checked
    /// before).
    fn validate_own(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl<T: GrpcSettings> ServiceSettings for T {
    const ENV_PREFIX: &'static str = <T as GrpcSettings>::ENV_PREFIX;

    fn validate(&self) -> Result<(), ConfigError> {
        self.service().validate()?;
        self.validate_own()
    }

    /// As [`ServiceSettings::load`], naming the key of a bad value in the
    /// shared block (see the module docs).
    fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let prefix = <T as GrpcSettings>::ENV_PREFIX;
        let s: Self = common::config::load(prefix, file).map_err(|e| {
            // Loaded alone, a bad value in the shared block names its key.
            common::config::load::<Shared<T>>(prefix, file)
                .err()
                .unwrap_or(e)
        })?;
        s.validate()?;
        Ok(s)
    }
}

/// The shared block of `T`'s settings on its own, with `T`'s defaults.
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
struct Shared<T> {
    service: ServiceCommon,
    #[serde(skip)]
    settings: PhantomData<T>,
}

impl<T: GrpcSettings> Default for Shared<T> {
    fn default() -> Self {
        Self {
            service: T::default().service().clone(),
            settings: PhantomData,
        }
    }
}

/// What every gRPC service is configured with the same way. Flattened into
/// the service's `Settings` (see the module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceCommon {
    /// Dev mode: secrets default to the local stack (`SLUICE_DEV=true`).
    pub dev: bool,
    /// gRPC listen address.
    pub grpc_addr: SocketAddr,
    /// Admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: AdminSettings,
    /// Limits of the gRPC server (`*_GRPC__MAX_CONNECTIONS`, …).
    pub grpc: GrpcServerSettings,
    /// The mesh secret calls must be signed with (`<PREFIX>_MESH__SECRET`;
    /// see [`crate::mesh_auth`]).
    pub mesh: MeshSettings,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    /// Read-your-writes wait (`*_CONSISTENCY__WAIT`).
    pub consistency: ConsistencySettings,
    /// Registration in etcd (`*_DISCOVERY__ETCD`; off when empty).
    pub discovery: crate::discovery::DiscoverySettings,
}

impl Default for ServiceCommon {
    /// Loopback, ports 0 (a free one, as tests want); each service's
    /// `Settings::default` sets its own ports with [`ServiceCommon::on_ports`].
    fn default() -> Self {
        Self::on_ports(0, 0)
    }
}

impl ServiceCommon {
    /// The defaults, listening on `127.0.0.1:<grpc>` and the admin port
    /// `127.0.0.1:<admin>`.
    pub fn on_ports(grpc: u16, admin: u16) -> Self {
        Self {
            dev: false,
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], grpc)),
            admin: AdminSettings::on_port(admin),
            grpc: GrpcServerSettings::default(),
            mesh: MeshSettings::default(),
            mysql: MysqlSettings::default(),
            redis: RedisSettings::default(),
            consistency: ConsistencySettings::default(),
            discovery: crate::discovery::DiscoverySettings::default(),
        }
    }

    /// Checks the listeners (loopback in dev mode), that the MySQL and
    /// Redis URLs and the mesh secret resolve, and the server limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_listeners(self.dev, ("grpc_addr", self.grpc_addr), &self.admin)?;
        self.mysql.resolve_url(self.dev)?;
        self.redis.resolve_url(self.dev)?;
        self.grpc.validate()?;
        self.mesh.resolve_secret(self.dev)?;
        self.discovery.validate()?;
        Ok(())
    }
}

/// A binary's two listeners, its own (`name`, `addr`: `grpc_addr`,
/// `http_addr`) and the admin port, on loopback in dev mode
/// (`common::config::check_dev_listeners`).
pub fn check_listeners(
    dev: bool,
    (name, addr): (&str, SocketAddr),
    admin: &AdminSettings,
) -> Result<(), ConfigError> {
    common::config::check_dev_listeners(dev, &[(name, addr), ("admin.addr", admin.addr)])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::readpath::CacheSettings;

    /// A service's settings as the services write them.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(default)]
    struct Demo {
        #[serde(flatten)]
        service: ServiceCommon,
        cache: CacheSettings,
        attempts: u32,
    }

    impl Default for Demo {
        fn default() -> Self {
            Self {
                service: ServiceCommon::on_ports(8085, 9085),
                cache: CacheSettings::default(),
                attempts: 3,
            }
        }
    }

    impl GrpcSettings for Demo {
        const NAME: &'static str = "demo-service";
        const ENV_PREFIX: &'static str = "SLUICE_SETTINGS_DEMO_";
        fn service(&self) -> &ServiceCommon {
            &self.service
        }
        fn validate_own(&self) -> Result<(), ConfigError> {
            match self.attempts {
                0 => Err(ConfigError::Invalid("attempts must be positive".into())),
                _ => Ok(()),
            }
        }
    }

    fn dev() -> Demo {
        let mut d = Demo::default();
        d.service.dev = true;
        d
    }

    #[test]
    fn the_flattened_block_keeps_its_keys_top_level() {
        let file =
            std::env::temp_dir().join(format!("sluice-settings-demo-{}.toml", std::process::id()));
        std::fs::write(
            &file,
            r#"
grpc_addr = "127.0.0.1:7001"
attempts = 5
[grpc]
max_connections = 7
[mesh]
secret = "a-mesh-secret-of-at-least-thirty-two-bytes"
[mysql]
url = "mysql://u@127.0.0.1:1/db"
max_connections = 4
[redis]
url = "redis://127.0.0.1:2"
namespace = "demo"
[consistency]
wait = "250ms"
[cache]
ttl = "3s"
"#,
        )
        .unwrap();
        let loaded = Demo::load(Some(&file));
        std::fs::remove_file(&file).unwrap();
        let d = loaded.unwrap();
        let s = &d.service;
        assert_eq!(s.grpc_addr, "127.0.0.1:7001".parse().unwrap());
        // Unset: the service's default, not the block's own.
        assert_eq!(s.admin.addr, "127.0.0.1:9085".parse().unwrap());
        assert_eq!(s.grpc.max_connections, 7);
        assert_eq!(s.grpc.timeout, GrpcServerSettings::default().timeout);
        assert_eq!(
            s.mesh.secret.as_ref().unwrap().expose_secret(),
            "a-mesh-secret-of-at-least-thirty-two-bytes"
        );
        assert_eq!(
            s.mysql.url.as_ref().unwrap().expose_secret(),
            "mysql://u@127.0.0.1:1/db"
        );
        assert_eq!(s.mysql.max_connections, Some(4));
        assert_eq!(s.redis.namespace, "demo");
        assert_eq!(s.consistency.wait, Duration::from_millis(250));
        assert_eq!(d.cache.ttl, Duration::from_secs(3));
        assert_eq!(d.cache.capacity, CacheSettings::default().capacity);
        assert_eq!(d.attempts, 5);
    }

    #[test]
    fn a_bad_value_is_reported_with_its_key_in_the_shared_block_and_beside_it() {
        for (i, (toml, key)) in [
            ("[grpc]\ntimeout = \"soon\"\n", "grpc.timeout"),
            ("grpc_addr = \"nowhere\"\n", "grpc_addr"),
            ("attempts = \"many\"\n", "attempts"),
            ("[cache]\nttl = \"soon\"\n", "cache.ttl"),
        ]
        .into_iter()
        .enumerate()
        {
            let file = std::env::temp_dir().join(format!(
                "sluice-settings-bad-{}-{i}.toml",
                std::process::id()
            ));
            std::fs::write(&file, toml).unwrap();
            let loaded = Demo::load(Some(&file));
            std::fs::remove_file(&file).unwrap();
            let err = loaded.unwrap_err().to_string();
            // `for key "default.grpc.timeout" in <file> TOML file`
            assert!(err.contains(&format!(".{key}\" in")), "{key}: {err}");
        }
    }

    #[test]
    fn validate_checks_the_shared_block_then_the_service_own_settings() {
        dev().validate().unwrap();
        let mut public = dev();
        public.service.admin.addr = "0.0.0.0:9085".parse().unwrap();
        let err = public.validate().unwrap_err().to_string();
        assert!(err.contains("admin.addr is 0.0.0.0:9085"), "{err}");
        let mut no_slots = dev();
        no_slots.service.grpc.max_connections = 0;
        assert!(no_slots.validate().is_err());
        let mut short = dev();
        short.service.mesh.secret = Some("too-short".to_owned().into());
        let err = short.validate().unwrap_err().to_string();
        assert!(err.contains("mesh.secret"), "{err}");
        let mut glob = dev();
        glob.service.redis.namespace = "a*".into();
        assert!(glob.validate().is_err());
        let own = Demo {
            attempts: 0,
            ..dev()
        };
        let err = own.validate().unwrap_err().to_string();
        assert!(err.contains("attempts"), "{err}");
    }

    #[test]
    fn outside_dev_mode_mysql_redis_and_the_mesh_key_are_required() {
        let err = Demo::default().validate().unwrap_err().to_string();
        assert!(err.contains("mysql.url"), "{err}");
    }
}
