//! Metric names of relation-service. Labels are bounded: method names,
//! outcomes and cache layers, never user ids.

/// Follow/unfollow calls, labelled `op` (follow|unfollow) and `outcome` (changed|unchanged|error).
pub const WRITES_TOTAL: &str = "relation_writes_total";
/// Write transactions retried after a deadlock / lock wait timeout / insert race, labelled `op`.
pub const WRITE_RETRIES_TOTAL: &str = "relation_write_retries_total";
/// Duration of a follow/unfollow including retries, labelled `op`.
pub const WRITE_DURATION_SECONDS: &str = "relation_write_duration_seconds";
/// Reads answered per layer, labelled `what` (counts|is_follow) and `layer` (local|redis|mysql).
pub const READS_TOTAL: &str = "relation_reads_total";
/// Redis calls that failed or timed out (the read fell through to MySQL).
pub const REDIS_ERRORS_TOTAL: &str = "relation_redis_errors_total";
/// List pages served, labelled `list` (following|followers).
pub const LIST_PAGES_TOTAL: &str = "relation_list_pages_total";
