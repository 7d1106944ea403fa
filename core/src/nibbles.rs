//! Trie paths as nibble sequences, and their hex-prefix ("compact") encoding.

use core::fmt;

use thiserror::Error;

/// A path through a trie: one element per nibble (0..=15), most significant nibble first.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Nibbles(Vec<u8>);

/// Hex-prefix flag bit: the path ends in a leaf.
const FLAG_LEAF: u8 = 0x2;
/// Hex-prefix flag bit: the path has an odd number of nibbles.
const FLAG_ODD: u8 = 0x1;

/// Why a hex-prefix encoded path was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CompactError {
    #[error("hex-prefix path is empty")]
    Empty,
    #[error("hex-prefix flag nibble {flags:#x} is not 0..=3")]
    BadFlags { flags: u8 },
    #[error("hex-prefix padding nibble {padding:#x} of an even path is not zero")]
    BadPadding { padding: u8 },
}

impl Nibbles {
    pub const fn new() -> Nibbles {
        Nibbles(Vec::new())
    }

    /// Both nibbles of every byte, high first.
    pub fn from_bytes(bytes: &[u8]) -> Nibbles {
        let mut out = Vec::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(b >> 4);
            out.push(b & 0x0f);
        }
        Nibbles(out)
    }

    /// Nibbles given one per byte; `None` if any is over 15.
    pub fn from_nibbles(nibbles: Vec<u8>) -> Option<Nibbles> {
        nibbles.iter().all(|n| *n < 16).then_some(Nibbles(nibbles))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The nibble at `index`.
    pub fn at(&self, index: usize) -> u8 {
        self.0[index]
    }

    pub fn push(&mut self, nibble: u8) {
        debug_assert!(nibble < 16);
        self.0.push(nibble & 0x0f);
    }

    /// This path followed by `more`.
    pub fn join(&self, more: &Nibbles) -> Nibbles {
        let mut out = Vec::with_capacity(self.0.len() + more.0.len());
        out.extend_from_slice(&self.0);
        out.extend_from_slice(&more.0);
        Nibbles(out)
    }

    /// This path followed by one nibble.
    pub fn child(&self, nibble: u8) -> Nibbles {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        out.extend_from_slice(&self.0);
        out.push(nibble & 0x0f);
        Nibbles(out)
    }

    /// The first `len` nibbles.
    pub fn prefix(&self, len: usize) -> Nibbles {
        Nibbles(self.0[..len.min(self.0.len())].to_vec())
    }

    /// The nibbles from `start` on.
    pub fn suffix(&self, start: usize) -> Nibbles {
        Nibbles(self.0[start.min(self.0.len())..].to_vec())
    }

    /// Packs an even-length path back into bytes; `None` for an odd length.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        if self.0.len() % 2 != 0 {
            return None;
        }
        Some(self.0.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
    }

    /// Hex-prefix encoding (Yellow Paper appendix C): a flag nibble, a padding nibble when the
    /// length is even, then the path packed two nibbles a byte.
    pub fn encode_compact(&self, leaf: bool) -> Vec<u8> {
        let odd = self.0.len() % 2 == 1;
        let flags = if leaf { FLAG_LEAF } else { 0 } | if odd { FLAG_ODD } else { 0 };
        let mut out = Vec::with_capacity(self.0.len() / 2 + 1);
        let rest = if odd {
            out.push(flags << 4 | self.0[0]);
            &self.0[1..]
        } else {
            out.push(flags << 4);
            &self.0[..]
        };
        out.extend(rest.chunks_exact(2).map(|p| p[0] << 4 | p[1]));
        out
    }

    /// Decodes a hex-prefix path into the nibbles and whether it is a leaf's.
    pub fn decode_compact(bytes: &[u8]) -> Result<(Nibbles, bool), CompactError> {
        let (&first, rest) = bytes.split_first().ok_or(CompactError::Empty)?;
        let flags = first >> 4;
        if flags > (FLAG_LEAF | FLAG_ODD) {
            return Err(CompactError::BadFlags { flags });
        }
        let mut out = Vec::with_capacity(rest.len() * 2 + 1);
        if flags & FLAG_ODD != 0 {
            out.push(first & 0x0f);
        } else if first & 0x0f != 0 {
            return Err(CompactError::BadPadding {
                padding: first & 0x0f,
            });
        }
        for b in rest {
            out.push(b >> 4);
            out.push(b & 0x0f);
        }
        Ok((Nibbles(out), flags & FLAG_LEAF != 0))
    }
}

impl fmt::Debug for Nibbles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nibbles(")?;
        fmt::Display::fmt(self, f)?;
        f.write_str(")")
    }
}

/// One hex digit a nibble; the empty path prints as `∅`.
impl fmt::Display for Nibbles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("∅");
        }
        for n in &self.0 {
            write!(f, "{n:x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn nib(v: &[u8]) -> Nibbles {
        Nibbles::from_nibbles(v.to_vec()).unwrap()
    }

    #[test]
    fn compact_matches_the_yellow_paper_examples() {
        assert_eq!(
            nib(&[1, 2, 3, 4, 5]).encode_compact(false),
            vec![0x11, 0x23, 0x45]
        );
        assert_eq!(
            nib(&[0, 1, 2, 3, 4, 5]).encode_compact(false),
            vec![0x00, 0x01, 0x23, 0x45]
        );
        assert_eq!(
            nib(&[0, 15, 1, 12, 11, 8]).encode_compact(true),
            vec![0x20, 0x0f, 0x1c, 0xb8]
        );
        assert_eq!(
            nib(&[15, 1, 12, 11, 8]).encode_compact(true),
            vec![0x3f, 0x1c, 0xb8]
        );
        assert_eq!(Nibbles::new().encode_compact(true), vec![0x20]);
    }

    #[test]
    fn compact_round_trips() {
        for len in 0..9u8 {
            let path = nib(&(0..len).map(|i| (i * 7) % 16).collect::<Vec<_>>());
            for leaf in [false, true] {
                let encoded = path.encode_compact(leaf);
                assert_eq!(Nibbles::decode_compact(&encoded), Ok((path.clone(), leaf)));
            }
        }
    }

    #[test]
    fn compact_rejects_bad_flags_padding_and_empty_input() {
        assert_eq!(Nibbles::decode_compact(&[]), Err(CompactError::Empty));
        assert_eq!(
            Nibbles::decode_compact(&[0x40]),
            Err(CompactError::BadFlags { flags: 4 })
        );
        assert_eq!(
            Nibbles::decode_compact(&[0x05, 0x12]),
            Err(CompactError::BadPadding { padding: 5 })
        );
    }

    #[test]
    fn bytes_round_trip_and_display_is_hex() {
        let path = Nibbles::from_bytes(&[0xab, 0x01]);
        assert_eq!(path.as_slice(), &[0xa, 0xb, 0x0, 0x1]);
        assert_eq!(path.to_bytes(), Some(vec![0xab, 0x01]));
        assert_eq!(path.to_string(), "ab01");
        assert_eq!(path.prefix(3).to_bytes(), None);
        assert_eq!(Nibbles::from_nibbles(vec![16]), None);
    }
}
