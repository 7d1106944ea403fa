//! Peer misbehaviour: per-request probabilities of each fault, and the functions that mangle
//! an honest answer.

use statesync_core::rng::SeededRng;
use statesync_core::wire::{Message, Status, PROTOCOL_VERSION};
use statesync_core::H256;

/// Per-request probabilities. An answer's *fate* (dropped connection, silence, garbage
/// instead of an answer) is drawn first, in that order; the content faults then apply
/// independently to an answer that is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// The connection breaks before the answer is sent; the client is told the peer left.
    pub drop: f64,
    /// The request is ignored.
    pub no_answer: f64,
    /// A frame of junk is sent instead of the answer.
    pub garbage: f64,
    /// The answer arrives after the engine's longest possible timeout.
    pub late: f64,
    /// A random subset of the items, kept in order.
    pub partial: f64,
    /// The answer stops after a random number of items.
    pub truncate: f64,
    /// An empty answer ("I have none of it").
    pub empty: f64,
    /// The items are shuffled.
    pub reorder: f64,
    /// Valid nodes of another state are mixed in.
    pub unrequested: f64,
    /// One blob has a flipped byte, so its hash matches nothing.
    pub wrong_hash: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        drop: 0.0,
        no_answer: 0.0,
        garbage: 0.0,
        late: 0.0,
        partial: 0.0,
        truncate: 0.0,
        empty: 0.0,
        reorder: 0.0,
        unrequested: 0.0,
        wrong_hash: 0.0,
    };

    pub fn is_none(&self) -> bool {
        *self == Faults::NONE
    }
}

/// Extra delay of a late answer: past the engine's maximum timeout (`RateConfig::max_timeout_ms`
/// is 60 s by default), so it always arrives after the request expired.
pub const LATE_BY_MS: u64 = 61_000;

/// Keeps a random subset of `blobs`, in order.
pub fn keep_subset(blobs: &mut Vec<Vec<u8>>, rng: &mut SeededRng) {
    let keep = rng.next_f64();
    blobs.retain(|_| rng.chance(keep));
}

/// Cuts the answer after a random number of items (possibly none).
pub fn truncate(blobs: &mut Vec<Vec<u8>>, rng: &mut SeededRng) {
    let len = rng.below(blobs.len() as u64 + 1) as usize;
    blobs.truncate(len);
}

/// Mixes up to three blobs from `foreign` in at random positions.
pub fn mix_in(blobs: &mut Vec<Vec<u8>>, foreign: &[Vec<u8>], rng: &mut SeededRng) {
    if foreign.is_empty() {
        return;
    }
    for _ in 0..1 + rng.below(3) {
        let blob = foreign[rng.below(foreign.len() as u64) as usize].clone();
        let at = rng.below(blobs.len() as u64 + 1) as usize;
        blobs.insert(at, blob);
    }
}

/// Flips one byte of one blob (an empty blob gains a byte instead).
pub fn corrupt_one(blobs: &mut [Vec<u8>], rng: &mut SeededRng) {
    if blobs.is_empty() {
        return;
    }
    let blob = &mut blobs[rng.below(blobs.len() as u64) as usize];
    if blob.is_empty() {
        blob.push(0x80);
    } else {
        let at = rng.below(blob.len() as u64) as usize;
        blob[at] ^= 1 << rng.below(8);
    }
}

/// A frame that is not a valid answer to `id`: random bytes, a NodeData code over broken RLP,
/// an answer to an id never asked, a request sent the wrong way, or a second Status.
pub fn garbage_frame(id: u64, head_root: H256, rng: &mut SeededRng) -> Vec<u8> {
    match rng.below(6) {
        0 => {
            let mut junk = vec![0u8; 1 + rng.below(200) as usize];
            rng.fill(&mut junk);
            junk
        }
        1 => {
            let mut junk = vec![0x0e; 2 + rng.below(64) as usize];
            rng.fill(&mut junk[1..]);
            junk
        }
        2 => Message::NodeData {
            id: id.wrapping_add(1_000_000 + rng.below(1000)),
            blobs: vec![b"junk"],
        }
        .encode(),
        3 => Message::GetNodeData {
            id,
            hashes: vec![head_root],
        }
        .encode(),
        4 => {
            // A valid answer with its last bytes cut off.
            let mut frame = Message::NodeData {
                id,
                blobs: vec![&[0xaa; 40], &[0xbb; 40]],
            }
            .encode();
            frame.truncate(frame.len() - 1 - rng.below(20) as usize);
            frame
        }
        _ => Message::Status(Status {
            version: PROTOCOL_VERSION,
            network_id: 1,
            head_root,
        })
        .encode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mangling_keeps_order_or_changes_what_it_says() {
        let mut rng = SeededRng::new(3);
        let original: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 4]).collect();
        let mut subset = original.clone();
        keep_subset(&mut subset, &mut rng);
        let positions: Vec<usize> = subset
            .iter()
            .map(|b| original.iter().position(|o| o == b).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        let mut corrupt = original.clone();
        corrupt_one(&mut corrupt, &mut rng);
        assert_eq!(
            corrupt
                .iter()
                .zip(&original)
                .filter(|(a, b)| a != b)
                .count(),
            1
        );
    }

    #[test]
    fn garbage_frames_never_decode_as_the_expected_answer() {
        let mut rng = SeededRng::new(4);
        for _ in 0..200 {
            let frame = garbage_frame(7, H256::ZERO, &mut rng);
            assert!(!matches!(
                Message::decode(&frame),
                Ok(Message::NodeData { id: 7, .. })
            ));
        }
    }
}
