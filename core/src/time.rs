//! Timestamps as the API shows them: RFC 3339 in UTC with microseconds,
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ`, exactly as PostgreSQL's
//! `to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')` renders them, without
//! `to_char`'s per-call format parsing.

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;
const US_PER_DAY: i64 = 86_400_000_000;

/// Civil date (proleptic Gregorian, astronomical year) of a day count from 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A PostgreSQL `timestamptz` (microseconds since 2000-01-01 UTC) as the API renders it; `None`
/// for `infinity` and `-infinity` (which `to_char` renders as NULL). A year before 1 AD is
/// written as `to_char` writes it: its BC year number, with no era marker.
pub fn rfc3339_micros(pg_us: i64) -> Option<String> {
    if pg_us == i64::MAX || pg_us == i64::MIN {
        return None;
    }
    let unix_us = i128::from(pg_us) + i128::from(PG_EPOCH_UNIX_US);
    let days = unix_us.div_euclid(i128::from(US_PER_DAY)) as i64;
    let in_day = unix_us.rem_euclid(i128::from(US_PER_DAY)) as i64;
    let (year, month, day) = civil_from_days(days);
    let year = if year <= 0 { 1 - year } else { year };
    let secs = in_day / 1_000_000;
    let micros = in_day % 1_000_000;
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        secs / 3_600,
        secs / 60 % 60,
        secs % 60,
    ))
}

/// The wall clock in Unix milliseconds (0 before 1970, saturating far in the future).
pub fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn renders_like_to_char() {
        assert_eq!(
            rfc3339_micros(0).as_deref(),
            Some("2000-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            rfc3339_micros(1).as_deref(),
            Some("2000-01-01T00:00:00.000001Z")
        );
        assert_eq!(
            rfc3339_micros(-1).as_deref(),
            Some("1999-12-31T23:59:59.999999Z")
        );
        // 2026-11-29 23:45:14.1 UTC
        let t = (9_829 * 86_400 + 23 * 3_600 + 45 * 60 + 14) * S + 100_000;
        assert_eq!(
            rfc3339_micros(t).as_deref(),
            Some("2026-11-29T23:45:14.100000Z")
        );
        // a leap day, and the day after the last second of a year
        let leap = (60 * 86_400) * S;
        assert_eq!(
            rfc3339_micros(leap).as_deref(),
            Some("2000-03-01T00:00:00.000000Z")
        );
        assert_eq!(
            rfc3339_micros(59 * 86_400 * S).as_deref(),
            Some("2000-02-29T00:00:00.000000Z")
        );
        assert_eq!(rfc3339_micros(i64::MAX), None);
        assert_eq!(rfc3339_micros(i64::MIN), None);
    }

    #[test]
    fn far_years_as_to_char_writes_them() {
        // 12345-01-01 and 0044-03-15 BC (astronomical year -43), as PostgreSQL 15 renders them
        let days_12345 = civil_days(12_345, 1, 1);
        assert_eq!(
            rfc3339_micros(days_12345 * 86_400 * S).as_deref(),
            Some("12345-01-01T00:00:00.000000Z")
        );
        let days_44bc = civil_days(-43, 3, 15);
        assert_eq!(
            rfc3339_micros(days_44bc * 86_400 * S).as_deref(),
            Some("0044-03-15T00:00:00.000000Z")
        );
    }

    /// Days from 2000-01-01 of a civil date (the inverse, for the tests).
    fn civil_days(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468 - 10_957
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in -80_000..80_000 {
            let (y, m, d) = civil_from_days(days + 10_957);
            assert_eq!(civil_days(y, i64::from(m), i64::from(d)), days);
        }
    }
}
