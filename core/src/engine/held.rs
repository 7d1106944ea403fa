//! Answers held unverified while the store catches up (DESIGN.md I7).
//!
//! What may be *asked* is bounded on its own (the engine's ask cap), not by the commit batch:
//! a batch bounds what is verified and not yet durable. When an answer arrives and verifying
//! all of it would take the verified-but-unwritten items past one batch, the blobs it answers
//! that do not fit are kept here as they came, in answer order, and verified once a commit has
//! landed. Nothing is dropped for lack of room and nothing is verified past the bound; held
//! blobs count against asking more, so a slow store still slows the requests down.
//!
//! Only blobs that answer a task of their request are held: each was counted as asked until
//! its answer arrived, so what is held never exceeds what the ask cap let out.

use std::collections::VecDeque;

use crate::hash::H256;
use crate::scheduler::HashedSlice;

/// One held blob: its hash (computed on arrival) and where its bytes lie in `HeldAnswer::data`.
#[derive(Debug)]
struct HeldBlob {
    hash: H256,
    end: usize,
}

/// The held blobs of one answer, copied out of its frame, and the first one not verified yet.
#[derive(Debug, Default)]
pub(super) struct HeldAnswer {
    data: Vec<u8>,
    blobs: Vec<HeldBlob>,
    next: usize,
}

impl HeldAnswer {
    /// The next blob to verify, if any is left.
    pub fn peek(&self) -> Option<HashedSlice<'_>> {
        let blob = self.blobs.get(self.next)?;
        let start = match self.next {
            0 => 0,
            i => self.blobs[i - 1].end,
        };
        Some(HashedSlice::prehashed(
            blob.hash,
            &self.data[start..blob.end],
        ))
    }

    /// The blob `peek` gave was verified (or refused by the scheduler): move past it.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Blobs and bytes not verified yet.
    fn remaining(&self) -> (u64, u64) {
        let start = match self.next {
            0 => 0,
            i => self.blobs.get(i - 1).map_or(self.data.len(), |b| b.end),
        };
        let items = self.blobs.len().saturating_sub(self.next) as u64;
        (items, (self.data.len() - start) as u64)
    }
}

/// The held answers, oldest first, and their totals.
#[derive(Debug, Default)]
pub(super) struct Held {
    queue: VecDeque<HeldAnswer>,
    items: u64,
    bytes: u64,
    /// The most items held at once this session.
    pub peak_items: u64,
}

impl Held {
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Blobs held, not verified yet.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Their payload bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `blobs` (each verified-to-be-asked, not yet given to the scheduler) as one answer
    /// behind those held already.
    pub fn hold<'a>(&mut self, blobs: impl IntoIterator<Item = HashedSlice<'a>>) {
        let mut answer = HeldAnswer::default();
        for blob in blobs {
            answer.data.extend_from_slice(blob.data());
            answer.blobs.push(HeldBlob {
                hash: blob.hash(),
                end: answer.data.len(),
            });
        }
        if !answer.blobs.is_empty() {
            self.count(&answer);
            self.queue.push_back(answer);
        }
    }

    fn count(&mut self, answer: &HeldAnswer) {
        let (items, bytes) = answer.remaining();
        self.items += items;
        self.bytes += bytes;
        self.peak_items = self.peak_items.max(self.items);
    }

    /// Takes the oldest held answer out to verify; `put_back` returns what is left of it.
    pub fn take_front(&mut self) -> Option<HeldAnswer> {
        let answer = self.queue.pop_front()?;
        let (items, bytes) = answer.remaining();
        self.items -= items;
        self.bytes -= bytes;
        Some(answer)
    }

    /// Puts an answer taken by `take_front` back in front, unless nothing of it is left.
    pub fn put_back(&mut self, answer: HeldAnswer) {
        if answer.peek().is_some() {
            self.count(&answer);
            self.queue.push_front(answer);
        }
    }

    /// Drops everything held (the sync ended or failed).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.items = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn held_blobs_come_back_in_order_and_the_totals_follow() {
        let blobs: [&[u8]; 3] = [b"one", b"three", b""];
        let mut held = Held::default();
        held.hold(blobs.iter().map(|b| HashedSlice::new(b)));
        held.hold([HashedSlice::new(b"later")]);
        assert_eq!((held.items(), held.bytes()), (4, 13));
        let mut answer = held.take_front().expect("held");
        assert_eq!((held.items(), held.bytes()), (1, 5));
        let first = answer.peek().expect("a blob");
        assert_eq!(first.data(), b"one");
        assert_eq!(first.hash(), HashedSlice::new(b"one").hash());
        answer.advance();
        held.put_back(answer);
        assert_eq!((held.items(), held.bytes()), (3, 10));
        let mut answer = held.take_front().expect("held");
        assert_eq!(
            answer.peek().map(|b| b.data().to_vec()),
            Some(b"three".to_vec())
        );
        answer.advance();
        assert_eq!(answer.peek().map(|b| b.data().len()), Some(0));
        answer.advance();
        assert!(answer.peek().is_none());
        held.put_back(answer);
        let answer = held.take_front().expect("the later one");
        assert_eq!(
            answer.peek().map(|b| b.data().to_vec()),
            Some(b"later".to_vec())
        );
        assert_eq!(held.peak_items, 4);
        assert!(held.is_empty());
    }
}
