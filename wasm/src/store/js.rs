//! A store implemented in JavaScript, so the engine can persist anywhere: the Node.js tool
//! passes a LevelDB-backed object. Keys use geth's flat layout: a node under its 32-byte
//! hash, code under `"c" || hash`, the progress record under `statesync-progress`, and the
//! staging area (verified nodes whose subtries are not complete yet) under
//! `"statesync-staged-" || hash`, apart from every geth key.
//!
//! ```ts
//! interface JsStore {
//!   has(keys: Uint8Array[]): Promise<boolean[]>;
//!   get(keys: Uint8Array[]): Promise<(Uint8Array | null | undefined)[]>;
//!   /** Atomic: every put, every delete and the meta record, or nothing. */
//!   write(puts: [Uint8Array, Uint8Array][], deletes: Uint8Array[], progressKey: Uint8Array, progress: Uint8Array): Promise<void>;
//!   readProgress(progressKey: Uint8Array): Promise<Uint8Array | null | undefined>;
//!   /** Every entry whose key starts with `prefix`. */
//!   scan(prefix: Uint8Array): Promise<[Uint8Array, Uint8Array][]>;
//! }
//! ```
//! A rejection's `code` (or `name`) classifies it: `QuotaExceededError`, `CLOSED`,
//! `LEVEL_LOCKED`, … (see `failure_from_js`).
//!
//! The keys and values of one call are copied out of wasm memory once, into one `Uint8Array`,
//! and handed over as subarray views into it: one allocation per call instead of one per item
//! (a 1 MiB batch holds ~8,000 of them). The views are the store's only until the call's
//! promise settles: a store that keeps a key or value after that copies it (`slice()`), which
//! also keeps it from holding the whole call's buffer alive.

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use statesync_core::engine::StoreFailure;
use statesync_core::store::{staged_hash, CODE_KEY_PREFIX, PROGRESS_KEY, STAGING_KEY_PREFIX};
use statesync_core::{CommitBatch, ItemKind, ProgressRecord, StoreKey, H256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{failure_from_js, other};

pub struct JsStore {
    object: JsValue,
}

impl JsStore {
    /// Wraps `object`, checking that it has the five methods.
    pub fn new(object: JsValue) -> Result<JsStore, String> {
        for method in ["has", "get", "write", "readProgress", "scan"] {
            let f = Reflect::get(&object, &method.into()).ok();
            if !f.is_some_and(|f| f.is_function()) {
                return Err(format!("store object has no {method}() method"));
            }
        }
        Ok(JsStore { object })
    }

    async fn call(&self, method: &str, args: &[JsValue]) -> Result<JsValue, StoreFailure> {
        let f: Function = Reflect::get(&self.object, &method.into())
            .map_err(|e| failure_from_js(&e))?
            .unchecked_into();
        let array: Array = args.iter().collect();
        let returned = f
            .apply(&self.object, &array)
            .map_err(|e| failure_from_js(&e))?;
        let promise = Promise::resolve(&returned);
        JsFuture::from(promise)
            .await
            .map_err(|e| failure_from_js(&e))
    }

    fn keys(keys: &[StoreKey]) -> JsValue {
        let mut packed = Packed::with_capacity(keys.len(), keys.len() * 33);
        for key in keys {
            packed.push_key(key);
        }
        packed.views().into_iter().collect::<Array>().into()
    }

    pub async fn load_progress(&self) -> Result<Option<Vec<u8>>, StoreFailure> {
        let value = self
            .call("readProgress", &[Uint8Array::from(PROGRESS_KEY).into()])
            .await?;
        Ok(value.dyn_into::<Uint8Array>().ok().map(|a| a.to_vec()))
    }

    pub async fn lookup(&self, keys: &[StoreKey]) -> Result<Vec<bool>, StoreFailure> {
        let answers = self.call("has", &[Self::keys(keys)]).await?;
        let answers: Array = answers
            .dyn_into()
            .map_err(|_| other("store.has() did not return an array"))?;
        if answers.length() as usize != keys.len() {
            return Err(other(format!(
                "store.has() answered {} of {} keys",
                answers.length(),
                keys.len()
            )));
        }
        Ok(answers.iter().map(|v| v.is_truthy()).collect())
    }

    pub async fn get(&self, keys: &[StoreKey]) -> Result<Vec<Option<Vec<u8>>>, StoreFailure> {
        let values = self.call("get", &[Self::keys(keys)]).await?;
        let values: Array = values
            .dyn_into()
            .map_err(|_| other("store.get() did not return an array"))?;
        if values.length() as usize != keys.len() {
            return Err(other(format!(
                "store.get() answered {} of {} keys",
                values.length(),
                keys.len()
            )));
        }
        Ok(values
            .iter()
            .map(|v| v.dyn_into::<Uint8Array>().ok().map(|a| a.to_vec()))
            .collect())
    }

    /// Every staged entry, through `scan` over the staging prefix.
    pub async fn load_staged(&self) -> Result<Vec<(H256, Vec<u8>)>, StoreFailure> {
        let entries = self
            .call("scan", &[Uint8Array::from(STAGING_KEY_PREFIX).into()])
            .await?;
        let entries: Array = entries
            .dyn_into()
            .map_err(|_| other("store.scan() did not return an array"))?;
        let mut out = Vec::with_capacity(entries.length() as usize);
        for entry in entries.iter() {
            let pair: Option<(Uint8Array, Uint8Array)> = entry
                .dyn_into::<Array>()
                .ok()
                .and_then(|p| Some((p.get(0).dyn_into().ok()?, p.get(1).dyn_into().ok()?)));
            let Some((key, value)) = pair else {
                return Err(other(
                    "store.scan() returned an entry that is not [key, value]",
                ));
            };
            // A key that names no hash is skipped: the sync fetches what it needs.
            if let Some(hash) = staged_hash(&key.to_vec()) {
                out.push((hash, value.to_vec()));
            }
        }
        Ok(out)
    }

    pub async fn commit(
        &self,
        batch: &CommitBatch,
        record: &ProgressRecord,
    ) -> Result<(), StoreFailure> {
        // Puts as key, value, key, value…, then the deletes' keys: one buffer for the call.
        let puts_len = batch.items().count() + batch.staged.len();
        let bytes = batch.items().map(|(_, v)| 33 + v.len()).sum::<usize>()
            + batch
                .staged
                .iter()
                .map(|(_, v)| 49 + v.len())
                .sum::<usize>()
            + batch.unstaged.len() * 49;
        let mut packed = Packed::with_capacity(2 * puts_len + batch.unstaged.len(), bytes);
        for (key, value) in batch.items() {
            packed.push_key(&key);
            packed.push(value);
        }
        for (hash, value) in &batch.staged {
            packed.push_staging_key(hash);
            packed.push(value);
        }
        for hash in &batch.unstaged {
            packed.push_staging_key(hash);
        }
        let mut views = packed.views().into_iter();
        let puts: Array = views
            .by_ref()
            .take(2 * puts_len)
            .collect::<Vec<_>>()
            .chunks(2)
            .map(|kv| JsValue::from(Array::of2(&kv[0], &kv[1])))
            .collect();
        let deletes: Array = views.collect();
        let progress = Uint8Array::from(record.encode().as_slice());
        self.call(
            "write",
            &[
                puts.into(),
                deletes.into(),
                Uint8Array::from(PROGRESS_KEY).into(),
                progress.into(),
            ],
        )
        .await?;
        Ok(())
    }
}

/// The byte strings of one store call, copied into JavaScript as one `Uint8Array` and handed
/// out as views into it.
struct Packed {
    bytes: Vec<u8>,
    /// Where each string ends in `bytes`.
    ends: Vec<usize>,
}

impl Packed {
    fn with_capacity(strings: usize, bytes: usize) -> Packed {
        Packed {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(strings),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.ends.push(self.bytes.len());
    }

    /// A key in geth's flat layout (`StoreKey::flat_key`), without a `Vec` of its own.
    fn push_key(&mut self, key: &StoreKey) {
        if key.kind == ItemKind::Code {
            self.bytes.push(CODE_KEY_PREFIX);
        }
        self.push(&key.hash.0);
    }

    /// A staging key (`staging_key`), without a `Vec` of its own.
    fn push_staging_key(&mut self, hash: &H256) {
        self.bytes.extend_from_slice(STAGING_KEY_PREFIX);
        self.push(&hash.0);
    }

    /// One copy of every byte into JavaScript, then one subarray view per string.
    fn views(self) -> Vec<Uint8Array> {
        let all = Uint8Array::from(self.bytes.as_slice());
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                // Batches are at most 1 GiB (the engine's bound): the offsets fit in u32.
                let view = all.subarray(start as u32, end as u32);
                start = end;
                view
            })
            .collect()
    }
}
