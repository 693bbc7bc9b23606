//! cache-syncer settings: defaults → optional TOML file → `SYNCER_…` env.

use std::collections::BTreeMap;

use common::config::{AdminSettings, ConfigError, KafkaSettings, MysqlSettings, RedisSettings};
use serde::{Deserialize, Serialize};

/// librdkafka consumer properties sluice's delivery guarantees rest on: the
/// `[consumer]` table may not set them.
pub const PINNED: [&str; 6] = [
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "bootstrap.servers",
    // The relay's aborted transactions must stay invisible.
    "isolation.level",
];

/// Everything the syncer needs. Tests build it in code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Dev mode: secrets default to the local stack.
    pub dev: bool,
    pub mysql: MysqlSettings,
    pub redis: RedisSettings,
    pub kafka: KafkaSettings,
    pub admin: AdminSettings,
    /// Consumer group; more processes in the same group share the partitions.
    pub group_id: String,
    /// Source database whose `user`, `follow` and `counter` topics are consumed.
    pub source_db: String,
    /// Follow-list ZSETs keep the newest `list_cap` entries (big-key protection).
    pub list_cap: usize,
    /// Most messages applied in one Redis pipeline / MySQL batch.
    pub batch_max: usize,
    /// Apply events whose `sluice.seq` is below the partition's applied seq
    /// (a deliberate re-application). Off: such events are skipped, unless
    /// the relay marked them as an operator's replay (`sluice.replay`).
    pub reapply: bool,
    /// Send undecodable or impossible events to `<prefix>.dlq` and go on.
    /// Off: stop on them.
    pub dlq: bool,
    /// Extra librdkafka consumer properties, set after sluice's own (e.g.
    /// `"fetch.max.bytes" = "8388608"` to drain a backlog in bigger steps).
    /// `group.id` and the offset-commit properties the applied watermark
    /// depends on cannot be overridden.
    pub consumer: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            dev: false,
            mysql: MysqlSettings::default(),
            redis: RedisSettings::default(),
            kafka: KafkaSettings::default(),
            admin: AdminSettings::on_port(9102),
            group_id: "sluice-syncer".into(),
            source_db: "sluice".into(),
            list_cap: 1000,
            batch_max: 2000,
            reapply: false,
            dlq: true,
            consumer: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Loads from the optional file and `SYNCER_` env, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let s: Settings = common::config::load("SYNCER_", file)?;
        s.validate()?;
        Ok(s)
    }

    /// Rejects settings that cannot work, with one clear message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        common::config::check_dev_listeners(self.dev, &[("admin.addr", self.admin.addr)])?;
        self.kafka.validate()?;
        let bad = |m: &str| Err(ConfigError::Invalid(m.into()));
        if self.list_cap == 0 {
            return bad("list_cap must be at least 1");
        }
        if self.batch_max == 0 {
            return bad("batch_max must be at least 1");
        }
        if !(3..=32).contains(&self.redis.bloom.bits_log2) {
            return bad("redis.bloom.bits_log2 must be within 3..=32");
        }
        if self.redis.bloom.hashes == 0 || self.redis.bloom.hashes > 32 {
            return bad("redis.bloom.hashes must be within 1..=32");
        }
        if self.group_id.is_empty() || self.source_db.is_empty() {
            return bad("group_id and source_db must not be empty");
        }
        if let Some(k) = self.consumer.keys().find(|k| PINNED.contains(&k.as_str())) {
            return Err(ConfigError::Invalid(format!(
                "consumer.{k} cannot be overridden: the applied watermark depends on it"
            )));
        }
        self.mysql.resolve_url(self.dev)?;
        self.redis.resolve_url(self.dev)?;
        Ok(())
    }

    /// The row-change topics this syncer consumes.
    pub fn topics(&self) -> Vec<String> {
        ["user", "follow", "counter"]
            .iter()
            .map(|t| cdc_event::topic::topic_for(&self.kafka.topic_prefix, &self.source_db, t))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_dev_mode_for_secrets() {
        let mut s = Settings::default();
        assert!(s.validate().is_err());
        s.dev = true;
        s.validate().unwrap();
        assert_eq!(
            s.topics(),
            [
                "sluice.sluice.user",
                "sluice.sluice.follow",
                "sluice.sluice.counter"
            ]
        );
    }

    #[test]
    fn zero_list_cap_is_refused() {
        let s = Settings {
            dev: true,
            list_cap: 0,
            ..Settings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("list_cap"));
    }

    #[test]
    fn consumer_overrides_may_not_touch_the_offset_properties() {
        let mut s = Settings {
            dev: true,
            ..Settings::default()
        };
        s.consumer
            .insert("fetch.max.bytes".into(), "8388608".into());
        s.validate().unwrap();
        s.consumer
            .insert("enable.auto.offset.store".into(), "true".into());
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("consumer.enable.auto.offset.store"), "{e}");
    }
}
