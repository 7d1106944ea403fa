//! A store implemented in JavaScript, so the engine can persist anywhere: the Node.js tool
//! passes a LevelDB-backed object. Keys use geth's flat layout: a node under its 32-byte
//! hash, code under `"c" || hash`, the progress record under `statesync-progress`.
//!
//! ```ts
//! interface JsStore {
//!   has(keys: Uint8Array[]): Promise<boolean[]>;
//!   get(keys: Uint8Array[]): Promise<(Uint8Array | null | undefined)[]>;
//!   /** Atomic: every put and the meta record, or nothing. */
//!   write(puts: [Uint8Array, Uint8Array][], progressKey: Uint8Array, progress: Uint8Array): Promise<void>;
//!   readProgress(progressKey: Uint8Array): Promise<Uint8Array | null | undefined>;
//! }
//! ```
//! A rejection's `code` (or `name`) classifies it: `QuotaExceededError`, `CLOSED`,
//! `LEVEL_LOCKED`, … (see `failure_from_js`).

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use statesync_core::engine::StoreFailure;
use statesync_core::store::PROGRESS_KEY;
use statesync_core::{CommitBatch, ProgressRecord, StoreKey};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{failure_from_js, other};

pub struct JsStore {
    object: JsValue,
}

impl JsStore {
    /// Wraps `object`, checking that it has the four methods.
    pub fn new(object: JsValue) -> Result<JsStore, String> {
        for method in ["has", "get", "write", "readProgress"] {
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
        keys.iter()
            .map(|k| JsValue::from(Uint8Array::from(k.flat_key().as_slice())))
            .collect::<Array>()
            .into()
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

    pub async fn commit(
        &self,
        batch: &CommitBatch,
        record: &ProgressRecord,
    ) -> Result<(), StoreFailure> {
        let puts: Array = batch
            .items()
            .map(|(k, v)| -> JsValue {
                let pair = Array::new();
                pair.push(&Uint8Array::from(k.flat_key().as_slice()));
                pair.push(&Uint8Array::from(v));
                pair.into()
            })
            .collect();
        let progress = Uint8Array::from(record.encode().as_slice());
        self.call(
            "write",
            &[
                puts.into(),
                Uint8Array::from(PROGRESS_KEY).into(),
                progress.into(),
            ],
        )
        .await?;
        Ok(())
    }
}
