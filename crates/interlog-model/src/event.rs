//! The domain record of one recorded item interaction, as it is stored and exported.

/// One validated event from a PutEvents call, with everything the request said about it.
///
/// Field names follow the Item interactions dataset columns they feed (§8 of the spec).
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    /// The client's eventId, or a generated UUID when it sent none.
    pub event_id: String,
    pub session_id: String,
    pub user_id: Option<String>,
    /// Top-level `itemId`, or the legacy `properties.itemId` when the member is absent.
    pub item_id: Option<String>,
    pub event_type: String,
    /// Top-level `eventValue`, or the legacy `properties.eventValue`; always finite.
    pub event_value: Option<f64>,
    /// `sentAt` in seconds since the epoch, with the precision the client sent.
    pub sent_at: f64,
    /// The `properties` JSON object, exactly as the client sent it (a string).
    pub properties: Option<String>,
    pub recommendation_id: Option<String>,
    pub impression: Option<Vec<String>>,
    pub event_attribution_source: Option<String>,
    /// Why the event, accepted and kept, would not reach a model as sent (an undeclared `properties` key); filled
    /// by the server's schema check, stored with the event and read back with it. Empty for most events.
    pub flags: Vec<crate::Flag>,
}

impl Interaction {
    /// The `TIMESTAMP` column: whole seconds, floored (the dataset column is a `long`).
    pub fn timestamp(&self) -> i64 {
        self.sent_at.floor() as i64
    }

    /// The `IMPRESSION` column: the impression list joined with `|`.
    pub fn impression_joined(&self) -> Option<String> {
        self.impression.as_ref().map(|list| list.join("|"))
    }
}

/// One validated event from a PutActionInteractions call: a user's interaction with an action.
///
/// Field names follow the Action interactions dataset columns they feed (§3.5, §7.3).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionInteraction {
    /// The client's eventId, or a generated UUID when it sent none; the deduplication key.
    pub event_id: String,
    pub action_id: String,
    pub user_id: Option<String>,
    pub session_id: String,
    /// `timestamp` in seconds since the epoch, with the precision the client sent.
    pub timestamp: f64,
    /// `Viewed`, `Taken`, `Not Taken` in the documentation; any 1..256 characters on the wire.
    pub event_type: String,
    pub recommendation_id: Option<String>,
    /// Action IDs; accepted and exported, though Personalize does not train on them.
    pub impression: Option<Vec<String>>,
    /// The `properties` JSON object, exactly as the client sent it (a string).
    pub properties: Option<String>,
    /// Why the action interaction, accepted and kept, would not reach a model as sent; as [`Interaction::flags`].
    pub flags: Vec<crate::Flag>,
}

impl ActionInteraction {
    /// The `TIMESTAMP` column: whole seconds, floored (the dataset column is a `long`).
    pub fn timestamp_seconds(&self) -> i64 {
        self.timestamp.floor() as i64
    }

    /// The `IMPRESSION` column: the impression list joined with `|`.
    pub fn impression_joined(&self) -> Option<String> {
        self.impression.as_ref().map(|list| list.join("|"))
    }

    /// The value of a dataset column that a request member fills (empty when the optional member was not
    /// sent); `None` for every other column, which comes from `properties` (§7.5).
    pub fn member_cell(&self, column: &str) -> Option<String> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Some(match column {
            "USER_ID" => text(&self.user_id),
            "ACTION_ID" => self.action_id.clone(),
            "TIMESTAMP" => self.timestamp_seconds().to_string(),
            "EVENT_TYPE" => self.event_type.clone(),
            "IMPRESSION" => self.impression_joined().unwrap_or_default(),
            "RECOMMENDATION_ID" => text(&self.recommendation_id),
            _ => return None,
        })
    }

    /// `properties` decoded; `None` when there are none (the parser refused anything but an object).
    pub fn properties_map(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        crate::record::properties_map(self.properties.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::DatasetType;

    #[test]
    fn action_interactions_fill_every_member_column_of_their_dataset() {
        let a = ActionInteraction {
            event_id: "e".into(),
            action_id: "a1".into(),
            user_id: None,
            session_id: "s".into(),
            timestamp: 1_700_000_000.9,
            event_type: "Not Taken".into(),
            recommendation_id: Some("RID-1".into()),
            impression: Some(vec!["a1".into(), "a2".into()]),
            properties: Some(r#"{"numberOfActions": "12"}"#.into()),
            flags: vec![],
        };
        let cells: Vec<Option<String>> =
            DatasetType::ActionInteractions.member_columns().iter().map(|c| a.member_cell(c)).collect();
        let expected = ["", "a1", "1700000000", "Not Taken", "a1|a2", "RID-1"];
        assert_eq!(cells, expected.map(|c| Some(c.to_owned())));
        assert_eq!(a.member_cell("NUMBER_OF_ACTIONS"), None);
        assert_eq!(a.properties_map().unwrap()["numberOfActions"], "12");
    }
}
