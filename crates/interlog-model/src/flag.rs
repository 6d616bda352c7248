//! Flags: why a record that was accepted and kept would still not reach a model as it was sent.
//!
//! Amazon Personalize answers 200 to things it then quietly leaves out of training (a `properties` key that
//! matches no column of the dataset). interlog answers the same, keeps the record whole, and attaches a [`Flag`]
//! that says what will be left out and how to fix it, so the problem shows in the stats, the log and the stored
//! event instead of only as worse recommendations much later.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a record was flagged; one counter per kind in `GET /_interlog/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FlagKind {
    /// A `properties` key that matches no field of the dataset's schema: kept verbatim, never a column.
    UndeclaredProperty,
    /// `sentAt` later than the server's clock plus [`crate::suspect::CLOCK_SKEW_SECONDS`]: a client clock or unit
    /// error; Personalize trains on it as sent, so the event sorts after everything real.
    SentAtInFuture,
    /// `sentAt` before 2000-01-01T00:00:00Z: a zero, an uninitialised clock or a wrong unit.
    SentAtBefore2000,
    /// `userId` or `sessionId` is "null" or "undefined" (any case): a client serialized a missing value as text, so
    /// every such event lands on one fake user or session.
    PlaceholderId,
    /// The event's `itemId` is not in its `impression` list: Personalize reads impressions as what the user saw
    /// beside the item interacted with.
    ItemNotInImpression,
    /// A repeat of an eventId already recorded for the dataset, dropped (the first copy wins). Counted, never
    /// stored on an event: the dropped copy is not stored, and the first copy is not rewritten.
    DuplicateEventId,
}

impl FlagKind {
    /// Every kind, in the order stats list them.
    pub const ALL: [FlagKind; 6] = [
        FlagKind::UndeclaredProperty,
        FlagKind::SentAtInFuture,
        FlagKind::SentAtBefore2000,
        FlagKind::PlaceholderId,
        FlagKind::ItemNotInImpression,
        FlagKind::DuplicateEventId,
    ];

    /// The name used in stats, logs and stored flags.
    pub fn as_str(self) -> &'static str {
        match self {
            FlagKind::UndeclaredProperty => "undeclaredProperty",
            FlagKind::SentAtInFuture => "sentAtInFuture",
            FlagKind::SentAtBefore2000 => "sentAtBefore2000",
            FlagKind::PlaceholderId => "placeholderId",
            FlagKind::ItemNotInImpression => "itemNotInImpression",
            FlagKind::DuplicateEventId => "duplicateEventId",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for FlagKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a kept record will not reach a model as sent, with the message that says how to fix it.
///
/// Messages name keys, fields and schemas, never property values (those are sensitive in the model). The message
/// is shared: one undeclared key flags every event that carries it, and each event holds the same text rather
/// than a copy of it. Equal when kind and message are.
#[derive(Debug, Clone)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: Arc<str>,
    /// The compact form stored in place of the message, when the message can be rebuilt from it (see
    /// [`encode_flags`]); `None` for a message given as text.
    code: Option<Arc<str>>,
}

impl PartialEq for Flag {
    fn eq(&self, other: &Flag) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for Flag {}

impl Serialize for Flag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Flag", 2)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("message", &*self.message)?;
        s.end()
    }
}

impl Flag {
    pub fn new(kind: FlagKind, message: impl Into<Arc<str>>) -> Self {
        Flag { kind, message: message.into(), code: None }
    }

    /// A flag whose stored form is `code` ([`Code`]), from which [`decode_flags`] rebuilds the same message.
    pub(crate) fn coded(kind: FlagKind, message: impl Into<Arc<str>>, code: Option<Arc<str>>) -> Self {
        Flag { kind, message: message.into(), code }
    }
}

/// The compact stored forms of the flags whose messages the model writes: a tag, then what the message was
/// built from. One line per flag; a message given as text has none and is stored as JSON instead.
///
/// Why: every flagged event stores its flags, and the message (~130 bytes for an undeclared key, ~170 as JSON)
/// was most of a flagged row; the code is the key and the schema's name.
pub(crate) struct Code;

impl Code {
    /// An undeclared `properties` key: `U:<schema name>:<key>`. `None` where the parts could not be told
    /// apart on reading (a schema name with `:`, a key with a line break); such a flag is stored as JSON.
    pub(crate) fn undeclared(schema: &str, key: &str) -> Option<Arc<str>> {
        (!schema.contains([':', '\n']) && !key.contains('\n')).then(|| format!("U:{schema}:{key}").into())
    }

    /// A `sentAt` ahead of the clock by `seconds` (as the message prints it): `F:<seconds>`.
    pub(crate) fn sent_at_in_future(seconds: &str) -> Arc<str> {
        format!("F:{seconds}").into()
    }

    /// A placeholder ID in `member`: `P:<member>`.
    pub(crate) fn placeholder(member: &str) -> Arc<str> {
        format!("P:{member}").into()
    }

    pub(crate) const SENT_AT_BEFORE_2000: &'static str = "B";
    pub(crate) const ITEM_NOT_IN_IMPRESSION: &'static str = "I";

    /// The flag a stored code stands for, its message rebuilt as it was first built; `None` for a code this
    /// build does not know (a newer build's), which is skipped like an unknown kind in JSON.
    fn flag(code: &str) -> Option<Flag> {
        let shared = || Some(Arc::<str>::from(code));
        let (tag, rest) = code.split_once(':').unwrap_or((code, ""));
        let (kind, message) = match tag {
            "U" => {
                let (schema, key) = rest.split_once(':')?;
                (FlagKind::UndeclaredProperty, crate::properties::undeclared_message(key, schema, None))
            }
            "F" => (FlagKind::SentAtInFuture, crate::suspect::future_message(rest)),
            "B" if rest.is_empty() => (FlagKind::SentAtBefore2000, crate::suspect::BEFORE_2000.to_owned()),
            "P" if matches!(rest, "userId" | "sessionId") => {
                (FlagKind::PlaceholderId, crate::suspect::placeholder_message(rest))
            }
            "I" if rest.is_empty() => {
                (FlagKind::ItemNotInImpression, crate::suspect::ITEM_NOT_IN_IMPRESSION.to_owned())
            }
            _ => return None,
        };
        Some(Flag::coded(kind, message, shared()))
    }
}

/// Flags as stored with a record, `None` for a record without flags (the common case costs nothing: no text, a
/// NULL column). When every flag has a compact code, the codes one per line (`U:my-schema:numberOfRatings`);
/// otherwise a JSON array of `{"kind", "message"}`, the form every earlier build stored, which reading accepts
/// too.
pub fn encode_flags(flags: &[Flag]) -> Option<String> {
    match flags {
        [] => None,
        [Flag { code: Some(code), .. }] => Some(code.to_string()),
        _ if flags.iter().all(|f| f.code.is_some()) => {
            let mut out = String::with_capacity(flags.iter().map(|f| f.code.as_ref().map_or(0, |c| c.len()) + 1).sum());
            for (i, f) in flags.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(f.code.as_deref().unwrap_or_default());
            }
            Some(out)
        }
        _ => {
            // Sized once: growing the buffer from empty took several reallocations per event.
            let mut out = Vec::with_capacity(flags.iter().map(|f| f.message.len() + 40).sum::<usize>() + 2);
            // Serializing plain strings and a unit enum cannot fail.
            serde_json::to_writer(&mut out, flags).expect("flags serialize");
            Some(String::from_utf8(out).expect("serde_json writes UTF-8"))
        }
    }
}

/// Stored flags read back, in either form [`encode_flags`] writes. An entry this build cannot read (a kind or code
/// added by a newer build) is skipped rather than failing the read of the whole event: flags inform, they never
/// decide whether an event exists.
pub fn decode_flags(text: Option<&str>) -> Vec<Flag> {
    let Some(text) = text else { return Vec::new() };
    if !text.starts_with('[') {
        return decode_codes(text);
    }
    #[derive(Deserialize)]
    struct Stored {
        kind: FlagKind,
        message: String,
    }
    match serde_json::from_str::<Vec<Value>>(text) {
        Ok(list) => list
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Stored>(v).ok())
            .map(|s| Flag::new(s.kind, s.message))
            .collect(),
        Err(_) => Vec::new(),
    }
}

thread_local! {
    /// The codes read last and their flags: a dataset's flagged events mostly carry the same flags, and an export
    /// reads them by the million, so the messages are rebuilt once, not per row.
    static LAST_DECODED: std::cell::RefCell<(String, Vec<Flag>)> = const { std::cell::RefCell::new((String::new(), Vec::new())) };
}

fn decode_codes(text: &str) -> Vec<Flag> {
    LAST_DECODED.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != text {
            let flags = text.split('\n').filter_map(Code::flag).collect();
            *last = (text.to_owned(), flags);
        }
        last.1.clone()
    })
}

/// Flagged records counted by kind: a record carrying several flags of one kind counts once for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagCounts {
    kinds: [u64; FlagKind::ALL.len()],
    /// Records carrying any flag, each once whatever its kinds.
    records: u64,
}

impl FlagCounts {
    /// Counts one record's flags.
    pub fn add_record(&mut self, flags: &[Flag]) {
        let mut seen = [false; FlagKind::ALL.len()];
        for f in flags {
            seen[f.kind.index()] = true;
        }
        for (count, hit) in self.kinds.iter_mut().zip(seen) {
            *count += u64::from(hit);
        }
        self.records += u64::from(!flags.is_empty());
    }

    pub fn get(&self, kind: FlagKind) -> u64 {
        self.kinds[kind.index()]
    }

    /// How many records [`FlagCounts::add_record`] counted with at least one flag.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Every kind with its count, zeros included, in [`FlagKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FlagKind, u64)> + '_ {
        FlagKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.iter().all(|c| *c == 0)
    }

    /// Adds `n` records of one kind (repeats dropped at the door carry no flags to count from);
    /// [`FlagCounts::records`] is left alone, as the records may be counted under another kind too.
    pub fn add(&mut self, kind: FlagKind, n: u64) {
        self.kinds[kind.index()] += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_unknown_kinds_are_skipped() {
        let flags = vec![Flag::new(FlagKind::UndeclaredProperty, "properties key 'a' matches no field")];
        let text = encode_flags(&flags).unwrap();
        assert_eq!(text, r#"[{"kind":"undeclaredProperty","message":"properties key 'a' matches no field"}]"#);
        assert_eq!(decode_flags(Some(&text)), flags);
        assert_eq!(encode_flags(&[]), None);
        assert_eq!(decode_flags(None), vec![]);
        let newer = r#"[{"kind":"fromTheFuture","message":"m"},{"kind":"undeclaredProperty","message":"x"}]"#;
        assert_eq!(decode_flags(Some(newer)), vec![Flag::new(FlagKind::UndeclaredProperty, "x")]);
        assert_eq!(decode_flags(Some("not json")), vec![]);
    }

    #[test]
    fn the_model_s_flags_are_stored_as_codes_and_read_back_whole() {
        use crate::{suspect, Interaction};
        let schema = crate::schema::parse_schema(crate::schema::DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        let compiled = crate::properties::CompiledSchema::new(&schema, "my-schema");
        let path = "properties";
        let rules = crate::properties::PropertyRules::default();
        let mut flags =
            compiled.check_text(&path, Some(r#"{"numberOfRatings": "12", "a:b": 1}"#), rules).unwrap().flags;
        let event = |sent_at: f64, user: &str| Interaction {
            event_id: "e".into(),
            session_id: "null".into(),
            user_id: Some(user.into()),
            item_id: Some("i".into()),
            event_type: "click".into(),
            event_value: None,
            sent_at,
            properties: None,
            recommendation_id: None,
            impression: Some(vec!["j".into()]),
            event_attribution_source: None,
            flags: Vec::new(),
        };
        flags.extend(suspect::event_flags(&event(2_000_000_000.0, "undefined"), 1_800_000_000.0));
        flags.extend(suspect::event_flags(&event(5.0, "u"), 1_800_000_000.0));
        let kinds: Vec<FlagKind> = flags.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FlagKind::UndeclaredProperty,
                FlagKind::UndeclaredProperty,
                FlagKind::SentAtInFuture,
                FlagKind::PlaceholderId,
                FlagKind::PlaceholderId,
                FlagKind::ItemNotInImpression,
                FlagKind::SentAtBefore2000,
                FlagKind::PlaceholderId,
                FlagKind::ItemNotInImpression,
            ]
        );
        let text = encode_flags(&flags).unwrap();
        assert!(!text.starts_with('['), "{text}");
        assert!(
            text.starts_with("U:my-schema:a:b\nU:my-schema:numberOfRatings\nF:200000000\nP:sessionId\nP:userId\nI\n"),
            "{text}"
        );
        // Read back equal, message by message, each alone and all together.
        assert_eq!(decode_flags(Some(&text)), flags);
        for f in &flags {
            assert_eq!(decode_flags(encode_flags(std::slice::from_ref(f)).as_deref()), std::slice::from_ref(f));
        }
        // A message given as text makes the whole list JSON, as earlier builds stored it.
        let mut mixed = flags.clone();
        mixed.push(Flag::new(FlagKind::UndeclaredProperty, "given as text"));
        let json = encode_flags(&mixed).unwrap();
        assert!(json.starts_with('['));
        assert_eq!(decode_flags(Some(&json)), mixed);
        // A code from a newer build is skipped; the rest is read.
        assert_eq!(decode_flags(Some("Z:whatever\nI")), [flags[5].clone()]);
        // Keys a code could not carry are stored as JSON.
        let odd = compiled.check_text(&path, Some(r#"{"line\nbreak": 1}"#), rules).unwrap().flags;
        assert!(encode_flags(&odd).unwrap().starts_with('['));
        assert_eq!(decode_flags(encode_flags(&odd).as_deref()), odd);
    }

    #[test]
    fn counts_count_records_once_per_kind() {
        let mut c = FlagCounts::default();
        assert!(c.is_empty());
        c.add_record(&[]);
        let two = [Flag::new(FlagKind::UndeclaredProperty, "a"), Flag::new(FlagKind::UndeclaredProperty, "b")];
        c.add_record(&two);
        c.add_record(&two[..1]);
        assert_eq!(c.get(FlagKind::UndeclaredProperty), 2);
        assert_eq!(c.iter().filter(|(_, n)| *n > 0).count(), 1);
        let mixed = [Flag::new(FlagKind::UndeclaredProperty, "a"), Flag::new(FlagKind::DuplicateEventId, "b")];
        c.add_record(&mixed);
        assert_eq!((c.get(FlagKind::UndeclaredProperty), c.get(FlagKind::DuplicateEventId)), (3, 1));
        assert_eq!(c.records(), 3, "a record with flags of two kinds is one flagged record");
        c.add(FlagKind::DuplicateEventId, 3);
        assert_eq!(c.get(FlagKind::DuplicateEventId), 4);
        assert_eq!(c.records(), 3);
        assert_eq!(c.iter().count(), FlagKind::ALL.len());
    }
}
