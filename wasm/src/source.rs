//! `StateSource`: a whole state held in memory and served to peers, for the Node.js peer
//! server, tests and benchmarks. Also `answerFrom`, to serve from any store.

use js_sys::{Array, Function, Uint8Array};
use statesync_core::node::NodeChild;
use statesync_core::serve::{answer, ServeLimits, ServeOutcome};
use statesync_core::state::{build_genesis, parse_genesis_alloc};
use statesync_core::synthetic::{generate, SyntheticConfig};
use statesync_core::wire::{Message, Status, WireError, PROTOCOL_VERSION};
use statesync_core::{
    Account, BuiltState, ItemKind, Nibbles, StoreKey, TrieNode, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY,
};
use wasm_bindgen::prelude::*;

use crate::js::error;

#[wasm_bindgen]
pub struct StateSource {
    state: BuiltState,
}

fn limits(max_items: Option<u32>, soft_bytes: Option<u32>) -> ServeLimits {
    let mut limits = ServeLimits::default();
    if let Some(n) = max_items.filter(|n| *n > 0) {
        limits.max_items = n as usize;
    }
    if let Some(n) = soft_bytes.filter(|n| *n > 0) {
        limits.soft_bytes = n as usize;
    }
    limits
}

fn outcome(result: Result<ServeOutcome, WireError>) -> Result<Option<Uint8Array>, JsValue> {
    match result {
        Ok(ServeOutcome::Answer(frame)) => Ok(Some(Uint8Array::from(frame.as_slice()))),
        Ok(ServeOutcome::Ignored) => Ok(None),
        Err(err) => Err(frame_error(&err)),
    }
}

/// A refused frame for JavaScript: `UNKNOWN_MESSAGE` for a code this protocol version does not
/// define (a server may ignore it: later versions add messages), `BAD_FRAME` for the rest.
fn frame_error(err: &WireError) -> JsValue {
    let code = match err {
        WireError::UnknownCode { .. } => "UNKNOWN_MESSAGE",
        _ => "BAD_FRAME",
    };
    error(code, &err.to_string())
}

#[wasm_bindgen]
impl StateSource {
    /// The state of a genesis allocation (the fixture JSON format, or a geth `alloc`).
    #[wasm_bindgen(js_name = fromGenesis)]
    pub fn from_genesis(json: &str) -> Result<StateSource, JsValue> {
        let alloc = parse_genesis_alloc(json).map_err(|e| error("BAD_GENESIS", &e.to_string()))?;
        Ok(StateSource {
            state: build_genesis(&alloc),
        })
    }

    /// A seeded synthetic state of `accounts` accounts.
    pub fn synthetic(accounts: u32, seed: u32) -> StateSource {
        StateSource {
            state: generate(&SyntheticConfig::new(accounts as usize, u64::from(seed))),
        }
    }

    #[wasm_bindgen(getter, unchecked_return_type = "Hash")]
    pub fn root(&self) -> String {
        self.state.root.to_string()
    }

    #[wasm_bindgen(getter)]
    pub fn accounts(&self) -> u32 {
        self.state.accounts as u32
    }

    #[wasm_bindgen(getter, js_name = nodeCount)]
    pub fn node_count(&self) -> u32 {
        self.state.store.node_count() as u32
    }

    #[wasm_bindgen(getter, js_name = codeCount)]
    pub fn code_count(&self) -> u32 {
        self.state.store.code_count() as u32
    }

    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> f64 {
        self.state.store.bytes() as f64
    }

    /// The Status frame a server sends first.
    #[wasm_bindgen(js_name = statusFrame)]
    pub fn status_frame(
        &self,
        #[wasm_bindgen(js_name = "networkId")] network_id: u32,
    ) -> Uint8Array {
        status_frame(network_id, self.state.root)
    }

    /// The NodeData answer to a GetNodeData frame (geth's limits unless given), `undefined`
    /// for frames a server does not answer; throws `BAD_FRAME` on malformed input and
    /// `UNKNOWN_MESSAGE` on a message code it does not know.
    pub fn answer(
        &self,
        frame: &[u8],
        #[wasm_bindgen(js_name = "maxItems")] max_items: Option<u32>,
        #[wasm_bindgen(js_name = "softBytes")] soft_bytes: Option<u32>,
    ) -> Result<Option<Uint8Array>, JsValue> {
        outcome(answer(frame, limits(max_items, soft_bytes), |k| {
            self.state.store.get(k)
        }))
    }

    /// Every flat key (node hash or `"c" || code hash`), e.g. to copy the state elsewhere.
    #[wasm_bindgen(unchecked_return_type = "Uint8Array[]")]
    pub fn keys(&self) -> Array {
        self.state
            .store
            .keys()
            .iter()
            .map(|k| JsValue::from(Uint8Array::from(k.flat_key().as_slice())))
            .collect()
    }

    /// Benchmark: keccak-256 and node decoding of every item, nothing else, timed inside
    /// WebAssembly. Returns milliseconds. This is the limit no sync of this state can beat.
    #[wasm_bindgen(js_name = benchLimit)]
    pub fn bench_limit(&self) -> f64 {
        let keys = self.state.store.keys();
        let started = crate::js::now_precise();
        let mut decoded = 0u32;
        for key in &keys {
            let blob = self.state.store.get(*key).unwrap_or_default();
            let hash = statesync_core::keccak256(blob);
            if key.kind == statesync_core::ItemKind::Node
                && statesync_core::TrieNode::decode(blob).is_ok()
            {
                decoded += 1;
            }
            std::hint::black_box(hash);
        }
        std::hint::black_box(decoded);
        crate::js::now_precise() - started
    }

    /// The state's dependency depth: its fetch levels breadth first from the root, where an
    /// account's storage root and code are one level below the account's leaf (as
    /// `World::fetch_levels` in the simulator). A sync needs at least this many round trips,
    /// so benchmarks print levels × round trip beside their figures.
    #[wasm_bindgen(js_name = fetchLevels)]
    pub fn fetch_levels(&self) -> u32 {
        let store = &self.state.store;
        let mut seen = std::collections::HashSet::new();
        // Each key with whether it is a node of the account trie (its leaves hold accounts).
        let mut level = vec![(StoreKey::node(self.state.root), true)];
        let mut levels = 0;
        while !level.is_empty() {
            levels += 1;
            let mut next = Vec::new();
            for (key, in_accounts) in level {
                // A code is a level of its own, with nothing below it.
                if !seen.insert(key) || key.kind == ItemKind::Code {
                    continue;
                }
                let Some(node) = store.get(key).and_then(|b| TrieNode::decode(b).ok()) else {
                    continue;
                };
                node.visit_children(&Nibbles::new(), &mut |child| match child {
                    NodeChild::Hash { hash, .. } => next.push((StoreKey::node(hash), in_accounts)),
                    NodeChild::Value { value, .. } if in_accounts => {
                        if let Ok(account) = Account::decode(value) {
                            if account.storage_root != EMPTY_ROOT_HASH {
                                next.push((StoreKey::node(account.storage_root), false));
                            }
                            if account.code_hash != KECCAK_EMPTY {
                                next.push((StoreKey::code(account.code_hash), false));
                            }
                        }
                    }
                    NodeChild::Value { .. } => {}
                });
            }
            next.retain(|(key, _)| !seen.contains(key));
            level = next;
        }
        levels
    }

    /// The value under a flat key.
    pub fn get(&self, #[wasm_bindgen(js_name = "flatKey")] flat_key: &[u8]) -> Option<Uint8Array> {
        let key = parse_flat_key(flat_key)?;
        self.state.store.get(key).map(Uint8Array::from)
    }
}

/// A Status frame announcing `head_root`.
fn status_frame(network_id: u32, head_root: H256) -> Uint8Array {
    let frame = Message::Status(Status {
        version: PROTOCOL_VERSION,
        network_id: u64::from(network_id),
        head_root,
    })
    .encode();
    Uint8Array::from(frame.as_slice())
}

/// A Status frame for a server of `root` (e.g. one serving from a synced database).
#[wasm_bindgen(js_name = encodeStatus)]
pub fn encode_status(
    #[wasm_bindgen(js_name = "networkId")] network_id: u32,
    #[wasm_bindgen(unchecked_param_type = "Hash")] root: &str,
) -> Result<Uint8Array, JsValue> {
    let root: H256 = root
        .parse()
        .map_err(|e| error("BAD_ROOT", &format!("{e}")))?;
    Ok(status_frame(network_id, root))
}

/// The flat keys a GetNodeData frame may need (each hash as node and as code), so a server
/// over an asynchronous store can fetch them before calling `answerFrom`. `undefined` for
/// other frames.
#[wasm_bindgen(js_name = requestedKeys, unchecked_return_type = "Uint8Array[] | undefined")]
pub fn requested_keys(frame: &[u8]) -> Result<Option<Array>, JsValue> {
    match Message::decode(frame) {
        Ok(Message::GetNodeData { hashes, .. }) => Ok(Some(
            hashes
                .iter()
                .flat_map(|h| [StoreKey::node(*h), StoreKey::code(*h)])
                .map(|k| JsValue::from(Uint8Array::from(k.flat_key().as_slice())))
                .collect(),
        )),
        Ok(_) => Ok(None),
        Err(err) => Err(frame_error(&err)),
    }
}

/// Answers a GetNodeData frame from `lookup(flatKey) -> Uint8Array | undefined`.
#[wasm_bindgen(js_name = answerFrom)]
pub fn answer_from(
    frame: &[u8],
    #[wasm_bindgen(unchecked_param_type = "FlatLookup")] lookup: &Function,
    #[wasm_bindgen(js_name = "maxItems")] max_items: Option<u32>,
    #[wasm_bindgen(js_name = "softBytes")] soft_bytes: Option<u32>,
) -> Result<Option<Uint8Array>, JsValue> {
    // The lookup's results must outlive the call to `answer`, which borrows them.
    let fetched = std::cell::RefCell::new(Vec::<Box<[u8]>>::new());
    let found = |key: StoreKey| -> Option<usize> {
        let arg = Uint8Array::from(key.flat_key().as_slice());
        let value = lookup.call1(&JsValue::NULL, &arg).ok()?;
        let bytes = value.dyn_into::<Uint8Array>().ok()?.to_vec();
        let mut all = fetched.borrow_mut();
        all.push(bytes.into_boxed_slice());
        Some(all.len() - 1)
    };
    // Resolve first, then serve from the collected values.
    let request = Message::decode(frame).map_err(|e| frame_error(&e))?;
    let Message::GetNodeData { hashes, .. } = &request else {
        return Ok(None);
    };
    let mut index = std::collections::HashMap::new();
    for hash in hashes {
        for key in [StoreKey::node(*hash), StoreKey::code(*hash)] {
            if let Some(i) = found(key) {
                index.insert(key, i);
                break;
            }
        }
    }
    let values = fetched.borrow();
    outcome(answer(frame, limits(max_items, soft_bytes), |k| {
        index.get(&k).map(|i| &values[*i][..])
    }))
}

fn parse_flat_key(flat: &[u8]) -> Option<StoreKey> {
    match flat.len() {
        32 => H256::from_slice(flat).map(StoreKey::node),
        33 if flat[0] == statesync_core::store::CODE_KEY_PREFIX => {
            H256::from_slice(&flat[1..]).map(StoreKey::code)
        }
        _ => None,
    }
}
