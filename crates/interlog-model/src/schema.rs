//! Avro schemas of Personalize datasets: the parts the event path needs (field names and types).

use serde::Deserialize;

/// The default Interactions schema that interlog creates on first start.
pub const DEFAULT_INTERACTIONS_SCHEMA: &str = r#"{"type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema", "fields": [{"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"}, {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}, {"name": "EVENT_VALUE", "type": ["null", "float"]}, {"name": "IMPRESSION", "type": ["null", "string"]}, {"name": "RECOMMENDATION_ID", "type": ["null", "string"]}, {"name": "EVENT_ATTRIBUTION_SOURCE", "type": ["null", "string"]}], "version": "1.0"}"#;

/// One column of a dataset, in schema order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Field {
    pub name: String,
}

#[derive(Deserialize)]
struct Record {
    fields: Vec<Field>,
}

/// The column names of a schema, in order: the header of an export.
pub fn field_names(schema_json: &str) -> Result<Vec<String>, String> {
    let record: Record =
        serde_json::from_str(schema_json).map_err(|e| format!("the schema is not an Avro record: {e}"))?;
    Ok(record.fields.into_iter().map(|f| f.name).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_schema_has_the_eight_interaction_columns() {
        let names = super::field_names(super::DEFAULT_INTERACTIONS_SCHEMA).unwrap();
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
    }
}
