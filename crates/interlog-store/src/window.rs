//! A bounded window of recently stored eventIds, so client retries are dropped at the door; every
//! engine's writer keeps one.
//!
//! The window only holds 64-bit hashes and sequence numbers (about 40 bytes an entry); a hit is
//! confirmed against the stored row before anything is dropped, so a hash collision can never
//! lose an event. Exactness for older duplicates comes from the export (see `docs/storage.md`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

pub struct Window {
    hasher: RandomState,
    capacity: usize,
    seqs: HashMap<u64, i64>,
    order: VecDeque<u64>,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window { hasher: RandomState::new(), capacity, seqs: HashMap::new(), order: VecDeque::new() }
    }

    pub fn key(&self, dataset_id: i64, event_id: &str) -> u64 {
        self.hasher.hash_one((dataset_id, event_id))
    }

    pub fn get(&self, key: u64) -> Option<i64> {
        self.seqs.get(&key).copied()
    }

    pub fn insert(&mut self, key: u64, seq: i64) {
        if self.capacity == 0 {
            return;
        }
        if self.seqs.insert(key, seq).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn evicts_oldest_first() {
        let mut w = Window::new(2);
        let (a, b, c) = (w.key(1, "a"), w.key(1, "b"), w.key(1, "c"));
        w.insert(a, 1);
        w.insert(b, 2);
        w.insert(c, 3);
        assert_eq!(w.get(a), None);
        assert_eq!(w.get(b), Some(2));
        assert_eq!(w.get(c), Some(3));
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn datasets_are_separate() {
        let w = Window::new(2);
        assert_ne!(w.key(1, "a"), w.key(2, "a"));
    }
}
