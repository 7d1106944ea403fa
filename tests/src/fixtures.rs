//! Reading the repository's `fixtures/` (third-party trie vectors and genesis states with known
//! roots; `fixtures/README.md` names their sources).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use statesync_core::state::{build_genesis, parse_genesis_alloc, BuiltState, GenesisAccount};
use statesync_core::{
    hex, keccak256, rlp_items, Account, KeyMode, MemoryStore, Nibbles, StoreKey, TrieBuilder, Wei,
    H256, KECCAK_EMPTY,
};

/// The repository's fixtures directory: test data, and the demo's genesis the product ships.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

pub fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A trie test's key or value: `0x…` is hex, anything else is the string's bytes.
pub fn fixture_bytes(value: &Value) -> Option<Vec<u8>> {
    let text = value.as_str()?;
    Some(match text.strip_prefix("0x") {
        Some(_) => hex::decode(text).expect("fixture hex"),
        None => text.as_bytes().to_vec(),
    })
}

/// One ethereum/tests trie case: its operations in order (`None` deletes) and expected root.
pub struct TrieCase {
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub root: H256,
}

/// Case `name` of a TrieTests file, whichever of the two `in` forms it uses.
pub fn trie_case(file: &str, name: &str) -> TrieCase {
    let all = read_json(fixtures_dir().join(file));
    let case = &all[name];
    let ops = match &case["in"] {
        Value::Array(list) => list
            .iter()
            .map(|op| (fixture_bytes(&op[0]).expect("key"), fixture_bytes(&op[1])))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                (
                    fixture_bytes(&Value::String(k.clone())).expect("key"),
                    fixture_bytes(v),
                )
            })
            .collect(),
        other => panic!("{file}/{name}: unexpected input {other}"),
    };
    let root = case["root"]
        .as_str()
        .expect("root")
        .parse()
        .expect("root hash");
    TrieCase { ops, root }
}

/// A genesis network from `genesis_index.json`: its built state and expected root.
pub fn genesis(network: &str) -> (BuiltState, H256) {
    let index = read_json(fixtures_dir().join("genesis_index.json"));
    let entry = &index[network];
    let file = entry["file"].as_str().expect("file");
    let expected = entry["stateRoot"]
        .as_str()
        .expect("stateRoot")
        .parse()
        .expect("root");
    let text = std::fs::read_to_string(fixtures_dir().join(file)).expect("genesis file");
    let alloc = parse_genesis_alloc(&text).expect("genesis alloc");
    (build_genesis(&alloc), expected)
}

/// Every network named in `genesis_index.json`.
pub fn genesis_networks() -> Vec<String> {
    let index = read_json(fixtures_dir().join("genesis_index.json"));
    index.as_object().expect("index").keys().cloned().collect()
}

/// geth's `makeTestTrie` (trie/sync_test.go): a secure trie where, for i in 0..255, the keys
/// `leftpad32([1, i])` and `leftpad32([2, i])` both hold `[i]` (the same value under several
/// keys) and `leftpad32([j, i])` holds `[j, i]` for j in 3..13: 3060 entries.
pub struct TestTrie {
    pub root: H256,
    /// Every node of the trie, as the source peer serves it.
    pub store: MemoryStore,
    /// The entries by their unhashed key.
    pub content: BTreeMap<Vec<u8>, Vec<u8>>,
    pub builder: TrieBuilder,
}

/// `common.LeftPadBytes(bytes, 32)`: right-aligned in 32 bytes.
pub fn left_pad32(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32 - bytes.len()];
    out.extend_from_slice(bytes);
    out
}

pub fn make_test_trie() -> TestTrie {
    let mut content = BTreeMap::new();
    for i in 0..255u8 {
        content.insert(left_pad32(&[1, i]), vec![i]);
        content.insert(left_pad32(&[2, i]), vec![i]);
        for j in 3..13u8 {
            content.insert(left_pad32(&[j, i]), vec![j, i]);
        }
    }
    let mut builder = TrieBuilder::new(KeyMode::Secure);
    for (key, value) in &content {
        builder.insert(key, value);
    }
    let mut store = MemoryStore::new();
    let root = builder.build(&mut |hash, node| store.insert(StoreKey::node(hash), node));
    TestTrie {
        root,
        store,
        content,
        builder,
    }
}

/// The entries of a trie as their trie paths: `keccak256(key)` for a secure trie.
pub fn trie_paths(
    content: &BTreeMap<Vec<u8>, Vec<u8>>,
    mode: KeyMode,
) -> BTreeMap<Nibbles, Vec<u8>> {
    content
        .iter()
        .map(|(key, value)| {
            let path = match mode {
                KeyMode::Plain => Nibbles::from_bytes(key),
                KeyMode::Secure => Nibbles::from_bytes(keccak256(key).as_bytes()),
            };
            (path, value.clone())
        })
        .collect()
}

/// geth's `makeTestState` (core/state/sync_test.go): 96 accounts at `BytesToAddress([i])`
/// (right-aligned), balance 11·i, nonce 42·i; every third has code `[i; 5]`, every fifth five
/// storage slots with key = value = `keccak256([i, i, i, i, i, j, j])`.
pub fn make_test_state() -> (BuiltState, Vec<([u8; 20], GenesisAccount)>) {
    let mut accounts = Vec::new();
    for i in 0..96u8 {
        let mut address = [0u8; 20];
        address[19] = i;
        let mut account = GenesisAccount {
            nonce: 42 * u64::from(i),
            balance: Wei::from_u64(11 * u64::from(i)),
            ..GenesisAccount::default()
        };
        if i % 3 == 0 {
            account.code = vec![i; 5];
        }
        if i % 5 == 0 {
            for j in 0..5u8 {
                let word = keccak256(&[i, i, i, i, i, j, j]);
                account.storage.push((word, word));
            }
        }
        accounts.push((address, account));
    }
    (build_genesis(&accounts), accounts)
}

/// RLP of a byte string (what a storage trie holds for a word's minimal bytes).
pub fn rlp_string(bytes: &[u8]) -> Vec<u8> {
    match bytes {
        [b] if *b < 0x80 => vec![*b],
        _ if bytes.len() <= 55 => {
            let mut out = vec![0x80 + bytes.len() as u8];
            out.extend_from_slice(bytes);
            out
        }
        _ => panic!("rlp_string is for short strings"),
    }
}

/// Checks that `store` holds every account of `accounts` in the state at `root`: nonce,
/// balance, code, and exactly the storage slots (geth's `checkStateAccounts`).
pub fn check_state_accounts(
    store: &MemoryStore,
    root: H256,
    accounts: &[([u8; 20], GenesisAccount)],
) -> Result<(), String> {
    for (address, expected) in accounts {
        let key = Nibbles::from_bytes(keccak256(address).as_bytes());
        let leaf = crate::harness::value_at(store, root, &key)
            .ok_or_else(|| format!("account {} missing", hex::encode(address)))?;
        let account = Account::decode(&leaf).map_err(|e| e.to_string())?;
        if account.nonce != expected.nonce || account.balance != expected.balance {
            return Err(format!("account {} has {account:?}", hex::encode(address)));
        }
        let code = match account.code_hash {
            KECCAK_EMPTY => Vec::new(),
            hash => store
                .get(StoreKey::code(hash))
                .ok_or_else(|| format!("code of {} missing", hex::encode(address)))?
                .to_vec(),
        };
        if code != expected.code {
            return Err(format!("code of {} differs", hex::encode(address)));
        }
        let storage = crate::harness::trie_entries(store, account.storage_root)?;
        let wanted: BTreeMap<Nibbles, Vec<u8>> = expected
            .storage
            .iter()
            .map(|(slot, value)| {
                let path = Nibbles::from_bytes(keccak256(slot.as_bytes()).as_bytes());
                (path, rlp_string(Wei(value.0).minimal_bytes()))
            })
            .collect();
        if storage != wanted {
            return Err(format!("storage of {} differs", hex::encode(address)));
        }
    }
    Ok(())
}

/// A `basic_genesis_tests.json` case: its allocation and the state root in field 3 of the
/// genesis header inside `result` (the RLP of the whole block).
pub fn basic_genesis(name: &str) -> (BuiltState, H256) {
    let all = read_json(fixtures_dir().join("basic_genesis_tests.json"));
    let case = &all[name];
    let alloc = parse_genesis_alloc(&case["alloc"].to_string()).expect("alloc");
    let block = hex::decode(case["result"].as_str().expect("result")).expect("result hex");
    let header = rlp_items::exactly_one(&block)
        .and_then(|block| block.list()?.next().expect("block has a header"))
        .expect("block rlp");
    let state_root = header
        .list()
        .expect("header list")
        .nth(3)
        .expect("header field 3")
        .and_then(|field| field.string().map(|s| s.to_vec()))
        .expect("state root field");
    let root = H256::from_slice(&state_root).expect("32-byte state root");
    (build_genesis(&alloc), root)
}
