//! Rows of the CSV files Personalize imports (CreateDatasetImportJob, §7.4 of the spec), checked and turned into
//! the domain records the Put* calls produce: [`Interaction`], [`ActionInteraction`] or the keyed [`Record`].
//!
//! Pure and I/O-free: the caller splits the file into records (the `csv` crate in the server's import jobs and in
//! `interlog import`) and hands over the raw bytes of each field, so that invalid UTF-8 is one more rule broken
//! here, on a line this module names. The header is compiled once against the dataset's schema into an
//! [`Importer`]; each row then costs a few length checks and one pass of the schema's property check
//! ([`CompiledSchema::check`]), the very rules PutEvents, PutItems, PutUsers, PutActions and
//! PutActionInteractions apply, so a row is accepted exactly when the same record sent through the Put* call would
//! be (docs/api.md "Dataset import jobs").
//!
//! Header: the schema's field names, in any order, matched without regard to ASCII case (Personalize's examples
//! write them upper case, `USER_ID,ITEM_ID,TIMESTAMP`); every non-nullable field must be present, a nullable one may
//! be left out, an unknown or repeated name is refused. Cells: an empty cell is a missing (null) value; categorical
//! values and `IMPRESSION` are `|`-joined. Metadata columns become the record's `properties` object with the
//! camelCase keys of §7.5 and typed values, so the export writes back what was imported.

use std::fmt;

use serde_json::{Map, Number, Value};

use crate::event::{ActionInteraction, Interaction};
use crate::properties::{CompiledSchema, MetaValue, PropertyRules, Props, UndeclaredKeys};
use crate::record::{Record, RecordKind};
use crate::schema::{DatasetType, Field, FieldType, Schema};
use crate::wire::{self, normalize_key};

/// The header's line number: data rows start at 2.
pub const HEADER_LINE: u64 = 1;

/// Why a file cannot be imported: the line (1 is the header), the column when one is to blame, and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportViolation {
    pub line: u64,
    pub column: Option<String>,
    pub rule: String,
}

impl ImportViolation {
    fn new(line: u64, column: Option<&str>, rule: impl Into<String>) -> Self {
        ImportViolation { line, column: column.map(str::to_owned), rule: rule.into() }
    }
}

impl fmt::Display for ImportViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.line == HEADER_LINE { " (the header)" } else { "" };
        match &self.column {
            Some(c) => write!(f, "line {}{what}, column {c}: {}", self.line, self.rule),
            None => write!(f, "line {}{what}: {}", self.line, self.rule),
        }
    }
}

impl std::error::Error for ImportViolation {}

/// One imported row, the record the matching Put* call would have produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    Interaction(Interaction),
    ActionInteraction(ActionInteraction),
    Record(Record),
}

/// What a column feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    UserId,
    ItemId,
    ActionId,
    Timestamp,
    EventType,
    EventValue,
    Impression,
    RecommendationId,
    AttributionSource,
    /// `ITEM_ID` / `USER_ID` / `ACTION_ID` of a keyed dataset.
    RecordId,
    /// A metadata column: a key of `properties`.
    Property,
}

#[derive(Debug, Clone)]
struct Column {
    field: Field,
    role: Role,
    /// The `properties` key of a metadata column (camelCase, §7.5).
    key: String,
    /// A column named `EVENT_ID` (a metadata column to the schema) also gives interactions their eventId.
    event_id: bool,
}

/// A header compiled against a dataset's schema: turns the rows under it into records.
pub struct Importer {
    dataset_type: DatasetType,
    columns: Vec<Column>,
    compiled: CompiledSchema,
}

impl fmt::Debug for Importer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Importer")
            .field("dataset_type", &self.dataset_type)
            .field("columns", &self.columns.iter().map(|c| c.field.name.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// The largest `properties` text the Put* call of a dataset type accepts.
fn max_properties_chars(t: DatasetType) -> usize {
    match RecordKind::of_dataset_type(t) {
        Some(kind) => kind.max_properties_chars(),
        // PutEvents' and PutActionInteractions' `properties`: 1..1024 characters.
        None => 1024,
    }
}

fn role(t: DatasetType, name: &str) -> Role {
    match (t, name) {
        (DatasetType::Items, "ITEM_ID") | (DatasetType::Users, "USER_ID") | (DatasetType::Actions, "ACTION_ID") => {
            Role::RecordId
        }
        (DatasetType::Interactions | DatasetType::ActionInteractions, "USER_ID") => Role::UserId,
        (DatasetType::Interactions, "ITEM_ID") => Role::ItemId,
        (DatasetType::ActionInteractions, "ACTION_ID") => Role::ActionId,
        (DatasetType::Interactions | DatasetType::ActionInteractions, "TIMESTAMP") => Role::Timestamp,
        (DatasetType::Interactions | DatasetType::ActionInteractions, "EVENT_TYPE") => Role::EventType,
        (DatasetType::Interactions, "EVENT_VALUE") => Role::EventValue,
        (DatasetType::Interactions | DatasetType::ActionInteractions, "IMPRESSION") => Role::Impression,
        (DatasetType::Interactions | DatasetType::ActionInteractions, "RECOMMENDATION_ID") => Role::RecommendationId,
        (DatasetType::Interactions, "EVENT_ATTRIBUTION_SOURCE") => Role::AttributionSource,
        _ => Role::Property,
    }
}

/// A field's bytes as text, or the violation naming the line and column.
fn text<'a>(line: u64, column: &str, bytes: &'a [u8]) -> Result<&'a str, ImportViolation> {
    std::str::from_utf8(bytes).map_err(|e| {
        ImportViolation::new(
            line,
            Some(column),
            format!("is not valid UTF-8 (invalid byte at offset {}); files must be UTF-8 encoded", e.valid_up_to()),
        )
    })
}

impl Importer {
    /// Compiles a file's header (its fields' raw bytes) against the dataset's schema.
    pub fn new(schema: &Schema, header: &[&[u8]]) -> Result<Importer, ImportViolation> {
        let bad = |rule: String| ImportViolation::new(HEADER_LINE, None, rule);
        let dataset_type = schema.dataset_type;
        let mut columns: Vec<Column> = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let mut raw: &[u8] = raw;
            if i == 0 {
                // A byte order mark is how some tools start UTF-8 files; it is not part of the first name.
                raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
            }
            let name = std::str::from_utf8(raw).map_err(|_| {
                bad(format!("column {} of the header is not valid UTF-8; files must be UTF-8 encoded", i + 1))
            })?;
            let Some(field) = schema.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)) else {
                return Err(bad(format!(
                    "column {} of the header, '{name}', is not a field of the schema {} (its fields: {})",
                    i + 1,
                    schema.name,
                    schema.field_names().join(", ")
                )));
            };
            if columns.iter().any(|c| c.field.name == field.name) {
                return Err(bad(format!("the header names field {} twice", field.name)));
            }
            columns.push(Column {
                role: role(dataset_type, &field.name),
                key: field.camel_name(),
                event_id: dataset_type == DatasetType::Interactions && normalize_key(&field.name) == "eventid",
                field: field.clone(),
            });
        }
        let missing: Vec<&str> = schema
            .fields
            .iter()
            .filter(|f| !f.nullable && !columns.iter().any(|c| c.field.name == f.name))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "the header lacks {}: the schema's fields of a type that is not a union with \"null\" must each be a \
                 column",
                missing.join(", ")
            )));
        }
        Ok(Importer { dataset_type, columns, compiled: CompiledSchema::new(schema, &schema.name) })
    }

    /// The dataset type the rows are records of.
    pub fn dataset_type(&self) -> DatasetType {
        self.dataset_type
    }

    /// The header's columns: every row must have exactly this many fields.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Checks one row (`line`: its line number in the file, for messages) and returns its record.
    pub fn row(&self, line: u64, fields: &[&[u8]]) -> Result<Imported, ImportViolation> {
        if fields.len() != self.columns.len() {
            let (what, n) =
                if fields.len() > self.columns.len() { ("too many", fields.len()) } else { ("too few", fields.len()) };
            return Err(ImportViolation::new(
                line,
                None,
                format!("{what} columns: the row has {n} fields, the header {}", self.columns.len()),
            ));
        }
        let mut row = Row::default();
        let mut props = Map::new();
        for (column, raw) in self.columns.iter().zip(fields) {
            let name = column.field.name.as_str();
            let cell = text(line, name, raw)?;
            if cell.is_empty() {
                if !column.field.nullable && column.role != Role::Property {
                    return Err(ImportViolation::new(
                        line,
                        Some(name),
                        format!(
                            "must not be empty: field {name} has type {} (not a union with \"null\")",
                            column.field.type_json()
                        ),
                    ));
                }
                // A missing metadata value is left to the schema check, which refuses it for non-nullable fields.
                continue;
            }
            self.cell(line, column, cell, &mut row, &mut props)?;
        }
        let properties = self.properties(line, props)?;
        let event_id = || row.event_id.clone().unwrap_or_else(|| content_id(fields));
        Ok(match self.dataset_type {
            DatasetType::Interactions => Imported::Interaction(Interaction {
                event_id: event_id(),
                // A file has no sessions: the user stands for it, as an anonymous user's session would.
                session_id: row.user_id.clone().unwrap_or_default(),
                user_id: row.user_id,
                item_id: row.item_id,
                event_type: row.event_type.unwrap_or_default(),
                event_value: row.event_value,
                sent_at: row.timestamp.unwrap_or_default() as f64,
                properties,
                recommendation_id: row.recommendation_id,
                impression: row.impression,
                event_attribution_source: row.attribution_source,
                flags: Vec::new(),
            }),
            DatasetType::ActionInteractions => Imported::ActionInteraction(ActionInteraction {
                event_id: event_id(),
                action_id: row.action_id.unwrap_or_default(),
                session_id: row.user_id.clone().unwrap_or_default(),
                user_id: row.user_id,
                timestamp: row.timestamp.unwrap_or_default() as f64,
                event_type: row.event_type.unwrap_or_default(),
                recommendation_id: row.recommendation_id,
                impression: row.impression,
                properties,
                flags: Vec::new(),
            }),
            DatasetType::Items | DatasetType::Users | DatasetType::Actions => {
                Imported::Record(Record { id: row.record_id.unwrap_or_default(), properties, flags: Vec::new() })
            }
        })
    }

    /// One non-empty cell into the row (members) or `props` (metadata, as text: the schema check coerces it).
    fn cell(
        &self,
        line: u64,
        column: &Column,
        cell: &str,
        row: &mut Row,
        props: &mut Map<String, Value>,
    ) -> Result<(), ImportViolation> {
        let name = column.field.name.as_str();
        let bad = |rule: String| ImportViolation::new(line, Some(name), rule);
        let id = |max: usize| -> Result<String, ImportViolation> {
            let n = cell.chars().count();
            if n > max {
                return Err(bad(format!("has {n} characters; at most {max} are allowed")));
            }
            Ok(cell.to_owned())
        };
        match column.role {
            Role::UserId => row.user_id = Some(id(256)?),
            Role::ItemId => row.item_id = Some(id(256)?),
            Role::ActionId => row.action_id = Some(id(256)?),
            Role::RecordId => row.record_id = Some(id(256)?),
            Role::EventType => row.event_type = Some(id(256)?),
            Role::RecommendationId => row.recommendation_id = Some(id(40)?),
            Role::Timestamp => match cell.trim().parse::<i64>() {
                Ok(t) if (t as f64).abs() > wire::MAX_EPOCH_SECONDS => {
                    return Err(bad(format!(
                        "{t} must be epoch seconds (this looks like milliseconds: divide by 1000)"
                    )));
                }
                Ok(t) => row.timestamp = Some(t),
                Err(_) => return Err(bad("must be an integer (epoch seconds, type long)".to_owned())),
            },
            Role::EventValue => match cell.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => row.event_value = Some(v),
                Ok(_) => return Err(bad("must be a finite number within the range of a float".to_owned())),
                Err(_) => return Err(bad("must be a number (type float)".to_owned())),
            },
            Role::Impression => {
                let n = cell.chars().count();
                if n > wire::MAX_IMPRESSION_CHARS {
                    return Err(bad(format!(
                        "has {n} characters; at most {} are allowed, '|' separators included",
                        wire::MAX_IMPRESSION_CHARS
                    )));
                }
                let list: Vec<String> = cell.split('|').map(str::to_owned).collect();
                if list.len() > wire::MAX_IMPRESSIONS {
                    return Err(bad(format!(
                        "holds {} IDs; at most {} are allowed",
                        list.len(),
                        wire::MAX_IMPRESSIONS
                    )));
                }
                if let Some(i) = list.iter().position(|s| s.is_empty() || s.chars().count() > 256) {
                    return Err(bad(format!("ID {} of the '|'-joined list must have 1 to 256 characters", i + 1)));
                }
                row.impression = Some(list);
            }
            Role::AttributionSource => {
                let printable = cell.chars().all(|c| (' '..='~').contains(&c));
                let visible = cell.chars().any(|c| ('!'..='~').contains(&c));
                if cell.chars().count() > 1024 || !(printable && visible) {
                    return Err(bad(
                        "must be 1 to 1024 printable ASCII characters, at least one not a space".to_owned()
                    ));
                }
                row.attribution_source = Some(cell.to_owned());
            }
            Role::Property => {
                if column.event_id {
                    row.event_id = Some(id(256)?);
                }
                props.insert(column.key.clone(), Value::String(cell.to_owned()));
            }
        }
        Ok(())
    }

    /// The metadata cells checked against the schema as Put* `properties` are, then written as the typed object.
    fn properties(&self, line: u64, props: Map<String, Value>) -> Result<Option<String>, ImportViolation> {
        if props.is_empty() && !self.compiled.requires_metadata() {
            return Ok(None);
        }
        let rules = PropertyRules { undeclared_keys: UndeclaredKeys::Refuse, allow_missing_required: false };
        let path = format!("line {line}");
        let checked = self.compiled.check(&path, &Props::from_map(&props), rules).map_err(|v| {
            let rules: Vec<String> = v.into_iter().map(|v| v.rule).collect();
            ImportViolation::new(line, None, rules.join("; "))
        })?;
        let mut typed = Map::new();
        for (name, value) in checked.metadata {
            let key = self.columns.iter().find(|c| c.field.name == name).map(|c| c.key.clone()).unwrap_or(name);
            let value = match value {
                MetaValue::Null => continue,
                MetaValue::String(s) => Value::String(s),
                MetaValue::Int(i) => Value::Number(i.into()),
                MetaValue::Float(f) => Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
                MetaValue::Bool(b) => Value::Bool(b),
            };
            typed.insert(key, value);
        }
        if typed.is_empty() {
            return Ok(None);
        }
        // Keys sorted, written by hand: serde_json's map keeps insertion order when any crate of the build turns
        // on its `preserve_order` feature (the workspace's tests do), and the stored text must not depend on that.
        let mut keys: Vec<(&String, &Value)> = typed.iter().collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::from("{");
        for (i, (key, value)) in keys.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&Value::String(key.clone()).to_string());
            text.push(':');
            text.push_str(&value.to_string());
        }
        text.push('}');
        let max = max_properties_chars(self.dataset_type);
        let n = text.chars().count();
        if n > max {
            return Err(ImportViolation::new(
                line,
                None,
                format!(
                    "the row's metadata columns come to {n} characters of properties JSON; the {} call accepts at most \
                     {max}",
                    self.put_operation()
                ),
            ));
        }
        Ok(Some(text))
    }

    fn put_operation(&self) -> &'static str {
        match self.dataset_type {
            DatasetType::Interactions => "PutEvents",
            DatasetType::ActionInteractions => "PutActionInteractions",
            t => RecordKind::of_dataset_type(t).map(RecordKind::operation).unwrap_or("Put*"),
        }
    }
}

/// The members of one row, as its cells set them.
#[derive(Default)]
struct Row {
    event_id: Option<String>,
    user_id: Option<String>,
    item_id: Option<String>,
    action_id: Option<String>,
    record_id: Option<String>,
    timestamp: Option<i64>,
    event_type: Option<String>,
    event_value: Option<f64>,
    impression: Option<Vec<String>>,
    recommendation_id: Option<String>,
    attribution_source: Option<String>,
}

/// The eventId of a row without an `EVENT_ID` column: a digest of its cells, so the same row imported twice, or
/// twice in one file, is one event ("two events with exactly the same timestamp and identical properties → only one
/// kept", §8), and the reader's first-copy-wins removes the repeat. FNV-1a over 128 bits, each cell
/// length-prefixed so cells cannot run into each other; not a security boundary (a file's author can only merge
/// their own rows).
fn content_id(fields: &[&[u8]]) -> String {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h = (h ^ u128::from(*b)).wrapping_mul(PRIME);
        }
    };
    for f in fields {
        eat(&(f.len() as u64).to_le_bytes());
        eat(f);
    }
    format!("imported-{h:032x}")
}

/// The field type's name, for callers that describe a schema's columns (the CLI's help).
pub fn describe_field(field: &Field) -> String {
    let ty = match field.ty {
        FieldType::String if field.categorical => "categorical string".to_owned(),
        ty => ty.to_string(),
    };
    if field.nullable {
        format!("{} ({ty}, may be empty)", field.name)
    } else {
        format!("{} ({ty})", field.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse_schema, DEFAULT_INTERACTIONS_SCHEMA};

    fn importer(schema: &str, header: &str) -> Result<Importer, ImportViolation> {
        let schema = parse_schema(schema).expect("schema");
        let fields: Vec<&[u8]> = header.split(',').map(str::as_bytes).collect();
        Importer::new(&schema, &fields)
    }

    fn row(imp: &Importer, line: u64, cells: &str) -> Result<Imported, ImportViolation> {
        let fields: Vec<&[u8]> = cells.split(',').map(str::as_bytes).collect();
        imp.row(line, &fields)
    }

    const ITEMS: &str = r#"{"type":"record","name":"Items","namespace":"com.amazonaws.personalize.schema","fields":[
        {"name":"ITEM_ID","type":"string"},{"name":"GENRES","type":["null","string"],"categorical":true},
        {"name":"PRICE","type":"float"},{"name":"IN_STOCK","type":["null","boolean"]},
        {"name":"CREATION_TIMESTAMP","type":"long"}],"version":"1.0"}"#;

    #[test]
    fn interactions_rows_become_the_events_put_events_records() {
        let imp = importer(DEFAULT_INTERACTIONS_SCHEMA, "user_id,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION,EVENT_VALUE")
            .unwrap();
        let Imported::Interaction(e) = row(&imp, 2, "u1,i1,1700000000,click,i1|i2|i3,4.5").unwrap() else {
            panic!("not an interaction")
        };
        assert_eq!(e.user_id.as_deref(), Some("u1"));
        assert_eq!(e.session_id, "u1");
        assert_eq!(e.item_id.as_deref(), Some("i1"));
        assert_eq!(e.sent_at, 1_700_000_000.0);
        assert_eq!(e.event_type, "click");
        assert_eq!(e.event_value, Some(4.5));
        assert_eq!(e.impression_joined().as_deref(), Some("i1|i2|i3"));
        assert_eq!(e.properties, None);
        // The same row twice is one event; another row another.
        let Imported::Interaction(again) = row(&imp, 3, "u1,i1,1700000000,click,i1|i2|i3,4.5").unwrap() else {
            panic!()
        };
        let Imported::Interaction(other) = row(&imp, 4, "u1,i1,1700000001,click,i1|i2|i3,4.5").unwrap() else {
            panic!()
        };
        assert_eq!(e.event_id, again.event_id);
        assert_ne!(e.event_id, other.event_id);
        // Nullable member cells may be empty.
        let Imported::Interaction(e) = row(&imp, 5, "u1,i1,1700000000,click,,").unwrap() else { panic!() };
        assert_eq!((e.impression, e.event_value), (None, None));
    }

    #[test]
    fn an_event_id_column_gives_the_event_its_id() {
        let schema = DEFAULT_INTERACTIONS_SCHEMA.replace(
            r#"{"name": "USER_ID""#,
            r#"{"name": "EVENT_ID", "type": ["null", "string"]}, {"name": "USER_ID""#,
        );
        let imp = importer(&schema, "EVENT_ID,USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE").unwrap();
        let Imported::Interaction(e) = row(&imp, 2, "ev-1,u1,i1,1700000000,click").unwrap() else { panic!() };
        assert_eq!(e.event_id, "ev-1");
        assert_eq!(e.properties.as_deref(), Some(r#"{"eventId":"ev-1"}"#));
    }

    #[test]
    fn items_metadata_becomes_typed_properties() {
        let imp = importer(ITEMS, "ITEM_ID,GENRES,PRICE,IN_STOCK,CREATION_TIMESTAMP").unwrap();
        let Imported::Record(r) = row(&imp, 2, "i1,horror|comedy,4.5,true,1700000000").unwrap() else { panic!() };
        assert_eq!(r.id, "i1");
        let props = r.properties_map().unwrap();
        assert_eq!(props["genres"], "horror|comedy");
        assert_eq!(props["price"], 4.5);
        assert_eq!(props["inStock"], true);
        assert_eq!(props["creationTimestamp"], 1_700_000_000_i64);
        // Nullable columns may be left out of the header, or empty.
        let imp = importer(ITEMS, "ITEM_ID,PRICE,CREATION_TIMESTAMP").unwrap();
        let Imported::Record(r) = row(&imp, 2, "i2,3,1").unwrap() else { panic!() };
        assert_eq!(r.properties.as_deref(), Some(r#"{"creationTimestamp":1,"price":3.0}"#));
    }

    #[test]
    fn users_actions_and_action_interactions_are_imported_too() {
        let users = r#"{"type":"record","name":"Users","fields":[{"name":"USER_ID","type":"string"},
            {"name":"AGE","type":"int"}],"version":"1.0"}"#;
        let Imported::Record(r) = row(&importer(users, "USER_ID,AGE").unwrap(), 2, "u1,35").unwrap() else { panic!() };
        assert_eq!((r.id.as_str(), r.properties.as_deref()), ("u1", Some(r#"{"age":35}"#)));
        let actions = r#"{"type":"record","name":"Actions","fields":[{"name":"ACTION_ID","type":"string"},
            {"name":"VALUE","type":["null","int"]}],"version":"1.0"}"#;
        let Imported::Record(r) = row(&importer(actions, "ACTION_ID,VALUE").unwrap(), 2, "a1,").unwrap() else {
            panic!()
        };
        assert_eq!((r.id.as_str(), r.properties), ("a1", None));
        let ai = r#"{"type":"record","name":"ActionInteractions","fields":[{"name":"USER_ID","type":"string"},
            {"name":"ACTION_ID","type":"string"},{"name":"TIMESTAMP","type":"long"},
            {"name":"EVENT_TYPE","type":"string"}],"version":"1.0"}"#;
        let imp = importer(ai, "USER_ID,ACTION_ID,TIMESTAMP,EVENT_TYPE").unwrap();
        let Imported::ActionInteraction(a) = row(&imp, 2, "u1,a1,1700000000,Taken").unwrap() else { panic!() };
        assert_eq!((a.action_id.as_str(), a.event_type.as_str(), a.timestamp), ("a1", "Taken", 1_700_000_000.0));
    }

    #[test]
    fn a_bad_header_is_refused_on_line_one() {
        let e = importer(DEFAULT_INTERACTIONS_SCHEMA, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,COLOR").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.to_string().contains("'COLOR', is not a field of the schema Interactions"), "{e}");
        let e = importer(DEFAULT_INTERACTIONS_SCHEMA, "USER_ID,ITEM_ID,TIMESTAMP").unwrap_err();
        assert!(e.rule.contains("lacks EVENT_TYPE"), "{e}");
        let e = importer(DEFAULT_INTERACTIONS_SCHEMA, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,item_id").unwrap_err();
        assert!(e.rule.contains("names field ITEM_ID twice"), "{e}");
        let schema = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        let e = Importer::new(&schema, &[b"USER_ID", b"ITEM\xff"]).unwrap_err();
        assert!(e.rule.contains("not valid UTF-8"), "{e}");
        // A byte order mark does not count.
        Importer::new(&schema, &[b"\xef\xbb\xbfUSER_ID", b"ITEM_ID", b"TIMESTAMP", b"EVENT_TYPE"]).unwrap();
    }

    #[test]
    fn every_broken_rule_names_its_line_and_column() {
        let imp = importer(DEFAULT_INTERACTIONS_SCHEMA, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION").unwrap();
        let long = "x".repeat(257);
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            ("u1,i1,yesterday,click,".into(), Some("TIMESTAMP"), "must be an integer"),
            ("u1,i1,1700000000000,click,".into(), Some("TIMESTAMP"), "milliseconds"),
            ("u1,i1,1700000000,click,,extra".into(), None, "too many columns: the row has 6 fields, the header 5"),
            ("u1,i1,1700000000".into(), None, "too few columns"),
            (format!("u1,{long},1700000000,click,"), Some("ITEM_ID"), "has 257 characters; at most 256"),
            (",i1,1700000000,click,".into(), Some("USER_ID"), "must not be empty"),
            ("u1,i1,1700000000,click,a||b".into(), Some("IMPRESSION"), "ID 2 of the '|'-joined list"),
            (format!("u1,i1,1700000000,click,{}", "a|".repeat(30) + "a"), Some("IMPRESSION"), "IDs; at most 25"),
        ];
        for (cells, column, rule) in cases {
            let e = row(&imp, 7, &cells).unwrap_err();
            assert_eq!((e.line, e.column.as_deref()), (7, column), "{cells}: {e}");
            assert!(e.rule.contains(rule), "{cells}: {e}");
            assert!(e.to_string().starts_with("line 7"), "{e}");
        }
        let e = imp.row(9, &[b"u\xc3", b"i1", b"1", b"click", b""]).unwrap_err();
        assert_eq!((e.line, e.column.as_deref()), (9, Some("USER_ID")));
        assert!(e.rule.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn metadata_follows_the_schema_rules_of_the_put_calls() {
        let imp = importer(ITEMS, "ITEM_ID,GENRES,PRICE,IN_STOCK,CREATION_TIMESTAMP").unwrap();
        let cases = [
            ("i1,,cheap,,1", "must be a finite number"),
            ("i1,,1,yes,1", "must be true or false"),
            ("i1,,1,,1.5", "fraction"),
            ("i1,,1,,", "properties must contain 'creationTimestamp'"),
        ];
        for (cells, rule) in cases {
            let e = row(&imp, 3, cells).unwrap_err();
            assert_eq!(e.line, 3);
            assert!(e.rule.contains(rule), "{cells}: {e}");
        }
        let e = row(&imp, 4, &format!("i1,{},1,,1", "g".repeat(1001))).unwrap_err();
        assert!(e.rule.contains("categorical and has 1001 characters"), "{e}");
        // Interactions' metadata goes through PutEvents' 1024-character limit on properties.
        let schema = DEFAULT_INTERACTIONS_SCHEMA
            .replace(r#"{"name": "EVENT_VALUE""#, r#"{"name": "NOTE", "type": "string"}, {"name": "EVENT_VALUE""#);
        let imp = importer(&schema, "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE,NOTE").unwrap();
        let e = row(&imp, 5, &format!("u,i,1,click,{}", "n".repeat(1020))).unwrap_err();
        assert!(e.rule.contains("the PutEvents call accepts at most 1024"), "{e}");
        assert!(row(&imp, 6, "u,i,1,click,fine").is_ok());
    }

    #[test]
    fn fields_are_described_for_help() {
        let schema = parse_schema(ITEMS).unwrap();
        assert_eq!(describe_field(&schema.fields[1]), "GENRES (categorical string, may be empty)");
        assert_eq!(describe_field(&schema.fields[2]), "PRICE (float)");
    }
}
