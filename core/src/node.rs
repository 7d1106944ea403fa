//! Merkle-Patricia trie nodes (Yellow Paper appendix D): decoding peer blobs into typed nodes
//! and encoding nodes for the trie builder.

use rlp::RlpStream;
use thiserror::Error;

use crate::hash::H256;
use crate::nibbles::{CompactError, Nibbles};
use crate::rlp_items::{self, Item, RlpError};

/// A node smaller than this many bytes is embedded in its parent instead of hashed.
pub const MAX_EMBEDDED_LEN: usize = 31;

/// A decoded trie node.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum TrieNode {
    /// Sixteen children, one per nibble, and the value of a key that ends here.
    Branch(Box<BranchNode>),
    /// A shared path segment leading to one child.
    Extension { path: Nibbles, child: ChildRef },
    /// The rest of a key and its value.
    Leaf { path: Nibbles, value: Vec<u8> },
}

#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct BranchNode {
    pub children: [ChildRef; 16],
    pub value: Option<Vec<u8>>,
}

/// How a node refers to a child.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub enum ChildRef {
    #[default]
    Empty,
    /// A node stored under its own hash.
    Hash(H256),
    /// A node whose encoding is under 32 bytes, carried inside its parent.
    Embedded(Box<TrieNode>),
}

/// Why a blob is not a trie node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Rlp(#[from] RlpError),
    #[error("a node is an rlp list, found a string")]
    NotAList,
    #[error("node has {got} items, expected 2 or 17")]
    WrongItemCount { got: usize },
    #[error("invalid hex-prefix path: {0}")]
    Path(#[from] CompactError),
    #[error("child reference is a {got}-byte string, expected 0 or 32 bytes")]
    BadReferenceLength { got: usize },
    #[error("embedded node is {got} bytes, expected under 32")]
    OversizedEmbedded { got: usize },
    #[error("extension node has an empty path")]
    EmptyExtensionPath,
    #[error("extension node has no child")]
    EmptyExtensionChild,
    #[error("{0} is an rlp list, expected a string")]
    ValueIsList(&'static str),
}

impl TrieNode {
    /// Decodes a whole blob as one node.
    pub fn decode(blob: &[u8]) -> Result<TrieNode, NodeError> {
        let item = rlp_items::exactly_one(blob)?;
        decode_item(item)
    }

    /// The node's RLP encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut stream = RlpStream::new();
        self.append_to(&mut stream);
        stream.out().to_vec()
    }

    fn append_to(&self, stream: &mut RlpStream) {
        match self {
            TrieNode::Branch(branch) => {
                stream.begin_list(17);
                for child in &branch.children {
                    child.append_to(stream);
                }
                match &branch.value {
                    Some(value) => stream.append(&value.as_slice()),
                    None => stream.append_empty_data(),
                };
            }
            TrieNode::Extension { path, child } => {
                stream.begin_list(2);
                stream.append(&path.encode_compact(false).as_slice());
                child.append_to(stream);
            }
            TrieNode::Leaf { path, value } => {
                stream.begin_list(2);
                stream.append(&path.encode_compact(true).as_slice());
                stream.append(&value.as_slice());
            }
        }
    }
}

impl ChildRef {
    fn append_to(&self, stream: &mut RlpStream) {
        match self {
            ChildRef::Empty => {
                stream.append_empty_data();
            }
            ChildRef::Hash(hash) => {
                stream.append(&hash.0.as_slice());
            }
            ChildRef::Embedded(node) => node.append_to(stream),
        }
    }
}

/// The items of a node's list and how many there are: at most 17 are kept, the count is
/// still checked in full.
fn node_items(item: Item<'_>) -> Result<([Option<Item<'_>>; 17], usize), NodeError> {
    let mut items: [Option<Item<'_>>; 17] = [None; 17];
    let mut count = 0;
    for next in item.list()? {
        let next = next?;
        if count < items.len() {
            items[count] = Some(next);
        }
        count += 1;
    }
    Ok((items, count))
}

fn decode_item(item: Item<'_>) -> Result<TrieNode, NodeError> {
    if !item.is_list {
        return Err(NodeError::NotAList);
    }
    let (items, count) = node_items(item)?;
    match count {
        2 => decode_short(items[0].unwrap_or(EMPTY), items[1].unwrap_or(EMPTY)),
        17 => {
            let mut branch = BranchNode::default();
            for (slot, child) in branch.children.iter_mut().enumerate() {
                *child = decode_ref(items[slot].unwrap_or(EMPTY))?;
            }
            let value = items[16].unwrap_or(EMPTY);
            let value = value
                .string()
                .map_err(|_| NodeError::ValueIsList("branch value"))?;
            if !value.is_empty() {
                branch.value = Some(value.to_vec());
            }
            Ok(TrieNode::Branch(Box::new(branch)))
        }
        got => Err(NodeError::WrongItemCount { got }),
    }
}

const EMPTY: Item<'static> = Item {
    is_list: false,
    payload: &[],
    raw: &[0x80],
};

fn decode_short(key: Item<'_>, val: Item<'_>) -> Result<TrieNode, NodeError> {
    let key = key
        .string()
        .map_err(|_| NodeError::ValueIsList("short node path"))?;
    let (path, is_leaf) = Nibbles::decode_compact(key)?;
    if is_leaf {
        let value = val
            .string()
            .map_err(|_| NodeError::ValueIsList("leaf value"))?;
        return Ok(TrieNode::Leaf {
            path,
            value: value.to_vec(),
        });
    }
    if path.is_empty() {
        return Err(NodeError::EmptyExtensionPath);
    }
    let child = decode_ref(val)?;
    if child == ChildRef::Empty {
        return Err(NodeError::EmptyExtensionChild);
    }
    Ok(TrieNode::Extension { path, child })
}

fn decode_ref(item: Item<'_>) -> Result<ChildRef, NodeError> {
    if item.is_list {
        if item.raw.len() > MAX_EMBEDDED_LEN {
            return Err(NodeError::OversizedEmbedded {
                got: item.raw.len(),
            });
        }
        return Ok(ChildRef::Embedded(Box::new(decode_item(item)?)));
    }
    match item.payload.len() {
        0 => Ok(ChildRef::Empty),
        32 => Ok(ChildRef::Hash(
            H256::from_slice(item.payload).unwrap_or_default(),
        )),
        got => Err(NodeError::BadReferenceLength { got }),
    }
}

/// Something a node points at, with its full path from the root of the walk.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeChild<'a> {
    /// A hashed child node at `path`.
    Hash { path: Nibbles, hash: H256 },
    /// A value whose key is `path` (leaf terminators stripped).
    Value { path: Nibbles, value: &'a [u8] },
}

impl TrieNode {
    /// Calls `visit` for every hashed child and every value below this node, descending into
    /// embedded nodes, in path order. `path` is where this node sits.
    pub fn visit_children<'a>(&'a self, path: &Nibbles, visit: &mut impl FnMut(NodeChild<'a>)) {
        match self {
            TrieNode::Branch(branch) => {
                for (slot, child) in branch.children.iter().enumerate() {
                    child.visit(path.child(slot as u8), visit);
                }
                if let Some(value) = &branch.value {
                    visit(NodeChild::Value {
                        path: path.clone(),
                        value,
                    });
                }
            }
            TrieNode::Extension { path: key, child } => child.visit(path.join(key), visit),
            TrieNode::Leaf { path: key, value } => visit(NodeChild::Value {
                path: path.join(key),
                value,
            }),
        }
    }
}

impl ChildRef {
    fn visit<'a>(&'a self, path: Nibbles, visit: &mut impl FnMut(NodeChild<'a>)) {
        match self {
            ChildRef::Empty => {}
            ChildRef::Hash(hash) => visit(NodeChild::Hash { path, hash: *hash }),
            ChildRef::Embedded(node) => node.visit_children(&path, visit),
        }
    }
}

/// What a node is, as far as the share of the keyspace under it goes: which of a branch's
/// children are hashed, how long an extension's path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeShape {
    /// Bit `i` of `hashed` is set when child `i` is a reference by hash.
    Branch {
        hashed: u16,
    },
    /// `len` nibbles to one child, `hashed` or embedded.
    Extension {
        len: usize,
        hashed: bool,
    },
    Leaf,
}

/// A hashed child or a value met by [`visit_encoded`], its path borrowed from the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildAt<'p, 'a> {
    Hash { path: &'p Nibbles, hash: H256 },
    Value { path: &'p Nibbles, value: &'a [u8] },
}

impl<'a> ChildAt<'_, 'a> {
    /// The child with a path of its own, as [`TrieNode::visit_children`] gives it.
    pub fn to_node_child(self) -> NodeChild<'a> {
        match self {
            ChildAt::Hash { path, hash } => NodeChild::Hash {
                path: path.clone(),
                hash,
            },
            ChildAt::Value { path, value } => NodeChild::Value {
                path: path.clone(),
                value,
            },
        }
    }
}

/// Reads an encoded node in place, without building a [`TrieNode`]: it refuses exactly what
/// [`TrieNode::decode`] refuses, with the same error, and calls `visit` for every hashed child
/// and (if `values`) every value below the node, in the order of
/// [`TrieNode::visit_children`]. `path` is where the node sits; children's paths are built on
/// it in place, and it is as it was on return. Values that are not wanted cost no path: a
/// storage trie's leaves sit 128 nibbles deep.
///
/// Children met before an error were visited already: a caller that must change nothing for
/// an invalid node collects them first.
pub fn visit_encoded<'a>(
    blob: &'a [u8],
    path: &mut Nibbles,
    values: bool,
    visit: &mut impl FnMut(ChildAt<'_, 'a>),
) -> Result<NodeShape, NodeError> {
    let item = rlp_items::exactly_one(blob)?;
    let base = path.len();
    let mut walk = Walk {
        path,
        values,
        visit,
    };
    let shape = walk.item(item);
    walk.path.truncate(base);
    shape
}

/// The state of one `visit_encoded`.
struct Walk<'w, V> {
    path: &'w mut Nibbles,
    values: bool,
    visit: &'w mut V,
}

impl<'a, V: FnMut(ChildAt<'_, 'a>)> Walk<'_, V> {
    /// `decode_item` without the node: the same checks in the same order.
    fn item(&mut self, item: Item<'a>) -> Result<NodeShape, NodeError> {
        if !item.is_list {
            return Err(NodeError::NotAList);
        }
        let (items, count) = node_items(item)?;
        match count {
            2 => self.short(items[0].unwrap_or(EMPTY), items[1].unwrap_or(EMPTY)),
            17 => {
                let base = self.path.len();
                let mut hashed = 0u16;
                for (slot, child) in items[..16].iter().enumerate() {
                    self.path.push(slot as u8);
                    if self.reference(child.unwrap_or(EMPTY))? == Ref::Hash {
                        hashed |= 1 << slot;
                    }
                    self.path.truncate(base);
                }
                let value = items[16]
                    .unwrap_or(EMPTY)
                    .string()
                    .map_err(|_| NodeError::ValueIsList("branch value"))?;
                if self.values && !value.is_empty() {
                    (self.visit)(ChildAt::Value {
                        path: self.path,
                        value,
                    });
                }
                Ok(NodeShape::Branch { hashed })
            }
            got => Err(NodeError::WrongItemCount { got }),
        }
    }

    /// `decode_short` without the node.
    fn short(&mut self, key: Item<'a>, val: Item<'a>) -> Result<NodeShape, NodeError> {
        let key = key
            .string()
            .map_err(|_| NodeError::ValueIsList("short node path"))?;
        if !self.values && Nibbles::compact_is_leaf(key)? {
            // Checked as decoding checks it; nobody needs the value's path.
            val.string()
                .map_err(|_| NodeError::ValueIsList("leaf value"))?;
            return Ok(NodeShape::Leaf);
        }
        let base = self.path.len();
        let is_leaf = self.path.push_compact(key)?;
        let len = self.path.len() - base;
        if is_leaf {
            let value = val
                .string()
                .map_err(|_| NodeError::ValueIsList("leaf value"))?;
            (self.visit)(ChildAt::Value {
                path: self.path,
                value,
            });
            return Ok(NodeShape::Leaf);
        }
        if len == 0 {
            return Err(NodeError::EmptyExtensionPath);
        }
        match self.reference(val)? {
            Ref::Empty => Err(NodeError::EmptyExtensionChild),
            child => Ok(NodeShape::Extension {
                len,
                hashed: child == Ref::Hash,
            }),
        }
    }

    /// `decode_ref` without the node: a hashed child is visited at the path, an embedded
    /// node is walked.
    fn reference(&mut self, item: Item<'a>) -> Result<Ref, NodeError> {
        if item.is_list {
            if item.raw.len() > MAX_EMBEDDED_LEN {
                return Err(NodeError::OversizedEmbedded {
                    got: item.raw.len(),
                });
            }
            let base = self.path.len();
            let walked = self.item(item);
            self.path.truncate(base);
            walked?;
            return Ok(Ref::Embedded);
        }
        match item.payload.len() {
            0 => Ok(Ref::Empty),
            32 => {
                let hash = H256::from_slice(item.payload).unwrap_or_default();
                (self.visit)(ChildAt::Hash {
                    path: self.path,
                    hash,
                });
                Ok(Ref::Hash)
            }
            got => Err(NodeError::BadReferenceLength { got }),
        }
    }
}

/// How a child was referenced.
#[derive(PartialEq, Eq)]
enum Ref {
    Empty,
    Hash,
    Embedded,
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::hash::keccak256;

    fn nib(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v.to_vec()).unwrap()
    }

    fn leaf(path: &[u8], value: &[u8]) -> TrieNode {
        TrieNode::Leaf {
            path: nib(path),
            value: value.to_vec(),
        }
    }

    #[test]
    fn round_trips_every_node_kind() {
        let small = leaf(&[1], b"x");
        let mut branch = BranchNode::default();
        branch.children[0] = ChildRef::Hash(keccak256(b"a"));
        branch.children[3] = ChildRef::Embedded(Box::new(small.clone()));
        branch.value = Some(b"v".to_vec());
        let nodes = [
            small,
            leaf(&[], b"empty path"),
            TrieNode::Extension {
                path: nib(&[1, 2, 3]),
                child: ChildRef::Hash(keccak256(b"b")),
            },
            TrieNode::Branch(Box::new(branch)),
        ];
        for node in nodes {
            assert_eq!(TrieNode::decode(&node.encode()), Ok(node));
        }
    }

    #[test]
    fn refuses_wrong_item_counts_and_strings() {
        assert_eq!(
            TrieNode::decode(&[0xc3, 0x01, 0x02, 0x03]),
            Err(NodeError::WrongItemCount { got: 3 })
        );
        assert_eq!(
            TrieNode::decode(&[0xc0]),
            Err(NodeError::WrongItemCount { got: 0 })
        );
        assert_eq!(TrieNode::decode(&[0x83, 1, 2, 3]), Err(NodeError::NotAList));
        assert!(matches!(TrieNode::decode(&[]), Err(NodeError::Rlp(_))));
    }

    #[test]
    fn refuses_truncated_and_trailing_bytes() {
        let blob = leaf(&[1, 2], b"value").encode();
        assert!(matches!(
            TrieNode::decode(&blob[..blob.len() - 1]),
            Err(NodeError::Rlp(_))
        ));
        let mut long = blob.clone();
        long.push(0);
        assert_eq!(
            TrieNode::decode(&long),
            Err(NodeError::Rlp(RlpError::TrailingBytes { extra: 1 }))
        );
    }

    #[test]
    fn refuses_bad_references() {
        // Extension whose child is a 3-byte string.
        let mut s = RlpStream::new_list(2);
        s.append(&nib(&[1]).encode_compact(false).as_slice());
        s.append(&[1u8, 2, 3].as_slice());
        assert_eq!(
            TrieNode::decode(&s.out()),
            Err(NodeError::BadReferenceLength { got: 3 })
        );
        // Extension whose embedded child encodes to 32 bytes or more.
        let big = leaf(&[1], &[7u8; 40]).encode();
        let mut s = RlpStream::new_list(2);
        s.append(&nib(&[1]).encode_compact(false).as_slice());
        s.append_raw(&big, 1);
        assert_eq!(
            TrieNode::decode(&s.out()),
            Err(NodeError::OversizedEmbedded { got: big.len() })
        );
    }

    #[test]
    fn refuses_bad_paths_and_empty_extensions() {
        let mut s = RlpStream::new_list(2);
        s.append(&[0x45u8].as_slice());
        s.append(&b"v".as_slice());
        assert_eq!(
            TrieNode::decode(&s.out()),
            Err(NodeError::Path(CompactError::BadFlags { flags: 4 }))
        );
        let mut s = RlpStream::new_list(2);
        s.append(&[0x00u8].as_slice());
        s.append(&keccak256(b"c").0.as_slice());
        assert_eq!(
            TrieNode::decode(&s.out()),
            Err(NodeError::EmptyExtensionPath)
        );
        let mut s = RlpStream::new_list(2);
        s.append(&[0x11u8].as_slice());
        s.append_empty_data();
        assert_eq!(
            TrieNode::decode(&s.out()),
            Err(NodeError::EmptyExtensionChild)
        );
    }

    /// `visit_encoded` against `decode` + `visit_children` on one blob.
    fn visits_as_decoded(blob: &[u8]) {
        let start = nib(&[3, 9]);
        let mut path = start.clone();
        let mut walked = Vec::new();
        let shape = visit_encoded(blob, &mut path, true, &mut |child| {
            walked.push(child.to_node_child())
        });
        assert_eq!(path, start, "the path was not restored");
        // Without values: the same verdict and shape, and only the hashed children.
        let mut values = 0;
        let quiet = visit_encoded(blob, &mut path, false, &mut |child| {
            values += usize::from(matches!(child, ChildAt::Value { .. }))
        });
        assert_eq!(quiet, shape);
        assert_eq!(path, start);
        assert_eq!(values, 0);
        match TrieNode::decode(blob) {
            Ok(node) => {
                let mut decoded = Vec::new();
                node.visit_children(&start, &mut |c| decoded.push(c));
                assert_eq!(walked, decoded);
                let expected = match &node {
                    TrieNode::Branch(b) => NodeShape::Branch {
                        hashed: (0..16)
                            .filter(|i| matches!(b.children[*i], ChildRef::Hash(_)))
                            .fold(0, |m, i| m | 1 << i),
                    },
                    TrieNode::Extension { path, child } => NodeShape::Extension {
                        len: path.len(),
                        hashed: matches!(child, ChildRef::Hash(_)),
                    },
                    TrieNode::Leaf { .. } => NodeShape::Leaf,
                };
                assert_eq!(shape, Ok(expected));
            }
            Err(err) => assert_eq!(shape, Err(err)),
        }
    }

    #[test]
    fn visiting_in_place_agrees_with_decoding() {
        let mut inner = BranchNode::default();
        inner.children[2] = ChildRef::Embedded(Box::new(leaf(&[5], b"x")));
        let mut branch = BranchNode::default();
        branch.children[0] = ChildRef::Hash(keccak256(b"a"));
        branch.children[1] = ChildRef::Embedded(Box::new(TrieNode::Branch(Box::new(inner))));
        branch.value = Some(b"v".to_vec());
        let nodes = [
            TrieNode::Branch(Box::new(branch)),
            leaf(&[1, 2, 3], b"value"),
            TrieNode::Extension {
                path: nib(&[1, 2]),
                child: ChildRef::Hash(keccak256(b"b")),
            },
            TrieNode::Extension {
                path: nib(&[4]),
                child: ChildRef::Embedded(Box::new(leaf(&[6], b"y"))),
            },
        ];
        for node in nodes {
            let blob = node.encode();
            visits_as_decoded(&blob);
            // Every truncation and every single-byte change is refused, or read, alike.
            for end in 0..blob.len() {
                visits_as_decoded(&blob[..end]);
            }
            for at in 0..blob.len() {
                for delta in [1u8, 0x10, 0x80] {
                    let mut bent = blob.clone();
                    bent[at] = bent[at].wrapping_add(delta);
                    visits_as_decoded(&bent);
                }
            }
        }
        visits_as_decoded(&[0xc3, 0x01, 0x02, 0x03]);
        visits_as_decoded(&[0xc0]);
        visits_as_decoded(&[0x83, 1, 2, 3]);
    }

    #[test]
    fn visits_hash_children_and_values_through_embedded_nodes() {
        let mut inner = BranchNode::default();
        inner.children[2] = ChildRef::Embedded(Box::new(leaf(&[5], b"x")));
        let inner = TrieNode::Branch(Box::new(inner));
        assert!(inner.encode().len() <= MAX_EMBEDDED_LEN);
        let mut root = BranchNode::default();
        root.children[1] = ChildRef::Embedded(Box::new(inner));
        root.children[4] = ChildRef::Hash(keccak256(b"h"));
        let root = TrieNode::Branch(Box::new(root));
        let mut seen = Vec::new();
        root.visit_children(&nib(&[9]), &mut |c| seen.push(c));
        assert_eq!(
            seen,
            vec![
                NodeChild::Value {
                    path: nib(&[9, 1, 2, 5]),
                    value: b"x"
                },
                NodeChild::Hash {
                    path: nib(&[9, 4]),
                    hash: keccak256(b"h")
                },
            ]
        );
    }
}
