//! Data deletion jobs on SQLite (`EventStore::delete_users`): the users' log rows, their rows of
//! the history index, the dead letters of those rows and their records, removed on the writer
//! thread in chunks between append batches, as the purge of a deleted dataset is.
//!
//! The events table has no index by user (an index maintained by every append would cost the
//! hot path, `interlog_store::history`), so a deletion scans the log by position, a bounded
//! range per chunk, and follows it to the writer's newest position: every append goes through
//! the same thread, so when the scan has reached the head no row of those users is left. The
//! scan reads four narrow columns and writes only where it finds something; a chunk that found
//! nothing commits no page. Progress lives in memory only: a stop fails the job (the supervisor
//! marks it FAILED at the next start) and running it again is harmless, it only finds less.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use interlog_store::{StoreError, UserDeletion, UsersDeleted};
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use crate::error::Classify;

/// A chunk reads positions this many at a time...
const STEP: i64 = 512;
/// ...until it removed this many rows, looked at this many positions, or spent this long, so
/// an append waiting behind one chunk waits a few milliseconds at most.
const CHUNK_ROWS: u64 = 4096;
const CHUNK_SCAN: i64 = 65_536;
const CHUNK_BUDGET: Duration = Duration::from_millis(2);

/// One deletion the writer is working through.
pub struct Deletion {
    logs: HashSet<i64>,
    records: Vec<i64>,
    users: std::sync::Arc<HashSet<String>>,
    /// The users in a fixed order, for the records step.
    ordered: Vec<String>,
    /// Every position at or below this one is done.
    done_through: i64,
    /// The records of `ordered[..next_user]` are gone.
    next_user: usize,
    deleted: UsersDeleted,
    reply: oneshot::Sender<Result<UsersDeleted, StoreError>>,
}

/// What one chunk did, applied to the [`Deletion`] only once its transaction committed.
pub struct Progress {
    done_through: i64,
    next_user: usize,
    events: u64,
    records: u64,
}

impl Progress {
    /// Whether the chunk removed events from the log.
    pub fn removed_events(&self) -> bool {
        self.events > 0
    }
}

impl Deletion {
    pub fn new(job: UserDeletion, reply: oneshot::Sender<Result<UsersDeleted, StoreError>>) -> Deletion {
        let mut ordered: Vec<String> = job.users.iter().cloned().collect();
        ordered.sort_unstable();
        Deletion {
            logs: job.logs.into_iter().collect(),
            records: job.records,
            users: job.users,
            ordered,
            done_through: 0,
            next_user: 0,
            deleted: UsersDeleted::default(),
            reply,
        }
    }

    /// Takes a committed chunk's progress; `true` when the deletion is complete at `head`.
    pub fn apply(&mut self, p: Progress, head: i64) -> bool {
        self.done_through = p.done_through;
        self.next_user = p.next_user;
        self.deleted.events += p.events;
        self.deleted.records += p.records;
        self.done_through >= head && self.next_user >= self.ordered.len()
    }

    /// Answers the job.
    pub fn finish(self, outcome: Result<(), StoreError>) {
        let _ = self.reply.send(outcome.map(|()| self.deleted));
    }

    /// One chunk inside the writer's transaction `tx`: the log from where it stood towards
    /// `head`, then, once the log is done, the users' records.
    pub fn chunk(&self, tx: &Connection, head: i64) -> Result<Progress, StoreError> {
        let started = Instant::now();
        let mut p = Progress { done_through: self.done_through, next_user: self.next_user, events: 0, records: 0 };
        let within = |p: &Progress| p.events + p.records < CHUNK_ROWS && started.elapsed() < CHUNK_BUDGET;
        let mut found: Vec<(i64, i64, String, String)> = Vec::new();
        {
            let mut read = tx
                .prepare_cached(
                    "SELECT seq, dataset_id, user_id, session_id FROM events
                     WHERE seq > ?1 AND seq <= ?2 AND user_id IS NOT NULL",
                )
                .classified()?;
            let mut delete = tx.prepare_cached("DELETE FROM events WHERE seq = ?1").classified()?;
            let mut unindex = tx
                .prepare_cached("DELETE FROM history WHERE dataset_id = ?1 AND who_key = ?2 AND seq = ?3")
                .classified()?;
            let from = p.done_through;
            while p.done_through < head && p.done_through - from < CHUNK_SCAN && within(&p) {
                let upto = (p.done_through + STEP).min(head);
                found.clear();
                let mut rows = read.query(params![p.done_through, upto]).classified()?;
                while let Some(r) = rows.next().classified()? {
                    let dataset: i64 = r.get(1).classified()?;
                    if !self.logs.contains(&dataset) {
                        continue;
                    }
                    let user: String = r.get(2).classified()?;
                    if self.users.contains(&user) {
                        found.push((r.get(0).classified()?, dataset, user, r.get(3).classified()?));
                    }
                }
                for (seq, dataset, user, session) in &found {
                    delete.execute([seq]).classified()?;
                    // The index rows of the event (the indexer runs on this thread too, so
                    // these are all there are).
                    unindex
                        .execute(params![dataset, crate::history::key(1, user.as_bytes(), *seq), seq])
                        .classified()?;
                    unindex
                        .execute(params![dataset, crate::history::key(2, session.as_bytes(), *seq), seq])
                        .classified()?;
                }
                if !found.is_empty() {
                    // A dead letter points at its event in the log: with the event gone there
                    // is nothing to replay, and the letter would still name the user's event.
                    let mut letters = tx
                        .prepare_cached(
                            "DELETE FROM sink_dead_letters WHERE dataset_id = ?1 AND position > ?2 AND position <= ?3
                             AND NOT EXISTS (SELECT 1 FROM events WHERE seq = sink_dead_letters.position)",
                        )
                        .classified()?;
                    let datasets: HashSet<i64> = found.iter().map(|f| f.1).collect();
                    for dataset in datasets {
                        letters.execute(params![dataset, p.done_through, upto]).classified()?;
                    }
                }
                p.events += found.len() as u64;
                p.done_through = upto;
            }
        }
        if p.done_through >= head {
            let mut delete =
                tx.prepare_cached("DELETE FROM records WHERE dataset_id = ?1 AND record_id = ?2").classified()?;
            while p.next_user < self.ordered.len() && within(&p) {
                let user = &self.ordered[p.next_user];
                for dataset in &self.records {
                    p.records += delete.execute(params![dataset, user]).classified()? as u64;
                }
                p.next_user += 1;
            }
        }
        Ok(p)
    }
}
