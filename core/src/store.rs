//! What the sync writes and looks up: store keys, commit batches, and an in-memory store.

use crate::hash::{keccak256, DigestMap, H256};

/// Whether an item is a trie node or contract code. They live in separate key spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ItemKind {
    Node,
    Code,
}

/// Where an item lives in the store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct StoreKey {
    pub kind: ItemKind,
    pub hash: H256,
}

/// Prefix of code keys in a flat key space (geth's `"c" || codeHash`, v1.9.20 on).
pub const CODE_KEY_PREFIX: u8 = b'c';

/// Key of the progress record in a flat key space. Not 32 or 33 bytes long, so it cannot
/// collide with a node or code key.
pub const PROGRESS_KEY: &[u8] = b"statesync-progress";

impl StoreKey {
    pub fn node(hash: H256) -> StoreKey {
        StoreKey {
            kind: ItemKind::Node,
            hash,
        }
    }

    pub fn code(hash: H256) -> StoreKey {
        StoreKey {
            kind: ItemKind::Code,
            hash,
        }
    }

    /// The key in geth's hash-scheme layout: the bare hash for a node, `"c" || hash` for code.
    pub fn flat_key(&self) -> Vec<u8> {
        match self.kind {
            ItemKind::Node => self.hash.0.to_vec(),
            ItemKind::Code => {
                let mut key = Vec::with_capacity(33);
                key.push(CODE_KEY_PREFIX);
                key.extend_from_slice(&self.hash.0);
                key
            }
        }
    }
}

/// Items that are complete (their whole subtrie is in this batch or already stored), to be
/// written in one atomic store transaction. Order inside the batch does not matter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitBatch {
    pub nodes: Vec<(H256, Vec<u8>)>,
    pub codes: Vec<(H256, Vec<u8>)>,
}

impl CommitBatch {
    pub fn len(&self) -> usize {
        self.nodes.len() + self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.codes.is_empty()
    }

    /// Payload bytes, keys excluded.
    pub fn bytes(&self) -> usize {
        self.nodes
            .iter()
            .chain(&self.codes)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// Every item with its key.
    pub fn items(&self) -> impl Iterator<Item = (StoreKey, &[u8])> {
        let nodes = self
            .nodes
            .iter()
            .map(|(h, v)| (StoreKey::node(*h), v.as_slice()));
        let codes = self
            .codes
            .iter()
            .map(|(h, v)| (StoreKey::code(*h), v.as_slice()));
        nodes.chain(codes)
    }
}

/// Trie nodes and code held in memory: the store of native runs and tests, and the source a
/// simulated peer serves from.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    nodes: DigestMap<Vec<u8>>,
    codes: DigestMap<Vec<u8>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    pub fn get(&self, key: StoreKey) -> Option<&[u8]> {
        match key.kind {
            ItemKind::Node => self.nodes.get(&key.hash),
            ItemKind::Code => self.codes.get(&key.hash),
        }
        .map(Vec::as_slice)
    }

    pub fn contains(&self, key: StoreKey) -> bool {
        match key.kind {
            ItemKind::Node => self.nodes.contains_key(&key.hash),
            ItemKind::Code => self.codes.contains_key(&key.hash),
        }
    }

    pub fn insert(&mut self, key: StoreKey, value: Vec<u8>) {
        match key.kind {
            ItemKind::Node => self.nodes.insert(key.hash, value),
            ItemKind::Code => self.codes.insert(key.hash, value),
        };
    }

    /// Stores code under its hash and returns the hash.
    pub fn insert_code(&mut self, code: &[u8]) -> H256 {
        let hash = keccak256(code);
        self.codes.insert(hash, code.to_vec());
        hash
    }

    pub fn remove(&mut self, key: StoreKey) -> Option<Vec<u8>> {
        match key.kind {
            ItemKind::Node => self.nodes.remove(&key.hash),
            ItemKind::Code => self.codes.remove(&key.hash),
        }
    }

    /// Writes a commit batch.
    pub fn apply(&mut self, batch: &CommitBatch) {
        for (key, value) in batch.items() {
            self.insert(key, value.to_vec());
        }
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn code_count(&self) -> usize {
        self.codes.len()
    }

    /// Payload bytes of every node and code blob.
    pub fn bytes(&self) -> usize {
        self.nodes
            .values()
            .chain(self.codes.values())
            .map(Vec::len)
            .sum()
    }

    /// Every key, sorted so that callers iterate deterministically.
    pub fn keys(&self) -> Vec<StoreKey> {
        let mut keys: Vec<StoreKey> = self
            .nodes
            .keys()
            .map(|h| StoreKey::node(*h))
            .chain(self.codes.keys().map(|h| StoreKey::code(*h)))
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn code_keys_carry_the_prefix() {
        let hash = keccak256(b"x");
        assert_eq!(StoreKey::node(hash).flat_key(), hash.0.to_vec());
        let code = StoreKey::code(hash).flat_key();
        assert_eq!(code[0], b'c');
        assert_eq!(&code[1..], hash.as_bytes());
    }

    #[test]
    fn nodes_and_code_are_separate_key_spaces() {
        let mut store = MemoryStore::new();
        let hash = store.insert_code(b"code");
        assert!(store.contains(StoreKey::code(hash)));
        assert!(!store.contains(StoreKey::node(hash)));
        assert_eq!(store.bytes(), 4);
    }
}
