//! The 32-byte hash that names every trie node and code blob, and keccak-256.

use core::fmt;
use core::hash::{BuildHasherDefault, Hasher};
use core::str::FromStr;

use sha3::{Digest, Keccak256};
use thiserror::Error;

use crate::hex;

/// A keccak-256 digest: a trie node's or code blob's key in the store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct H256(pub [u8; 32]);

/// Hashes only the leading eight bytes: a digest's bytes are uniform already, and the sync's
/// tables hash a digest for every item it handles.
impl core::hash::Hash for H256 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut lead = [0u8; 8];
        lead.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(lead));
    }
}

/// `keccak256(rlp(""))`: the root of a trie with no entries. Never fetched or stored.
pub const EMPTY_ROOT_HASH: H256 = H256([
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
]);

/// `keccak256("")`: the code hash of an account without code. Never fetched or stored.
pub const KECCAK_EMPTY: H256 = H256([
    0xc5, 0xd2, 0x46, 0x01, 0x86, 0xf7, 0x23, 0x3c, 0x92, 0x7e, 0x7d, 0xb2, 0xdc, 0xc7, 0x03, 0xc0,
    0xe5, 0x00, 0xb6, 0x53, 0xca, 0x82, 0x27, 0x3b, 0x7b, 0xfa, 0xd8, 0x04, 0x5d, 0x85, 0xa4, 0x70,
]);

impl H256 {
    pub const ZERO: H256 = H256([0; 32]);

    /// The hash in `bytes`, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<H256> {
        <[u8; 32]>::try_from(bytes).ok().map(H256)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Serialized as `0x`-prefixed lowercase hex, as JavaScript and JSON users expect.
#[cfg(feature = "serde")]
impl serde::Serialize for H256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// keccak-256 of `data`.
pub fn keccak256(data: &[u8]) -> H256 {
    H256(Keccak256::digest(data).into())
}

impl fmt::Display for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(&self.0))
    }
}

impl fmt::Debug for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text was not a 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseHashError {
    #[error(transparent)]
    Hex(#[from] hex::HexError),
    #[error("a hash is 32 bytes, got {got}")]
    WrongLength { got: usize },
}

impl FromStr for H256 {
    type Err = ParseHashError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(text.trim())?;
        H256::from_slice(&bytes).ok_or(ParseHashError::WrongLength { got: bytes.len() })
    }
}

/// Hashes keyed by `H256` with the key's own leading bytes. The keys are keccak digests of
/// verified content, so they are already uniform, and a fixed hasher keeps iteration order,
/// and so the engine's output, the same from run to run.
#[derive(Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Fold arbitrary input so any key works.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A deterministic map keyed by digests.
pub type DigestMap<V> = std::collections::HashMap<H256, V, BuildHasherDefault<DigestHasher>>;
/// A deterministic set of digests.
pub type DigestSet = std::collections::HashSet<H256, BuildHasherDefault<DigestHasher>>;

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn constants_are_the_digests_they_name() {
        assert_eq!(keccak256(&[0x80]), EMPTY_ROOT_HASH);
        assert_eq!(keccak256(&[]), KECCAK_EMPTY);
    }

    #[test]
    fn parses_and_prints_hex() {
        let text = "0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544";
        let hash: H256 = text.parse().unwrap();
        assert_eq!(hash.to_string(), text);
        assert_eq!(format!("{hash:?}"), text);
        assert_eq!(
            "0x1234".parse::<H256>(),
            Err(ParseHashError::WrongLength { got: 2 })
        );
        assert!(matches!(
            "0xzz".parse::<H256>(),
            Err(ParseHashError::Hex(_))
        ));
    }
}
