//! The account record stored in the state trie's leaves: `[nonce, balance, storageRoot, codeHash]`.

use core::fmt;

use rlp::RlpStream;
use thiserror::Error;

use crate::hash::{EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
use crate::hex;
use crate::rlp_items::{self, RlpError};

/// A balance in wei: a 256-bit big-endian unsigned integer.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Wei(pub [u8; 32]);

impl Wei {
    pub const ZERO: Wei = Wei([0; 32]);

    pub fn from_u64(value: u64) -> Wei {
        let mut out = [0u8; 32];
        out[24..].copy_from_slice(&value.to_be_bytes());
        Wei(out)
    }

    /// From big-endian bytes of any length up to 32 (leading zeros allowed).
    pub fn from_be_slice(bytes: &[u8]) -> Option<Wei> {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let bytes = &bytes[start..];
        if bytes.len() > 32 {
            return None;
        }
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(bytes);
        Some(Wei(out))
    }

    /// The minimal big-endian bytes (empty for zero), as RLP wants an integer.
    pub fn minimal_bytes(&self) -> &[u8] {
        let start = self.0.iter().position(|b| *b != 0).unwrap_or(32);
        &self.0[start..]
    }
}

impl fmt::Debug for Wei {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.minimal_bytes()))
    }
}

/// An account as the state trie stores it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Account {
    pub nonce: u64,
    pub balance: Wei,
    /// Root of the account's storage trie; `EMPTY_ROOT_HASH` when it has none.
    pub storage_root: H256,
    /// Hash of the account's code; `KECCAK_EMPTY` when it has none.
    pub code_hash: H256,
}

impl Default for Account {
    fn default() -> Self {
        Account {
            nonce: 0,
            balance: Wei::ZERO,
            storage_root: EMPTY_ROOT_HASH,
            code_hash: KECCAK_EMPTY,
        }
    }
}

/// Why a state-trie leaf is not an account.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AccountError {
    #[error("account: {0}")]
    Rlp(#[from] RlpError),
    #[error("account {field} is {got} bytes, expected 32")]
    BadHashLength { field: &'static str, got: usize },
}

impl Account {
    pub fn has_code(&self) -> bool {
        self.code_hash != KECCAK_EMPTY
    }

    pub fn has_storage(&self) -> bool {
        self.storage_root != EMPTY_ROOT_HASH
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut s = RlpStream::new_list(4);
        s.append(&self.nonce);
        s.append(&self.balance.minimal_bytes());
        s.append(&self.storage_root.0.as_slice());
        s.append(&self.code_hash.0.as_slice());
        s.out().to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<Account, AccountError> {
        let [nonce, balance, root, code] = rlp_items::exactly_one(bytes)?.list()?.exactly::<4>()?;
        let hash = |item: rlp_items::Item<'_>, field| {
            let bytes = item.string()?;
            H256::from_slice(bytes).ok_or(AccountError::BadHashLength {
                field,
                got: bytes.len(),
            })
        };
        Ok(Account {
            nonce: nonce.u64()?,
            balance: Wei(balance.uint::<32>()?),
            storage_root: hash(root, "storage root")?,
            code_hash: hash(code, "code hash")?,
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn decodes_a_real_account_and_round_trips() {
        // From hex_encoded_securetrie_test.json, test1.
        let blob = hex::decode("f848018405f446a7a056e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421a0c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470").unwrap();
        let account = Account::decode(&blob).unwrap();
        assert_eq!(account.nonce, 1);
        assert_eq!(account.balance, Wei::from_u64(0x05f446a7));
        assert!(!account.has_code() && !account.has_storage());
        assert_eq!(account.encode(), blob);
    }

    #[test]
    fn refuses_malformed_accounts() {
        let short = Account::default().encode();
        assert!(Account::decode(&short[..10]).is_err());
        let mut s = RlpStream::new_list(4);
        s.append(&1u64)
            .append(&2u64)
            .append(&[1u8; 31].as_slice())
            .append(&[2u8; 32].as_slice());
        assert_eq!(
            Account::decode(&s.out()),
            Err(AccountError::BadHashLength {
                field: "storage root",
                got: 31
            })
        );
        let mut s = RlpStream::new_list(3);
        s.append(&1u64).append(&2u64).append(&3u64);
        assert_eq!(
            Account::decode(&s.out()),
            Err(AccountError::Rlp(RlpError::WrongItemCount {
                got: 3,
                expected: 4
            }))
        );
    }

    #[test]
    fn wei_keeps_minimal_bytes() {
        assert_eq!(
            Wei::from_be_slice(&[0, 0, 1, 2]).unwrap().minimal_bytes(),
            &[1, 2]
        );
        assert_eq!(Wei::ZERO.minimal_bytes(), &[] as &[u8]);
        assert!(Wei::from_be_slice(&[1; 33]).is_none());
    }
}
