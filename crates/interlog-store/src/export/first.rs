//! First copy wins, exactly, in bounded memory: the export's filter of repeated eventIds.
//!
//! Each distinct eventId is one 128-bit keyed hash in a [`KeySet`] (16 bytes a slot). While a
//! dataset's distinct events fit [`DEDUP_BUDGET_KEYS`] the export is one pass, as before. When the
//! set is full, half its key space (a residue class of the key's low bits) is **evicted**: the
//! keys of that class leave the set and a scan of the log's eventIds alone (`EventStore::read_page`
//! of the eventId column) goes on from where the export is, with those keys, and writes down the
//! positions of that class's later copies ahead; the export then skips those positions and keeps
//! deduplicating the other half in the set. A class whose scan outgrows the budget is split in two
//! and each half scanned again from the start. Memory is therefore at most two sets of the budget
//! (the export's and one scan's) plus 8 bytes per later copy found by a scan, whatever the size of
//! the dataset; each eviction costs one scan of the eventIds (docs/storage.md).

use super::{wanted, ScanStats};
use crate::page::EventPage;
use crate::StoreError;
use interlog_model::control::IngestionMode;

/// Keys the export's set holds before it evicts half of them: 64 × 2¹⁸ slots of 16 bytes, 256 MiB,
/// filled to 69 % (a sub-table doubles at 75 %: the margin keeps any of them from doubling before
/// the set is full, by some 35 standard deviations of a sub-table's share). Ten million distinct
/// events are one pass (at 5.8M keys, 128 MiB, the 10M benchmark paid an eviction scan of 4.2M
/// rows' eventIds, a third of its wall time); a dataset of more distinct events costs one more
/// scan of its eventIds per eviction instead of more memory. Worst case: two full sets (the
/// export's and an evicted class's scan), 512 MiB.
pub const DEDUP_BUDGET_KEYS: usize = 11_600_000;

/// Sub-tables of a [`KeySet`]: each grows on its own, so a growth copies 1/64 of the set and the
/// set never holds an old and a new copy of itself at once.
const PARTS: usize = 64;

/// A set of 128-bit keyed hashes, open addressing with linear probing in [`PARTS`] sub-tables
/// chosen by the key's top bits (the slot by the high word's low bits; the low word's bits are the
/// eviction classes, independent of both). 0 marks an empty slot: the key 0 is stored as 1, which
/// merges two keys out of 2¹²⁸.
pub(super) struct KeySet {
    parts: Vec<Part>,
    len: usize,
}

struct Part {
    slots: Vec<u128>,
    len: usize,
}

impl Part {
    fn with_slots(slots: usize) -> Part {
        Part { slots: vec![0; slots], len: 0 }
    }

    /// Adds a key known not to be there.
    fn put(&mut self, key: u128) {
        let mask = self.slots.len() - 1;
        let mut slot = (key >> 64) as usize & mask;
        while self.slots[slot] != 0 {
            slot = (slot + 1) & mask;
        }
        self.slots[slot] = key;
        self.len += 1;
    }
}

impl KeySet {
    pub(super) fn new() -> KeySet {
        KeySet { parts: (0..PARTS).map(|_| Part::with_slots(16)).collect(), len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Adds `key`; `false` when it was there already.
    pub(super) fn insert(&mut self, key: u128) -> bool {
        let key = key.max(1);
        let part = &mut self.parts[(key >> 122) as usize];
        let mask = part.slots.len() - 1;
        let mut slot = (key >> 64) as usize & mask;
        loop {
            match part.slots[slot] {
                0 => break,
                k if k == key => return false,
                _ => slot = (slot + 1) & mask,
            }
        }
        part.slots[slot] = key;
        part.len += 1;
        self.len += 1;
        // Doubled at three quarters full: linear probing stays short.
        if part.len * 4 > part.slots.len() * 3 {
            let old = std::mem::replace(part, Part::with_slots(part.slots.len() * 2));
            for key in old.slots.into_iter().filter(|k| *k != 0) {
                part.put(key);
            }
        }
        true
    }

    /// Moves the keys `evict` picks into a new set.
    pub(super) fn split_off(&mut self, evict: impl Fn(u128) -> bool) -> KeySet {
        let mut out = KeySet::new();
        let mut kept = Vec::with_capacity(PARTS);
        for part in std::mem::take(&mut self.parts) {
            let mut keep = Part::with_slots(part.slots.len());
            for key in part.slots.into_iter().filter(|k| *k != 0) {
                if evict(key) {
                    out.insert(key);
                } else {
                    keep.put(key);
                }
            }
            kept.push(keep);
        }
        self.len = kept.iter().map(|p| p.len).sum();
        self.parts = kept;
        out
    }
}

/// Keys of one eviction class: those whose low word, masked by `mask`, is `residue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Class {
    mask: u64,
    residue: u64,
}

impl Class {
    fn holds(self, key: u128) -> bool {
        key as u64 & self.mask == self.residue
    }

    /// The two halves of this class.
    fn halves(self) -> [Class; 2] {
        let bit = self.mask + 1;
        let mask = self.mask | bit;
        [Class { mask, residue: self.residue }, Class { mask, residue: self.residue | bit }]
    }
}

/// Reads the page of the log's eventIds after a position, on the export's filtering thread.
pub(super) type ScanPage<'a> = dyn FnMut(i64) -> Result<EventPage, StoreError> + 'a;

/// The export's first-copy-wins filter, within [`DEDUP_BUDGET_KEYS`] (see the module's comment).
pub(super) struct FirstCopies {
    seed: u64,
    mode: IngestionMode,
    budget: usize,
    stats: ScanStats,
    /// The keys of the class still deduplicated here (all keys until the first eviction).
    set: KeySet,
    kept: Class,
    /// Positions of later copies of evicted keys, ascending, and the next one not yet passed.
    later: Vec<i64>,
    next: usize,
    /// The last position the evicted classes' scans read: the export ends there, as a position
    /// after it has not been looked at for repeats of evicted keys.
    end: i64,
}

impl FirstCopies {
    pub(super) fn new(mode: IngestionMode, budget: usize) -> FirstCopies {
        FirstCopies {
            seed: super::rand_seed(),
            mode,
            budget: budget.max(2),
            stats: ScanStats::default(),
            set: KeySet::new(),
            kept: Class { mask: 0, residue: 0 },
            later: Vec::new(),
            next: 0,
            end: i64::MAX,
        }
    }

    pub(super) fn stats(&self) -> ScanStats {
        self.stats
    }

    /// The last position the export may write (`i64::MAX` until an eviction).
    pub(super) fn end(&self) -> i64 {
        self.end
    }

    fn key(&self, event_id: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(event_id, self.seed)
    }

    /// Whether the row at `seq` is of the mode and the first copy of its eventId; counts it.
    /// Rows must come in position order, none after [`FirstCopies::end`].
    pub(super) fn first(
        &mut self,
        seq: i64,
        event_id: &[u8],
        bulk: bool,
        scan: &mut ScanPage<'_>,
    ) -> Result<bool, StoreError> {
        if !wanted(self.mode, bulk) {
            return Ok(false);
        }
        let key = self.key(event_id);
        let first = if self.kept.holds(key) {
            let new = self.set.insert(key);
            if self.set.len() >= self.budget {
                self.evict(seq, scan)?;
            }
            new
        } else {
            while self.later.get(self.next).is_some_and(|&p| p < seq) {
                self.next += 1;
            }
            self.later.get(self.next) != Some(&seq)
        };
        if first {
            self.stats.events += 1;
        } else {
            self.stats.duplicates += 1;
        }
        Ok(first)
    }

    /// The set is full at `seq`: hands half of its class to a scan of the log after `seq`.
    fn evict(&mut self, seq: i64, scan: &mut ScanPage<'_>) -> Result<(), StoreError> {
        let [kept, evicted] = self.kept.halves();
        self.kept = kept;
        let keys = self.set.split_off(|k| evicted.holds(k));
        let mut found = Vec::new();
        // Each class to scan: its keys so far and the position its scan starts after.
        let mut classes = vec![(evicted, keys, seq)];
        while let Some((class, mut keys, from)) = classes.pop() {
            match self.scan_class(class, &mut keys, from, seq, scan, &mut found)? {
                Some(end) => self.end = self.end.min(end),
                None => {
                    // Outgrew the budget: each half again from the start of the log (its keys
                    // before `seq` are needed, and were dropped with the others).
                    drop(keys);
                    for half in class.halves() {
                        classes.push((half, KeySet::new(), 0));
                    }
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        let passed = self.later.len().min(self.next);
        self.later.drain(..passed);
        self.later.extend(found);
        self.later.sort_unstable();
        self.next = 0;
        Ok(())
    }

    /// Reads the log's eventIds after `from`, adding the keys of `class` to `keys` and noting the
    /// positions after `after` whose key was there already. `Some(last position read)`, or `None`
    /// when `keys` outgrew the budget (what was noted then stays: it is exact).
    fn scan_class(
        &self,
        class: Class,
        keys: &mut KeySet,
        from: i64,
        after: i64,
        scan: &mut ScanPage<'_>,
        found: &mut Vec<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let mut position = from;
        loop {
            let page = scan(position)?;
            let Some(last) = page.last_seq() else { return Ok(Some(position)) };
            for row in page.iter() {
                let n = row.numbers();
                if !wanted(self.mode, n.bulk) {
                    continue;
                }
                let key = self.key(row.event_id());
                if class.holds(key) && !keys.insert(key) && n.seq > after {
                    found.push(n.seq);
                }
                if keys.len() >= self.budget {
                    return Ok(None);
                }
            }
            position = last;
        }
    }
}

/// The unbounded filter of [`super::UniqueEvents`] (tests, examples and benchmarks that read
/// every event through [`crate::EventStore::read`]): one key per distinct eventId.
pub(super) struct AllFirstCopies {
    seed: u64,
    seen: KeySet,
    pub(super) stats: ScanStats,
    pub(super) mode: IngestionMode,
}

impl AllFirstCopies {
    pub(super) fn new(mode: IngestionMode) -> AllFirstCopies {
        AllFirstCopies { seed: super::rand_seed(), seen: KeySet::new(), stats: ScanStats::default(), mode }
    }

    /// Whether this row is of the mode and the first copy of its eventId; counts it.
    pub(super) fn first(&mut self, event_id: &[u8], bulk: bool) -> bool {
        if !wanted(self.mode, bulk) {
            return false;
        }
        if self.seen.insert(xxhash_rust::xxh3::xxh3_128_with_seed(event_id, self.seed)) {
            self.stats.events += 1;
            true
        } else {
            self.stats.duplicates += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys spread over sub-tables, grow them and split off exactly what is asked.
    #[test]
    fn a_key_set_keeps_each_key_once_through_growth_and_splits() {
        let mut set = KeySet::new();
        let key = |n: u64| xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes());
        for n in 0..50_000 {
            assert!(set.insert(key(n)));
        }
        assert!(!set.insert(key(7)) && !set.insert(key(49_999)));
        assert_eq!(set.len(), 50_000);
        let odd = set.split_off(|k| k as u64 & 1 == 1);
        assert_eq!(set.len() + odd.len(), 50_000);
        let mut odd = odd;
        for n in 0..50_000 {
            let k = key(n);
            let (inside, other) = if k as u64 & 1 == 1 { (&mut odd, &mut set) } else { (&mut set, &mut odd) };
            assert!(!inside.insert(k), "{n} kept");
            assert!(other.insert(k), "{n} in one set only");
        }
        assert!(set.insert(0) && !set.insert(1), "0 is stored as 1");
    }
}
