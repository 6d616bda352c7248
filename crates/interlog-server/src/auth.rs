//! Who is calling: SigV4 verification of every AWS request through `interlog-auth`, or, with
//! `--no-auth`, everyone is the root account.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use interlog_auth::Verifier;

use crate::api::error::ApiError;

/// The account and region a request acts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    /// Region for the ARNs of resources this request creates.
    pub region: String,
}

/// The authentication policy of a running server.
#[derive(Clone)]
pub enum Authenticator {
    SigV4 {
        verifier: Arc<Verifier>,
        pinned_region: Option<String>,
    },
    /// `--no-auth`: unsigned (and signed) requests act as this caller.
    Off(Caller),
}

impl Authenticator {
    /// Every check that needs no body (see [`Verifier::check_before_body`]): run before a
    /// request may hold any of the body budget, so an unauthenticated client holds nothing.
    pub fn check_before_body(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        match self {
            Authenticator::Off(_) => Ok(()),
            Authenticator::SigV4 { verifier, .. } => {
                verifier.check_before_body(uri, headers, SystemTime::now()).map_err(|e| {
                    if let Some(detail) = e.detail() {
                        tracing::debug!(code = e.code(), %detail, "authentication failed before the body");
                    }
                    ApiError::Auth(e)
                })
            }
        }
    }

    /// Verifies the request's signature over its exact body. Nothing else may run first: a
    /// rejected request must not reach validation or the store.
    pub fn authenticate(&self, parts: &Parts, body: &[u8]) -> Result<Caller, ApiError> {
        match self {
            Authenticator::Off(caller) => Ok(caller.clone()),
            Authenticator::SigV4 { verifier, pinned_region } => {
                let principal = verifier.verify(parts, body, SystemTime::now()).map_err(|e| {
                    if let Some(detail) = e.detail() {
                        tracing::debug!(code = e.code(), %detail, "authentication failed");
                    }
                    ApiError::Auth(e)
                })?;
                Ok(Caller { account: principal.account_id, region: pinned_region.clone().unwrap_or(principal.region) })
            }
        }
    }
}
