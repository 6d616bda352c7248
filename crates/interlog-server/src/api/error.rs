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
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The cause is logged, never sent: clients see a generic message.
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
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::InternalFailure(_) => "InternalFailure",
            ApiError::Auth(e) => e.code(),
        }
    }

    pub fn status(&self, plane: Plane) -> StatusCode {
        match (self, plane) {
            (ApiError::ResourceNotFound(_), Plane::Data | Plane::Interlog) => StatusCode::NOT_FOUND,
            (ApiError::ResourceInUse(_), Plane::Data | Plane::Interlog) => StatusCode::CONFLICT,
            (ApiError::UnknownOperation(_), _) => StatusCode::NOT_FOUND,
            (ApiError::RequestEntityTooLarge(_), _) => StatusCode::PAYLOAD_TOO_LARGE,
            (ApiError::ServiceUnavailable(_), _) => StatusCode::SERVICE_UNAVAILABLE,
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
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::InternalFailure("The server encountered an internal error; nothing was recorded.".into())
            }
        }
    }
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
        let body = serde_json::json!({ "__type": code, "message": self.error.to_string() }).to_string();
        let content_type = match self.plane {
            Plane::Control => "application/x-amz-json-1.1",
            Plane::Data | Plane::Interlog => "application/json",
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(code));
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
        assert_eq!(ApiError::UnknownOperation("x".into()).status(Plane::Control), StatusCode::NOT_FOUND);
    }

    #[test]
    fn overload_is_throttling_so_sdks_retry() {
        assert_eq!(ApiError::from(StoreError::Overloaded).code(), "ThrottlingException");
    }
}
