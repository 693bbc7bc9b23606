//! Change times for freshness metrics.
//!
//! Binlog event headers carry whole seconds only, useless for millisecond
//! latencies. sluice's tables stamp every change with a microsecond column
//! (`created_at`, `updated_at`, `deleted_at`: DATETIME(6) set to `NOW(6)`
//! by the writing transaction, DESIGN §2); the latest of them in a row image
//! is when that change was made. Error: the gap between the statement and
//! its COMMIT (microseconds to a few milliseconds for sluice's short
//! transactions), plus clock skew when the database and the measuring
//! process run on different hosts. The columns are read as UTC (the server
//! time zone of the local stack and of the compose MySQL).

use crate::envelope::Row;

/// Columns that stamp a change, in DESIGN §2's schema.
pub const CHANGE_TIME_COLUMNS: [&str; 3] = ["updated_at", "created_at", "deleted_at"];

/// `2026-11-26T10:38:37.123456` or `2026-11-26 10:38:37.123456` (a trailing
/// `Z` allowed) → µs since the epoch, as UTC.
pub fn parse_datetime_us(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// When the change that produced `row` was made: the latest change-time
/// column present (strings as above, or epoch microseconds).
pub fn change_time_us(row: &Row) -> Option<i64> {
    CHANGE_TIME_COLUMNS
        .iter()
        .filter_map(|c| match row.get(*c)? {
            serde_json::Value::String(s) => parse_datetime_us(s),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        })
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_datetime_spellings_parse_to_the_same_microsecond() {
        let a = parse_datetime_us("2026-11-26T10:00:00.000001").unwrap();
        assert_eq!(a, parse_datetime_us("2026-11-26 10:00:00.000001Z").unwrap());
        assert_eq!(a % 1_000_000, 1);
        assert_eq!(parse_datetime_us("yesterday"), None);
    }

    #[test]
    fn the_latest_stamp_of_a_row_is_its_change_time() {
        let row = json!({
            "created_at": "2026-11-26T10:00:00.000000",
            "deleted_at": "2026-11-26T10:00:05.000000",
            "updated_at": null,
        });
        let row = row.as_object().unwrap();
        assert_eq!(
            change_time_us(row),
            parse_datetime_us("2026-11-26T10:00:05")
        );
        assert_eq!(change_time_us(&Row::new()), None);
    }
}
