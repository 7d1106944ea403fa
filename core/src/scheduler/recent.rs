//! Keys cut recently, bounded: two generations of at most half the cap each. A key found in
//! the older generation moves to the newer one, so keys referenced again and again (shared
//! code, a shared storage trie) stay while the rest ages out: an LRU at the cost of two sets.

use crate::store::{KeySet, StoreKey};

#[derive(Debug)]
pub(super) struct RecentKeys {
    half: usize,
    current: KeySet,
    old: KeySet,
}

impl RecentKeys {
    pub fn new(cap: usize) -> RecentKeys {
        RecentKeys {
            half: cap / 2,
            current: KeySet::default(),
            old: KeySet::default(),
        }
    }

    pub fn insert(&mut self, key: StoreKey) {
        if self.half == 0 {
            return;
        }
        self.current.insert(key);
        if self.current.len() >= self.half {
            self.old = std::mem::take(&mut self.current);
        }
    }

    pub fn contains(&mut self, key: StoreKey) -> bool {
        if self.current.contains(&key) {
            return true;
        }
        if self.old.remove(&key) {
            self.insert(key);
            return true;
        }
        false
    }
}
