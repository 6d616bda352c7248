//! Avro schemas of Personalize datasets: parsing, CreateSchema validation (§7 of the spec) and the typed view the
//! event path and exports read.
//!
//! Validation has two layers. [`parse_schema`] checks what any Personalize schema must be (a flat Avro record of
//! supported primitive types with unique names); [`check_dataset_type`] checks what one dataset type (and domain)
//! requires on top (§7.3). CreateSchema runs both through [`validate_schema`], so a schema that no dataset could
//! ever use is refused when it is created rather than when data first arrives.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::put_events::normalize_key;
use crate::validation::{json_kind, ValidationError};

/// The default Interactions schema that interlog creates on first start.
pub const DEFAULT_INTERACTIONS_SCHEMA: &str = r#"{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}, {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "IMPRESSION", "type": ["null", "string"]}, {"name": "RECOMMENDATION_ID", "type": ["null", "string"]}, {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}], "version": "1.0"}"#;

/// The model's `AvroSchema` maximum, in characters.
pub const MAX_SCHEMA_CHARS: usize = 20_000;
/// Item interactions: metadata columns beyond the reserved ones (§6.2).
pub const MAX_INTERACTIONS_METADATA: usize = 5;
/// Users: metadata fields (§6.2, current quota; it was 5 before).
pub const MAX_USERS_METADATA: usize = 25;
/// Items: metadata fields (§6.2, current quota; it was 50 before).
pub const MAX_ITEMS_METADATA: usize = 100;
/// Items: fields with `"textual": true`.
pub const MAX_ITEMS_TEXTUAL: usize = 1;
/// Actions: columns in all, the ID included.
pub const MAX_ACTIONS_COLUMNS: usize = 10;

const ALLOWED_TYPES_DOC: &str = "string, int, long, float, double, boolean, optionally in a union with null";

// ---------------------------------------------------------------------------------------------------------------
// Dataset types and domains
// ---------------------------------------------------------------------------------------------------------------

/// The five kinds of dataset; a schema's `name` says which one it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DatasetType {
    Interactions,
    Items,
    Users,
    Actions,
    ActionInteractions,
}

impl DatasetType {
    pub const ALL: [DatasetType; 5] = [
        DatasetType::Interactions,
        DatasetType::Items,
        DatasetType::Users,
        DatasetType::Actions,
        DatasetType::ActionInteractions,
    ];

    /// The API's `datasetType` value: one of the documented five, case-insensitive (§4 CreateDataset).
    ///
    /// `ActionInteractions` (without the underscore) is refused here on purpose: it is the schema name, not a
    /// documented `datasetType`, and a client sending it would fail against AWS.
    pub fn from_api(value: &str) -> Option<DatasetType> {
        DatasetType::ALL.into_iter().find(|t| t.api_name().eq_ignore_ascii_case(value))
    }

    /// The dataset type a schema `name` denotes: compared case-insensitively with `_` removed (§7.1), so that
    /// `ActionInteractions` and `Action_Interactions` are the same type.
    pub fn from_schema_name(name: &str) -> Option<DatasetType> {
        let wanted = normalize_key(name);
        DatasetType::ALL.into_iter().find(|t| normalize_key(t.schema_name()) == wanted)
    }

    /// True when a schema called `name` may back a dataset of this type.
    pub fn matches_schema_name(self, name: &str) -> bool {
        DatasetType::from_schema_name(name) == Some(self)
    }

    /// The spelling the API uses (`datasetType` in requests and responses).
    pub fn api_name(self) -> &'static str {
        match self {
            DatasetType::Interactions => "Interactions",
            DatasetType::Items => "Items",
            DatasetType::Users => "Users",
            DatasetType::Actions => "Actions",
            DatasetType::ActionInteractions => "Action_Interactions",
        }
    }

    /// The spelling the documentation uses for a schema's `name`.
    pub fn schema_name(self) -> &'static str {
        match self {
            DatasetType::ActionInteractions => "ActionInteractions",
            other => other.api_name(),
        }
    }

    /// The upper-case segment that names a dataset of this type inside its group's ARN (§4.3).
    pub fn arn_segment(self) -> &'static str {
        match self {
            DatasetType::Interactions => "INTERACTIONS",
            DatasetType::Items => "ITEMS",
            DatasetType::Users => "USERS",
            DatasetType::Actions => "ACTIONS",
            DatasetType::ActionInteractions => "ACTION_INTERACTIONS",
        }
    }

    /// Columns whose values come from request members (`userId`, `itemId`, `sentAt`...), never from
    /// `properties` (§3.6, §7.5, §8). Every other column of a schema is filled from `properties`.
    pub fn member_columns(self) -> &'static [&'static str] {
        match self {
            DatasetType::Interactions => &[
                "USER_ID",
                "ITEM_ID",
                "TIMESTAMP",
                "EVENT_TYPE",
                "EVENT_VALUE",
                "IMPRESSION",
                "RECOMMENDATION_ID",
                "EVENT_ATTRIBUTION_SOURCE",
            ],
            DatasetType::Items => &["ITEM_ID"],
            DatasetType::Users => &["USER_ID"],
            DatasetType::Actions => &["ACTION_ID"],
            DatasetType::ActionInteractions => {
                &["USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE", "IMPRESSION", "RECOMMENDATION_ID"]
            }
        }
    }

    /// "an Interactions schema", "a Users schema": messages read naturally for every type.
    pub fn article(self) -> &'static str {
        match self {
            DatasetType::Users => "a",
            _ => "an",
        }
    }
}

impl fmt::Display for DatasetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

impl FromStr for DatasetType {
    type Err = String;

    /// Parses the API's `datasetType` (see [`DatasetType::from_api`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetType::from_api(s).ok_or_else(|| {
            format!("'{s}' is not a dataset type; use one of Interactions, Items, Users, Actions, Action_Interactions")
        })
    }
}

/// The domain of a Domain dataset group and of the schemas made for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    Ecommerce,
    VideoOnDemand,
}

impl Domain {
    /// The model's enum value; enums are case-sensitive on the wire, as in AWS.
    pub fn from_api(value: &str) -> Option<Domain> {
        match value {
            "ECOMMERCE" => Some(Domain::Ecommerce),
            "VIDEO_ON_DEMAND" => Some(Domain::VideoOnDemand),
            _ => None,
        }
    }

    pub fn api_name(self) -> &'static str {
        match self {
            Domain::Ecommerce => "ECOMMERCE",
            Domain::VideoOnDemand => "VIDEO_ON_DEMAND",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.api_name())
    }
}

impl FromStr for Domain {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Domain::from_api(s).ok_or_else(|| format!("'{s}' is not a domain; use ECOMMERCE or VIDEO_ON_DEMAND"))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The schema model
// ---------------------------------------------------------------------------------------------------------------

/// A validated schema: a flat Avro record whose name is a dataset type.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The record `name` as written (`Interactions`, `ActionInteractions`...).
    pub name: String,
    pub namespace: Option<String>,
    /// What `name` denotes; kept so callers need not re-derive it (and cannot get it wrong).
    pub dataset_type: DatasetType,
    /// The columns, in schema order (the order of bulk CSV files and export headers).
    pub fields: Vec<Field>,
}

/// One column of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: FieldType,
    /// The type is a union with `"null"`: the value may be missing.
    pub nullable: bool,
    /// `"categorical": true` (strings only): `|`-separated category values.
    pub categorical: bool,
    /// `"textual": true` (strings of Items schemas only): free text.
    pub textual: bool,
}

/// The Avro primitives Personalize supports (§7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    Int,
    Long,
    Float,
    Double,
    Boolean,
}

impl FieldType {
    pub fn from_avro(name: &str) -> Option<FieldType> {
        match name {
            "string" => Some(FieldType::String),
            "int" => Some(FieldType::Int),
            "long" => Some(FieldType::Long),
            "float" => Some(FieldType::Float),
            "double" => Some(FieldType::Double),
            "boolean" => Some(FieldType::Boolean),
            _ => None,
        }
    }

    pub fn avro_name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Int => "int",
            FieldType::Long => "long",
            FieldType::Float => "float",
            FieldType::Double => "double",
            FieldType::Boolean => "boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.avro_name())
    }
}

impl Field {
    /// The `properties` key the documentation pairs with this field (§7.5): `NUMBER_OF_RATINGS` →
    /// `numberOfRatings`, `GENRE_L2` → `genreL2`. Keys match fields by [`normalize_key`], so this is only the
    /// spelling shown in messages.
    pub fn camel_name(&self) -> String {
        camel_case(&self.name)
    }

    /// The type as it would be written in the schema: `"long"` or `["null", "float"]`.
    pub fn type_json(&self) -> String {
        if self.nullable {
            format!("[\"null\", \"{}\"]", self.ty)
        } else {
            format!("\"{}\"", self.ty)
        }
    }
}

impl Schema {
    /// The field with exactly this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field a `properties` key or a loosely-spelled name denotes (case and `_` ignored, §7.5). Unambiguous
    /// because [`parse_schema`] refuses fields whose names collide this way.
    pub fn find(&self, key: &str) -> Option<&Field> {
        let wanted = normalize_key(key);
        self.fields.iter().find(|f| normalize_key(&f.name) == wanted)
    }

    /// Column names in schema order: the header of an export.
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// True when the column is filled from a request member rather than from `properties`.
    pub fn is_member_column(&self, field: &Field) -> bool {
        self.dataset_type.member_columns().contains(&field.name.as_str())
    }

    /// The columns filled from `properties`, in schema order.
    pub fn property_fields(&self) -> impl Iterator<Item = &Field> + '_ {
        self.fields.iter().filter(move |f| !self.is_member_column(f))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------------------

/// Why a schema was refused: every problem found, each naming the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    pub problems: Vec<String>,
}

impl SchemaError {
    fn one(message: impl Into<String>) -> SchemaError {
        SchemaError { problems: vec![message.into()] }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => f.write_str(one),
            list => {
                write!(f, "The schema has {} problems: ", list.len())?;
                f.write_str(&list.join("; "))
            }
        }
    }
}

impl std::error::Error for SchemaError {}

/// A bad schema is an `InvalidInputException` whose message is the problem list.
impl From<SchemaError> for ValidationError {
    fn from(e: SchemaError) -> Self {
        ValidationError::Body(e.to_string())
    }
}

/// Collects problems so one CreateSchema response lists them all.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, message: impl Into<String>) {
        self.0.push(message.into());
    }

    fn finish<T>(self, value: T) -> Result<T, SchemaError> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(SchemaError { problems: self.0 })
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing (the rules every schema obeys)
// ---------------------------------------------------------------------------------------------------------------

/// CreateSchema's validation: [`parse_schema`], then [`check_dataset_type`] for the type the name denotes.
pub fn validate_schema(text: &str, domain: Option<Domain>) -> Result<Schema, SchemaError> {
    let schema = parse_schema(text)?;
    check_dataset_type(&schema, schema.dataset_type, domain)?;
    Ok(schema)
}

/// Parses Avro schema text and checks the rules common to every dataset type (§7.1, §7.2).
///
/// Attributes Personalize does not use (`version`, `doc`, `default`, `aliases`) are accepted and ignored, as Avro
/// tooling writes them.
pub fn parse_schema(text: &str) -> Result<Schema, SchemaError> {
    let chars = text.chars().count();
    if chars > MAX_SCHEMA_CHARS {
        return Err(SchemaError::one(format!("The schema has {chars} characters; the maximum is {MAX_SCHEMA_CHARS}")));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| SchemaError::one(format!("The schema is not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(SchemaError::one(format!(
            "The schema must be an Avro record (a JSON object with \"type\": \"record\"), not {}",
            json_kind(&value)
        )));
    };

    let mut problems = Problems::default();
    match top.get("type") {
        Some(Value::String(t)) if t == "record" => {}
        Some(other) => problems.push(format!(
            "The schema's \"type\" is {}; it must be \"record\" (schemas are flat Avro records)",
            compact(other)
        )),
        None => problems.push("The schema has no \"type\"; it must be \"record\" (schemas are flat Avro records)"),
    }

    let name = match top.get("name") {
        Some(Value::String(n)) => Some(n.clone()),
        Some(other) => {
            problems.push(format!("The schema's \"name\" must be a string, not {}", json_kind(other)));
            None
        }
        None => {
            problems.push("The schema has no \"name\"; it must name the dataset type (for example \"Interactions\")");
            None
        }
    };
    let dataset_type = name.as_deref().and_then(|n| {
        let t = DatasetType::from_schema_name(n);
        if t.is_none() {
            problems.push(format!(
                "The schema's name '{n}' is not a dataset type; it must be one of Interactions, Items, Users, \
                 Actions, ActionInteractions"
            ));
        }
        t
    });

    let namespace = match top.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) => Some(ns.clone()),
        Some(other) => {
            problems.push(format!("The schema's \"namespace\" must be a string, not {}", json_kind(other)));
            None
        }
    };

    let mut fields = Vec::new();
    match top.get("fields") {
        Some(Value::Array(list)) if list.is_empty() => {
            problems.push("The schema's \"fields\" is empty; a schema needs at least one field")
        }
        Some(Value::Array(list)) => {
            for (i, raw) in list.iter().enumerate() {
                if let Some(field) = parse_field(&mut problems, i, raw) {
                    fields.push(field);
                }
            }
        }
        Some(other) => {
            problems.push(format!("The schema's \"fields\" must be an array of fields, not {}", json_kind(other)))
        }
        None => problems.push("The schema has no \"fields\"; it must list the dataset's columns"),
    }
    check_unique_names(&mut problems, &fields);

    match (name, dataset_type) {
        (Some(name), Some(dataset_type)) => problems.finish(Schema { name, namespace, dataset_type, fields }),
        // The name problem is already recorded, so this error is never empty.
        _ => Err(SchemaError { problems: problems.0 }),
    }
}

/// One entry of `fields`; `None` (with problems recorded) when it cannot be understood.
fn parse_field(problems: &mut Problems, index: usize, raw: &Value) -> Option<Field> {
    let Value::Object(obj) = raw else {
        problems.push(format!("Schema field #{} must be a JSON object, not {}", index + 1, json_kind(raw)));
        return None;
    };
    let name = match obj.get("name") {
        Some(Value::String(n)) => n.clone(),
        Some(other) => {
            problems.push(format!(
                "Schema field #{} has a \"name\" that is {}, not a string",
                index + 1,
                json_kind(other)
            ));
            return None;
        }
        None => {
            problems.push(format!("Schema field #{} has no \"name\"", index + 1));
            return None;
        }
    };
    let mut ok = true;
    if !is_avro_name(&name) {
        problems.push(format!(
            "Schema field name '{name}' is not a valid Avro name: it must start with a letter or '_' and contain only \
             letters, digits and '_'"
        ));
        ok = false;
    }
    let parsed_type = match obj.get("type") {
        None => {
            problems.push(format!("Schema field '{name}' has no \"type\"; allowed types are {ALLOWED_TYPES_DOC}"));
            None
        }
        Some(t) => match parse_type(t) {
            Ok(parsed) => Some(parsed),
            Err(rule) => {
                problems.push(format!("Schema field '{name}' {rule}"));
                None
            }
        },
    };
    let categorical = flag(problems, &name, obj, "categorical");
    let textual = flag(problems, &name, obj, "textual");
    let (ty, nullable) = parsed_type?;
    if categorical && ty != FieldType::String {
        problems.push(format!(
            "Schema field '{name}' has type \"{ty}\" and is categorical; only string fields can be categorical"
        ));
        ok = false;
    }
    if textual && ty != FieldType::String {
        problems
            .push(format!("Schema field '{name}' has type \"{ty}\" and is textual; only string fields can be textual"));
        ok = false;
    }
    if categorical && textual {
        // A value is either `|`-separated categories or free text; Personalize's featurisation differs for each.
        problems.push(format!("Schema field '{name}' is both categorical and textual; choose one"));
        ok = false;
    }
    ok.then_some(Field { name, ty, nullable, categorical, textual })
}

/// `categorical` / `textual`: absent means false; anything but a JSON boolean is a mistake worth reporting, since
/// `"categorical": "true"` would otherwise silently not be categorical.
fn flag(problems: &mut Problems, field: &str, obj: &Map<String, Value>, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            problems
                .push(format!("Schema field '{field}' has \"{key}\": {}; it must be true or false", compact(other)));
            false
        }
    }
}

/// A field's `type`: a supported primitive, or a union of one with `"null"` (either order).
/// The error completes the sentence "Schema field 'X' ...".
fn parse_type(t: &Value) -> Result<(FieldType, bool), String> {
    match t {
        Value::String(name) => primitive(name, t).map(|ty| (ty, false)),
        Value::Array(members) => {
            if let Some(kind) = members.iter().find_map(complex_kind) {
                return Err(complex_message(&kind));
            }
            let nulls = members.iter().filter(|m| m.as_str() == Some("null")).count();
            let others: Vec<&Value> = members.iter().filter(|m| m.as_str() != Some("null")).collect();
            match (nulls, others.as_slice()) {
                (1, [only]) => match only {
                    Value::String(name) => primitive(name, t).map(|ty| (ty, true)),
                    Value::Object(_) => object_type(only, t).map(|ty| (ty, true)),
                    _ => Err(union_message(t)),
                },
                _ => Err(union_message(t)),
            }
        }
        Value::Object(_) => object_type(t, t).map(|ty| (ty, false)),
        other => Err(format!("has type {}; allowed types are {ALLOWED_TYPES_DOC}", compact(other))),
    }
}

/// A primitive type name; `whole` is the field's complete `type`, quoted in the message.
fn primitive(name: &str, whole: &Value) -> Result<FieldType, String> {
    if let Some(ty) = FieldType::from_avro(name) {
        return Ok(ty);
    }
    if let Some(kind) = complex_kind(&Value::String(name.to_owned())) {
        return Err(complex_message(&kind));
    }
    if name == "null" && whole.is_string() {
        return Err(format!(
            "has type \"null\" alone; a field must hold a value: use one of {ALLOWED_TYPES_DOC} (for example \
             [\"null\", \"string\"])"
        ));
    }
    Err(format!("has type {}; allowed types are {ALLOWED_TYPES_DOC}", compact(whole)))
}

/// `{"type": "long"}` is Avro's long-hand for a primitive and is accepted; anything more (a logical type, a record,
/// an array...) is a complex type.
fn object_type(obj: &Value, whole: &Value) -> Result<FieldType, String> {
    if let Some(kind) = complex_kind(obj) {
        return Err(complex_message(&kind));
    }
    match obj.get("type") {
        Some(Value::String(name)) => primitive(name, whole),
        _ => Err(format!("has type {}; allowed types are {ALLOWED_TYPES_DOC}", compact(whole))),
    }
}

/// Names the complex construct in a type, if it is one: `array`, `logical type "timestamp-millis"`...
fn complex_kind(t: &Value) -> Option<String> {
    const COMPLEX: [&str; 6] = ["record", "array", "map", "enum", "fixed", "error"];
    match t {
        Value::String(s) if COMPLEX.contains(&s.as_str()) => Some(s.clone()),
        Value::Object(o) => {
            if let Some(logical) = o.get("logicalType") {
                return Some(format!("logical type {}", compact(logical)));
            }
            match o.get("type") {
                Some(Value::String(s)) if COMPLEX.contains(&s.as_str()) => Some(s.clone()),
                Some(inner @ (Value::Object(_) | Value::Array(_))) => {
                    Some(complex_kind(inner).unwrap_or_else(|| "nested type".to_owned()))
                }
                _ => None,
            }
        }
        Value::Array(_) => Some("nested union".to_owned()),
        _ => None,
    }
}

fn complex_message(kind: &str) -> String {
    format!(
        "has a complex type ({kind}); complex types (records, arrays, maps, enums, fixed, logical types) are not \
         supported: schemas must be flat, with types {ALLOWED_TYPES_DOC}"
    )
}

fn union_message(t: &Value) -> String {
    format!(
        "has the union type {}; a union must be exactly one of string, int, long, float, double, boolean together \
         with \"null\"",
        compact(t)
    )
}

/// The camelCase spelling of a field name (`NUMBER_OF_RATINGS` → `numberOfRatings`); see [`Field::camel_name`].
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let lower = part.to_lowercase();
        if out.is_empty() {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.extend(first.to_uppercase());
                out.push_str(chars.as_str());
            }
        }
    }
    out
}

/// Avro names: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Names must stay distinct once `_` is removed and case ignored (§7.1): that is what makes the camelCase
/// `properties` mapping unambiguous.
fn check_unique_names(problems: &mut Problems, fields: &[Field]) {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for f in fields {
        let key = normalize_key(&f.name);
        match seen.get(key.as_str()) {
            Some(first) if *first == f.name => {
                problems.push(format!("Schema field '{}' is defined twice; field names must be unique", f.name))
            }
            Some(first) => problems.push(format!(
                "Schema fields '{first}' and '{}' have the same name once '_' is removed and case ignored; field names \
                 must be unique alphanumeric names",
                f.name
            )),
            None => {
                seen.insert(key, &f.name);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Dataset-type rules (§7.3)
// ---------------------------------------------------------------------------------------------------------------

/// What a reserved field's `categorical` flag must be.
#[derive(Clone, Copy, PartialEq)]
enum Categorical {
    MustNot,
    Must,
    Any,
}

/// A required or reserved field of one dataset type: when present it must look exactly like this.
struct Reserved {
    name: &'static str,
    types: &'static [FieldType],
    required: bool,
    nullable_ok: bool,
    categorical: Categorical,
    textual: bool,
}

const fn req(name: &'static str, ty: &'static [FieldType]) -> Reserved {
    Reserved { name, types: ty, required: true, nullable_ok: false, categorical: Categorical::MustNot, textual: false }
}

const fn opt(name: &'static str, ty: &'static [FieldType], nullable_ok: bool) -> Reserved {
    Reserved { name, types: ty, required: false, nullable_ok, categorical: Categorical::MustNot, textual: false }
}

const STRING: &[FieldType] = &[FieldType::String];
const LONG: &[FieldType] = &[FieldType::Long];
const FLOAT: &[FieldType] = &[FieldType::Float];
const INTEGER: &[FieldType] = &[FieldType::Int, FieldType::Long];

/// The required and reserved fields of a dataset type in a Custom (`None`) or Domain dataset group.
///
/// Reserved string fields may not be categorical (§7.1); nullability follows the §7.3 table (only the fields it
/// lists with `null` may be unions). Actions' reserved keywords are only partly documented: the integer ones accept
/// `int` or `long` and may be null, as in the documentation's example (`VALUE` is `["null", "long"]`).
fn reserved_fields(t: DatasetType, domain: Option<Domain>) -> Vec<Reserved> {
    match t {
        DatasetType::Interactions => vec![
            req("USER_ID", STRING),
            req("ITEM_ID", STRING),
            req("TIMESTAMP", LONG),
            Reserved { required: domain.is_some(), ..opt("EVENT_TYPE", STRING, false) },
            opt("EVENT_VALUE", FLOAT, true),
            opt("IMPRESSION", STRING, true),
            opt("RECOMMENDATION_ID", STRING, true),
            opt("EVENT_ATTRIBUTION_SOURCE", STRING, true),
        ],
        DatasetType::Users => vec![req("USER_ID", STRING)],
        DatasetType::Items => {
            let mut list = vec![req("ITEM_ID", STRING), opt("CREATION_TIMESTAMP", LONG, false)];
            if domain == Some(Domain::Ecommerce) {
                let cat = |name, required| Reserved {
                    required,
                    nullable_ok: !required,
                    categorical: Categorical::Must,
                    ..opt(name, STRING, true)
                };
                list.extend([
                    Reserved { categorical: Categorical::Any, ..req("PRICE", FLOAT) },
                    cat("CATEGORY_L1", true),
                    cat("CATEGORY_L2", false),
                    cat("CATEGORY_L3", false),
                    Reserved {
                        textual: true,
                        categorical: Categorical::Any,
                        ..opt("PRODUCT_DESCRIPTION", STRING, true)
                    },
                    cat("AGE_GROUP", false),
                    cat("ADULT", false),
                    cat("GENDER", false),
                ]);
            }
            list
        }
        DatasetType::Actions => vec![
            req("ACTION_ID", STRING),
            opt("VALUE", INTEGER, true),
            opt("CREATION_TIMESTAMP", LONG, true),
            opt("REPEAT_FREQUENCY", INTEGER, true),
            opt("ACTION_EXPIRATION_TIMESTAMP", LONG, true),
        ],
        DatasetType::ActionInteractions => vec![
            req("USER_ID", STRING),
            req("ACTION_ID", STRING),
            req("TIMESTAMP", LONG),
            req("EVENT_TYPE", STRING),
            opt("IMPRESSION", STRING, true),
            opt("RECOMMENDATION_ID", STRING, true),
        ],
    }
}

/// Fields that are not metadata when counting metadata (§6.2): the reserved columns of Interactions and Action
/// interactions, the ID and `CREATION_TIMESTAMP` of Items, the ID of Users and Actions. Domain fields such as
/// `PRICE` are item metadata and count. Actions' reserved keywords (`VALUE`...) describe the action and count too,
/// so a schema of `ACTION_ID` and `VALUE` has its one metadata field.
fn is_metadata(t: DatasetType, field: &Field) -> bool {
    let not_metadata: &[&str] = match t {
        DatasetType::Items => &["ITEM_ID", "CREATION_TIMESTAMP"],
        other => other.member_columns(),
    };
    !not_metadata.contains(&field.name.as_str())
}

/// Checks a parsed schema against what a dataset of `dataset_type` requires in a Custom (`domain` = `None`) or
/// Domain dataset group (§7.3, §6.2): its name, required and reserved fields, metadata counts and domain rules.
///
/// CreateDataset calls this with the request's `datasetType` and the group's domain, so a schema named `Users`
/// cannot back an Interactions dataset.
pub fn check_dataset_type(
    schema: &Schema,
    dataset_type: DatasetType,
    domain: Option<Domain>,
) -> Result<(), SchemaError> {
    let t = dataset_type;
    let mut problems = Problems::default();
    if !t.matches_schema_name(&schema.name) {
        problems.push(format!(
            "The schema's name '{}' does not match the dataset type {t}; {} {t} dataset needs a schema named '{}'",
            schema.name,
            t.article(),
            t.schema_name()
        ));
        return problems.finish(());
    }
    // How messages name the schema: "an Interactions schema", "an ECOMMERCE Items schema".
    let what = match domain {
        Some(Domain::Ecommerce) => format!("an ECOMMERCE {} schema", t.schema_name()),
        Some(Domain::VideoOnDemand) => format!("a VIDEO_ON_DEMAND {} schema", t.schema_name()),
        None => format!("{} {} schema", t.article(), t.schema_name()),
    };

    if domain.is_some() && matches!(t, DatasetType::Actions | DatasetType::ActionInteractions) {
        problems.push(format!(
            "{} schemas cannot have a domain: {} datasets exist only in Custom dataset groups",
            t.schema_name(),
            t.schema_name()
        ));
        return problems.finish(());
    }

    let reserved = reserved_fields(t, domain);
    for r in &reserved {
        let Some(f) = schema.field(r.name) else {
            if r.required {
                problems.push(format!(
                    "{} requires the field '{}' (type {})",
                    capitalise(&what),
                    r.name,
                    types_doc(r.types)
                ));
            }
            continue;
        };
        if !r.types.contains(&f.ty) {
            problems.push(format!(
                "Schema field '{}' of {what} must have type {}; it has type \"{}\"",
                f.name,
                types_doc(r.types),
                f.ty
            ));
        }
        if f.nullable && !r.nullable_ok {
            problems.push(format!(
                "Schema field '{}' of {what} must not be nullable: its type must be {}, not a union with \"null\"",
                f.name,
                types_doc(r.types)
            ));
        }
        match r.categorical {
            Categorical::MustNot if f.categorical => {
                problems.push(format!("Schema field '{}' of {what} must not be categorical", f.name))
            }
            Categorical::Must if !f.categorical => problems
                .push(format!("Schema field '{}' of {what} must be categorical (\"categorical\": true)", f.name)),
            _ => {}
        }
        if r.textual && !f.textual {
            problems.push(format!("Schema field '{}' of {what} must be textual (\"textual\": true)", f.name));
        }
    }
    // Reserved names are matched exactly; a near miss such as `Timestamp` or `USERID` would silently become a
    // metadata column and the required one would be reported missing, which is confusing without this hint.
    for f in &schema.fields {
        if let Some(r) = reserved.iter().find(|r| r.name != f.name && normalize_key(r.name) == normalize_key(&f.name)) {
            problems.push(format!(
                "Schema field '{}' of {what} must be spelled '{}' (reserved field names are upper case)",
                f.name, r.name
            ));
        }
    }

    for f in schema.fields.iter().filter(|f| f.textual) {
        if t != DatasetType::Items {
            problems.push(format!(
                "Schema field '{}' of {what} is textual; only Items schemas support textual fields",
                f.name
            ));
        }
    }

    let metadata: Vec<&Field> = schema.fields.iter().filter(|f| is_metadata(t, f)).collect();
    let names = |list: &[&Field]| list.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
    match t {
        DatasetType::Interactions if metadata.len() > MAX_INTERACTIONS_METADATA => problems.push(format!(
            "{} has {} metadata fields ({}); at most {MAX_INTERACTIONS_METADATA} are allowed besides the reserved fields",
            capitalise(&what),
            metadata.len(),
            names(&metadata)
        )),
        DatasetType::Users | DatasetType::Items | DatasetType::Actions if metadata.is_empty() => problems.push(format!(
            "{} needs at least one metadata field besides {}",
            capitalise(&what),
            reserved.iter().filter(|r| r.required).map(|r| r.name).collect::<Vec<_>>().join(", ")
        )),
        DatasetType::Users if metadata.len() > MAX_USERS_METADATA => problems.push(format!(
            "{} has {} metadata fields; at most {MAX_USERS_METADATA} are allowed",
            capitalise(&what),
            metadata.len()
        )),
        DatasetType::Items if metadata.len() > MAX_ITEMS_METADATA => problems.push(format!(
            "{} has {} metadata fields; at most {MAX_ITEMS_METADATA} are allowed",
            capitalise(&what),
            metadata.len()
        )),
        _ => {}
    }
    if t == DatasetType::Items {
        let textual: Vec<&Field> = schema.fields.iter().filter(|f| f.textual).collect();
        if textual.len() > MAX_ITEMS_TEXTUAL {
            problems.push(format!(
                "{} has {} textual fields ({}); at most {MAX_ITEMS_TEXTUAL} is allowed",
                capitalise(&what),
                textual.len(),
                names(&textual)
            ));
        }
    }
    if t == DatasetType::Actions && schema.fields.len() > MAX_ACTIONS_COLUMNS {
        problems.push(format!(
            "{} has {} fields; at most {MAX_ACTIONS_COLUMNS} columns are allowed, ACTION_ID included",
            capitalise(&what),
            schema.fields.len()
        ));
    }
    problems.finish(())
}

/// `"long"`, `"int" or "long"`.
fn types_doc(types: &[FieldType]) -> String {
    types.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" or ")
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A JSON value as it appears in the schema text, cut so a huge nested type cannot flood a message.
fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 100 {
        let cut: String = s.chars().take(100).collect();
        format!("{cut}...")
    } else {
        s
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Field names only (exports)
// ---------------------------------------------------------------------------------------------------------------

/// The column names of a schema, in order: the header of an export.
///
/// Deliberately lenient (it reads only `fields[].name`): stored schemas were validated when they were created,
/// and an export should not fail because validation rules tightened since.
pub fn field_names(schema_json: &str) -> Result<Vec<String>, String> {
    let value: Value =
        serde_json::from_str(schema_json).map_err(|e| format!("the schema is not an Avro record: {e}"))?;
    let fields = value
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| "the schema is not an Avro record: it has no \"fields\" array".to_owned())?;
    fields
        .iter()
        .map(|f| {
            f.get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "the schema is not an Avro record: a field has no \"name\"".to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "com.amazonaws.personalize.schema";
    /// The required fields of an Interactions schema.
    const IX: &str =
        r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"},{"name":"TIMESTAMP","type":"long"}"#;
    const AI: &str = r#"{"name":"USER_ID","type":"string"},{"name":"ACTION_ID","type":"string"},
        {"name":"TIMESTAMP","type":"long"},{"name":"EVENT_TYPE","type":"string"}"#;

    /// (label, schema text, dataset type to check against if not the name's, domain, message parts).
    type TypeCase = (&'static str, String, Option<DatasetType>, Option<Domain>, &'static [&'static str]);

    fn rec(name: &str, fields: &str) -> String {
        format!(r#"{{"type":"record","name":"{name}","namespace":"{NS}","fields":[{fields}],"version":"1.0"}}"#)
    }

    /// `n` int metadata fields `M1`..`Mn`, comma-led so they append to a field list.
    fn meta(n: usize) -> String {
        (1..=n).map(|i| format!(r#",{{"name":"M{i}","type":"int"}}"#)).collect()
    }

    fn with_meta(name: &str, base: &str, n: usize) -> String {
        rec(name, &format!("{base}{}", meta(n)))
    }

    /// The documentation's canonical schemas (§7.3) and interlog's default must all pass CreateSchema.
    #[test]
    fn canonical_schemas_are_accepted() {
        let cases: Vec<(&str, String, Option<Domain>, DatasetType, usize)> = vec![
            ("default", DEFAULT_INTERACTIONS_SCHEMA.to_owned(), None, DatasetType::Interactions, 8),
            (
                "doc interactions",
                rec(
                    "Interactions",
                    r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"},
                    {"name":"EVENT_TYPE","type":"string"},{"name":"EVENT_VALUE","type":["float","null"]},
                    {"name":"LOCATION","type":"string","categorical":true},
                    {"name":"DEVICE","type":["string","null"],"categorical":true},
                    {"name":"TIMESTAMP","type":"long"},{"name":"IMPRESSION","type":"string"}"#,
                ),
                None,
                DatasetType::Interactions,
                8,
            ),
            (
                "doc users",
                rec(
                    "Users",
                    r#"{"name":"USER_ID","type":"string"},{"name":"AGE","type":"int"},
                    {"name":"GENDER","type":"string","categorical":true}"#,
                ),
                None,
                DatasetType::Users,
                3,
            ),
            (
                "doc items",
                rec(
                    "Items",
                    r#"{"name":"ITEM_ID","type":"string"},{"name":"GENRES","type":["null","string"],"categorical":true},
                    {"name":"CREATION_TIMESTAMP","type":"long"},
                    {"name":"DESCRIPTION","type":["null","string"],"textual":true}"#,
                ),
                None,
                DatasetType::Items,
                4,
            ),
            (
                "doc actions",
                rec(
                    "Actions",
                    r#"{"name":"ACTION_ID","type":"string"},{"name":"VALUE","type":["null","long"]},
                    {"name":"MEMBERSHIP_LEVEL","type":["null","string"],"categorical":true},
                    {"name":"CREATION_TIMESTAMP","type":["null","long"]},{"name":"REPEAT_FREQUENCY","type":["null","long"]},
                    {"name":"ACTION_EXPIRATION_TIMESTAMP","type":["null","long"]}"#,
                ),
                None,
                DatasetType::Actions,
                6,
            ),
            ("doc action interactions", rec("ActionInteractions", AI), None, DatasetType::ActionInteractions, 4),
            ("underscored name", rec("Action_Interactions", AI), None, DatasetType::ActionInteractions, 4),
            (
                "ecommerce interactions",
                rec("Interactions", &format!(r#"{IX},{{"name":"EVENT_TYPE","type":"string"}}"#)),
                Some(Domain::Ecommerce),
                DatasetType::Interactions,
                4,
            ),
            (
                "vod interactions",
                rec("Interactions", &format!(r#"{IX},{{"name":"EVENT_TYPE","type":"string"}}"#)),
                Some(Domain::VideoOnDemand),
                DatasetType::Interactions,
                4,
            ),
            (
                "ecommerce items",
                rec(
                    "Items",
                    r#"{"name":"ITEM_ID","type":"string"},{"name":"PRICE","type":"float"},
                    {"name":"CATEGORY_L1","type":"string","categorical":true},
                    {"name":"CATEGORY_L2","type":["null","string"],"categorical":true},
                    {"name":"PRODUCT_DESCRIPTION","type":["null","string"],"textual":true},
                    {"name":"CREATION_TIMESTAMP","type":"long"}"#,
                ),
                Some(Domain::Ecommerce),
                DatasetType::Items,
                6,
            ),
            (
                "long-hand primitive, doc and default attributes, no namespace",
                r#"{"type":"record","name":"users","fields":[{"name":"USER_ID","type":{"type":"string"},"doc":"id"},
                    {"name":"_SCORE_2","type":["null","double"],"default":null}]}"#
                    .to_owned(),
                None,
                DatasetType::Users,
                2,
            ),
            ("5 interaction metadata fields", with_meta("Interactions", IX, 5), None, DatasetType::Interactions, 8),
            (
                "25 user metadata fields",
                with_meta("Users", r#"{"name":"USER_ID","type":"string"}"#, 25),
                None,
                DatasetType::Users,
                26,
            ),
            (
                "100 item metadata fields",
                with_meta("Items", r#"{"name":"ITEM_ID","type":"string"}"#, 100),
                None,
                DatasetType::Items,
                101,
            ),
            (
                "10 action columns",
                with_meta("Actions", r#"{"name":"ACTION_ID","type":"string"}"#, 9),
                None,
                DatasetType::Actions,
                10,
            ),
        ];
        for (label, text, domain, ty, n) in cases {
            let schema = validate_schema(&text, domain).unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(schema.dataset_type, ty, "{label}");
            assert_eq!(schema.fields.len(), n, "{label}");
        }
    }

    #[test]
    fn parsed_fields_carry_type_nullability_and_flags() {
        let s = parse_schema(&rec(
            "Items",
            r#"{"name":"ITEM_ID","type":"string"},{"name":"GENRES","type":["null","string"],"categorical":true},
            {"name":"PRICE","type":["float","null"]},{"name":"DESCRIPTION","type":"string","textual":true}"#,
        ))
        .unwrap();
        assert_eq!(s.name, "Items");
        assert_eq!(s.namespace.as_deref(), Some(NS));
        let f = |name: &str| s.field(name).unwrap().clone();
        assert_eq!(
            f("GENRES"),
            Field { name: "GENRES".into(), ty: FieldType::String, nullable: true, categorical: true, textual: false }
        );
        assert_eq!((f("PRICE").ty, f("PRICE").nullable), (FieldType::Float, true));
        assert!(f("DESCRIPTION").textual);
        assert_eq!(s.find("genres").map(|f| f.name.as_str()), Some("GENRES"));
        assert_eq!(s.field_names(), ["ITEM_ID", "GENRES", "PRICE", "DESCRIPTION"]);
        assert_eq!(
            s.property_fields().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["GENRES", "PRICE", "DESCRIPTION"]
        );
    }

    /// Each rule every schema obeys, broken once: the message names the field (or member) and the rule.
    #[test]
    fn parse_rules_each_fail_with_a_message_naming_the_field() {
        let field = |f: &str| rec("Users", &format!(r#"{{"name":"USER_ID","type":"string"}},{f}"#));
        let cases: Vec<(&str, String, &[&str])> = vec![
            (
                "invalid JSON (trailing comma)",
                rec("Users", r#"{"name":"USER_ID","type":"string"},"#),
                &["not valid JSON"],
            ),
            (
                "too long",
                format!("{}{}", rec("Users", r#"{"name":"USER_ID","type":"string"}"#), " ".repeat(20_000)),
                &["characters; the maximum is 20000"],
            ),
            ("not an object", "[]".to_owned(), &["must be an Avro record", "an array"]),
            (
                "type is not record",
                r#"{"type":"enum","name":"Users","fields":[]}"#.to_owned(),
                &["\"type\" is \"enum\"", "\"record\""],
            ),
            (
                "no type",
                r#"{"name":"Users","fields":[{"name":"USER_ID","type":"string"}]}"#.to_owned(),
                &["no \"type\""],
            ),
            (
                "no name",
                r#"{"type":"record","fields":[{"name":"USER_ID","type":"string"}]}"#.to_owned(),
                &["no \"name\""],
            ),
            (
                "name not a dataset type",
                rec("Movies", r#"{"name":"USER_ID","type":"string"}"#),
                &["'Movies' is not a dataset type"],
            ),
            (
                "namespace not a string",
                r#"{"type":"record","name":"Users","namespace":1,"fields":[{"name":"USER_ID","type":"string"}]}"#
                    .to_owned(),
                &["\"namespace\" must be a string"],
            ),
            ("no fields", r#"{"type":"record","name":"Users"}"#.to_owned(), &["no \"fields\""]),
            ("empty fields", rec("Users", ""), &["\"fields\" is empty"]),
            (
                "fields not an array",
                r#"{"type":"record","name":"Users","fields":{}}"#.to_owned(),
                &["\"fields\" must be an array"],
            ),
            ("field not an object", field(r#""AGE""#), &["Schema field #2 must be a JSON object"]),
            ("field without name", field(r#"{"type":"int"}"#), &["Schema field #2 has no \"name\""]),
            ("field name not a string", field(r#"{"name":7,"type":"int"}"#), &["Schema field #2", "not a string"]),
            (
                "invalid Avro name",
                field(r#"{"name":"MY-FIELD","type":"int"}"#),
                &["'MY-FIELD' is not a valid Avro name"],
            ),
            (
                "name starting with a digit",
                field(r#"{"name":"1ST","type":"int"}"#),
                &["'1ST' is not a valid Avro name"],
            ),
            ("field without type", field(r#"{"name":"AGE"}"#), &["'AGE' has no \"type\""]),
            (
                "bytes",
                field(r#"{"name":"PRICE","type":"bytes"}"#),
                &[
                    r#"Schema field 'PRICE' has type "bytes"; allowed types are string, int, long, float, double, boolean, optionally in a union with null"#,
                ],
            ),
            (
                "unknown named type",
                field(r#"{"name":"PRICE","type":"Money"}"#),
                &["'PRICE' has type \"Money\"; allowed types"],
            ),
            (
                "array",
                field(r#"{"name":"TAGS","type":{"type":"array","items":"string"}}"#),
                &["'TAGS' has a complex type (array)", "not supported"],
            ),
            (
                "map",
                field(r#"{"name":"ATTRS","type":{"type":"map","values":"string"}}"#),
                &["'ATTRS' has a complex type (map)"],
            ),
            (
                "nested record",
                field(r#"{"name":"ADDRESS","type":{"type":"record","name":"A","fields":[]}}"#),
                &["'ADDRESS' has a complex type (record)"],
            ),
            (
                "enum",
                field(r#"{"name":"TIER","type":{"type":"enum","name":"T","symbols":["A"]}}"#),
                &["'TIER' has a complex type (enum)"],
            ),
            (
                "fixed",
                field(r#"{"name":"HASH","type":{"type":"fixed","name":"H","size":16}}"#),
                &["'HASH' has a complex type (fixed)"],
            ),
            ("bare complex name", field(r#"{"name":"TAGS","type":"array"}"#), &["'TAGS' has a complex type (array)"]),
            (
                "logical type",
                field(r#"{"name":"BORN","type":{"type":"long","logicalType":"timestamp-millis"}}"#),
                &["'BORN' has a complex type (logical type \"timestamp-millis\")"],
            ),
            (
                "complex type in a union",
                field(r#"{"name":"TAGS","type":["null",{"type":"array","items":"string"}]}"#),
                &["'TAGS' has a complex type (array)"],
            ),
            (
                "union without null",
                field(r#"{"name":"AGE","type":["int","string"]}"#),
                &["'AGE' has the union type", "together with \"null\""],
            ),
            ("union of null only", field(r#"{"name":"AGE","type":["null"]}"#), &["'AGE' has the union type"]),
            ("union of three", field(r#"{"name":"AGE","type":["null","int","long"]}"#), &["'AGE' has the union type"]),
            (
                "union with bytes",
                field(r#"{"name":"AGE","type":["null","bytes"]}"#),
                &["'AGE' has type [\"null\",\"bytes\"]; allowed types"],
            ),
            ("null alone", field(r#"{"name":"AGE","type":"null"}"#), &["'AGE' has type \"null\" alone"]),
            ("type not a name", field(r#"{"name":"AGE","type":5}"#), &["'AGE' has type 5"]),
            (
                "categorical int",
                field(r#"{"name":"AGE","type":"int","categorical":true}"#),
                &["'AGE' has type \"int\" and is categorical"],
            ),
            (
                "textual int",
                field(r#"{"name":"AGE","type":"int","textual":true}"#),
                &["'AGE' has type \"int\" and is textual"],
            ),
            (
                "categorical not a boolean",
                field(r#"{"name":"TIER","type":"string","categorical":"true"}"#),
                &["'TIER' has \"categorical\": \"true\"; it must be true or false"],
            ),
            (
                "categorical and textual",
                field(r#"{"name":"TIER","type":"string","categorical":true,"textual":true}"#),
                &["'TIER' is both categorical and textual"],
            ),
            (
                "names equal without _ and case",
                field(r#"{"name":"GENRES_FIELD_1","type":"int"},{"name":"GENRESFIELD1","type":"int"}"#),
                &["'GENRES_FIELD_1' and 'GENRESFIELD1'", "unique"],
            ),
            (
                "names differing in case",
                field(r#"{"name":"AGE","type":"int"},{"name":"age","type":"int"}"#),
                &["'AGE' and 'age'"],
            ),
            (
                "same name twice",
                field(r#"{"name":"AGE","type":"int"},{"name":"AGE","type":"long"}"#),
                &["'AGE' is defined twice"],
            ),
        ];
        for (label, text, wanted) in cases {
            let err = parse_schema(&text).expect_err(label).to_string();
            for w in wanted {
                assert!(err.contains(w), "{label}: {err:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = parse_schema(&rec(
            "Users",
            r#"{"name":"USER_ID","type":"string"},{"name":"A","type":"bytes"},{"name":"B-C","type":"int"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.problems.len(), 2, "{e}");
        assert!(e.to_string().starts_with("The schema has 2 problems: "), "{e}");
        assert_eq!(
            ValidationError::from(e.clone()),
            ValidationError::Body(e.to_string()),
            "a bad schema is an InvalidInputException with the same text"
        );
    }

    /// Each dataset-type rule (§7.3, §6.2), broken once.
    #[test]
    fn dataset_type_rules_each_fail_with_a_message_naming_the_field() {
        let ix = |extra: &str| rec("Interactions", &format!("{IX}{extra}"));
        let users = |extra: &str| rec("Users", &format!(r#"{{"name":"USER_ID","type":"string"}}{extra}"#));
        let items = |extra: &str| rec("Items", &format!(r#"{{"name":"ITEM_ID","type":"string"}}{extra}"#));
        let actions = |extra: &str| rec("Actions", &format!(r#"{{"name":"ACTION_ID","type":"string"}}{extra}"#));
        let shop = |extra: &str| {
            items(&format!(
                r#",{{"name":"PRICE","type":"float"}},{{"name":"CATEGORY_L1","type":"string","categorical":true}}{extra}"#
            ))
        };
        let ecommerce = Some(Domain::Ecommerce);
        let cases: Vec<TypeCase> = vec![
            (
                "missing TIMESTAMP",
                rec("Interactions", r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"}"#),
                None,
                None,
                &["An Interactions schema requires the field 'TIMESTAMP' (type \"long\")"],
            ),
            (
                "missing USER_ID",
                rec("Interactions", r#"{"name":"ITEM_ID","type":"string"},{"name":"TIMESTAMP","type":"long"}"#),
                None,
                None,
                &["requires the field 'USER_ID'"],
            ),
            (
                "TIMESTAMP int",
                rec(
                    "Interactions",
                    r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"},{"name":"TIMESTAMP","type":"int"}"#,
                ),
                None,
                None,
                &["Schema field 'TIMESTAMP' of an Interactions schema must have type \"long\"; it has type \"int\""],
            ),
            (
                "USER_ID nullable",
                rec(
                    "Interactions",
                    r#"{"name":"USER_ID","type":["null","string"]},{"name":"ITEM_ID","type":"string"},{"name":"TIMESTAMP","type":"long"}"#,
                ),
                None,
                None,
                &["'USER_ID' of an Interactions schema must not be nullable"],
            ),
            (
                "ITEM_ID categorical",
                rec(
                    "Interactions",
                    r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string","categorical":true},{"name":"TIMESTAMP","type":"long"}"#,
                ),
                None,
                None,
                &["'ITEM_ID' of an Interactions schema must not be categorical"],
            ),
            (
                "EVENT_TYPE categorical",
                ix(r#",{"name":"EVENT_TYPE","type":"string","categorical":true}"#),
                None,
                None,
                &["Schema field 'EVENT_TYPE' of an Interactions schema must not be categorical"],
            ),
            (
                "EVENT_TYPE nullable",
                ix(r#",{"name":"EVENT_TYPE","type":["null","string"]}"#),
                None,
                None,
                &["'EVENT_TYPE' of an Interactions schema must not be nullable"],
            ),
            (
                "EVENT_VALUE double",
                ix(r#",{"name":"EVENT_VALUE","type":["null","double"]}"#),
                None,
                None,
                &["'EVENT_VALUE' of an Interactions schema must have type \"float\""],
            ),
            (
                "IMPRESSION categorical",
                ix(r#",{"name":"IMPRESSION","type":"string","categorical":true}"#),
                None,
                None,
                &["'IMPRESSION' of an Interactions schema must not be categorical"],
            ),
            (
                "RECOMMENDATION_ID long",
                ix(r#",{"name":"RECOMMENDATION_ID","type":"long"}"#),
                None,
                None,
                &["'RECOMMENDATION_ID' of an Interactions schema must have type \"string\""],
            ),
            (
                "reserved name misspelt",
                rec(
                    "Interactions",
                    r#"{"name":"USER_ID","type":"string"},{"name":"ITEM_ID","type":"string"},{"name":"Timestamp","type":"long"}"#,
                ),
                None,
                None,
                &["'Timestamp' of an Interactions schema must be spelled 'TIMESTAMP'"],
            ),
            (
                "6 interaction metadata fields",
                with_meta("Interactions", IX, 6),
                None,
                None,
                &["An Interactions schema has 6 metadata fields (M1, M2, M3, M4, M5, M6); at most 5"],
            ),
            (
                "textual outside Items",
                ix(r#",{"name":"NOTE","type":["null","string"],"textual":true}"#),
                None,
                None,
                &["'NOTE' of an Interactions schema is textual; only Items schemas"],
            ),
            (
                "users without metadata",
                users(""),
                None,
                None,
                &["A Users schema needs at least one metadata field besides USER_ID"],
            ),
            (
                "26 user metadata fields",
                with_meta("Users", r#"{"name":"USER_ID","type":"string"}"#, 26),
                None,
                None,
                &["A Users schema has 26 metadata fields; at most 25"],
            ),
            (
                "textual in Users",
                users(r#",{"name":"BIO","type":"string","textual":true}"#),
                None,
                None,
                &["'BIO' of a Users schema is textual"],
            ),
            (
                "items without metadata",
                items(r#",{"name":"CREATION_TIMESTAMP","type":"long"}"#),
                None,
                None,
                &["An Items schema needs at least one metadata field besides ITEM_ID"],
            ),
            (
                "CREATION_TIMESTAMP int",
                items(r#",{"name":"CREATION_TIMESTAMP","type":"int"},{"name":"M","type":"int"}"#),
                None,
                None,
                &["'CREATION_TIMESTAMP' of an Items schema must have type \"long\""],
            ),
            (
                "101 item metadata fields",
                with_meta("Items", r#"{"name":"ITEM_ID","type":"string"}"#, 101),
                None,
                None,
                &["An Items schema has 101 metadata fields; at most 100"],
            ),
            (
                "two textual fields",
                items(r#",{"name":"A","type":"string","textual":true},{"name":"B","type":"string","textual":true}"#),
                None,
                None,
                &["An Items schema has 2 textual fields (A, B); at most 1"],
            ),
            (
                "actions without metadata",
                actions(""),
                None,
                None,
                &["An Actions schema needs at least one metadata field besides ACTION_ID"],
            ),
            (
                "11 action columns",
                with_meta("Actions", r#"{"name":"ACTION_ID","type":"string"}"#, 10),
                None,
                None,
                &["An Actions schema has 11 fields; at most 10 columns"],
            ),
            (
                "VALUE string",
                actions(r#",{"name":"VALUE","type":"string"}"#),
                None,
                None,
                &["'VALUE' of an Actions schema must have type \"int\" or \"long\""],
            ),
            (
                "action interactions without EVENT_TYPE",
                rec(
                    "ActionInteractions",
                    r#"{"name":"USER_ID","type":"string"},{"name":"ACTION_ID","type":"string"},{"name":"TIMESTAMP","type":"long"}"#,
                ),
                None,
                None,
                &["An ActionInteractions schema requires the field 'EVENT_TYPE'"],
            ),
            (
                "name does not match the dataset type",
                users(r#",{"name":"AGE","type":"int"}"#),
                Some(DatasetType::Interactions),
                None,
                &["name 'Users' does not match the dataset type Interactions"],
            ),
            (
                "ecommerce interactions without EVENT_TYPE",
                ix(""),
                None,
                ecommerce,
                &["An ECOMMERCE Interactions schema requires the field 'EVENT_TYPE'"],
            ),
            (
                "vod interactions without EVENT_TYPE",
                ix(""),
                None,
                Some(Domain::VideoOnDemand),
                &["A VIDEO_ON_DEMAND Interactions schema requires the field 'EVENT_TYPE'"],
            ),
            (
                "ecommerce items without PRICE",
                items(r#",{"name":"CATEGORY_L1","type":"string","categorical":true}"#),
                None,
                ecommerce,
                &["An ECOMMERCE Items schema requires the field 'PRICE' (type \"float\")"],
            ),
            (
                "ecommerce PRICE string",
                items(r#",{"name":"PRICE","type":"string"},{"name":"CATEGORY_L1","type":"string","categorical":true}"#),
                None,
                ecommerce,
                &["'PRICE' of an ECOMMERCE Items schema must have type \"float\""],
            ),
            (
                "ecommerce CATEGORY_L1 not categorical",
                items(r#",{"name":"PRICE","type":"float"},{"name":"CATEGORY_L1","type":"string"}"#),
                None,
                ecommerce,
                &["'CATEGORY_L1' of an ECOMMERCE Items schema must be categorical"],
            ),
            (
                "ecommerce PRODUCT_DESCRIPTION not textual",
                shop(r#",{"name":"PRODUCT_DESCRIPTION","type":"string"}"#),
                None,
                ecommerce,
                &["'PRODUCT_DESCRIPTION' of an ECOMMERCE Items schema must be textual"],
            ),
            (
                "actions with a domain",
                actions(r#",{"name":"M","type":"int"}"#),
                None,
                ecommerce,
                &["Actions schemas cannot have a domain"],
            ),
        ];
        for (label, text, ty, domain, wanted) in cases {
            let schema = parse_schema(&text).unwrap_or_else(|e| panic!("{label}: parse: {e}"));
            let err =
                check_dataset_type(&schema, ty.unwrap_or(schema.dataset_type), domain).expect_err(label).to_string();
            for w in wanted {
                assert!(err.contains(w), "{label}: {err:?} lacks {w:?}");
            }
        }
        // The Custom counterparts of the domain cases pass: the domain rules add to the custom ones.
        assert!(validate_schema(&ix(""), None).is_ok());
        assert!(validate_schema(&shop(""), None).is_ok());
        assert!(validate_schema(&shop(""), ecommerce).is_ok());
    }

    #[test]
    fn create_schema_runs_both_layers() {
        let bad = rec("Interactions", &format!(r#"{IX},{{"name":"EVENT_TYPE","type":"string","categorical":true}}"#));
        assert!(parse_schema(&bad).is_ok());
        let e = validate_schema(&bad, None).unwrap_err();
        assert_eq!(e.to_string(), "Schema field 'EVENT_TYPE' of an Interactions schema must not be categorical");
    }

    #[test]
    fn dataset_types_parse_from_the_api_and_from_schema_names() {
        let api = [
            ("Interactions", Some(DatasetType::Interactions)),
            ("INTERACTIONS", Some(DatasetType::Interactions)),
            ("items", Some(DatasetType::Items)),
            ("Users", Some(DatasetType::Users)),
            ("aCtIoNs", Some(DatasetType::Actions)),
            ("Action_Interactions", Some(DatasetType::ActionInteractions)),
            ("ACTION_INTERACTIONS", Some(DatasetType::ActionInteractions)),
            ("ActionInteractions", None),
            ("Interaction", None),
            ("", None),
        ];
        for (text, want) in api {
            assert_eq!(DatasetType::from_api(text), want, "{text:?}");
            assert_eq!(text.parse::<DatasetType>().ok(), want, "{text:?}");
        }
        let names = [
            ("Interactions", Some(DatasetType::Interactions)),
            ("interactions", Some(DatasetType::Interactions)),
            ("ActionInteractions", Some(DatasetType::ActionInteractions)),
            ("Action_Interactions", Some(DatasetType::ActionInteractions)),
            ("action_interactions", Some(DatasetType::ActionInteractions)),
            ("Item", None),
        ];
        for (text, want) in names {
            assert_eq!(DatasetType::from_schema_name(text), want, "{text:?}");
        }
        assert!(DatasetType::ActionInteractions.matches_schema_name("ActionInteractions"));
        assert!(!DatasetType::Items.matches_schema_name("Users"));
        for t in DatasetType::ALL {
            assert_eq!(DatasetType::from_api(t.api_name()), Some(t));
            assert_eq!(DatasetType::from_schema_name(t.schema_name()), Some(t));
            assert_eq!(t.arn_segment(), t.api_name().to_ascii_uppercase());
        }
        let domains = [
            ("ECOMMERCE", Some(Domain::Ecommerce)),
            ("VIDEO_ON_DEMAND", Some(Domain::VideoOnDemand)),
            ("ecommerce", None),
            ("RETAIL", None),
        ];
        for (text, want) in domains {
            assert_eq!(Domain::from_api(text), want, "{text:?}");
            assert_eq!(want.map(Domain::api_name), want.map(|_| text));
        }
    }

    #[test]
    fn fields_have_camel_case_property_names() {
        let cases = [
            ("NUMBER_OF_RATINGS", "numberOfRatings"),
            ("GENRE_L2", "genreL2"),
            ("FIELD_1", "field1"),
            ("DEVICE", "device"),
            ("VALUE", "value"),
            ("_PRIVATE__X", "privateX"),
        ];
        for (name, camel) in cases {
            let f =
                Field { name: name.into(), ty: FieldType::Int, nullable: false, categorical: false, textual: false };
            assert_eq!(f.camel_name(), camel, "{name}");
            assert_eq!(normalize_key(camel), normalize_key(name), "{name}: the camel name must map back");
        }
    }

    #[test]
    fn default_schema_has_the_eight_interaction_columns() {
        let names = field_names(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        assert_eq!(
            names,
            [
                "USER_ID",
                "ITEM_ID",
                "TIMESTAMP",
                "EVENT_TYPE",
                "EVENT_VALUE",
                "IMPRESSION",
                "RECOMMENDATION_ID",
                "EVENT_ATTRIBUTION_SOURCE"
            ]
        );
        let parsed = parse_schema(DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        assert_eq!(parsed.field_names(), names);
        assert_eq!(parsed.property_fields().count(), 0, "every default column comes from a request member");
        assert!(field_names("[]").is_err());
        assert!(field_names("{").is_err());
    }
}
