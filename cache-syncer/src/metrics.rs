//! Metric names of the cache-syncer (`cache_syncer_*`).

/// Change events applied, by table and op.
pub const EVENTS_APPLIED: &str = "cache_syncer_events_applied_total";
/// Events skipped because their seq was already applied (replays, redeliveries).
pub const EVENTS_SKIPPED: &str = "cache_syncer_events_skipped_total";
/// Effects written, by kind (counter, edge_add, edge_remove, profile_invalidate).
pub const EFFECTS: &str = "cache_syncer_effects_total";
/// Time to apply one batch to Redis and MySQL.
pub const APPLY_SECONDS: &str = "cache_syncer_apply_duration_seconds";
/// Messages sent to the dead-letter topic, by reason kind.
pub const DLQ_TOTAL: &str = "cache_syncer_dlq_total";
/// Consumer lag in messages, per topic and partition.
pub const CONSUMER_LAG: &str = "cache_syncer_consumer_lag_messages";
/// Highest applied `sluice.seq`, per topic and partition.
pub const APPLIED_SEQ: &str = "cache_syncer_applied_seq";
/// Apply failures that will be retried (Redis or MySQL unavailable).
pub const RETRIES: &str = "cache_syncer_apply_retries_total";
/// Applied watermark: every change at or below this relay seq is in Redis.
pub const WATERMARK_SEQ: &str = "cache_syncer_watermark_seq";
/// Relay heartbeats that acknowledge a position but carry no
/// `acked_offsets` (a relay that produced nothing since it started): they
/// cannot move the watermark.
pub const HEARTBEATS_WITHOUT_OFFSETS: &str = "cache_syncer_heartbeats_without_offsets_total";
/// Commit-to-Redis latency: from the row's own microsecond change time
/// (`counter.updated_at`, `follow.created_at`/`deleted_at`) to the moment
/// the batch holding it was applied.
/// Batches (or events) whose partitions another member had claimed since:
/// their events were left to it.
pub const FENCED_BATCHES: &str = "cache_syncer_fenced_batches_total";
/// Consumed messages dropped unapplied because the claim they were decoded
/// under was given up before their batch was prepared (revoked, or revoked
/// and claimed anew): consumed again from the committed offset.
pub const STALE_DROPPED: &str = "cache_syncer_stale_messages_dropped_total";
/// Consumer-group rebalances this member took part in (assign or revoke).
pub const REBALANCES: &str = "cache_syncer_rebalances_total";
pub const FRESHNESS_SECONDS: &str = "cache_syncer_commit_to_applied_seconds";

/// Registers descriptions so `/metrics` explains each series.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    // The recorder must exist before the series below are created.
    common::admin::prometheus();
    describe_counter!(EVENTS_APPLIED, "change events applied, by table and op");
    describe_counter!(EVENTS_SKIPPED, "change events skipped as already applied");
    describe_counter!(EFFECTS, "effects written, by kind");
    describe_histogram!(
        APPLY_SECONDS,
        metrics::Unit::Seconds,
        "time to apply one batch"
    );
    describe_counter!(DLQ_TOTAL, "messages sent to the dead-letter topic");
    describe_gauge!(CONSUMER_LAG, "consumer lag in messages per partition");
    describe_gauge!(APPLIED_SEQ, "highest applied sluice.seq per partition");
    describe_gauge!(WATERMARK_SEQ, "applied watermark (relay seq)");
    describe_counter!(RETRIES, "apply attempts that failed and will be retried");
    describe_counter!(
        HEARTBEATS_WITHOUT_OFFSETS,
        "relay heartbeats without acked_offsets (cannot move the watermark)"
    );
    describe_counter!(
        FENCED_BATCHES,
        "applies refused because another member claimed their partitions"
    );
    describe_counter!(
        STALE_DROPPED,
        "consumed messages dropped unapplied: decoded under a claim given up since"
    );
    describe_counter!(REBALANCES, "consumer-group rebalances (assign or revoke)");
    describe_histogram!(
        FRESHNESS_SECONDS,
        metrics::Unit::Seconds,
        "row change time to applied in Redis"
    );
    // Series that alerts and dashboards watch exist from the start (at 0),
    // not only after the first dead letter or retry.
    metrics::counter!(DLQ_TOTAL).absolute(0);
    metrics::counter!(RETRIES).absolute(0);
    metrics::counter!(EVENTS_SKIPPED).absolute(0);
    metrics::counter!(FENCED_BATCHES).absolute(0);
    metrics::counter!(REBALANCES).absolute(0);
    metrics::counter!(STALE_DROPPED).absolute(0);
}
