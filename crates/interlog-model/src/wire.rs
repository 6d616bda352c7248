//! What the five rest-json Put* parsers share: reading the body, member paths in Coral notation, the
//! serde-error wording, timestamps, the double-encoded `properties` members and their forbidden keys.
//!
//! Every data-plane operation takes a JSON object whose list member holds 1..10 records (§3, §6.1); a
//! parser reads the top level with the record list left raw, then each record on its own, so a bad record
//! is named by its position (`items.3.member.itemId`) and a valid request builds no message strings.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::properties::Props;
use crate::validation::{json_kind, Checker, ValidationError, Violation};

/// Every record list of the data plane (`eventList`, `items`, `users`, `actions`, `actionInteractions`).
pub const MAX_RECORDS: usize = 10;
/// `sentAt` / `timestamp` above this is almost certainly milliseconds (it would be the year 5138).
pub const MAX_EPOCH_SECONDS: f64 = 1e11;
/// `impression` lists of events and action interactions (§6.1).
pub const MAX_IMPRESSIONS: usize = 25;
/// An `IMPRESSION` cell, `|` separators included (§6.2).
pub const MAX_IMPRESSION_CHARS: usize = 1000;

/// Keys that are set from request members and so may not appear in the `properties` of an event or an
/// action interaction (the model's documentation of both; normalised: lower case, no underscores).
pub(crate) const FORBIDDEN_PROPERTY_KEYS: [&str; 6] =
    ["userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"];
const FORBIDDEN_PROPERTY_KEYS_DOC: &str = "userId, sessionId, eventType, timestamp, recommendationId, impression";

/// Property keys compare like schema fields: case-insensitive, underscores ignored (§7.5).
pub fn normalize_key(key: &str) -> String {
    key.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

/// `normalize_key(a) == normalize_key(b)` without allocating: it runs for every `properties` key of every record
/// against every reserved name and field, so the ASCII case (nearly every key) compares bytes.
pub fn same_key(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        fn bytes(s: &str) -> impl Iterator<Item = u8> + '_ {
            s.as_bytes().iter().filter(|c| **c != b'_').map(u8::to_ascii_lowercase)
        }
        let (mut x, mut y) = (bytes(a), bytes(b));
        loop {
            match (x.next(), y.next()) {
                (None, None) => return true,
                (Some(p), Some(q)) if p == q => {}
                _ => return false,
            }
        }
    }
    fn fold(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars().filter(|c| *c != '_').flat_map(char::to_lowercase)
    }
    fold(a).eq(fold(b))
}

/// True when the JSON text is an object (its first non-blank byte is `{`).
pub(crate) fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// `list.N.member`, the Coral path of one record; rendered only into messages.
#[derive(Clone, Copy)]
pub(crate) struct ListPath {
    pub(crate) list: &'static str,
    /// 1-based, as Coral counts.
    pub(crate) index: usize,
}

impl fmt::Display for ListPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.member", self.list, self.index)
    }
}

/// Reads the top level of a body: it must be a JSON object, and serde failures name the member.
/// `members` completes "The request body must be a JSON object with ...".
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    operation: &str,
    members: &str,
) -> Result<T, ValidationError> {
    if !is_object(body) {
        return Err(ValidationError::Body(format!("The request body must be a JSON object with {members}")));
    }
    // The plain parse first: tracking the path costs on every member, and only a failure's message
    // needs it, so the body is parsed again with the tracker only when the plain parse failed.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| body_error(operation, "", &e))
}

/// Reads one record of a list: a JSON object, with serde failures named below `prefix`.
pub(crate) fn parse_record<T: DeserializeOwned>(
    raw: &RawValue,
    prefix: ListPath,
    operation: &str,
) -> Result<T, ValidationError> {
    if !is_object(raw.get().as_bytes()) {
        return Err(ValidationError::Body(format!("Invalid value for '{prefix}': expected a JSON object")));
    }
    // As in `parse_body`: the path is tracked only to name a failure.
    if let Ok(value) = serde_json::from_str(raw.get()) {
        return Ok(value);
    }
    let de = &mut serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(de).map_err(|e| body_error(operation, &prefix.to_string(), &e))
}

/// The record list: required, 1..10 records. Returns the records to validate (none when it is missing).
pub(crate) fn record_list<'l, 'a>(
    check: &mut Checker,
    name: &'static str,
    list: &'l Option<Vec<&'a RawValue>>,
) -> &'l [&'a RawValue] {
    match list {
        None => {
            check.push(Violation::missing(name));
            &[]
        }
        Some(list) => {
            count(check, name, list.len(), 1, MAX_RECORDS);
            list
        }
    }
}

/// A list's length between `min` and `max` entries (the model's list constraints).
pub(crate) fn count(check: &mut Checker, path: impl fmt::Display, n: usize, min: usize, max: usize) {
    if n < min {
        check.push(Violation::new(
            path.to_string(),
            None,
            format!("Member must have length greater than or equal to {min}"),
        ));
    } else if n > max {
        check.push(Violation::new(
            path.to_string(),
            None,
            format!("Member must have length less than or equal to {max}"),
        ));
    }
}

/// Turns a serde failure into a message that names the member, in the client's own notation.
pub(crate) fn body_error<E: fmt::Display>(
    operation: &str,
    prefix: &str,
    e: &serde_path_to_error::Error<E>,
) -> ValidationError {
    let path = coral_path(&e.path().to_string());
    // serde_path_to_error says `?` when it failed before reaching any member (`{` alone).
    let member = match (prefix.is_empty(), path.as_str()) {
        (true, "." | "?") => String::new(),
        (true, p) => p.to_owned(),
        (false, "." | "?") => prefix.to_owned(),
        (false, p) => format!("{prefix}.{p}"),
    };
    let inner = e.inner().to_string();
    if member.is_empty() {
        ValidationError::Body(format!("The request body is not a valid {operation} JSON document: {inner}"))
    } else {
        ValidationError::Body(format!("Invalid value for '{member}': {inner}"))
    }
}

/// serde's `impression[3]` becomes Coral's `impression.4.member`, so every message names
/// members the same way.
pub(crate) fn coral_path(serde_path: &str) -> String {
    let mut out = String::with_capacity(serde_path.len() + 8);
    let mut rest = serde_path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find(']').map_or(rest.len(), |c| open + c);
        // A map key may hold brackets too (`"a[18446744073709551615]"`): only a number that
        // can be an index is rewritten, everything else is kept as sent.
        match rest[open + 1..close].parse::<usize>().ok().and_then(|i| i.checked_add(1)) {
            Some(n) => out.push_str(&format!(".{n}.member")),
            None => out.push_str(&rest[open..=close.min(rest.len() - 1)]),
        }
        rest = rest.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Structures must be JSON objects: serde's derive would also take an array read by position.
pub(crate) fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(v @ Value::Object(_)) => serde_json::from_value(v).map(Some).map_err(de::Error::custom),
        Some(other) => Err(de::Error::custom(format!("expected a JSON object, got {}", json_kind(&other)))),
    }
}

/// Timestamps are JSON numbers of epoch seconds (Smithy's default); strings are refused because
/// no SDK sends them and accepting them would hide a client bug.
pub(crate) fn epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Number(n)) => {
            n.as_f64().map(Some).ok_or_else(|| de::Error::custom("expected epoch seconds as a JSON number"))
        }
        Some(other) => Err(de::Error::custom(format!(
            "expected epoch seconds as a JSON number (for example 1700000000.5), got {}",
            json_kind(&other)
        ))),
    }
}

/// A required timestamp member (`sentAt`, `timestamp`): present, and plausibly seconds.
pub(crate) fn required_epoch(check: &mut Checker, path: impl fmt::Display, value: Option<f64>) {
    match value {
        None => check.push(Violation::missing(path.to_string())),
        Some(t) if t.abs() > MAX_EPOCH_SECONDS => check.push(Violation::new(
            path.to_string(),
            Some(&t.to_string()),
            "Member must be epoch seconds (this looks like milliseconds: divide by 1000)",
        )),
        Some(_) => {}
    }
}

/// An `impression` list: 1..25 IDs of 1..256 characters (sensitive), at most 1000 characters joined.
pub(crate) fn impression(check: &mut Checker, prefix: ListPath, list: &[String]) {
    let path = || format!("{prefix}.impression");
    count(check, format_args!("{prefix}.impression"), list.len(), 1, MAX_IMPRESSIONS);
    for (j, id) in list.iter().enumerate() {
        check.length(format_args!("{prefix}.impression.{}.member", j + 1), id, 1, 256, true);
    }
    let joined = list.iter().map(|s| s.chars().count()).sum::<usize>() + list.len().saturating_sub(1);
    if joined > MAX_IMPRESSION_CHARS {
        check.push(Violation::new(
            path(),
            None,
            format!(
                "Member must have at most {MAX_IMPRESSION_CHARS} characters when joined with '|' (it has {joined})"
            ),
        ));
    }
}

/// A `properties` member (`jsonvalue`, §2.5): a string of 1..`max` characters holding a JSON object.
/// Returns the object, read once ([`Props`], which the schema check reuses), or `None` after recording why it is
/// not one. `example` is the model's own example for this record type, quoted in the message. `path` is rendered
/// only into violations.
pub(crate) fn properties_object<'t>(
    check: &mut Checker,
    path: &dyn fmt::Display,
    text: &'t str,
    max: usize,
    example: &str,
) -> Option<Props<'t>> {
    check.length(path, text, 1, max, true);
    if let Some(props) = Props::parse(text) {
        return Some(props);
    }
    // Not one object: serde_json's own reading says what it is instead.
    match serde_json::from_str::<Value>(text) {
        // Props reads every object a Value does; kept whole should the two ever disagree.
        Ok(Value::Object(map)) => Some(Props::owned(map)),
        // The JS SDK v2 JSON-encodes the member itself, so a string the user already encoded arrives twice
        // encoded (§9.1); AWS refuses it, and so does interlog, saying what happened.
        Ok(Value::String(inner)) if serde_json::from_str::<Value>(&inner).is_ok_and(|v| v.is_object()) => {
            check.push(Violation::new(
                path.to_string(),
                None,
                format!(
                    "Error parsing properties json: it is a JSON string holding a JSON object, i.e. encoded twice; \
                     send the object's JSON text once, such as {example}"
                ),
            ));
            None
        }
        Ok(other) => {
            check.push(Violation::new(
                path.to_string(),
                None,
                format!(
                    "Error parsing properties json: it must be a JSON object such as {example}, not {}",
                    json_kind(&other)
                ),
            ));
            None
        }
        Err(err) => {
            check.push(Violation::new(path.to_string(), None, format!("Error parsing properties json: {err}")));
            None
        }
    }
}

/// Refuses keys of an event's or action interaction's `properties` that request members set.
/// Returns true when there were none.
pub(crate) fn forbidden_keys(check: &mut Checker, path: &dyn fmt::Display, props: &Props<'_>) -> bool {
    let mut clean = true;
    for key in props.keys() {
        if FORBIDDEN_PROPERTY_KEYS.iter().any(|f| same_key(key, f)) {
            clean = false;
            check.push(Violation::new(
                path.to_string(),
                None,
                format!(
                    "properties must not contain the key '{key}': it is set from a request member \
                     (forbidden keys, case-insensitive: {FORBIDDEN_PROPERTY_KEYS_DOC})"
                ),
            ));
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_paths_become_coral_paths() {
        assert_eq!(coral_path("impression[3]"), "impression.4.member");
        assert_eq!(coral_path("a[18446744073709551615].b[0]"), "a[18446744073709551615].b.1.member");
        assert_eq!(coral_path("."), ".");
    }

    #[test]
    fn properties_must_hold_one_object() {
        let example = r#"{"value": "100"}"#;
        let cases: &[(&str, Option<&str>)] = &[
            (r#"{"a": "1"}"#, None),
            ("{}", None),
            (&format!("{{\"a\": \"{}\"}}", "x".repeat(30)), Some("length less than or equal to 32")),
            ("[1]", Some("must be a JSON object such as {\"value\": \"100\"}, not an array")),
            ("12", Some("not a number")),
            (r#""{\"a\": \"1\"}""#, Some("encoded twice")),
            (r#""plain""#, Some("not a string")),
            ("{", Some("Error parsing properties json: EOF")),
        ];
        for (text, expected) in cases {
            let mut check = Checker::default();
            let map = properties_object(&mut check, &"p", text, 32, example);
            match expected {
                None => assert!(map.is_some() && check.violations.is_empty(), "{text}: {:?}", check.violations),
                Some(fragment) => {
                    assert!(map.is_none() || fragment.starts_with("length"), "{text}");
                    let messages: Vec<String> = check.violations.iter().map(ToString::to_string).collect();
                    assert!(messages.len() == 1 && messages[0].contains(fragment), "{text}: {messages:?}");
                    assert!(!messages[0].contains(text) || text.len() < 3, "{text}: properties are sensitive");
                }
            }
        }
    }

    #[test]
    fn forbidden_keys_are_case_and_underscore_insensitive() {
        let text = r#"{"Time_Stamp": 1, "USERID": "u", "numberOfRatings": "12"}"#;
        let props = Props::parse(text).unwrap();
        let mut check = Checker::default();
        assert!(!forbidden_keys(&mut check, &"p", &props));
        assert_eq!(check.violations.len(), 2);
        assert!(check.violations.iter().any(|v| v.rule.contains("'Time_Stamp'")));
    }

    #[test]
    fn counts_and_epochs() {
        let mut check = Checker::default();
        count(&mut check, "l", 0, 1, 10);
        count(&mut check, "l", 11, 1, 10);
        count(&mut check, "l", 10, 1, 10);
        required_epoch(&mut check, "t", None);
        required_epoch(&mut check, "t", Some(1.7e12));
        required_epoch(&mut check, "t", Some(-1.7e9));
        let messages: Vec<String> = check.violations.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "Value at 'l' failed to satisfy constraint: Member must have length greater than or equal to 1",
                "Value at 'l' failed to satisfy constraint: Member must have length less than or equal to 10",
                "Value null at 't' failed to satisfy constraint: Member must not be null",
                "Value '1700000000000' at 't' failed to satisfy constraint: Member must be epoch seconds (this looks \
                 like milliseconds: divide by 1000)",
            ]
        );
    }
}
