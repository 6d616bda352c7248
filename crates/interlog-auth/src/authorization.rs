//! Parsing of the SigV4 `Authorization` header:
//! `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/personalize/aws4_request, SignedHeaders=host;x-amz-date, Signature=<hex>`.
//!
//! See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-signing-elements.html>.
//! Everything is borrowed from the header value so parsing allocates nothing on success;
//! every failure is an [`AuthError::IncompleteSignature`] whose message names the problem.

use crate::error::AuthError;

/// The only algorithm accepted (SigV4a's `AWS4-ECDSA-P256-SHA256` is not supported).
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The longest `Authorization` value echoed back in an error message; the rest is elided so
/// a hostile client cannot make the error body arbitrarily large.
const ECHO_LIMIT: usize = 512;

/// A parsed `Authorization` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthorizationV4<'a> {
    pub(crate) access_key_id: &'a str,
    /// `yyyymmdd` from the credential scope.
    pub(crate) scope_date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    /// `AKID/date/region/service`: the signing-key cache key, borrowed from the header.
    pub(crate) key_scope: &'a str,
    /// `date/region/service/aws4_request`: the scope line of the string to sign.
    pub(crate) credential_scope: &'a str,
    /// The `SignedHeaders` value exactly as the client sent it (it is part of the canonical request).
    pub(crate) signed_headers: &'a str,
    pub(crate) signature: &'a str,
}

impl<'a> AuthorizationV4<'a> {
    /// Parses the header value.
    ///
    /// # Errors
    ///
    /// [`AuthError::IncompleteSignature`] naming the first problem found.
    pub(crate) fn parse(header: &'a str) -> Result<Self, AuthError> {
        let header = header.trim();
        let (algorithm, rest) = header.split_once(' ').unwrap_or((header, ""));
        if algorithm != ALGORITHM {
            return Err(AuthError::incomplete(format!(
                "Unsupported AWS 'algorithm': '{}'. The only supported algorithm is '{ALGORITHM}'. Authorization={}",
                truncate(algorithm, 64),
                echo(header)
            )));
        }

        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(AuthError::incomplete(format!(
                    "'{}' not a valid key=value pair (missing equal-sign) in Authorization header: '{}'",
                    truncate(part, 64),
                    echo(header)
                )));
            };
            let slot = match key.trim() {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                // Unknown parameters carry no meaning for SigV4; tolerate them like AWS does.
                _ => continue,
            };
            if slot.is_some() {
                return Err(AuthError::incomplete(format!(
                    "Authorization header has more than one '{}' parameter. Authorization={}",
                    key.trim(),
                    echo(header)
                )));
            }
            *slot = Some(value.trim());
        }

        let missing: String = [("Credential", credential), ("Signature", signature), ("SignedHeaders", signed_headers)]
            .iter()
            .filter(|(_, value)| value.is_none_or(str::is_empty))
            .map(|(name, _)| format!("Authorization header requires '{name}' parameter. "))
            .collect();
        if !missing.is_empty() {
            return Err(AuthError::incomplete(format!("{missing}Authorization={}", echo(header))));
        }
        // All three are present and non-empty past this point.
        let credential = credential.unwrap_or_default();
        let signed_headers = signed_headers.unwrap_or_default();
        let signature = signature.unwrap_or_default();

        if signed_headers.split(';').any(str::is_empty) {
            return Err(AuthError::incomplete(format!(
                "SignedHeaders must be a ';'-separated list of header names, got '{}'.",
                truncate(signed_headers, 256)
            )));
        }

        Self::parse_credential(credential).map(|scope| Self { signed_headers, signature, ..scope })
    }

    /// Splits `AKID/yyyymmdd/region/service/aws4_request`.
    fn parse_credential(credential: &'a str) -> Result<Self, AuthError> {
        let mut parts = credential.split('/');
        let (Some(access_key_id), Some(scope_date), Some(region), Some(service), Some(terminator), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::incomplete(format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{}'",
                truncate(credential, 256)
            )));
        };
        if access_key_id.is_empty() {
            return Err(AuthError::incomplete(
                "Credential must start with an access key id, e.g. keyid/date/region/service/term.",
            ));
        }
        if scope_date.len() != 8 || !scope_date.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AuthError::incomplete(format!(
                "Credential date must be in the form YYYYMMDD, got '{}'.",
                truncate(scope_date, 64)
            )));
        }
        if region.is_empty() {
            return Err(AuthError::incomplete("Credential should be scoped to a valid region, not ''. "));
        }
        if service.is_empty() {
            return Err(AuthError::incomplete("Credential should be scoped to a valid service, not ''. "));
        }
        if terminator != "aws4_request" {
            return Err(AuthError::incomplete(format!(
                "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
                truncate(terminator, 64)
            )));
        }
        let key_scope_len = credential.len() - "/aws4_request".len();
        Ok(Self {
            access_key_id,
            scope_date,
            region,
            service,
            key_scope: &credential[..key_scope_len],
            credential_scope: &credential[access_key_id.len() + 1..],
            signed_headers: "",
            signature: "",
        })
    }

    /// The signed header names, in the client's order.
    pub(crate) fn signed_header_names(&self) -> impl Iterator<Item = &'a str> {
        self.signed_headers.split(';')
    }
}

/// The header value as echoed in error messages (AWS echoes it; it holds no secret).
pub(crate) fn echo(header: &str) -> &str {
    truncate(header, ECHO_LIMIT)
}

fn truncate(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTOCORE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/personalize/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=4e3a171673260003c55c4a563558144f043c3c1a61b54efb659a46fbd4afa5a8";

    fn message(header: &str) -> String {
        match AuthorizationV4::parse(header) {
            Err(AuthError::IncompleteSignature { message }) => message,
            other => panic!("expected IncompleteSignature for {header:?}, got {other:?}"),
        }
    }

    #[test]
    fn parses_botocore_header() {
        let auth = AuthorizationV4::parse(BOTOCORE).unwrap();
        assert_eq!(auth.access_key_id, "AKIDEXAMPLE");
        assert_eq!(auth.scope_date, "20240101");
        assert_eq!(auth.region, "us-east-1");
        assert_eq!(auth.service, "personalize");
        assert_eq!(auth.key_scope, "AKIDEXAMPLE/20240101/us-east-1/personalize");
        assert_eq!(auth.credential_scope, "20240101/us-east-1/personalize/aws4_request");
        assert_eq!(auth.signed_headers, "content-type;host;x-amz-date");
        assert_eq!(auth.signature.len(), 64);
    }

    #[test]
    fn accepts_any_parameter_order_and_no_spaces() {
        let auth = AuthorizationV4::parse(
            "AWS4-HMAC-SHA256 Signature=ab,SignedHeaders=host,Credential=K/20240101/r/s/aws4_request",
        )
        .unwrap();
        assert_eq!(auth.signature, "ab");
        assert_eq!(auth.signed_headers, "host");
        assert_eq!(auth.access_key_id, "K");
    }

    #[test]
    fn rejects_other_algorithms() {
        assert!(message("AWS4-HMAC-SHA512 Credential=a").contains("Unsupported AWS 'algorithm'"));
        assert!(message("Bearer abc").contains("'Bearer'"));
        assert!(message("AWS AKID:sig").contains("'AWS'"));
    }

    #[test]
    fn names_every_missing_parameter() {
        let m = message("AWS4-HMAC-SHA256 Credential=K/20240101/r/s/aws4_request");
        assert!(m.contains("requires 'Signature' parameter"), "{m}");
        assert!(m.contains("requires 'SignedHeaders' parameter"), "{m}");
        assert!(!m.contains("requires 'Credential'"), "{m}");
        let m = message("AWS4-HMAC-SHA256");
        assert!(m.contains("requires 'Credential' parameter"), "{m}");
        let m = message("AWS4-HMAC-SHA256 Credential=, SignedHeaders=host, Signature=ab");
        assert!(m.contains("requires 'Credential' parameter"), "{m}");
    }

    #[test]
    fn rejects_pairs_without_equal_sign_and_duplicates() {
        assert!(message("AWS4-HMAC-SHA256 Credential").contains("missing equal-sign"));
        assert!(message(
            "AWS4-HMAC-SHA256 Credential=K/20240101/r/s/aws4_request, Signature=a, Signature=b, SignedHeaders=host"
        )
        .contains("more than one 'Signature'"));
    }

    #[test]
    fn rejects_bad_scope_shapes() {
        let with =
            |cred: &str| message(&format!("AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders=host, Signature=ab"));
        assert!(with("AKID/20240101/us-east-1/personalize").contains("exactly 5"));
        assert!(with("AKID/20240101/us-east-1/personalize/aws4_request/x").contains("exactly 5"));
        assert!(with("/20240101/us-east-1/personalize/aws4_request").contains("access key id"));
        assert!(with("AKID/2024-01-01/us-east-1/personalize/aws4_request").contains("YYYYMMDD"));
        assert!(with("AKID/20240101//personalize/aws4_request").contains("valid region"));
        assert!(with("AKID/20240101/us-east-1//aws4_request").contains("valid service"));
        assert!(with("AKID/20240101/us-east-1/personalize/aws5_request").contains("terminator"));
    }

    #[test]
    fn rejects_empty_signed_header_names() {
        let m = message(
            "AWS4-HMAC-SHA256 Credential=K/20240101/r/s/aws4_request, SignedHeaders=host;;x-amz-date, Signature=ab",
        );
        assert!(m.contains("SignedHeaders"), "{m}");
    }

    #[test]
    fn truncates_echo_on_char_boundary() {
        let long = "é".repeat(600);
        assert!(echo(&long).len() <= ECHO_LIMIT);
    }
}
