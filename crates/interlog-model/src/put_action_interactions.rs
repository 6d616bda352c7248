//! PutActionInteractions (`POST /action-interactions`): parse the rest-json body and enforce every
//! constraint of the model (§3.5 of the spec).
//!
//! An action interaction is an event like PutEvents' (an eventId generated when absent, deduplicated by it),
//! but each one carries its own `sessionId` and `userId`, names an action instead of an item, and has no
//! `eventValue`, metric attribution or legacy members. Decisions on what the spec leaves open are recorded
//! in `docs/api.md`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::ActionInteraction;
use crate::validation::{At, Checker, ValidationError};
use crate::wire::{self, epoch_seconds, ListPath};

const OPERATION: &str = "PutActionInteractions";
const LIST: &str = "actionInteractions";
/// `ActionInteraction.properties`: 1..1024 characters.
pub const MAX_PROPERTIES_CHARS: usize = 1024;
/// The model's example for `ActionInteraction.properties`.
const PROPERTIES_EXAMPLE: &str = r#"{"numberOfActions": "12"}"#;

/// A validated PutActionInteractions request.
#[derive(Debug, Clone, PartialEq)]
pub struct PutActionInteractions {
    /// The action interaction tracker's ID (the dataset's `trackingId`), not yet resolved.
    pub tracking_id: String,
    pub interactions: Vec<ActionInteraction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    tracking_id: Option<String>,
    #[serde(borrow)]
    action_interactions: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireActionInteraction {
    action_id: Option<String>,
    user_id: Option<String>,
    session_id: Option<String>,
    #[serde(default, deserialize_with = "epoch_seconds")]
    timestamp: Option<f64>,
    event_type: Option<String>,
    event_id: Option<String>,
    recommendation_id: Option<String>,
    impression: Option<Vec<String>>,
    properties: Option<String>,
}

/// Parses and validates a PutActionInteractions body. Interactions without an eventId get a generated UUID.
pub fn parse_put_action_interactions(body: &[u8]) -> Result<PutActionInteractions, ValidationError> {
    let request: WireRequest<'_> = wire::parse_body(body, OPERATION, "trackingId and actionInteractions")?;
    let mut check = Checker::default();
    check.required_length("trackingId", request.tracking_id.as_deref(), 1, 256, false);
    let raw = wire::record_list(&mut check, LIST, &request.action_interactions);
    let mut interactions = Vec::with_capacity(raw.len());
    for (i, raw) in raw.iter().enumerate() {
        let prefix = ListPath { list: LIST, index: i + 1 };
        let sent: WireActionInteraction = wire::parse_record(raw, prefix, OPERATION)?;
        if let Some(interaction) = validate(&mut check, prefix, sent) {
            interactions.push(interaction);
        }
    }
    check.finish()?;
    Ok(PutActionInteractions { tracking_id: request.tracking_id.unwrap_or_default(), interactions })
}

fn validate(check: &mut Checker, prefix: ListPath, a: WireActionInteraction) -> Option<ActionInteraction> {
    let start = check.violations.len();
    // ActionId and UserId are sensitive shapes: their values are never echoed.
    check.required_length(At(prefix, "actionId"), a.action_id.as_deref(), 1, 256, true);
    if let Some(user) = &a.user_id {
        check.length(At(prefix, "userId"), user, 1, 256, true);
    }
    check.required_length(At(prefix, "sessionId"), a.session_id.as_deref(), 1, 256, false);
    wire::required_epoch(check, At(prefix, "timestamp"), a.timestamp);
    check.required_length(At(prefix, "eventType"), a.event_type.as_deref(), 1, 256, false);
    if let Some(id) = &a.event_id {
        check.length(At(prefix, "eventId"), id, 1, 256, false);
    }
    if let Some(rid) = &a.recommendation_id {
        check.length(At(prefix, "recommendationId"), rid, 1, 40, false);
    }
    if let Some(list) = &a.impression {
        wire::impression(check, prefix, list);
    }
    if let Some(text) = &a.properties {
        let path = At(prefix, "properties");
        if let Some(props) = wire::properties_object(check, &path, text, MAX_PROPERTIES_CHARS, PROPERTIES_EXAMPLE) {
            wire::forbidden_keys(check, &path, &props);
        }
    }
    if check.violations.len() > start {
        return None;
    }
    Some(ActionInteraction {
        event_id: a.event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        action_id: a.action_id.unwrap_or_default(),
        user_id: a.user_id,
        session_id: a.session_id.unwrap_or_default(),
        timestamp: a.timestamp.unwrap_or_default(),
        event_type: a.event_type.unwrap_or_default(),
        recommendation_id: a.recommendation_id,
        impression: a.impression,
        properties: a.properties,
        flags: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#""actionId": "a1", "sessionId": "s", "timestamp": 1700000000, "eventType": "Taken""#;

    fn body(interactions: &[String]) -> String {
        format!(r#"{{"trackingId": "t", "actionInteractions": [{}]}}"#, interactions.join(","))
    }

    /// A minimal valid interaction with `extra` members added (or, as `"member": null`, removed).
    fn with(extra: &str) -> String {
        let mut members: Vec<String> = MINIMAL.split(", ").map(str::to_owned).collect();
        for part in extra.split(";").filter(|p| !p.is_empty()) {
            let key = part.split(':').next().unwrap().trim().to_owned();
            members.retain(|m| !m.starts_with(&key));
            if !part.ends_with("null") {
                members.push(part.to_owned());
            }
        }
        format!("{{{}}}", members.join(", "))
    }

    fn ok(extra: &str) -> ActionInteraction {
        parse_put_action_interactions(body(&[with(extra)]).as_bytes()).expect(extra).interactions.remove(0)
    }

    fn err(body: &str) -> String {
        parse_put_action_interactions(body.as_bytes()).expect_err(body).to_string()
    }

    #[test]
    fn minimal_interaction_gets_a_generated_id() {
        let a = ok("");
        assert_eq!(a.event_id.len(), 36);
        assert_eq!((a.action_id.as_str(), a.session_id.as_str(), a.event_type.as_str()), ("a1", "s", "Taken"));
        assert_eq!(a.timestamp, 1_700_000_000.0);
        assert_eq!(a.user_id, None);
        assert_ne!(ok("").event_id, a.event_id, "every generated ID is new");
    }

    #[test]
    fn all_members_are_kept() {
        let a = ok(
            r#""userId": "u";"eventId": "e1";"timestamp": 1700000000.25;"recommendationId": "RID-1";"impression": ["a1", "a2"];"properties": "{\"numberOfActions\": \"12\"}""#,
        );
        assert_eq!(a.user_id.as_deref(), Some("u"));
        assert_eq!(a.event_id, "e1");
        assert_eq!(a.timestamp, 1_700_000_000.25);
        assert_eq!(a.timestamp_seconds(), 1_700_000_000);
        assert_eq!(a.recommendation_id.as_deref(), Some("RID-1"));
        assert_eq!(a.impression_joined().as_deref(), Some("a1|a2"));
        assert_eq!(a.properties.as_deref(), Some(r#"{"numberOfActions": "12"}"#));
    }

    /// (members to add or null out, expected fragments; `None` when valid). Each row is at one rule's edge.
    #[test]
    fn every_constraint_is_enforced() {
        let p = |i: usize, m: &str| format!("'actionInteractions.{i}.member.{m}'");
        let s256 = "x".repeat(256);
        let s257 = "x".repeat(257);
        let props = |n: usize| format!(r#""properties": "{{\"k\": \"{}\"}}""#, "v".repeat(n - 9));
        let impressions = |n: usize, len: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("\"{i:0>len$}\"")).collect();
            format!(r#""impression": [{}]"#, list.join(", "))
        };
        let rows: Vec<(String, Option<Vec<String>>)> = vec![
            (r#""actionId": null"#.into(), Some(vec![format!("Value null at {}", p(1, "actionId"))])),
            (
                r#""actionId": """#.into(),
                Some(vec![format!("Value at {}", p(1, "actionId")), "greater than or equal to 1".into()]),
            ),
            (format!(r#""actionId": "{s256}""#), None),
            (
                format!(r#""actionId": "{s257}""#),
                Some(vec![format!("Value at {}", p(1, "actionId")), "less than or equal to 256".into()]),
            ),
            (r#""userId": """#.into(), Some(vec![format!("Value at {}", p(1, "userId"))])),
            (
                format!(r#""userId": "{s257}""#),
                Some(vec![format!("Value at {}", p(1, "userId")), "less than or equal to 256".into()]),
            ),
            (r#""sessionId": null"#.into(), Some(vec![format!("Value null at {}", p(1, "sessionId"))])),
            (r#""sessionId": """#.into(), Some(vec![format!("Value '' at {}", p(1, "sessionId"))])),
            (format!(r#""sessionId": "{s257}""#), Some(vec![p(1, "sessionId"), "less than or equal to 256".into()])),
            (r#""timestamp": null"#.into(), Some(vec![format!("Value null at {}", p(1, "timestamp"))])),
            (r#""timestamp": 1700000000000"#.into(), Some(vec![p(1, "timestamp"), "milliseconds".into()])),
            (r#""timestamp": 0"#.into(), None),
            (r#""timestamp": 1.7E9"#.into(), None),
            (r#""eventType": null"#.into(), Some(vec![format!("Value null at {}", p(1, "eventType"))])),
            (r#""eventType": "Not Taken""#.into(), None),
            (format!(r#""eventType": "{s257}""#), Some(vec![p(1, "eventType"), "less than or equal to 256".into()])),
            (r#""eventId": """#.into(), Some(vec![format!("Value '' at {}", p(1, "eventId"))])),
            (format!(r#""eventId": "{s256}""#), None),
            (format!(r#""eventId": "{s257}""#), Some(vec![p(1, "eventId"), "less than or equal to 256".into()])),
            (format!(r#""recommendationId": "{}""#, "r".repeat(40)), None),
            (
                format!(r#""recommendationId": "{}""#, "r".repeat(41)),
                Some(vec![p(1, "recommendationId"), "less than or equal to 40".into()]),
            ),
            (
                r#""impression": []"#.into(),
                Some(vec![format!("Value at {}", p(1, "impression")), "greater than or equal to 1".into()]),
            ),
            (impressions(25, 2), None),
            (
                impressions(26, 2),
                Some(vec![format!("Value at {}", p(1, "impression")), "less than or equal to 25".into()]),
            ),
            (r#""impression": ["a", ""]"#.into(), Some(vec![format!("Value at {}", p(1, "impression.2.member"))])),
            (
                format!(r#""impression": ["{s257}"]"#),
                Some(vec![p(1, "impression.1.member"), "less than or equal to 256".into()]),
            ),
            (impressions(11, 90), None),
            (
                impressions(11, 91),
                Some(vec![p(1, "impression"), "at most 1000 characters when joined with '|' (it has 1011)".into()]),
            ),
            (props(1024), None),
            (props(1025), Some(vec![format!("Value at {}", p(1, "properties")), "less than or equal to 1024".into()])),
            (r#""properties": """#.into(), Some(vec!["greater than or equal to 1".into()])),
            (
                r#""properties": "[\"a\"]""#.into(),
                Some(vec!["Error parsing properties json".into(), PROPERTIES_EXAMPLE.into()]),
            ),
            (r#""properties": "\"{\\\"a\\\": 1}\"""#.into(), Some(vec!["encoded twice".into()])),
            (r#""properties": "{\"Time_Stamp\": 1}""#.into(), Some(vec!["'Time_Stamp'".into(), "forbidden".into()])),
            (
                r#""properties": "{\"sessionid\": 1, \"impression\": 2}""#.into(),
                Some(vec!["2 validation errors".into()]),
            ),
            // actionId is no forbidden key: the schema check skips it, as the ID comes from the member.
            (r#""properties": "{\"actionId\": \"a\", \"numberOfActions\": 12}""#.into(), None),
        ];
        for (extra, expected) in rows {
            let text = body(&[with(&extra)]);
            match (parse_put_action_interactions(text.as_bytes()), expected) {
                (Ok(_), None) => {}
                (Err(e), Some(fragments)) => {
                    let m = e.to_string();
                    for f in fragments {
                        assert!(m.contains(&f), "{extra:.80}: {m:.300} lacks {f}");
                    }
                    let sensitive = ["\"actionId", "\"userId", "\"impression", "\"properties"];
                    if sensitive.iter().any(|s| extra.starts_with(s)) {
                        assert!(!m.contains("xxx") && !m.contains("vvv"), "sensitive value echoed: {m:.300}");
                    }
                }
                (r, expected) => panic!("{extra:.80}: got {r:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn request_members_and_list_length() {
        let one = with("");
        let m = err(&format!(r#"{{"actionInteractions": [{one}]}}"#));
        assert_eq!(m, "1 validation error detected: Value null at 'trackingId' failed to satisfy constraint: Member must not be null");
        let m = err(&format!(r#"{{"trackingId": "", "actionInteractions": [{one}]}}"#));
        assert!(m.contains("Value '' at 'trackingId'"), "{m}");
        let m = err(r#"{"trackingId": "t"}"#);
        assert!(m.contains("Value null at 'actionInteractions'"), "{m}");
        let m = err(r#"{"trackingId": "t", "actionInteractions": []}"#);
        assert!(m.contains("greater than or equal to 1"), "{m}");
        assert!(parse_put_action_interactions(body(&vec![one.clone(); 10]).as_bytes()).is_ok());
        let m = err(&body(&vec![one; 11]));
        assert!(m.contains("Value at 'actionInteractions' failed") && m.contains("less than or equal to 10"), "{m}");
    }

    #[test]
    fn malformed_bodies_name_the_member() {
        let cases: &[(&str, &str)] = &[
            ("", "The request body must be a JSON object with trackingId and actionInteractions"),
            ("{\"trackingId\": ", "Invalid value for 'trackingId': EOF while parsing a value"),
            ("{", "The request body is not a valid PutActionInteractions JSON document: EOF"),
            (
                r#"{"trackingId": "t", "actionInteractions": [[]]}"#,
                "Invalid value for 'actionInteractions.1.member': expected a JSON object",
            ),
            (
                r#"{"trackingId": "t", "actionInteractions": [{"timestamp": "1700000000"}]}"#,
                "Invalid value for 'actionInteractions.1.member.timestamp': expected epoch seconds as a JSON number",
            ),
            (r#"{"trackingId": "t", "actionInteractions": [{"timestamp": true}]}"#, "got a boolean"),
            (
                r#"{"trackingId": "t", "actionInteractions": [{"impression": ["a", 2]}]}"#,
                "Invalid value for 'actionInteractions.1.member.impression.2.member'",
            ),
            (
                r#"{"trackingId": "t", "actionInteractions": [{"impression": "a"}]}"#,
                "Invalid value for 'actionInteractions.1.member.impression': invalid type: string",
            ),
            (
                r#"{"trackingId": "t", "actionInteractions": [{"properties": {"a": 1}}]}"#,
                "Invalid value for 'actionInteractions.1.member.properties': invalid type: map, expected a string",
            ),
            (
                r#"{"trackingId": 7, "actionInteractions": []}"#,
                "Invalid value for 'trackingId': invalid type: integer `7`",
            ),
            (
                r#"{"trackingId": "t", "actionInteractions": {"actionId": "a"}}"#,
                "Invalid value for 'actionInteractions': invalid type: map",
            ),
        ];
        for (body, expected) in cases {
            let m = err(body);
            assert!(m.contains(expected), "{body}: {m}");
        }
    }

    #[test]
    fn put_events_bodies_are_not_action_interactions() {
        // A PutEvents body sent to /action-interactions: eventList is an unknown (ignored) member.
        let m = err(r#"{"trackingId": "t", "sessionId": "s", "eventList": [{"eventType": "click", "sentAt": 1}]}"#);
        assert_eq!(m, "1 validation error detected: Value null at 'actionInteractions' failed to satisfy constraint: Member must not be null");
    }
}
