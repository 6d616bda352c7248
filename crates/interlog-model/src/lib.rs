//! The Amazon Personalize Events wire model and its validation.
//!
//! This crate turns request bodies into validated domain records and describes every way a
//! request can be wrong. It does no I/O and knows nothing of HTTP status codes: the server maps
//! [`ValidationError`] to an AWS error response, the store persists [`Interaction`]s.

pub mod arn;
pub mod control;
pub mod event;
pub mod properties;
pub mod put_events;
pub mod requests;
pub mod schema;
pub mod validation;

pub use event::Interaction;
pub use put_events::{parse_put_events, PutEvents};
pub use validation::{ValidationError, Violation};
