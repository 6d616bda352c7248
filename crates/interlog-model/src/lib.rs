//! The Amazon Personalize Events wire model and its validation.
//!
//! This crate turns request bodies into validated domain records and describes every way a
//! request can be wrong. It does no I/O and knows nothing of HTTP status codes: the server maps
//! [`ValidationError`] to an AWS error response, the store persists [`Interaction`]s,
//! [`ActionInteraction`]s and keyed [`Record`]s (items, users, actions).

pub mod arn;
pub mod control;
pub mod event;
pub mod flag;
pub mod import;
pub mod properties;
pub mod put_action_interactions;
pub mod put_events;
pub mod put_records;
pub mod record;
pub mod requests;
pub mod schema;
pub mod suspect;
pub mod validation;
pub mod wire;

pub use event::{ActionInteraction, Interaction};
pub use flag::{Flag, FlagCounts, FlagKind};
pub use put_action_interactions::{parse_put_action_interactions, PutActionInteractions};
pub use put_events::{parse_put_events, PutEvents};
pub use put_records::{parse_put_actions, parse_put_items, parse_put_records, parse_put_users};
pub use record::{PutRecords, Record, RecordKind};
pub use validation::{ValidationError, Violation};
