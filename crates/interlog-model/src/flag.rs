//! Flags: why a record that was accepted and kept would still not reach a model as it was sent.
//!
//! Amazon Personalize answers 200 to things it then quietly leaves out of training (a `properties` key that
//! matches no column of the dataset). interlog answers the same, keeps the record whole, and attaches a [`Flag`]
//! that says what will be left out and how to fix it, so the problem shows in the stats, the log and the stored
//! event instead of only as worse recommendations much later.

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
/// Messages name keys, fields and schemas, never property values (those are sensitive in the model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

impl Flag {
    pub fn new(kind: FlagKind, message: impl Into<String>) -> Self {
        Flag { kind, message: message.into() }
    }
}

/// Flags as stored with a record: a JSON array of `{"kind", "message"}`, `None` for a record without flags (the
/// common case costs nothing: no text, a NULL column).
pub fn encode_flags(flags: &[Flag]) -> Option<String> {
    if flags.is_empty() {
        return None;
    }
    // Sized once: each event's flags are encoded on the write path, and growing the buffer from
    // empty took several reallocations per event.
    let mut out = Vec::with_capacity(flags.iter().map(|f| f.message.len() + 40).sum::<usize>() + 2);
    // Serializing plain strings and a unit enum cannot fail.
    serde_json::to_writer(&mut out, flags).expect("flags serialize");
    Some(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

/// Stored flags read back. An entry this build cannot read (a kind added by a newer build) is skipped rather
/// than failing the read of the whole event: flags inform, they never decide whether an event exists.
pub fn decode_flags(text: Option<&str>) -> Vec<Flag> {
    let Some(text) = text else { return Vec::new() };
    match serde_json::from_str::<Vec<Value>>(text) {
        Ok(list) => list.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Flagged records counted by kind: a record carrying several flags of one kind counts once for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlagCounts([u64; FlagKind::ALL.len()]);

impl FlagCounts {
    /// Counts one record's flags.
    pub fn add_record(&mut self, flags: &[Flag]) {
        let mut seen = [false; FlagKind::ALL.len()];
        for f in flags {
            seen[f.kind.index()] = true;
        }
        for (count, hit) in self.0.iter_mut().zip(seen) {
            *count += u64::from(hit);
        }
    }

    pub fn get(&self, kind: FlagKind) -> u64 {
        self.0[kind.index()]
    }

    /// Every kind with its count, zeros included, in [`FlagKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FlagKind, u64)> + '_ {
        FlagKind::ALL.into_iter().map(|k| (k, self.get(k)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|c| *c == 0)
    }

    /// Adds `n` records of one kind (repeats dropped at the door carry no flags to count from).
    pub fn add(&mut self, kind: FlagKind, n: u64) {
        self.0[kind.index()] += n;
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
    fn counts_count_records_once_per_kind() {
        let mut c = FlagCounts::default();
        assert!(c.is_empty());
        c.add_record(&[]);
        let two = [Flag::new(FlagKind::UndeclaredProperty, "a"), Flag::new(FlagKind::UndeclaredProperty, "b")];
        c.add_record(&two);
        c.add_record(&two[..1]);
        assert_eq!(c.get(FlagKind::UndeclaredProperty), 2);
        assert_eq!(c.get(FlagKind::UndeclaredProperty), 2);
        assert_eq!(c.iter().filter(|(_, n)| *n > 0).count(), 1);
        c.add(FlagKind::DuplicateEventId, 3);
        assert_eq!(c.get(FlagKind::DuplicateEventId), 3);
        assert_eq!(c.iter().count(), FlagKind::ALL.len());
    }
}
