//! `interlog serve`: one port that speaks Personalize Events (rest-json) and, by `X-Amz-Target`,
//! the Personalize control plane (JSON 1.1), in front of an [`interlog_store::EventStore`].
//!
//! This is the only crate that knows HTTP status codes: [`api::error`] maps every failure of the
//! layers below to the AWS error shape.

mod admission;
pub mod api;
pub mod auth;
pub mod config;
pub mod debugger;
pub mod engine;
pub mod file_root;
mod files;
pub mod flags;
pub mod objects;
pub mod service;
pub mod sinks;
pub mod startup;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use startup::Application;
