//! Topic naming: `<prefix>.<db>.<table>` for row changes and six fixed
//! per-prefix topics. Every topic name in sluice is built here.

/// Default topic prefix (also the Debezium `source.name`).
pub const DEFAULT_PREFIX: &str = "sluice";

/// The topic that carries row changes of `db.table`.
pub fn topic_for(prefix: &str, db: &str, table: &str) -> String {
    format!("{prefix}.{db}.{table}")
}

/// Transaction metadata (BEGIN / END records with event counts).
pub fn transaction_topic(prefix: &str) -> String {
    format!("{prefix}.transaction")
}

/// Heartbeats, so that time lag stays honest while the source is idle.
pub fn heartbeat_topic(prefix: &str) -> String {
    format!("{prefix}.heartbeat")
}

/// Dead letters: messages a consumer could not apply, with the reason.
pub fn dlq_topic(prefix: &str) -> String {
    format!("{prefix}.dlq")
}

/// The relay's checkpoints under exactly-once (compacted, keyed by the
/// relay's `ha.name`): committed in the same Kafka transaction as the
/// changes they cover.
pub fn relay_checkpoints_topic(prefix: &str) -> String {
    format!("{prefix}.relay-checkpoints")
}

/// Schema change events: one message per DDL statement of an included
/// database, keyed by the database (Debezium's schema change topic).
pub fn schema_changes_topic(prefix: &str) -> String {
    format!("{prefix}.schema-changes")
}

/// The relay's schema history: each table's columns as of every DDL
/// position (one partition, kept forever), read back at start so that rows
/// decode with the schema of their time.
pub fn schema_history_topic(prefix: &str) -> String {
    format!("{prefix}.schema-history")
}

/// Splits a row-change topic back into `(db, table)`; `None` for the fixed
/// topics or a topic of another prefix.
pub fn parse_table_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('.')?;
    let (db, table) = rest.split_once('.')?;
    if db.is_empty() || table.is_empty() || table.contains('.') {
        return None;
    }
    Some((db, table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_topics_round_trip() {
        let t = topic_for("sluice", "sluice", "follow");
        assert_eq!(t, "sluice.sluice.follow");
        assert_eq!(parse_table_topic("sluice", &t), Some(("sluice", "follow")));
    }

    #[test]
    fn fixed_topics_are_not_table_topics() {
        assert_eq!(
            parse_table_topic("sluice", &transaction_topic("sluice")),
            None
        );
        assert_eq!(parse_table_topic("sluice", &dlq_topic("sluice")), None);
        assert_eq!(
            parse_table_topic("sluice", &relay_checkpoints_topic("sluice")),
            None
        );
        assert_eq!(parse_table_topic("other", "sluice.a.b"), None);
        assert_eq!(
            parse_table_topic("sluice", &schema_changes_topic("sluice")),
            None
        );
        assert_eq!(
            parse_table_topic("sluice", &schema_history_topic("sluice")),
            None
        );
    }
}
