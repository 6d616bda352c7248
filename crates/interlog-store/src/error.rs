//! Errors of the storage boundary.

use std::path::PathBuf;

/// Why a store operation failed. The server maps these to AWS errors; nothing here knows HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The write queue is full: the disk is not keeping up. Retrying later is the right answer.
    #[error("the store's write queue is full")]
    Overloaded,
    /// The store is shutting down or its writer stopped.
    #[error("the store is not accepting writes: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The resource exists but its state forbids the operation (ResourceInUseException).
    #[error("{0}")]
    Conflict(String),
    /// A documented quota would be exceeded (LimitExceededException).
    #[error("{0}")]
    LimitExceeded(String),
    /// More tags than a resource may carry (TooManyTagsException).
    #[error("{0}")]
    TooManyTags(String),
    /// The request refers to resources that do not fit together (InvalidInputException).
    #[error("{0}")]
    Invalid(String),
    /// A pagination token this store did not issue (InvalidNextTokenException).
    #[error("{0}")]
    InvalidNextToken(String),
    /// The data dir holds something that is not an interlog store, or one we cannot read.
    #[error("{path}: {reason}")]
    Foreign { path: PathBuf, reason: String },
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage engine failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    /// True when the disk refused the write (full, read-only): retrying may succeed once fixed.
    pub fn is_disk_fault(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, C::DiskFull | C::ReadOnly | C::SystemIoFailure | C::CannotOpen)
            }
            StoreError::Io(_) => true,
            _ => false,
        }
    }
}
