//! What the sync writes and looks up: store keys, commit batches, and an in-memory store.
//!
//! A store has two areas. The main keyspace is geth's hash scheme: a node under its hash
//! means its whole subtrie is stored (I2). The staging area holds verified nodes whose
//! subtries are not complete yet, so that a crash does not lose them (I7); a node leaves it
//! in the same batch that puts it in the main keyspace.

use core::hash::{BuildHasherDefault, Hash, Hasher};

use crate::hash::{keccak256, DigestHasher, DigestMap, H256};

/// Whether an item is a trie node or contract code. They live in separate key spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum ItemKind {
    Node,
    Code,
}

/// Where an item lives in the store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct StoreKey {
    pub kind: ItemKind,
    pub hash: H256,
}

/// Hashes the digest alone: a node and a code of one hash (rare) share a probe sequence, so
/// asking a table for both costs one memory access, not two.
impl Hash for StoreKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

/// A deterministic map keyed by store keys: nodes and code in one table.
pub type KeyMap<V> = std::collections::HashMap<StoreKey, V, BuildHasherDefault<DigestHasher>>;
/// A deterministic set of store keys.
pub type KeySet = std::collections::HashSet<StoreKey, BuildHasherDefault<DigestHasher>>;

/// Prefix of code keys in a flat key space (geth's `"c" || codeHash`, v1.9.20 on).
pub const CODE_KEY_PREFIX: u8 = b'c';

/// Prefix of staged nodes in a flat key space: 17 bytes, so a staged key (49 bytes) can never
/// be taken for a node (32), code (33) or the progress record.
pub const STAGING_KEY_PREFIX: &[u8] = b"statesync-staged-";

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

/// The flat key of a staged node: [`STAGING_KEY_PREFIX`] followed by its hash.
pub fn staging_key(hash: &H256) -> Vec<u8> {
    let mut key = Vec::with_capacity(STAGING_KEY_PREFIX.len() + 32);
    key.extend_from_slice(STAGING_KEY_PREFIX);
    key.extend_from_slice(&hash.0);
    key
}

/// The hash named by a flat staging key, if `key` is one.
pub fn staged_hash(key: &[u8]) -> Option<H256> {
    key.strip_prefix(STAGING_KEY_PREFIX)
        .and_then(H256::from_slice)
}

/// One atomic store write. Order inside the batch does not matter: every item of `nodes` and
/// `codes` is complete (its whole subtrie is in this batch or already stored), and staging is
/// not part of the main keyspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitBatch {
    /// Complete nodes and code, for the main keyspace.
    pub nodes: Vec<(H256, Vec<u8>)>,
    pub codes: Vec<(H256, Vec<u8>)>,
    /// Verified nodes whose subtries are not complete yet, for the staging area.
    pub staged: Vec<(H256, Vec<u8>)>,
    /// Nodes to remove from the staging area: they complete in this batch, or are no longer
    /// wanted.
    pub unstaged: Vec<H256>,
}

impl CommitBatch {
    /// Items put in the main keyspace.
    pub fn len(&self) -> usize {
        self.nodes.len() + self.codes.len()
    }

    /// Whether the batch writes nothing at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.codes.is_empty()
            && self.staged.is_empty()
            && self.unstaged.is_empty()
    }

    /// Payload bytes put in the main keyspace, keys excluded.
    pub fn bytes(&self) -> usize {
        self.nodes
            .iter()
            .chain(&self.codes)
            .map(|(_, v)| v.len())
            .sum()
    }

    /// Payload bytes put in the staging area.
    pub fn staged_bytes(&self) -> usize {
        self.staged.iter().map(|(_, v)| v.len()).sum()
    }

    /// Every put and delete of the batch: main keyspace puts, then staging puts and deletes.
    pub fn operations(&self) -> usize {
        self.len() + self.staged.len() + self.unstaged.len()
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
/// simulated peer serves from. Its staging area is separate from `get`/`contains`, which see
/// the main keyspace only, like a real store's lookups.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    nodes: DigestMap<Vec<u8>>,
    codes: DigestMap<Vec<u8>>,
    staging: DigestMap<Vec<u8>>,
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

    /// Writes a commit batch: main keyspace puts, staging puts, then staging deletes.
    pub fn apply(&mut self, batch: &CommitBatch) {
        for (key, value) in batch.items() {
            self.insert(key, value.to_vec());
        }
        for (hash, value) in &batch.staged {
            self.staging.insert(*hash, value.clone());
        }
        for hash in &batch.unstaged {
            self.staging.remove(hash);
        }
    }

    /// The staging area's entries, sorted by hash.
    pub fn staged(&self) -> Vec<(H256, Vec<u8>)> {
        let mut entries: Vec<(H256, Vec<u8>)> =
            self.staging.iter().map(|(h, v)| (*h, v.clone())).collect();
        entries.sort_by_key(|(h, _)| *h);
        entries
    }

    pub fn staged_count(&self) -> usize {
        self.staging.len()
    }

    /// Whether the staging area holds `hash`.
    pub fn is_staged(&self, hash: &H256) -> bool {
        self.staging.contains_key(hash)
    }

    /// Puts a blob straight into the staging area (tests that corrupt it).
    pub fn stage(&mut self, hash: H256, value: Vec<u8>) {
        self.staging.insert(hash, value);
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
    fn staging_keys_cannot_be_taken_for_other_keys() {
        let hash = keccak256(b"x");
        let key = staging_key(&hash);
        assert_eq!(key.len(), 49);
        assert_eq!(staged_hash(&key), Some(hash));
        assert_eq!(staged_hash(&StoreKey::code(hash).flat_key()), None);
        assert_eq!(staged_hash(PROGRESS_KEY), None);
    }

    #[test]
    fn staging_is_apart_from_the_main_keyspace() {
        let mut store = MemoryStore::new();
        let hash = keccak256(b"node");
        let staged = CommitBatch {
            staged: vec![(hash, b"node".to_vec())],
            ..CommitBatch::default()
        };
        store.apply(&staged);
        assert!(store.is_staged(&hash));
        assert!(!store.contains(StoreKey::node(hash)));
        let moved = CommitBatch {
            nodes: vec![(hash, b"node".to_vec())],
            unstaged: vec![hash],
            ..CommitBatch::default()
        };
        store.apply(&moved);
        assert!(!store.is_staged(&hash));
        assert!(store.contains(StoreKey::node(hash)));
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
