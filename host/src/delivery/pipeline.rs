//! The bookkeeping of one partition's records between being read and being committed: which
//! may start now, which wait for an earlier record of their chain, and how far the offset may
//! be committed.
//!
//! Records of one chain (one key, or the whole partition) are handed out one at a time in
//! offset order; records of different chains may be in flight together. The committable offset
//! is the lowest unfinished one, so a record finishing early never moves the offset past an
//! earlier record still in flight: a crash replays from there, and nothing is lost.

use crate::bus::Record;
use crate::manifest::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Records that must be handled one after another.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum Chain {
    /// Every record of the partition (`ordering = "partition"`).
    Partition,
    /// Every record with this key (`ordering = "key"`); `None` is the chain of key-less records.
    Key(Option<Vec<u8>>),
}

impl Chain {
    pub fn of(record: &Record, ordering: Ordering) -> Self {
        match ordering {
            Ordering::Partition => Self::Partition,
            Ordering::Key => Self::Key(record.key.clone()),
        }
    }
}

/// `T` is what is kept of a record until it starts: the record and whatever the caller pins to
/// it when it is read.
pub struct Pipeline<T> {
    /// Offsets read and not finished yet, waiting or in flight.
    unfinished: BTreeSet<u64>,
    /// Chains with a record in flight.
    busy: HashSet<Chain>,
    /// Records read while their chain was busy, in offset order per chain.
    waiting: HashMap<Chain, VecDeque<T>>,
    /// The offset after the last record read.
    read_up_to: Option<u64>,
}

impl<T> Default for Pipeline<T> {
    fn default() -> Self {
        Self {
            unfinished: BTreeSet::new(),
            busy: HashSet::new(),
            waiting: HashMap::new(),
            read_up_to: None,
        }
    }
}

impl<T> Pipeline<T> {
    /// Records read and not finished.
    pub fn len(&self) -> usize {
        self.unfinished.len()
    }

    pub fn is_empty(&self) -> bool {
        self.unfinished.is_empty()
    }

    /// Takes the record at `offset`, just read. Returns it if it may start now; otherwise it
    /// waits until the record before it in its chain finishes.
    pub fn admit(&mut self, chain: Chain, offset: u64, record: T) -> Option<T> {
        self.unfinished.insert(offset);
        self.read_up_to = Some(offset + 1);
        if self.busy.insert(chain.clone()) {
            return Some(record);
        }
        self.waiting.entry(chain).or_default().push_back(record);
        None
    }

    /// Marks the in-flight record at `offset` of `chain` finished. Returns the next record of
    /// that chain, which is now in flight, if one was waiting.
    pub fn finish(&mut self, chain: &Chain, offset: u64) -> Option<T> {
        self.settle(offset);
        self.release(chain)
    }

    /// Marks the record at `offset` finished for the committed offset (its chain is released
    /// separately, possibly earlier).
    pub fn settle(&mut self, offset: u64) {
        self.unfinished.remove(&offset);
    }

    /// Lets `chain` move on: returns its next record, which is now in flight, if one was
    /// waiting. A record whose outputs are handed to the bus may release its chain before
    /// they are acknowledged (the bus keeps their order); it stays unfinished until they are.
    pub fn release(&mut self, chain: &Chain) -> Option<T> {
        let next = match self.waiting.get_mut(chain) {
            Some(queue) => queue.pop_front(),
            None => None,
        };
        if next.is_none() {
            self.waiting.remove(chain);
            self.busy.remove(chain);
        }
        next
    }

    /// The offset everything below which is finished: the lowest unfinished record, or past
    /// the last record read. `None` before the first record.
    pub fn committable(&self) -> Option<u64> {
        self.unfinished.first().copied().or(self.read_up_to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(offset: u64, key: Option<&str>) -> Record {
        Record {
            topic: "t".into(),
            partition: 0,
            offset,
            key: key.map(|k| k.as_bytes().to_vec()),
            payload: vec![],
            headers: vec![],
            timestamp_ms: 0,
        }
    }

    fn admit(p: &mut Pipeline<Record>, offset: u64, key: Option<&str>, ordering: Ordering) -> bool {
        let r = record(offset, key);
        p.admit(Chain::of(&r, ordering), offset, r).is_some()
    }

    #[test]
    fn different_keys_run_together_and_one_key_waits_its_turn() {
        let mut p = Pipeline::<Record>::default();
        assert!(admit(&mut p, 0, Some("a"), Ordering::Key));
        assert!(admit(&mut p, 1, Some("b"), Ordering::Key));
        assert!(!admit(&mut p, 2, Some("a"), Ordering::Key));
        assert!(!admit(&mut p, 3, Some("a"), Ordering::Key));
        let a = Chain::Key(Some(b"a".to_vec()));
        assert_eq!(p.finish(&a, 0).map(|r| r.offset), Some(2));
        assert_eq!(p.finish(&a, 2).map(|r| r.offset), Some(3));
        assert_eq!(p.finish(&a, 3), None);
        // The chain is free again: the next record of `a` starts at once.
        assert!(admit(&mut p, 4, Some("a"), Ordering::Key));
    }

    #[test]
    fn key_less_records_form_one_chain() {
        let mut p = Pipeline::<Record>::default();
        assert!(admit(&mut p, 0, None, Ordering::Key));
        assert!(!admit(&mut p, 1, None, Ordering::Key));
        assert!(admit(&mut p, 2, Some("a"), Ordering::Key));
    }

    #[test]
    fn partition_ordering_runs_one_record_at_a_time() {
        let mut p = Pipeline::<Record>::default();
        assert!(admit(&mut p, 0, Some("a"), Ordering::Partition));
        assert!(!admit(&mut p, 1, Some("b"), Ordering::Partition));
        assert_eq!(p.finish(&Chain::Partition, 0).map(|r| r.offset), Some(1));
    }

    #[test]
    fn the_committable_offset_never_passes_an_unfinished_record() {
        let mut p = Pipeline::<Record>::default();
        assert_eq!(p.committable(), None);
        admit(&mut p, 10, Some("a"), Ordering::Key);
        admit(&mut p, 11, Some("b"), Ordering::Key);
        // Offsets may have gaps (compaction, transaction markers).
        admit(&mut p, 14, Some("c"), Ordering::Key);
        assert_eq!(p.committable(), Some(10));
        p.finish(&Chain::Key(Some(b"b".to_vec())), 11);
        p.finish(&Chain::Key(Some(b"c".to_vec())), 14);
        assert_eq!(p.committable(), Some(10), "11 and 14 finished before 10");
        p.finish(&Chain::Key(Some(b"a".to_vec())), 10);
        assert_eq!(p.committable(), Some(15));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn waiting_records_hold_the_committable_offset_back() {
        let mut p = Pipeline::<Record>::default();
        admit(&mut p, 0, Some("a"), Ordering::Key);
        admit(&mut p, 1, Some("a"), Ordering::Key);
        admit(&mut p, 2, Some("b"), Ordering::Key);
        p.finish(&Chain::Key(Some(b"b".to_vec())), 2);
        // 0 is in flight, 1 waits behind it: nothing is committable past 0.
        assert_eq!(p.committable(), Some(0));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn a_released_chain_moves_on_while_its_record_holds_the_offset() {
        let mut p = Pipeline::<Record>::default();
        assert!(admit(&mut p, 0, Some("a"), Ordering::Key));
        assert!(!admit(&mut p, 1, Some("a"), Ordering::Key));
        let a = Chain::Key(Some(b"a".to_vec()));
        // Record 0 was handled, its outputs are not acknowledged yet: 1 may start…
        assert_eq!(p.release(&a).map(|r| r.offset), Some(1));
        p.settle(1);
        // …but the offset stays at 0 until 0's outputs are acknowledged.
        assert_eq!(p.committable(), Some(0));
        p.settle(0);
        assert_eq!(p.committable(), Some(2));
        assert_eq!(p.release(&a), None);
        assert!(admit(&mut p, 2, Some("a"), Ordering::Key));
    }
}
