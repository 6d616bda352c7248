//! A page of a dataset's log as one byte buffer with offsets ([`EventPage`]): what an export reads
//! instead of an owned [`StoredEvent`] (eight `String`s) per row, so a row costs no allocation on
//! either side of the read, and only the columns the export writes are copied at all.

use crate::StoredEvent;

/// The text members of a stored event, in the order a page holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Text {
    EventId,
    SessionId,
    UserId,
    ItemId,
    EventType,
    /// The `properties` JSON text, as sent.
    Properties,
    RecommendationId,
    /// The impression list as JSON text (`["a","b"]`), as SQLite stores it; see
    /// [`EventRef::impression_joined`].
    Impression,
    AttributionSource,
}

const TEXTS: usize = 9;

/// Which text members a page is filled with; the others read as absent. The eventId is always
/// filled (the first-copy-wins reader keys on it), and so are the numbers (position, times, value,
/// whether imported), which cost nothing to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageColumns(u16);

impl PageColumns {
    /// Every member: a page that holds all a [`StoredEvent`] does but its flags.
    pub const ALL: PageColumns = PageColumns((1 << TEXTS) - 1);
    /// The eventId alone.
    pub const EVENT_ID: PageColumns = PageColumns(1);

    /// These columns and `text`.
    pub const fn with(self, text: Text) -> PageColumns {
        PageColumns(self.0 | 1 << text as u8)
    }

    /// Whether pages read with these columns hold `text`.
    pub const fn has(self, text: Text) -> bool {
        self.0 & (1 << text as u8) != 0
    }
}

/// The numbers of one row, filled whatever the columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowNumbers {
    pub seq: i64,
    pub received_at: f64,
    pub sent_at: f64,
    pub event_value: Option<f64>,
    /// Stored by an import job.
    pub bulk: bool,
}

#[derive(Debug, Clone)]
struct Row {
    numbers: RowNumbers,
    /// Where the row's text starts in the page's buffer; text member `k` ends at `ends[k]` and
    /// starts where member `k - 1` ended.
    start: usize,
    ends: [usize; TEXTS],
    /// Bit `k`: member `k` is present (not NULL); an absent member's span is empty.
    present: u16,
}

/// Up to a page of a dataset's events in `seq` order, repeats included, as [`crate::EventStore::read`]
/// returns them, with every row's text in one buffer.
#[derive(Debug, Clone)]
pub struct EventPage {
    columns: PageColumns,
    rows: Vec<Row>,
    text: Vec<u8>,
}

impl EventPage {
    /// An empty page of `columns`, with room for `rows` rows.
    pub fn new(columns: PageColumns, rows: usize) -> EventPage {
        EventPage { columns, rows: Vec::with_capacity(rows), text: Vec::with_capacity(rows * 64) }
    }

    /// The columns this page was filled with.
    pub fn columns(&self) -> PageColumns {
        self.columns
    }

    /// Empties the page for a refill, keeping its buffers: an export recycles a few pages, so
    /// no page buffer is allocated (and grown by copying, and its fresh memory cleared by the
    /// kernel) per page read.
    pub fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
    }

    /// Appends one row: `text(member, buffer)` appends the member's bytes to the buffer and
    /// answers whether it is present; it is asked only for the page's columns, in [`Text`] order.
    pub fn push<E>(
        &mut self,
        numbers: RowNumbers,
        mut text: impl FnMut(Text, &mut Vec<u8>) -> Result<bool, E>,
    ) -> Result<(), E> {
        const ORDER: [Text; TEXTS] = [
            Text::EventId,
            Text::SessionId,
            Text::UserId,
            Text::ItemId,
            Text::EventType,
            Text::Properties,
            Text::RecommendationId,
            Text::Impression,
            Text::AttributionSource,
        ];
        let start = self.text.len();
        let mut ends = [start; TEXTS];
        let mut present = 0u16;
        for (k, member) in ORDER.into_iter().enumerate() {
            if (self.columns.has(member) || member == Text::EventId) && text(member, &mut self.text)? {
                present |= 1 << k;
            }
            ends[k] = self.text.len();
        }
        self.rows.push(Row { numbers, start, ends, present });
        Ok(())
    }

    /// The same events as a page.
    pub fn from_events(events: &[StoredEvent], columns: PageColumns) -> EventPage {
        let mut page = EventPage::new(columns, events.len());
        page.fill_from(events);
        page
    }

    /// Appends the events: how an engine without a page read of its own answers
    /// [`crate::EventStore::read_page`].
    pub fn fill_from(&mut self, events: &[StoredEvent]) {
        let page = self;
        for e in events {
            let i = &e.interaction;
            let numbers = RowNumbers {
                seq: e.seq,
                received_at: e.received_at,
                sent_at: i.sent_at,
                event_value: i.event_value,
                bulk: e.bulk,
            };
            let copy = |buf: &mut Vec<u8>, v: Option<&str>| match v {
                Some(v) => {
                    buf.extend_from_slice(v.as_bytes());
                    true
                }
                None => false,
            };
            let _ = page.push::<std::convert::Infallible>(numbers, |member, buf| {
                Ok(match member {
                    Text::EventId => copy(buf, Some(&i.event_id)),
                    Text::SessionId => copy(buf, Some(&i.session_id)),
                    Text::UserId => copy(buf, i.user_id.as_deref()),
                    Text::ItemId => copy(buf, i.item_id.as_deref()),
                    Text::EventType => copy(buf, Some(&i.event_type)),
                    Text::Properties => copy(buf, i.properties.as_deref()),
                    Text::RecommendationId => copy(buf, i.recommendation_id.as_deref()),
                    Text::Impression => match &i.impression {
                        Some(list) => serde_json::to_writer(&mut *buf, list).is_ok(),
                        None => false,
                    },
                    Text::AttributionSource => copy(buf, i.event_attribution_source.as_deref()),
                })
            });
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The position of the last row: where the next page starts.
    pub fn last_seq(&self) -> Option<i64> {
        self.rows.last().map(|r| r.numbers.seq)
    }

    /// Row `n` (counted from 0).
    pub fn row(&self, n: usize) -> EventRef<'_> {
        EventRef { page: self, row: &self.rows[n] }
    }

    /// The rows in order.
    pub fn iter(&self) -> impl Iterator<Item = EventRef<'_>> {
        self.rows.iter().map(move |row| EventRef { page: self, row })
    }
}

/// One row of an [`EventPage`], borrowed.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    page: &'a EventPage,
    row: &'a Row,
}

impl<'a> EventRef<'a> {
    pub fn numbers(&self) -> &'a RowNumbers {
        &self.row.numbers
    }

    /// A text member's bytes as stored, `None` when it is NULL or not among the page's columns.
    /// Engines store what interlog wrote, UTF-8; the bytes are handed on unchecked, as the
    /// export writes bytes.
    pub fn text(&self, member: Text) -> Option<&'a [u8]> {
        let k = member as usize;
        if self.row.present & (1 << k) == 0 {
            return None;
        }
        let start = if k == 0 { self.row.start } else { self.row.ends[k - 1] };
        Some(&self.page.text[start..self.row.ends[k]])
    }

    pub fn event_id(&self) -> &'a [u8] {
        self.text(Text::EventId).unwrap_or_default()
    }

    /// The `IMPRESSION` cell: the impression list joined with `|`, appended to `out`; `false`
    /// (nothing appended) when the event has none. A list without escapes is read in place.
    pub fn impression_joined(&self, out: &mut Vec<u8>) -> bool {
        let Some(json) = self.text(Text::Impression) else { return false };
        let start = out.len();
        if join_plain(json, out) {
            return true;
        }
        out.truncate(start);
        let mut join = |items: &mut dyn Iterator<Item = &[u8]>| {
            for (n, item) in items.enumerate() {
                if n > 0 {
                    out.push(b'|');
                }
                out.extend_from_slice(item);
            }
        };
        if let Ok(list) = serde_json::from_slice::<Vec<&str>>(json) {
            join(&mut list.iter().map(|s| s.as_bytes()));
        } else if let Ok(list) = serde_json::from_slice::<Vec<String>>(json) {
            join(&mut list.iter().map(|s| s.as_bytes()));
        } else {
            return false;
        }
        true
    }
}

/// The impression as interlog writes it, `["a","b"]` (compact, no escapes), joined with `|` without
/// a JSON parser; `false` for any other text (whitespace, escapes, control characters, bytes that
/// are not UTF-8, not a list of strings), which the caller hands to `serde_json`: what this
/// accepts, `serde_json` reads as the same strings.
fn join_plain(json: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(inner) = json.strip_prefix(b"[").and_then(|j| j.strip_suffix(b"]")) else { return false };
    if inner.is_empty() {
        return true;
    }
    let Some(body) = inner.strip_prefix(b"\"").and_then(|j| j.strip_suffix(b"\"")) else { return false };
    if body.iter().any(|&b| b == b'\\' || b < 0x20) || (!body.is_ascii() && std::str::from_utf8(body).is_err()) {
        return false;
    }
    // Without escapes a `"` only opens or closes a string: the items are the pieces between the
    // `","` separators, and any other text between two strings is not this form.
    let mut separators = false;
    for (n, piece) in body.split(|&b| b == b'"').enumerate() {
        separators = n % 2 == 1;
        if separators {
            if piece != b"," {
                return false;
            }
            out.push(b'|');
        } else {
            out.extend_from_slice(piece);
        }
    }
    // The last piece is an item, not a separator (`["a","]` is not a list).
    !separators
}

#[cfg(test)]
mod tests {
    use super::*;
    use interlog_model::Interaction;

    fn event(seq: i64, impression: Option<Vec<String>>) -> StoredEvent {
        StoredEvent {
            seq,
            received_at: 2.5,
            bulk: seq % 2 == 0,
            interaction: Interaction {
                event_id: format!("e{seq}"),
                session_id: "s".into(),
                user_id: (seq != 2).then(|| format!("u{seq}")),
                item_id: Some(String::new()),
                event_type: "click".into(),
                event_value: Some(1.5),
                sent_at: 10.75,
                properties: Some(r#"{"a": 1}"#.into()),
                recommendation_id: None,
                impression,
                event_attribution_source: Some("src".into()),
                flags: vec![],
            },
        }
    }

    /// Every member reads back as the event held it: absent apart from empty, escapes in the
    /// impression undone, the numbers kept.
    #[test]
    fn a_page_reads_back_what_the_events_held() {
        let events = [event(1, Some(vec!["a".into(), "b\"|c".into()])), event(2, None), event(3, Some(vec![]))];
        let page = EventPage::from_events(&events, PageColumns::ALL);
        assert_eq!(page.len(), 3);
        assert_eq!(page.last_seq(), Some(3));
        let rows: Vec<EventRef<'_>> = page.iter().collect();
        assert_eq!(rows[0].event_id(), b"e1");
        assert_eq!(rows[0].text(Text::UserId), Some(&b"u1"[..]));
        assert_eq!(rows[1].text(Text::UserId), None);
        assert_eq!(rows[1].text(Text::ItemId), Some(&b""[..]));
        assert_eq!(rows[1].text(Text::RecommendationId), None);
        assert_eq!(rows[2].text(Text::AttributionSource), Some(&b"src"[..]));
        assert_eq!(rows[0].text(Text::Properties), Some(&br#"{"a": 1}"#[..]));
        assert_eq!(
            *rows[1].numbers(),
            RowNumbers { seq: 2, received_at: 2.5, sent_at: 10.75, event_value: Some(1.5), bulk: true }
        );
        let joined = |r: &EventRef<'_>| {
            let mut out = Vec::new();
            r.impression_joined(&mut out).then_some(out)
        };
        assert_eq!(joined(&rows[0]), Some(b"a|b\"|c".to_vec()));
        assert_eq!(joined(&rows[1]), None);
        assert_eq!(joined(&rows[2]), Some(Vec::new()));
    }

    /// The plain form is read without a parser, and gives what `serde_json` gives; anything else
    /// is left to `serde_json`.
    #[test]
    fn plain_impressions_join_as_the_parser_does() {
        for json in [r#"[]"#, r#"["a"]"#, r#"["a","b","c"]"#, r#"["",""]"#, r#"["ü,x","y|z"]"#, r#"[","]"#] {
            let mut out = Vec::new();
            assert!(join_plain(json.as_bytes(), &mut out), "{json}");
            let list: Vec<String> = serde_json::from_str(json).unwrap();
            assert_eq!(out, list.join("|").into_bytes(), "{json}");
        }
        for json in [
            r#"[ "a"]"#,
            r#"["a", "b"]"#,
            r#"["a\"b"]"#,
            r#"["a",1]"#,
            r#"["a"]]"#,
            r#"[""#,
            "[\"\u{1}\"]",
            r#"["a""b"]"#,
            r#"["a"],"#,
            r#"["a","]"#,
        ] {
            assert!(!join_plain(json.as_bytes(), &mut Vec::new()), "{json}");
        }
        assert!(!join_plain(b"[\"\xff\"]", &mut Vec::new()), "not UTF-8");
    }

    /// Columns left out read as absent; the eventId is always there.
    #[test]
    fn columns_left_out_read_as_absent() {
        let columns = PageColumns::EVENT_ID.with(Text::ItemId);
        assert!(columns.has(Text::ItemId) && !columns.has(Text::UserId));
        let page = EventPage::from_events(&[event(1, Some(vec!["a".into()]))], columns);
        let row = page.iter().next().unwrap();
        assert_eq!(row.event_id(), b"e1");
        assert_eq!(row.text(Text::ItemId), Some(&b""[..]));
        assert_eq!(row.text(Text::UserId), None);
        assert_eq!(row.text(Text::Properties), None);
        assert!(!row.impression_joined(&mut Vec::new()));
    }
}
