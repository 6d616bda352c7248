//! The personalize-events operations and what botocore does with their input
//! shapes: the shorthand back-compat pass, parameter validation,
//! serialization and the `--generate-cli-skeleton` template.
//!
//! The shapes come from botocore's own `personalize-events/2018-03-22` model,
//! vendored as `models/personalize-events-2018-03-22.json` (the file aws-cli
//! 1.46.3 ships), so every command is data: its name, path, options, required
//! members and their order (which drives error listings such as
//! `must be one of: eventId, eventType, …` and the skeleton) all come from it.

use std::sync::OnceLock;

use crate::pyjson::{loads, DictKind, Value};
use crate::timestamp::{to_epoch_seconds, TimestampError};

/// botocore's service model, byte for byte.
const SERVICE_MODEL: &str = include_str!("../models/personalize-events-2018-03-22.json");

/// A node of the service model, reduced to what validation needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A string with an optional minimum length.
    Str { min: Option<usize> },
    /// A float (`eventValue`).
    Float,
    /// A timestamp (`sentAt`, `timestamp`).
    Timestamp,
    /// A list with an optional minimum length.
    List { member: Box<Shape>, min: Option<usize> },
    /// A structure: members in model order, then the required ones.
    Struct { members: Vec<(String, Shape)>, required: Vec<String> },
}

/// One operation of the service, as aws-cli turns it into a command.
#[derive(Debug)]
pub struct Operation {
    /// The API name: `PutItems`.
    pub name: String,
    /// The command: `put-items` (botocore's `xform_name`).
    pub command: String,
    /// The HTTP path after the endpoint's own path: `/items`.
    pub request_uri: String,
    /// The input structure.
    pub input: Shape,
}

impl Operation {
    /// The input members with their option names (`datasetArn` ↔ `--dataset-arn`), in model order.
    pub fn members(&self) -> impl Iterator<Item = Member<'_>> {
        let (members, required): (&[(String, Shape)], &[String]) = match &self.input {
            Shape::Struct { members, required } => (members, required),
            _ => (&[], &[]),
        };
        members.iter().map(move |(name, shape)| Member {
            name,
            option: format!("--{}", xform_name(name)),
            shape,
            required: required.contains(name),
        })
    }
}

/// A top-level input member and the option that sets it.
pub struct Member<'a> {
    /// `datasetArn`.
    pub name: &'a str,
    /// `--dataset-arn`.
    pub option: String,
    pub shape: &'a Shape,
    pub required: bool,
}

/// Every operation of the vendored model, in model order.
pub fn operations() -> &'static [Operation] {
    static OPERATIONS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPERATIONS.get_or_init(|| load(SERVICE_MODEL).unwrap_or_else(|e| panic!("the vendored service model: {e}")))
}

/// The operation behind a command name (`put-items`).
pub fn operation(command: &str) -> Option<&'static Operation> {
    operations().iter().find(|op| op.command == command)
}

/// botocore's `xform_name(name, '-')` for the names this model has: `PutActionInteractions` →
/// `put-action-interactions`, `datasetArn` → `dataset-arn`.
fn xform_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn load(text: &str) -> Result<Vec<Operation>, String> {
    let model = loads(text, DictKind::Ordered).map_err(|e| e.to_string())?;
    let Some(Value::Dict(ops, _)) = model.get("operations") else { return Err("no operations".into()) };
    let shapes = model.get("shapes").ok_or("no shapes")?;
    ops.iter()
        .map(|(name, op)| {
            let str_at = |v: Option<&Value>| match v {
                Some(Value::Str(s)) => Ok(s.clone()),
                _ => Err(format!("{name}: a string is missing")),
            };
            let input = str_at(op.get("input").and_then(|i| i.get("shape")))?;
            Ok(Operation {
                name: name.clone(),
                command: xform_name(name),
                request_uri: str_at(op.get("http").and_then(|h| h.get("requestUri")))?,
                input: shape(shapes, &input, 0)?,
            })
        })
        .collect()
}

/// Resolves a named shape into a tree (the model has no recursive shapes; the depth guards that).
fn shape(shapes: &Value, name: &str, depth: usize) -> Result<Shape, String> {
    if depth > 16 {
        return Err(format!("shape {name} nests too deeply"));
    }
    let def = shapes.get(name).ok_or_else(|| format!("unknown shape {name}"))?;
    let target = |v: Option<&Value>| match v.and_then(|m| m.get("shape")) {
        Some(Value::Str(s)) => shape(shapes, s, depth + 1),
        _ => Err(format!("shape {name}: a member has no shape")),
    };
    let min = match def.get("min") {
        Some(Value::Int(n)) => Some(n.parse::<usize>().map_err(|e| format!("shape {name}: min {e}"))?),
        _ => None,
    };
    match def.get("type") {
        Some(Value::Str(t)) if t == "string" => Ok(Shape::Str { min }),
        Some(Value::Str(t)) if t == "float" => Ok(Shape::Float),
        Some(Value::Str(t)) if t == "timestamp" => Ok(Shape::Timestamp),
        Some(Value::Str(t)) if t == "list" => Ok(Shape::List { member: Box::new(target(def.get("member"))?), min }),
        Some(Value::Str(t)) if t == "structure" => {
            let members = match def.get("members") {
                Some(Value::Dict(items, _)) => items
                    .iter()
                    .map(|(member, m)| Ok((member.clone(), target(Some(m))?)))
                    .collect::<Result<Vec<_>, String>>()?,
                _ => Vec::new(),
            };
            let required = match def.get("required") {
                Some(Value::List(items)) => items.iter().map(Value::py_str).collect(),
                _ => Vec::new(),
            };
            Ok(Shape::Struct { members, required })
        }
        other => Err(format!("shape {name}: type {other:?} is not supported by interlog-cli")),
    }
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
                for (name, member) in members {
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

/// botocore's `ParamValidator.validate` against an operation's input shape.
pub fn validate(params: &Value, input: &Shape) -> Result<(), Invalid> {
    let mut report = Vec::new();
    check(params, input, "", &mut report)?;
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
            if let Some(min) = min {
                if items.len() < *min {
                    report.push(format!(
                        "Invalid length for parameter {}, value: {}, valid min length: {min}",
                        display_name(name),
                        items.len()
                    ));
                }
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
            for req in required {
                if !items.iter().any(|(k, _)| k == req) {
                    report.push(format!("Missing required parameter in {}: \"{req}\"", display_name(name)));
                }
            }
            let valid_names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
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
                    let member = members.iter().find(|(n, _)| n == k).map(|(_, s)| s);
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
            Value::Dict(members.iter().map(|(n, s)| (n.clone(), skeleton(s))).collect(), DictKind::Plain)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyjson::{dumps, loads};

    fn input(command: &str) -> &'static Shape {
        &operation(command).unwrap().input
    }

    fn report(json: &str) -> Vec<String> {
        match validate(&loads(json, DictKind::Ordered).unwrap(), input("put-events")) {
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
        let text = dumps(&skeleton(input("put-events")), Some(4));
        assert!(text.starts_with("{\n    \"trackingId\": \"\",\n    \"userId\": \"\","));
        assert!(text.contains("\"sentAt\": \"1970-01-01T00:00:00\""));
        assert!(text.contains("\"eventValue\": 0.0"));
        let text = dumps(&skeleton(input("put-users")), None);
        assert_eq!(text, r#"{"datasetArn": "", "users": [{"userId": "", "properties": ""}]}"#);
    }

    #[test]
    fn every_operation_of_the_model_is_a_command() {
        let found: Vec<(&str, &str, &str)> =
            operations().iter().map(|o| (o.name.as_str(), o.command.as_str(), o.request_uri.as_str())).collect();
        assert_eq!(
            found,
            [
                ("PutActionInteractions", "put-action-interactions", "/action-interactions"),
                ("PutActions", "put-actions", "/actions"),
                ("PutEvents", "put-events", "/events"),
                ("PutItems", "put-items", "/items"),
                ("PutUsers", "put-users", "/users"),
            ]
        );
        let options = |c: &str| -> Vec<(String, bool)> {
            operation(c).unwrap().members().map(|m| (m.option, m.required)).collect()
        };
        let o = |name: &str, required: bool| (name.to_owned(), required);
        assert_eq!(
            options("put-events"),
            [o("--tracking-id", true), o("--user-id", false), o("--session-id", true), o("--event-list", true)]
        );
        assert_eq!(options("put-action-interactions"), [o("--tracking-id", true), o("--action-interactions", true)]);
        assert_eq!(options("put-items"), [o("--dataset-arn", true), o("--items", true)]);
    }

    #[test]
    fn shapes_keep_the_model_constraints_botocore_checks() {
        // botocore checks min lengths only: the Arn shape has none, StringType has 1.
        let Shape::Struct { members, required } = input("put-actions") else { panic!() };
        assert_eq!(required, &["datasetArn", "actions"]);
        assert_eq!(members[0], ("datasetArn".to_owned(), Shape::Str { min: None }));
        let Shape::List { member, min: Some(1) } = &members[1].1 else { panic!("{:?}", members[1]) };
        let Shape::Struct { members, required } = &**member else { panic!() };
        assert_eq!(required, &["actionId"]);
        assert_eq!(members[0], ("actionId".to_owned(), Shape::Str { min: Some(1) }));
        assert!(load("{}").is_err());
        assert!(load(r#"{"operations": {"X": {"http": {"requestUri": "/x"}, "input": {"shape": "M"}}}, "shapes": {"M": {"type": "map"}}}"#)
            .is_err_and(|e| e.contains("not supported")));
    }
}
