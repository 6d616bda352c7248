//! The connection pool and the one way engine code talks to PostgreSQL: every operation runs on
//! a pooled connection under a deadline, and a connection whose operation was cut off is thrown
//! away instead of going back to the pool.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts};
use interlog_store::StoreError;
use tokio_postgres::NoTls;

use crate::error::{self, Fail};

/// Tuning of the engine's connections.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections of the pool (catalog, reads, background work), plus one for LISTEN and one for
    /// the writer's appends.
    pub pool_size: usize,
    /// How long any one operation (a commit, a catalog call, a page read) may take before it
    /// fails with `Unavailable`; also bounds connecting and waiting for a free connection.
    pub timeout: Duration,
    /// How the writer sends rows: binary COPY (the default, measured faster) or multi-row INSERT.
    pub insert: InsertMode,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions { pool_size: 8, timeout: Duration::from_secs(10), insert: InsertMode::Copy }
    }
}

/// How a commit sends its rows (both measured in `docs/storage.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertMode {
    /// `COPY events FROM STDIN (FORMAT binary)`.
    Copy,
    /// `INSERT INTO events VALUES (...), (...)`, up to 1,000 rows per statement.
    Insert,
}

pub(crate) struct Db {
    pool: Pool,
    /// The writer's own connection: created, and so driven, on the writer's thread, never
    /// lent to a request or a background task.
    writer: Pool,
    /// For connections outside the pool (LISTEN).
    pub(crate) config: tokio_postgres::Config,
    pub(crate) timeout: Duration,
}

impl Db {
    /// A pool for `url`. Nothing connects yet.
    pub(crate) fn new(url: &str, options: &PostgresOptions) -> Result<Db, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Foreign {
            location: redact(url),
            reason: format!("not a PostgreSQL connection URL: {e}"),
        })?;
        // Durable before the answer whatever the server's default; bounded waits on the
        // server side too (a lock held by a stuck node must not hang a request).
        let timeout_ms = options.timeout.as_millis();
        let session = format!(
            "-c synchronous_commit=on -c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} \
             -c idle_in_transaction_session_timeout={}",
            timeout_ms * 6
        );
        let merged = match config.get_options() {
            Some(user) if !user.trim().is_empty() => format!("{user} {session}"),
            _ => session,
        };
        config.options(merged);
        if config.get_application_name().is_none() {
            config.application_name("interlog");
        }
        config.connect_timeout(options.timeout.min(Duration::from_secs(5)));
        // A peer that vanished without closing (host down, cable cut) is noticed in ~30 s
        // even on an idle connection.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(15));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            // `Fast`: a broken connection is noticed by `is_closed`; a query per checkout
            // would cost a round trip on the hot path.
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let wait = Some(options.timeout.min(Duration::from_secs(5)));
        let pool = |manager: Manager, size: usize| {
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .timeouts(Timeouts { wait, create: wait, recycle: wait })
                .build()
                .map_err(|e| StoreError::internal(e.to_string()))
        };
        let writer =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        Ok(Db {
            pool: pool(manager, options.pool_size.max(2))?,
            writer: pool(writer, 1)?,
            config,
            timeout: options.timeout,
        })
    }

    /// A pooled connection, or `Unavailable` within the timeout.
    pub(crate) async fn conn(&self) -> Result<Conn, StoreError> {
        let obj = self.pool.get().await.map_err(error::pool)?;
        Ok(Conn { obj: Some(obj), keep: false })
    }

    /// The writer's connection (reopened after a failure), or `Unavailable` within the timeout.
    pub(crate) async fn writer_conn(&self) -> Result<Conn, StoreError> {
        let obj = self.writer.get().await.map_err(error::pool)?;
        Ok(Conn { obj: Some(obj), keep: false })
    }

    /// Runs `op` on a pooled connection under the deadline.
    pub(crate) async fn run<T>(&self, op: impl AsyncFnOnce(&mut Conn) -> Result<T, Fail>) -> Result<T, StoreError> {
        let mut conn = self.conn().await?;
        match tokio::time::timeout(self.timeout, op(&mut conn)).await {
            Ok(result) => {
                conn.keep();
                result.map_err(Fail::into_store)
            }
            Err(_) => Err(self.timed_out()),
        }
    }

    pub(crate) fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!("PostgreSQL did not answer within {:?}", self.timeout))
    }

    pub(crate) fn close(&self) {
        self.pool.close();
        self.writer.close();
    }
}

/// A pooled connection that goes back to the pool only if its operation ran to the end; one
/// cut off by a deadline or a cancelled request may be mid-statement and is closed instead.
pub(crate) struct Conn {
    obj: Option<Object>,
    keep: bool,
}

impl Conn {
    pub(crate) fn keep(&mut self) {
        self.keep = true;
    }
}

impl Deref for Conn {
    type Target = ClientWrapper;
    fn deref(&self) -> &ClientWrapper {
        self.obj.as_ref().expect("connection present until dropped")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut ClientWrapper {
        self.obj.as_mut().expect("connection present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (false, Some(obj)) = (self.keep, self.obj.take()) {
            // Detached from the pool and dropped: the connection closes.
            drop(Object::take(obj));
        }
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(super::redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("host=/tmp"), "host=/tmp");
    }
}
