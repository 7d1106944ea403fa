//! Reading `../shared/fixtures` (trie vectors and genesis states with known roots).

use std::path::PathBuf;

use serde_json::Value;
use statesync_core::state::{build_genesis, parse_genesis_alloc, BuiltState};
use statesync_core::{hex, H256};

/// The shared fixtures directory, beside the repository.
pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

/// The project's own copy of what the product needs at run time (the demo's genesis).
pub fn project_dir() -> PathBuf {
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
    let all = read_json(shared_dir().join(file));
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
    let index = read_json(shared_dir().join("genesis_index.json"));
    let entry = &index[network];
    let file = entry["file"].as_str().expect("file");
    let expected = entry["stateRoot"]
        .as_str()
        .expect("stateRoot")
        .parse()
        .expect("root");
    let text = std::fs::read_to_string(shared_dir().join(file)).expect("genesis file");
    let alloc = parse_genesis_alloc(&text).expect("genesis alloc");
    (build_genesis(&alloc), expected)
}

/// Every network named in `genesis_index.json`.
pub fn genesis_networks() -> Vec<String> {
    let index = read_json(shared_dir().join("genesis_index.json"));
    index.as_object().expect("index").keys().cloned().collect()
}
