//! A record's `properties` checked against its dataset's schema (§7.5, §7.6): keys to columns, values to typed cells.
//!
//! `properties` arrives as a JSON object (the Put* parsers decode the double encoding). Each key names a schema
//! column in camelCase (`numberOfRatings` ↔ `NUMBER_OF_RATINGS`); this module maps keys to columns, coerces the
//! values to the columns' Avro types and reports every mismatch as a Coral-style [`Violation`] on the
//! `properties` member. A key the schema does not declare is kept and the record flagged ([`Flag`]), as AWS
//! accepts such keys (docs/api.md); strict rules refuse it instead. Property values are sensitive in the model,
//! so messages name keys, never values.
//!
//! The check runs for every record of every Put* request, so what depends only on the schema is done once:
//! [`CompiledSchema`] holds the normalized column index, which fields are required and the messages of
//! undeclared keys, and the catalog cache keeps one per dataset, rebuilt when the catalog changes. A record's
//! `properties` text is read once into [`Props`] (keys and scalar values, borrowed from the text where it has no
//! escapes), which the Put* parsers' own rules and this check share.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::num::IntErrorKind;
use std::sync::RwLock;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::flag::{Code, Flag, FlagKind};
use crate::schema::{is_avro_name, Field, FieldType, Schema};
use crate::validation::Violation;
use crate::wire::normalize_key;

/// Categorical values, `|` separators included (§7.4).
pub const MAX_CATEGORICAL_CHARS: usize = 1000;
/// Textual (free-text Items) values (§6.2).
pub const MAX_TEXTUAL_CHARS: usize = 20_000;
/// Strict mode's messages list at most this many accepted fields, so a 100-field Items schema stays readable.
const MAX_LISTED_FIELDS: usize = 20;
/// Undeclared keys whose flag message a compiled schema keeps; keys are the client's, so the cache is bounded.
const MAX_CACHED_MESSAGES: usize = 256;

/// One typed cell of a metadata column.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    String(String),
    /// `int` and `long` columns (an `int` value is range-checked to 32 bits).
    Int(i64),
    /// `float` and `double` columns; always finite.
    Float(f64),
    Bool(bool),
    /// A nullable column without a value.
    Null,
}

impl MetaValue {
    /// The cell as an export CSV writes it, before CSV quoting (the writer's job): `true`/`false`, integers as-is,
    /// floats in their shortest round-trip form (`4.5`, `4`), strings raw, null as an empty cell (§8).
    pub fn to_csv_cell(&self) -> String {
        match self {
            MetaValue::String(s) => s.clone(),
            MetaValue::Int(i) => i.to_string(),
            // Rust's float Display is the shortest string that parses back to the same value.
            MetaValue::Float(f) => f.to_string(),
            MetaValue::Bool(b) => b.to_string(),
            MetaValue::Null => String::new(),
        }
    }
}

/// The typed metadata of one record: every `properties`-filled column of the schema, in schema order.
pub type Metadata = Vec<(String, MetaValue)>;

/// What happens to a `properties` key that matches no field of the schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UndeclaredKeys {
    /// Keep the record (its `properties` text is stored verbatim) and flag it with the reason the key will not
    /// reach a model: AWS answers 200 to such keys, and refusing them would drop the good records of the same
    /// request with them.
    #[default]
    Flag,
    /// Refuse the record (`--strict-properties`), for teams whose CI should fail on them.
    Refuse,
    /// Neither flag nor refuse: reading back records that were already accepted.
    Ignore,
}

/// How strict the mapping is where the documentation is silent (§7.5, §7.6, §10.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PropertyRules {
    pub undeclared_keys: UndeclaredKeys,
    /// Record a missing non-nullable column as null instead of refusing the record.
    pub allow_missing_required: bool,
}

/// What a record's `properties` came to: its typed metadata and the flags it carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checked {
    pub metadata: Metadata,
    /// One [`FlagKind::UndeclaredProperty`] per key that matches no field (with [`UndeclaredKeys::Flag`]).
    pub flags: Vec<Flag>,
}

// ---------------------------------------------------------------------------------------------------------------
// Properties read once
// ---------------------------------------------------------------------------------------------------------------

/// One `properties` value as the rules read it: scalars whole, arrays and objects only by kind (no rule looks
/// inside them, and messages never show values).
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array,
    Object,
}

impl PropValue<'_> {
    /// "a string", "an array"...: what kind of value was sent, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            PropValue::Null => "null",
            PropValue::Bool(_) => "a boolean",
            PropValue::Number(_) => "a number",
            PropValue::String(_) => "a string",
            PropValue::Array => "an array",
            PropValue::Object => "an object",
        }
    }

    fn into_owned(self) -> PropValue<'static> {
        match self {
            PropValue::Null => PropValue::Null,
            PropValue::Bool(b) => PropValue::Bool(b),
            PropValue::Number(n) => PropValue::Number(n),
            PropValue::String(s) => PropValue::String(Cow::Owned(s.into_owned())),
            PropValue::Array => PropValue::Array,
            PropValue::Object => PropValue::Object,
        }
    }

    fn from_value(v: &Value) -> PropValue<'_> {
        match v {
            Value::Null => PropValue::Null,
            Value::Bool(b) => PropValue::Bool(*b),
            Value::Number(n) => PropValue::Number(n.clone()),
            Value::String(s) => PropValue::String(Cow::Borrowed(s)),
            Value::Array(_) => PropValue::Array,
            Value::Object(_) => PropValue::Object,
        }
    }
}

/// A `properties` JSON object read once: its keys in key order, each once (the last of repeated keys wins, as in
/// a JSON map), so every rule and message is the same whatever order a client sent them in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Props<'a> {
    entries: Vec<(Cow<'a, str>, PropValue<'a>)>,
}

impl<'a> Props<'a> {
    /// The object a `properties` text holds; `None` when the text is not one JSON object (the parsers say why).
    pub fn parse(text: &'a str) -> Option<Props<'a>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let props = (&mut de).deserialize_map(PropsVisitor).ok()?;
        de.end().ok()?;
        Some(props)
    }

    /// An already decoded object (tests, and callers that hold a `serde_json` map).
    pub fn from_map(map: &'a Map<String, Value>) -> Props<'a> {
        let mut entries: Vec<_> =
            map.iter().map(|(k, v)| (Cow::Borrowed(k.as_str()), PropValue::from_value(v))).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Props { entries }
    }

    /// An owned copy of a decoded object.
    pub fn owned(map: Map<String, Value>) -> Props<'static> {
        let mut entries: Vec<_> = map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => PropValue::String(Cow::Owned(s)),
                    other => PropValue::from_value(&other).into_owned(),
                };
                (Cow::<'static, str>::Owned(k), v)
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Props { entries }
    }

    /// Keys and values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PropValue<'a>)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A key or string value, borrowed from the text when it holds no escape.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

struct PropsVisitor;

impl<'de> Visitor<'de> for PropsVisitor {
    type Value = Props<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Props<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, PropValue<'de>)> = Vec::with_capacity(map.size_hint().unwrap_or(4));
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            entries.push((key, map.next_value::<PropValueSeed<'de>>()?.0));
        }
        // Byte order of the keys, the order of a JSON map without `preserve_order`; stable, so of
        // repeated keys the one sent last is last, and it wins, as in a JSON map.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            same
        });
        Ok(Props { entries })
    }
}

struct PropValueSeed<'a>(PropValue<'a>);

impl<'de> de::Deserialize<'de> for PropValueSeed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PropValueSeed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::Null))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::Bool(b)))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::Number(n.into())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::Number(n.into())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                // JSON has no non-finite numbers, so this is never null (as in a `serde_json::Value`).
                Ok(PropValueSeed(Number::from_f64(n).map_or(PropValue::Null, PropValue::Number)))
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::String(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::String(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(PropValueSeed(PropValue::String(Cow::Owned(s))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PropValueSeed(PropValue::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PropValueSeed(PropValue::Object))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The schema, compiled once
// ---------------------------------------------------------------------------------------------------------------

/// Where a normalized `properties` key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A column a request member fills (`userId`, `itemId`... per dataset type, and `sessionId`): the Put*
    /// parsers reject or consume such keys (forbidden keys, legacy `itemId` / `eventValue`).
    Member,
    /// The `n`th metadata column.
    Column(usize),
}

/// What the check needs of one schema, worked out once (the catalog cache keeps one per dataset): its metadata
/// columns in schema order, every normalized spelling a key may take to reach one, whether any is required, the
/// field listing of strict mode's messages, and the flag message of each undeclared key seen so far.
#[derive(Debug)]
pub struct CompiledSchema {
    /// The schema's name in the catalog, which flags and refusals name.
    name: String,
    columns: Vec<Field>,
    /// Normalized key (lower case, no `_`) → slot.
    index: HashMap<String, Slot>,
    requires_metadata: bool,
    listing: String,
    /// Undeclared key → its flag; at most [`MAX_CACHED_MESSAGES`] keys.
    messages: RwLock<HashMap<String, Flag>>,
}

impl CompiledSchema {
    /// `name` is the schema's name in the catalog (`default-interactions`).
    pub fn new(schema: &Schema, name: &str) -> CompiledSchema {
        let columns: Vec<Field> = schema.property_fields().cloned().collect();
        let mut index = HashMap::new();
        index.insert(normalize_key("sessionId"), Slot::Member);
        for c in schema.dataset_type.member_columns() {
            index.insert(normalize_key(c), Slot::Member);
        }
        for (i, f) in columns.iter().enumerate() {
            // The first column of a spelling wins, as a search in schema order finds it (parse_schema refuses
            // colliding names anyway).
            index.entry(normalize_key(&f.name)).or_insert(Slot::Column(i));
        }
        let refs: Vec<&Field> = columns.iter().collect();
        CompiledSchema {
            name: name.to_owned(),
            requires_metadata: columns.iter().any(|f| !f.nullable),
            listing: field_listing(&refs),
            columns,
            index,
            messages: RwLock::new(HashMap::new()),
        }
    }

    /// The schema's name in the catalog.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when some metadata field is not nullable: then a record without `properties` is refused too, and
    /// otherwise such a record needs no check at all.
    pub fn requires_metadata(&self) -> bool {
        self.requires_metadata
    }

    fn slot(&self, key: &str) -> Option<Slot> {
        // Nearly every key is short ASCII: normalized on the stack, with no allocation.
        let bytes = key.as_bytes();
        if key.is_ascii() && bytes.len() <= 64 {
            let mut buf = [0u8; 64];
            let mut n = 0;
            for b in bytes.iter().filter(|b| **b != b'_') {
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            }
            let normalized = std::str::from_utf8(&buf[..n]).expect("ASCII");
            return self.index.get(normalized).copied();
        }
        self.index.get(&normalize_key(key)).copied()
    }

    /// Checks one record's `properties` text as a Put* handler does: `None` (no `properties`) is an empty object,
    /// so a schema with required metadata still refuses the record. A text that is not an object counts as empty
    /// (the Put* parsers already refused it).
    pub fn check_text(
        &self,
        path: &dyn fmt::Display,
        properties: Option<&str>,
        rules: PropertyRules,
    ) -> Result<Checked, Vec<Violation>> {
        let props = properties.and_then(Props::parse).unwrap_or_default();
        self.check(path, &props, rules)
    }

    /// Maps `properties` onto the schema's metadata columns and coerces each value (§7.5, §7.6).
    ///
    /// - Keys match columns case-insensitively with `_` ignored, so `numberOfRatings`, `NUMBER_OF_RATINGS` and
    ///   `number_of_ratings` all set `NUMBER_OF_RATINGS`.
    /// - Keys naming columns that request members fill (`userId`, `itemId`, `eventValue`... per dataset type, and
    ///   `sessionId`) are skipped: the Put* parsers reject or consume them (forbidden keys, legacy `itemId` /
    ///   `eventValue`).
    /// - **Required metadata must be present**: a column whose type is not a union with `null` must be set by
    ///   every record, because the dataset cannot represent its absence. Callers pass empty properties when the
    ///   request has none, so such records are refused too. (`rules.allow_missing_required` relaxes this.)
    /// - A key matching no column is flagged, refused or ignored as `rules.undeclared_keys` says; the message
    ///   names the schema and the field to declare.
    ///
    /// `path` is the member in Coral notation, e.g. `eventList.1.member.properties`; it is rendered only into
    /// violations, so the common case formats nothing.
    pub fn check(
        &self,
        path: &dyn fmt::Display,
        props: &Props<'_>,
        rules: PropertyRules,
    ) -> Result<Checked, Vec<Violation>> {
        let columns = &self.columns;
        let mut violations = Vec::new();
        let mut flags = Vec::new();
        let mut rule = |text: String| violations.push(Violation::new(path.to_string(), None, text));
        // Per column: the key that named it, and its value once coerced. A key whose value was refused still
        // counts as naming the column, so the column is not reported missing as well. Most schemas of events have
        // no metadata column at all, and then nothing is allocated here.
        let mut keys: Vec<Option<&str>> = vec![None; columns.len()];
        let mut cells: Vec<Option<MetaValue>> = vec![None; columns.len()];

        // Keys come in key order, so flags and messages are the same whatever order the client sent them in.
        let mut undeclared: Vec<&str> = Vec::new();
        for (key, value) in props.iter() {
            let i = match self.slot(key) {
                Some(Slot::Member) => continue,
                Some(Slot::Column(i)) => i,
                None => {
                    if rules.undeclared_keys != UndeclaredKeys::Ignore {
                        undeclared.push(key);
                    }
                    continue;
                }
            };
            let field = &columns[i];
            if let Some(first) = keys[i] {
                // Sorted, so the message is the same whichever the client sent first.
                let (a, b) = if first <= key { (first, key) } else { (key, first) };
                rule(format!("properties keys '{a}' and '{b}' both set field {}; send only one of them", field.name));
                continue;
            }
            keys[i] = Some(key);
            match coerce(field, value) {
                Ok(v) => cells[i] = Some(v),
                Err(why) => rule(format!("properties key '{key}' (field {}, {}) {why}", field.name, field.type_json())),
            }
        }
        // After the values' refusals, in key order.
        for key in undeclared {
            match rules.undeclared_keys {
                UndeclaredKeys::Flag => flags.push(self.undeclared_flag(key)),
                UndeclaredKeys::Refuse => rule(undeclared_message(key, &self.name, Some(&self.listing))),
                UndeclaredKeys::Ignore => {}
            }
        }

        let mut metadata = Vec::with_capacity(columns.len());
        for ((field, key), cell) in columns.iter().zip(keys).zip(cells) {
            match cell {
                Some(v) => metadata.push((field.name.clone(), v)),
                None if key.is_some() => {}
                None if field.nullable || rules.allow_missing_required => {
                    metadata.push((field.name.clone(), MetaValue::Null))
                }
                None => rule(format!(
                    "properties must contain '{}': field {} has type {} (not a union with \"null\"), so every record \
                     must set it",
                    field.camel_name(),
                    field.name,
                    field.type_json()
                )),
            }
        }
        if violations.is_empty() {
            Ok(Checked { metadata, flags })
        } else {
            Err(violations)
        }
    }

    /// The flag of an undeclared key, built once per key and schema; each event gets the shared message.
    fn undeclared_flag(&self, key: &str) -> Flag {
        if let Some(f) = self.messages.read().expect("message cache poisoned").get(key) {
            return f.clone();
        }
        let f = Flag::coded(
            FlagKind::UndeclaredProperty,
            undeclared_message(key, &self.name, None),
            Code::undeclared(&self.name, key),
        );
        let mut cache = self.messages.write().expect("message cache poisoned");
        if cache.len() < MAX_CACHED_MESSAGES {
            cache.insert(key.to_owned(), f.clone());
        }
        f
    }
}

/// Checks one record's `properties` text against a schema compiled for this call; [`CompiledSchema::check_text`]
/// is the same with the schema compiled once.
pub fn check_record_properties(
    schema: &Schema,
    schema_name: &str,
    path: &dyn fmt::Display,
    properties: Option<&str>,
    rules: PropertyRules,
) -> Result<Checked, Vec<Violation>> {
    CompiledSchema::new(schema, schema_name).check_text(path, properties, rules)
}

/// [`CompiledSchema::check`] of an already decoded map, against a schema compiled for this call.
pub fn check_properties(
    schema: &Schema,
    schema_name: &str,
    path: &dyn fmt::Display,
    props: &Map<String, Value>,
    rules: PropertyRules,
) -> Result<Checked, Vec<Violation>> {
    CompiledSchema::new(schema, schema_name).check(path, &Props::from_map(props), rules)
}

/// Why an undeclared key never reaches a model, and the field that would take it. With `fields` (strict mode) the
/// schema's metadata fields are listed too, for the misspelt key.
pub(crate) fn undeclared_message(key: &str, schema_name: &str, fields: Option<&str>) -> String {
    // Built by hand rather than with format!: flagging runs for every undeclared key of every record.
    let mut m = String::with_capacity(key.len() * 3 + schema_name.len() + 96);
    m.push_str("properties key '");
    m.push_str(key);
    m.push_str("' matches no field of schema ");
    m.push_str(schema_name);
    if let Some(f) = fields {
        m.push_str(" (");
        m.push_str(f);
        m.push(')');
    }
    match field_name_for(key) {
        Some(field) => {
            m.push_str("; declare ");
            m.push_str(&field);
            m.push_str(" (camelCase ");
            push_camel(&mut m, &field);
            m.push_str(") to use it");
        }
        None => m.push_str(
            "; no field can be named for it (field names are letters, digits and '_', not starting with a digit), \
             so it never reaches a model",
        ),
    }
    m
}

/// [`camel_case`](crate::schema::camel_case) of an ASCII field name, appended without allocating.
fn push_camel(out: &mut String, field: &str) {
    let mut first_part = true;
    for part in field.split('_').filter(|p| !p.is_empty()) {
        for (i, c) in part.chars().enumerate() {
            out.push(if i == 0 && !first_part { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() });
        }
        first_part = false;
    }
}

/// The schema field a key would name: `numberOfRatings` → `NUMBER_OF_RATINGS`, `genreL2` → `GENRE_L2`; `None` when
/// no valid Avro name comes out (`my-key`, `1st`, `café`).
fn field_name_for(key: &str) -> Option<String> {
    let mut out = String::with_capacity(key.len() + 4);
    let mut after_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push('_');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    is_avro_name(&out).then_some(out)
}

fn field_listing(columns: &[&Field]) -> String {
    if columns.is_empty() {
        return "it has no metadata fields".to_owned();
    }
    let mut listed: Vec<String> =
        columns.iter().take(MAX_LISTED_FIELDS).map(|f| format!("{} ({})", f.name, f.camel_name())).collect();
    if columns.len() > MAX_LISTED_FIELDS {
        listed.push(format!("and {} more", columns.len() - MAX_LISTED_FIELDS));
    }
    format!("its metadata fields are {}", listed.join(", "))
}

/// Coerces one value to the column's type (§7.6). The error completes "properties key 'k' (field F, type) ...".
fn coerce(field: &Field, value: &PropValue<'_>) -> Result<MetaValue, String> {
    if *value == PropValue::Null {
        return if field.nullable {
            Ok(MetaValue::Null)
        } else {
            Err("must not be null: the field is not a union with \"null\"".to_owned())
        };
    }
    match field.ty {
        FieldType::String => {
            let s = match value {
                PropValue::String(s) => s.as_ref().to_owned(),
                // Clients often send numbers and booleans for string columns (`{"numRatings": 13}`); their JSON
                // text is the obvious string.
                PropValue::Number(n) => n.to_string(),
                PropValue::Bool(b) => b.to_string(),
                other => return Err(format!("must be a string, not {}", other.kind())),
            };
            let n = s.chars().count();
            if field.categorical && n > MAX_CATEGORICAL_CHARS {
                return Err(format!(
                    "is categorical and has {n} characters; categorical values may have at most \
                     {MAX_CATEGORICAL_CHARS}, '|' separators included"
                ));
            }
            if field.textual && n > MAX_TEXTUAL_CHARS {
                return Err(format!(
                    "is textual and has {n} characters; textual values may have at most {MAX_TEXTUAL_CHARS}"
                ));
            }
            Ok(MetaValue::String(s))
        }
        FieldType::Int | FieldType::Long => {
            let i = integer(value)?;
            if field.ty == FieldType::Int && i32::try_from(i).is_err() {
                return Err(format!("is out of range: an int must be between {} and {}", i32::MIN, i32::MAX));
            }
            Ok(MetaValue::Int(i))
        }
        FieldType::Float | FieldType::Double => {
            let f = match value {
                PropValue::Number(n) => n.as_f64(),
                PropValue::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match f {
                Some(f) if f.is_finite() => {
                    if field.ty == FieldType::Float && f.abs() > f64::from(f32::MAX) {
                        return Err(format!("is out of range: a float must be at most {:e} in magnitude", f32::MAX));
                    }
                    Ok(MetaValue::Float(f))
                }
                _ => {
                    Err(format!("must be a finite number or a numeric string such as \"4.5\", not {}", describe(value)))
                }
            }
        }
        FieldType::Boolean => match value {
            PropValue::Bool(b) => Ok(MetaValue::Bool(*b)),
            PropValue::String(s) if s == "true" => Ok(MetaValue::Bool(true)),
            PropValue::String(s) if s == "false" => Ok(MetaValue::Bool(false)),
            other => Err(format!(
                "must be true or false (a JSON boolean or the lower-case string \"true\" or \"false\"), not {}",
                match other {
                    PropValue::String(_) => "another string",
                    other => other.kind(),
                }
            )),
        },
    }
}

/// A JSON integer, an integral JSON number (`12.0`, as Python's json writes floats) or an integral numeric string.
fn integer(value: &PropValue<'_>) -> Result<i64, String> {
    // -2^63, exactly representable; 2^63 is its negation (and is itself out of range).
    const MIN_I64_F64: f64 = i64::MIN as f64;
    const OUT_OF_RANGE: &str = "is out of range: a long must be between -9223372036854775808 and 9223372036854775807";
    let from_f64 = |f: f64| -> Result<i64, String> {
        if !f.is_finite() {
            Err("must be an integer or an integral numeric string such as \"12\"".to_owned())
        } else if f.fract() != 0.0 {
            Err("must be an integer, not a number with a fraction".to_owned())
        } else if !(MIN_I64_F64..-MIN_I64_F64).contains(&f) {
            Err(OUT_OF_RANGE.to_owned())
        } else {
            // Integral and within range, so the conversion is exact.
            Ok(f as i64)
        }
    };
    match value {
        PropValue::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Ok(i),
            (None, Some(_), _) => Err(OUT_OF_RANGE.to_owned()),
            (None, None, Some(f)) => from_f64(f),
            (None, None, None) => Err("must be an integer".to_owned()),
        },
        PropValue::String(s) => {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => Ok(i),
                Err(e) if matches!(e.kind(), IntErrorKind::PosOverflow | IntErrorKind::NegOverflow) => {
                    Err(OUT_OF_RANGE.to_owned())
                }
                Err(_) => match s.parse::<f64>() {
                    Ok(f) => from_f64(f),
                    Err(_) => Err("must be an integer or an integral numeric string such as \"12\", not a \
                                   non-numeric string"
                        .to_owned()),
                },
            }
        }
        other => Err(format!("must be an integer or an integral numeric string such as \"12\", not {}", other.kind())),
    }
}

/// What kind of value was sent, without the value itself (properties are sensitive).
fn describe(v: &PropValue<'_>) -> &'static str {
    match v {
        PropValue::String(_) => "a non-numeric string",
        other => other.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{parse_schema, DEFAULT_INTERACTIONS_SCHEMA};

    const PATH: &str = "eventList.1.member.properties";

    /// Every column type, all nullable, so each case sets only the column it is about.
    fn items() -> Schema {
        parse_schema(
            r#"{"type":"record","name":"Items","fields":[{"name":"ITEM_ID","type":"string"},
            {"name":"NUMBER_OF_RATINGS","type":["null","int"]},{"name":"VIEWS","type":["null","long"]},
            {"name":"PRICE","type":["null","float"]},{"name":"SCORE","type":["null","double"]},
            {"name":"IS_NEW","type":["null","boolean"]},{"name":"GENRES","type":["null","string"],"categorical":true},
            {"name":"TITLE","type":["null","string"]},{"name":"DESCRIPTION","type":["null","string"],"textual":true}]}"#,
        )
        .unwrap()
    }

    fn users() -> Schema {
        parse_schema(
            r#"{"type":"record","name":"Users","fields":[{"name":"USER_ID","type":"string"},
            {"name":"AGE","type":"int"},{"name":"GENDER","type":["null","string"],"categorical":true}]}"#,
        )
        .unwrap()
    }

    fn obj(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json).unwrap() {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    const NAME: &str = "my-schema";

    /// The default rules (undeclared keys flagged), metadata only; flags must be empty.
    fn check(schema: &Schema, props: &Map<String, Value>) -> Result<Metadata, Vec<Violation>> {
        check_with(schema, props, PropertyRules::default())
    }

    fn check_with(
        schema: &Schema,
        props: &Map<String, Value>,
        rules: PropertyRules,
    ) -> Result<Metadata, Vec<Violation>> {
        check_properties(schema, NAME, &PATH, props, rules).map(|c| {
            assert_eq!(c.flags, vec![], "no flags expected");
            c.metadata
        })
    }

    const STRICT: PropertyRules =
        PropertyRules { undeclared_keys: UndeclaredKeys::Refuse, allow_missing_required: false };

    fn messages<T: fmt::Debug>(r: Result<T, Vec<Violation>>) -> Vec<String> {
        let list = r.expect_err("violations");
        assert!(list.iter().all(|v| v.path == PATH && v.value.is_none()), "{list:?}");
        list.into_iter().map(|v| v.rule).collect()
    }

    /// One value per coercion rule (§7.6): the column it lands in and its typed value.
    #[test]
    fn values_coerce_to_their_column_type() {
        let long_genres = "a|".repeat(500)[..1000].to_owned();
        let cases: Vec<(String, &str, MetaValue)> = vec![
            (r#"{"numberOfRatings": 12}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(12)),
            (r#"{"NUMBER_OF_RATINGS": "12"}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(12)),
            (r#"{"number_of_ratings": 12.0}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(12)),
            (r#"{"numberofratings": " -7 "}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(-7)),
            (r#"{"numberOfRatings": 2147483647}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(i64::from(i32::MAX))),
            (r#"{"numberOfRatings": -2147483648}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Int(i64::from(i32::MIN))),
            (r#"{"numberOfRatings": null}"#.into(), "NUMBER_OF_RATINGS", MetaValue::Null),
            (r#"{"views": 9223372036854775807}"#.into(), "VIEWS", MetaValue::Int(i64::MAX)),
            (r#"{"views": "-9223372036854775808"}"#.into(), "VIEWS", MetaValue::Int(i64::MIN)),
            (r#"{"views": "1e3"}"#.into(), "VIEWS", MetaValue::Int(1000)),
            (r#"{"price": 4.5}"#.into(), "PRICE", MetaValue::Float(4.5)),
            (r#"{"price": "4.5"}"#.into(), "PRICE", MetaValue::Float(4.5)),
            (r#"{"price": 4}"#.into(), "PRICE", MetaValue::Float(4.0)),
            (r#"{"score": 1e300}"#.into(), "SCORE", MetaValue::Float(1e300)),
            (r#"{"isNew": true}"#.into(), "IS_NEW", MetaValue::Bool(true)),
            (r#"{"isNew": "false"}"#.into(), "IS_NEW", MetaValue::Bool(false)),
            (r#"{"genres": "Horror|Action"}"#.into(), "GENRES", MetaValue::String("Horror|Action".into())),
            (format!(r#"{{"genres": "{long_genres}"}}"#), "GENRES", MetaValue::String(long_genres.clone())),
            (r#"{"genres": null}"#.into(), "GENRES", MetaValue::Null),
            (r#"{"title": "Dune"}"#.into(), "TITLE", MetaValue::String("Dune".into())),
            (r#"{"title": 13}"#.into(), "TITLE", MetaValue::String("13".into())),
            (r#"{"title": 4.5}"#.into(), "TITLE", MetaValue::String("4.5".into())),
            (r#"{"title": true}"#.into(), "TITLE", MetaValue::String("true".into())),
            (
                format!(r#"{{"description": "{}"}}"#, "x".repeat(1500)),
                "DESCRIPTION",
                MetaValue::String("x".repeat(1500)),
            ),
        ];
        let schema = items();
        for (json, column, want) in cases {
            let row = check(&schema, &obj(&json)).unwrap_or_else(|v| panic!("{json}: {v:?}"));
            let names: Vec<&str> = row.iter().map(|(c, _)| c.as_str()).collect();
            assert_eq!(
                names,
                ["NUMBER_OF_RATINGS", "VIEWS", "PRICE", "SCORE", "IS_NEW", "GENRES", "TITLE", "DESCRIPTION"],
                "every property column, in schema order"
            );
            for (c, v) in &row {
                let expected = if c == column { &want } else { &MetaValue::Null };
                assert_eq!(v, expected, "{json}: column {c}");
            }
        }
    }

    /// One value per refusal: the message names the key, the field and the rule.
    #[test]
    fn bad_values_are_refused_naming_the_key() {
        let cases: Vec<(String, &[&str])> = vec![
            (r#"{"numberOfRatings": 2147483648}"#.into(), &["properties key 'numberOfRatings' (field NUMBER_OF_RATINGS, [\"null\", \"int\"]) is out of range: an int must be between -2147483648 and 2147483647"]),
            (r#"{"numberOfRatings": "-2147483649"}"#.into(), &["'numberOfRatings'", "out of range"]),
            (r#"{"numberOfRatings": 1.5}"#.into(), &["'numberOfRatings'", "must be an integer, not a number with a fraction"]),
            (r#"{"numberOfRatings": "1.5"}"#.into(), &["'numberOfRatings'", "fraction"]),
            (r#"{"numberOfRatings": "twelve"}"#.into(), &["'numberOfRatings'", "not a non-numeric string"]),
            (r#"{"numberOfRatings": true}"#.into(), &["'numberOfRatings'", "not a boolean"]),
            (r#"{"numberOfRatings": [1]}"#.into(), &["'numberOfRatings'", "not an array"]),
            (r#"{"views": 9223372036854775808}"#.into(), &["'views' (field VIEWS", "a long must be between"]),
            (r#"{"views": "99999999999999999999"}"#.into(), &["'views'", "out of range"]),
            (r#"{"views": 1e19}"#.into(), &["'views'", "out of range"]),
            (r#"{"price": "cheap"}"#.into(), &["'price' (field PRICE", "finite number", "not a non-numeric string"]),
            (r#"{"price": "NaN"}"#.into(), &["'price'", "finite number"]),
            (r#"{"price": "inf"}"#.into(), &["'price'", "finite number"]),
            (r#"{"price": false}"#.into(), &["'price'", "not a boolean"]),
            (r#"{"price": 1e39}"#.into(), &["'price'", "a float must be at most"]),
            (r#"{"isNew": "True"}"#.into(), &["'isNew' (field IS_NEW", "must be true or false", "not another string"]),
            (r#"{"isNew": 1}"#.into(), &["'isNew'", "not a number"]),
            (r#"{"title": {"a": 1}}"#.into(), &["'title' (field TITLE", "must be a string, not an object"]),
            (format!(r#"{{"genres": "{}"}}"#, "g".repeat(1001)), &["'genres' (field GENRES", "categorical and has 1001 characters", "at most 1000, '|' separators included"]),
            (format!(r#"{{"description": "{}"}}"#, "d".repeat(20_001)), &["'description'", "textual and has 20001 characters"]),
            (r#"{"numberOfRatings": 1, "NUMBER_OF_RATINGS": 2}"#.into(), &["properties keys 'NUMBER_OF_RATINGS' and 'numberOfRatings' both set field NUMBER_OF_RATINGS"]),
        ];
        let schema = items();
        for (json, wanted) in cases {
            let got = messages(check(&schema, &obj(&json)));
            assert_eq!(got.len(), 1, "{json}: {got:?}");
            for w in wanted {
                assert!(got[0].contains(w), "{json}: {:?} lacks {w:?}", got[0]);
            }
        }
    }

    #[test]
    fn null_and_missing_follow_nullability() {
        let schema = users();
        let cases: Vec<(&str, PropertyRules, Result<Metadata, &str>)> = vec![
            (
                r#"{"age": 30}"#,
                PropertyRules::default(),
                Ok(vec![("AGE".into(), MetaValue::Int(30)), ("GENDER".into(), MetaValue::Null)]),
            ),
            (
                r#"{"AGE": "30", "gender": "f|student"}"#,
                PropertyRules::default(),
                Ok(vec![("AGE".into(), MetaValue::Int(30)), ("GENDER".into(), MetaValue::String("f|student".into()))]),
            ),
            (
                r#"{"gender": null}"#,
                PropertyRules::default(),
                Err("properties must contain 'age': field AGE has type \"int\" (not a union with \"null\"), so every record must set it"),
            ),
            ("{}", PropertyRules::default(), Err("properties must contain 'age'")),
            (r#"{"age": null}"#, PropertyRules::default(), Err("'age' (field AGE, \"int\") must not be null")),
            (
                "{}",
                PropertyRules { allow_missing_required: true, ..PropertyRules::default() },
                Ok(vec![("AGE".into(), MetaValue::Null), ("GENDER".into(), MetaValue::Null)]),
            ),
        ];
        for (json, rules, want) in cases {
            let got = check_with(&schema, &obj(json), rules);
            match want {
                Ok(row) => assert_eq!(got, Ok(row), "{json}"),
                Err(w) => {
                    let got = messages(got);
                    assert!(got.len() == 1 && got[0].contains(w), "{json}: {got:?} lacks {w:?}");
                }
            }
        }
    }

    fn canonical() -> Schema {
        parse_schema(
            r#"{"type":"record","name":"Interactions","fields":[{"name":"USER_ID","type":"string"},
            {"name":"ITEM_ID","type":"string"},{"name":"EVENT_TYPE","type":"string"},
            {"name":"LOCATION","type":"string","categorical":true},{"name":"DEVICE","type":["string","null"],"categorical":true},
            {"name":"TIMESTAMP","type":"long"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn keys_filled_from_request_members_are_not_metadata() {
        let default = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        // Legacy members and forbidden keys are the PutEvents parser's business: neither metadata nor flagged.
        let legacy = obj(r#"{"itemId": "choc", "eventValue": 4, "EVENT_ATTRIBUTION_SOURCE": "x", "sessionId": "s"}"#);
        assert_eq!(check_with(&default, &legacy, STRICT), Ok(vec![]));
        let located = obj(r#"{"location": "Ohio", "itemId": "i"}"#);
        assert_eq!(
            check(&canonical(), &located),
            Ok(vec![("LOCATION".into(), MetaValue::String("Ohio".into())), ("DEVICE".into(), MetaValue::Null)])
        );
    }

    /// Flags come in key order whatever order the map iterates in (serde_json's `preserve_order` feature, switched on
    /// by another crate of a build, keeps the request's order; a CI run's binary had it, a plain build not).
    #[test]
    fn flags_come_in_key_order_whatever_the_map_order() {
        let default = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        let mut props = Map::new();
        props.insert("zeta".into(), Value::from(1));
        props.insert("alpha".into(), Value::from(2));
        let c = check_properties(&default, NAME, &PATH, &props, PropertyRules::default()).expect("accepted");
        let keys: Vec<&str> = c.flags.iter().map(|f| f.message.split('\'').nth(1).unwrap()).collect();
        assert_eq!(keys, ["alpha", "zeta"]);
    }

    /// The rule of docs/api.md: an undeclared key is kept and flagged by default, refused in strict mode (naming the
    /// schema's fields, for the misspelt key), ignored when reading back.
    #[test]
    fn undeclared_keys_are_flagged_refused_or_ignored() {
        let default = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        let flagged = |schema: &Schema, json: &str| -> (Metadata, Vec<String>) {
            let c = check_properties(schema, NAME, &PATH, &obj(json), PropertyRules::default()).expect("accepted");
            assert!(c.flags.iter().all(|f| f.kind == FlagKind::UndeclaredProperty), "{:?}", c.flags);
            (c.metadata, c.flags.into_iter().map(|f| f.message.to_string()).collect())
        };
        // The documented example on the default schema.
        assert_eq!(
            flagged(&default, r#"{"numberOfRatings": "12"}"#),
            (
                vec![],
                vec!["properties key 'numberOfRatings' matches no field of schema my-schema; declare \
                           NUMBER_OF_RATINGS (camelCase numberOfRatings) to use it"
                    .to_owned()]
            )
        );
        assert_eq!(
            messages(check_properties(&default, NAME, &PATH, &obj(r#"{"numberOfRatings": "12"}"#), STRICT)),
            vec![
                "properties key 'numberOfRatings' matches no field of schema my-schema (it has no metadata fields); \
                  declare NUMBER_OF_RATINGS (camelCase numberOfRatings) to use it"
            ]
        );
        let ignore = PropertyRules { undeclared_keys: UndeclaredKeys::Ignore, ..PropertyRules::default() };
        assert_eq!(check_with(&default, &obj(r#"{"numberOfRatings": "12"}"#), ignore), Ok(vec![]));

        // Declared keys are still typed beside a flagged one; strict mode lists the fields.
        let (row, flags) = flagged(&canonical(), r#"{"location": "Ohio", "numRatingz": 3}"#);
        assert_eq!(
            row,
            vec![("LOCATION".into(), MetaValue::String("Ohio".into())), ("DEVICE".into(), MetaValue::Null)]
        );
        assert_eq!(flags, ["properties key 'numRatingz' matches no field of schema my-schema; declare NUM_RATINGZ (camelCase numRatingz) to use it"]);
        assert_eq!(
            messages(check_properties(
                &canonical(),
                NAME,
                &PATH,
                &obj(r#"{"location": "Ohio", "numRatingz": 3}"#),
                STRICT
            )),
            ["properties key 'numRatingz' matches no field of schema my-schema (its metadata fields are LOCATION \
              (location), DEVICE (device)); declare NUM_RATINGZ (camelCase numRatingz) to use it"]
        );
        // Member columns are per dataset type: an Items record has no user, so `userId` is undeclared there.
        assert_eq!(flagged(&items(), r#"{"userId": "u"}"#).1, ["properties key 'userId' matches no field of schema my-schema; declare USER_ID (camelCase userId) to use it"]);
        // One flag per key; every spelling names the field it would take.
        let (_, flags) =
            flagged(&default, r#"{"genreL2": 1, "NUMBER_OF_VIEWS": 2, "is_new": true, "iPhoneModel": "x"}"#);
        let mut named: Vec<&str> = flags.iter().map(|m| m.split("declare ").nth(1).unwrap()).collect();
        named.sort();
        assert_eq!(
            named,
            [
                "GENRE_L2 (camelCase genreL2) to use it",
                "IS_NEW (camelCase isNew) to use it",
                "I_PHONE_MODEL (camelCase iPhoneModel) to use it",
                "NUMBER_OF_VIEWS (camelCase numberOfViews) to use it",
            ]
        );
        // A key no Avro field name can match is kept and flagged all the same.
        for key in ["my-key", "1st", "café", "a b", ""] {
            let (_, flags) = flagged(&default, &serde_json::json!({ key: 1 }).to_string());
            assert_eq!(
                flags,
                [format!(
                    "properties key '{key}' matches no field of schema my-schema; no field can be named for it \
                          (field names are letters, digits and '_', not starting with a digit), so it never reaches a \
                          model"
                )],
                "{key:?}"
            );
        }
        // A flag never excuses a bad value of a declared field.
        let got = messages(check_properties(
            &users(),
            NAME,
            &PATH,
            &obj(r#"{"age": "old", "colour": "red"}"#),
            PropertyRules::default(),
        ));
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("properties key 'age' (field AGE, \"int\") must be an integer"), "{got:?}");
    }

    #[test]
    fn camel_spelling_matches_the_fields() {
        for name in ["NUMBER_OF_RATINGS", "GENRE_L2", "I_PHONE_MODEL", "A", "_X__Y_", "ALREADYONE"] {
            let mut out = String::new();
            push_camel(&mut out, name);
            assert_eq!(out, crate::schema::camel_case(name), "{name}");
        }
        for (a, b, same) in [
            ("numberOfRatings", "NUMBER_OF_RATINGS", true),
            ("n_o", "NO", true),
            ("no", "non", false),
            ("ÉTÉ", "été", true),
            ("été", "ete", false),
            ("", "_", true),
            ("a", "", false),
        ] {
            assert_eq!(crate::wire::same_key(a, b), same, "{a} {b}");
            assert_eq!(crate::wire::normalize_key(a) == crate::wire::normalize_key(b), same, "{a} {b}");
        }
    }

    #[test]
    fn record_properties_text_is_decoded_and_absence_is_an_empty_object() {
        let users = users();
        let rules = PropertyRules::default();
        let c = check_record_properties(&users, NAME, &PATH, Some(r#"{"age": 30, "x": 1}"#), rules).unwrap();
        assert_eq!(c.metadata[0], ("AGE".into(), MetaValue::Int(30)));
        assert_eq!(c.flags.len(), 1);
        let none = messages(check_record_properties(&users, NAME, &PATH, None, rules));
        assert!(none[0].starts_with("properties must contain 'age'"), "{none:?}");
    }

    #[test]
    fn every_violation_is_reported_and_reads_like_coral() {
        let got = check_properties(&users(), NAME, &PATH, &obj(r#"{"nope": 1, "gender": []}"#), STRICT).unwrap_err();
        assert_eq!(got.len(), 3, "{got:?}");
        let text = crate::ValidationError::Violations(got).to_string();
        assert!(
            text.starts_with(
                "3 validation errors detected: Value at 'eventList.1.member.properties' failed to satisfy constraint: "
            ),
            "{text}"
        );
    }

    #[test]
    fn cells_render_for_csv() {
        let cases = [
            (MetaValue::String("a|b".into()), "a|b"),
            (MetaValue::Int(-12), "-12"),
            (MetaValue::Int(i64::MAX), "9223372036854775807"),
            (MetaValue::Float(4.5), "4.5"),
            (MetaValue::Float(4.0), "4"),
            (MetaValue::Float(0.1), "0.1"),
            (MetaValue::Float(-0.25), "-0.25"),
            (MetaValue::Bool(true), "true"),
            (MetaValue::Bool(false), "false"),
            (MetaValue::Null, ""),
        ];
        for (value, cell) in cases {
            assert_eq!(value.to_csv_cell(), cell, "{value:?}");
        }
    }

    /// `properties` read once: keys in byte order whatever the order sent, the last of repeated keys winning (as a
    /// JSON map keeps it), values borrowed where the text has no escape; anything but one object is `None`.
    #[test]
    fn props_read_an_object_once_in_key_order() {
        let text = r#"{"zeta": 1, "alpha": "a", "zeta": [2], "m\u00e9": null, "n": {"x": 1}, "b": -1.5, "t": true}"#;
        let p = Props::parse(text).unwrap();
        let got: Vec<(&str, &PropValue<'_>)> = p.iter().collect();
        assert_eq!(
            got,
            [
                ("alpha", &PropValue::String(Cow::Borrowed("a"))),
                ("b", &PropValue::Number(Number::from_f64(-1.5).unwrap())),
                ("mé", &PropValue::Null),
                ("n", &PropValue::Object),
                ("t", &PropValue::Bool(true)),
                ("zeta", &PropValue::Array),
            ]
        );
        assert!(matches!(p.iter().next().unwrap().1, PropValue::String(Cow::Borrowed(_))), "no copy without escapes");
        // The same map as serde_json reads, value for value.
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(Props::from_map(&map), p);
        assert_eq!(Props::owned(map), p);
        for bad in ["[1]", "12", r#""{}""#, "{", r#"{"a": 1} x"#, "", r#"{"a": 1,}"#] {
            assert_eq!(Props::parse(bad), None, "{bad}");
        }
        assert!(Props::parse(" {} ").unwrap().is_empty());
    }

    /// The compiled schema answers as the schema does, keeps one message per undeclared key, and beyond its bound
    /// builds the same message afresh.
    #[test]
    fn a_compiled_schema_checks_as_the_schema_and_caches_messages() {
        let schema = items();
        let compiled = CompiledSchema::new(&schema, NAME);
        assert!(!compiled.requires_metadata());
        assert!(CompiledSchema::new(&users(), NAME).requires_metadata());
        assert_eq!(compiled.name(), NAME);
        for json in [
            r#"{"numberOfRatings": "12", "PRICE": 4, "genres": "a|b", "extra": 1, "Extra_Key": 2, "itemId": "x"}"#,
            r#"{"numberOfRatings": 1, "NUMBER_OF_RATINGS": 2}"#,
            r#"{"views": 1.5, "isNew": "True", "nope": 1}"#,
            "{}",
        ] {
            for rules in [PropertyRules::default(), STRICT] {
                let direct = check_properties(&schema, NAME, &PATH, &obj(json), rules);
                let once = compiled.check_text(&PATH, Some(json), rules);
                assert_eq!(once, direct, "{json}");
                assert_eq!(compiled.check_text(&PATH, Some(json), rules), direct, "{json}, again");
            }
        }
        let keys: Vec<String> = (0..MAX_CACHED_MESSAGES + 10).map(|i| format!("key{i}")).collect();
        for key in &keys {
            let f = compiled.undeclared_flag(key);
            assert_eq!(&*f.message, undeclared_message(key, NAME, None));
            assert_eq!(compiled.undeclared_flag(key), f);
            // Stored compactly, and read back as the same flag.
            let stored = crate::flag::encode_flags(std::slice::from_ref(&f)).unwrap();
            assert_eq!(stored, format!("U:{NAME}:{key}"));
            assert_eq!(crate::flag::decode_flags(Some(&stored)), [f]);
        }
        assert_eq!(compiled.messages.read().unwrap().len(), MAX_CACHED_MESSAGES);
        // A key longer than the stack buffer, and one that is not ASCII, still find their column.
        let long = format!("{}numberOfRatings", "_".repeat(80));
        let c = compiled.check_text(&PATH, Some(&serde_json::json!({ long: 3 }).to_string()), STRICT).unwrap();
        assert_eq!(c.metadata[0], ("NUMBER_OF_RATINGS".into(), MetaValue::Int(3)));
        let kelvin = compiled.check_text(&PATH, Some(r#"{"\u212aIEWS": 1}"#), STRICT);
        assert_eq!(kelvin, check_properties(&schema, NAME, &PATH, &obj(r#"{"\u212aIEWS": 1}"#), STRICT));
    }
}
