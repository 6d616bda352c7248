//! What the debugger shows live: stored events and rejected requests, published by the request
//! path on a broadcast channel that never blocks it (a slow page misses items and is told how
//! many, it never holds a request up), plus the per-tracker counts over the last minute and hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::broadcast;

/// Items a page may fall behind by before it misses some.
const CAPACITY: usize = 4096;
/// Counts are kept in buckets of this many seconds, an hour of them per tracker.
const BUCKET_SECS: u64 = 10;
const BUCKETS: usize = 360;
/// Trackers counted at once; past it the longest-idle one is forgotten (memory stays bounded
/// whatever tracking IDs clients send).
const MAX_TRACKERS: usize = 10_000;

/// One thing that happened, for the account it belongs to.
#[derive(Debug, Clone)]
pub struct Item {
    pub account: String,
    /// The JSON the page receives.
    pub body: Value,
}

/// What one request did to one tracker's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub flagged: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        self.flagged += o.flagged;
    }
}

struct Ring {
    /// Bucket number (seconds / BUCKET_SECS) of each slot, and its counts.
    slots: Vec<(u64, Tally)>,
    last: u64,
}

/// The feed and the counts; one per server.
pub struct Feed {
    tx: broadcast::Sender<Arc<Item>>,
    counts: Mutex<HashMap<(String, String), Ring>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed { tx: broadcast::channel(CAPACITY).0, counts: Mutex::new(HashMap::new()) }
    }
}

pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as f64 / 1000.0).unwrap_or_default()
}

impl Feed {
    /// Whether any page is watching: the request path builds items only then.
    pub fn watched(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Item>> {
        self.tx.subscribe()
    }

    /// Publishes without waiting; with nobody watching the item is dropped.
    pub fn publish(&self, account: &str, body: Value) {
        if self.watched() {
            let _ = self.tx.send(Arc::new(Item { account: account.to_owned(), body }));
        }
    }

    /// Counts what one request did to a tracker of `account`.
    pub fn count(&self, account: &str, tracking_id: &str, tally: Tally) {
        let bucket = (now() as u64) / BUCKET_SECS;
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= MAX_TRACKERS && !counts.contains_key(&(account.to_owned(), tracking_id.to_owned())) {
            if let Some(idle) = counts.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone()) {
                counts.remove(&idle);
            }
        }
        let ring = counts
            .entry((account.to_owned(), tracking_id.to_owned()))
            .or_insert_with(|| Ring { slots: vec![(0, Tally::default()); BUCKETS], last: bucket });
        let slot = &mut ring.slots[(bucket as usize) % BUCKETS];
        if slot.0 != bucket {
            *slot = (bucket, Tally::default());
        }
        slot.1.add(&tally);
        ring.last = bucket;
    }

    /// Per tracker of `account`: its counts over the last minute and the last hour.
    pub fn counts(&self, account: &str) -> Vec<Value> {
        let bucket = (now() as u64) / BUCKET_SECS;
        let minute = 60 / BUCKET_SECS;
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<Value> = counts
            .iter()
            .filter(|((a, _), _)| a == account)
            .map(|((_, tracking_id), ring)| {
                let (mut last_minute, mut last_hour) = (Tally::default(), Tally::default());
                for (b, t) in &ring.slots {
                    if *b + (BUCKETS as u64) > bucket && *b <= bucket {
                        last_hour.add(t);
                        if *b + minute > bucket {
                            last_minute.add(t);
                        }
                    }
                }
                json!({ "trackingId": tracking_id, "minute": last_minute, "hour": last_hour })
            })
            .collect();
        out.sort_by(|a, b| a["trackingId"].as_str().cmp(&b["trackingId"].as_str()));
        out
    }
}

/// The member a validation message names (`Value ... at 'eventList.1.member.sentAt' failed ...`).
pub fn offending_member(message: &str) -> Option<String> {
    let start = message.find(" at '")? + 5;
    let len = message[start..].find('\'')?;
    Some(message[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_in_coral_messages() {
        let m =
            "1 validation error detected: Value null at 'eventList.1.member.eventType' failed to satisfy constraint";
        assert_eq!(offending_member(m).as_deref(), Some("eventList.1.member.eventType"));
        assert_eq!(offending_member("The trackingId 'x' does not match"), None);
    }

    #[test]
    fn counts_add_up_per_tracker_and_account() {
        let feed = Feed::default();
        feed.count("a", "t1", Tally { stored: 3, duplicates: 1, ..Default::default() });
        feed.count("a", "t1", Tally { rejected: 1, flagged: 2, ..Default::default() });
        feed.count("b", "t2", Tally { stored: 5, ..Default::default() });
        let a = feed.counts("a");
        assert_eq!(a.len(), 1, "only the account's own trackers");
        assert_eq!(a[0]["minute"], json!({"stored": 3, "duplicates": 1, "rejected": 1, "flagged": 2}));
        assert_eq!(a[0]["hour"], a[0]["minute"]);
    }
}
