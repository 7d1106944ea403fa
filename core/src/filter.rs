//! A bloom filter of store keys written in this session: geth's sync bloom (spec §2.8),
//! used only where it is exact about absence.
//!
//! A sync into a store that started empty asks the store about every child it finds, and
//! nearly every answer is "absent". When the store held nothing at the start, anything it
//! holds now was committed by this session, so a filter of the committed keys answers
//! "absent" for sure, and only "maybe" needs a real lookup. A false "maybe" costs one
//! lookup; there is no false "absent". Memory is fixed by the configuration, whatever the
//! state's size: past its capacity the filter just says "maybe" more often.

use crate::store::{ItemKind, StoreKey};

/// Bits set per key, all in one 64-bit word: one memory access per key, where probes spread
/// over the whole filter cost one cache miss each (the sync asks for every child it finds).
const PROBES: usize = 4;

#[derive(Clone, Debug)]
pub struct KeyFilter {
    words: Vec<u64>,
    /// Words in the filter minus one: a power of two, so a word index is a mask.
    mask: u64,
}

impl KeyFilter {
    /// A filter of about `bytes` bytes (rounded down to a power of two, at least one word).
    pub fn new(bytes: usize) -> KeyFilter {
        let wanted = (bytes / 8).max(1);
        let words = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        KeyFilter {
            words: vec![0; words],
            mask: words as u64 - 1,
        }
    }

    /// The word of `key` and the bits it sets there. Keys are keccak digests, so their own
    /// bytes are uniform; code and node keys of one hash get different words.
    fn slot(&self, key: &StoreKey) -> (usize, u64) {
        let h = &key.hash.0;
        let salt = if key.kind == ItemKind::Code {
            0x9e37_79b9_7f4a_7c15
        } else {
            0
        };
        let word = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(bytes) ^ salt
        };
        let index = (word(8) & self.mask) as usize;
        let positions = word(16);
        let bits = (0..PROBES).fold(0u64, |bits, i| bits | 1 << ((positions >> (6 * i)) & 63));
        (index, bits)
    }

    pub fn insert(&mut self, key: &StoreKey) {
        let (index, bits) = self.slot(key);
        self.words[index] |= bits;
    }

    /// False when `key` was certainly never inserted.
    pub fn may_contain(&self, key: &StoreKey) -> bool {
        let (index, bits) = self.slot(key);
        self.words[index] & bits == bits
    }

    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::hash::keccak256;

    #[test]
    fn inserted_keys_are_always_found_and_absent_ones_mostly_not() {
        let mut filter = KeyFilter::new(64 * 1024);
        assert_eq!(filter.bytes(), 64 * 1024);
        let keys: Vec<StoreKey> = (0u32..20_000)
            .map(|i| StoreKey::node(keccak256(&i.to_le_bytes())))
            .collect();
        for key in &keys {
            filter.insert(key);
        }
        assert!(keys.iter().all(|k| filter.may_contain(k)));
        let false_maybes = (20_000u32..40_000)
            .filter(|i| filter.may_contain(&StoreKey::node(keccak256(&i.to_le_bytes()))))
            .count();
        // 20k keys in 512k bits, 4 bits in one word of each: about 0.3 % false positives
        // (0.2 % with the bits spread over the whole filter).
        assert!(false_maybes < 200, "{false_maybes} false maybes");
        // The same hash as code is another key.
        assert!(!filter.may_contain(&StoreKey::code(keys[0].hash)) || filter.may_contain(&keys[0]));
    }

    #[test]
    fn size_rounds_down_to_a_power_of_two() {
        assert_eq!(KeyFilter::new(100_000).bytes(), 65_536);
        assert_eq!(KeyFilter::new(0).bytes(), 8);
        assert_eq!(KeyFilter::new(15).bytes(), 8);
    }
}
