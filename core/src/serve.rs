//! Serving state to peers: answering a GetNodeData with geth's limits (spec §6). Sans-IO; the
//! caller supplies the lookup, so any store can serve, including a synced database.

use crate::hash::H256;
use crate::store::StoreKey;
use crate::wire::{Message, WireError, MAX_BLOBS_PER_RESPONSE, SOFT_RESPONSE_BYTES};

/// How much one answer may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Items per answer at most.
    pub max_items: usize,
    /// Stop adding blobs once the answer holds this many bytes.
    pub soft_bytes: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_items: MAX_BLOBS_PER_RESPONSE,
            soft_bytes: SOFT_RESPONSE_BYTES,
        }
    }
}

/// What a peer's frame asks of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServeOutcome {
    /// The NodeData frame to send back.
    Answer(Vec<u8>),
    /// A frame a server does not answer (Status, NodeData).
    Ignored,
}

/// The blobs an honest server sends for `hashes`: for each hash in order, the trie node or
/// else the code with that hash, skipping what `lookup` lacks, until `max_items` or
/// `soft_bytes` is reached (the blob that crosses the byte limit is still sent).
pub fn select<'s>(
    hashes: &[H256],
    limits: ServeLimits,
    lookup: impl Fn(StoreKey) -> Option<&'s [u8]>,
) -> Vec<&'s [u8]> {
    let mut blobs: Vec<&[u8]> = Vec::new();
    let mut bytes = 0;
    for hash in hashes {
        if blobs.len() >= limits.max_items || bytes >= limits.soft_bytes {
            break;
        }
        if let Some(blob) = lookup(StoreKey::node(*hash)).or_else(|| lookup(StoreKey::code(*hash)))
        {
            bytes += blob.len();
            blobs.push(blob);
        }
    }
    blobs
}

/// Answers a GetNodeData frame with the blobs `select` picks.
pub fn answer<'s>(
    frame: &[u8],
    limits: ServeLimits,
    lookup: impl Fn(StoreKey) -> Option<&'s [u8]>,
) -> Result<ServeOutcome, WireError> {
    let Message::GetNodeData { id, hashes } = Message::decode(frame)? else {
        return Ok(ServeOutcome::Ignored);
    };
    let blobs = select(&hashes, limits, lookup);
    Ok(ServeOutcome::Answer(
        Message::NodeData { id, blobs }.encode(),
    ))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::hash::keccak256;
    use crate::store::MemoryStore;

    #[test]
    fn serves_in_order_skipping_missing_and_stopping_at_limits() {
        let mut store = MemoryStore::new();
        let a = store.insert_code(&[1u8; 100]);
        let b = keccak256(b"absent");
        let c = keccak256(&[2u8; 100]);
        store.insert(StoreKey::node(c), vec![2u8; 100]);
        let request = Message::GetNodeData {
            id: 9,
            hashes: vec![a, b, c],
        }
        .encode();
        let ServeOutcome::Answer(frame) =
            answer(&request, ServeLimits::default(), |k| store.get(k)).unwrap()
        else {
            panic!("not answered");
        };
        assert_eq!(
            Message::decode(&frame).unwrap(),
            Message::NodeData {
                id: 9,
                blobs: vec![&[1u8; 100][..], &[2u8; 100][..]]
            }
        );
        let tight = ServeLimits {
            max_items: 10,
            soft_bytes: 50,
        };
        let ServeOutcome::Answer(frame) = answer(&request, tight, |k| store.get(k)).unwrap() else {
            panic!("not answered");
        };
        assert_eq!(
            Message::decode(&frame).unwrap(),
            Message::NodeData {
                id: 9,
                blobs: vec![&[1u8; 100][..]]
            }
        );
    }

    #[test]
    fn ignores_other_messages_and_refuses_garbage() {
        let store = MemoryStore::new();
        let frame = Message::NodeData {
            id: 1,
            blobs: vec![],
        }
        .encode();
        assert_eq!(
            answer(&frame, ServeLimits::default(), |k| store.get(k)),
            Ok(ServeOutcome::Ignored)
        );
        assert!(answer(&[0x0d, 0xff], ServeLimits::default(), |k| store.get(k)).is_err());
    }
}
