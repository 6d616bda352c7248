//! The one place where failures become AWS error responses: status, `x-amzn-ErrorType`, and the
//! body `{"__type": ..., "message": ...}` that every AWS SDK decodes (§2.6 of the spec).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use interlog_model::ValidationError;
use interlog_store::StoreError;

/// Which protocol answers: it decides the content type and, for some errors, the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// rest-json (`POST /events`): modeled errors carry their own status (404, 409).
    Data,
    /// JSON 1.1 (`X-Amz-Target`): every modeled error is 400.
    Control,
    /// Our own endpoints under `/_interlog/`.
    Interlog,
}

/// Every error the server answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceAlreadyExists(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InvalidNextToken(String),
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    RequestEntityTooLarge(String),
    #[error("{0}")]
    Throttling(String),
    /// The request body did not arrive in time (408; SDKs retry it).
    #[error("{0}")]
    RequestTimeout(String),
    /// The caller is authenticated but may not do this (a non-root account reading stats).
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The cause (for the server log, never for the client: the response carries
    /// [`INTERNAL_FAILURE_MESSAGE`] and the cause is logged with the request ID).
    #[error("{0}")]
    InternalFailure(String),
    /// The request's signature or key was refused (MissingAuthenticationToken, ...).
    #[error("{}", .0.message())]
    Auth(interlog_auth::AuthError),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidInput(_) => "InvalidInputException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::ResourceAlreadyExists(_) => "ResourceAlreadyExistsException",
            ApiError::ResourceInUse(_) => "ResourceInUseException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::InvalidNextToken(_) => "InvalidNextTokenException",
            ApiError::TooManyTags(_) => "TooManyTagsException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            ApiError::Throttling(_) => "ThrottlingException",
            ApiError::RequestTimeout(_) => "RequestTimeoutException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::InternalFailure(_) => "InternalFailure",
            ApiError::Auth(e) => e.code(),
        }
    }

    pub fn status(&self, plane: Plane) -> StatusCode {
        match (self, plane) {
            (ApiError::ResourceNotFound(_), Plane::Data | Plane::Interlog) => StatusCode::NOT_FOUND,
            (ApiError::ResourceInUse(_), Plane::Data | Plane::Interlog) => StatusCode::CONFLICT,
            // JSON 1.1 front ends answer an unknown X-Amz-Target with 400 (every modeled error there
            // is 400 too); a rest-json path that names no operation is a 404.
            (ApiError::UnknownOperation(_), Plane::Control) => StatusCode::BAD_REQUEST,
            (ApiError::UnknownOperation(_), _) => StatusCode::NOT_FOUND,
            (ApiError::RequestEntityTooLarge(_), _) => StatusCode::PAYLOAD_TOO_LARGE,
            (ApiError::ServiceUnavailable(_), _) => StatusCode::SERVICE_UNAVAILABLE,
            (ApiError::RequestTimeout(_), _) => StatusCode::REQUEST_TIMEOUT,
            (ApiError::AccessDenied(_), _) => StatusCode::FORBIDDEN,
            (ApiError::InternalFailure(_), _) => StatusCode::INTERNAL_SERVER_ERROR,
            // A malformed Authorization header is the client's syntax error; the rest are 403.
            (ApiError::Auth(e), _) if e.code() == "IncompleteSignatureException" => StatusCode::BAD_REQUEST,
            (ApiError::Auth(_), _) => StatusCode::FORBIDDEN,
            // ThrottlingException is 400 on AWS, which is what makes every SDK retry it.
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Attaches the protocol, which turns the error into a response.
    pub fn on(self, plane: Plane) -> AwsError {
        AwsError { plane, error: self }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::InvalidInput(e.to_string())
    }
}

/// The one mapping of storage failures to AWS errors. A failure the caller can act on keeps
/// its message; anything internal becomes `InternalFailure`, whose cause is logged (once, with
/// the request ID) and never sent.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => {
                ApiError::Throttling("Rate exceeded: the event store is not keeping up; retry with backoff".into())
            }
            StoreError::Unavailable(why) => {
                tracing::error!(reason = %why, "store unavailable");
                ApiError::ServiceUnavailable(
                    "The event store cannot write right now (see the server log); nothing was recorded. Retry later."
                        .into(),
                )
            }
            StoreError::NotFound(m) => ApiError::ResourceNotFound(m),
            StoreError::AlreadyExists(m) => ApiError::ResourceAlreadyExists(m),
            StoreError::Conflict(m) => ApiError::ResourceInUse(m),
            StoreError::LimitExceeded(m) => ApiError::LimitExceeded(m),
            StoreError::TooManyTags(m) => ApiError::TooManyTags(m),
            StoreError::Invalid(m) => ApiError::InvalidInput(m),
            StoreError::InvalidNextToken(m) => ApiError::InvalidNextToken(m),
            internal @ (StoreError::Foreign { .. } | StoreError::Internal(_)) => {
                ApiError::InternalFailure(format!("store failure: {internal}"))
            }
        }
    }
}

/// What clients are told about an internal failure: nothing of its cause (paths, SQL, library
/// messages), only how to find it in the server log.
pub const INTERNAL_FAILURE_MESSAGE: &str = "The server encountered an internal error. The server log has its cause \
     under this response's request ID (x-amzn-RequestId); retry, or give the operator that ID.";

/// The cause of an `InternalFailure`, carried in the response's extensions so that the
/// middleware that stamps the request ID logs it once, with that ID.
#[derive(Debug, Clone)]
pub struct InternalCause(pub String);

/// What a client was told when its request was refused, carried in the response's extensions
/// for the web debugger (`crate::debugger`), which shows it to the caller's account. Set on
/// every error response here, where errors are rendered, so no refusal escapes it.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

/// An [`ApiError`] bound to the protocol that answers it.
#[derive(Debug)]
pub struct AwsError {
    pub plane: Plane,
    pub error: ApiError,
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        let status = self.error.status(self.plane);
        let (message, cause) = match self.error {
            ApiError::InternalFailure(cause) => (INTERNAL_FAILURE_MESSAGE.to_owned(), Some(InternalCause(cause))),
            other => (other.to_string(), None),
        };
        let body = serde_json::json!({ "__type": code, "message": message }).to_string();
        let rejection = Rejection { code, message };
        let content_type = match self.plane {
            Plane::Control => "application/x-amz-json-1.1",
            Plane::Data | Plane::Interlog => "application/json",
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(code));
        if let Some(cause) = cause {
            response.extensions_mut().insert(cause);
        }
        response.extensions_mut().insert(rejection);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_protocol() {
        let nf = || ApiError::ResourceNotFound("x".into());
        assert_eq!(nf().status(Plane::Data), StatusCode::NOT_FOUND);
        assert_eq!(nf().status(Plane::Control), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::Throttling("x".into()).status(Plane::Data), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::UnknownOperation("x".into()).status(Plane::Control), StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::UnknownOperation("x".into()).status(Plane::Data), StatusCode::NOT_FOUND);
    }

    #[test]
    fn overload_is_throttling_so_sdks_retry() {
        assert_eq!(ApiError::from(StoreError::Overloaded).code(), "ThrottlingException");
    }

    /// What each storage failure must become: (code, status on the data plane, status on the
    /// control plane, whether the store's message reaches the client). The match has no
    /// wildcard, so a new `StoreError` variant does not compile until it is mapped here too.
    fn expected(e: &StoreError) -> (&'static str, u16, u16, bool) {
        match e {
            StoreError::Overloaded => ("ThrottlingException", 400, 400, false),
            StoreError::Unavailable(_) => ("ServiceUnavailable", 503, 503, false),
            StoreError::NotFound(_) => ("ResourceNotFoundException", 404, 400, true),
            StoreError::AlreadyExists(_) => ("ResourceAlreadyExistsException", 400, 400, true),
            StoreError::Conflict(_) => ("ResourceInUseException", 409, 400, true),
            StoreError::LimitExceeded(_) => ("LimitExceededException", 400, 400, true),
            StoreError::TooManyTags(_) => ("TooManyTagsException", 400, 400, true),
            StoreError::Invalid(_) => ("InvalidInputException", 400, 400, true),
            StoreError::InvalidNextToken(_) => ("InvalidNextTokenException", 400, 400, true),
            StoreError::Foreign { .. } | StoreError::Internal(_) => ("InternalFailure", 500, 500, false),
        }
    }

    /// A secret-looking detail in every variant that carries text, so the test can see whether
    /// it reaches the client.
    const DETAIL: &str = "/var/lib/interlog/interlog.db SELECT-secret";

    fn every_store_error() -> Vec<StoreError> {
        vec![
            StoreError::Overloaded,
            StoreError::Unavailable(DETAIL.into()),
            StoreError::NotFound(DETAIL.into()),
            StoreError::AlreadyExists(DETAIL.into()),
            StoreError::Conflict(DETAIL.into()),
            StoreError::LimitExceeded(DETAIL.into()),
            StoreError::TooManyTags(DETAIL.into()),
            StoreError::Invalid(DETAIL.into()),
            StoreError::InvalidNextToken(DETAIL.into()),
            StoreError::Foreign { location: DETAIL.into(), reason: DETAIL.into() },
            StoreError::internal(DETAIL),
            StoreError::from(std::io::Error::other(DETAIL)),
        ]
    }

    async fn answer(e: StoreError, plane: Plane) -> (u16, String, String, serde_json::Value, bool) {
        use http_body_util::BodyExt;
        let response = ApiError::from(e).on(plane).into_response();
        let status = response.status().as_u16();
        let header = response.headers()["x-amzn-ErrorType"].to_str().unwrap().to_owned();
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let logged = response.extensions().get::<InternalCause>().is_some_and(|c| c.0.contains(DETAIL));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, header, content_type, serde_json::from_slice(&body).unwrap(), logged)
    }

    #[tokio::test]
    async fn every_store_error_has_one_status_and_type_and_internal_causes_stay_internal() {
        let all = every_store_error();
        assert_eq!(all.len(), 12, "one sample per variant");
        for (data, control) in all.into_iter().zip(every_store_error()) {
            let (code, data_status, control_status, message_kept) = expected(&data);
            let what = format!("{data:?}");
            for (e, plane, status, content_type) in [
                (data, Plane::Data, data_status, "application/json"),
                (control, Plane::Control, control_status, "application/x-amz-json-1.1"),
            ] {
                let (got_status, header, got_type, body, logged) = answer(e, plane).await;
                assert_eq!(got_status, status, "{what} on {plane:?}");
                assert_eq!(header, code, "{what} on {plane:?}");
                assert_eq!(body["__type"], code, "{what} on {plane:?}");
                assert_eq!(got_type, content_type, "{what} on {plane:?}");
                let message = body["message"].as_str().unwrap();
                assert_eq!(message.contains(DETAIL), message_kept, "{what}: message {message:?}");
                if code == "InternalFailure" {
                    assert_eq!(message, INTERNAL_FAILURE_MESSAGE);
                    assert!(logged, "{what}: the cause must travel to the log, with the request ID");
                } else {
                    assert!(!logged, "{what}: nothing to log");
                }
            }
        }
    }

    #[tokio::test]
    async fn an_internal_failure_from_any_handler_sends_no_cause() {
        use http_body_util::BodyExt;
        let response = ApiError::InternalFailure(format!("control-plane task failed: {DETAIL}"))
            .on(Plane::Control)
            .into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.extensions().get::<InternalCause>().is_some_and(|c| c.0.contains(DETAIL)));
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["message"], INTERNAL_FAILURE_MESSAGE);
    }
}
