//! Verifying a stored state from JavaScript: the core consistency walk over any store.

use statesync_core::walk::Walker;
use statesync_core::SyncMode;
use wasm_bindgen::prelude::*;

use crate::js::{error, opt_string, to_js};
use crate::sync::{open_store, store_error};

/// Keys read per store transaction during a walk.
const WALK_BATCH: usize = 512;

/// Walks the state under `options.root` in the store named by `options` (`database`,
/// `store` or `memory`), checking every node's hash and that every account's storage trie
/// and code are present. Resolves with the counts; rejects with code `INCOMPLETE` naming
/// the first gap.
#[wasm_bindgen(js_name = verifyStore, unchecked_return_type = "VerifyResult")]
pub async fn verify_store(
    #[wasm_bindgen(unchecked_param_type = "VerifyOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let root = opt_string(&options, "root")
        .ok_or_else(|| error("BAD_ROOT", "options.root is required"))?;
    let root = root
        .parse()
        .map_err(|e| error("BAD_ROOT", &format!("{e}")))?;
    let store = open_store(&options).await?;
    let mut walker = Walker::new(root, SyncMode::State);
    while !walker.is_finished() {
        let keys = walker.wanted(WALK_BATCH);
        let values = store.get(&keys).await.map_err(|f| store_error(&f))?;
        for (key, value) in keys.into_iter().zip(values) {
            walker.supply(key, value.as_deref());
        }
    }
    match walker.result() {
        Ok(stats) => Ok(to_js(&stats)),
        Err(err) => Err(error("INCOMPLETE", &err.to_string())),
    }
}

/// The progress record stored by an earlier sync, or `null`: lets a page resume on load.
#[wasm_bindgen(js_name = readProgress, unchecked_return_type = "ProgressRecord | null")]
pub async fn read_progress(
    #[wasm_bindgen(unchecked_param_type = "StoreOptions")] options: JsValue,
) -> Result<JsValue, JsValue> {
    let store = open_store(&options).await?;
    let record = store.load_progress().await.map_err(|f| store_error(&f))?;
    Ok(record.map(|r| to_js(&r)).unwrap_or(JsValue::NULL))
}
