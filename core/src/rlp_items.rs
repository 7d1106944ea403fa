//! Strict reading of RLP items on top of the `rlp` crate's header decoding.
//!
//! `rlp::Rlp` iterates a list until the first item it cannot read and then stops quietly, so a
//! list with trailing garbage looks shorter rather than wrong. Peer bytes need the opposite:
//! every byte accounted for, or an error.

use rlp::{DecoderError, PayloadInfo};
use thiserror::Error;

/// Why bytes were not the RLP they should be.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RlpError {
    #[error("malformed rlp: {0:?}")]
    Malformed(DecoderError),
    #[error("{extra} bytes after the rlp item")]
    TrailingBytes { extra: usize },
    #[error("expected an rlp list, found a string")]
    ExpectedList,
    #[error("expected an rlp string, found a list")]
    ExpectedString,
    #[error("list has {got} items, expected {expected}")]
    WrongItemCount { got: usize, expected: usize },
    #[error("integer of {got} bytes does not fit in {max} bytes")]
    IntegerTooLarge { got: usize, max: usize },
    #[error("integer has a leading zero byte")]
    LeadingZero,
}

impl From<DecoderError> for RlpError {
    fn from(err: DecoderError) -> Self {
        RlpError::Malformed(err)
    }
}

/// One RLP item: a byte string or the payload of a list, and the raw bytes it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub is_list: bool,
    /// The string's bytes, or the list's concatenated item encodings.
    pub payload: &'a [u8],
    /// The whole encoding, header included.
    pub raw: &'a [u8],
}

impl<'a> Item<'a> {
    /// The payload, refusing a list.
    pub fn string(&self) -> Result<&'a [u8], RlpError> {
        if self.is_list {
            Err(RlpError::ExpectedString)
        } else {
            Ok(self.payload)
        }
    }

    /// The list's items, refusing a string.
    pub fn list(&self) -> Result<ListItems<'a>, RlpError> {
        if self.is_list {
            Ok(ListItems { rest: self.payload })
        } else {
            Err(RlpError::ExpectedList)
        }
    }

    /// A big-endian unsigned integer of at most `N` bytes, minimally encoded.
    pub fn uint<const N: usize>(&self) -> Result<[u8; N], RlpError> {
        let bytes = self.string()?;
        if bytes.len() > N {
            return Err(RlpError::IntegerTooLarge {
                got: bytes.len(),
                max: N,
            });
        }
        if bytes.first() == Some(&0) {
            return Err(RlpError::LeadingZero);
        }
        let mut out = [0u8; N];
        out[N - bytes.len()..].copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u64(&self) -> Result<u64, RlpError> {
        self.uint::<8>().map(u64::from_be_bytes)
    }
}

/// Splits the first item off `bytes`.
pub fn split_first(bytes: &[u8]) -> Result<(Item<'_>, &[u8]), RlpError> {
    let info = PayloadInfo::from(bytes)?;
    let total = info
        .header_len
        .checked_add(info.value_len)
        .filter(|total| *total <= bytes.len())
        .ok_or(DecoderError::RlpIsTooShort)?;
    let first = bytes.first().copied().unwrap_or(0);
    // A single byte under 0x80 is its own encoding; `PayloadInfo` lets `0x81 0x05` through,
    // which geth refuses (ErrCanonSize) and would make one value have two encodings.
    if first == 0x81 && bytes.get(1).is_some_and(|b| *b < 0x80) {
        return Err(DecoderError::RlpInvalidIndirection.into());
    }
    let item = Item {
        is_list: first >= 0xc0,
        payload: &bytes[info.header_len..total],
        raw: &bytes[..total],
    };
    Ok((item, &bytes[total..]))
}

/// The single item that is exactly `bytes`.
pub fn exactly_one(bytes: &[u8]) -> Result<Item<'_>, RlpError> {
    let (item, rest) = split_first(bytes)?;
    if !rest.is_empty() {
        return Err(RlpError::TrailingBytes { extra: rest.len() });
    }
    Ok(item)
}

/// The items of a list payload, each read strictly; the payload must end on an item boundary.
#[derive(Debug, Clone)]
pub struct ListItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ListItems<'a> {
    type Item = Result<Item<'a>, RlpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match split_first(self.rest) {
            Ok((item, rest)) => {
                self.rest = rest;
                Some(Ok(item))
            }
            Err(err) => {
                self.rest = &[];
                Some(Err(err))
            }
        }
    }
}

impl<'a> ListItems<'a> {
    /// Reads exactly `N` items.
    pub fn exactly<const N: usize>(self) -> Result<[Item<'a>; N], RlpError> {
        let empty = Item {
            is_list: false,
            payload: &[],
            raw: &[],
        };
        let mut out = [empty; N];
        let mut got = 0;
        for item in self {
            let item = item?;
            if got < N {
                out[got] = item;
            }
            got += 1;
        }
        if got != N {
            return Err(RlpError::WrongItemCount { got, expected: N });
        }
        Ok(out)
    }
}

/// Bytes of the RLP header for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    if len <= 55 {
        1
    } else {
        1 + be_len(len)
    }
}

/// Bytes of the RLP encoding of the string `bytes`.
pub fn string_len(bytes: &[u8]) -> usize {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        1
    } else {
        header_len(bytes.len()) + bytes.len()
    }
}

fn be_len(len: usize) -> usize {
    (usize::BITS as usize / 8) - (len.leading_zeros() as usize / 8)
}

/// Appends a string or list header for a payload of `len` bytes.
pub fn put_header(out: &mut Vec<u8>, is_list: bool, len: usize) {
    let (short, long) = if is_list {
        (0xc0u8, 0xf7u8)
    } else {
        (0x80u8, 0xb7u8)
    };
    if len <= 55 {
        out.push(short + len as u8);
    } else {
        let n = be_len(len);
        out.push(long + n as u8);
        out.extend_from_slice(&len.to_be_bytes()[core::mem::size_of::<usize>() - n..]);
    }
}

/// Appends the RLP encoding of the string `bytes`.
pub fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() == 1 && bytes[0] < 0x80 {
        out.push(bytes[0]);
    } else {
        put_header(out, false, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// The minimal big-endian bytes of `value` (empty for zero), as RLP wants an integer.
pub fn uint_bytes(value: u64) -> ([u8; 8], usize) {
    let bytes = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8) as usize;
    (bytes, skip)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn reads_strings_and_lists() {
        let item = exactly_one(&[0x83, b'd', b'o', b'g']).unwrap();
        assert_eq!(item.string().unwrap(), b"dog");
        let list = exactly_one(&[0xc2, 0x01, 0x80]).unwrap();
        let [a, b] = list.list().unwrap().exactly::<2>().unwrap();
        assert_eq!(a.string().unwrap(), &[1]);
        assert_eq!(b.string().unwrap(), &[] as &[u8]);
    }

    #[test]
    fn refuses_trailing_and_truncated_bytes() {
        assert_eq!(
            exactly_one(&[0x01, 0x02]),
            Err(RlpError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            exactly_one(&[0x83, b'd']),
            Err(RlpError::Malformed(DecoderError::RlpIsTooShort))
        );
        // A list whose payload ends inside its second item.
        let list = exactly_one(&[0xc2, 0x01, 0x82]).unwrap();
        assert!(list.list().unwrap().exactly::<2>().is_err());
        assert_eq!(
            exactly_one(&[0xc1, 0x01])
                .unwrap()
                .list()
                .unwrap()
                .exactly::<2>(),
            Err(RlpError::WrongItemCount {
                got: 1,
                expected: 2
            })
        );
    }

    #[test]
    fn refuses_a_single_byte_under_0x80_behind_a_string_header() {
        let invalid = Err(RlpError::Malformed(DecoderError::RlpInvalidIndirection));
        assert_eq!(exactly_one(&[0x81, 0x05]), invalid);
        assert_eq!(
            exactly_one(&[0xc2, 0x81, 0x7f])
                .unwrap()
                .list()
                .unwrap()
                .next(),
            Some(invalid)
        );
        assert_eq!(
            exactly_one(&[0x81, 0x80]).unwrap().string(),
            Ok(&[0x80u8][..])
        );
    }

    #[test]
    fn the_direct_encoder_matches_the_rlp_crate() {
        for len in [0usize, 1, 2, 55, 56, 255, 256, 70_000] {
            for fill in [0x00u8, 0x7f, 0x80] {
                let bytes = vec![fill; len];
                let mut ours = Vec::new();
                put_string(&mut ours, &bytes);
                assert_eq!(
                    ours,
                    rlp::encode(&bytes).to_vec(),
                    "string of {len} × {fill:#x}"
                );
                assert_eq!(string_len(&bytes), ours.len());
            }
            let mut list = Vec::new();
            put_header(&mut list, true, len);
            let mut stream = rlp::RlpStream::new_list(1);
            stream.append_raw(&vec![0u8; len], 1);
            let expected = stream.out();
            assert_eq!(
                list,
                expected[..expected.len() - len].to_vec(),
                "list header for {len}"
            );
        }
        for value in [0u64, 1, 127, 128, 255, 256, u64::MAX] {
            let (bytes, skip) = uint_bytes(value);
            let mut ours = Vec::new();
            put_string(&mut ours, &bytes[skip..]);
            assert_eq!(ours, rlp::encode(&value).to_vec(), "integer {value}");
        }
    }

    #[test]
    fn integers_are_minimal_and_bounded() {
        assert_eq!(exactly_one(&[0x80]).unwrap().u64(), Ok(0));
        assert_eq!(exactly_one(&[0x82, 0x01, 0x00]).unwrap().u64(), Ok(256));
        assert_eq!(
            exactly_one(&[0x82, 0x00, 0x01]).unwrap().u64(),
            Err(RlpError::LeadingZero)
        );
        let nine = [0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(
            exactly_one(&nine).unwrap().u64(),
            Err(RlpError::IntegerTooLarge { got: 9, max: 8 })
        );
    }
}
