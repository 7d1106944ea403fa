//! Trie paths as nibble sequences, and their hex-prefix ("compact") encoding.

use core::fmt;

use thiserror::Error;

/// A path through a trie: one element per nibble (0..=15), most significant nibble first.
///
/// Paths up to [`INLINE_NIBBLES`] long (every account-trie path, and storage paths to 16
/// levels below their account) live inline: the scheduler makes one for every child of every
/// node it processes, and a heap allocation each was a large share of its time.
#[derive(Clone)]
pub struct Nibbles(Repr);

/// Longest path kept without a heap allocation.
pub const INLINE_NIBBLES: usize = 80;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_NIBBLES] },
    Heap(Vec<u8>),
}

impl Default for Nibbles {
    fn default() -> Self {
        Nibbles::new()
    }
}

impl PartialEq for Nibbles {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Nibbles {}

impl core::hash::Hash for Nibbles {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialOrd for Nibbles {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Nibbles {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

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
        Nibbles(Repr::Inline {
            len: 0,
            buf: [0; INLINE_NIBBLES],
        })
    }

    /// A path of the concatenated parts (each already nibbles).
    fn from_parts(parts: &[&[u8]]) -> Nibbles {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= INLINE_NIBBLES {
            let mut buf = [0u8; INLINE_NIBBLES];
            let mut at = 0;
            for part in parts {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            Nibbles(Repr::Inline {
                len: len as u8,
                buf,
            })
        } else {
            Nibbles(Repr::Heap(parts.concat()))
        }
    }

    /// Both nibbles of every byte, high first.
    pub fn from_bytes(bytes: &[u8]) -> Nibbles {
        let mut out = Vec::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(b >> 4);
            out.push(b & 0x0f);
        }
        Nibbles::from_parts(&[&out])
    }

    /// Nibbles given one per byte; `None` if any is over 15.
    pub fn from_nibbles(nibbles: Vec<u8>) -> Option<Nibbles> {
        nibbles
            .iter()
            .all(|n| *n < 16)
            .then(|| Nibbles::from_parts(&[&nibbles]))
    }

    #[inline]
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Heap(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Heap(v) => v,
        }
    }

    /// The nibble at `index`.
    pub fn at(&self, index: usize) -> u8 {
        self.as_slice()[index]
    }

    /// Appends one nibble. Inline, with room: a store and an increment (paths are built a
    /// nibble at a time for every child of every node synced).
    #[inline]
    pub fn push(&mut self, nibble: u8) {
        debug_assert!(nibble < 16);
        if let Repr::Inline { len, buf } = &mut self.0 {
            if let Some(slot) = buf.get_mut(usize::from(*len)) {
                *slot = nibble & 0x0f;
                *len += 1;
                return;
            }
        }
        self.push_spilled(nibble & 0x0f);
    }

    /// `push` past the inline capacity.
    #[cold]
    fn push_spilled(&mut self, nibble: u8) {
        match &mut self.0 {
            Repr::Heap(v) => v.push(nibble),
            Repr::Inline { .. } => {
                let mut v = self.as_slice().to_vec();
                v.push(nibble);
                self.0 = Repr::Heap(v);
            }
        }
    }

    /// Replaces the path with the first `len` nibbles of `packed`, two a byte, high first.
    pub fn set_packed(&mut self, packed: &[u8], len: usize) {
        let len = len.min(packed.len() * 2);
        if len > INLINE_NIBBLES {
            let mut v: Vec<u8> = packed.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect();
            v.truncate(len);
            self.0 = Repr::Heap(v);
            return;
        }
        let mut buf = [0u8; INLINE_NIBBLES];
        let used = &packed[..len.div_ceil(2)];
        // Eight nibbles at a time: every path of every item synced is unpacked once.
        let mut quads = used.chunks_exact(4);
        let mut at = 0;
        for quad in &mut quads {
            let mut word = [0u8; 4];
            word.copy_from_slice(quad);
            buf[at..at + 8].copy_from_slice(&spread(u32::from_le_bytes(word)).to_le_bytes());
            at += 8;
        }
        for byte in quads.remainder() {
            buf[at] = byte >> 4;
            buf[at + 1] = byte & 0x0f;
            at += 2;
        }
        self.0 = Repr::Inline {
            len: len as u8,
            buf,
        };
    }

    /// The path packed two nibbles a byte, high first, into the start of `out` (an odd last
    /// nibble fills a high half, the low half zero). `out` must hold `len().div_ceil(2)`.
    pub fn write_packed(&self, out: &mut [u8]) {
        let mut octets = self.as_slice().chunks_exact(8);
        let mut at = 0;
        for (octet, dest) in (&mut octets).zip(out.chunks_exact_mut(4)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(octet);
            dest.copy_from_slice(&gather(u64::from_le_bytes(word)).to_le_bytes());
            at += 4;
        }
        let rest = octets.remainder();
        let pairs = rest.chunks_exact(2);
        let last = pairs.remainder().first().map(|n| n << 4);
        for (byte, pair) in out[at..].iter_mut().zip(pairs) {
            *byte = pair[0] << 4 | pair[1];
            at += 1;
        }
        if let (Some(last), Some(byte)) = (last, out.get_mut(at)) {
            *byte = last;
        }
    }

    /// Shortens the path to its first `len` nibbles (no-op if it is not longer).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        match &mut self.0 {
            Repr::Inline { len: n, .. } => *n = (*n).min(len as u8),
            Repr::Heap(v) => v.truncate(len),
        }
    }

    /// Appends the nibbles of a hex-prefix encoded path in place, as `decode_compact` reads
    /// them, and says whether it is a leaf's. On an error the path is left as it was.
    pub fn push_compact(&mut self, bytes: &[u8]) -> Result<bool, CompactError> {
        let (first, rest, leaf, odd) = compact_parts(bytes)?;
        let start = self.len();
        let added = rest.len() * 2 + usize::from(odd);
        if let Repr::Inline { len, buf } = &mut self.0 {
            if let Some(out) = buf.get_mut(start..start + added) {
                let (head, pairs) = out.split_at_mut(usize::from(odd));
                if let Some(h) = head.first_mut() {
                    *h = first & 0x0f;
                }
                for (pair, b) in pairs.chunks_exact_mut(2).zip(rest) {
                    pair[0] = b >> 4;
                    pair[1] = b & 0x0f;
                }
                *len += added as u8;
                return Ok(leaf);
            }
        }
        if odd {
            self.push(first & 0x0f);
        }
        for b in rest {
            self.push(b >> 4);
            self.push(b & 0x0f);
        }
        Ok(leaf)
    }

    /// This path followed by `more`.
    pub fn join(&self, more: &Nibbles) -> Nibbles {
        Nibbles::from_parts(&[self.as_slice(), more.as_slice()])
    }

    /// This path followed by one nibble.
    pub fn child(&self, nibble: u8) -> Nibbles {
        Nibbles::from_parts(&[self.as_slice(), &[nibble & 0x0f]])
    }

    /// The first `len` nibbles.
    pub fn prefix(&self, len: usize) -> Nibbles {
        let all = self.as_slice();
        Nibbles::from_parts(&[&all[..len.min(all.len())]])
    }

    /// The nibbles from `start` on.
    pub fn suffix(&self, start: usize) -> Nibbles {
        let all = self.as_slice();
        Nibbles::from_parts(&[&all[start.min(all.len())..]])
    }

    /// Packs an even-length path back into bytes; `None` for an odd length.
    pub fn to_bytes(&self) -> Option<Vec<u8>> {
        let all = self.as_slice();
        if all.len() % 2 != 0 {
            return None;
        }
        Some(all.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect())
    }

    /// Hex-prefix encoding (Yellow Paper appendix C): a flag nibble, a padding nibble when the
    /// length is even, then the path packed two nibbles a byte.
    pub fn encode_compact(&self, leaf: bool) -> Vec<u8> {
        let all = self.as_slice();
        let odd = all.len() % 2 == 1;
        let flags = if leaf { FLAG_LEAF } else { 0 } | if odd { FLAG_ODD } else { 0 };
        let mut out = Vec::with_capacity(all.len() / 2 + 1);
        let rest = if odd {
            out.push(flags << 4 | all[0]);
            &all[1..]
        } else {
            out.push(flags << 4);
            all
        };
        out.extend(rest.chunks_exact(2).map(|p| p[0] << 4 | p[1]));
        out
    }

    /// Checks a hex-prefix path as `decode_compact` does, and says whether it is a leaf's,
    /// without reading its nibbles.
    pub fn compact_is_leaf(bytes: &[u8]) -> Result<bool, CompactError> {
        compact_parts(bytes).map(|(_, _, leaf, _)| leaf)
    }

    /// Decodes a hex-prefix path into the nibbles and whether it is a leaf's.
    pub fn decode_compact(bytes: &[u8]) -> Result<(Nibbles, bool), CompactError> {
        let (first, rest, leaf, odd) = compact_parts(bytes)?;
        // Filled in place: every leaf and extension decoded goes through here.
        let len = rest.len() * 2 + usize::from(odd);
        let fill = |out: &mut [u8]| {
            let mut at = 0;
            if odd {
                out[0] = first & 0x0f;
                at = 1;
            }
            for b in rest {
                out[at] = b >> 4;
                out[at + 1] = b & 0x0f;
                at += 2;
            }
        };
        let path = if len <= INLINE_NIBBLES {
            let mut buf = [0u8; INLINE_NIBBLES];
            fill(&mut buf[..len]);
            Nibbles(Repr::Inline {
                len: len as u8,
                buf,
            })
        } else {
            let mut v = vec![0u8; len];
            fill(&mut v);
            Nibbles(Repr::Heap(v))
        };
        Ok((path, leaf))
    }
}

/// Eight nibbles (one a byte, little-endian) packed into four bytes, two a byte, the first
/// nibble high.
fn gather(nibbles: u64) -> u32 {
    // Byte j becomes nibble j above nibble j + 1; the even bytes are the packed ones.
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00ff_00ff_00ff_00ff;
    let halves = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    (halves | (halves >> 16)) as u32
}

/// The inverse of [`gather`]: four packed bytes into eight nibbles, one a byte.
fn spread(packed: u32) -> u64 {
    let packed = u64::from(packed);
    let halves = (packed | (packed << 16)) & 0x0000_ffff_0000_ffff;
    let bytes = (halves | (halves << 8)) & 0x00ff_00ff_00ff_00ff;
    ((bytes >> 4) & 0x0f0f_0f0f_0f0f_0f0f) | ((bytes & 0x0f0f_0f0f_0f0f_0f0f) << 8)
}

/// Checks a hex-prefix path's flag byte: the byte, the packed rest, whether it is a leaf's
/// path, and whether it has an odd number of nibbles.
fn compact_parts(bytes: &[u8]) -> Result<(u8, &[u8], bool, bool), CompactError> {
    let (&first, rest) = bytes.split_first().ok_or(CompactError::Empty)?;
    let flags = first >> 4;
    if flags > (FLAG_LEAF | FLAG_ODD) {
        return Err(CompactError::BadFlags { flags });
    }
    let odd = flags & FLAG_ODD != 0;
    if !odd && first & 0x0f != 0 {
        return Err(CompactError::BadPadding {
            padding: first & 0x0f,
        });
    }
    Ok((first, rest, flags & FLAG_LEAF != 0, odd))
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
        if self.is_empty() {
            return f.write_str("∅");
        }
        for n in self.as_slice() {
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
    fn long_paths_spill_to_the_heap_and_stay_equal() {
        let long = Nibbles::from_bytes(&[0xab; 50]);
        assert_eq!(long.len(), 100);
        let built = (0..100).fold(Nibbles::new(), |mut p, i| {
            p.push(if i % 2 == 0 { 0xa } else { 0xb });
            p
        });
        assert_eq!(built, long);
        assert_eq!(long.prefix(4).to_string(), "abab");
        assert_eq!(long.suffix(98).join(&long.prefix(1)).to_string(), "aba");
        assert!(Nibbles::from_bytes(&[0x00]) < Nibbles::from_bytes(&[0x00, 0x01]));
    }

    #[test]
    fn compact_paths_append_in_place_and_truncate_back() {
        let mut path = nib(&[7]);
        assert_eq!(path.push_compact(&[0x3f, 0x1c, 0xb8]), Ok(true));
        assert_eq!(path, nib(&[7, 15, 1, 12, 11, 8]));
        assert_eq!(path.push_compact(&[0x00, 0x01]), Ok(false));
        assert_eq!(path.len(), 8);
        assert_eq!(
            path.push_compact(&[0x40]),
            Err(CompactError::BadFlags { flags: 4 })
        );
        assert_eq!(path.len(), 8);
        path.truncate(1);
        assert_eq!(path, nib(&[7]));
        let mut long = Nibbles::from_bytes(&[0xab; 45]);
        long.truncate(3);
        assert_eq!(long.to_string(), "aba");
    }

    #[test]
    fn packed_paths_round_trip_inline_and_on_the_heap() {
        for len in [0usize, 1, 7, 64, 80, 81, 99] {
            let path = Nibbles::from_nibbles((0..len).map(|i| (i * 5 % 16) as u8).collect())
                .expect("nibbles");
            let mut packed = vec![0xffu8; len.div_ceil(2)];
            path.write_packed(&mut packed);
            let mut back = nib(&[1, 2, 3]);
            back.set_packed(&packed, len);
            assert_eq!(back, path, "length {len}");
        }
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
