//! Walks a stored state from its root and checks that it is complete and sound: every node
//! present and hashing to its key, every account's storage trie and code present. The proof
//! a sync is finished, and the test oracle for incomplete ones.
//!
//! Sans-IO like the rest of the crate: [`Walker::wanted`] names keys to read, the host reads
//! them (in batches, from any store) and hands them to [`Walker::supply`]. [`walk`] does both
//! for a store that answers at once.

use std::collections::HashMap;

use thiserror::Error;

use crate::account::{Account, AccountError};
use crate::hash::{keccak256, DigestSet, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
use crate::nibbles::Nibbles;
use crate::node::{NodeChild, NodeError, TrieNode};
use crate::scheduler::{SyncMode, ACCOUNT_PATH_LEN};
use crate::store::{ItemKind, MemoryStore, StoreKey};

/// What a complete walk counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "camelCase")
)]
pub struct WalkStats {
    pub accounts: u64,
    /// Accounts with code.
    pub contracts: u64,
    /// Distinct non-empty storage tries.
    pub storage_tries: u64,
    /// Values in storage tries (State) or in the trie (Trie).
    pub values: u64,
    /// Hashed nodes read (a node shared by two places is read twice).
    pub nodes: u64,
    pub node_bytes: u64,
    /// Distinct code blobs.
    pub codes: u64,
    pub code_bytes: u64,
}

/// Where a stored state is not complete or not sound.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WalkError {
    #[error("missing {kind:?} {hash} at {path}")]
    Missing {
        kind: ItemKind,
        hash: H256,
        path: Nibbles,
    },
    #[error("stored {kind:?} {hash} at {path} hashes to {got}")]
    HashMismatch {
        kind: ItemKind,
        hash: H256,
        got: H256,
        path: Nibbles,
    },
    #[error("stored node {hash} at {path} does not decode: {source}")]
    InvalidNode {
        hash: H256,
        path: Nibbles,
        source: NodeError,
    },
    #[error("account at {path} does not decode: {source}")]
    InvalidAccount { path: Nibbles, source: AccountError },
    #[error("value at {path} in the account trie is not at an account key")]
    ValueOffAccountPath { path: Nibbles },
    #[error("a key was supplied that the walk did not ask for")]
    Unasked,
}

/// A depth-first consistency walk. Memory is bounded by the trie depth times the fan-out,
/// plus one entry per distinct storage root and code hash.
#[derive(Debug)]
pub struct Walker {
    mode: SyncMode,
    /// Keys still to read, with where they sit. Popped last-in first-out: depth first.
    stack: Vec<(StoreKey, Nibbles)>,
    /// Keys handed out by `wanted` and not yet supplied.
    asked: HashMap<StoreKey, Vec<Nibbles>>,
    seen_storage: DigestSet,
    seen_code: DigestSet,
    stats: WalkStats,
    error: Option<WalkError>,
}

impl Walker {
    pub fn new(root: H256, mode: SyncMode) -> Walker {
        let mut stack = Vec::new();
        if root != EMPTY_ROOT_HASH {
            stack.push((StoreKey::node(root), Nibbles::new()));
        }
        Walker {
            mode,
            stack,
            asked: HashMap::new(),
            seen_storage: DigestSet::default(),
            seen_code: DigestSet::default(),
            stats: WalkStats::default(),
            error: None,
        }
    }

    /// Up to `max` keys to read next (at least one while any remain). Empty when the walk is
    /// finished or failed.
    #[must_use]
    pub fn wanted(&mut self, max: usize) -> Vec<StoreKey> {
        let mut out = Vec::new();
        while out.len() < max.max(1) && self.error.is_none() {
            let Some((key, path)) = self.stack.pop() else {
                break;
            };
            let paths = self.asked.entry(key).or_default();
            if paths.is_empty() {
                out.push(key);
            }
            paths.push(path);
        }
        out
    }

    /// The stored value of an asked key, or `None` if the store lacks it.
    pub fn supply(&mut self, key: StoreKey, value: Option<&[u8]>) {
        if self.error.is_some() {
            return;
        }
        let Some(paths) = self.asked.remove(&key) else {
            self.error = Some(WalkError::Unasked);
            return;
        };
        for path in paths {
            if let Err(err) = self.visit(key, &path, value) {
                self.error = Some(err);
                return;
            }
        }
    }

    pub fn is_finished(&self) -> bool {
        self.error.is_some() || (self.stack.is_empty() && self.asked.is_empty())
    }

    /// The outcome once finished: the counts, or the first problem found.
    pub fn result(&self) -> Result<WalkStats, WalkError> {
        match &self.error {
            Some(err) => Err(err.clone()),
            None => Ok(self.stats),
        }
    }

    fn visit(
        &mut self,
        key: StoreKey,
        path: &Nibbles,
        value: Option<&[u8]>,
    ) -> Result<(), WalkError> {
        let StoreKey { kind, hash } = key;
        let Some(value) = value else {
            return Err(WalkError::Missing {
                kind,
                hash,
                path: path.clone(),
            });
        };
        let got = keccak256(value);
        if got != hash {
            return Err(WalkError::HashMismatch {
                kind,
                hash,
                got,
                path: path.clone(),
            });
        }
        if kind == ItemKind::Code {
            self.stats.codes += 1;
            self.stats.code_bytes += value.len() as u64;
            return Ok(());
        }
        self.stats.nodes += 1;
        self.stats.node_bytes += value.len() as u64;
        let node = TrieNode::decode(value).map_err(|source| WalkError::InvalidNode {
            hash,
            path: path.clone(),
            source,
        })?;
        let in_accounts = self.mode == SyncMode::State && path.len() < ACCOUNT_PATH_LEN;
        let mut found = Vec::new();
        node.visit_children(path, &mut |child| match child {
            NodeChild::Hash { path, hash } => found.push(Found::Node(hash, path)),
            NodeChild::Value { path, value } => found.push(Found::Value(path, value.to_vec())),
        });
        // Reversed so the stack pops children in path order.
        for child in found.into_iter().rev() {
            match child {
                Found::Node(hash, path) => self.stack.push((StoreKey::node(hash), path)),
                Found::Value(path, value) if in_accounts => self.account(path, &value)?,
                Found::Value(..) => self.stats.values += 1,
            }
        }
        Ok(())
    }

    fn account(&mut self, path: Nibbles, value: &[u8]) -> Result<(), WalkError> {
        if path.len() != ACCOUNT_PATH_LEN {
            return Err(WalkError::ValueOffAccountPath { path });
        }
        let account = Account::decode(value).map_err(|source| WalkError::InvalidAccount {
            path: path.clone(),
            source,
        })?;
        self.stats.accounts += 1;
        if account.code_hash != KECCAK_EMPTY {
            self.stats.contracts += 1;
            if self.seen_code.insert(account.code_hash) {
                self.stack
                    .push((StoreKey::code(account.code_hash), path.clone()));
            }
        }
        if account.storage_root != EMPTY_ROOT_HASH && self.seen_storage.insert(account.storage_root)
        {
            self.stats.storage_tries += 1;
            self.stack
                .push((StoreKey::node(account.storage_root), path));
        }
        Ok(())
    }
}

enum Found {
    Node(H256, Nibbles),
    Value(Nibbles, Vec<u8>),
}

/// Walks a store that answers at once.
pub fn walk(root: H256, mode: SyncMode, store: &MemoryStore) -> Result<WalkStats, WalkError> {
    let mut walker = Walker::new(root, mode);
    while !walker.is_finished() {
        for key in walker.wanted(64) {
            walker.supply(key, store.get(key));
        }
    }
    walker.result()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::builder::{KeyMode, TrieBuilder};

    fn dogs() -> (H256, MemoryStore) {
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        for (k, v) in [
            ("doe", "reindeer"),
            ("dog", "puppy"),
            ("dogglesworth", "cat"),
        ] {
            trie.insert(k.as_bytes(), v.as_bytes());
        }
        let mut store = MemoryStore::new();
        let root = trie.build(&mut |h, n| store.insert(StoreKey::node(h), n));
        (root, store)
    }

    #[test]
    fn counts_a_complete_trie() {
        let (root, store) = dogs();
        let stats = walk(root, SyncMode::Trie, &store).unwrap();
        assert_eq!(stats.values, 3);
        assert_eq!(stats.nodes as usize, store.node_count());
        assert_eq!(
            walk(EMPTY_ROOT_HASH, SyncMode::Trie, &store),
            Ok(WalkStats::default())
        );
    }

    #[test]
    fn names_a_missing_or_corrupt_node() {
        let (root, store) = dogs();
        for key in store.keys() {
            let mut broken = store.clone();
            broken.remove(key);
            assert!(matches!(
                walk(root, SyncMode::Trie, &broken),
                Err(WalkError::Missing { hash, .. }) if hash == key.hash
            ));
            let mut corrupt = store.clone();
            corrupt.insert(key, b"garbage".to_vec());
            assert!(matches!(
                walk(root, SyncMode::Trie, &corrupt),
                Err(WalkError::HashMismatch { hash, .. }) if hash == key.hash
            ));
        }
    }
}
