//! Sink 1: NATS JetStream (`--nats-url`). One JSON message per stored event, on a subject per
//! account and dataset group, with `Nats-Msg-Id` from the dataset and the eventId so that
//! JetStream's duplicate window drops a page delivered again after a crash; the cursor moves
//! on the stream's PubAck. Each message also names its predecessor (`Nats-Expected-Last-Msg-Id`),
//! so the stream keeps each dataset in position order across a connection lost mid-page. Records of
//! items, users and actions datasets go the same way, one message per write a sink read (on the
//! group's subject plus the dataset type, `Nats-Msg-Id` from the dataset, record ID and position).
//! The message format is in `docs/streams.md` (version 1).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage, stream};
use async_trait::async_trait;
use interlog_store::{StoredEvent, StoredRecord};
use serde::Serialize;

use super::{Delivery, Destination, Entry, InFlight, Source};

/// The version in every message's `version` member; a change that is not a pure addition of
/// members makes a new one.
pub const FORMAT_VERSION: u32 = 1;
/// The cursor and lease key of this sink.
pub const SINK: &str = "nats";
/// Pages of one dataset published and awaiting their PubAcks at once, while the next is read.
/// Order holds with several: every message names its predecessor (`Nats-Expected-Last-Msg-Id`),
/// so the stream refuses everything after a refused message, and once a page failed no later page
/// is published until the failed one was sent again from the start of the task's queue (see
/// [`Chain`]).
pub const PAGES_IN_FLIGHT: usize = 4;
/// How often at most the cursor records acknowledged pages: a page published again after a
/// crash is dropped by its `Nats-Msg-Id`, so one cursor write per page would buy nothing.
pub const SAVE_EVERY: Duration = Duration::from_millis(100);
/// Publishes awaiting their PubAck at once, over every dataset: room for every task's pages in
/// flight (async-nats' default, 5,000, is less than the pages of one), beyond which a publish waits.
const ACKS_IN_FLIGHT: usize = 65_536;

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

/// What the next published message chains onto.
///
/// Every message carries `Nats-Expected-Last-Msg-Id` = its predecessor's ID, so the stream
/// stores a message only right after the one sent before it (a duplicate is dropped before that
/// check). That keeps each dataset in position order when the client sends, after a reconnect,
/// the end of a page whose middle was lost with the old connection, and when pages are in flight
/// behind a refused one: those messages are refused too, and sent again after it. It also means
/// that when a page's last message was stored, every message before it was: so a page asks
/// for one PubAck, its last message's, and publishes the others without a reply (one PubAck per
/// message cost nats-server about 28 µs of CPU per message against 11 µs per page).
#[derive(Debug, Default)]
struct Chain {
    /// The `Nats-Msg-Id` of the stream's last message as far as this process knows: `None`
    /// unknown (after a failure, or at start), `Some(None)` an empty stream or a last message
    /// without an ID. While it is unknown only a task's first page in flight is published (after
    /// the lookup); a later one is refused at once, since a page before it failed or may fail,
    /// and the stream would take it right after the lookup's message, ahead of the failed page.
    last: Option<Option<String>>,
    /// After a failure, every message asks for its PubAck until a page is confirmed whole:
    /// the failed page's stored beginning comes back as duplicates and its cursor moves past
    /// them even when a foreign message stands between them and the rest.
    careful: bool,
    /// Failures so far: a page clears `careful` only when none happened since it was published.
    failures: u64,
}

/// The NATS destination: one client, reconnecting by itself.
pub struct Nats {
    config: NatsConfig,
    js: jetstream::Context,
    /// The stream is known to exist (checked once, again after any failure).
    ready: Arc<AtomicBool>,
    /// Where the next message chains on, under one lock: pages are published one at a time, so
    /// the chain is one sequence over every dataset.
    chain: Arc<tokio::sync::Mutex<Chain>>,
    /// Pages published whose PubAcks have not all settled, and the signal that one settled: the
    /// stream's last message is looked up only when none is on its way, so the lookup is not
    /// overtaken by messages still in the server's queue.
    unsettled: Arc<AtomicUsize>,
    settled: Arc<tokio::sync::Notify>,
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
        let js =
            jetstream::ContextBuilder::new().timeout(config.ack_timeout).max_ack_inflight(ACKS_IN_FLIGHT).build(client);
        Ok(Nats {
            config,
            js,
            ready: Arc::new(AtomicBool::new(false)),
            chain: Arc::new(tokio::sync::Mutex::new(Chain::default())),
            unsettled: Arc::new(AtomicUsize::new(0)),
            settled: Arc::new(tokio::sync::Notify::new()),
        })
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

    async fn deliver(&self, source: &Source, entries: &[Entry]) -> Delivery {
        self.publish(source, entries, true).await.await
    }

    fn in_flight(&self) -> usize {
        PAGES_IN_FLIGHT
    }

    fn save_every(&self) -> Duration {
        SAVE_EVERY
    }

    async fn send(&self, source: &Source, entries: Arc<Vec<Entry>>, first: bool) -> InFlight {
        self.publish(source, &entries, first).await
    }
}

impl Nats {
    /// Publishes a page (every message sent before any PubAck is awaited: one round trip per
    /// page, not per event) and hands back the wait for its PubAck, which runs as a task of its
    /// own so the acks are taken as they come while the sink reads and publishes the next page.
    /// `first`: no earlier page of this dataset awaits its PubAcks ([`Chain::last`]).
    async fn publish(&self, source: &Source, entries: &[Entry], first: bool) -> InFlight {
        let failed = |error: String| -> InFlight { Box::pin(std::future::ready(Delivery::failed(error))) };
        if let Err(error) = self.ensure_stream().await {
            return failed(error);
        }
        let timeout = self.config.ack_timeout;
        let mut waited = false;
        let mut chain = loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let chain = self.chain.lock().await;
            if chain.last.is_some() {
                break chain;
            }
            if !first {
                return failed("nats: a page before this one is being published again; this one follows it".into());
            }
            // Bounded: every PubAck wait ends within the ack timeout, and a lookup overtaken by
            // messages still queued only makes the next page refused and looked up again.
            if waited || self.unsettled.load(Ordering::Acquire) == 0 {
                break chain;
            }
            drop(chain);
            let _ = tokio::time::timeout(timeout, settled).await;
            waited = true;
        };
        let mut expected = match chain.last.clone() {
            Some(last) => last,
            None => match self.last_message_id().await {
                Ok(last) => last,
                Err(error) => return failed(error),
            },
        };
        let careful = chain.careful;
        let failures = chain.failures;
        // One subject for the page; a clone of it is a reference count.
        let subject = async_nats::Subject::from(self.subject(source));
        let client = self.js.client();
        let mut acks = Vec::with_capacity(if careful { entries.len() } else { 1 });
        let mut error = None;
        let mut size = 512;
        for (i, e) in entries.iter().enumerate() {
            let id = entry_id(&source.arn, e);
            let mut payload = Vec::with_capacity(size);
            write_entry_message(&mut payload, source, e);
            size = size.max(payload.len() + 64);
            let sent = if careful || i + 1 == entries.len() {
                let mut publish = PublishMessage::build().payload(payload.into()).message_id(&id);
                if let Some(last) = &expected {
                    publish = publish.expected_last_message_id(last);
                }
                tokio::time::timeout(timeout, self.js.send_publish(subject.clone(), publish))
                    .await
                    .map(|sent| sent.map(|ack| acks.push(ack)).map_err(|e| e.to_string()))
            } else {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                if let Some(last) = &expected {
                    headers.insert(async_nats::header::NATS_EXPECTED_LAST_MESSAGE_ID, last.as_str());
                }
                tokio::time::timeout(timeout, client.publish_with_headers(subject.clone(), headers, payload.into()))
                    .await
                    .map(|sent| sent.map_err(|e| e.to_string()))
            };
            expected = Some(id);
            match sent {
                Ok(Ok(())) => {}
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
        // The next page chains onto this one's last message before its PubAck is back; if it
        // does not come back, the chain is looked up again (below).
        if let Some(error) = error {
            self.ready.store(false, Ordering::Release);
            chain.last = None;
            chain.careful = true;
            chain.failures += 1;
            return failed(error);
        }
        chain.last = Some(expected.clone());
        self.unsettled.fetch_add(1, Ordering::AcqRel);
        drop(chain);
        let (chain, ready, stream) = (self.chain.clone(), self.ready.clone(), self.config.stream.clone());
        let (unsettled, settled) = (self.unsettled.clone(), self.settled.clone());
        let len = entries.len();
        let acked = tokio::spawn(async move {
            // Confirmed: the leading events whose PubAck came back (careful), or all of them when
            // the last one's came back (the chain: it was stored only after all before it). After
            // the first that did not, none counts (a later one may have been stored; its replay
            // is dropped as a duplicate).
            let mut confirmed = 0;
            let mut last_was_duplicate = false;
            let mut error = None;
            for ack in acks {
                match ack.await {
                    Ok(ack) => {
                        confirmed += 1;
                        last_was_duplicate = ack.duplicate;
                    }
                    Err(e) => {
                        error = Some(format!("nats: no PubAck from stream {stream}: {e}"));
                        break;
                    }
                }
            }
            if !careful && error.is_none() {
                confirmed = len;
            }
            {
                let mut chain = chain.lock().await;
                if error.is_some() {
                    ready.store(false, Ordering::Release);
                    chain.last = None;
                    chain.careful = true;
                    chain.failures += 1;
                } else {
                    if chain.failures == failures {
                        chain.careful = false;
                    }
                    // A replay: the stream's last message is a later one, looked up next time,
                    // unless a later page chained on already (its own PubAcks settle it).
                    if last_was_duplicate && chain.last.as_ref() == Some(&expected) {
                        chain.last = None;
                    }
                }
            }
            unsettled.fetch_sub(1, Ordering::AcqRel);
            settled.notify_waiters();
            Delivery { confirmed, error, ..Delivery::default() }
        });
        Box::pin(async move {
            acked.await.unwrap_or_else(|e| Delivery::failed(format!("nats: the PubAck wait failed: {e}")))
        })
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
    let mut out = Vec::with_capacity(512);
    write_entry_message(&mut out, source, entry);
    out
}

/// [`entry_message`] written to the end of `out`.
pub fn write_entry_message(out: &mut Vec<u8>, source: &Source, entry: &Entry) {
    match entry {
        Entry::Event(e) => write_message(out, source, e),
        Entry::Record(r) => write_record_message(out, source, r),
    }
}

/// `Nats-Msg-Id` of a record's write: the dataset's ARN, the record ID (escaped as [`message_id`] escapes an
/// eventId) and `@` and the position the write took. A replay of the same write is a duplicate; a new write of
/// the ID took a new position, so it is a new message. The position is all digits after the last `@`, so no two
/// (ID, position) pairs give one ID.
pub fn record_message_id(dataset_arn: &str, record_id: &str, position: i64) -> String {
    format!("{}@{position}", message_id(dataset_arn, record_id))
}

/// A JSON object written member by member straight into the message's bytes, in the order
/// they are added: no map or value is built per message. Values go through serde_json's own
/// writer, so strings are escaped and numbers formatted exactly as `serde_json::to_vec` of
/// the same values does (a non-finite number is `null`, as `json!` makes it).
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Writing to a Vec cannot fail, and every value here serializes (strings, numbers,
        // lists of strings, flags).
        let _ = serde_json::to_writer(&mut *self.out, key);
        self.out.push(b':');
        let _ = serde_json::to_writer(&mut *self.out, value);
    }

    fn optional<T: Serialize + ?Sized>(&mut self, key: &str, value: Option<&T>) {
        if let Some(v) = value {
            self.member(key, v);
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

/// `{"eventAttributionSource": ...}`, the PutEvents `metricAttribution` member.
#[derive(Serialize)]
struct MetricAttribution<'a> {
    #[serde(rename = "eventAttributionSource")]
    event_attribution_source: &'a str,
}

/// The members every message starts with, events' and records' alike: the format's version, where the entry
/// was stored, and the position and time of its write.
fn envelope<'a>(out: &'a mut Vec<u8>, source: &Source, position: i64, received_at: f64) -> Object<'a> {
    let mut m = Object::new(out);
    m.member("version", &FORMAT_VERSION);
    m.member("account", &source.account);
    m.member("datasetGroupArn", &source.group_arn);
    m.member("datasetArn", &source.arn);
    m.member("datasetType", &source.dataset_type);
    m.member("position", &position);
    m.member("receivedAt", &received_at);
    m
}

/// One record as a message (format version 1, `docs/streams.md`): where it was stored, the position its write
/// took, and the PutItems / PutUsers / PutActions members as the client sent them — the ID under the kind's
/// member (`itemId`, `userId`, `actionId`) and `properties` as its JSON text — plus `flags` when it has any.
pub fn record_message(source: &Source, r: &StoredRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_record_message(&mut out, source, r);
    out
}

fn write_record_message(out: &mut Vec<u8>, source: &Source, r: &StoredRecord) {
    let mut m = envelope(out, source, r.position, r.received_at);
    let member = source.record_kind().map_or("recordId", |k| k.id_member());
    m.member(member, &r.record.id);
    m.optional("properties", r.record.properties.as_ref());
    m.optional("flags", (!r.record.flags.is_empty()).then_some(&r.record.flags));
    m.end();
}

/// One event as a message (format version 1, `docs/streams.md`): the PutEvents members as the
/// client sent them (`properties` is its JSON text, like on the wire) plus where it was stored.
pub fn message(source: &Source, e: &StoredEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_message(&mut out, source, e);
    out
}

fn write_message(out: &mut Vec<u8>, source: &Source, e: &StoredEvent) {
    let i = &e.interaction;
    let mut m = envelope(out, source, e.seq, e.received_at);
    m.member("eventId", &i.event_id);
    m.member("sessionId", &i.session_id);
    m.member("eventType", &i.event_type);
    m.member("sentAt", &i.sent_at);
    m.optional("userId", i.user_id.as_ref());
    m.optional("itemId", i.item_id.as_ref());
    m.optional("eventValue", i.event_value.as_ref());
    m.optional("properties", i.properties.as_ref());
    m.optional("recommendationId", i.recommendation_id.as_ref());
    m.optional("impression", i.impression.as_ref());
    let attribution = i.event_attribution_source.as_deref().map(|v| MetricAttribution { event_attribution_source: v });
    m.optional("metricAttribution", attribution.as_ref());
    m.optional("flags", (!i.flags.is_empty()).then_some(&i.flags));
    m.end();
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
    use serde_json::{json, Value};

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
        // The bytes themselves: members in the format's order, serde_json's escapes and numbers.
        let odd = StoredEvent {
            interaction: Interaction {
                event_id: "e-\"2\"\u{e9}\n".into(),
                sent_at: 1764590000.0,
                event_value: Some(f64::NAN),
                ..e.interaction.clone()
            },
            ..e.clone()
        };
        let text = String::from_utf8(message(&source(), &odd)).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"version":1,"account":"000000000000","#,
                r#""datasetGroupArn":"arn:aws:personalize:us-east-1:000000000000:dataset-group/g","#,
                r#""datasetArn":"arn:aws:personalize:us-east-1:000000000000:dataset/g/INTERACTIONS","#,
                r#""datasetType":"INTERACTIONS","position":42,"receivedAt":1764590000.25,"#,
                "\"eventId\":\"e-\\\"2\\\"\u{e9}\\n\",",
                r#""sessionId":"s","eventType":"click","sentAt":1764590000.0,"userId":"u","itemId":"i","#,
                r#""eventValue":null,"properties":"{\"numberOfRatings\":\"12\"}","recommendationId":"r","#,
                r#""impression":["a","b"],"metricAttribution":{"eventAttributionSource":"email"},"#,
                r#""flags":[{"kind":"undeclaredProperty","message":"declare it"}]}"#,
            )
        );
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
        let text = String::from_utf8(record_message(&users, &bare)).unwrap();
        assert!(
            text.ends_with(r#""datasetType":"USERS","position":9,"receivedAt":1764590000.5,"userId":"i-1"}"#),
            "{text}"
        );
        let v: Value = serde_json::from_slice(text.as_bytes()).unwrap();
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
