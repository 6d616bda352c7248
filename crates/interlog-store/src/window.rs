//! A bounded window of recently stored eventIds, so client retries are dropped at the door; every
//! engine's writer keeps one.
//!
//! The window only holds 64-bit hashes and sequence numbers (about 40 bytes an entry); a hit is
//! confirmed against the stored row before anything is dropped, so a hash collision can never
//! lose an event. Exactness for older duplicates comes from the export (see `docs/storage.md`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

pub struct Window {
    /// The process's secret seed: eventIds come from clients, so the key is a keyed hash (xxh3
    /// with a random seed, a few times cheaper than SipHash on 30-byte IDs); the map then uses the
    /// key as its own hash instead of hashing it again.
    seed: u64,
    capacity: usize,
    seqs: KeyMap<i64>,
    order: VecDeque<u64>,
}

/// A map keyed by [`Window::key`]s, hashed by the key itself (it is a keyed hash already): for a writer's
/// entries of a batch that join the window once committed.
pub type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

/// The hasher of [`KeyMap`]: passes a `u64` key through.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach this map; other input is folded in, never silently ignored.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window { seed: RandomState::new().hash_one(0u64), capacity, seqs: HashMap::default(), order: VecDeque::new() }
    }

    pub fn key(&self, dataset_id: i64, event_id: &str) -> u64 {
        // The dataset goes into the seed, so the same eventId in two datasets gets unrelated keys.
        let seed = self.seed ^ (dataset_id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        xxhash_rust::xxh3::xxh3_64_with_seed(event_id.as_bytes(), seed)
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
