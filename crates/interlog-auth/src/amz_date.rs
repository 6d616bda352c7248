//! The SigV4 timestamp formats: `X-Amz-Date` (ISO 8601 basic, `20240101T000000Z`), the
//! credential-scope date (`20240101`) and the HTTP `Date` header fallback.
//!
//! Hand-written rather than pulled from a date crate because the formats are fixed-width,
//! UTC-only and parsed on every request; a few lines of civil-calendar arithmetic keep the
//! hot path allocation-free.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A request timestamp, kept as seconds since the Unix epoch (SigV4 has one-second precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AmzDate {
    secs: u64,
}

impl AmzDate {
    /// Parses the ISO 8601 basic format `YYYYMMDDTHHMMSSZ` that `X-Amz-Date` carries.
    pub(crate) fn parse_basic(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = digits(&b[4..6])?;
        let day = digits(&b[6..8])?;
        let hour = digits(&b[9..11])?;
        let minute = digits(&b[11..13])?;
        let second = digits(&b[13..15])?;
        if !(1970..=9999).contains(&year)
            || !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            // A leap second (`60`) is not representable in Unix time; AWS rejects it too.
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(Self { secs: days * 86_400 + hour * 3_600 + minute * 60 + second })
    }

    /// Parses an HTTP `Date` header (IMF-fixdate and the obsolete forms `httpdate` accepts).
    pub(crate) fn parse_http_date(s: &str) -> Option<Self> {
        httpdate::parse_http_date(s).ok().map(Self::from_system_time)
    }

    /// Truncates a clock reading to whole seconds; times before 1970 clamp to the epoch.
    pub(crate) fn from_system_time(t: SystemTime) -> Self {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self { secs }
    }

    pub(crate) fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.secs)
    }

    pub(crate) fn secs(self) -> u64 {
        self.secs
    }

    pub(crate) fn plus_secs(self, secs: u64) -> Self {
        Self { secs: self.secs.saturating_add(secs) }
    }

    pub(crate) fn minus_secs(self, secs: u64) -> Self {
        Self { secs: self.secs.saturating_sub(secs) }
    }

    /// Formats as `YYYYMMDDTHHMMSSZ` into a stack buffer (the string-to-sign needs it on every
    /// request, so no allocation).
    pub(crate) fn basic_bytes(self) -> [u8; 16] {
        let (year, month, day) = civil_from_days(self.secs / 86_400);
        let rem = self.secs % 86_400;
        let mut out = *b"00000000T000000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[4..6], month);
        put_digits(&mut out[6..8], day);
        put_digits(&mut out[9..11], rem / 3_600);
        put_digits(&mut out[11..13], rem % 3_600 / 60);
        put_digits(&mut out[13..15], rem % 60);
        out
    }

    /// The `YYYYMMDDTHHMMSSZ` form as a `String`, for error messages.
    pub(crate) fn to_basic_string(self) -> String {
        // The buffer only ever holds ASCII digits, `T` and `Z`.
        String::from_utf8_lossy(&self.basic_bytes()).into_owned()
    }
}

fn digits(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0')))
}

fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        // `value % 10` is below 10, so the cast cannot truncate.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's `days_from_civil`,
/// restricted to years >= 1970 so everything stays unsigned).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_basic_format() {
        for s in ["19700101T000000Z", "20150830T123600Z", "20240101T000000Z", "20240229T235959Z", "21000301T120000Z"] {
            let d = AmzDate::parse_basic(s).unwrap();
            assert_eq!(d.to_basic_string(), s);
        }
        assert_eq!(AmzDate::parse_basic("20240101T000000Z").unwrap().secs(), 1_704_067_200);
    }

    #[test]
    fn rejects_malformed_basic_format() {
        for s in [
            "",
            "2024-01-01T00:00:00Z",
            "20240101T000000",
            "20240101 000000Z",
            "20241301T000000Z",
            "20230229T000000Z",
            "20240101T240000Z",
            "20240101T000060Z",
            "2024010AT000000Z",
        ] {
            assert!(AmzDate::parse_basic(s).is_none(), "{s}");
        }
    }

    #[test]
    fn parses_http_date() {
        let d = AmzDate::parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT").unwrap();
        assert_eq!(d.to_basic_string(), "20240101T000000Z");
    }
}
