//! Settings loading: defaults → optional TOML file → environment.
//!
//! Environment variables carry a per-binary prefix and use `__` for nesting:
//! `RELAY_MYSQL__URL` sets `mysql.url` of the relay. `SLUICE_DEV=true` (or
//! `<PREFIX>_DEV=true`) turns on dev mode, the only mode in which secrets such
//! as database URLs and the JWT key have a usable default. Durations are
//! written as `"5s"`, `"250ms"`. Tests build settings in code instead.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Loading or validating settings failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Loads `T` from its `Default`, then the TOML file (if given), then env
/// variables starting with `prefix` (e.g. `"RELAY_"`).
pub fn load<T>(prefix: &str, file: Option<&Path>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut fig = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::Invalid(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        fig = fig.merge(Toml::file(path));
    }
    fig = fig
        .merge(Env::raw().only(&["SLUICE_DEV"]).map(|_| "dev".into()))
        .merge(Env::prefixed(prefix).split("__"));
    fig.extract().map_err(|e| ConfigError::Load(Box::new(e)))
}

/// A shared secret (`name`, e.g. `jwt.secret`): the configured one, or
/// `dev_default` in dev mode when none is configured. A configured secret
/// is never replaced: one shorter than `min_bytes` is an error in every
/// mode, and outside dev mode there is no default.
pub fn resolve_secret(
    configured: Option<&SecretString>,
    dev: bool,
    name: &str,
    env_hint: &str,
    min_bytes: usize,
    dev_default: &'static str,
) -> Result<SecretString, ConfigError> {
    let configured = configured.filter(|s| !s.expose_secret().is_empty());
    match (configured, dev) {
        (Some(s), _) if s.expose_secret().len() >= min_bytes => Ok(s.clone()),
        (Some(_), _) => Err(ConfigError::Invalid(format!(
            "{name} must be at least {min_bytes} bytes long"
        ))),
        (None, true) => Ok(SecretString::from(dev_default)),
        (None, false) => Err(ConfigError::Invalid(format!(
            "{name} is required (set {env_hint}, or SLUICE_DEV=true for a development key)"
        ))),
    }
}

/// Dev mode's defaults (the local stack's URLs, a public JWT key) are safe
/// only where nobody else can connect: in dev mode every listener must be on
/// a loopback address. `listeners` are (setting name, address) pairs.
pub fn check_dev_listeners(dev: bool, listeners: &[(&str, SocketAddr)]) -> Result<(), ConfigError> {
    match listeners.iter().find(|(_, a)| dev && !a.ip().is_loopback()) {
        Some((name, addr)) => Err(ConfigError::Invalid(format!(
            "{name} is {addr}, not a loopback address: dev mode (SLUICE_DEV) uses public \
             development keys and refuses to listen beyond this machine; turn dev mode off \
             and configure the secrets, or listen on 127.0.0.1"
        ))),
        None => Ok(()),
    }
}

/// Dev-mode defaults of the local stack (`scripts/env.sh`).
pub mod dev {
    pub const MYSQL_URL: &str = "mysql://root@127.0.0.1:3307/sluice";
    pub const REDIS_URL: &str = "redis://127.0.0.1:6380";
    pub const KAFKA_BROKERS: &str = "127.0.0.1:9092";
}

/// MySQL / MariaDB connection.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MysqlSettings {
    /// `mysql://user:password@host:port/db`. No default outside dev mode.
    #[serde(serialize_with = "ser_secret_opt")]
    pub url: Option<SecretString>,
    /// Maximum pool size.
    pub max_connections: Option<u32>,
}

impl MysqlSettings {
    /// The URL to connect to: the configured one, or the local stack's in dev mode.
    pub fn resolve_url(&self, dev: bool) -> Result<SecretString, ConfigError> {
        match (&self.url, dev) {
            (Some(u), _) if !u.expose_secret().is_empty() => Ok(u.clone()),
            (_, true) => Ok(SecretString::from(dev::MYSQL_URL)),
            _ => Err(ConfigError::Invalid(
                "mysql.url is required (set <PREFIX>_MYSQL__URL, or SLUICE_DEV=true for the local stack)".into(),
            )),
        }
    }
}

/// Redis connection and key namespace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    /// `redis://host:port/db`; may carry a password, so no default outside dev mode.
    #[serde(serialize_with = "ser_secret_opt")]
    pub url: Option<SecretString>,
    /// Key namespace (first segment of every key).
    pub namespace: String,
    /// Number of counter hash buckets B (DESIGN §5).
    pub counter_buckets: u64,
    /// IsFollow bloom filter size; the writer (syncer) and readers must agree.
    pub bloom: crate::bloom::BloomParams,
    /// `url` names a Redis Cluster (one seed node is enough). A
    /// comma-separated `url` list of seed nodes means a cluster too.
    pub cluster: bool,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            namespace: "sluice".into(),
            counter_buckets: crate::keys::DEFAULT_COUNTER_BUCKETS,
            bloom: Default::default(),
            cluster: false,
        }
    }
}

impl RedisSettings {
    /// Whether the settings name a Redis Cluster: `cluster`, or a
    /// comma-separated `url` list.
    pub fn is_cluster(&self) -> bool {
        self.cluster
            || self
                .url
                .as_ref()
                .is_some_and(|u| u.expose_secret().contains(','))
    }

    /// The URL to connect to: the configured one, or the local stack's in
    /// dev mode. Every service validates its Redis settings through here, so
    /// it also refuses a namespace that is not a plain name: keys are found
    /// by `SCAN MATCH <namespace>:…` (rebuild, tests), where glob characters
    /// would reach other namespaces' keys.
    pub fn resolve_url(&self, dev: bool) -> Result<SecretString, ConfigError> {
        let ns = &self.namespace;
        if ns.is_empty()
            || ns.len() > 64
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(ConfigError::Invalid(format!(
                "redis.namespace {ns:?} must be 1-64 characters of A-Z a-z 0-9 _ - ."
            )));
        }
        match (&self.url, dev) {
            (Some(u), _) if !u.expose_secret().is_empty() => Ok(u.clone()),
            (_, true) => Ok(SecretString::from(dev::REDIS_URL)),
            _ => Err(ConfigError::Invalid(
                "redis.url is required (set <PREFIX>_REDIS__URL, or SLUICE_DEV=true for the local stack)".into(),
            )),
        }
    }

    /// The key builder for these settings.
    /// In cluster mode an unsharded bloom filter is split in 16 (one 16 MiB
    /// key would sit on one node).
    pub fn keys(&self) -> crate::keys::Keys {
        let mut bloom = self.bloom;
        if self.is_cluster() && bloom.shards_log2 == 0 {
            bloom.shards_log2 = 4;
        }
        crate::keys::Keys::new(&self.namespace, self.counter_buckets).with_bloom(bloom)
    }
}

/// Kafka connection and topic prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list (use `127.0.0.1`, not `localhost`).
    pub brokers: String,
    /// Topic prefix (`<prefix>.<db>.<table>`).
    pub topic_prefix: String,
    /// SASL user. With `password`, every client authenticates with
    /// `sasl_mechanism` over `security_protocol`; without, none does.
    pub username: Option<String>,
    /// SASL password (`<PREFIX>_KAFKA__PASSWORD`).
    #[serde(serialize_with = "ser_secret_opt")]
    pub password: Option<SecretString>,
    /// `PLAIN` (the one mechanism this build of librdkafka has: SCRAM and
    /// GSSAPI need OpenSSL or Cyrus SASL, which sluice does not link).
    pub sasl_mechanism: String,
    /// `SASL_PLAINTEXT` (default; this build of librdkafka has no TLS).
    pub security_protocol: String,
}

impl KafkaSettings {
    /// Checks the SASL settings (every binary with Kafka settings calls it).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let password = self.password.as_ref().map(|p| p.expose_secret().is_empty());
        match (self.username.as_deref(), password) {
            (None, None) => Ok(()),
            (Some(user), Some(false)) if !user.is_empty() => {
                if self.sasl_mechanism != "PLAIN" {
                    return Err(ConfigError::Invalid(format!(
                        "kafka.sasl_mechanism {:?}: only PLAIN (sluice's librdkafka links no OpenSSL or Cyrus SASL)",
                        self.sasl_mechanism
                    )));
                }
                if self.security_protocol != "SASL_PLAINTEXT" {
                    return Err(ConfigError::Invalid(format!(
                        "kafka.security_protocol {:?}: only SASL_PLAINTEXT (sluice's librdkafka is built without TLS)",
                        self.security_protocol
                    )));
                }
                Ok(())
            }
            _ => Err(ConfigError::Invalid(
                "kafka.username and kafka.password are set together, both non-empty".into(),
            )),
        }
    }

    /// The librdkafka properties every client of these settings starts
    /// from: the brokers and, when a user is configured, SASL.
    pub fn client_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("bootstrap.servers", self.brokers.clone())];
        if let (Some(user), Some(pw)) = (&self.username, &self.password) {
            out.extend([
                ("security.protocol", self.security_protocol.clone()),
                ("sasl.mechanism", self.sasl_mechanism.clone()),
                ("sasl.username", user.clone()),
                ("sasl.password", pw.expose_secret().to_owned()),
            ]);
        }
        out
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: dev::KAFKA_BROKERS.into(),
            topic_prefix: "sluice".into(),
            username: None,
            password: None,
            sasl_mechanism: "PLAIN".into(),
            security_protocol: "SASL_PLAINTEXT".into(),
        }
    }
}

/// The admin HTTP listener of a binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminSettings {
    pub addr: SocketAddr,
}

impl AdminSettings {
    pub fn on_port(port: u16) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// Read-your-writes: how long a token-carrying read may wait for the
/// cache-syncer's watermark before it reads MySQL instead.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsistencySettings {
    /// Longest added wait of one read (`<PREFIX>_CONSISTENCY__WAIT=500ms`).
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Watermark polling period while reads wait.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
}

impl Default for ConsistencySettings {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(1),
            poll: Duration::from_millis(2),
        }
    }
}

/// A rate limit per key (a client address, a username): at most `attempts`
/// within any `per` window, that is a burst of `attempts` at once, then one
/// more every `per / attempts` (GCRA, see `service_kit::ratelimit`).
/// `attempts = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Attempts allowed per window; 0: no limit.
    pub attempts: u32,
    /// The window (`"1m"`).
    #[serde(with = "humantime_serde")]
    pub per: Duration,
}

impl Default for RateLimitSettings {
    /// Off.
    fn default() -> Self {
        Self {
            attempts: 0,
            per: Duration::from_secs(60),
        }
    }
}

impl RateLimitSettings {
    /// `attempts` per `per`.
    pub fn new(attempts: u32, per: Duration) -> Self {
        Self { attempts, per }
    }

    /// Checks that a limit that is on has a window it can divide; `name`
    /// is the setting's name for the message.
    pub fn validate(&self, name: &str) -> Result<(), ConfigError> {
        if self.attempts > 0 && (self.per / self.attempts).is_zero() {
            return Err(ConfigError::Invalid(format!(
                "{name}.per must be positive and at least {name}.attempts nanoseconds, got {:?} for {} attempts",
                self.per, self.attempts
            )));
        }
        Ok(())
    }
}

/// Limits of a service's gRPC server (`<PREFIX>_GRPC__…`): how many
/// connections, how many calls on one, how long a call and a connection may
/// live. Clients (the gateway) keep one multiplexed HTTP/2 connection per
/// service, so the connection cap only bites on misbehaving clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcServerSettings {
    /// Most connections open at once. At the cap the server stops accepting
    /// until one closes; new clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Calls served at once on one connection; more wait their turn. Keep it
    /// at least the gateway's `max_in_flight`: the gateway sends all its
    /// calls to a service over one connection.
    pub concurrency_per_connection: usize,
    /// Longest a call may run (a client's shorter `grpc-timeout` wins).
    /// Above count-service's longest AwaitApplied wait (60 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// HTTP/2 PING period; a peer that does not answer one within
    /// `keepalive_timeout` is disconnected.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Longest a connection lives: then the server sends GOAWAY (tonic and
    /// other gRPC clients reconnect by themselves) and closes it
    /// `max_connection_age_grace` later, whatever it is doing. This also
    /// ends a connection that never speaks HTTP/2 and holds a slot. Keep
    /// the grace at least `timeout`, so that no call is cut.
    #[serde(with = "humantime_serde")]
    pub max_connection_age: Duration,
    #[serde(with = "humantime_serde")]
    pub max_connection_age_grace: Duration,
}

impl Default for GrpcServerSettings {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            concurrency_per_connection: 4096,
            timeout: Duration::from_secs(75),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(30 * 60),
            max_connection_age_grace: Duration::from_secs(75),
        }
    }
}

impl GrpcServerSettings {
    /// Checks that every bound is positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 || self.concurrency_per_connection == 0 {
            return Err(ConfigError::Invalid(
                "grpc.max_connections and grpc.concurrency_per_connection must be positive".into(),
            ));
        }
        for (name, d) in [
            ("timeout", self.timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
            ("max_connection_age", self.max_connection_age),
            ("max_connection_age_grace", self.max_connection_age_grace),
        ] {
            if d.is_zero() {
                return Err(ConfigError::Invalid(format!(
                    "grpc.{name} must be positive"
                )));
            }
        }
        Ok(())
    }
}

/// Serde helper for `Duration` fields written as `"5s"`.
pub use humantime_serde as duration;

/// A `Duration` that (de)serialises as `"5s"`; handy for defaults.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ser_secret_opt<S: serde::Serializer>(
    v: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    // Only used to seed figment with defaults; a real secret never reaches a log.
    match v {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redis_namespace_with_glob_characters_is_refused() {
        let mut r = RedisSettings::default();
        r.resolve_url(true).unwrap();
        for bad in [
            "*",
            "sluice*",
            "a:b",
            "a?",
            "[ab]",
            "",
            "a b",
            &"n".repeat(65),
        ] {
            r.namespace = bad.to_owned();
            let err = r.resolve_url(true).unwrap_err().to_string();
            assert!(err.contains("redis.namespace"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn dev_mode_listens_on_loopback_only() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        check_dev_listeners(true, &[("grpc_addr", lo), ("admin.addr", lo6)]).unwrap();
        check_dev_listeners(false, &[("grpc_addr", any)]).unwrap();
        let err = check_dev_listeners(true, &[("admin.addr", lo), ("grpc_addr", any)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("grpc_addr is 0.0.0.0:8080"), "{err}");
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    #[serde(default)]
    struct Demo {
        dev: bool,
        mysql: MysqlSettings,
        #[serde(with = "humantime_serde")]
        timeout: Duration,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error
    fn env_overrides_file_and_nested_keys_use_double_underscore() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "demo.toml",
                "timeout = \"5s\"\n[mysql]\nmax_connections = 3\n",
            )?;
            jail.set_env("DEMO_MYSQL__MAX_CONNECTIONS", "9");
            let d: Demo = load("DEMO_", Some(Path::new("demo.toml"))).unwrap();
            assert_eq!(d.timeout, Duration::from_secs(5));
            assert_eq!(d.mysql.max_connections, Some(9));
            assert!(!d.dev);
            Ok(())
        });
    }

    #[test]
    fn database_url_has_no_default_outside_dev_mode() {
        let m = MysqlSettings::default();
        assert!(m.resolve_url(false).is_err());
        assert_eq!(m.resolve_url(true).unwrap().expose_secret(), dev::MYSQL_URL);
    }

    #[test]
    fn rate_limits_and_grpc_limits_are_validated() {
        assert!(RateLimitSettings::default().validate("x").is_ok());
        assert!(RateLimitSettings::new(5, secs(60)).validate("x").is_ok());
        let e = RateLimitSettings::new(5, Duration::ZERO)
            .validate("login")
            .unwrap_err();
        assert!(e.to_string().contains("login.per"), "{e}");
        assert!(GrpcServerSettings::default().validate().is_ok());
        let zero = GrpcServerSettings {
            max_connections: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
        let no_age = GrpcServerSettings {
            max_connection_age: Duration::ZERO,
            ..Default::default()
        };
        assert!(no_age.validate().is_err());
    }

    #[test]
    fn missing_config_file_is_a_clear_error() {
        let e = load::<Demo>("DEMO_", Some(Path::new("/nonexistent/x.toml"))).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
