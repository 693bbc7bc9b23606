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

/// Columns that stamp a change, in DESIGN §2's schema.
pub const CHANGE_TIME_COLUMNS: [&str; 3] = ["updated_at", "created_at", "deleted_at"];

/// `2026-11-26T10:38:37.123456` or `2026-11-26 10:38:37.123456` (a trailing
/// `Z` allowed) → µs since the epoch, as UTC.
pub fn parse_datetime_us(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').unwrap_or(s);
    // The relay's own spelling, read for every row: without chrono's
    // format-string machinery (several times slower).
    if let Some(us) = parse_fixed(s.as_bytes()) {
        return Some(us);
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.f…]` with 1–9 fraction digits (beyond 6
/// truncated to microseconds) → µs since the epoch; `None` for any other
/// shape or an impossible date or time, which the caller hands to chrono.
fn parse_fixed(b: &[u8]) -> Option<i64> {
    fn num(b: &[u8]) -> Option<i64> {
        b.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    }
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    let (h, mi, sec) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let micros = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let digits = &frac[..frac.len().min(6)];
            num(frac)?;
            num(digits)? * 10i64.pow(6 - digits.len() as u32)
        }
        _ => return None,
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    // Days from 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
    // days_from_civil).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000_000 + sec * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_parser_agrees_with_chrono() {
        let chrono_us = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_micros())
        };
        let mut cases = vec![
            "1970-01-01T00:00:00".to_owned(),
            "1969-12-31T23:59:59.999999".to_owned(),
            "0001-01-01T00:00:00.1".to_owned(),
            "9999-12-31T23:59:59.123456789".to_owned(),
            "2000-02-29T12:00:00.5".to_owned(),
            "1900-02-29T00:00:00".to_owned(),
            "2026-13-01T00:00:00".to_owned(),
            "2026-11-31T00:00:00".to_owned(),
            "2026-11-26T24:00:00".to_owned(),
            "2026-11-26T10:00:00.".to_owned(),
            "2026-11-26T10:00:0x".to_owned(),
        ];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let frac = match x % 4 {
                0 => String::new(),
                1 => format!(".{:06}", x % 1_000_000),
                2 => format!(".{}", x % 1000),
                _ => format!(".{:09}", x % 1_000_000_000),
            };
            cases.push(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{frac}",
                1 + (x >> 8) % 9999,
                1 + (x >> 22) % 12,
                1 + (x >> 26) % 31,
                (x >> 31) % 24,
                (x >> 36) % 60,
                (x >> 42) % 60,
            ));
        }
        for c in &cases {
            let fixed = parse_fixed(c.as_bytes());
            // Where the fixed parser answers, chrono answers the same.
            if fixed.is_some() {
                assert_eq!(fixed, chrono_us(c), "{c}");
            }
            assert_eq!(parse_datetime_us(c), chrono_us(c), "{c}");
        }
    }

    #[test]
    fn both_datetime_spellings_parse_to_the_same_microsecond() {
        let a = parse_datetime_us("2026-11-26T10:00:00.000001").unwrap();
        assert_eq!(a, parse_datetime_us("2026-11-26 10:00:00.000001Z").unwrap());
        assert_eq!(a % 1_000_000, 1);
        assert_eq!(parse_datetime_us("yesterday"), None);
    }
}
