//! Validation failures, worded the way AWS's Coral front end words them.

use std::fmt;

/// Why a request was refused. Every variant becomes an `InvalidInputException`.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidationError {
    /// The body is not the JSON document the operation expects (syntax, type of a member).
    Body(String),
    /// The body parsed, but members break the model's constraints; all of them are listed.
    Violations(Vec<Violation>),
}

/// One broken constraint of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// The member in Coral notation: `eventList.1.member.eventType` (1-based indices).
    pub path: String,
    /// What was sent, when it is not sensitive; `None` for missing or redacted values.
    pub value: Option<String>,
    /// True when the member was absent or null.
    pub missing: bool,
    /// The rule, phrased as "Member must ...".
    pub rule: String,
}

/// Values longer than this are cut in messages, so one huge field cannot flood a log line.
const MAX_ECHOED_CHARS: usize = 100;

impl Violation {
    pub fn missing(path: impl Into<String>) -> Self {
        Violation { path: path.into(), value: None, missing: true, rule: "Member must not be null".into() }
    }

    /// A broken rule; `value` is echoed unless the member is sensitive.
    pub fn new(path: impl Into<String>, value: Option<&str>, rule: impl Into<String>) -> Self {
        let value = value.map(|v| {
            if v.chars().count() > MAX_ECHOED_CHARS {
                let cut: String = v.chars().take(MAX_ECHOED_CHARS).collect();
                format!("{cut}...")
            } else {
                v.to_owned()
            }
        });
        Violation { path: path.into(), value, missing: false, rule: rule.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.value, self.missing) {
            (_, true) => write!(f, "Value null at '{}' failed to satisfy constraint: {}", self.path, self.rule),
            (Some(v), false) => {
                write!(f, "Value '{v}' at '{}' failed to satisfy constraint: {}", self.path, self.rule)
            }
            (None, false) => write!(f, "Value at '{}' failed to satisfy constraint: {}", self.path, self.rule),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidationError::Body(message) => f.write_str(message),
            ValidationError::Violations(list) => {
                let noun = if list.len() == 1 { "error" } else { "errors" };
                write!(f, "{} validation {noun} detected: ", list.len())?;
                for (i, v) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{v}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ValidationError {}

/// How a JSON value is named in messages: "a string", "an object", ...
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects violations so one response names every problem of a request at once.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    pub(crate) violations: Vec<Violation>,
}

impl Checker {
    pub(crate) fn push(&mut self, v: Violation) {
        self.violations.push(v);
    }

    /// Length in characters (code points), as AWS counts them.
    /// `path` is only rendered when the rule is broken: valid requests build no message strings.
    pub(crate) fn length(
        &mut self,
        path: impl std::fmt::Display,
        value: &str,
        min: usize,
        max: usize,
        sensitive: bool,
    ) {
        // Byte length bounds the character count from above (and every minimum here is 0 or 1),
        // so most values skip counting characters.
        if min <= 1 && value.len() <= max && (min == 0 || !value.is_empty()) {
            return;
        }
        let n = value.chars().count();
        let shown = if sensitive { None } else { Some(value) };
        if n < min {
            self.push(Violation::new(
                path.to_string(),
                shown,
                format!("Member must have length greater than or equal to {min}"),
            ));
        } else if n > max {
            self.push(Violation::new(
                path.to_string(),
                shown,
                format!("Member must have length less than or equal to {max}"),
            ));
        }
    }

    pub(crate) fn required_length(
        &mut self,
        path: impl std::fmt::Display,
        value: Option<&str>,
        min: usize,
        max: usize,
        sensitive: bool,
    ) {
        match value {
            None => self.push(Violation::missing(path.to_string())),
            Some(v) => self.length(path, v, min, max, sensitive),
        }
    }

    pub(crate) fn finish(self) -> Result<(), ValidationError> {
        if self.violations.is_empty() {
            Ok(())
        } else {
            Err(ValidationError::Violations(self.violations))
        }
    }
}

/// A member path rendered only when needed: `prefix.member` (`eventList.1.member.eventType`).
pub(crate) struct At<'a, P: fmt::Display>(pub(crate) P, pub(crate) &'a str);

impl<P: fmt::Display> fmt::Display for At<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_violation_reads_like_coral() {
        let e = ValidationError::Violations(vec![Violation::new(
            "eventList.1.member.eventType",
            Some("x"),
            "Member must have length less than or equal to 256",
        )]);
        assert_eq!(
            e.to_string(),
            "1 validation error detected: Value 'x' at 'eventList.1.member.eventType' failed to satisfy \
             constraint: Member must have length less than or equal to 256"
        );
    }

    #[test]
    fn several_violations_are_joined_and_sensitive_values_hidden() {
        let e = ValidationError::Violations(vec![
            Violation::missing("sessionId"),
            Violation::new("userId", None, "Member must have length less than or equal to 256"),
        ]);
        assert_eq!(
            e.to_string(),
            "2 validation errors detected: Value null at 'sessionId' failed to satisfy constraint: Member must \
             not be null; Value at 'userId' failed to satisfy constraint: Member must have length less than or \
             equal to 256"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let v = Violation::new("p", Some(&"a".repeat(300)), "r");
        assert!(v.to_string().len() < 200);
    }
}
