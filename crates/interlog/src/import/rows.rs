//! Reading an import file row by row: Personalize's dataset CSV (a header of schema field names,
//! `|`-joined impressions) or JSON lines (one Put*-shaped member per line), each row turned into
//! the wire member of the Put* call that carries it, with the byte offset after it (where a
//! resumed import starts reading again).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use interlog_model::schema::DatasetType;
use interlog_model::wire::normalize_key;
use serde_json::{Map, Value};

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Personalize's dataset CSV: a header of the schema's field names, then one row per record.
    Csv,
    /// One JSON object per line, shaped as one member of the Put* call (plus `userId` and
    /// `sessionId` for interactions).
    Jsonl,
}

impl InputFormat {
    /// `.csv` is CSV, `.jsonl` / `.ndjson` / `.json` JSON lines.
    pub fn of_path(path: &Path) -> Option<InputFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(InputFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(InputFormat::Jsonl),
            _ => None,
        }
    }
}

/// One row of a file: its wire member, or why it cannot be sent.
#[derive(Debug)]
pub struct Row {
    /// 1-based line number where the row starts (the header is line 1 of a CSV).
    pub line: u64,
    pub member: Result<Member, String>,
}

/// A row as the Put* call carries it.
#[derive(Debug, Clone)]
pub struct Member {
    /// What orders rows: the rows of one key are sent in file order (one user's session for
    /// events, one ID for records), rows of different keys in parallel.
    pub key: String,
    /// PutEvents only: the request's `userId` and `sessionId` (one call carries one of each).
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    /// The member object: an event of `eventList`, an item of `items`, ...
    pub json: Value,
}

/// Rows of one file, from a byte offset on.
pub struct Rows {
    kind: DatasetType,
    source: Source,
}

enum Source {
    Csv { lines: BufReader<File>, header: Vec<String>, at: Position, parser: Box<csv_core::Reader> },
    Jsonl { lines: BufReader<File>, offset: u64, lines_read: u64 },
}

/// Upper bound on one row's bytes (a Put* member is at most 10 KB of properties plus its IDs):
/// a file that is not what it claims fails on its first row instead of filling memory.
const MAX_ROW_BYTES: usize = 1 << 20;

/// Where a file's reading stands: resumed from here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Bytes consumed (0: nothing, not even a CSV's header).
    pub offset: u64,
    /// Lines consumed.
    pub lines: u64,
}

impl Rows {
    /// Opens `path`, reads a CSV's header, and continues from `at` (the default: the start).
    pub fn open(path: &Path, format: InputFormat, kind: DatasetType, at: Position) -> Result<Rows, String> {
        let shown = path.display();
        let mut file = File::open(path).map_err(|e| format!("cannot open {shown}: {e}"))?;
        let source = match format {
            InputFormat::Csv => {
                let mut first = Vec::new();
                let read = BufReader::new(&mut file)
                    .take(MAX_ROW_BYTES as u64)
                    .read_until(b'\n', &mut first)
                    .map_err(|e| format!("cannot read {shown}: {e}"))?;
                let text = std::str::from_utf8(&first).map_err(|_| format!("{shown}:1: the header is not UTF-8"))?;
                let text = text.trim_start_matches('\u{feff}').trim_end_matches(['\r', '\n']);
                let header: Vec<String> = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(text.as_bytes())
                    .records()
                    .next()
                    .transpose()
                    .map_err(|e| format!("{shown}:1: the header is not valid CSV: {e}"))?
                    .map(|r| r.iter().map(|c| c.trim().to_owned()).collect())
                    .unwrap_or_default();
                check_header(kind, &header).map_err(|e| format!("{shown}:1: {e}"))?;
                let at = if at.offset == 0 { Position { offset: read as u64, lines: 1 } } else { at };
                file.seek(SeekFrom::Start(at.offset)).map_err(|e| format!("cannot read {shown}: {e}"))?;
                let lines = BufReader::with_capacity(1 << 16, file);
                Source::Csv { lines, header, at, parser: Box::new(csv_core::Reader::new()) }
            }
            InputFormat::Jsonl => {
                file.seek(SeekFrom::Start(at.offset)).map_err(|e| format!("cannot read {shown}: {e}"))?;
                Source::Jsonl {
                    lines: BufReader::with_capacity(1 << 16, file),
                    offset: at.offset,
                    lines_read: at.lines,
                }
            }
        };
        Ok(Rows { kind, source })
    }

    /// The next row, `None` at the end; `Err` when the file cannot be read at all.
    pub fn next_row(&mut self) -> Result<Option<(Row, Position)>, String> {
        let kind = self.kind;
        match &mut self.source {
            Source::Csv { lines, header, at, parser } => loop {
                // A record is whole lines: more are added while a quoted field is open (an odd
                // number of quotes so far), so offsets and line numbers are exact.
                let mut buf = Vec::new();
                let line = at.lines + 1;
                loop {
                    let read = lines
                        .by_ref()
                        .take((MAX_ROW_BYTES + 1 - buf.len().min(MAX_ROW_BYTES)) as u64)
                        .read_until(b'\n', &mut buf)
                        .map_err(|e| format!("read failed: {e}"))?;
                    if read == 0 {
                        break;
                    }
                    at.offset += read as u64;
                    at.lines += 1;
                    if buf.len() > MAX_ROW_BYTES {
                        return Err(format!(
                            "line {line} starts a row of more than {MAX_ROW_BYTES} bytes: is this CSV?"
                        ));
                    }
                    if bytecount(&buf, b'"').is_multiple_of(2) {
                        break;
                    }
                }
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                    continue; // a blank line
                }
                if !bytecount(&buf, b'"').is_multiple_of(2) {
                    let member = Err("not valid CSV: a quoted field is still open at the end of the file".into());
                    return Ok(Some((Row { line, member }, *at)));
                }
                let member = split_record(parser, &buf).and_then(|(out, ends)| {
                    let mut start = 0;
                    let fields: Vec<&[u8]> = ends
                        .iter()
                        .map(|&end| {
                            let field = &out[start..end];
                            start = end;
                            field
                        })
                        .collect();
                    csv_member(kind, header, &fields, line)
                });
                return Ok(Some((Row { line, member }, *at)));
            },
            Source::Jsonl { lines, offset, lines_read } => loop {
                let mut buf = Vec::new();
                let read = lines
                    .by_ref()
                    .take(MAX_ROW_BYTES as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| format!("read failed: {e}"))?;
                if read == 0 {
                    return Ok(None);
                }
                *offset += read as u64;
                *lines_read += 1;
                let line = *lines_read;
                let at = Position { offset: *offset, lines: line };
                if read > MAX_ROW_BYTES {
                    return Err(format!("line {line} is longer than {MAX_ROW_BYTES} bytes: is this JSON lines?"));
                }
                let member = match std::str::from_utf8(&buf) {
                    Ok(t) if t.trim().is_empty() => continue,
                    Ok(t) => json_member(kind, t.trim(), line),
                    Err(e) => Err(format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1)),
                };
                return Ok(Some((Row { line, member }, at)));
            },
        }
    }
}

fn bytecount(buf: &[u8], byte: u8) -> usize {
    buf.iter().filter(|b| **b == byte).count()
}

/// The fields of one whole CSV record (RFC 4180: `,` separated, `"` quoted with `""` escapes),
/// as the unescaped bytes of every field and where each ends.
fn split_record(parser: &mut csv_core::Reader, buf: &[u8]) -> Result<(Vec<u8>, Vec<usize>), String> {
    let mut out = vec![0; buf.len()];
    let mut ends = vec![0; bytecount(buf, b',') + 1];
    let (mut input, mut written, mut fields) = (buf, 0, 0);
    loop {
        let (result, nin, nout, nend) = parser.read_record(input, &mut out[written..], &mut ends[fields..]);
        input = &input[nin..];
        written += nout;
        fields += nend;
        match result {
            csv_core::ReadRecordResult::Record => break,
            // The record's bytes are all given: an empty input tells the parser they ended.
            csv_core::ReadRecordResult::InputEmpty if !input.is_empty() => continue,
            csv_core::ReadRecordResult::InputEmpty => {
                let (result, _, nout, nend) = parser.read_record(&[], &mut out[written..], &mut ends[fields..]);
                written += nout;
                fields += nend;
                match result {
                    csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => break,
                    _ => return Err("not valid CSV".into()),
                }
            }
            // Unescaped output is never longer than the input, nor are there more fields than commas + 1.
            csv_core::ReadRecordResult::OutputFull | csv_core::ReadRecordResult::OutputEndsFull => {
                return Err("not valid CSV".into())
            }
            csv_core::ReadRecordResult::End => break,
        }
    }
    // Lines after a closed record (none, as records are cut at their last line) would start another.
    if !input.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return Err("not valid CSV: text after a quoted field".into());
    }
    out.truncate(written);
    ends.truncate(fields);
    Ok((out, ends))
}

/// The column that names a record's ID, and the columns a dataset's CSV must have.
fn required_columns(kind: DatasetType) -> &'static [&'static str] {
    match kind {
        DatasetType::Interactions => &["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"],
        DatasetType::Items => &["ITEM_ID"],
        DatasetType::Users => &["USER_ID"],
        DatasetType::Actions => &["ACTION_ID"],
        DatasetType::ActionInteractions => &["ACTION_ID", "USER_ID", "TIMESTAMP", "EVENT_TYPE"],
    }
}

fn check_header(kind: DatasetType, header: &[String]) -> Result<(), String> {
    if header.iter().all(String::is_empty) {
        return Err("the file has no header (expected the schema's field names, such as USER_ID)".into());
    }
    let mut seen = std::collections::HashSet::new();
    for column in header {
        if column.is_empty() {
            return Err("the header has an empty column name".into());
        }
        if !seen.insert(normalize_key(column)) {
            return Err(format!("the header names the column {column} twice"));
        }
    }
    for wanted in required_columns(kind) {
        if !header.iter().any(|c| c.eq_ignore_ascii_case(wanted)) {
            return Err(format!(
                "the header lacks the {wanted} column that a {} dataset's rows need (header: {})",
                kind.api_name(),
                header.join(",")
            ));
        }
    }
    Ok(())
}

/// An ID for a row that carries none, the same each time the same row is read from the same
/// line: a resumed or repeated import sends the same eventId, which the server keeps once.
fn derived_event_id(line: u64, content: &[&[u8]]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&line.to_le_bytes());
    for part in content {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    format!("imp-{:032x}", h.digest128())
}

/// The camelCase `properties` key of a column (`NUMBER_OF_RATINGS` → `numberOfRatings`).
fn camel(column: &str) -> String {
    let mut out = String::with_capacity(column.len());
    let mut upper = false;
    for (i, c) in column.chars().enumerate() {
        if c == '_' {
            upper = i > 0;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

fn number(column: &str, cell: &str) -> Result<Value, String> {
    let v: f64 = cell.trim().parse().map_err(|_| format!("{column} must be a number, not {cell:?}"))?;
    serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| format!("{column} must be a finite number"))
}

fn csv_member(kind: DatasetType, header: &[String], record: &[&[u8]], line: u64) -> Result<Member, String> {
    if record.len() != header.len() {
        return Err(format!("the row has {} columns; the header has {}", record.len(), header.len()));
    }
    let mut member = Map::new();
    let mut props = Map::new();
    let (mut user, mut session, mut event_id) = (None, None, None);
    for (column, cell) in header.iter().zip(record.iter().copied()) {
        let cell = std::str::from_utf8(cell)
            .map_err(|e| format!("column {column} is not valid UTF-8 (at byte {} of the cell)", e.valid_up_to() + 1))?;
        if cell.is_empty() {
            continue; // an empty cell is a missing (null) value
        }
        let upper = column.to_ascii_uppercase();
        let events = matches!(kind, DatasetType::Interactions | DatasetType::ActionInteractions);
        match (upper.as_str(), kind) {
            ("USER_ID", DatasetType::Interactions) => user = Some(cell.to_owned()),
            ("SESSION_ID", DatasetType::Interactions) => session = Some(cell.to_owned()),
            ("EVENT_ID", _) if events => event_id = Some(cell.to_owned()),
            ("ITEM_ID", DatasetType::Interactions | DatasetType::Items) => {
                member.insert("itemId".into(), cell.into());
            }
            ("USER_ID", DatasetType::Users | DatasetType::ActionInteractions) => {
                member.insert("userId".into(), cell.into());
            }
            ("SESSION_ID", DatasetType::ActionInteractions) => {
                member.insert("sessionId".into(), cell.into());
            }
            ("ACTION_ID", DatasetType::Actions | DatasetType::ActionInteractions) => {
                member.insert("actionId".into(), cell.into());
            }
            ("TIMESTAMP", DatasetType::Interactions) => {
                member.insert("sentAt".into(), number(column, cell)?);
            }
            ("TIMESTAMP", DatasetType::ActionInteractions) => {
                member.insert("timestamp".into(), number(column, cell)?);
            }
            ("EVENT_TYPE", _) if events => {
                member.insert("eventType".into(), cell.into());
            }
            ("EVENT_VALUE", DatasetType::Interactions) => {
                member.insert("eventValue".into(), number(column, cell)?);
            }
            ("IMPRESSION", _) if events => {
                member.insert("impression".into(), cell.split('|').map(Value::from).collect());
            }
            ("RECOMMENDATION_ID", _) if events => {
                member.insert("recommendationId".into(), cell.into());
            }
            ("EVENT_ATTRIBUTION_SOURCE", DatasetType::Interactions) => {
                member.insert("metricAttribution".into(), serde_json::json!({ "eventAttributionSource": cell }));
            }
            _ => {
                props.insert(camel(column), cell.into());
            }
        }
    }
    if !props.is_empty() {
        member.insert("properties".into(), Value::String(Value::Object(props).to_string()));
    }
    finish(kind, member, user, session, event_id, || derived_event_id(line, record))
}

/// Members of the exports' JSON lines that are the store's, not the request's: read and ignored.
const STORED_ONLY: [&str; 4] = ["receivedAt", "flags", "datasetArn", "trackingId"];

fn json_member(kind: DatasetType, text: &str, line: u64) -> Result<Member, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    let Value::Object(mut member) = value else {
        return Err("not a JSON object".into());
    };
    for key in STORED_ONLY {
        member.remove(key);
    }
    // `properties` may be given as an object, for convenience; the wire carries it as a string.
    if let Some(p @ Value::Object(_)) = member.get("properties") {
        let text = p.to_string();
        member.insert("properties".into(), Value::String(text));
    }
    let (mut user, mut session, mut event_id) = (None, None, None);
    let take = |member: &mut Map<String, Value>, key: &str| -> Result<Option<String>, String> {
        match member.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("{key} must be a string, not {other}")),
        }
    };
    match kind {
        DatasetType::Interactions => {
            user = take(&mut member, "userId")?;
            session = take(&mut member, "sessionId")?;
            event_id = take(&mut member, "eventId")?;
            // Exports write the event's time as `sentAt`; a `timestamp` is read as the same.
            if !member.contains_key("sentAt") {
                if let Some(t) = member.remove("timestamp") {
                    member.insert("sentAt".into(), t);
                }
            }
        }
        DatasetType::ActionInteractions => event_id = take(&mut member, "eventId")?,
        _ => {}
    }
    finish(kind, member, user, session, event_id, || derived_event_id(line, &[text.as_bytes()]))
}

fn finish(
    kind: DatasetType,
    mut member: Map<String, Value>,
    user: Option<String>,
    session: Option<String>,
    event_id: Option<String>,
    derive: impl FnOnce() -> String,
) -> Result<Member, String> {
    let text = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let id_of = |m: &Map<String, Value>, k: &str| text(m, k).ok_or_else(|| format!("the row has no {k}"));
    match kind {
        DatasetType::Interactions => {
            member.insert("eventId".into(), event_id.unwrap_or_else(derive).into());
            // PutEvents needs a session; historical rows often have none: the user's ID stands in.
            let session = session.or_else(|| user.clone()).unwrap_or_else(|| "interlog-import".into());
            let key = format!("{}\u{1f}{session}", user.as_deref().unwrap_or(""));
            Ok(Member { key, user_id: user, session_id: Some(session), json: Value::Object(member) })
        }
        DatasetType::ActionInteractions => {
            member.insert("eventId".into(), event_id.unwrap_or_else(derive).into());
            if !member.contains_key("sessionId") {
                let session = text(&member, "userId").unwrap_or_else(|| "interlog-import".into());
                member.insert("sessionId".into(), session.into());
            }
            let key = format!(
                "{}\u{1f}{}",
                text(&member, "userId").unwrap_or_default(),
                text(&member, "sessionId").unwrap_or_default()
            );
            Ok(Member { key, user_id: None, session_id: None, json: Value::Object(member) })
        }
        DatasetType::Items => {
            Ok(Member { key: id_of(&member, "itemId")?, user_id: None, session_id: None, json: Value::Object(member) })
        }
        DatasetType::Users => {
            Ok(Member { key: id_of(&member, "userId")?, user_id: None, session_id: None, json: Value::Object(member) })
        }
        DatasetType::Actions => Ok(Member {
            key: id_of(&member, "actionId")?,
            user_id: None,
            session_id: None,
            json: Value::Object(member),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &[u8]) -> tempfile::NamedTempFile {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text).unwrap();
        f
    }

    fn all(path: &Path, format: InputFormat, kind: DatasetType, at: Position) -> Vec<(Row, Position)> {
        let mut rows = Rows::open(path, format, kind, at).unwrap();
        std::iter::from_fn(|| rows.next_row().unwrap()).collect()
    }

    #[test]
    fn csv_rows_become_put_events_members_with_lines_and_resumable_positions() {
        let f = write(
            b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,NUMBER_OF_RATINGS\r\n\
              u1,i1,1700000000,click,i1|i2,12\r\n\
              \r\n\
              u2,\"i,2\",1700000001,view,,\r\n\
              u3,i3,soon,view,,\r\n",
        );
        let rows = all(f.path(), InputFormat::Csv, DatasetType::Interactions, Position::default());
        assert_eq!(rows.len(), 3);
        let (first, _) = &rows[0];
        assert_eq!(first.line, 2);
        let m = first.member.as_ref().unwrap();
        assert_eq!(m.user_id.as_deref(), Some("u1"));
        assert_eq!(m.session_id.as_deref(), Some("u1"));
        assert_eq!(m.json["itemId"], "i1");
        assert_eq!(m.json["sentAt"], 1_700_000_000.0);
        assert_eq!(m.json["impression"], serde_json::json!(["i1", "i2"]));
        assert_eq!(m.json["properties"], r#"{"numberOfRatings":"12"}"#);
        assert!(m.json["eventId"].as_str().unwrap().starts_with("imp-"));
        assert_eq!(rows[1].0.line, 4);
        assert_eq!(rows[1].0.member.as_ref().unwrap().json["itemId"], "i,2");
        assert_eq!(rows[2].0.line, 5);
        assert_eq!(rows[2].0.member.as_ref().unwrap_err(), "TIMESTAMP must be a number, not \"soon\"");
        // Resuming after the first row reads the rest with the same lines and the same eventIds.
        let again = all(f.path(), InputFormat::Csv, DatasetType::Interactions, rows[0].1);
        assert_eq!(again.len(), 2);
        assert_eq!(again[0].0.line, 4);
        assert_eq!(again[0].0.member.as_ref().unwrap().json, rows[1].0.member.as_ref().unwrap().json);
    }

    #[test]
    fn csv_rules_name_the_problem() {
        let f = write(b"ITEM_ID,GENRE\ni1,a|b\ni2,x,extra\ni3,\xff\xfe\n");
        let rows = all(f.path(), InputFormat::Csv, DatasetType::Items, Position::default());
        assert_eq!(rows[0].0.member.as_ref().unwrap().json["properties"], r#"{"genre":"a|b"}"#);
        assert_eq!(rows[1].0.member.as_ref().unwrap_err(), "the row has 3 columns; the header has 2");
        assert!(rows[2].0.member.as_ref().unwrap_err().contains("GENRE is not valid UTF-8"));
        let f = write(b"GENRE\nx\n");
        let e = Rows::open(f.path(), InputFormat::Csv, DatasetType::Items, Position::default()).err().unwrap();
        assert!(
            e.ends_with(":1: the header lacks the ITEM_ID column that a Items dataset's rows need (header: GENRE)"),
            "{e}"
        );
    }

    #[test]
    fn json_lines_take_exported_members_and_derive_stable_ids() {
        let f = write(
            b"{\"userId\":\"u1\",\"sessionId\":\"s1\",\"eventType\":\"click\",\"sentAt\":1700000000,\"itemId\":\"i1\",\"receivedAt\":1.5,\"flags\":[]}\n\
              \n\
              {\"sessionId\":\"s2\",\"eventId\":\"e2\",\"eventType\":\"view\",\"sentAt\":1,\"properties\":{\"a\":1}}\n\
              [1]\n",
        );
        let rows = all(f.path(), InputFormat::Jsonl, DatasetType::Interactions, Position::default());
        assert_eq!(rows.len(), 3);
        let m = rows[0].0.member.as_ref().unwrap();
        assert_eq!((m.user_id.as_deref(), m.session_id.as_deref()), (Some("u1"), Some("s1")));
        assert!(m.json.get("receivedAt").is_none() && m.json.get("userId").is_none());
        let m2 = rows[1].0.member.as_ref().unwrap();
        assert_eq!(rows[1].0.line, 3);
        assert_eq!(m2.json["eventId"], "e2");
        assert_eq!(m2.json["properties"], r#"{"a":1}"#);
        assert_eq!(rows[2].0.member.as_ref().unwrap_err(), "not a JSON object");
        let again = all(f.path(), InputFormat::Jsonl, DatasetType::Interactions, Position::default());
        assert_eq!(again[0].0.member.as_ref().unwrap().json["eventId"], m.json["eventId"]);
    }

    #[test]
    fn quoted_fields_may_span_lines_and_hold_quotes() {
        let f = write(b"ITEM_ID,DESCRIPTION\ni1,\"two\nlines, \"\"quoted\"\"\"\ni2,plain\ni3,\"unclosed\n");
        let rows = all(f.path(), InputFormat::Csv, DatasetType::Items, Position::default());
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].0.line, 2);
        let props = rows[0].0.member.as_ref().unwrap().json["properties"].as_str().unwrap().to_owned();
        let props: Value = serde_json::from_str(&props).unwrap();
        assert_eq!(props["description"], "two\nlines, \"quoted\"");
        assert_eq!(rows[1].0.line, 4);
        assert_eq!(rows[1].1, Position { offset: 56, lines: 4 });
        assert_eq!(rows[2].0.line, 5);
        assert!(rows[2].0.member.is_err());
        let rest = all(f.path(), InputFormat::Csv, DatasetType::Items, rows[0].1);
        assert_eq!(rest[0].0.line, 4);
        assert_eq!(rest[0].0.member.as_ref().unwrap().key, "i2");
    }

    #[test]
    fn columns_map_to_camel_case_keys() {
        assert_eq!(camel("NUMBER_OF_RATINGS"), "numberOfRatings");
        assert_eq!(camel("GENRE"), "genre");
        assert_eq!(camel("_X"), "x");
    }
}
