//! The domain records of the keyed datasets: one item, user or action as PutItems, PutUsers or
//! PutActions sent it. The store keeps the latest write per ID; the export writes one row per ID.

use serde_json::{Map, Value};

use crate::schema::DatasetType;

/// Which keyed dataset a record belongs to; everything that differs between PutItems, PutUsers and
/// PutActions is a method of this type, so their parser, store and export are one code path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Item,
    User,
    Action,
}

impl RecordKind {
    pub const ALL: [RecordKind; 3] = [RecordKind::Item, RecordKind::User, RecordKind::Action];

    /// The API operation: `PutItems`.
    pub fn operation(self) -> &'static str {
        match self {
            RecordKind::Item => "PutItems",
            RecordKind::User => "PutUsers",
            RecordKind::Action => "PutActions",
        }
    }

    /// The HTTP path of the operation (§2.1).
    pub fn http_path(self) -> &'static str {
        match self {
            RecordKind::Item => "/items",
            RecordKind::User => "/users",
            RecordKind::Action => "/actions",
        }
    }

    /// The request member holding the records: `items`.
    pub fn list_member(self) -> &'static str {
        match self {
            RecordKind::Item => "items",
            RecordKind::User => "users",
            RecordKind::Action => "actions",
        }
    }

    /// The record member holding the ID: `itemId`.
    pub fn id_member(self) -> &'static str {
        match self {
            RecordKind::Item => "itemId",
            RecordKind::User => "userId",
            RecordKind::Action => "actionId",
        }
    }

    /// The dataset column the ID fills: `ITEM_ID`.
    pub fn id_column(self) -> &'static str {
        match self {
            RecordKind::Item => "ITEM_ID",
            RecordKind::User => "USER_ID",
            RecordKind::Action => "ACTION_ID",
        }
    }

    /// The dataset type `datasetArn` must name.
    pub fn dataset_type(self) -> DatasetType {
        match self {
            RecordKind::Item => DatasetType::Items,
            RecordKind::User => DatasetType::Users,
            RecordKind::Action => DatasetType::Actions,
        }
    }

    /// The kind whose records a dataset of this type holds; `None` for the two event datasets.
    pub fn of_dataset_type(dataset_type: DatasetType) -> Option<RecordKind> {
        RecordKind::ALL.into_iter().find(|k| k.dataset_type() == dataset_type)
    }

    /// The model's maximum length of `properties`, in characters (§3.2-3.4).
    pub fn max_properties_chars(self) -> usize {
        match self {
            RecordKind::Item | RecordKind::Action => 32_000,
            RecordKind::User => 24_000,
        }
    }

    /// The model documentation's example of `properties` for this kind, quoted in messages.
    pub fn properties_example(self) -> &'static str {
        match self {
            RecordKind::Item => r#"{"numberOfRatings": "12"}"#,
            RecordKind::User => r#"{"numberOfVideosWatched": "45"}"#,
            RecordKind::Action => r#"{"value": "100"}"#,
        }
    }
}

impl std::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RecordKind::Item => "item",
            RecordKind::User => "user",
            RecordKind::Action => "action",
        })
    }
}

/// One validated item, user or action. Its kind is the request's ([`PutRecords::kind`]), or the dataset's
/// when it is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `itemId` / `userId` / `actionId`: the key, 1..256 characters.
    pub id: String,
    /// The `properties` JSON object exactly as the client sent it (a string); validated to be an object.
    pub properties: Option<String>,
    /// Why the record, accepted and kept, would not reach a model as sent (an undeclared `properties` key); filled
    /// by the server's schema check, stored with the record and read back with it. Empty for most records.
    pub flags: Vec<crate::Flag>,
}

impl Record {
    /// The value of a dataset column that a request member fills: the ID column, `None` for every other
    /// column (those come from `properties`, §7.5).
    pub fn member_cell(&self, kind: RecordKind, column: &str) -> Option<String> {
        (column == kind.id_column()).then(|| self.id.clone())
    }

    /// `properties` decoded; `None` when there are none (the parser refused anything but an object).
    pub fn properties_map(&self) -> Option<Map<String, Value>> {
        properties_map(self.properties.as_deref())
    }
}

/// A decoded `properties` string; `None` when absent or (in stored data, never) not an object.
pub(crate) fn properties_map(text: Option<&str>) -> Option<Map<String, Value>> {
    match serde_json::from_str(text?) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A validated PutItems, PutUsers or PutActions request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRecords {
    pub kind: RecordKind,
    /// The dataset the records go to; syntactically a Personalize ARN, not yet resolved.
    pub dataset_arn: String,
    /// In request order: when one ID appears twice, the later record is the latest write.
    pub records: Vec<Record>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_their_members_columns_and_datasets() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::of_dataset_type(kind.dataset_type()), Some(kind));
            assert_eq!(kind.dataset_type().member_columns(), [kind.id_column()]);
            assert_eq!(crate::wire::normalize_key(kind.id_member()), crate::wire::normalize_key(kind.id_column()));
            assert_eq!(format!("/{}", kind.list_member()), kind.http_path());
            assert!(kind.operation().to_ascii_lowercase().ends_with(kind.list_member()));
        }
        assert_eq!(RecordKind::of_dataset_type(DatasetType::Interactions), None);
        assert_eq!(RecordKind::of_dataset_type(DatasetType::ActionInteractions), None);
    }

    #[test]
    fn only_the_id_column_comes_from_a_member() {
        let r = Record { id: "i1".into(), properties: Some(r#"{"genres": "a|b"}"#.into()), flags: vec![] };
        assert_eq!(r.member_cell(RecordKind::Item, "ITEM_ID").as_deref(), Some("i1"));
        assert_eq!(r.member_cell(RecordKind::Item, "GENRES"), None);
        assert_eq!(r.member_cell(RecordKind::User, "ITEM_ID"), None);
        assert_eq!(r.properties_map().unwrap()["genres"], "a|b");
        assert_eq!(Record { id: "i".into(), properties: None, flags: vec![] }.properties_map(), None);
    }
}
