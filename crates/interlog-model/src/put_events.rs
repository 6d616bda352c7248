//! PutEvents (`POST /events`): parse the rest-json body and enforce every constraint of the model.
//!
//! The rules are those of `personalize-events-2018-03-22` (§3.1 of the spec) plus the documented
//! service limits (10 KB per event, properties rules). Decisions on what the spec leaves open are
//! recorded in `docs/api.md`.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::event::Interaction;
use crate::properties::{CompiledSchema, PropValue, PropertyRules, Props};
use crate::validation::{json_kind, At, Checker, ValidationError, Violation};
pub use crate::wire::normalize_key;
use crate::wire::{self, epoch_seconds, object, ListPath};

/// The documented maximum size of one event: 10 KB, measured as the event's JSON as sent.
pub const MAX_EVENT_BYTES: usize = 10 * 1024;
/// `sentAt` above this is almost certainly milliseconds (it would be the year 5138).
pub const MAX_SENT_AT_SECONDS: f64 = wire::MAX_EPOCH_SECONDS;
const OPERATION: &str = "PutEvents";
/// The model's example for `Event.properties`.
const PROPERTIES_EXAMPLE: &str = r#"{"numberOfRatings": "12"}"#;

/// A validated PutEvents request.
#[derive(Debug, Clone, PartialEq)]
pub struct PutEvents {
    pub tracking_id: String,
    pub events: Vec<Interaction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    tracking_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    #[serde(borrow)]
    event_list: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent {
    event_id: Option<String>,
    event_type: Option<String>,
    #[serde(default, deserialize_with = "float_or_special")]
    event_value: Option<f64>,
    item_id: Option<String>,
    properties: Option<String>,
    #[serde(default, deserialize_with = "epoch_seconds")]
    sent_at: Option<f64>,
    recommendation_id: Option<String>,
    impression: Option<Vec<String>>,
    #[serde(default, deserialize_with = "object")]
    metric_attribution: Option<WireMetricAttribution>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMetricAttribution {
    event_attribution_source: Option<String>,
}

/// Smithy lets clients send non-finite floats as the strings "NaN", "Infinity", "-Infinity".
/// They are parsed here so validation can reject them with a clear message.
fn float_or_special<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| de::Error::custom("expected a number")),
        Some(Value::String(s)) => match s.as_str() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            _ => Err(de::Error::custom(format!("expected a number, got the string {s:?}"))),
        },
        Some(other) => Err(de::Error::custom(format!("expected a number, got {}", json_kind(&other)))),
    }
}

/// Parses and validates a PutEvents body, checking no `properties` against a schema. Events without an eventId
/// get a generated UUID.
pub fn parse_put_events(body: &[u8]) -> Result<PutEvents, ValidationError> {
    PutEventsBody::parse(body)?.events(None)
}

/// A PutEvents body read down to its event list: the handler finds the tracker by [`PutEventsBody::tracking_id`],
/// then [`PutEventsBody::events`] reads each event once, its `properties` checked against the tracker's schema
/// in the same pass.
pub struct PutEventsBody<'a> {
    wire: WireRequest<'a>,
    check: Checker,
}

impl<'a> PutEventsBody<'a> {
    /// Reads the top level; the constraints found on it are reported with the events' by [`PutEventsBody::events`].
    pub fn parse(body: &'a [u8]) -> Result<PutEventsBody<'a>, ValidationError> {
        let wire: WireRequest<'_> = wire::parse_body(body, OPERATION, "trackingId, sessionId and eventList")?;
        let mut check = Checker::default();
        check.required_length("trackingId", wire.tracking_id.as_deref(), 1, 256, false);
        if let Some(user_id) = &wire.user_id {
            check.length("userId", user_id, 1, 256, true);
        }
        check.required_length("sessionId", wire.session_id.as_deref(), 1, 256, false);
        Ok(PutEventsBody { wire, check })
    }

    /// The `trackingId` as sent, if any.
    pub fn tracking_id(&self) -> Option<&str> {
        self.wire.tracking_id.as_deref()
    }

    /// Every event, validated; with a schema each event's `properties` is checked against it as well (undeclared
    /// keys flagged or refused as `rules` say). A request that breaks any member rule is refused for those alone,
    /// before its properties are judged, as when the schema check was a pass of its own.
    pub fn events(self, schema: Option<(&CompiledSchema, PropertyRules)>) -> Result<PutEvents, ValidationError> {
        let PutEventsBody { wire, mut check } = self;
        let raw_events = wire::record_list(&mut check, "eventList", &wire.event_list);
        let mut schema_violations = Vec::new();
        let mut events = Vec::with_capacity(raw_events.len());
        for (i, raw) in raw_events.iter().enumerate() {
            let prefix = ListPath { list: "eventList", index: i + 1 };
            if raw.get().len() > MAX_EVENT_BYTES {
                check.push(Violation::new(
                    prefix.to_string(),
                    None,
                    format!(
                        "Member must be at most {MAX_EVENT_BYTES} bytes of JSON (10 KB); it is {} bytes",
                        raw.get().len()
                    ),
                ));
                continue;
            }
            let event: WireEvent = wire::parse_record(raw, prefix, OPERATION)?;
            if let Some(interaction) = validate_event(&mut check, prefix, event, &wire, schema, &mut schema_violations)
            {
                events.push(interaction);
            }
        }
        check.finish()?;
        if !schema_violations.is_empty() {
            return Err(ValidationError::Violations(schema_violations));
        }
        Ok(PutEvents { tracking_id: wire.tracking_id.unwrap_or_default(), events })
    }
}

fn validate_event(
    check: &mut Checker,
    prefix: ListPath,
    e: WireEvent,
    req: &WireRequest<'_>,
    schema: Option<(&CompiledSchema, PropertyRules)>,
    schema_violations: &mut Vec<Violation>,
) -> Option<Interaction> {
    let start = check.violations.len();
    let p = |member: &str| format!("{prefix}.{member}");

    if let Some(id) = &e.event_id {
        check.length(At(prefix, "eventId"), id, 1, 256, false);
    }
    check.required_length(At(prefix, "eventType"), e.event_type.as_deref(), 1, 256, false);
    if let Some(v) = e.event_value {
        if !v.is_finite() {
            check.push(Violation::new(p("eventValue"), Some(&v.to_string()), "Member must be a finite number"));
        }
    }
    if let Some(item) = &e.item_id {
        check.length(At(prefix, "itemId"), item, 1, 256, true);
    }
    wire::required_epoch(check, At(prefix, "sentAt"), e.sent_at);
    if let Some(rid) = &e.recommendation_id {
        check.length(At(prefix, "recommendationId"), rid, 1, 40, false);
    }
    if let Some(list) = &e.impression {
        wire::impression(check, prefix, list);
    }
    if let Some(ma) = &e.metric_attribution {
        let path = At(prefix, "metricAttribution.eventAttributionSource");
        match &ma.event_attribution_source {
            None => check.push(Violation::missing(path.to_string())),
            Some(src) => {
                check.length(&path, src, 0, 1024, false);
                let printable = src.chars().all(|c| (' '..='~').contains(&c));
                let visible = src.chars().any(|c| ('!'..='~').contains(&c));
                if !(printable && visible) {
                    check.push(Violation::new(
                        path.to_string(),
                        Some(src),
                        "Member must satisfy regular expression pattern: ^[\\x20-\\x7E]*[\\x21-\\x7E]+[\\x20-\\x7E]*$ \
                         (printable ASCII with at least one non-space character)",
                    ));
                }
            }
        }
    }

    let mut item_id = e.item_id;
    let mut event_value = e.event_value;
    let mut flags = Vec::new();
    let path = At(prefix, "properties");
    let props = match &e.properties {
        Some(text) => {
            let props = wire::properties_object(check, &path, text, 1024, PROPERTIES_EXAMPLE);
            if let Some(props) = &props {
                wire::forbidden_keys(check, &path, props);
                legacy_members(check, &path, props, &mut item_id, &mut event_value);
            }
            props
        }
        None => None,
    };
    if check.violations.len() > start {
        return None;
    }
    if let Some((schema, rules)) = schema {
        // Without properties an event can only break the schema by missing a required metadata field; most
        // schemas have none, so most such events skip the check.
        if props.is_some() || schema.requires_metadata() {
            match schema.check(&path, &props.unwrap_or_default(), rules) {
                Ok(checked) => flags = checked.flags,
                Err(v) => schema_violations.extend(v),
            }
        }
    }
    Some(Interaction {
        event_id: e.event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        session_id: req.session_id.clone().unwrap_or_default(),
        user_id: req.user_id.clone(),
        item_id,
        event_type: e.event_type.unwrap_or_default(),
        event_value,
        sent_at: e.sent_at.unwrap_or_default(),
        properties: e.properties,
        recommendation_id: e.recommendation_id,
        impression: e.impression,
        event_attribution_source: e.metric_attribution.and_then(|m| m.event_attribution_source),
        flags,
    })
}

/// Takes the legacy `itemId` / `eventValue` from properties when the top-level member is absent
/// (clients written against the pre-2020 model still send them).
fn legacy_members(
    check: &mut Checker,
    path: &dyn std::fmt::Display,
    props: &Props<'_>,
    item_id: &mut Option<String>,
    event_value: &mut Option<f64>,
) {
    for (key, value) in props.iter() {
        if item_id.is_none() && wire::same_key(key, "itemid") {
            let id = match value {
                PropValue::String(s) => Some(s.as_ref().to_owned()),
                PropValue::Number(n) => Some(n.to_string()),
                _ => None,
            };
            match id {
                Some(id) if (1..=256).contains(&id.chars().count()) => *item_id = Some(id),
                Some(_) => check.push(Violation::new(
                    path.to_string(),
                    None,
                    format!("properties.{key} (the legacy itemId) must have length between 1 and 256"),
                )),
                None => check.push(Violation::new(
                    path.to_string(),
                    None,
                    format!("properties.{key} (the legacy itemId) must be a string, not {}", value.kind()),
                )),
            }
        } else if event_value.is_none() && wire::same_key(key, "eventvalue") {
            let v = match value {
                PropValue::Number(n) => n.as_f64(),
                PropValue::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match v {
                Some(v) if v.is_finite() => *event_value = Some(v),
                _ => check.push(Violation::new(
                    path.to_string(),
                    None,
                    format!("properties.{key} (the legacy eventValue) must be a finite number or numeric string"),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> PutEvents {
        parse_put_events(body.as_bytes()).expect("valid")
    }

    fn err(body: &str) -> String {
        parse_put_events(body.as_bytes()).expect_err("invalid").to_string()
    }

    #[test]
    fn minimal_event_gets_a_generated_id() {
        let p = ok(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"click","sentAt":1700000000}]}"#);
        assert_eq!(p.tracking_id, "t");
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].event_id.len(), 36);
        assert_eq!(p.events[0].sent_at, 1_700_000_000.0);
    }

    #[test]
    fn all_fields_are_kept() {
        let p = ok(r#"{"trackingId":"t","userId":"u","sessionId":"s","eventList":[{"eventId":"e1","eventType":"click",
            "eventValue":4.5,"itemId":"i1","properties":"{\"numberOfRatings\":\"12\"}","sentAt":1700000000.123456,
            "recommendationId":"RID-1","impression":["i1","i2"],"metricAttribution":{"eventAttributionSource":"src"}}]}"#);
        let e = &p.events[0];
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.user_id.as_deref(), Some("u"));
        assert_eq!(e.event_value, Some(4.5));
        assert_eq!(e.sent_at, 1_700_000_000.123456);
        assert_eq!(e.timestamp(), 1_700_000_000);
        assert_eq!(e.impression_joined().as_deref(), Some("i1|i2"));
        assert_eq!(e.event_attribution_source.as_deref(), Some("src"));
    }

    #[test]
    fn legacy_members_come_from_properties() {
        let p = ok(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"rate","sentAt":1,
            "properties":"{\"itemId\":\"choc\",\"eventValue\":\"4\",\"numRatings\":0}"}]}"#);
        assert_eq!(p.events[0].item_id.as_deref(), Some("choc"));
        assert_eq!(p.events[0].event_value, Some(4.0));
        let p = ok(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"rate","sentAt":1,"itemId":"top",
            "eventValue":1,"properties":"{\"itemId\":\"choc\",\"eventValue\":4}"}]}"#);
        assert_eq!(p.events[0].item_id.as_deref(), Some("top"));
        assert_eq!(p.events[0].event_value, Some(1.0));
    }

    #[test]
    fn messages_name_the_member_and_rule() {
        let m = err(r#"{"trackingId":"t","sessionId":"s","eventList":[{"sentAt":1}]}"#);
        assert!(m.contains("Value null at 'eventList.1.member.eventType'"), "{m}");
        let m =
            err(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"eventValue":"NaN"}]}"#);
        assert!(m.contains("eventList.1.member.eventValue") && m.contains("finite"), "{m}");
        let m = err(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":"1"}]}"#);
        assert!(m.contains("eventList.1.member.sentAt") && m.contains("JSON number"), "{m}");
        let m =
            err(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"eventValue":true}]}"#);
        assert!(m.contains("eventList.1.member.eventValue") && m.contains("got a boolean"), "{m}");
        let m = err(
            r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"impression":["a",2]}]}"#,
        );
        assert!(m.contains("eventList.1.member.impression.2.member"), "{m}");
        let m = err(
            r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"properties":"{\"TimeStamp\":1}"}]}"#,
        );
        assert!(m.contains("'TimeStamp'") && m.contains("forbidden"), "{m}");
        let m =
            err(r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"properties":"[1]"}]}"#);
        assert!(m.contains("Error parsing properties json"), "{m}");
        let m = err("[]");
        assert!(m.contains("must be a JSON object"), "{m}");
    }

    #[test]
    fn bracketed_numbers_in_unknown_keys_do_not_overflow() {
        // Found by the put_events fuzz target: the key's "[18446744073709551615]" was read as an index.
        let body = br#"{"t:[]o$si:[00000018446744073709551615]":}"#;
        assert!(parse_put_events(body).is_err());
    }

    #[test]
    fn arrays_never_stand_in_for_structures() {
        for body in [
            r#"["t","u","s",[{"eventType":"click","sentAt":1700000000}]]"#,
            r#"{"trackingId":"t","sessionId":"s","eventList":[["e","click",1,"i",null,1700000000]]}"#,
            r#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"c","sentAt":1,"metricAttribution":["src"]}]}"#,
        ] {
            let m = err(body);
            assert!(m.contains("JSON object"), "{body}: {m}");
        }
    }
}
