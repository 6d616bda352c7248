//! SQLite's errors classified into the boundary's kinds, so no rusqlite type leaves the crate.

use interlog_store::StoreError;
use rusqlite::ErrorCode;

/// What a failure means for the writer that met it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// The disk or the file refused (full, I/O error, read-only, locked): the operation did not
    /// happen, a later one may succeed. The writer reopens its connection before the next one.
    Transient,
    /// The file is damaged: nothing this process does will make it writable again.
    Corrupt,
}

/// The fault a SQLite error reports, if it is one.
pub(crate) fn fault(e: &rusqlite::Error) -> Option<Fault> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::OutOfMemory => Some(Fault::Transient),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Some(Fault::Corrupt),
            _ => None,
        },
        _ => None,
    }
}

/// Why the disk refused, in words an operator can act on.
fn reason(e: &rusqlite::Error) -> String {
    let what = match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DiskFull => "the disk is full",
            ErrorCode::SystemIoFailure => "a disk I/O error",
            ErrorCode::ReadOnly => "the database file is read-only",
            ErrorCode::CannotOpen => "the database file cannot be opened",
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "the database is locked by another process",
            ErrorCode::FileLockingProtocolFailed => "file locking failed",
            ErrorCode::OutOfMemory => "out of memory",
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => "the database file is damaged",
            _ => "the database failed",
        },
        _ => "the database failed",
    };
    format!("{what} ({e})")
}

/// Classifies an error met anywhere in the engine: disk and lock faults are `Unavailable`
/// (503, retry later), the rest `Internal` (a bug, logged, never shown to a client).
pub(crate) fn classify(e: rusqlite::Error) -> StoreError {
    match fault(&e) {
        Some(_) => StoreError::Unavailable(reason(&e)),
        None => StoreError::internal(e),
    }
}

/// True when a write failed because a UNIQUE or PRIMARY KEY constraint is taken.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation)
}

/// `?` on rusqlite results inside the engine.
pub(crate) trait Classify<T> {
    fn classified(self) -> Result<T, StoreError>;
}

impl<T> Classify<T> for rusqlite::Result<T> {
    fn classified(self) -> Result<T, StoreError> {
        self.map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn disk_faults_are_unavailable_and_the_rest_internal() {
        for code in [rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_IOERR_WRITE, rusqlite::ffi::SQLITE_BUSY] {
            assert!(matches!(classify(failure(code)), StoreError::Unavailable(_)), "{code}");
        }
        assert!(
            matches!(classify(failure(rusqlite::ffi::SQLITE_FULL)), StoreError::Unavailable(m) if m.starts_with("the disk is full"))
        );
        assert!(matches!(classify(failure(rusqlite::ffi::SQLITE_MISUSE)), StoreError::Internal(_)));
        assert!(matches!(classify(rusqlite::Error::QueryReturnedNoRows), StoreError::Internal(_)));
        assert_eq!(fault(&failure(rusqlite::ffi::SQLITE_CORRUPT)), Some(Fault::Corrupt));
        assert!(is_unique_violation(&failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)));
    }
}
