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

/// Probes per key.
const PROBES: usize = 4;

#[derive(Clone, Debug)]
pub struct KeyFilter {
    words: Vec<u64>,
    /// Bits in the filter minus one: a power of two, so a probe is a mask.
    mask: u64,
}

impl KeyFilter {
    /// A filter of about `bytes` bytes (rounded down to a power of two, at least 64 bits).
    pub fn new(bytes: usize) -> KeyFilter {
        let wanted = bytes.saturating_mul(8).max(64);
        let bits = 1usize << (usize::BITS - 1 - wanted.leading_zeros());
        KeyFilter {
            words: vec![0; bits / 64],
            mask: bits as u64 - 1,
        }
    }

    /// Bits of the filter's positions for `key`. Keys are keccak digests, so their own bytes
    /// are uniform; code and node keys of one hash get different positions.
    fn positions(key: &StoreKey) -> [u64; PROBES] {
        let h = &key.hash.0;
        let salt = if key.kind == ItemKind::Code {
            0x9e37_79b9_7f4a_7c15
        } else {
            0
        };
        let mut out = [0u64; PROBES];
        for (i, slot) in out.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&h[i * 8..i * 8 + 8]);
            *slot = u64::from_le_bytes(word) ^ salt;
        }
        out
    }

    pub fn insert(&mut self, key: &StoreKey) {
        for p in Self::positions(key) {
            let bit = p & self.mask;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False when `key` was certainly never inserted.
    pub fn may_contain(&self, key: &StoreKey) -> bool {
        Self::positions(key).iter().all(|p| {
            let bit = p & self.mask;
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
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
        // 20k keys in 512k bits with 4 probes: about 0.2 % false positives.
        assert!(false_maybes < 200, "{false_maybes} false maybes");
        // The same hash as code is another key.
        assert!(!filter.may_contain(&StoreKey::code(keys[0].hash)) || filter.may_contain(&keys[0]));
    }

    #[test]
    fn size_rounds_down_to_a_power_of_two() {
        assert_eq!(KeyFilter::new(100_000).bytes(), 65_536);
        assert_eq!(KeyFilter::new(0).bytes(), 8);
    }
}
