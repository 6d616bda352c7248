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
