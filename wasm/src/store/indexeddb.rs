//! IndexedDB persistence: object stores `nodes`, `code`, `staging` and `meta` in one
//! database; one readwrite transaction per commit batch (main keyspace puts, staging puts and
//! deletes, progress record), one readonly transaction per batch of lookups.
//!
//! `staging` holds verified nodes whose subtries were not complete when they were written
//! (DESIGN.md I7), keyed by hash like `nodes`; lookups never see it. Schema version 2 added it;
//! opening a version 1 database upgrades it in place.

use std::future::IntoFuture;

use futures::future::join_all;
use idb::{
    Database, DatabaseEvent, Error, Factory, ObjectStoreParams, Query, TransactionMode,
    TransactionResult,
};
use js_sys::{ArrayBuffer, Uint8Array};
use statesync_core::engine::{StoreFailure, StoreFailureKind};
use statesync_core::{CommitBatch, ItemKind, ProgressRecord, StoreKey, H256};
use wasm_bindgen::{JsCast, JsValue};

use super::{failure_from_js, other};

const NODES: &str = "nodes";
const CODE: &str = "code";
const META: &str = "meta";
const STAGING: &str = "staging";
const PROGRESS: &str = "progress";
const SCHEMA_VERSION: u32 = 2;

pub struct IdbStore {
    db: Database,
}

/// A dropped store closes its connection (once its transactions finish), so the database can
/// be reopened, upgraded or deleted without waiting for garbage collection.
impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.close();
    }
}

fn key(key: &StoreKey) -> JsValue {
    hash_key(&key.hash)
}

fn hash_key(hash: &H256) -> JsValue {
    Uint8Array::from(hash.0.as_slice()).into()
}

/// Maps an idb error to a typed store failure.
fn failure(err: Error) -> StoreFailure {
    match err {
        Error::DomException(exception) => failure_from_js(&exception.into()),
        other_err => {
            let text = other_err.to_string();
            if text.contains("closed") || text.contains("InvalidState") {
                StoreFailure {
                    kind: StoreFailureKind::Closed,
                    message: text,
                }
            } else {
                other(text)
            }
        }
    }
}

impl IdbStore {
    /// Opens (creating if needed) the database `name`. Another tab holding an older version
    /// open makes this fail as `Blocked` rather than hang.
    pub async fn open(name: &str) -> Result<IdbStore, StoreFailure> {
        let factory = Factory::new().map_err(failure)?;
        let mut request = factory.open(name, Some(SCHEMA_VERSION)).map_err(failure)?;
        request.on_upgrade_needed(|event| {
            let Ok(db) = event.database() else { return };
            let names = db.store_names();
            for store in [NODES, CODE, META, STAGING] {
                if !names.iter().any(|n| n == store) {
                    let _ = db.create_object_store(store, ObjectStoreParams::new());
                }
            }
        });
        let blocked = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = blocked.clone();
        request.on_blocked(move |_| flag.set(true));
        let db = request.await.map_err(|e| {
            if blocked.get() {
                StoreFailure {
                    kind: StoreFailureKind::Blocked,
                    message: "database upgrade blocked by another open connection".into(),
                }
            } else {
                failure(e)
            }
        })?;
        Ok(IdbStore { db })
    }

    pub fn close(&self) {
        self.db.close();
    }

    pub async fn load_progress(&self) -> Result<Option<Vec<u8>>, StoreFailure> {
        let tx = self
            .db
            .transaction(&[META], TransactionMode::ReadOnly)
            .map_err(failure)?;
        let store = tx.object_store(META).map_err(failure)?;
        let value = store
            .get(Query::from(JsValue::from_str(PROGRESS)))
            .map_err(failure)?
            .await
            .map_err(failure)?;
        Ok(value
            .and_then(|v| v.dyn_into::<Uint8Array>().ok())
            .map(|a| a.to_vec()))
    }

    pub async fn lookup(&self, keys: &[StoreKey]) -> Result<Vec<bool>, StoreFailure> {
        let tx = self
            .db
            .transaction(&[NODES, CODE], TransactionMode::ReadOnly)
            .map_err(failure)?;
        let (nodes, code) = (
            tx.object_store(NODES).map_err(failure)?,
            tx.object_store(CODE).map_err(failure)?,
        );
        // Issue every request before awaiting any, so they share the one transaction.
        let mut requests = Vec::with_capacity(keys.len());
        for k in keys {
            let store = if k.kind == ItemKind::Node {
                &nodes
            } else {
                &code
            };
            requests.push(store.count(Some(Query::from(key(k)))).map_err(failure)?);
        }
        join_all(requests.into_iter().map(IntoFuture::into_future))
            .await
            .into_iter()
            .map(|r| r.map(|count| count > 0).map_err(failure))
            .collect()
    }

    pub async fn get(&self, keys: &[StoreKey]) -> Result<Vec<Option<Vec<u8>>>, StoreFailure> {
        let tx = self
            .db
            .transaction(&[NODES, CODE], TransactionMode::ReadOnly)
            .map_err(failure)?;
        let (nodes, code) = (
            tx.object_store(NODES).map_err(failure)?,
            tx.object_store(CODE).map_err(failure)?,
        );
        let mut requests = Vec::with_capacity(keys.len());
        for k in keys {
            let store = if k.kind == ItemKind::Node {
                &nodes
            } else {
                &code
            };
            requests.push(store.get(Query::from(key(k))).map_err(failure)?);
        }
        join_all(requests.into_iter().map(IntoFuture::into_future))
            .await
            .into_iter()
            .map(|r| {
                r.map(|v| {
                    v.and_then(|v| v.dyn_into::<Uint8Array>().ok())
                        .map(|a| a.to_vec())
                })
                .map_err(failure)
            })
            .collect()
    }

    /// Every entry of the staging area, in one readonly transaction.
    pub async fn load_staged(&self) -> Result<Vec<(H256, Vec<u8>)>, StoreFailure> {
        let tx = self
            .db
            .transaction(&[STAGING], TransactionMode::ReadOnly)
            .map_err(failure)?;
        let staging = tx.object_store(STAGING).map_err(failure)?;
        let keys = staging.get_all_keys(None, None).map_err(failure)?;
        let values = staging.get_all(None, None).map_err(failure)?;
        let (keys, values) = futures::join!(keys.into_future(), values.into_future());
        let (keys, values) = (keys.map_err(failure)?, values.map_err(failure)?);
        if keys.len() != values.len() {
            return Err(other("staging: keys and values differ in number"));
        }
        let mut entries = Vec::with_capacity(keys.len());
        for (k, v) in keys.into_iter().zip(values) {
            // Binary keys come back as ArrayBuffers, whatever view they were written as.
            let hash = (k.is_instance_of::<ArrayBuffer>() || ArrayBuffer::is_view(&k))
                .then(|| Uint8Array::new(&k).to_vec())
                .and_then(|k| H256::from_slice(&k));
            let value = v.dyn_into::<Uint8Array>().ok().map(|v| v.to_vec());
            // A key that is no hash cannot name a node: skip it; the sync fetches what it needs.
            if let (Some(hash), Some(value)) = (hash, value) {
                entries.push((hash, value));
            }
        }
        Ok(entries)
    }

    /// Writes a batch and its progress record in one readwrite transaction.
    pub async fn commit(
        &self,
        batch: &CommitBatch,
        record: &ProgressRecord,
    ) -> Result<(), StoreFailure> {
        self.commit_entries(
            batch.items().map(|(k, v)| (k, Uint8Array::from(v).into())),
            batch,
            record,
        )
        .await
    }

    /// The transaction behind `commit`, taking any JS values for the main keyspace puts (the
    /// staging part comes from `batch`): a test can slip in a value IndexedDB refuses, to prove
    /// a failed batch leaves nothing behind.
    pub async fn commit_entries(
        &self,
        entries: impl Iterator<Item = (StoreKey, JsValue)>,
        batch: &CommitBatch,
        record: &ProgressRecord,
    ) -> Result<(), StoreFailure> {
        let tx = self
            .db
            .transaction(&[NODES, CODE, STAGING, META], TransactionMode::ReadWrite)
            .map_err(failure)?;
        // Keep a handle to read `error` after the future consumes the transaction.
        let raw: web_sys::IdbTransaction = tx.into();
        let handle = raw.clone();
        let tx = idb::Transaction::from(raw);
        let result: Result<(), StoreFailure> = (|| {
            let nodes = tx.object_store(NODES).map_err(failure)?;
            let code = tx.object_store(CODE).map_err(failure)?;
            let meta = tx.object_store(META).map_err(failure)?;
            let staging = tx.object_store(STAGING).map_err(failure)?;
            for (k, value) in entries {
                let store = if k.kind == ItemKind::Node {
                    &nodes
                } else {
                    &code
                };
                store.put(&value, Some(&key(&k))).map_err(failure)?;
            }
            for (hash, value) in &batch.staged {
                let value: JsValue = Uint8Array::from(value.as_slice()).into();
                staging
                    .put(&value, Some(&hash_key(hash)))
                    .map_err(failure)?;
            }
            for hash in &batch.unstaged {
                staging
                    .delete(Query::from(hash_key(hash)))
                    .map_err(failure)?;
            }
            let record = Uint8Array::from(record.encode().as_slice());
            meta.put(&record.into(), Some(&JsValue::from_str(PROGRESS)))
                .map_err(failure)?;
            Ok(())
        })();
        if let Err(err) = result {
            // Nothing may land if any put failed to be issued.
            let _ = tx.abort();
            return Err(err);
        }
        match tx.await {
            Ok(TransactionResult::Committed) => Ok(()),
            Ok(TransactionResult::Aborted) => Err(handle
                .error()
                .map(|e| failure_from_js(&e.into()))
                .unwrap_or_else(|| other("commit transaction aborted"))),
            Err(err) => Err(handle
                .error()
                .map(|e| failure_from_js(&e.into()))
                .unwrap_or_else(|| failure(err))),
        }
    }
}
