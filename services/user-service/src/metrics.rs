//! Metric names of user-service. Labels are bounded (outcomes, layers), never user ids.

/// Registrations, labelled `outcome` (created|taken|invalid|error).
pub const REGISTRATIONS_TOTAL: &str = "user_registrations_total";
/// Logins, labelled `outcome` (ok|denied|error).
pub const LOGINS_TOTAL: &str = "user_logins_total";
/// Reads answered per layer, labelled `what` (profile|counts|is_follow) and `layer` (local|redis|mysql).
pub const READS_TOTAL: &str = "user_reads_total";
/// Redis calls that failed or timed out (the read fell through to MySQL).
pub const REDIS_ERRORS_TOTAL: &str = "user_redis_errors_total";
/// Profile updates committed.
pub const PROFILE_UPDATES_TOTAL: &str = "user_profile_updates_total";
