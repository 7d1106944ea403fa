//! Builds a whole state (account trie, storage tries, code) into a store: the source that
//! peers serve in tests, the demo and benchmarks.

use crate::account::{Account, Wei};
use crate::builder::{KeyMode, TrieBuilder};
use crate::hash::{keccak256, H256, KECCAK_EMPTY};
use crate::store::{MemoryStore, StoreKey};

/// An account as a genesis allocation gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenesisAccount {
    pub nonce: u64,
    pub balance: Wei,
    pub code: Vec<u8>,
    /// Storage slot to value, both 32-byte words. Zero values are not stored.
    pub storage: Vec<(H256, H256)>,
}

/// A built state: its root and every node and code blob under it.
#[derive(Clone, Debug)]
pub struct BuiltState {
    pub root: H256,
    pub store: MemoryStore,
    pub accounts: usize,
}

/// Collects accounts and their storage and code, then builds the account trie.
#[derive(Debug)]
pub struct StateBuilder {
    accounts: TrieBuilder,
    store: MemoryStore,
}

impl Default for StateBuilder {
    fn default() -> Self {
        StateBuilder::new()
    }
}

impl StateBuilder {
    pub fn new() -> StateBuilder {
        StateBuilder {
            accounts: TrieBuilder::new(KeyMode::Secure),
            store: MemoryStore::new(),
        }
    }

    /// Stores code and returns its hash; empty code is `KECCAK_EMPTY` and is not stored.
    pub fn add_code(&mut self, code: &[u8]) -> H256 {
        if code.is_empty() {
            return KECCAK_EMPTY;
        }
        self.store.insert_code(code)
    }

    /// Builds a storage trie into the store and returns its root.
    pub fn add_storage_trie(&mut self, trie: &TrieBuilder) -> H256 {
        let store = &mut self.store;
        trie.build(&mut |hash, node| store.insert(StoreKey::node(hash), node))
    }

    /// Sets the account whose trie key is `address_hash` (`keccak256(address)` in real state).
    pub fn insert_account(&mut self, address_hash: H256, account: &Account) {
        self.accounts.insert_hashed(address_hash, &account.encode());
    }

    /// Adds a genesis account: its storage trie keyed by `keccak256(slot)` with RLP integer
    /// values, its code, and the account itself.
    pub fn insert_genesis_account(&mut self, address: &[u8; 20], genesis: &GenesisAccount) {
        let mut storage = TrieBuilder::new(KeyMode::Secure);
        for (slot, value) in &genesis.storage {
            let minimal = Wei(value.0);
            if !minimal.minimal_bytes().is_empty() {
                storage.insert(slot.as_bytes(), &rlp::encode(&minimal.minimal_bytes()));
            }
        }
        let account = Account {
            nonce: genesis.nonce,
            balance: genesis.balance,
            storage_root: self.add_storage_trie(&storage),
            code_hash: self.add_code(&genesis.code),
        };
        self.insert_account(keccak256(address), &account);
    }

    pub fn finish(mut self) -> BuiltState {
        let store = &mut self.store;
        let root = self
            .accounts
            .build(&mut |hash, node| store.insert(StoreKey::node(hash), node));
        BuiltState {
            root,
            store: self.store,
            accounts: self.accounts.len(),
        }
    }
}

/// Builds the state of a genesis allocation.
pub fn build_genesis<'a>(
    alloc: impl IntoIterator<Item = &'a ([u8; 20], GenesisAccount)>,
) -> BuiltState {
    let mut builder = StateBuilder::new();
    for (address, account) in alloc {
        builder.insert_genesis_account(address, account);
    }
    builder.finish()
}

#[cfg(feature = "json")]
pub use json::{parse_genesis_alloc, GenesisError};

#[cfg(feature = "json")]
mod json {
    use serde_json::Value;
    use thiserror::Error;

    use super::GenesisAccount;
    use crate::account::Wei;
    use crate::hash::H256;
    use crate::hex;

    /// Why a genesis allocation could not be read.
    #[derive(Debug, Error)]
    #[non_exhaustive]
    pub enum GenesisError {
        #[error("genesis is not valid json: {0}")]
        Json(#[from] serde_json::Error),
        #[error("genesis allocation must be a json object of address to account")]
        NotAnObject,
        #[error("account {address}: {reason}")]
        Account { address: String, reason: String },
    }

    /// Reads an allocation `{ "0xaddress": { "balance", "nonce"?, "code"?, "storage"? } }`, as in
    /// the fixtures and geth's genesis `alloc`. Quantities are hex (`0x…`) or decimal strings;
    /// the legacy `wei` field is taken for `balance`. Returned in the file's order.
    pub fn parse_genesis_alloc(
        text: &str,
    ) -> Result<Vec<([u8; 20], GenesisAccount)>, GenesisError> {
        let value: Value = serde_json::from_str(text)?;
        let object = value.as_object().ok_or(GenesisError::NotAnObject)?;
        let mut out = Vec::with_capacity(object.len());
        for (address_text, fields) in object {
            let fail = |reason: String| GenesisError::Account {
                address: address_text.clone(),
                reason,
            };
            let address_bytes = hex::decode(address_text).map_err(|e| fail(e.to_string()))?;
            let address: [u8; 20] = address_bytes
                .try_into()
                .map_err(|_| fail("address is not 20 bytes".into()))?;
            let field = |name: &str| fields.get(name).and_then(Value::as_str);
            let balance_text = field("balance").or_else(|| field("wei")).unwrap_or("0");
            let balance = parse_quantity(balance_text)
                .ok_or_else(|| fail(format!("bad balance {balance_text:?}")))?;
            let nonce_text = field("nonce").unwrap_or("0");
            let nonce = parse_quantity(nonce_text)
                .filter(|n| n.0[..24].iter().all(|b| *b == 0))
                .map(|n| u64::from_be_bytes(n.0[24..].try_into().unwrap_or_default()))
                .ok_or_else(|| fail(format!("bad nonce {nonce_text:?}")))?;
            let code = match field("code") {
                Some(code) => hex::decode(code).map_err(|e| fail(format!("code: {e}")))?,
                None => Vec::new(),
            };
            let mut storage = Vec::new();
            if let Some(slots) = fields.get("storage").and_then(Value::as_object) {
                for (slot, value) in slots {
                    let word = |text: &str| parse_quantity(text).map(|w| H256(w.0));
                    let value_text = value.as_str().unwrap_or("");
                    match (word(slot), word(value_text)) {
                        (Some(slot), Some(value)) => storage.push((slot, value)),
                        _ => return Err(fail(format!("bad storage entry {slot:?}"))),
                    }
                }
            }
            out.push((
                address,
                GenesisAccount {
                    nonce,
                    balance,
                    code,
                    storage,
                },
            ));
        }
        Ok(out)
    }

    /// A 256-bit quantity from `0x` hex or decimal text.
    fn parse_quantity(text: &str) -> Option<Wei> {
        if let Some(digits) = text.strip_prefix("0x") {
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits.to_string()
            };
            return Wei::from_be_slice(&hex::decode(&padded).ok()?);
        }
        if text.is_empty() {
            return None;
        }
        let mut out = [0u8; 32];
        for c in text.chars() {
            let mut carry = c.to_digit(10)?;
            for byte in out.iter_mut().rev() {
                let v = *byte as u32 * 10 + carry;
                *byte = v as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return None;
            }
        }
        Some(Wei(out))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn quantities_in_hex_and_decimal() {
            assert_eq!(parse_quantity("0x1"), Some(Wei::from_u64(1)));
            assert_eq!(parse_quantity("256"), Some(Wei::from_u64(256)));
            assert_eq!(parse_quantity("12a"), None);
            assert_eq!(parse_quantity(&"9".repeat(80)), None);
        }

        #[test]
        fn reads_an_allocation_with_code_and_storage() {
            let alloc = parse_genesis_alloc(
                r#"{"0x4242424242424242424242424242424242424242": {"balance": "0x10", "nonce": "0x2",
                    "code": "0x6000", "storage": {"0x01": "0x02"}}}"#,
            )
            .unwrap();
            let (address, account) = &alloc[0];
            assert_eq!(address, &[0x42; 20]);
            assert_eq!(account.nonce, 2);
            assert_eq!(account.code, vec![0x60, 0]);
            assert_eq!(account.storage.len(), 1);
            assert!(matches!(
                parse_genesis_alloc(r#"{"0x12": {}}"#),
                Err(GenesisError::Account { .. })
            ));
        }
    }
}
