//! The PutEvents input shape and what botocore does with it: the shorthand
//! back-compat pass, parameter validation, serialization and the
//! `--generate-cli-skeleton` template.
//!
//! The shape is transcribed from botocore's `personalize-events/2018-03-22`
//! model; member order matters because it drives error listings
//! (`must be one of: eventId, eventType, …`) and the skeleton.

use crate::pyjson::{DictKind, Value};
use crate::timestamp::{to_epoch_seconds, TimestampError};

/// A node of the service model, reduced to what validation needs.
pub enum Shape {
    /// A string with an optional minimum length.
    Str { min: Option<usize> },
    /// A float (`eventValue`).
    Float,
    /// A timestamp (`sentAt`).
    Timestamp,
    /// A list with a minimum length.
    List { member: &'static Shape, min: usize },
    /// A structure: members in model order, then the required ones.
    Struct { members: &'static [(&'static str, &'static Shape)], required: &'static [&'static str] },
}

static STRING_TYPE: Shape = Shape::Str { min: Some(1) };
static ATTRIBUTION_SOURCE: Shape = Shape::Str { min: None };
static FLOAT: Shape = Shape::Float;
static DATE: Shape = Shape::Timestamp;
static IMPRESSION: Shape = Shape::List { member: &STRING_TYPE, min: 1 };
static METRIC_ATTRIBUTION: Shape = Shape::Struct {
    members: &[("eventAttributionSource", &ATTRIBUTION_SOURCE)],
    required: &["eventAttributionSource"],
};
static EVENT: Shape = Shape::Struct {
    members: &[
        ("eventId", &STRING_TYPE),
        ("eventType", &STRING_TYPE),
        ("eventValue", &FLOAT),
        ("itemId", &STRING_TYPE),
        ("properties", &STRING_TYPE),
        ("sentAt", &DATE),
        ("recommendationId", &STRING_TYPE),
        ("impression", &IMPRESSION),
        ("metricAttribution", &METRIC_ATTRIBUTION),
    ],
    required: &["eventType", "sentAt"],
};
static EVENT_LIST: Shape = Shape::List { member: &EVENT, min: 1 };

/// `PutEventsRequest`.
pub static PUT_EVENTS_REQUEST: Shape = Shape::Struct {
    members: &[
        ("trackingId", &STRING_TYPE),
        ("userId", &STRING_TYPE),
        ("sessionId", &STRING_TYPE),
        ("eventList", &EVENT_LIST),
    ],
    required: &["trackingId", "sessionId", "eventList"],
};

/// The `eventList` shape, for the argument parser.
pub fn event_list_shape() -> &'static Shape {
    &EVENT_LIST
}

/// An error outside validation proper, raised while converting a shorthand
/// value (`float('abc')`) or a timestamp; aws-cli prints it bare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BareError(pub String);

/// botocore's `BackCompatVisitor`: shorthand scalars are coerced by the model
/// (`eventValue=5` becomes `5.0`) and a scalar given for a list is wrapped.
pub fn back_compat(value: &mut Value, shape: &Shape) -> Result<(), BareError> {
    match shape {
        Shape::Struct { members, .. } => {
            if let Value::Dict(items, _) = value {
                for (name, member) in *members {
                    if let Some((_, v)) = items.iter_mut().find(|(k, _)| k == name) {
                        back_compat_member(v, member)?;
                    }
                }
            }
            Ok(())
        }
        Shape::List { member, .. } => {
            if let Value::List(items) = value {
                for item in items {
                    back_compat_member(item, member)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn back_compat_member(value: &mut Value, shape: &Shape) -> Result<(), BareError> {
    match shape {
        Shape::List { .. } => {
            if !matches!(value, Value::List(_)) {
                let scalar = std::mem::replace(value, Value::Null);
                *value = Value::List(vec![scalar]);
                return Ok(());
            }
            back_compat(value, shape)
        }
        Shape::Float => {
            *value = Value::Float(python_float_of(value)?);
            Ok(())
        }
        Shape::Struct { .. } => back_compat(value, shape),
        _ => Ok(()),
    }
}

/// Python's `float(value)` with its exact error messages.
fn python_float_of(value: &Value) -> Result<f64, BareError> {
    match value {
        Value::Str(s) => crate::timestamp::python_float(s)
            .ok_or_else(|| BareError(format!("could not convert string to float: {}", crate::pyjson::str_repr(s)))),
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(i.parse().unwrap_or(f64::INFINITY)),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        Value::Bytes(b) => crate::timestamp::python_float(&String::from_utf8_lossy(b))
            .ok_or_else(|| BareError(format!("could not convert string to float: {}", crate::pyjson::bytes_repr(b)))),
        Value::List(_) => Err(BareError("float() argument must be a string or a real number, not 'list'".into())),
        Value::Dict(..) => Err(BareError("float() argument must be a string or a real number, not 'dict'".into())),
        Value::Null => Err(BareError("float() argument must be a string or a real number, not 'NoneType'".into())),
    }
}

/// What validation found: botocore's report lines, or a timestamp so far out
/// of range that botocore raised instead of reporting.
#[derive(Debug)]
pub enum Invalid {
    /// `Parameter validation failed:` followed by these lines.
    Report(Vec<String>),
    /// `Unable to calculate correct timezone offset for "…"`.
    Bare(BareError),
}

/// botocore's `ParamValidator.validate` against `PutEventsRequest`.
pub fn validate(params: &Value) -> Result<(), Invalid> {
    let mut report = Vec::new();
    check(params, &PUT_EVENTS_REQUEST, "", &mut report)?;
    if report.is_empty() {
        Ok(())
    } else {
        Err(Invalid::Report(report))
    }
}

fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "input"
    } else {
        name.strip_prefix('.').unwrap_or(name)
    }
}

fn invalid_type(report: &mut Vec<String>, name: &str, value: &Value, valid: &str) {
    report.push(format!(
        "Invalid type for parameter {}, value: {}, type: {}, valid types: {valid}",
        display_name(name),
        value.py_str(),
        value.py_type()
    ));
}

fn check(value: &Value, shape: &Shape, name: &str, report: &mut Vec<String>) -> Result<(), Invalid> {
    match shape {
        Shape::Str { min } => {
            let Value::Str(s) = value else {
                invalid_type(report, name, value, "<class 'str'>");
                return Ok(());
            };
            let len = s.chars().count();
            if let Some(min) = min {
                if len < *min {
                    report.push(format!(
                        "Invalid length for parameter {}, value: {len}, valid min length: {min}",
                        display_name(name)
                    ));
                }
            }
        }
        Shape::Float => {
            if !matches!(value, Value::Float(_) | Value::Int(_) | Value::Bool(_)) {
                invalid_type(report, name, value, "<class 'float'>, <class 'decimal.Decimal'>, <class 'int'>");
            }
        }
        Shape::Timestamp => match to_epoch_seconds(value) {
            Ok(_) => {}
            Err(TimestampError::Invalid) => {
                invalid_type(report, name, value, "<class 'datetime.datetime'>, timestamp-string");
            }
            Err(TimestampError::Overflow) => {
                return Err(Invalid::Bare(BareError(format!(
                    "Unable to calculate correct timezone offset for \"{}\"",
                    value.py_str()
                ))));
            }
        },
        Shape::List { member, min } => {
            let Value::List(items) = value else {
                invalid_type(report, name, value, "<class 'list'>, <class 'tuple'>");
                return Ok(());
            };
            if items.len() < *min {
                report.push(format!(
                    "Invalid length for parameter {}, value: {}, valid min length: {min}",
                    display_name(name),
                    items.len()
                ));
            }
            for (i, item) in items.iter().enumerate() {
                check(item, member, &format!("{name}[{i}]"), report)?;
            }
        }
        Shape::Struct { members, required } => {
            let Value::Dict(items, _) = value else {
                invalid_type(report, name, value, "<class 'dict'>");
                return Ok(());
            };
            for req in *required {
                if !items.iter().any(|(k, _)| k == req) {
                    report.push(format!("Missing required parameter in {}: \"{req}\"", display_name(name)));
                }
            }
            let valid_names: Vec<&str> = members.iter().map(|(n, _)| *n).collect();
            for (key, _) in items {
                if !valid_names.contains(&key.as_str()) {
                    report.push(format!(
                        "Unknown parameter in {}: \"{key}\", must be one of: {}",
                        display_name(name),
                        valid_names.join(", ")
                    ));
                }
            }
            for (key, v) in items {
                if let Some((_, member)) = members.iter().find(|(n, _)| n == key) {
                    check(v, member, &format!("{name}.{key}"), report)?;
                }
            }
        }
    }
    Ok(())
}

/// botocore's rest-json serializer: input key order is kept, timestamps become
/// integer epoch seconds and non-finite floats become strings.
/// Call only after [`validate`] succeeded.
pub fn serialize(value: &Value, shape: &Shape) -> Value {
    match (shape, value) {
        (Shape::Struct { members, .. }, Value::Dict(items, _)) => Value::Dict(
            items
                .iter()
                .map(|(k, v)| {
                    let member = members.iter().find(|(n, _)| n == k).map(|(_, s)| *s);
                    (k.clone(), member.map_or_else(|| v.clone(), |m| serialize(v, m)))
                })
                .collect(),
            DictKind::Plain,
        ),
        (Shape::List { member, .. }, Value::List(items)) => {
            Value::List(items.iter().map(|v| serialize(v, member)).collect())
        }
        (Shape::Timestamp, v) => Value::Int(to_epoch_seconds(v).unwrap_or_default().to_string()),
        (Shape::Float, Value::Float(f)) if f.is_nan() => Value::Str("NaN".into()),
        (Shape::Float, Value::Float(f)) if f.is_infinite() => {
            Value::Str(if *f > 0.0 { "Infinity" } else { "-Infinity" }.into())
        }
        (_, v) => v.clone(),
    }
}

/// The `--generate-cli-skeleton input` template.
pub fn skeleton(shape: &Shape) -> Value {
    match shape {
        Shape::Str { .. } => Value::Str(String::new()),
        Shape::Float => Value::Float(0.0),
        Shape::Timestamp => Value::Str("1970-01-01T00:00:00".into()),
        Shape::List { member, .. } => Value::List(vec![skeleton(member)]),
        Shape::Struct { members, .. } => {
            Value::Dict(members.iter().map(|(n, s)| ((*n).to_owned(), skeleton(s))).collect(), DictKind::Plain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyjson::{dumps, loads};

    fn report(json: &str) -> Vec<String> {
        match validate(&loads(json, DictKind::Ordered).unwrap()) {
            Err(Invalid::Report(lines)) => lines,
            other => panic!("expected a report, got {other:?}"),
        }
    }

    #[test]
    fn validation_lines_match_botocore() {
        assert_eq!(
            report(r#"{"trackingId": "t", "sessionId": "s", "eventList": [{"EventType": "c", "sentAt": 1}]}"#),
            vec![
                "Missing required parameter in eventList[0]: \"eventType\"".to_owned(),
                "Unknown parameter in eventList[0]: \"EventType\", must be one of: eventId, eventType, eventValue, itemId, properties, sentAt, recommendationId, impression, metricAttribution".to_owned(),
            ]
        );
        assert_eq!(
            report(r#"{"trackingId": "", "sessionId": "s", "eventList": []}"#),
            vec![
                "Invalid length for parameter trackingId, value: 0, valid min length: 1".to_owned(),
                "Invalid length for parameter eventList, value: 0, valid min length: 1".to_owned(),
            ]
        );
        assert_eq!(
            report(r#"{"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "c", "sentAt": 1, "properties": {"a": "1"}}]}"#),
            vec!["Invalid type for parameter eventList[0].properties, value: OrderedDict([('a', '1')]), type: <class 'collections.OrderedDict'>, valid types: <class 'str'>".to_owned()]
        );
    }

    #[test]
    fn skeleton_is_botocore_order() {
        let text = dumps(&skeleton(&PUT_EVENTS_REQUEST), Some(4));
        assert!(text.starts_with("{\n    \"trackingId\": \"\",\n    \"userId\": \"\","));
        assert!(text.contains("\"sentAt\": \"1970-01-01T00:00:00\""));
        assert!(text.contains("\"eventValue\": 0.0"));
    }
}
