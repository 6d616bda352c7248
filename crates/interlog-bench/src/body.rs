//! PutEvents bodies: a few templates (users, sessions, items vary), each with fixed-width
//! eventId slots that are patched in place, so request `r` always carries eventIds
//! `r * n .. r * n + n` of the run and a unique-id load never repeats an eventId.
//!
//! Every event carries the members of the default Interactions schema and, unless the run asks
//! for none, the `properties` example of the PutEvents documentation, `{"numberOfRatings": "12"}`:
//! the default schema declares no such field, so the server keeps each event and flags it
//! (docs/api.md), and the benchmark measures that path as a new user's first requests take it.
//!
//! PutItems bodies ([`BodyFactory::items`]) work the same way: request `r` carries items
//! `r * n .. r * n + n`, each with about 1 KB of properties that fit [`ITEMS_SCHEMA`].

use std::fmt::Write as _;

/// How many distinct templates (users/sessions/items) requests cycle through.
const TEMPLATES: usize = 64;
/// Width of the decimal counter in an eventId.
const COUNTER_DIGITS: usize = 16;
/// The users (and sessions) of the bodies unless [`BodyFactory::with_users`] says: one per template.
pub const DEFAULT_USERS: u64 = TEMPLATES as u64;
/// Width of the user's and the session's number (`user-000042`, `session-000042`).
const WHO_DIGITS: usize = 6;
/// The documented example of `Event.properties`, as a JSON string member of the body.
pub const DOCUMENTED_PROPERTIES: &str = r#","properties":"{\"numberOfRatings\": \"12\"}""#;
/// Three keys that [`TYPED_SCHEMA`] declares (an int, a float, a categorical string), typed by the
/// server's check and flagged by nothing.
pub const TYPED_PROPERTIES: &str =
    r#","properties":"{\"numberOfRatings\": \"12\", \"price\": 4.5, \"device\": \"phone|tablet\"}""#;

/// The Interactions schema of the `typed` runs: the default schema's fields and three typed metadata
/// fields that [`TYPED_PROPERTIES`] fills (issue 17's goal for declared properties).
pub const TYPED_SCHEMA: &str = r#"{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
  "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
             {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
             {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "IMPRESSION", "type": ["null", "string"]},
             {"name": "RECOMMENDATION_ID", "type": ["null", "string"]},
             {"name": "NUMBER_OF_RATINGS", "type": ["null", "int"]}, {"name": "PRICE", "type": ["null", "float"]},
             {"name": "DEVICE", "type": ["null", "string"], "categorical": true}], "version": "1.0"}"#;

/// The Items schema the PutItems scenario's dataset is created with: a required float and a
/// textual description, which the ~1 KB of properties of every item fill.
pub const ITEMS_SCHEMA: &str = r#"{"type": "record", "name": "Items", "namespace": "com.amazonaws.personalize.schema",
  "fields": [{"name": "ITEM_ID", "type": "string"}, {"name": "PRICE", "type": "float"},
             {"name": "GENRES", "type": ["null", "string"], "categorical": true},
             {"name": "DESCRIPTION", "type": ["null", "string"], "textual": true}], "version": "1.0"}"#;

/// Builds bodies for one run.
#[derive(Clone)]
pub struct BodyFactory {
    events_per_request: usize,
    templates: Vec<Template>,
    /// Distinct users (each with a session of the same number) the requests cycle through:
    /// request `r` is user `r % users`'s.
    users: u64,
    /// The operation's path: `/events` or `/items`.
    path: &'static str,
}

#[derive(Clone)]
struct Template {
    bytes: Vec<u8>,
    /// Offsets of the `COUNTER_DIGITS` digits of each event's id.
    slots: Vec<usize>,
    /// Offsets of the `WHO_DIGITS` digits of the user's and the session's number (events only).
    who: Vec<usize>,
}

impl BodyFactory {
    /// `run_tag` (8 hex digits) keeps two runs into the same store from sharing eventIds.
    /// `properties`: the `,"properties":"..."` member every event carries ([`DOCUMENTED_PROPERTIES`],
    /// [`TYPED_PROPERTIES`]), if any.
    pub fn new(
        tracking_id: &str,
        events_per_request: usize,
        run_tag: &str,
        sent_at: u64,
        properties: Option<&str>,
    ) -> Self {
        let templates = (0..TEMPLATES)
            .map(|t| {
                let mut s = String::with_capacity(300 * events_per_request + 200);
                let mut slots = Vec::with_capacity(events_per_request);
                write!(
                    s,
                    r#"{{"trackingId":"{tracking_id}","sessionId":"session-{t:06}","userId":"user-{t:06}","eventList":["#
                )
                .unwrap();
                let who = [r#""sessionId":"session-"#, r#""userId":"user-"#]
                    .iter()
                    .map(|member| s.find(member).expect("the header names both") + member.len())
                    .collect();
                for i in 0..events_per_request {
                    if i > 0 {
                        s.push(',');
                    }
                    let item = (t * 7919 + i * 104_729) % 1_000_000;
                    s.push_str(r#"{"eventId":""#);
                    s.push_str(run_tag);
                    s.push('-');
                    slots.push(s.len());
                    s.push_str(&"0".repeat(COUNTER_DIGITS));
                    write!(
                        s,
                        r#"","eventType":"click","eventValue":1.5,"sentAt":{},"itemId":"item-{item:06}","recommendationId":"rec-{t:06}-{i:02}","impression":["item-{item:06}","item-{:06}","item-{:06}"]}}"#,
                        sent_at + i as u64,
                        (item + 1) % 1_000_000,
                        (item + 2) % 1_000_000,
                    )
                    .unwrap();
                    if let Some(member) = properties {
                        // Inside the event object, before its closing brace.
                        s.insert_str(s.len() - 1, member);
                    }
                }
                s.push_str("]}");
                Template { bytes: s.into_bytes(), slots, who }
            })
            .collect();
        BodyFactory { events_per_request, templates, users: DEFAULT_USERS, path: "/events" }
    }

    /// Requests cycle through `users` distinct users and sessions (1 to 1,000,000) instead of
    /// [`TEMPLATES`]: what the history index sees of a tracker with many users.
    pub fn with_users(mut self, users: u64) -> Self {
        self.users = users.clamp(1, 10u64.pow(WHO_DIGITS as u32));
        self
    }

    /// PutItems bodies into `dataset_arn`: `items_per_request` items of about 1 KB of
    /// properties each (a price, genres and a ~950-character description).
    pub fn items(dataset_arn: &str, items_per_request: usize, run_tag: &str) -> Self {
        let templates = (0..TEMPLATES)
            .map(|t| {
                let mut s = String::with_capacity(1200 * items_per_request + 200);
                let mut slots = Vec::with_capacity(items_per_request);
                write!(s, r#"{{"datasetArn":"{dataset_arn}","items":["#).unwrap();
                for i in 0..items_per_request {
                    if i > 0 {
                        s.push(',');
                    }
                    s.push_str(r#"{"itemId":""#);
                    s.push_str(run_tag);
                    s.push('-');
                    slots.push(s.len());
                    s.push_str(&"0".repeat(COUNTER_DIGITS));
                    let words: String =
                        (0..95).map(|w| format!("word{:05} ", (t * 31 + i * 7 + w) % 100_000)).collect();
                    let properties = format!(
                        r#"{{"price": {}.5, "genres": "genre-{}|genre-{}", "description": "{}"}}"#,
                        t + i,
                        t % 10,
                        i % 10,
                        words.trim_end()
                    );
                    write!(s, r#"","properties":{}}}"#, serde_json::to_string(&properties).unwrap()).unwrap();
                }
                s.push_str("]}");
                Template { bytes: s.into_bytes(), slots, who: Vec::new() }
            })
            .collect();
        BodyFactory { events_per_request: items_per_request, templates, users: DEFAULT_USERS, path: "/items" }
    }

    /// Records (events or items) per request.
    pub fn events_per_request(&self) -> usize {
        self.events_per_request
    }

    /// The HTTP path the bodies are posted to.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// The body of request number `r`.
    pub fn body(&self, r: u64) -> Vec<u8> {
        let template = &self.templates[(r % TEMPLATES as u64) as usize];
        let mut bytes = template.bytes.clone();
        let first = r * self.events_per_request as u64;
        for (i, &at) in template.slots.iter().enumerate() {
            write_counter(&mut bytes[at..at + COUNTER_DIGITS], first + i as u64);
        }
        // With the default number of users this writes the template's own number back.
        for &at in &template.who {
            write_counter(&mut bytes[at..at + WHO_DIGITS], r % self.users);
        }
        bytes
    }
}

fn write_counter(out: &mut [u8], mut n: u64) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_bodies_are_json_with_distinct_ids_and_about_1_kb_of_properties() {
        let f = BodyFactory::items("arn:aws:personalize:us-east-1:000000000000:dataset/default/ITEMS", 10, "abcd1234");
        let a: serde_json::Value = serde_json::from_slice(&f.body(0)).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&f.body(1)).unwrap();
        assert_eq!(f.path(), "/items");
        let items = a["items"].as_array().unwrap();
        assert_eq!(items.len(), 10);
        for item in items {
            let props = item["properties"].as_str().unwrap();
            assert!((900..=1100).contains(&props.len()), "{}", props.len());
            assert!(serde_json::from_str::<serde_json::Value>(props).unwrap().is_object());
        }
        assert_eq!(items[0]["itemId"], "abcd1234-0000000000000000");
        assert_eq!(b["items"][0]["itemId"], "abcd1234-0000000000000010");
    }

    #[test]
    fn bodies_cycle_through_the_users_asked_for() {
        let ids = |f: &BodyFactory, r: u64| {
            let v: serde_json::Value = serde_json::from_slice(&f.body(r)).unwrap();
            (v["userId"].as_str().unwrap().to_owned(), v["sessionId"].as_str().unwrap().to_owned())
        };
        let default = BodyFactory::new("tid", 2, "abcd0123", 1, None);
        assert_eq!(ids(&default, 65), ("user-000001".into(), "session-000001".into()));
        let many = default.clone().with_users(100_000);
        assert_eq!(ids(&many, 65), ("user-000065".into(), "session-000065".into()));
        assert_eq!(ids(&many, 100_042), ("user-000042".into(), "session-000042".into()));
        assert_eq!(default.body(7).len(), many.body(7).len(), "the same bytes but the numbers");
    }

    #[test]
    fn bodies_are_json_with_distinct_ids() {
        let f = BodyFactory::new("tid", 10, "abcd0123", 1_700_000_000, None);
        let mut ids = std::collections::HashSet::new();
        for r in [0u64, 1, 63, 64, 12345] {
            let v: serde_json::Value = serde_json::from_slice(&f.body(r)).unwrap();
            let list = v["eventList"].as_array().unwrap();
            assert_eq!(list.len(), 10);
            for e in list {
                assert!(ids.insert(e["eventId"].as_str().unwrap().to_owned()));
            }
        }
        let v: serde_json::Value = serde_json::from_slice(&f.body(1)).unwrap();
        assert_eq!(v["eventList"][0]["eventId"], "abcd0123-0000000000000010");
    }

    #[test]
    fn documented_properties_ride_in_every_event() {
        let f = BodyFactory::new("tid", 3, "abcd0123", 1_700_000_000, Some(DOCUMENTED_PROPERTIES));
        for r in [0u64, 5] {
            let v: serde_json::Value = serde_json::from_slice(&f.body(r)).unwrap();
            for e in v["eventList"].as_array().unwrap() {
                assert_eq!(e["properties"], r#"{"numberOfRatings": "12"}"#);
                assert!(e["eventId"].as_str().unwrap().starts_with("abcd0123-"));
            }
        }
        let plain: serde_json::Value =
            serde_json::from_slice(&BodyFactory::new("tid", 3, "abcd0123", 1, None).body(0)).unwrap();
        assert!(plain["eventList"][0].get("properties").is_none());
        let typed: serde_json::Value =
            serde_json::from_slice(&BodyFactory::new("tid", 1, "abcd0123", 1, Some(TYPED_PROPERTIES)).body(0)).unwrap();
        let props: serde_json::Value =
            serde_json::from_str(typed["eventList"][0]["properties"].as_str().unwrap()).unwrap();
        assert_eq!(props, serde_json::json!({"numberOfRatings": "12", "price": 4.5, "device": "phone|tablet"}));
        let schema: serde_json::Value = serde_json::from_str(TYPED_SCHEMA).unwrap();
        let fields: Vec<&str> =
            schema["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert!(["NUMBER_OF_RATINGS", "PRICE", "DEVICE"].iter().all(|f| fields.contains(f)), "{fields:?}");
    }
}
