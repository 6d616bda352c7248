//! Errors of the storage boundary: kinds the server can act on, with no engine type in them.

/// Why a store operation failed. The server maps each kind to one AWS error; nothing here knows
/// HTTP, and no engine's error type leaks through (engines wrap theirs in [`StoreError::Internal`]
/// or classify it into one of the other kinds).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full: the store is not keeping up. Retrying later is the right answer.
    #[error("the store's write queue is full")]
    Overloaded,
    /// The store cannot write or read right now (disk full, database unreachable, shutting
    /// down); nothing of the operation happened and retrying later may succeed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// No such resource in the caller's account.
    #[error("{0}")]
    NotFound(String),
    /// A resource with that ARN or name already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource exists but its state or its dependants forbid the operation.
    #[error("{0}")]
    Conflict(String),
    /// A documented quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// More tags than a resource may carry.
    #[error("{0}")]
    TooManyTags(String),
    /// The request refers to resources that do not fit together.
    #[error("{0}")]
    Invalid(String),
    /// A pagination token this store did not issue.
    #[error("{0}")]
    InvalidNextToken(String),
    /// The location holds something that is not an interlog store, one of a newer layout, or
    /// one that cannot be opened: start-up stops with this message.
    #[error("{location}: {reason}")]
    Foreign { location: String, reason: String },
    /// Anything else; the cause is for the log, never for a client.
    #[error("internal store error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps an engine error that fits no other kind.
    pub fn internal(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Internal(e.into())
    }

    /// True for failures that a later retry of the same operation may not meet.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Overloaded | StoreError::Unavailable(_))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Internal(Box::new(e))
    }
}
