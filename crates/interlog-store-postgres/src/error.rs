//! Classifies tokio-postgres and pool errors into the boundary's [`StoreError`] kinds, so no
//! engine type crosses the boundary.

use deadpool_postgres::PoolError;
use interlog_store::StoreError;
use tokio_postgres::error::SqlState;

/// An error inside the engine: either already a boundary kind (a rule that failed) or a raw
/// PostgreSQL error still to be classified. Engine code uses `?` on both.
#[derive(Debug)]
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl Fail {
    pub(crate) fn into_store(self) -> StoreError {
        match self {
            Fail::Pg(e) => classify(&e),
            Fail::Store(e) => e,
        }
    }
}

/// What a PostgreSQL error means for the caller.
///
/// Everything that says "the database cannot serve you right now, nothing happened" becomes
/// `Unavailable` (the server answers 503 and the client retries): lost connections, I/O,
/// shutdowns, a statement or lock timeout, resource exhaustion, a read-only standby, and the
/// transaction conflicts PostgreSQL itself asks to retry. A unique violation is reported as
/// `AlreadyExists` by the callers where it means that (they know the message); anywhere else it
/// is a bug, like every other error, and `Internal`.
pub(crate) fn classify(e: &tokio_postgres::Error) -> StoreError {
    if e.is_closed() {
        return StoreError::Unavailable(format!("the connection to PostgreSQL was lost: {e}"));
    }
    let Some(db) = e.as_db_error() else {
        // No server message: the client failed to talk to the server (I/O, connect, timeout,
        // protocol), unless a value failed to convert, which is ours.
        let io = std::error::Error::source(e).is_none_or(|s| s.is::<std::io::Error>());
        return if io {
            StoreError::Unavailable(format!("cannot reach PostgreSQL: {e}"))
        } else {
            StoreError::internal(e.to_string())
        };
    };
    let code = db.code();
    let class = &code.code()[..2];
    let retry = matches!(class, "08" | "53" | "57" | "58")
        || [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::READ_ONLY_SQL_TRANSACTION,
        ]
        .contains(code);
    if retry {
        return StoreError::Unavailable(format!("PostgreSQL: {} ({})", db.message(), code.code()));
    }
    if *code == SqlState::CHARACTER_NOT_IN_REPERTOIRE {
        return StoreError::Invalid(format!("a value cannot be stored: {}", db.message()));
    }
    StoreError::internal(format!("PostgreSQL: {} ({})", db.message(), code.code()))
}

pub(crate) fn pool(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(t) => {
            StoreError::Unavailable(format!("no PostgreSQL connection within the timeout ({t:?})"))
        }
        PoolError::Closed => StoreError::Unavailable("the store is closed".into()),
        other => StoreError::Unavailable(format!("no PostgreSQL connection: {other}")),
    }
}
