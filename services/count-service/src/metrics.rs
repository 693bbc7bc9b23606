//! Metric names of count-service. Labels are bounded (layers), never user ids.

/// Counter reads answered per layer, labelled `what` (counts) and `layer` (local|redis|mysql).
pub const READS_TOTAL: &str = "count_reads_total";
/// Redis calls that failed or timed out (the read fell through to MySQL).
pub const REDIS_ERRORS_TOTAL: &str = "count_redis_errors_total";
/// GetCounts calls, labelled `outcome` (ok|error).
pub const REQUESTS_TOTAL: &str = "count_requests_total";
/// (user, kind) pairs asked for per GetCounts call.
pub const BATCH_SIZE: &str = "count_batch_size";
