//! Every record's `properties` of one Put* request checked against its dataset's schema (§7.5,
//! §7.6, docs/api.md): declared keys must fit their fields, undeclared keys are kept and flagged
//! (or refused with `--strict-properties`). Shared by every Put* handler; the rules themselves
//! are the model's ([`interlog_model::properties`]).

use std::fmt;

use interlog_model::properties::{PropertyRules, UndeclaredKeys};
use interlog_model::{Flag, ValidationError};
use interlog_store::DatasetTarget;

use super::error::ApiError;

/// Checks the `properties` of every record of a request; all problems of the request are
/// reported together, so a refused request stores nothing. On success each record's flags are
/// handed to `set_flags` (only for records that have some).
///
/// `list` is the request member holding the records (`eventList`, `items`...), for the Coral
/// paths of violations; `properties` reads a record's `properties` text.
pub(crate) fn check_records<R>(
    dataset: &DatasetTarget,
    list: &'static str,
    records: &mut [R],
    strict: bool,
    properties: impl Fn(&R) -> Option<&str>,
    mut set_flags: impl FnMut(&mut R, Vec<Flag>),
) -> Result<(), ApiError> {
    let Some(schema) = &dataset.compiled else { return Ok(()) };
    let rules = rules(strict);
    // Without properties a record can only break the schema by missing a required metadata
    // field; most schemas have none, so most records skip the check entirely.
    let requires_metadata = schema.requires_metadata();
    let mut violations = Vec::new();
    for (i, record) in records.iter_mut().enumerate() {
        let text = properties(record);
        if text.is_none() && !requires_metadata {
            continue;
        }
        let path = PropertiesPath { list, index: i + 1 };
        match schema.check_text(&path, text, rules) {
            Ok(checked) if !checked.flags.is_empty() => set_flags(record, checked.flags),
            Ok(_) => {}
            Err(v) => violations.extend(v),
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ValidationError::Violations(violations).into())
    }
}

/// The rules of the check: undeclared keys flagged, or refused with `--strict-properties`.
pub(crate) fn rules(strict: bool) -> PropertyRules {
    let undeclared_keys = if strict { UndeclaredKeys::Refuse } else { UndeclaredKeys::Flag };
    PropertyRules { undeclared_keys, ..PropertyRules::default() }
}

/// `eventList.3.member.properties`, rendered only when a violation needs it.
struct PropertiesPath {
    list: &'static str,
    index: usize,
}

impl fmt::Display for PropertiesPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.member.properties", self.list, self.index)
    }
}
