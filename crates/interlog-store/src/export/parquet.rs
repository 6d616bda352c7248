//! Parquet exports: the same rows and columns as the dataset CSV, each column typed from the
//! schema (`string` → UTF-8 `BYTE_ARRAY`, `int` → `INT32`, `long` → `INT64` — `TIMESTAMP` too,
//! seconds as Personalize's schemas declare it —, `float` and `double` → `DOUBLE`, the value
//! interlog stored, unrounded, `boolean` → `BOOLEAN`), every column optional: where the CSV has
//! an empty cell the Parquet file has a null.
//!
//! Written through the `parquet` crate's low-level column writers, no Arrow arrays: rows are
//! gathered column by column into one row group of at most [`ROW_GROUP_ROWS`] rows (or
//! [`ROW_GROUP_BYTES`] of values), which is encoded (snappy) and handed to the output before the
//! next one fills, so memory stays bounded whatever the dataset's size.

use std::borrow::Cow;
use std::io::{self, Write};

use bytes::Bytes;
use interlog_model::properties::{MetaValue, Metadata, Props};
use interlog_model::schema::{FieldType, Schema};
use interlog_model::RecordKind;
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::{Map, Value};

use super::{ExportWriter, Member, LENIENT};
use crate::page::{EventPage, EventRef, PageColumns, Text};
use crate::{action_interaction, StoredEvent, StoredRecord};

/// Rows per row group: large enough for good compression and few footer entries, small enough
/// that a row group's values stay in tens of MB.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A row group is also closed once its values take this many bytes (long strings).
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// The Parquet side of an [`ExportWriter`]: the column buffers of the row group being filled and
/// the file writer, made at the first row (or at the end) once the schema is known.
pub(super) struct Sink<W: Write> {
    out: W,
    /// Each column's type, from the schema's field of that name (strings when unknown).
    types: Vec<FieldType>,
    file: Option<SerializedFileWriter<Vec<u8>>>,
    columns: Vec<Column>,
    rows: usize,
    bytes: usize,
}

impl<W: Write> Sink<W> {
    pub(super) fn new(out: W, columns: &[String]) -> Self {
        Sink { out, types: vec![FieldType::String; columns.len()], file: None, columns: Vec::new(), rows: 0, bytes: 0 }
    }

    /// Types the columns that the schema declares.
    pub(super) fn set_schema(&mut self, names: &[String], schema: &Schema) {
        self.types = names.iter().map(|n| schema.field(n).map_or(FieldType::String, |f| f.ty)).collect();
    }

    fn start(&mut self, names: &[String]) -> io::Result<()> {
        let fields = names
            .iter()
            .zip(&self.types)
            .map(|(name, ty)| {
                let (physical, logical) = match ty {
                    FieldType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                    FieldType::Int => (PhysicalType::INT32, None),
                    FieldType::Long => (PhysicalType::INT64, None),
                    FieldType::Float | FieldType::Double => (PhysicalType::DOUBLE, None),
                    FieldType::Boolean => (PhysicalType::BOOLEAN, None),
                };
                Type::primitive_type_builder(name, physical)
                    .with_repetition(Repetition::OPTIONAL)
                    .with_logical_type(logical)
                    .build()
                    .map(std::sync::Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        let schema = Type::group_type_builder("schema").with_fields(fields).build().map_err(io::Error::other)?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("interlog {}", env!("CARGO_PKG_VERSION")))
            .build();
        let file = SerializedFileWriter::new(Vec::new(), std::sync::Arc::new(schema), std::sync::Arc::new(props))
            .map_err(io::Error::other)?;
        self.file = Some(file);
        self.columns = self.types.iter().map(|t| Column::new(*t)).collect();
        Ok(())
    }

    /// One row, a cell per column in order.
    fn push_row<'c>(&mut self, names: &[String], cells: impl Iterator<Item = Cell<'c>>) -> io::Result<()> {
        if self.file.is_none() {
            self.start(names)?;
        }
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            self.bytes += column.push(cell);
        }
        self.rows += 1;
        if self.rows >= ROW_GROUP_ROWS || self.bytes >= ROW_GROUP_BYTES {
            self.flush_row_group()?;
        }
        Ok(())
    }

    /// Encodes the gathered rows as one row group and hands its bytes to the output.
    fn flush_row_group(&mut self) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        if self.rows > 0 {
            let mut group = file.next_row_group().map_err(io::Error::other)?;
            for column in &mut self.columns {
                let mut writer = group.next_column().map_err(io::Error::other)?.expect("one writer per column");
                column.write(&mut writer).map_err(io::Error::other)?;
                writer.close().map_err(io::Error::other)?;
            }
            group.close().map_err(io::Error::other)?;
            self.rows = 0;
            self.bytes = 0;
        }
        // The file writer counts offsets itself: draining its buffer keeps them right.
        let encoded = std::mem::take(file.inner_mut());
        self.out.write_all(&encoded)
    }

    /// Writes the last row group and the footer; returns the output.
    pub(super) fn finish(mut self, names: &[String]) -> io::Result<W> {
        if self.file.is_none() {
            self.start(names)?; // an empty dataset is still a valid file with its schema
        }
        self.flush_row_group()?;
        let file = self.file.take().expect("started");
        let rest = file.into_inner().map_err(io::Error::other)?;
        self.out.write_all(&rest)?;
        Ok(self.out)
    }
}

/// One cell before it meets its column's type.
pub(super) enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
    /// Text as a page holds it: bytes that are UTF-8 (the engines store what interlog wrote).
    Bytes(&'a [u8]),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl<'a> Cell<'a> {
    fn text(s: Option<&'a str>) -> Cell<'a> {
        match s {
            None | Some("") => Cell::Null,
            Some(s) => Cell::Str(Cow::Borrowed(s)),
        }
    }

    fn bytes(b: Option<&'a [u8]>) -> Cell<'a> {
        match b {
            None | Some(b"") => Cell::Null,
            Some(b) => Cell::Bytes(b),
        }
    }

    /// The cell's text, for a typed column that parses it.
    fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Str(s) => Some(s),
            Cell::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    fn owned(s: String) -> Cell<'a> {
        if s.is_empty() {
            Cell::Null
        } else {
            Cell::Str(Cow::Owned(s))
        }
    }

    fn meta(v: &'a MetaValue) -> Cell<'a> {
        match v {
            MetaValue::String(s) => Cell::text(Some(s)),
            MetaValue::Int(i) => Cell::Int(*i),
            MetaValue::Float(f) => Cell::Float(*f),
            MetaValue::Bool(b) => Cell::Bool(*b),
            MetaValue::Null => Cell::Null,
        }
    }

    /// A `properties` value as sent, when the schema check could not type it (as the CSV's
    /// raw cell).
    fn json(v: Option<&'a Value>) -> Cell<'a> {
        match v {
            None | Some(Value::Null) => Cell::Null,
            Some(Value::String(s)) => Cell::text(Some(s)),
            Some(Value::Bool(b)) => Cell::Bool(*b),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Cell::Int(i),
                None => n.as_f64().map_or(Cell::Null, Cell::Float),
            },
            Some(other) => Cell::owned(other.to_string()),
        }
    }
}

/// One column's values of the row group being filled.
struct Column {
    values: Values,
    /// 1 where the row has a value, 0 for null.
    defs: Vec<i16>,
}

enum Values {
    /// Every string of the row group in one buffer, with where each ends: one allocation
    /// instead of one per cell.
    Bytes {
        data: Vec<u8>,
        ends: Vec<usize>,
    },
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Double(Vec<f64>),
    Bool(Vec<bool>),
}

impl Column {
    fn new(ty: FieldType) -> Column {
        let values = match ty {
            FieldType::String => Values::Bytes { data: Vec::new(), ends: Vec::new() },
            FieldType::Int => Values::Int32(Vec::new()),
            FieldType::Long => Values::Int64(Vec::new()),
            FieldType::Float | FieldType::Double => Values::Double(Vec::new()),
            FieldType::Boolean => Values::Bool(Vec::new()),
        };
        Column { values, defs: Vec::with_capacity(ROW_GROUP_ROWS) }
    }

    /// Adds a cell converted to the column's type (a value that does not convert is null: stored
    /// records passed the schema, so this happens only for a column the schema does not type);
    /// returns the bytes it takes.
    fn push(&mut self, cell: Cell<'_>) -> usize {
        let present = match (&mut self.values, cell) {
            (_, Cell::Null) => false,
            (Values::Bytes { data, ends }, cell) => {
                match cell {
                    Cell::Str(s) => data.extend_from_slice(s.as_bytes()),
                    Cell::Bytes(b) => data.extend_from_slice(b),
                    Cell::Int(i) => data.extend_from_slice(i.to_string().as_bytes()),
                    Cell::Float(f) => data.extend_from_slice(f.to_string().as_bytes()),
                    Cell::Bool(b) => data.extend_from_slice(if b { b"true" } else { b"false" }),
                    Cell::Null => unreachable!("matched above"),
                }
                ends.push(data.len());
                true
            }
            (Values::Int32(v), cell) => match as_i64(&cell).and_then(|i| i32::try_from(i).ok()) {
                Some(i) => {
                    v.push(i);
                    true
                }
                None => false,
            },
            (Values::Int64(v), cell) => match as_i64(&cell) {
                Some(i) => {
                    v.push(i);
                    true
                }
                None => false,
            },
            (Values::Double(v), cell) => match cell {
                Cell::Float(f) => {
                    v.push(f);
                    true
                }
                Cell::Int(i) => {
                    v.push(i as f64);
                    true
                }
                Cell::Str(_) | Cell::Bytes(_) => match cell.as_str().map(str::parse::<f64>) {
                    Some(Ok(f)) if f.is_finite() => {
                        v.push(f);
                        true
                    }
                    _ => false,
                },
                _ => false,
            },
            (Values::Bool(v), cell) => match cell {
                Cell::Bool(b) => {
                    v.push(b);
                    true
                }
                Cell::Str(_) | Cell::Bytes(_) if matches!(cell.as_str(), Some("true" | "false")) => {
                    v.push(cell.as_str() == Some("true"));
                    true
                }
                _ => false,
            },
        };
        self.defs.push(i16::from(present));
        match &self.values {
            Values::Bytes { .. } => 2 + if present { 16 } else { 0 },
            _ => 10,
        }
    }

    /// Hands the gathered values to the column's writer and empties the buffers.
    fn write(&mut self, writer: &mut parquet::file::writer::SerializedColumnWriter<'_>) -> parquet::errors::Result<()> {
        let defs = std::mem::take(&mut self.defs);
        let defs = Some(defs.as_slice());
        match &mut self.values {
            Values::Bytes { data, ends } => {
                let data = Bytes::from(std::mem::take(data));
                let mut start = 0;
                let values: Vec<ByteArray> = std::mem::take(ends)
                    .into_iter()
                    .map(|end| {
                        let v = ByteArray::from(data.slice(start..end));
                        start = end;
                        v
                    })
                    .collect();
                writer.typed::<ByteArrayType>().write_batch(&values, defs, None)?;
            }
            Values::Int32(v) => {
                writer.typed::<Int32Type>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::Int64(v) => {
                writer.typed::<Int64Type>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::Double(v) => {
                writer.typed::<DoubleType>().write_batch(v, defs, None)?;
                v.clear();
            }
            Values::Bool(v) => {
                writer.typed::<BoolType>().write_batch(v, defs, None)?;
                v.clear();
            }
        }
        Ok(())
    }
}

fn as_i64(cell: &Cell<'_>) -> Option<i64> {
    match cell {
        Cell::Int(i) => Some(*i),
        Cell::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
        Cell::Str(_) | Cell::Bytes(_) => cell.as_str()?.parse().ok(),
        _ => None,
    }
}

/// A stored event's or record's `properties` decoded, and its typed metadata when the schema
/// reads it (as the CSV takes it).
fn properties<W: Write>(w: &ExportWriter<W>, text: Option<&[u8]>) -> (Option<Map<String, Value>>, Option<Metadata>) {
    let props = text.and_then(|p| match serde_json::from_slice(p) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    });
    let typed = match (&w.schema, &props) {
        (Some(schema), Some(map)) => {
            schema.check(&"properties", &Props::from_map(map), LENIENT).ok().map(|c| c.metadata)
        }
        _ => None,
    };
    (props, typed)
}

/// The cell of a column no member fills: typed metadata, else the property as sent.
fn property<'a>(column: &str, props: Option<&'a Map<String, Value>>, typed: Option<&'a Metadata>) -> Cell<'a> {
    if let Some((_, v)) = typed.and_then(|t| t.iter().find(|(c, _)| c == column)) {
        return Cell::meta(v);
    }
    let wanted = interlog_model::put_events::normalize_key(column);
    Cell::json(
        props
            .and_then(|m| m.iter().find(|(k, _)| interlog_model::put_events::normalize_key(k) == wanted))
            .map(|(_, v)| v),
    )
}

impl<W: Write> ExportWriter<W> {
    /// One event of an Interactions or Action_Interactions dataset as a Parquet row.
    pub(super) fn parquet_event(&mut self, event: &StoredEvent) -> io::Result<()> {
        if self.dataset_type == interlog_model::schema::DatasetType::ActionInteractions {
            let a = action_interaction(&event.interaction);
            let (props, typed) = properties(self, a.properties.as_deref().map(str::as_bytes));
            let sink = self.parquet.as_mut().expect("parquet sink");
            let cells = self.columns.iter().map(|c| match a.member_cell(c) {
                Some(v) if c == "TIMESTAMP" => v.parse().map_or(Cell::Null, Cell::Int),
                Some(v) => Cell::owned(v),
                None => property(c, props.as_ref(), typed.as_ref()),
            });
            return sink.push_row(&self.columns, cells);
        }
        let page = EventPage::from_events(std::slice::from_ref(event), PageColumns::ALL);
        let row = page.iter().next().expect("a page of one event");
        self.parquet_row(&row)
    }

    /// One event of an Interactions dataset from a page as a Parquet row.
    pub(super) fn parquet_row(&mut self, row: &EventRef<'_>) -> io::Result<()> {
        let needs_properties = *self.needs_properties.get_or_insert_with(|| {
            self.members.iter().zip(&self.columns).any(|(m, c)| *m == Member::Other || self.property_fields.contains(c))
        });
        let (props, typed) = if needs_properties { properties(self, row.text(Text::Properties)) } else { (None, None) };
        let impression = &mut self.cell;
        impression.clear();
        let has_impression = self.members.contains(&Member::Impression) && row.impression_joined(impression);
        let impression = has_impression.then_some(&impression[..]);
        let n = row.numbers();
        let sink = self.parquet.as_mut().expect("parquet sink");
        let cells = self.members.iter().zip(&self.columns).map(|(member, c)| match member {
            Member::Timestamp => Cell::Int(n.sent_at.floor() as i64),
            Member::EventValue => n.event_value.map_or(Cell::Null, Cell::Float),
            Member::Impression => Cell::bytes(impression),
            Member::Other => property(c, props.as_ref(), typed.as_ref()),
            text => Cell::bytes(text.text().and_then(|t| row.text(t))),
        });
        sink.push_row(&self.columns, cells)
    }

    /// One record of an Items, Users or Actions dataset as a Parquet row.
    pub(super) fn parquet_record(&mut self, stored: &StoredRecord) -> io::Result<()> {
        let kind = RecordKind::of_dataset_type(self.dataset_type).unwrap_or(RecordKind::Item);
        let r = &stored.record;
        let (props, typed) = properties(self, r.properties.as_deref().map(str::as_bytes));
        let sink = self.parquet.as_mut().expect("parquet sink");
        let cells = self.columns.iter().map(|c| match r.member_cell(kind, c) {
            Some(v) => Cell::owned(v),
            None => property(c, props.as_ref(), typed.as_ref()),
        });
        sink.push_row(&self.columns, cells)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::*;
    use interlog_model::Interaction;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn event(n: usize) -> StoredEvent {
        StoredEvent {
            seq: n as i64,
            received_at: 1.5,
            bulk: false,
            interaction: Interaction {
                event_id: format!("e{n}"),
                session_id: "s".into(),
                user_id: n.is_multiple_of(2).then(|| format!("u{n}")),
                item_id: Some("i".into()),
                event_type: "click".into(),
                event_value: Some(n as f64 + 0.25),
                sent_at: 1_700_000_000.9,
                properties: Some(format!(r#"{{"numberOfRatings": {n}, "genre": "a|b"}}"#)),
                recommendation_id: None,
                impression: None,
                event_attribution_source: None,
                flags: vec![],
            },
        }
    }

    const SCHEMA: &str = r#"{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [{"name": "USER_ID", "type": ["null", "string"]}, {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_VALUE", "type": "float"},
        {"name": "NUMBER_OF_RATINGS", "type": ["null", "int"]}, {"name": "GENRE", "type": "string", "categorical": true}],
        "version": "1.0"}"#;

    /// Typed columns, nulls where the CSV is empty, and more rows than one row group holds.
    #[test]
    fn rows_read_back_typed_across_row_groups() {
        let schema = interlog_model::schema::parse_schema(SCHEMA).unwrap();
        let columns: Vec<String> = schema.field_names().iter().map(|s| s.to_string()).collect();
        let mut w = ExportWriter::new(Format::Parquet, columns, Vec::new()).unwrap().with_schema(Some(schema));
        let n = ROW_GROUP_ROWS + 10;
        for i in 0..n {
            w.write(&event(i)).unwrap();
        }
        let file = Bytes::from(w.finish().unwrap());
        let reader = SerializedFileReader::new(file).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 2);
        let rows: Vec<_> = reader.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), n);
        let cols: Vec<(String, Field)> = rows[3].get_column_iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(
            cols,
            vec![
                ("USER_ID".into(), Field::Null),
                ("ITEM_ID".into(), Field::Str("i".into())),
                ("TIMESTAMP".into(), Field::Long(1_700_000_000)),
                ("EVENT_VALUE".into(), Field::Double(3.25)),
                ("NUMBER_OF_RATINGS".into(), Field::Int(3)),
                ("GENRE".into(), Field::Str("a|b".into())),
            ]
        );
        assert_eq!(rows[n - 1].get_column_iter().nth(4).unwrap().1, &Field::Int((n - 1) as i32));
    }

    /// An empty export is a valid file with the schema's columns and no rows.
    #[test]
    fn an_empty_dataset_is_a_file_with_columns() {
        let schema = interlog_model::schema::parse_schema(SCHEMA).unwrap();
        let columns: Vec<String> = schema.field_names().iter().map(|s| s.to_string()).collect();
        let w = ExportWriter::new(Format::Parquet, columns, Vec::new()).unwrap().with_schema(Some(schema));
        let reader = SerializedFileReader::new(Bytes::from(w.finish().unwrap())).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
        assert_eq!(reader.metadata().file_metadata().schema_descr().num_columns(), 6);
    }
}
