//! Why a request failed authentication, as the AWS error code and message the client sees.
//!
//! This crate deliberately knows nothing about HTTP status codes: the server maps
//! [`AuthError::code`] to a status (only the server knows HTTP status codes). The messages
//! copy AWS's own wording where clients or people are likely to search for it, which is why
//! they break the project's "lower-case, no trailing period" rule for messages.

/// The standard AWS text for a signature that does not match.
pub(crate) const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// A failed SigV4 verification. Never contains a secret access key or a derived signing key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request has no `Authorization` header (code `MissingAuthenticationTokenException`).
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,

    /// The `Authorization` header or the headers it relies on are malformed: wrong algorithm,
    /// missing `Credential`/`SignedHeaders`/`Signature`, a bad credential scope, a signed
    /// header absent from the request, `host` not signed, no `X-Amz-Date`/`Date`
    /// (code `IncompleteSignatureException`). The message says what is wrong.
    #[error("{message}")]
    IncompleteSignature {
        /// What is wrong, in AWS's wording where AWS has one.
        message: String,
    },

    /// The access key is unknown, or the session token does not match the key's
    /// (code `UnrecognizedClientException`). The client only ever sees AWS's fixed message;
    /// `reason` is for the server's logs.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient {
        /// Why, for operators: never sent to the client, never contains a secret.
        reason: &'static str,
    },

    /// The credential scope names the wrong service or a date other than the request's
    /// (code `InvalidSignatureException`).
    #[error("{message}")]
    InvalidScope {
        /// An actionable message, e.g. `Credential should be scoped to correct service: 'personalize'. `.
        message: String,
    },

    /// The request time is more than the allowed skew (15 minutes) before or after the
    /// server's clock (code `InvalidSignatureException`).
    #[error("{message}")]
    SignatureExpired {
        /// AWS's wording: `Signature expired: … is now earlier than … (… - 15 min.)` or
        /// `Signature not yet current: … is still later than … (… + 15 min.)`.
        message: String,
    },

    /// `X-Amz-Content-Sha256: UNSIGNED-PAYLOAD`: the signature would not cover the body, so a
    /// captured request could be replayed with any other body (code `InvalidSignatureException`).
    #[error("This service does not accept UNSIGNED-PAYLOAD: sign the SHA-256 of the request body in X-Amz-Content-Sha256 (or leave the header out), as every AWS SDK does.")]
    UnsignedPayload,

    /// The signature (or the payload hash) does not match (code `InvalidSignatureException`).
    #[error("{}", SIGNATURE_MISMATCH_MESSAGE)]
    SignatureDoesNotMatch {
        /// The canonical request the server computed (no secrets in it), for debug logs.
        canonical_request: String,
        /// The string to sign the server computed, for debug logs.
        string_to_sign: String,
        /// Set when the failure is a payload-hash mismatch rather than a bad signature.
        note: Option<&'static str>,
    },
}

impl AuthError {
    /// The AWS error code for the `__type` / `x-amzn-ErrorType` of the response.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature { .. } => "IncompleteSignatureException",
            Self::UnrecognizedClient { .. } => "UnrecognizedClientException",
            Self::InvalidScope { .. }
            | Self::SignatureExpired { .. }
            | Self::UnsignedPayload
            | Self::SignatureDoesNotMatch { .. } => "InvalidSignatureException",
        }
    }

    /// The human-readable message for the response body's `message` member.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Extra detail for the server's debug log (never for the client): the canonical request
    /// and string to sign on a mismatch, or why a client was not recognised.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::UnrecognizedClient { reason } => Some((*reason).to_owned()),
            Self::SignatureDoesNotMatch { canonical_request, string_to_sign, note } => {
                let note = note.map(|n| format!("{n}\n\n")).unwrap_or_default();
                let canonical_request = redact_session_token(canonical_request);
                Some(format!(
                    "{note}The Canonical String for this request should have been\n'{canonical_request}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
                ))
            }
            _ => None,
        }
    }

    pub(crate) fn incomplete(message: impl Into<String>) -> Self {
        Self::IncompleteSignature { message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_is_the_aws_text() {
        let err = AuthError::SignatureDoesNotMatch {
            canonical_request: String::new(),
            string_to_sign: String::new(),
            note: None,
        };
        assert_eq!(err.message(), SIGNATURE_MISMATCH_MESSAGE);
        assert_eq!(err.code(), "InvalidSignatureException");
    }
}

/// A session token is a credential: the debug log shows that one was signed, not its value.
fn redact_session_token(canonical_request: &str) -> String {
    canonical_request
        .lines()
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("x-amz-security-token:") {
                "x-amz-security-token:<redacted>"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod redaction_tests {
    #[test]
    fn session_tokens_never_reach_the_debug_log() {
        let out = super::redact_session_token(
            "POST\n/\n\nhost:x\nx-amz-security-token:SECRET-TOKEN\n\nhost;x-amz-security-token",
        );
        assert!(!out.contains("SECRET-TOKEN"), "{out}");
        assert!(out.contains("x-amz-security-token:<redacted>"));
    }
}
