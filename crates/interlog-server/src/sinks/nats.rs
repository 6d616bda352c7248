//! Sink 1: NATS JetStream (`--nats-url`). One JSON message per stored event, on a subject per
//! account and dataset group, with `Nats-Msg-Id` from the dataset and the eventId so that
//! JetStream's duplicate window drops a page delivered again after a crash; the cursor moves
//! on the stream's PubAck. Each message also names its predecessor (`Nats-Expected-Last-Msg-Id`),
//! so the stream keeps each dataset in position order across a connection lost mid-page. Records of
//! items, users and actions datasets go the same way, one message per write a sink read (on the
//! group's subject plus the dataset type, `Nats-Msg-Id` from the dataset, record ID and position).
//! The message format is in `docs/streams.md` (version 1).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_trait::async_trait;
use interlog_store::{StoredEvent, StoredRecord};
use serde_json::{json, Map, Value};

use super::{Delivery, Destination, Entry, Source};

/// The version in every message's `version` member; a change that is not a pure addition of
/// members makes a new one.
pub const FORMAT_VERSION: u32 = 1;
/// The cursor and lease key of this sink.
pub const SINK: &str = "nats";

/// `--nats-*` settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://host:port` (any form async-nats accepts, comma-separated for a cluster).
    pub url: String,
    /// Subjects are `<prefix>.<account>.<dataset group name>`.
    pub prefix: String,
    /// The stream that captures `<prefix>.>`, created if missing.
    pub stream: String,
    /// `limits`, `interest` or `workqueue`.
    pub retention: stream::RetentionPolicy,
    /// How long JetStream remembers a `Nats-Msg-Id`: a replay later than this after the first
    /// copy would be stored twice.
    pub duplicate_window: Duration,
    /// Messages older than this are removed by the stream; `None`: kept (within other limits).
    pub max_age: Option<Duration>,
    /// Dataset groups (names or ARNs) whose events go to NATS; empty: every group.
    pub dataset_groups: Vec<String>,
    /// How long a publish waits for its PubAck.
    pub ack_timeout: Duration,
}

impl NatsConfig {
    pub fn new(url: impl Into<String>) -> NatsConfig {
        NatsConfig {
            url: url.into(),
            prefix: "interlog.events".into(),
            stream: "INTERLOG_EVENTS".into(),
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: Duration::from_secs(600),
            max_age: None,
            dataset_groups: Vec::new(),
            ack_timeout: Duration::from_secs(5),
        }
    }

    /// Refuses a prefix or stream name NATS would refuse, at start-up rather than at the first
    /// publish.
    pub fn check(&self) -> Result<(), String> {
        let bad_token = |t: &str| t.is_empty() || t.chars().any(|c| c.is_whitespace() || matches!(c, '*' | '>'));
        if self.prefix.split('.').any(bad_token) {
            return Err(format!(
                "--nats-subject-prefix {:?} is not a NATS subject: dot-separated tokens without spaces or wildcards",
                self.prefix
            ));
        }
        if self.stream.is_empty() || self.stream.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>')) {
            return Err(format!("--nats-stream {:?} is not a stream name: no spaces, '.', '*' or '>'", self.stream));
        }
        Ok(())
    }
}

/// Parses `--nats-retention`.
pub fn retention(s: &str) -> Result<stream::RetentionPolicy, String> {
    match s {
        "limits" => Ok(stream::RetentionPolicy::Limits),
        "interest" => Ok(stream::RetentionPolicy::Interest),
        "workqueue" => Ok(stream::RetentionPolicy::WorkQueue),
        other => Err(format!("--nats-retention must be limits, interest or workqueue, not {other:?}")),
    }
}

/// The NATS destination: one client, reconnecting by itself.
pub struct Nats {
    config: NatsConfig,
    js: jetstream::Context,
    /// The stream is known to exist (checked once, again after any failure).
    ready: AtomicBool,
    /// The `Nats-Msg-Id` of the stream's last message as far as this process knows: `None`
    /// unknown (looked up before the next page), `Some(None)` an empty stream. Every message
    /// carries `Nats-Expected-Last-Msg-Id` = its predecessor's ID, so the stream stores a message
    /// only right after the one sent before it. That keeps each dataset in position order even
    /// when the client sends, after a reconnect, the end of a page whose middle was lost with
    /// the old connection: those messages are refused, and sent again after the middle. Pages
    /// are published one at a time under this lock, so the chain is one sequence.
    chain: tokio::sync::Mutex<Option<Option<String>>>,
}

impl Nats {
    /// Connects in the background: an unreachable server does not stop start-up, deliveries
    /// fail (and are retried) until it is reached.
    pub async fn connect(config: NatsConfig) -> Result<Nats, String> {
        config.check()?;
        let client = async_nats::ConnectOptions::new()
            .name("interlog")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting"),
                    other => tracing::debug!("NATS: {other}"),
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| format!("--nats-url {}: {e}", config.url))?;
        let mut js = jetstream::new(client);
        js.set_timeout(config.ack_timeout);
        Ok(Nats { config, js, ready: AtomicBool::new(false), chain: tokio::sync::Mutex::new(None) })
    }

    /// `<prefix>.<account>.<group>` for events; records add their dataset type (`.ITEMS`), so a consumer of
    /// a group's events (a filter on its subject) never sees records, and `<prefix>.>` sees both.
    fn subject(&self, source: &Source) -> String {
        match source.record_kind() {
            None => format!("{}.{}.{}", self.config.prefix, source.account, source.group_name),
            Some(_) => {
                format!("{}.{}.{}.{}", self.config.prefix, source.account, source.group_name, source.dataset_type)
            }
        }
    }

    /// The `Nats-Msg-Id` of the stream's last message (`None`: empty, or a message without one).
    async fn last_message_id(&self) -> Result<Option<String>, String> {
        let name = &self.config.stream;
        let lookup = async {
            let mut stream = self.js.get_stream(name).await.map_err(|e| e.to_string())?;
            let state = stream.info().await.map_err(|e| e.to_string())?.state.clone();
            if state.messages == 0 {
                return Ok::<_, String>(None);
            }
            let last = stream.get_raw_message(state.last_sequence).await.map_err(|e| e.to_string())?;
            Ok(last.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned()))
        };
        match tokio::time::timeout(self.config.ack_timeout, lookup).await {
            Ok(Ok(id)) => Ok(id),
            Ok(Err(e)) => Err(format!("nats: cannot read the last message of stream {name}: {e}")),
            Err(_) => Err(format!("nats: no answer about the last message of stream {name}")),
        }
    }

    async fn ensure_stream(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let c = &self.config;
        let config = stream::Config {
            name: c.stream.clone(),
            subjects: vec![format!("{}.>", c.prefix)],
            retention: c.retention,
            duplicate_window: c.duplicate_window,
            max_age: c.max_age.unwrap_or_default(),
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let timeout = c.ack_timeout;
        match tokio::time::timeout(timeout, self.js.get_or_create_stream(config)).await {
            Ok(Ok(_)) => {
                self.ready.store(true, Ordering::Release);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("nats: cannot create or find the stream {}: {e}", c.stream)),
            Err(_) => Err(format!("nats: no answer about the stream {} within {timeout:?}", c.stream)),
        }
    }
}

#[async_trait]
impl Destination for Nats {
    fn name(&self) -> &str {
        SINK
    }

    fn describe(&self) -> String {
        format!("{} stream {} subjects {}.>", redact(&self.config.url), self.config.stream, self.config.prefix)
    }

    fn wants(&self, source: &Source) -> bool {
        self.config.dataset_groups.is_empty()
            || self.config.dataset_groups.iter().any(|g| *g == source.group_name || *g == source.group_arn)
    }

    async fn deliver(&self, source: &Source, events: &[Entry]) -> Delivery {
        if let Err(error) = self.ensure_stream().await {
            return Delivery::failed(error);
        }
        let mut chain = self.chain.lock().await;
        let mut expected = match chain.clone() {
            Some(last) => last,
            None => match self.last_message_id().await {
                Ok(last) => last,
                Err(error) => return Delivery::failed(error),
            },
        };
        let subject = self.subject(source);
        let timeout = self.config.ack_timeout;
        // Everything is sent before any PubAck is awaited: one round trip per page, not per event.
        let mut acks = Vec::with_capacity(events.len());
        let mut error = None;
        for e in events {
            let id = entry_id(&source.arn, e);
            let mut publish = PublishMessage::build().payload(entry_message(source, e).into()).message_id(&id);
            if let Some(last) = &expected {
                publish = publish.expected_last_message_id(last);
            }
            expected = Some(id);
            match tokio::time::timeout(timeout, self.js.send_publish(subject.clone(), publish)).await {
                Ok(Ok(ack)) => acks.push(ack),
                Ok(Err(e)) => {
                    error = Some(format!("nats: cannot publish to {subject}: {e}"));
                    break;
                }
                Err(_) => {
                    error = Some(format!("nats: could not publish to {subject} within {timeout:?}"));
                    break;
                }
            }
        }
        // Confirmed: the leading events whose PubAck came back. After the first that did not,
        // none counts (a later one may have been stored; its replay is dropped as a duplicate).
        // The messages sent before a failed send are awaited too.
        let mut confirmed = 0;
        let mut last_was_duplicate = false;
        for ack in acks {
            match ack.await {
                Ok(ack) => {
                    confirmed += 1;
                    last_was_duplicate = ack.duplicate;
                }
                Err(e) => {
                    error = Some(format!("nats: no PubAck from stream {}: {e}", self.config.stream));
                    break;
                }
            }
        }
        *chain = if error.is_some() {
            self.ready.store(false, Ordering::Release);
            None
        } else if last_was_duplicate {
            // A replay: the stream's last message is a later one, looked up next time.
            None
        } else {
            Some(expected)
        };
        Delivery { confirmed, error, ..Delivery::default() }
    }
}

/// `Nats-Msg-Id`: the dataset's ARN and the eventId, the key the first-copy-wins rule of the
/// store uses too. An eventId that is not visible ASCII (header values cannot hold every
/// character) is written as `~` and its UTF-8 bytes in hex.
pub fn message_id(dataset_arn: &str, event_id: &str) -> String {
    if !event_id.is_empty() && !event_id.starts_with('~') && event_id.bytes().all(|b| b.is_ascii_graphic()) {
        format!("{dataset_arn}/{event_id}")
    } else {
        let hex: String = event_id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{dataset_arn}/~{hex}")
    }
}

/// The `Nats-Msg-Id` of a page's entry: [`message_id`] of an event, [`record_message_id`] of a record.
pub fn entry_id(dataset_arn: &str, entry: &Entry) -> String {
    match entry {
        Entry::Event(e) => message_id(dataset_arn, &e.interaction.event_id),
        Entry::Record(r) => record_message_id(dataset_arn, &r.record.id, r.position),
    }
}

/// A page's entry as a message: [`message`] or [`record_message`].
pub fn entry_message(source: &Source, entry: &Entry) -> Vec<u8> {
    match entry {
        Entry::Event(e) => message(source, e),
        Entry::Record(r) => record_message(source, r),
    }
}

/// `Nats-Msg-Id` of a record's write: the dataset's ARN, the record ID (escaped as [`message_id`] escapes an
/// eventId) and `@` and the position the write took. A replay of the same write is a duplicate; a new write of
/// the ID took a new position, so it is a new message. The position is all digits after the last `@`, so no two
/// (ID, position) pairs give one ID.
pub fn record_message_id(dataset_arn: &str, record_id: &str, position: i64) -> String {
    format!("{}@{position}", message_id(dataset_arn, record_id))
}

/// The members every message starts with, events' and records' alike: the format's version, where the entry
/// was stored, and the position and time of its write.
fn envelope(source: &Source, position: i64, received_at: f64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("version".into(), json!(FORMAT_VERSION));
    m.insert("account".into(), json!(source.account));
    m.insert("datasetGroupArn".into(), json!(source.group_arn));
    m.insert("datasetArn".into(), json!(source.arn));
    m.insert("datasetType".into(), json!(source.dataset_type));
    m.insert("position".into(), json!(position));
    m.insert("receivedAt".into(), json!(received_at));
    m
}

/// One record as a message (format version 1, `docs/streams.md`): where it was stored, the position its write
/// took, and the PutItems / PutUsers / PutActions members as the client sent them — the ID under the kind's
/// member (`itemId`, `userId`, `actionId`) and `properties` as its JSON text — plus `flags` when it has any.
pub fn record_message(source: &Source, r: &StoredRecord) -> Vec<u8> {
    let mut m = envelope(source, r.position, r.received_at);
    let member = source.record_kind().map_or("recordId", |k| k.id_member());
    m.insert(member.into(), json!(r.record.id));
    if let Some(p) = &r.record.properties {
        m.insert("properties".into(), json!(p));
    }
    if !r.record.flags.is_empty() {
        m.insert("flags".into(), json!(r.record.flags));
    }
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

/// One event as a message (format version 1, `docs/streams.md`): the PutEvents members as the
/// client sent them (`properties` is its JSON text, like on the wire) plus where it was stored.
pub fn message(source: &Source, e: &StoredEvent) -> Vec<u8> {
    let i = &e.interaction;
    let mut m = envelope(source, e.seq, e.received_at);
    m.insert("eventId".into(), json!(i.event_id));
    m.insert("sessionId".into(), json!(i.session_id));
    m.insert("eventType".into(), json!(i.event_type));
    m.insert("sentAt".into(), json!(i.sent_at));
    let mut opt = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    opt("userId", i.user_id.as_ref().map(|v| json!(v)));
    opt("itemId", i.item_id.as_ref().map(|v| json!(v)));
    opt("eventValue", i.event_value.map(|v| json!(v)));
    opt("properties", i.properties.as_ref().map(|v| json!(v)));
    opt("recommendationId", i.recommendation_id.as_ref().map(|v| json!(v)));
    opt("impression", i.impression.as_ref().map(|v| json!(v)));
    opt("metricAttribution", i.event_attribution_source.as_ref().map(|v| json!({ "eventAttributionSource": v })));
    opt("flags", (!i.flags.is_empty()).then(|| json!(i.flags)));
    serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
}

/// A URL without its user information (`nats://user:pass@host` carries a password).
pub fn redact(url: &str) -> String {
    url.split(',')
        .map(|u| match (u.find("://"), u.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &u[..scheme], &u[at + 1..]),
            _ => u.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use interlog_model::Interaction;

    fn source() -> Source {
        Source {
            id: 7,
            arn: "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS".into(),
            account: "000000000000".into(),
            dataset_type: "INTERACTIONS".into(),
            group_arn: "arn:aws:personalize:us-east-1:000000000000:dataset-group/g".into(),
            group_name: "g".into(),
            tracking_id: None,
        }
    }

    #[test]
    fn a_message_carries_every_member() {
        let e = StoredEvent {
            seq: 42,
            received_at: 1764590000.25,
            bulk: false,
            interaction: Interaction {
                event_id: "e-1".into(),
                session_id: "s".into(),
                user_id: Some("u".into()),
                item_id: Some("i".into()),
                event_type: "click".into(),
                event_value: Some(1.5),
                sent_at: 1764590000.0,
                properties: Some(r#"{"numberOfRatings":"12"}"#.into()),
                recommendation_id: Some("r".into()),
                impression: Some(vec!["a".into(), "b".into()]),
                event_attribution_source: Some("email".into()),
                flags: vec![interlog_model::Flag::new(interlog_model::FlagKind::UndeclaredProperty, "declare it")],
            },
        };
        let v: Value = serde_json::from_slice(&message(&source(), &e)).unwrap();
        assert_eq!(v["flags"], json!([{"kind": "undeclaredProperty", "message": "declare it"}]));
        assert_eq!(v["version"], 1);
        assert_eq!(v["datasetArn"], source().arn);
        assert_eq!(v["datasetGroupArn"], source().group_arn);
        assert_eq!(v["position"], 42);
        assert_eq!(v["properties"], r#"{"numberOfRatings":"12"}"#);
        assert_eq!(v["impression"], json!(["a", "b"]));
        assert_eq!(v["metricAttribution"]["eventAttributionSource"], "email");
        // Every member of the format, `flags` included (present because this event has one).
        assert_eq!(v.as_object().unwrap().len(), 19);
        let bare = StoredEvent {
            interaction: Interaction {
                user_id: None,
                item_id: None,
                event_value: None,
                properties: None,
                recommendation_id: None,
                impression: None,
                event_attribution_source: None,
                flags: Vec::new(),
                ..e.interaction.clone()
            },
            ..e
        };
        let v: Value = serde_json::from_slice(&message(&source(), &bare)).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 11, "absent members are left out, as on the wire");
    }

    #[test]
    fn a_record_message_names_its_kind_position_and_subject() {
        let items = Source {
            arn: "arn:aws:personalize:us-east-1:000000000000:dataset/g/ITEMS".into(),
            dataset_type: "ITEMS".into(),
            ..source()
        };
        let r = StoredRecord {
            position: 9,
            received_at: 1764590000.5,
            bulk: false,
            record: interlog_model::Record {
                id: "i-1".into(),
                properties: Some(r#"{"genres":"a|b"}"#.into()),
                flags: vec![interlog_model::Flag::new(interlog_model::FlagKind::UndeclaredProperty, "declare it")],
            },
        };
        let v: Value = serde_json::from_slice(&record_message(&items, &r)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["datasetType"], "ITEMS");
        assert_eq!(v["datasetArn"], items.arn);
        assert_eq!(v["position"], 9);
        assert_eq!(v["itemId"], "i-1");
        assert_eq!(v["properties"], r#"{"genres":"a|b"}"#);
        assert_eq!(v["flags"][0]["kind"], "undeclaredProperty");
        assert_eq!(v.as_object().unwrap().len(), 10);
        let users = Source { dataset_type: "USERS".into(), ..items.clone() };
        let bare = StoredRecord {
            record: interlog_model::Record { properties: None, flags: vec![], ..r.record.clone() },
            ..r
        };
        let v: Value = serde_json::from_slice(&record_message(&users, &bare)).unwrap();
        assert_eq!(v["userId"], "i-1");
        assert_eq!(v.as_object().unwrap().len(), 8, "absent members are left out");
        // A replay of one write is one message ID; a new write of the ID is another.
        let id = entry_id(&items.arn, &Entry::Record(bare.clone()));
        assert_eq!(id, format!("{}/i-1@9", items.arn));
        assert_ne!(id, record_message_id(&items.arn, "i-1", 10));
        assert_ne!(record_message_id(&items.arn, "a@1", 2), record_message_id(&items.arn, "a", 12));
    }

    #[test]
    fn message_ids_are_header_safe_and_distinct() {
        let arn = "arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS";
        assert_eq!(message_id(arn, "e-1"), format!("{arn}/e-1"));
        assert_eq!(message_id(arn, "a b"), format!("{arn}/~612062"));
        assert_eq!(message_id(arn, "~612062"), format!("{arn}/~7e363132303632"), "no collision with the escape");
        assert!(message_id(arn, "é\r\n").bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn bad_prefixes_and_stream_names_are_refused() {
        let mut c = NatsConfig::new("nats://127.0.0.1:4222");
        assert!(c.check().is_ok());
        for bad in ["", "a..b", "a.*", "a.>", "a b"] {
            c.prefix = bad.into();
            assert!(c.check().is_err(), "{bad:?}");
        }
        c.prefix = "ok".into();
        c.stream = "A.B".into();
        assert!(c.check().is_err());
        assert_eq!(redact("nats://u:p@h:4222,nats://h2:4222"), "nats://***@h:4222,nats://h2:4222");
    }
}
