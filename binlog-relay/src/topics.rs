//! `binlog-relay topics create`: creates the topics of the configured tables
//! (every table of the included databases, or the included tables) plus the
//! transaction, heartbeat, schema change and schema history topics, and
//! with exactly-once the compacted checkpoint topic. Existing topics are left alone.

use crate::config::Settings;
use crate::error::Result;
use crate::sink;
use cdc_event::topic;

/// The topic names for the configured filter, from `information_schema`.
pub async fn planned(settings: &Settings, pool: &sqlx::MySqlPool) -> Result<Vec<String>> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_SCHEMA AS CHAR), CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .fetch_all(pool)
    .await?;
    let prefix = &settings.kafka.topic_prefix;
    let mut names: Vec<String> = tables
        .iter()
        .filter(|(db, t)| settings.filter.allows(db, t) && !t.starts_with("_sqlx"))
        .map(|(db, t)| topic::topic_for(prefix, db, t))
        .collect();
    names.push(topic::transaction_topic(prefix));
    names.push(topic::heartbeat_topic(prefix));
    names.push(topic::schema_changes_topic(prefix));
    names.push(topic::schema_history_topic(prefix));
    if settings.wants_transactions() {
        names.push(topic::relay_checkpoints_topic(prefix));
    }
    Ok(names)
}

/// Creates the planned topics; returns their names.
pub async fn create(settings: &Settings) -> Result<Vec<String>> {
    settings.validate()?;
    let url = settings.mysql.resolve_url(settings.dev)?;
    let pool = common::db::connect(&url, 1).await?;
    let names = planned(settings, &pool).await?;
    pool.close().await;
    let admin = sink::client_config(settings).create()?;
    let checkpoints = topic::relay_checkpoints_topic(&settings.kafka.topic_prefix);
    if names.contains(&checkpoints) {
        sink::create_checkpoint_topic(&admin, &checkpoints).await?;
    }
    let history = topic::schema_history_topic(&settings.kafka.topic_prefix);
    sink::create_history_topic(&admin, &history).await?;
    let (fixed, tables): (Vec<&String>, Vec<&String>) = names
        .iter()
        .filter(|n| **n != checkpoints && **n != history)
        .partition(|n| topic::parse_table_topic(&settings.kafka.topic_prefix, n).is_none());
    let tables: Vec<&str> = tables.into_iter().map(String::as_str).collect();
    let fixed: Vec<&str> = fixed.into_iter().map(String::as_str).collect();
    if !tables.is_empty() {
        sink::create_topics(&admin, &tables, settings.topic_partitions).await?;
    }
    // Transaction and heartbeat records keep their order in one partition.
    sink::create_topics(&admin, &fixed, 1).await?;
    Ok(names)
}
