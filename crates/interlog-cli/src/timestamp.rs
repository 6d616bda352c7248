//! `sentAt` parsing: every form botocore 1.43's `parse_timestamp` accepts,
//! reduced to the integer epoch seconds aws-cli v1 sends.
//!
//! botocore tries `datetime.fromtimestamp(float(value))` first and falls back
//! to `dateutil.parser.parse`; the instant is then floored to whole seconds by
//! `calendar.timegm(dt.timetuple())`. Naive date-times are UTC whatever `TZ`
//! says. The two ways a value can fail matter, because aws-cli words them
//! differently: a `ValueError` becomes a validation "Invalid type" line, and an
//! overflow becomes a bare `Unable to calculate correct timezone offset`.

use crate::pyjson::Value;

/// Why a value is not a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampError {
    /// Python raised `ValueError`/`TypeError`: reported by the validator as
    /// `Invalid type for parameter …, valid types: <class 'datetime.datetime'>, timestamp-string`.
    Invalid,
    /// Python raised `OverflowError`/`OSError`: botocore gives up with a
    /// `RuntimeError("Unable to calculate correct timezone offset for ...")`.
    Overflow,
}

/// First and last second Python's `datetime` can represent (years 1–9999).
const MIN_EPOCH: i128 = -62_135_596_800;
const MAX_EPOCH: i128 = 253_402_300_799;
/// Beyond this many seconds `localtime()` itself overflows (`tm_year` is an
/// int), so Python raises `OSError`/`OverflowError` rather than `ValueError`.
const LOCALTIME_LIMIT: i128 = 67_767_976_233_316_800;

/// Converts a `sentAt` value to the epoch seconds aws-cli v1 would send.
pub fn to_epoch_seconds(value: &Value) -> Result<i64, TimestampError> {
    match value {
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Int(text) => match text.parse::<i128>() {
            Ok(seconds) => check_range(seconds),
            Err(_) => Err(TimestampError::Overflow),
        },
        Value::Float(f) => from_float(*f),
        Value::Str(s) => from_string(s),
        Value::Bytes(b) => from_string(&String::from_utf8_lossy(b)),
        Value::Null | Value::List(_) | Value::Dict(..) => Err(TimestampError::Invalid),
    }
}

fn check_range(seconds: i128) -> Result<i64, TimestampError> {
    if (MIN_EPOCH..=MAX_EPOCH).contains(&seconds) {
        Ok(seconds as i64)
    } else if seconds.abs() < LOCALTIME_LIMIT {
        Err(TimestampError::Invalid)
    } else {
        Err(TimestampError::Overflow)
    }
}

/// `datetime.fromtimestamp(f)` then floor: Python rounds to microseconds
/// (half-even) first, so `x.9999999` lands on the next second.
fn from_float(f: f64) -> Result<i64, TimestampError> {
    if f.is_nan() {
        return Err(TimestampError::Invalid);
    }
    if f.is_infinite() || f.abs() >= 9.2e18 {
        return Err(TimestampError::Overflow);
    }
    let mut whole = f.trunc();
    let micros = ((f - whole) * 1e6).round_ties_even();
    if micros >= 1e6 {
        whole += 1.0;
    } else if micros < 0.0 {
        whole -= 1.0;
    }
    check_range(whole as i128)
}

/// Python's `float(str)`: surrounding whitespace, `_` between digits, and the
/// `nan`/`inf`/`infinity` words are all accepted.
pub fn python_float(text: &str) -> Option<f64> {
    let t = text.trim_matches(crate::pyjson::py_isspace);
    if t.is_empty() {
        return None;
    }
    let lower = t.to_ascii_lowercase();
    let unsigned = lower.trim_start_matches(['+', '-']);
    if lower.len() - unsigned.len() > 1 {
        return None;
    }
    let negative = lower.starts_with('-');
    match unsigned {
        "nan" => return Some(f64::NAN),
        "inf" | "infinity" => return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY }),
        _ => {}
    }
    // Underscores are only allowed between two digits.
    let chars: Vec<char> = t.chars().collect();
    let mut cleaned = String::with_capacity(t.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            let ok = i > 0 && chars[i - 1].is_ascii_digit() && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
            if !ok {
                return None;
            }
            continue;
        }
        if !(c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E')) {
            return None;
        }
        cleaned.push(c);
    }
    if !cleaned.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    cleaned.parse().ok()
}

fn from_string(text: &str) -> Result<i64, TimestampError> {
    if let Some(f) = python_float(text) {
        match from_float(f) {
            Ok(seconds) => return Ok(seconds),
            Err(TimestampError::Overflow) => return Err(TimestampError::Overflow),
            // fromtimestamp raised ValueError: botocore falls through to dateutil,
            // which reads a long digit string as a year and overflows a C int.
            Err(TimestampError::Invalid) if !f.is_nan() => {
                let digits = text.trim().trim_start_matches(['+', '-']);
                let int_part = digits.split('.').next().unwrap_or("");
                if int_part.len() > 12 {
                    return Err(TimestampError::Overflow);
                }
                return Err(TimestampError::Invalid);
            }
            Err(TimestampError::Invalid) => return Err(TimestampError::Invalid),
        }
    }
    parse_datetime(text.trim()).ok_or(TimestampError::Invalid)
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn month_from_name(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS.iter().position(|m| w.starts_with(m)).map(|i| i as u32 + 1)
}

#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month: Option<u32>,
    day: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    offset: i64,
}

/// A subset of `dateutil.parser.parse`: ISO 8601 (with `T` or a space, a
/// fraction, `Z`/`UTC`/`GMT`/`±hh[:mm]`), compact `YYYYMMDD[THHMMSS]`, and
/// RFC 822 / 1123 forms with month names.
fn parse_datetime(text: &str) -> Option<i64> {
    let mut parts = Parts::default();
    let tokens = tokenize(text);
    let mut i = 0;
    while i < tokens.len() {
        let tok = tokens[i].as_str();
        if tok.chars().all(|c| c.is_ascii_digit()) {
            if tokens.get(i + 1).is_some_and(|t| t == "-" || t == "/") && parts.year.is_none() && parts.month.is_none()
            {
                // YYYY-MM-DD or MM/DD/YYYY.
                let sep = tokens[i + 1].clone();
                let b = tokens.get(i + 2)?;
                let (first, second) = (tok.parse::<i64>().ok()?, b.parse::<i64>().ok()?);
                let third = if tokens.get(i + 3) == Some(&sep) {
                    tokens.get(i + 4).and_then(|t| t.parse::<i64>().ok())
                } else {
                    None
                };
                if sep == "-" || tok.len() == 4 {
                    parts.year = Some(first);
                    parts.month = Some(u32::try_from(second).ok()?);
                    parts.day = Some(u32::try_from(third?).ok()?);
                } else {
                    parts.month = Some(u32::try_from(first).ok()?);
                    parts.day = Some(u32::try_from(second).ok()?);
                    let year = third?;
                    parts.year = Some(if tokens[i + 4].len() <= 2 { 2000 + year } else { year });
                }
                i += 5;
                continue;
            }
            if tokens.get(i + 1).is_some_and(|t| t == ":") {
                // HH:MM[:SS[.ffff]]
                parts.hour = tok.parse().ok()?;
                parts.minute = tokens.get(i + 2)?.parse().ok()?;
                i += 3;
                if tokens.get(i).is_some_and(|t| t == ":") {
                    parts.second = tokens.get(i + 1)?.parse().ok()?;
                    i += 2;
                }
                if tokens.get(i).is_some_and(|t| t == "." || t == ",")
                    && tokens.get(i + 1).is_some_and(|t| t.chars().all(|c| c.is_ascii_digit()))
                {
                    i += 2;
                }
                continue;
            }
            if tok.len() == 8 && parts.year.is_none() {
                parts.year = Some(tok[..4].parse().ok()?);
                parts.month = Some(tok[4..6].parse().ok()?);
                parts.day = Some(tok[6..].parse().ok()?);
                i += 1;
                continue;
            }
            if (tok.len() == 6 || tok.len() == 4)
                && parts.year.is_some()
                && parts.day.is_some()
                && i > 0
                && tokens[i - 1] == "T"
            {
                parts.hour = tok[..2].parse().ok()?;
                parts.minute = tok[2..4].parse().ok()?;
                if tok.len() == 6 {
                    parts.second = tok[4..].parse().ok()?;
                }
                i += 1;
                continue;
            }
            // A lone number next to a month name: day (<= 31) or year.
            let n: i64 = tok.parse().ok()?;
            if parts.day.is_none() && n <= 31 && tok.len() <= 2 {
                parts.day = Some(n as u32);
            } else if parts.year.is_none() {
                parts.year = Some(if tok.len() <= 2 { 2000 + n } else { n });
            } else {
                return None;
            }
            i += 1;
            continue;
        }
        if tok == "+" || tok == "-" {
            // A numeric UTC offset: +hh, +hhmm or +hh:mm.
            let sign = if tok == "-" { -1 } else { 1 };
            let digits = tokens.get(i + 1)?;
            if !digits.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let (hours, mut minutes, mut used) = match digits.len() {
                1 | 2 => (digits.parse::<i64>().ok()?, 0, 2),
                4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 2),
                _ => return None,
            };
            if digits.len() <= 2 && tokens.get(i + 2).is_some_and(|t| t == ":") {
                minutes = tokens.get(i + 3)?.parse().ok()?;
                used = 4;
            }
            parts.offset = sign * (hours * 3600 + minutes * 60);
            i += used;
            continue;
        }
        let lower = tok.to_ascii_lowercase();
        if matches!(lower.as_str(), "z" | "utc" | "gmt" | "ut") {
            i += 1;
            continue;
        }
        if lower == "t" || tok == "," || tok == "." {
            i += 1;
            continue;
        }
        if WEEKDAYS.iter().any(|w| lower.starts_with(w)) {
            i += 1;
            continue;
        }
        if let Some(m) = month_from_name(tok) {
            if parts.month.is_some() {
                return None;
            }
            parts.month = Some(m);
            i += 1;
            continue;
        }
        return None;
    }
    let (year, month, day) = (parts.year?, parts.month?, parts.day?);
    if !(1..=9999).contains(&year) || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if parts.hour > 23 || parts.minute > 59 || parts.second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(parts.hour) * 3600 + i64::from(parts.minute) * 60 + i64::from(parts.second);
    Some(seconds - parts.offset)
}

/// Splits into digit runs, letter runs and single punctuation characters;
/// whitespace separates tokens. A `T` between a date and a time is its own token.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut kind = 0u8; // 1 digits, 2 letters
    for c in text.chars() {
        let k = if c.is_ascii_digit() {
            1
        } else if c.is_alphabetic() {
            2
        } else {
            0
        };
        if (k != kind || k == 0) && !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        kind = k;
        if k == 0 {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(text.into())
    }

    #[test]
    fn accepts_what_botocore_accepts() {
        let cases: Vec<(Value, i64)> = vec![
            (Value::Int("1700000000".into()), 1_700_000_000),
            (Value::Float(1_700_000_000.999), 1_700_000_000),
            (Value::Float(-1.5), -2),
            (Value::Float(1.7e9), 1_700_000_000),
            (Value::Int("-86400".into()), -86_400),
            (Value::Bool(true), 1),
            (s("1700000000"), 1_700_000_000),
            (s("1700000000.5"), 1_700_000_000),
            (s("2023-11-14T22:13:20Z"), 1_700_000_000),
            (s("2023-11-14T22:13:20.987Z"), 1_700_000_000),
            (s("2023-11-14T22:13:20"), 1_700_000_000),
            (s("2023-11-14 22:13:20"), 1_700_000_000),
            (s("2023-11-14T22:13:20+02:00"), 1_699_992_800),
            (s("2023-11-14T22:13:20-0500"), 1_700_018_000),
            (s("2023-11-14"), 1_699_920_000),
            (s("Tue, 14 Nov 2023 22:13:20 GMT"), 1_700_000_000),
            (s("14 Nov 2023 22:13:20 +0000"), 1_700_000_000),
            (s("20231114T221320Z"), 1_700_000_000),
        ];
        for (value, expected) in cases {
            assert_eq!(to_epoch_seconds(&value), Ok(expected), "value {value:?}");
        }
    }

    #[test]
    fn rejects_like_botocore() {
        let cases: Vec<(Value, TimestampError)> = vec![
            (Value::Int("1700000000000".into()), TimestampError::Invalid),
            (Value::Null, TimestampError::Invalid),
            (s("notadate"), TimestampError::Invalid),
            (s("nan"), TimestampError::Invalid),
            (s("1700000000000"), TimestampError::Overflow),
            (s("inf"), TimestampError::Overflow),
            (s("2023-13-01"), TimestampError::Invalid),
            (Value::Float(f64::INFINITY), TimestampError::Overflow),
        ];
        for (value, expected) in cases {
            assert_eq!(to_epoch_seconds(&value), Err(expected), "value {value:?}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-719_468, -1, 0, 19_675, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
