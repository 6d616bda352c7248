//! Accepted but suspicious: the checks that flag an event Amazon Personalize would take with a 200 and then train
//! on as sent, though it is almost certainly a client bug (docs/api.md, "Flags"). Each finding is a [`Flag`] on the
//! event, stored with it; nothing here refuses anything.
//!
//! The current time is passed in (this crate does no I/O), so the checks are exact in tests.

use crate::flag::Code;
use crate::{Flag, FlagKind, Interaction};

/// How far ahead of the server's clock a `sentAt` may be before it is flagged: five minutes covers the clock skew
/// of a phone or browser whose clock is set by hand, while a time-zone or unit bug is hours or more beyond it
/// (milliseconds sent as seconds are refused by validation already).
pub const CLOCK_SKEW_SECONDS: f64 = 300.0;

/// 2000-01-01T00:00:00Z in epoch seconds. Nothing Personalize trains on happened before it; a `sentAt` of 0 or a
/// few thousand is an unset clock or a bug.
pub const EARLIEST_PLAUSIBLE_SENT_AT: f64 = 946_684_800.0;

/// The texts a client writes when it stringifies a missing value (JavaScript's `String(null)`, `${undefined}`).
/// Python's "None" is left out: it is a plausible name. Compared whole and case-insensitively: " null" is an ID.
const PLACEHOLDERS: [&str; 2] = ["null", "undefined"];

/// True when `id` is what a client sends for a value it did not have.
pub fn is_placeholder_id(id: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| id.eq_ignore_ascii_case(p))
}

/// Every suspicion about one PutEvents event, given the server's clock (`now`, epoch seconds). Messages name
/// members and limits, never IDs or property values (they are sensitive in the model).
pub fn event_flags(event: &Interaction, now: f64) -> Vec<Flag> {
    let mut flags = Vec::new();
    if event.sent_at > now + CLOCK_SKEW_SECONDS {
        let seconds = format!("{:.0}", event.sent_at - now);
        flags.push(Flag::coded(
            FlagKind::SentAtInFuture,
            future_message(&seconds),
            Some(Code::sent_at_in_future(&seconds)),
        ));
    } else if event.sent_at < EARLIEST_PLAUSIBLE_SENT_AT {
        flags.push(Flag::coded(FlagKind::SentAtBefore2000, BEFORE_2000, Some(Code::SENT_AT_BEFORE_2000.into())));
    }
    if is_placeholder_id(&event.session_id) {
        flags.push(placeholder("sessionId"));
    }
    if event.user_id.as_deref().is_some_and(is_placeholder_id) {
        flags.push(placeholder("userId"));
    }
    if let (Some(item), Some(impression)) = (&event.item_id, &event.impression) {
        if !impression.iter().any(|i| i == item) {
            flags.push(Flag::coded(
                FlagKind::ItemNotInImpression,
                ITEM_NOT_IN_IMPRESSION,
                Some(Code::ITEM_NOT_IN_IMPRESSION.into()),
            ));
        }
    }
    flags
}

pub(crate) const BEFORE_2000: &str =
    "sentAt is before 2000-01-01: send the time the event happened, in epoch seconds (an unset clock sends 0)";

pub(crate) const ITEM_NOT_IN_IMPRESSION: &str =
    "itemId is not in the impression list: list every item the user was shown, the one interacted with included";

/// The message of a `sentAt` `seconds` ahead of the clock (as printed, whole seconds).
pub(crate) fn future_message(seconds: &str) -> String {
    format!(
        "sentAt is {seconds} s ahead of the server's clock (more than the {CLOCK_SKEW_SECONDS:.0} s of clock skew \
         tolerated): send the time the event happened, in epoch seconds"
    )
}

fn placeholder(member: &str) -> Flag {
    Flag::coded(FlagKind::PlaceholderId, placeholder_message(member), Some(Code::placeholder(member)))
}

/// The message of a placeholder ID in `member` (`userId` or `sessionId`).
pub(crate) fn placeholder_message(member: &str) -> String {
    format!(
        "{member} is \"null\" or \"undefined\": the client sent a missing value as text, so these events all \
         belong to one {} that does not exist; omit the member or send the real ID",
        if member == "userId" { "user" } else { "session" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;

    fn event() -> Interaction {
        Interaction {
            event_id: "e".into(),
            session_id: "s-1".into(),
            user_id: Some("u-1".into()),
            item_id: Some("i1".into()),
            event_type: "click".into(),
            event_value: None,
            sent_at: NOW - 10.0,
            properties: None,
            recommendation_id: None,
            impression: Some(vec!["i0".into(), "i1".into()]),
            event_attribution_source: None,
            flags: Vec::new(),
        }
    }

    fn kinds(e: &Interaction) -> Vec<FlagKind> {
        event_flags(e, NOW).into_iter().map(|f| f.kind).collect()
    }

    #[test]
    fn a_plain_event_has_no_flags() {
        assert_eq!(kinds(&event()), vec![]);
        let mut e = event();
        e.user_id = None;
        e.item_id = None;
        assert_eq!(kinds(&e), vec![], "an impression without an itemId is not compared");
    }

    #[test]
    fn sent_at_is_flagged_past_the_skew_and_before_2000() {
        let mut e = event();
        e.sent_at = NOW + CLOCK_SKEW_SECONDS;
        assert_eq!(kinds(&e), vec![], "exactly the tolerated skew is fine");
        e.sent_at = NOW + CLOCK_SKEW_SECONDS + 1.0;
        assert_eq!(kinds(&e), vec![FlagKind::SentAtInFuture]);
        e.sent_at = EARLIEST_PLAUSIBLE_SENT_AT;
        assert_eq!(kinds(&e), vec![]);
        e.sent_at = EARLIEST_PLAUSIBLE_SENT_AT - 0.5;
        assert_eq!(kinds(&e), vec![FlagKind::SentAtBefore2000]);
        e.sent_at = 0.0;
        assert_eq!(kinds(&e), vec![FlagKind::SentAtBefore2000]);
    }

    #[test]
    fn placeholder_ids_any_case_but_not_lookalikes() {
        for id in ["null", "NULL", "Undefined", "undefined"] {
            let mut e = event();
            e.session_id = id.into();
            assert_eq!(kinds(&e), vec![FlagKind::PlaceholderId], "{id}");
            let mut e = event();
            e.user_id = Some(id.into());
            assert_eq!(kinds(&e), vec![FlagKind::PlaceholderId], "{id}");
        }
        for id in ["nil", " null", "null-1", "None", ""] {
            let mut e = event();
            e.session_id = id.into();
            assert_eq!(kinds(&e), vec![], "{id:?}");
        }
        let mut e = event();
        e.session_id = "null".into();
        e.user_id = Some("undefined".into());
        let flags = event_flags(&e, NOW);
        assert_eq!(flags.len(), 2);
        assert!(flags[0].message.starts_with("sessionId") && flags[1].message.starts_with("userId"));
    }

    #[test]
    fn an_impression_without_the_item_is_flagged() {
        let mut e = event();
        e.impression = Some(vec!["i0".into(), "i2".into()]);
        assert_eq!(kinds(&e), vec![FlagKind::ItemNotInImpression]);
        e.impression = Some(vec!["I1".into()]);
        assert_eq!(kinds(&e), vec![FlagKind::ItemNotInImpression], "IDs compare exactly");
    }
}
