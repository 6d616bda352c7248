//! Flagged events (an undeclared `properties` key, a suspicious `sentAt` or ID, docs/api.md): counted by kind for
//! `GET /_interlog/stats`, and logged as a warning at most once per kind every [`WARN_EVERY`],
//! with how many flagged events went unlogged in between, so a client that flags every event
//! cannot flood the log.
//!
//! Only events the store acknowledged are counted (a repeat dropped at the door is not). The
//! counters are this process's, like the store's write counters beside them in the stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use interlog_model::{Flag, FlagCounts, FlagKind};

/// At most one warning line per kind this often.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

const KINDS: usize = FlagKind::ALL.len();

/// The counters and the warning's rate limit; lock-free, as it sits on the hot path.
pub struct Flagged {
    started: Instant,
    counts: [AtomicU64; KINDS],
    /// Per kind: milliseconds since `started` before which no warning is logged.
    next_warn_ms: [AtomicU64; KINDS],
    /// Per kind: the count when the last warning was logged.
    logged: [AtomicU64; KINDS],
    every: Duration,
}

impl Default for Flagged {
    fn default() -> Self {
        Flagged::with_interval(WARN_EVERY)
    }
}

impl Flagged {
    /// A monitor that warns at most once per kind every `every` (tests shorten it).
    pub fn with_interval(every: Duration) -> Self {
        Flagged {
            started: Instant::now(),
            counts: Default::default(),
            next_warn_ms: Default::default(),
            logged: Default::default(),
            every,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// True when a warning of some kind may be logged now: the handler then keeps an example
    /// message for [`Flagged::record`] (otherwise it clones nothing).
    pub fn warning_due(&self) -> bool {
        let now = self.now_ms();
        self.next_warn_ms.iter().any(|next| now >= next.load(Ordering::Relaxed))
    }

    /// Counts one acknowledged request's stored flagged events and logs the warning when due.
    /// `example` is one flag of the request (the first), quoted in the warning.
    pub fn record(&self, counts: &FlagCounts, example: Option<&Flag>) {
        if counts.is_empty() {
            return;
        }
        for (kind, n) in counts.iter().filter(|(_, n)| *n > 0) {
            let i = kind_index(kind);
            let total = self.counts[i].fetch_add(n, Ordering::Relaxed) + n;
            let now = self.now_ms();
            let next = self.next_warn_ms[i].load(Ordering::Relaxed);
            if now < next {
                continue;
            }
            let until = now + self.every.as_millis() as u64;
            // One thread wins the slot; the others count and move on.
            if self.next_warn_ms[i].compare_exchange(next, until, Ordering::Relaxed, Ordering::Relaxed).is_err() {
                continue;
            }
            let before = self.logged[i].swap(total, Ordering::Relaxed);
            let unlogged = total.saturating_sub(before).saturating_sub(n);
            let example = example.filter(|f| f.kind == kind).map(|f| &*f.message).unwrap_or("");
            tracing::warn!(
                kind = %kind,
                events = n,
                unlogged_since_last_warning = unlogged,
                total,
                example,
                "flagged events were stored but will not reach a model as sent, or not as meant (docs/api.md, \
                 Flags); at most one such line per kind every {} s",
                self.every.as_secs()
            );
        }
    }

    /// Counts repeats of a recorded eventId dropped at the door ([`FlagKind::DuplicateEventId`]).
    /// Never warned about: a client's retry after a lost answer is the common, harmless cause.
    pub fn record_duplicates(&self, n: usize) {
        if n > 0 {
            self.counts[kind_index(FlagKind::DuplicateEventId)].fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Flagged events stored since start, by kind.
    pub fn counts(&self) -> impl Iterator<Item = (FlagKind, u64)> + '_ {
        FlagKind::ALL.into_iter().map(|k| (k, self.counts[kind_index(k)].load(Ordering::Relaxed)))
    }
}

fn kind_index(kind: FlagKind) -> usize {
    FlagKind::ALL.iter().position(|k| *k == kind).expect("every kind is in ALL")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(n: usize) -> FlagCounts {
        let mut c = FlagCounts::default();
        let flag = [Flag::new(FlagKind::UndeclaredProperty, "m")];
        for _ in 0..n {
            c.add_record(&flag);
        }
        c
    }

    #[test]
    fn counts_add_up_and_the_warning_waits_its_turn() {
        let f = Flagged::with_interval(Duration::from_secs(3600));
        assert!(f.warning_due());
        f.record(&FlagCounts::default(), None);
        assert!(f.warning_due(), "nothing flagged, nothing logged");
        f.record(&one(2), None);
        assert_eq!(f.logged[0].load(Ordering::Relaxed), 2, "the first flagged request logs and closes the window");
        assert!(f.warning_due(), "the other kinds' windows are still open");
        f.record(&one(3), None);
        f.record_duplicates(4);
        let nonzero: Vec<_> = f.counts().filter(|(_, n)| *n > 0).collect();
        assert_eq!(nonzero, [(FlagKind::UndeclaredProperty, 5), (FlagKind::DuplicateEventId, 4)]);
        assert_eq!(f.counts().count(), FlagKind::ALL.len(), "every kind listed, zeros included");
        assert_eq!(f.logged[0].load(Ordering::Relaxed), 2, "the second request was not logged");

        let f = Flagged::with_interval(Duration::ZERO);
        f.record(&one(1), None);
        f.record(&one(1), None);
        assert_eq!(f.logged[0].load(Ordering::Relaxed), 2, "with no interval every request logs");
    }
}
