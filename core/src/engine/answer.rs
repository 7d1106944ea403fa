//! Matching an answer to its request, before anything is delivered: which task each blob
//! answers, and what the answer says about the tasks it left out. A pure function of the
//! hashes asked and the hashes received.

use crate::hash::{DigestMap, H256};

/// How an answer lines up with its request.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AnswerMatch {
    /// For each blob, in answer order: the index of the task it answers, or `None` when it
    /// answers nothing still open in this request (never asked of it, or a repeat).
    pub placed: Vec<Option<usize>>,
    /// The tasks no blob answered, in request order, each with whether the peer evidently
    /// lacks it: it skipped the item and served a later one, or sent nothing at all. Items
    /// after the last one served were more likely cut by its response size limit.
    pub missing: Vec<(usize, bool)>,
}

impl AnswerMatch {
    /// Blobs that answered a task.
    pub fn served(&self) -> usize {
        self.placed.iter().flatten().count()
    }
}

/// Matches `answered` (the hashes of an answer's blobs, in order) against `asked` (the
/// request's hashes, in order). Answers come in request order, so a cursor finds each item at
/// once; a map is built only for an answer that skips or reorders.
pub(super) fn match_answer(asked: &[H256], answered: &[H256]) -> AnswerMatch {
    let mut delivered = vec![false; asked.len()];
    let mut positions: Option<DigestMap<usize>> = None;
    let mut cursor = 0;
    let mut last_served: Option<usize> = None;
    let mut placed = Vec::with_capacity(answered.len());
    for hash in answered {
        let index = if asked.get(cursor) == Some(hash) {
            Some(cursor)
        } else {
            positions
                .get_or_insert_with(|| asked.iter().enumerate().map(|(i, h)| (*h, i)).collect())
                .get(hash)
                .copied()
        };
        match index {
            Some(i) if !delivered[i] => {
                delivered[i] = true;
                cursor = i + 1;
                last_served = Some(last_served.map_or(i, |last| last.max(i)));
                placed.push(Some(i));
            }
            _ => placed.push(None),
        }
    }
    let nothing = answered.is_empty();
    let missing = (0..asked.len())
        .filter(|i| !delivered[*i])
        .map(|i| (i, nothing || last_served.is_some_and(|last| i < last)))
        .collect();
    AnswerMatch { placed, missing }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::hash::keccak256;

    fn hashes(n: u8) -> Vec<H256> {
        (0..n).map(|i| keccak256(&[i])).collect()
    }

    #[test]
    fn an_answer_in_request_order_places_every_blob() {
        let asked = hashes(3);
        let matched = match_answer(&asked, &asked);
        assert_eq!(matched.placed, vec![Some(0), Some(1), Some(2)]);
        assert!(matched.missing.is_empty());
        assert_eq!(matched.served(), 3);
    }

    #[test]
    fn a_skipped_item_is_lacking_and_a_cut_tail_is_not() {
        let asked = hashes(5);
        let matched = match_answer(&asked, &[asked[0], asked[2]]);
        assert_eq!(matched.placed, vec![Some(0), Some(2)]);
        assert_eq!(matched.missing, vec![(1, true), (3, false), (4, false)]);
    }

    #[test]
    fn an_empty_answer_lacks_everything() {
        let asked = hashes(2);
        let matched = match_answer(&asked, &[]);
        assert_eq!(matched.missing, vec![(0, true), (1, true)]);
        assert_eq!(matched.served(), 0);
    }

    #[test]
    fn repeats_and_strangers_answer_nothing_and_order_does_not_matter() {
        let asked = hashes(3);
        let stranger = keccak256(b"stranger");
        let matched = match_answer(&asked, &[asked[2], stranger, asked[0], asked[2]]);
        assert_eq!(matched.placed, vec![Some(2), None, Some(0), None]);
        assert_eq!(matched.missing, vec![(1, true)]);
    }
}
