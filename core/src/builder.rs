//! Builds a Merkle-Patricia trie from a set of keys and values: its root and every hashed node,
//! which is what a peer serves. Used for fixtures, the demo's source state and test oracles.

use std::collections::BTreeMap;

use crate::hash::{keccak256, EMPTY_ROOT_HASH, H256};
use crate::nibbles::Nibbles;
use crate::node::{BranchNode, ChildRef, TrieNode, MAX_EMBEDDED_LEN};

/// How a key is turned into its trie path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyMode {
    /// The key's own bytes.
    Plain,
    /// `keccak256(key)`: geth's secure trie, as the state uses.
    Secure,
}

/// An ordered set of trie entries; `build` turns it into nodes.
///
/// The trie's shape depends only on the final set of keys, so the builder keeps that set and
/// builds bottom-up from sorted keys, instead of replaying inserts and deletes on nodes.
#[derive(Clone, Debug)]
pub struct TrieBuilder {
    mode: KeyMode,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl TrieBuilder {
    pub fn new(mode: KeyMode) -> TrieBuilder {
        TrieBuilder {
            mode,
            entries: BTreeMap::new(),
        }
    }

    fn path_key(&self, key: &[u8]) -> Vec<u8> {
        match self.mode {
            KeyMode::Plain => key.to_vec(),
            KeyMode::Secure => keccak256(key).0.to_vec(),
        }
    }

    /// Sets `key` to `value`; an empty value deletes the key, as in geth.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        let key = self.path_key(key);
        if value.is_empty() {
            self.entries.remove(&key);
        } else {
            self.entries.insert(key, value.to_vec());
        }
    }

    /// Sets the entry whose trie path is `path_key` (already hashed in secure mode).
    pub fn insert_hashed(&mut self, path_key: H256, value: &[u8]) {
        if value.is_empty() {
            self.entries.remove(path_key.as_bytes().as_slice());
        } else {
            self.entries.insert(path_key.0.to_vec(), value.to_vec());
        }
    }

    pub fn remove(&mut self, key: &[u8]) {
        let key = self.path_key(key);
        self.entries.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The root hash, discarding the nodes.
    pub fn root(&self) -> H256 {
        self.build(&mut |_, _| {})
    }

    /// Builds the trie, hands every hashed node to `sink` (children before parents, the root
    /// last) and returns the root hash. The root is handed over even when it is under 32 bytes,
    /// because it is fetched by its hash; an empty trie hands over nothing.
    pub fn build(&self, sink: &mut dyn FnMut(H256, Vec<u8>)) -> H256 {
        if self.entries.is_empty() {
            return EMPTY_ROOT_HASH;
        }
        let entries: Vec<(&[u8], &[u8])> = self
            .entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        let root = build_node(&entries, 0, sink).encode();
        let hash = keccak256(&root);
        sink(hash, root);
        hash
    }
}

fn nibble_at(key: &[u8], index: usize) -> u8 {
    let byte = key[index / 2];
    if index % 2 == 0 {
        byte >> 4
    } else {
        byte & 0x0f
    }
}

fn path_from(key: &[u8], start: usize, end: usize) -> Nibbles {
    let nibbles = (start..end).map(|i| nibble_at(key, i)).collect();
    Nibbles::from_nibbles(nibbles).unwrap_or_default()
}

/// The node for `entries` (sorted, unique, non-empty) whose keys agree on the first `depth`
/// nibbles.
fn build_node(
    entries: &[(&[u8], &[u8])],
    depth: usize,
    sink: &mut dyn FnMut(H256, Vec<u8>),
) -> TrieNode {
    let (first, first_value) = entries[0];
    if entries.len() == 1 {
        return TrieNode::Leaf {
            path: path_from(first, depth, first.len() * 2),
            value: first_value.to_vec(),
        };
    }
    // Sorted keys: the common prefix of all is the common prefix of the first and last.
    let last = entries[entries.len() - 1].0;
    let limit = first.len().min(last.len()) * 2;
    let mut shared = depth;
    while shared < limit && nibble_at(first, shared) == nibble_at(last, shared) {
        shared += 1;
    }
    if shared > depth {
        let child = build_node(entries, shared, sink);
        return TrieNode::Extension {
            path: path_from(first, depth, shared),
            child: reference(child, sink),
        };
    }
    let mut branch = BranchNode::default();
    let mut rest = entries;
    // A key that ends here sorts first and becomes the branch's value.
    if first.len() * 2 == depth {
        branch.value = Some(first_value.to_vec());
        rest = &entries[1..];
    }
    while !rest.is_empty() {
        let slot = nibble_at(rest[0].0, depth);
        let run = rest
            .iter()
            .take_while(|(k, _)| nibble_at(k, depth) == slot)
            .count();
        let child = build_node(&rest[..run], depth + 1, sink);
        branch.children[slot as usize] = reference(child, sink);
        rest = &rest[run..];
    }
    TrieNode::Branch(Box::new(branch))
}

/// Embeds a small node in its parent; hashes and hands over a larger one.
fn reference(node: TrieNode, sink: &mut dyn FnMut(H256, Vec<u8>)) -> ChildRef {
    let encoded = node.encode();
    if encoded.len() <= MAX_EMBEDDED_LEN {
        return ChildRef::Embedded(Box::new(node));
    }
    let hash = keccak256(&encoded);
    sink(hash, encoded);
    ChildRef::Hash(hash)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn empty_trie_has_the_empty_root_and_no_nodes() {
        let mut nodes = 0;
        assert_eq!(
            TrieBuilder::new(KeyMode::Plain).build(&mut |_, _| nodes += 1),
            EMPTY_ROOT_HASH
        );
        assert_eq!(nodes, 0);
    }

    #[test]
    fn reproduces_the_dogs_root() {
        // trieanyorder.json "dogs"; the fixture tests cover the rest.
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        trie.insert(b"doe", b"reindeer");
        trie.insert(b"dog", b"puppy");
        trie.insert(b"dogglesworth", b"cat");
        assert_eq!(
            trie.root().to_string(),
            "0x8aad789dff2f538bca5d8ea56e8abe10f4c7ba3a5dea95fea4cd6e7c3a1168d3"
        );
    }

    #[test]
    fn small_root_is_still_handed_over_and_deletes_apply() {
        let mut trie = TrieBuilder::new(KeyMode::Plain);
        trie.insert(b"a", b"1");
        trie.insert(b"b", b"2");
        trie.insert(b"b", b"");
        let mut nodes = Vec::new();
        let root = trie.build(&mut |h, n| nodes.push((h, n)));
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].0, root);
        assert!(nodes[0].1.len() < 32);
    }
}
