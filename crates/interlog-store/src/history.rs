//! Per-user and per-session history: the newest events of one user or one session of a dataset,
//! newest first (`GET /_interlog/v1/events`, `interlog events`, the debugger).
//!
//! The write path carries no index (an index maintained by each append was measured to cut
//! SQLite to 20-40k rows/s). Each engine keeps a `history` index of (dataset, who, position)
//! instead, filled off the hot path by a background indexer that reads the log after a durable
//! cursor (a row of the sinks' cursors named [`HISTORY_CURSOR`]) and moves it in the same
//! transaction as the rows it added. A query reads the index up to the cursor and scans the
//! not-yet-indexed tail of the log after it, in one snapshot, so an answer is complete however
//! far the indexer lags: the lag costs query time, never an event.

/// The name of the indexer's cursor among the sinks' cursors.
pub const HISTORY_CURSOR: &str = "history";

/// The most events one history query returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// Whose history: a user's (`userId`) or a session's (`sessionId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Who {
    User(String),
    Session(String),
}

impl Who {
    /// The index's kind column: 1 for users, 2 for sessions.
    pub fn kind(&self) -> i16 {
        match self {
            Who::User(_) => 1,
            Who::Session(_) => 2,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Who::User(id) | Who::Session(id) => id,
        }
    }

    /// The events column the tail scan compares.
    pub fn column(&self) -> &'static str {
        match self {
            Who::User(_) => "user_id",
            Who::Session(_) => "session_id",
        }
    }
}

/// Puts the index's answer and the tail's together: newest first, at most `limit`, each
/// position once.
pub fn newest_first(mut events: Vec<crate::StoredEvent>, limit: usize) -> Vec<crate::StoredEvent> {
    events.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
    events.dedup_by_key(|e| e.seq);
    events.truncate(limit);
    events
}
