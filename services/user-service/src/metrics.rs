//! Metric names of user-service. Labels are bounded (outcomes, layers), never user ids.

/// Registrations, labelled `outcome` (created|taken|invalid|limited|busy|error):
/// `limited` is over the per-username limit, `busy` found every hashing slot taken.
pub const REGISTRATIONS_TOTAL: &str = "user_registrations_total";
/// Logins, labelled `outcome` (ok|denied|limited|busy|error).
pub const LOGINS_TOTAL: &str = "user_logins_total";
/// Reads answered per layer, labelled `what` (profile|counts|is_follow) and `layer` (local|redis|mysql).
pub const READS_TOTAL: &str = "user_reads_total";
/// Redis calls that failed or timed out (the read fell through to MySQL).
pub const REDIS_ERRORS_TOTAL: &str = "user_redis_errors_total";
/// Profile updates committed.
pub const PROFILE_UPDATES_TOTAL: &str = "user_profile_updates_total";
/// Time a Register or Login waited for a password-hashing slot (refused
/// ones included: they waited the whole `password.queue_wait`).
pub const PASSWORD_HASH_WAIT_SECONDS: &str = "user_password_hash_wait_seconds";
