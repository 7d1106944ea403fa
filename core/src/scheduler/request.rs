//! One entry of the scheduler's request table, kept small: the table holds every item the
//! sync knows and has not written, so its entry size is the scheduler's memory (I5).

use std::cmp::{Ordering, Reverse};

use crate::nibbles::Nibbles;
use crate::store::StoreKey;

use super::table::Slot;

/// Where a request is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Waiting for the host to say whether the store has it.
    Checking,
    /// In the fetch queue.
    Queued,
    /// Handed out by `missing`.
    Fetching,
    /// Processed, waiting for `deps` children to complete.
    Waiting,
}

/// A known item not complete yet.
#[derive(Debug)]
pub(super) struct Request {
    pub key: StoreKey,
    /// Where the item sits (the first reference's path), packed once.
    pub path: PackedPath,
    pub phase: Phase,
    /// Its data is in the store's staging area (or on its way there in a cut batch).
    pub staged: bool,
    /// An account-trie leaf: its share of the keyspace is credited when it completes.
    pub leaf: bool,
    /// The depth counted in `fetches` while fetched or waiting.
    pub fetch_depth: Option<u8>,
    /// Counted among the items out in `Fanout` (handed out, answer not processed yet).
    pub out: bool,
    /// Children not yet complete.
    pub deps: u32,
    /// Held from `process` until it completes (then it moves to the memory batch).
    pub data: Option<Vec<u8>>,
    /// Nodes waiting on this one; a parent appears once per reference to this item.
    pub parents: Parents,
    /// The sequence number of its fetch queue slot, while `Queued`: a queue slot naming
    /// another number is stale.
    pub queued: u64,
}

impl Request {
    /// A new reference to look up.
    pub fn checking(key: StoreKey, path: PackedPath, parent: Option<Slot>) -> Request {
        Request {
            key,
            path,
            phase: Phase::Checking,
            staged: false,
            leaf: false,
            fetch_depth: None,
            out: false,
            deps: 0,
            data: None,
            parents: parent.map_or(Parents::None, Parents::One),
            queued: 0,
        }
    }
}

/// The nodes waiting on an item, by slot: almost always one, inline; shared code and
/// storage tries have many.
#[derive(Debug, Default)]
pub(super) enum Parents {
    #[default]
    None,
    One(Slot),
    // Boxed so that the enum stays two words in every entry: a bare `Vec` would make all
    // of them a word larger for the few items with many parents.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Slot>>),
}

impl Parents {
    pub fn push(&mut self, parent: Slot) {
        *self = match std::mem::take(self) {
            Parents::None => Parents::One(parent),
            Parents::One(first) => Parents::Many(Box::new(vec![first, parent])),
            Parents::Many(mut all) => {
                all.push(parent);
                Parents::Many(all)
            }
        };
    }

    /// Calls `f` for every parent, in the order they were added.
    pub fn for_each(&self, mut f: impl FnMut(Slot)) {
        match self {
            Parents::None => {}
            Parents::One(parent) => f(*parent),
            Parents::Many(all) => all.iter().copied().for_each(f),
        }
    }
}

/// Nibbles kept inline, two a byte: every account-trie path and storage paths to 16 levels
/// below their account.
const PACKED_NIBBLES: usize = 80;

/// A trie path packed two nibbles a byte: half the size of [`Nibbles`], which every table
/// entry would otherwise carry.
#[derive(Clone, Debug)]
pub(super) enum PackedPath {
    Inline {
        len: u8,
        bytes: [u8; PACKED_NIBBLES / 2],
    },
    Long(Box<Nibbles>),
}

impl PackedPath {
    pub fn pack(path: &Nibbles) -> PackedPath {
        if path.len() > PACKED_NIBBLES {
            return PackedPath::Long(Box::new(path.clone()));
        }
        let mut bytes = [0u8; PACKED_NIBBLES / 2];
        path.write_packed(&mut bytes);
        PackedPath::Inline {
            len: path.len() as u8,
            bytes,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            PackedPath::Inline { len, .. } => usize::from(*len),
            PackedPath::Long(path) => path.len(),
        }
    }

    /// Writes the path into `out`, replacing what it held.
    pub fn unpack_into(&self, out: &mut Nibbles) {
        match self {
            PackedPath::Inline { len, bytes } => out.set_packed(bytes, usize::from(*len)),
            PackedPath::Long(path) => out.clone_from(path),
        }
    }

    pub fn unpack(&self) -> Nibbles {
        let mut out = Nibbles::new();
        self.unpack_into(&mut out);
        out
    }

    /// geth's priority (v1.9.21+): depth in the top byte, so the deepest item comes first;
    /// then the first 14 nibbles inverted, so at equal depth the smallest path comes first.
    /// The walk is therefore depth-first in path order, and completed subtries leave memory
    /// early.
    pub fn priority(&self) -> u64 {
        let (len, lead) = match self {
            PackedPath::Inline { len, bytes } => {
                let mut lead = [0u8; 8];
                lead[1..].copy_from_slice(&bytes[..7]);
                (usize::from(*len), u64::from_be_bytes(lead))
            }
            PackedPath::Long(path) => {
                let lead = path.as_slice()[..14]
                    .iter()
                    .fold(0u64, |acc, n| acc << 4 | u64::from(*n));
                (path.len(), lead)
            }
        };
        // Only the nibbles the path has count; missing ones add nothing.
        let kept = len.min(14);
        let mask = if kept == 0 {
            0
        } else {
            ((1u64 << (4 * kept)) - 1) << (4 * (14 - kept))
        };
        ((len.min(255) as u64) << 56) | (!lead & mask)
    }
}

/// A queued request: fetched in priority order, first come first served at equal priority.
#[derive(PartialEq, Eq, Debug)]
pub(super) struct QueueEntry {
    pub priority: u64,
    pub seq: Reverse<u64>,
    pub slot: Slot,
}

impl Ord for QueueEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, self.seq).cmp(&(other.priority, other.seq))
    }
}

impl PartialOrd for QueueEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The priority as geth computes it, nibble by nibble.
    fn geth_priority(path: &Nibbles) -> u64 {
        let mut prio = (path.len().min(255) as u64) << 56;
        for (i, nibble) in path.as_slice().iter().take(14).enumerate() {
            prio |= u64::from(15 - nibble) << (52 - 4 * i);
        }
        prio
    }

    #[test]
    fn packed_paths_unpack_to_themselves_and_order_as_geth_does() {
        let mut path = Nibbles::new();
        for len in 0..=130usize {
            let packed = PackedPath::pack(&path);
            assert_eq!(packed.len(), len);
            assert_eq!(packed.unpack(), path, "length {len}");
            assert_eq!(packed.priority(), geth_priority(&path), "length {len}");
            path.push(((len * 7 + 3) % 16) as u8);
        }
    }

    #[test]
    fn parents_stay_inline_until_a_second_one() {
        let (a, b) = (7, 9);
        let mut parents = Parents::None;
        parents.push(a);
        assert!(matches!(parents, Parents::One(_)));
        parents.push(b);
        let mut seen = Vec::new();
        parents.for_each(|p| seen.push(p));
        assert_eq!(seen, vec![a, b]);
    }
}
