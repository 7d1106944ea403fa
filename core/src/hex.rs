//! Hex text for hashes, paths and fixture data: lowercase out, either case in.

use thiserror::Error;

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HexError {
    #[error("odd number of hex digits ({len})")]
    OddLength { len: usize },
    #[error("invalid hex digit {digit:?} at {index}")]
    InvalidDigit { digit: char, index: usize },
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex without a `0x` prefix.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// Decodes hex with or without a `0x` prefix.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.len() % 2 != 0 {
        return Err(HexError::OddLength { len: digits.len() });
    }
    let offset = text.len() - digits.len();
    let raw = digits.as_bytes();
    let mut out = Vec::with_capacity(raw.len() / 2);
    for (i, pair) in raw.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(HexError::InvalidDigit {
            digit: pair[0] as char,
            index: offset + 2 * i,
        })?;
        let lo = nibble(pair[1]).ok_or(HexError::InvalidDigit {
            digit: pair[1] as char,
            index: offset + 2 * i + 1,
        })?;
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn round_trips_with_and_without_prefix() {
        assert_eq!(decode("0x00ff10").unwrap(), vec![0, 255, 16]);
        assert_eq!(decode("00FF10").unwrap(), vec![0, 255, 16]);
        assert_eq!(encode(&[0, 255, 16]), "00ff10");
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_odd_length_and_bad_digits() {
        assert_eq!(decode("0xabc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(
            decode("0x0g"),
            Err(HexError::InvalidDigit {
                digit: 'g',
                index: 3
            })
        );
    }
}
