//! PutItems (`POST /items`), PutUsers (`POST /users`) and PutActions (`POST /actions`): parse the rest-json
//! body and enforce every constraint of the model (§3.2-3.4 of the spec).
//!
//! The three operations have the same shape: `datasetArn` and a list of 1..10 records, each an ID of
//! 1..256 characters and optional `properties` (a string holding a JSON object, up to 32000 / 24000 /
//! 32000 characters). One parser serves all three, told apart by [`RecordKind`]. Decisions on what the
//! spec leaves open are recorded in `docs/api.md`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::control;
use crate::record::{PutRecords, Record, RecordKind};
use crate::validation::{At, Checker, ValidationError};
use crate::wire::{self, ListPath};

/// The request and record members of one kind, read by serde (the member names differ per kind).
trait Wire<'a>: Deserialize<'a> {
    type Record: serde::de::DeserializeOwned + Into<WireRecord>;
    fn into_parts(self) -> (Option<String>, Option<Vec<&'a RawValue>>);
}

/// A record as sent, whatever its kind.
struct WireRecord {
    id: Option<String>,
    properties: Option<String>,
}

/// Declares the wire structures of one kind: `datasetArn` + the list member, and the ID member + properties.
macro_rules! wire_kind {
    ($request:ident, $record:ident, $list:literal, $id:literal) => {
        #[derive(Deserialize)]
        struct $request<'a> {
            #[serde(rename = "datasetArn")]
            dataset_arn: Option<String>,
            #[serde(rename = $list, borrow)]
            records: Option<Vec<&'a RawValue>>,
        }

        #[derive(Deserialize)]
        struct $record {
            #[serde(rename = $id)]
            id: Option<String>,
            properties: Option<String>,
        }

        impl From<$record> for WireRecord {
            fn from(r: $record) -> Self {
                WireRecord { id: r.id, properties: r.properties }
            }
        }

        impl<'a> Wire<'a> for $request<'a> {
            type Record = $record;
            fn into_parts(self) -> (Option<String>, Option<Vec<&'a RawValue>>) {
                (self.dataset_arn, self.records)
            }
        }
    };
}

wire_kind!(WireItems, WireItem, "items", "itemId");
wire_kind!(WireUsers, WireUser, "users", "userId");
wire_kind!(WireActions, WireAction, "actions", "actionId");

/// Parses and validates a PutItems body.
pub fn parse_put_items(body: &[u8]) -> Result<PutRecords, ValidationError> {
    parse_put_records(RecordKind::Item, body)
}

/// Parses and validates a PutUsers body.
pub fn parse_put_users(body: &[u8]) -> Result<PutRecords, ValidationError> {
    parse_put_records(RecordKind::User, body)
}

/// Parses and validates a PutActions body.
pub fn parse_put_actions(body: &[u8]) -> Result<PutRecords, ValidationError> {
    parse_put_records(RecordKind::Action, body)
}

/// Parses and validates the body of `kind`'s operation; every broken constraint is reported at once.
pub fn parse_put_records(kind: RecordKind, body: &[u8]) -> Result<PutRecords, ValidationError> {
    match kind {
        RecordKind::Item => parse::<WireItems<'_>>(kind, body),
        RecordKind::User => parse::<WireUsers<'_>>(kind, body),
        RecordKind::Action => parse::<WireActions<'_>>(kind, body),
    }
}

fn parse<'a, W: Wire<'a>>(kind: RecordKind, body: &'a [u8]) -> Result<PutRecords, ValidationError> {
    let list = kind.list_member();
    let request: W = wire::parse_body(body, kind.operation(), &format!("datasetArn and {list}"))?;
    let (dataset_arn, raw_records) = request.into_parts();

    let mut check = Checker::default();
    match &dataset_arn {
        None => check.push(crate::Violation::missing("datasetArn")),
        Some(arn) => check.violations.extend(control::arn("datasetArn", arn)),
    }
    let raw = wire::record_list(&mut check, list, &raw_records);
    let mut records = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let prefix = ListPath { list, index: i + 1 };
        let record: WireRecord = wire::parse_record::<W::Record>(raw, prefix, kind.operation())?.into();
        if let Some(record) = validate(&mut check, kind, prefix, record) {
            records.push(record);
        }
    }
    check.finish()?;
    Ok(PutRecords { kind, dataset_arn: dataset_arn.unwrap_or_default(), records })
}

fn validate(check: &mut Checker, kind: RecordKind, prefix: ListPath, r: WireRecord) -> Option<Record> {
    let start = check.violations.len();
    // The record IDs are `StringType`, not sensitive in the model: messages show them.
    check.required_length(At(prefix, kind.id_member()), r.id.as_deref(), 1, 256, false);
    if let Some(text) = &r.properties {
        // Keys naming the ID column are left to the schema check, which skips them: the ID comes from
        // the member (docs/api.md).
        wire::properties_object(
            check,
            &At(prefix, "properties"),
            text,
            kind.max_properties_chars(),
            kind.properties_example(),
        );
    }
    if check.violations.len() > start {
        return None;
    }
    Some(Record { id: r.id.unwrap_or_default(), properties: r.properties, flags: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:personalize:us-east-1:123456789012:dataset/dg/ITEMS";

    fn body(kind: RecordKind, records: &str) -> String {
        format!(r#"{{"datasetArn": "{ARN}", "{}": [{records}]}}"#, kind.list_member())
    }

    fn record(kind: RecordKind, id: &str, props: Option<&str>) -> String {
        let id = serde_json::to_string(id).unwrap();
        match props {
            None => format!(r#"{{"{}": {id}}}"#, kind.id_member()),
            Some(p) => {
                format!(r#"{{"{}": {id}, "properties": {}}}"#, kind.id_member(), serde_json::to_string(p).unwrap())
            }
        }
    }

    fn err(kind: RecordKind, body: &str) -> String {
        parse_put_records(kind, body.as_bytes()).expect_err(body).to_string()
    }

    #[test]
    fn valid_records_are_kept_in_order_with_their_properties_as_sent() {
        for kind in RecordKind::ALL {
            let records = [
                record(kind, "r1", None),
                record(kind, "r2", Some(r#"{"genres": "Horror|Action", "n": 12}"#)),
                record(kind, "r1", Some("{}")),
            ]
            .join(",");
            let put = parse_put_records(kind, body(kind, &records).as_bytes()).unwrap();
            assert_eq!(put.kind, kind);
            assert_eq!(put.dataset_arn, ARN);
            let ids: Vec<&str> = put.records.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(ids, ["r1", "r2", "r1"], "{kind}: the later r1 is the latest write");
            assert_eq!(put.records[0].properties, None);
            assert_eq!(put.records[1].properties.as_deref(), Some(r#"{"genres": "Horror|Action", "n": 12}"#));
        }
    }

    #[test]
    fn each_kind_reads_only_its_own_members() {
        // PutItems ignores `users` and `userId` (unknown members are ignored), so its own are missing.
        let m = err(RecordKind::Item, &format!(r#"{{"datasetArn": "{ARN}", "users": [{{"userId": "u"}}]}}"#));
        assert_eq!(
            m,
            "1 validation error detected: Value null at 'items' failed to satisfy constraint: Member must not be null"
        );
        let m = err(RecordKind::User, &body(RecordKind::User, r#"{"itemId": "i", "userId": 5}"#));
        assert!(
            m.starts_with("Invalid value for 'users.1.member.userId': invalid type: integer `5`, expected a string"),
            "{m}"
        );
        let ok = parse_put_records(
            RecordKind::Action,
            body(RecordKind::Action, r#"{"actionId": "a", "itemId": 5}"#).as_bytes(),
        );
        assert!(ok.is_ok());
    }

    /// (kind, records JSON, expected fragments of the message or `None` when valid). Each row is at one rule's edge.
    #[test]
    fn every_constraint_is_enforced() {
        let big = |kind: RecordKind, extra: usize| {
            let n = kind.max_properties_chars() + extra - r#"{"k":""}"#.len();
            format!(r#"{{"k":"{}"}}"#, "x".repeat(n))
        };
        let repeat = |kind: RecordKind, n: usize| vec![record(kind, "r", None); n].join(",");
        for k in RecordKind::ALL {
            let (l, id) = (k.list_member(), k.id_member());
            let rows: Vec<(String, Option<Vec<String>>)> = vec![
                (repeat(k, 1), None),
                (repeat(k, 10), None),
                (repeat(k, 11), Some(vec![format!("Value at '{l}'"), "less than or equal to 10".into()])),
                (String::new(), Some(vec![format!("Value at '{l}'"), "greater than or equal to 1".into()])),
                (
                    record(k, "", None),
                    Some(vec![format!("Value '' at '{l}.1.member.{id}'"), "greater than or equal to 1".into()]),
                ),
                (record(k, &"i".repeat(256), None), None),
                (record(k, &"é".repeat(256), None), None),
                (
                    record(k, &"i".repeat(257), None),
                    Some(vec![format!("at '{l}.1.member.{id}'"), "less than or equal to 256".into()]),
                ),
                (format!("{},{{}}", record(k, "ok", None)), Some(vec![format!("Value null at '{l}.2.member.{id}'")])),
                (record(k, "r", Some("{}")), None),
                (record(k, "r", Some(&big(k, 0))), None),
                (
                    record(k, "r", Some(&big(k, 1))),
                    Some(vec![
                        format!("Value at '{l}.1.member.properties'"),
                        format!("less than or equal to {}", k.max_properties_chars()),
                    ]),
                ),
                (
                    record(k, "r", Some("")),
                    Some(vec!["greater than or equal to 1".into(), "Error parsing properties json".into()]),
                ),
                (
                    record(k, "r", Some("[1]")),
                    Some(vec![
                        "Error parsing properties json".into(),
                        "not an array".into(),
                        k.properties_example().into(),
                    ]),
                ),
                (
                    record(k, "r", Some("{bad")),
                    Some(vec!["Error parsing properties json: key must be a string".into()]),
                ),
                (record(k, "r", Some(r#""{\"a\":1}""#)), Some(vec!["encoded twice".into()])),
            ];
            for (records, expected) in rows {
                let text = body(k, &records);
                match (parse_put_records(k, text.as_bytes()), expected) {
                    (Ok(_), None) => {}
                    (Err(e), Some(fragments)) => {
                        let m = e.to_string();
                        for f in fragments {
                            assert!(m.contains(&f), "{k} {records:.80}: {m:.300} lacks {f}");
                        }
                        assert!(!m.contains("xxxx") && !m.contains("\"a\""), "properties are sensitive: {m:.200}");
                    }
                    (r, expected) => panic!("{k} {records:.80}: got {r:?}, expected {expected:?}"),
                }
            }
        }
    }

    #[test]
    fn the_users_maximum_is_smaller() {
        let p = format!(r#"{{"k":"{}"}}"#, "x".repeat(24_000));
        let m = err(RecordKind::User, &body(RecordKind::User, &record(RecordKind::User, "u", Some(&p))));
        assert!(m.contains("less than or equal to 24000"), "{m:.200}");
        assert!(parse_put_records(
            RecordKind::Item,
            body(RecordKind::Item, &record(RecordKind::Item, "i", Some(&p))).as_bytes()
        )
        .is_ok());
    }

    #[test]
    fn dataset_arn_is_required_and_a_personalize_arn() {
        let items = record(RecordKind::Item, "i", None);
        let cases = [
            (format!(r#"{{"items": [{items}]}}"#), "Value null at 'datasetArn' failed to satisfy constraint: Member must not be null"),
            (format!(r#"{{"datasetArn": "", "items": [{items}]}}"#), "Value '' at 'datasetArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:([a-z\\d-]+):personalize:.*:.*:.+"),
            (format!(r#"{{"datasetArn": "arn:aws:s3:::bucket", "items": [{items}]}}"#), "Member must satisfy regular expression pattern"),
            (format!(r#"{{"datasetArn": "arn:aws:personalize:us-east-1:1:{}", "items": [{items}]}}"#, "d".repeat(256)), "Member must have length less than or equal to 256"),
        ];
        for (body, expected) in cases {
            let m = err(RecordKind::Item, &body);
            assert!(m.contains(expected), "{body:.80}: {m}");
        }
    }

    #[test]
    fn all_violations_are_listed_together() {
        let m = err(RecordKind::Action, r#"{"actions": [{"actionId": ""}, {"properties": "[]"}]}"#);
        assert!(m.starts_with("4 validation errors detected: Value null at 'datasetArn'"), "{m}");
        assert!(m.contains("'actions.1.member.actionId'") && m.contains("'actions.2.member.actionId'"), "{m}");
        assert!(m.contains("'actions.2.member.properties'"), "{m}");
    }

    #[test]
    fn malformed_bodies_name_the_member() {
        let cases: &[(RecordKind, &str, &str)] = &[
            (RecordKind::Item, "", "The request body must be a JSON object with datasetArn and items"),
            (RecordKind::User, "[]", "The request body must be a JSON object with datasetArn and users"),
            (RecordKind::Item, "{", "The request body is not a valid PutItems JSON document: EOF"),
            (
                RecordKind::Action,
                r#"{"datasetArn": 5}"#,
                "Invalid value for 'datasetArn': invalid type: integer `5`, expected a string",
            ),
            (
                RecordKind::Item,
                r#"{"items": {"itemId": "i"}}"#,
                "Invalid value for 'items': invalid type: map, expected a sequence",
            ),
            (RecordKind::Item, r#"{"items": ["i1"]}"#, "Invalid value for 'items.1.member': expected a JSON object"),
            (
                RecordKind::Item,
                r#"{"items": [["i1", "{}"]]}"#,
                "Invalid value for 'items.1.member': expected a JSON object",
            ),
            (
                RecordKind::User,
                r#"{"users": [{"userId": "u", "properties": {"a": "1"}}]}"#,
                "Invalid value for 'users.1.member.properties': invalid type: map, expected a string",
            ),
            (RecordKind::Action, r#"{"actions": [{"actionId": null}]}"#, "Value null at 'actions.1.member.actionId'"),
        ];
        for (kind, body, expected) in cases {
            let m = err(*kind, body);
            assert!(m.contains(expected), "{body}: {m}");
        }
    }
}
