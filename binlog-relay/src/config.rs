//! Relay settings: defaults → optional TOML file → `RELAY_…` environment
//! variables (`RELAY_MYSQL__URL`, `RELAY_KAFKA__BROKERS`,
//! `RELAY_FILTER__INCLUDE_DATABASES`, …), loaded by `common::config::load`.
//! Tests build [`Settings`] in code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::{AdminSettings, ConfigError, KafkaSettings, MysqlSettings};
use serde::{Deserialize, Serialize};

use crate::format::Format;

/// Environment prefix of the relay.
pub const ENV_PREFIX: &str = "RELAY_";
/// Default admin port (DESIGN §6).
pub const DEFAULT_ADMIN_PORT: u16 = 9101;

/// Everything the relay needs to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dev mode: secrets default to the local stack.
    pub dev: bool,
    pub mysql: MysqlSettings,
    pub kafka: KafkaSettings,
    pub admin: AdminSettings,
    /// The replica server id the relay registers with; must differ from the
    /// source's and from every other replica's.
    pub server_id: u32,
    /// Where the checkpoint file lives.
    pub state_dir: PathBuf,
    pub filter: Filter,
    /// Column rules, `db.table.column` (db and table may be `*`) → `keep`,
    /// `exclude`, `hash:<salt>` or `replace:<text>` ([`crate::columns`]).
    /// The default excludes `*.user.password_hash`; a file's `[columns]`
    /// table adds to it (set that key to `keep` to publish the column).
    pub columns: BTreeMap<String, String>,
    /// Which columns make each table's message key ([`crate::keys`],
    /// Debezium's `message.key.columns`): `<db>.<table>:<col>[,<col>...]`
    /// entries separated by `;`, the table part a regular expression over
    /// `db.table`. The default ([`crate::keys::DEFAULT`]) keys `counter` by
    /// `owner_id` and `follow` by `from_id,to_id` in any database; tables no
    /// entry names, and every table when the setting is empty, are keyed by
    /// their primary key.
    pub message_key_columns: String,
    /// Send a tombstone (same key, null value) after each delete (debezium
    /// format only).
    pub tombstones: bool,
    /// Value format of row-change messages: `debezium` (default), `canal`
    /// or `maxwell` (see [`crate::format`]). `binlog-relay run --format`
    /// overrides it.
    pub format: Format,
    /// How often a heartbeat record is produced.
    #[serde(with = "common::config::duration")]
    pub heartbeat_interval: Duration,
    /// How soon after the acknowledged position moves an extra heartbeat
    /// carries it to the syncer (the read-your-writes watermark's step).
    #[serde(with = "common::config::duration")]
    pub watermark_interval: Duration,
    /// Longest time an acknowledged position waits before it is written to the checkpoint.
    #[serde(with = "common::config::duration")]
    pub checkpoint_interval: Duration,
    /// Partitions of topics the relay creates.
    pub topic_partitions: i32,
    /// Create a table's topic when its first change is seen (the broker may not auto-create).
    pub create_topics: bool,
    /// Wait between reconnect attempts after a transient error.
    #[serde(with = "common::config::duration")]
    pub retry_backoff: Duration,
    pub snapshot: SnapshotSettings,
    /// The idempotent producer (on by default: a retry, even across a
    /// broker restart, writes each message once and in order). Off means
    /// one request in flight per broker instead, so order still holds and a
    /// retry may only duplicate (the syncer skips by `sluice.seq`); for
    /// brokers without idempotent-producer support.
    pub idempotence: bool,
    /// Extra librdkafka producer properties (e.g. `compression.type = "zstd"`).
    pub producer: BTreeMap<String, String>,
    /// Leader election among relays of one name (see [`crate::ha`]).
    pub ha: HaSettings,
    /// Kafka transactions (see [`crate::eos`]).
    pub exactly_once: ExactlyOnceSettings,
    /// The Debezium drop-in encoding (see [`crate::format::connect`]).
    pub debezium: DebeziumSettings,
}

/// `RELAY_DEBEZIUM__*`: how the `debezium` format encodes values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DebeziumSettings {
    /// `sluice` (default): sluice's typed JSON (DESIGN §4); `debezium`:
    /// every value, the envelope and the key as Debezium's connector and
    /// Kafka Connect's `JsonConverter` encode them.
    pub value_encoding: ValueEncoding,
    /// With `value_encoding = debezium`: each key and value carries its
    /// Connect schema block (`{"schema":…,"payload":…}`, JsonConverter's
    /// `schemas.enable=true`).
    pub schemas_enable: bool,
    /// Debezium's `decimal.handling.mode`: `precise` (default), `double`,
    /// `string`.
    pub decimal_handling_mode: DecimalMode,
    /// Debezium's `time.precision.mode`: `adaptive_time_microseconds`
    /// (default), `connect`.
    pub time_precision_mode: TimePrecisionMode,
    /// Debezium's `bigint.unsigned.handling.mode`: `long` (default),
    /// `precise`.
    pub bigint_unsigned_handling_mode: BigintUnsignedMode,
    /// Debezium's `binary.handling.mode`: `bytes` (default), `base64`,
    /// `base64-url-safe`, `hex`.
    pub binary_handling_mode: BinaryMode,
}

impl Default for DebeziumSettings {
    fn default() -> Self {
        Self {
            value_encoding: ValueEncoding::Sluice,
            schemas_enable: false,
            decimal_handling_mode: DecimalMode::Precise,
            time_precision_mode: TimePrecisionMode::AdaptiveTimeMicroseconds,
            bigint_unsigned_handling_mode: BigintUnsignedMode::Long,
            binary_handling_mode: BinaryMode::Bytes,
        }
    }
}

/// See [`DebeziumSettings::value_encoding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueEncoding {
    Sluice,
    Debezium,
}

impl std::str::FromStr for ValueEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sluice" => Ok(Self::Sluice),
            "debezium" => Ok(Self::Debezium),
            _ => Err(format!(
                "unknown value encoding {s:?}: expected sluice or debezium"
            )),
        }
    }
}

/// Debezium's `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecimalMode {
    Precise,
    Double,
    String,
}

/// Debezium's `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePrecisionMode {
    AdaptiveTimeMicroseconds,
    Connect,
}

/// Debezium's `bigint.unsigned.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BigintUnsignedMode {
    Long,
    Precise,
}

/// Debezium's `binary.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryMode {
    Bytes,
    Base64,
    #[serde(rename = "base64-url-safe")]
    Base64UrlSafe,
    Hex,
}

/// `RELAY_EXACTLY_ONCE__*`: publishing through Kafka transactions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ExactlyOnceSettings {
    /// `auto` (default): on when the broker accepts a transactional
    /// producer, else off with a warning; `on`: required (the relay does not
    /// start without it); `off`: the idempotent producer alone
    /// (at-least-once).
    pub mode: ExactlyOnceMode,
    /// Longest a completed source transaction waits for its Kafka commit
    /// while the relay is behind (a backlog, a bulk load, a replay): the
    /// source transactions completed meanwhile are committed together. A
    /// caught-up relay commits as soon as a transaction ends (at most every
    /// 5 ms).
    #[serde(with = "common::config::duration")]
    pub commit_interval: Duration,
    /// A source transaction with more messages than this is split over
    /// several Kafka transactions (its checkpoint only at its end), so
    /// `read_committed` readers are not held back by one huge transaction.
    pub max_messages: usize,
}

/// See [`ExactlyOnceSettings::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExactlyOnceMode {
    Auto,
    On,
    Off,
}

impl Default for ExactlyOnceSettings {
    fn default() -> Self {
        Self {
            mode: ExactlyOnceMode::Auto,
            commit_interval: Duration::from_millis(100),
            max_messages: 50_000,
        }
    }
}

/// `RELAY_HA__*`: several relays of one logical name, one streaming.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HaSettings {
    /// Off: one relay, its checkpoint a file in `state_dir` (as before).
    /// On: the relay streams only while it holds the lease of `name` on the
    /// source database, and keeps its checkpoint there, fenced by an epoch.
    pub enabled: bool,
    /// The logical relay: relays of one name share one lease and one
    /// checkpoint (1..=64 characters).
    pub name: String,
    /// How long a leader that stopped answering (frozen, cut off) keeps the
    /// lease: its lock session's `wait_timeout`. Whole seconds, >= 1.
    #[serde(with = "common::config::duration")]
    pub lease_timeout: Duration,
}

impl Default for HaSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            name: "sluice".into(),
            lease_timeout: Duration::from_secs(3),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dev: false,
            mysql: MysqlSettings::default(),
            kafka: KafkaSettings::default(),
            admin: AdminSettings::on_port(DEFAULT_ADMIN_PORT),
            server_id: 1001,
            state_dir: PathBuf::from(".state/binlog-relay"),
            filter: Filter::default(),
            columns: crate::columns::default_rules(),
            message_key_columns: crate::keys::DEFAULT.to_owned(),
            tombstones: true,
            format: Format::Debezium,
            heartbeat_interval: Duration::from_secs(5),
            watermark_interval: Duration::from_millis(10),
            checkpoint_interval: Duration::from_millis(200),
            topic_partitions: 6,
            create_topics: true,
            retry_backoff: Duration::from_secs(1),
            snapshot: SnapshotSettings::default(),
            idempotence: true,
            producer: BTreeMap::new(),
            ha: HaSettings::default(),
            exactly_once: ExactlyOnceSettings::default(),
            debezium: DebeziumSettings::default(),
        }
    }
}

impl Settings {
    /// Loads and validates the settings.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let s: Settings = common::config::load(ENV_PREFIX, file)?;
        s.validate()?;
        Ok(s)
    }

    /// Checks values that serde cannot.
    /// Whether row changes use Debezium's own encoding (the drop-in mode).
    pub fn drop_in(&self) -> bool {
        self.debezium.value_encoding == ValueEncoding::Debezium
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.server_id == 0 {
            return invalid("server_id must be > 0 (and differ from the source's server_id)");
        }
        self.kafka.validate()?;
        if self.kafka.brokers.trim().is_empty() {
            return invalid("kafka.brokers is empty");
        }
        if self.kafka.topic_prefix.is_empty() || self.kafka.topic_prefix.contains(['/', ' ']) {
            return invalid("kafka.topic_prefix must be a non-empty topic name part");
        }
        if self.topic_partitions < 1 {
            return invalid("topic_partitions must be >= 1");
        }
        if self.ha.enabled {
            let n = self.ha.name.chars().count();
            if !(1..=64).contains(&n) {
                return invalid("ha.name must be 1 to 64 characters");
            }
            let t = self.ha.lease_timeout;
            if t < Duration::from_secs(1) || t.subsec_nanos() != 0 {
                return invalid("ha.lease_timeout must be a whole number of seconds, at least 1s");
            }
        }
        if self.heartbeat_interval.is_zero()
            || self.checkpoint_interval.is_zero()
            || self.watermark_interval.is_zero()
        {
            return invalid(
                "heartbeat_interval, watermark_interval and checkpoint_interval must be > 0",
            );
        }
        if self.exactly_once.mode == ExactlyOnceMode::On && !self.idempotence {
            return invalid("exactly_once.mode = on needs idempotence = true");
        }
        if self.exactly_once.commit_interval.is_zero() || self.exactly_once.max_messages == 0 {
            return invalid(
                "exactly_once.commit_interval and exactly_once.max_messages must be > 0",
            );
        }
        if self.snapshot.chunk_size == 0 {
            return invalid("snapshot.chunk_size must be > 0");
        }
        if self.drop_in() && self.format != Format::Debezium {
            return invalid(
                "debezium.value_encoding = debezium needs format = debezium (canal and maxwell have their own encodings)",
            );
        }
        if self.debezium.schemas_enable && !self.drop_in() {
            return invalid("debezium.schemas_enable needs debezium.value_encoding = debezium");
        }
        self.column_rules()?;
        self.key_columns()?;
        common::config::check_dev_listeners(self.dev, &[("admin.addr", self.admin.addr)])?;
        self.mysql.resolve_url(self.dev)?;
        Ok(())
    }

    /// The parsed column rules.
    pub fn column_rules(&self) -> Result<crate::columns::ColumnRules, ConfigError> {
        crate::columns::ColumnRules::parse(&self.columns).map_err(ConfigError::Invalid)
    }

    /// The parsed `message_key_columns`.
    pub fn key_columns(&self) -> Result<crate::keys::KeyColumns, ConfigError> {
        crate::keys::KeyColumns::parse(&self.message_key_columns).map_err(ConfigError::Invalid)
    }

    /// Whether the relay asks for a transactional producer.
    pub fn wants_transactions(&self) -> bool {
        self.idempotence && self.exactly_once.mode != ExactlyOnceMode::Off
    }

    /// The relay's `transactional.id`: one per logical relay (topic prefix
    /// and `ha.name`), so a relay that takes over fences the producer of
    /// the one before it.
    pub fn transactional_id(&self) -> String {
        format!("sluice-relay.{}.{}", self.kafka.topic_prefix, self.ha.name)
    }

    /// Path of the checkpoint file.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.state_dir.join("checkpoint.json")
    }
}

/// Which tables are relayed. Names are exact; a table passes when its
/// database is included (or the include list is empty) and neither it nor its
/// database is excluded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub include_databases: Vec<String>,
    pub exclude_databases: Vec<String>,
    /// `db.table` entries; when non-empty, only these tables pass.
    pub include_tables: Vec<String>,
    /// `db.table` entries.
    pub exclude_tables: Vec<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            include_databases: Vec::new(),
            exclude_databases: ["mysql", "information_schema", "performance_schema", "sys"]
                .map(String::from)
                .to_vec(),
            include_tables: Vec::new(),
            exclude_tables: Vec::new(),
        }
    }
}

impl Filter {
    /// Whether changes of `db.table` are relayed. The relay's own state
    /// table ([`crate::ha::STATE_TABLE`]) never is.
    pub fn allows(&self, db: &str, table: &str) -> bool {
        if table == crate::ha::STATE_TABLE {
            return false;
        }
        let full = |t: &String| {
            t.split_once('.')
                .is_some_and(|(d, n)| d == db && n == table)
        };
        if self.exclude_databases.iter().any(|d| d == db) || self.exclude_tables.iter().any(full) {
            return false;
        }
        if !self.include_tables.is_empty() {
            return self.include_tables.iter().any(full);
        }
        self.include_databases.is_empty() || self.include_databases.iter().any(|d| d == db)
    }

    /// Whether any table of `db` may be relayed.
    pub fn allows_database(&self, db: &str) -> bool {
        if self.exclude_databases.iter().any(|d| d == db) {
            return false;
        }
        if !self.include_tables.is_empty() {
            return self
                .include_tables
                .iter()
                .any(|t| t.split_once('.').is_some_and(|(d, _)| d == db));
        }
        self.include_databases.is_empty() || self.include_databases.iter().any(|d| d == db)
    }
}

/// Initial and on-demand snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotSettings {
    /// `initial`: snapshot the filtered tables when no checkpoint exists;
    /// `never`: start streaming at once.
    pub mode: SnapshotMode,
    /// Rows per chunk (one `SELECT … ORDER BY pk LIMIT n`).
    pub chunk_size: u64,
}

impl Default for SnapshotSettings {
    fn default() -> Self {
        Self {
            mode: SnapshotMode::Never,
            chunk_size: 5_000,
        }
    }
}

/// When the relay snapshots tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    Initial,
    Never,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_excludes_system_databases_by_default() {
        let f = Filter::default();
        assert!(f.allows("sluice", "follow"));
        assert!(!f.allows("mysql", "user"));
    }

    #[test]
    fn filter_include_and_exclude_lists_combine() {
        let f = Filter {
            include_databases: vec!["app".into()],
            exclude_tables: vec!["app.secret".into()],
            ..Filter::default()
        };
        assert!(f.allows("app", "t"));
        assert!(!f.allows("app", "secret"));
        assert!(!f.allows("other", "t"));
        let f = Filter {
            include_tables: vec!["app.t".into()],
            ..Filter::default()
        };
        assert!(f.allows("app", "t"));
        assert!(!f.allows("app", "u"));
        assert!(f.allows_database("app"));
        assert!(!f.allows_database("other"));
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let s = Settings {
            server_id: 0,
            dev: true,
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("server_id"));
        let s = Settings::default();
        assert!(s.validate().unwrap_err().to_string().contains("mysql.url"));
        let s = Settings {
            dev: true,
            ..Settings::default()
        };
        s.validate().unwrap();
    }

    #[test]
    fn format_defaults_to_debezium_and_a_bad_value_names_the_choices() {
        assert_eq!(Settings::default().format, Format::Debezium);
        let s: Settings = serde_json::from_value(serde_json::json!({"format": "canal"})).unwrap();
        assert_eq!(s.format, Format::Canal);
        let err = serde_json::from_value::<Settings>(serde_json::json!({"format": "avro"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("debezium, canal or maxwell"), "{err}");
    }

    #[test]
    fn message_key_columns_default_to_counter_and_follow_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("relay-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relay.toml");
        let load = |body: &str| {
            std::fs::write(&file, format!("dev = true\n{body}")).unwrap();
            Settings::load(Some(&file))
        };
        let keys = load("").unwrap().key_columns().unwrap();
        assert!(keys.matches("sluice", "counter") && keys.matches("sluice", "follow"));
        assert!(!keys.matches("sluice", "user"));
        let keys = load("message_key_columns = \"\"\n")
            .unwrap()
            .key_columns()
            .unwrap();
        assert!(keys.is_empty(), "empty: primary keys everywhere");
        let s = load("message_key_columns = 'shop\\.orders:customer_id'\n").unwrap();
        assert!(s.key_columns().unwrap().matches("shop", "orders"));
        for (bad, says) in [
            ("'sluice.counter'", "expected <db>.<table>:<column>"),
            ("'counter:owner_id'", "<db>.<table>"),
            ("'sluice.counter:owner_id,'", "empty column name"),
            ("'(sluice.counter:owner_id'", "bad table pattern"),
        ] {
            let err = load(&format!("message_key_columns = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("message_key_columns") && err.contains(says),
                "{bad}: {err}"
            );
            assert!(!err.contains('\n'), "{bad}: one line: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_adds_column_rules_to_the_default_and_bad_ones_are_refused() {
        let dir = std::env::temp_dir().join(format!("relay-columns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("relay.toml");
        std::fs::write(
            &file,
            "dev = true\n[columns]\n\"shop.customer.email\" = \"hash:pepper\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&file)).unwrap();
        let rules = s.column_rules().unwrap();
        use crate::columns::ColumnRule;
        assert_eq!(
            rules.rule_for("sluice", "user", "password_hash"),
            ColumnRule::Exclude
        );
        assert_eq!(
            rules.rule_for("shop", "customer", "email"),
            ColumnRule::Hash("pepper".into())
        );
        std::fs::write(
            &file,
            "dev = true\n[columns]\n\"customer.email\" = \"exclude\"\n",
        )
        .unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("db.table.column"), "{err}");
        std::fs::write(&file, "dev = true\n[columns]\n\"a.b.c\" = \"blur\"\n").unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("not a column rule"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
