//! Where a sync persists: IndexedDB in the browser, any JavaScript object implementing the
//! store interface (the Node.js tool's LevelDB), or memory. One interface for the driver.

mod indexeddb;
mod js;

use std::cell::RefCell;

use statesync_core::engine::{StoreFailure, StoreFailureKind};
use statesync_core::{CommitBatch, MemoryStore, ProgressRecord, StoreKey, H256};

pub use indexeddb::IdbStore;
pub use js::JsStore;

/// A store the driver can use. Every write is atomic: a batch (main keyspace puts, staging
/// puts and deletes) and its progress record land together or not at all.
pub enum Store {
    IndexedDb(IdbStore),
    Js(JsStore),
    Memory(RefCell<MemoryStore>, RefCell<Option<ProgressRecord>>),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory(RefCell::new(MemoryStore::new()), RefCell::new(None))
    }

    /// The stored progress record, if a sync ever committed here.
    pub async fn load_progress(&self) -> Result<Option<ProgressRecord>, StoreFailure> {
        let bytes = match self {
            Store::IndexedDb(s) => s.load_progress().await?,
            Store::Js(s) => s.load_progress().await?,
            Store::Memory(_, record) => return Ok(*record.borrow()),
        };
        match bytes {
            None => Ok(None),
            Some(bytes) => ProgressRecord::decode(&bytes)
                .map(Some)
                .map_err(|e| StoreFailure {
                    kind: StoreFailureKind::Other,
                    message: e.to_string(),
                }),
        }
    }

    /// Whether each key is stored, in one read transaction.
    pub async fn lookup(&self, keys: &[StoreKey]) -> Result<Vec<bool>, StoreFailure> {
        match self {
            Store::IndexedDb(s) => s.lookup(keys).await,
            Store::Js(s) => s.lookup(keys).await,
            Store::Memory(store, _) => {
                let store = store.borrow();
                Ok(keys.iter().map(|k| store.contains(*k)).collect())
            }
        }
    }

    /// The stored values of `keys`, in one read transaction.
    pub async fn get(&self, keys: &[StoreKey]) -> Result<Vec<Option<Vec<u8>>>, StoreFailure> {
        match self {
            Store::IndexedDb(s) => s.get(keys).await,
            Store::Js(s) => s.get(keys).await,
            Store::Memory(store, _) => {
                let store = store.borrow();
                Ok(keys
                    .iter()
                    .map(|k| store.get(*k).map(<[u8]>::to_vec))
                    .collect())
            }
        }
    }

    /// Every entry of the staging area: verified nodes whose subtries were not complete when
    /// they were written. The engine hashes each again before using it.
    pub async fn load_staged(&self) -> Result<Vec<(H256, Vec<u8>)>, StoreFailure> {
        match self {
            Store::IndexedDb(s) => s.load_staged().await,
            Store::Js(s) => s.load_staged().await,
            Store::Memory(store, _) => Ok(store.borrow().staged()),
        }
    }

    /// Writes the batch and the record in one atomic transaction.
    pub async fn commit(
        &self,
        batch: &CommitBatch,
        record: &ProgressRecord,
    ) -> Result<(), StoreFailure> {
        match self {
            Store::IndexedDb(s) => s.commit(batch, record).await,
            Store::Js(s) => s.commit(batch, record).await,
            Store::Memory(store, stored) => {
                store.borrow_mut().apply(batch);
                *stored.borrow_mut() = Some(*record);
                Ok(())
            }
        }
    }
}

/// A failure of the `Other` kind.
pub(crate) fn other(message: impl Into<String>) -> StoreFailure {
    StoreFailure {
        kind: StoreFailureKind::Other,
        message: message.into(),
    }
}

/// Classifies a DOMException-like error by its `name` (or a `code` set by a JS store).
pub(crate) fn failure_from_js(err: &wasm_bindgen::JsValue) -> StoreFailure {
    let field = |name: &str| {
        js_sys::Reflect::get(err, &name.into())
            .ok()
            .and_then(|v| v.as_string())
    };
    let name = field("code").or_else(|| field("name")).unwrap_or_default();
    let message = field("message").unwrap_or_else(|| format!("{err:?}"));
    let kind = match name.as_str() {
        "QuotaExceededError" | "QUOTA_EXCEEDED" => StoreFailureKind::QuotaExceeded,
        "InvalidStateError" | "CLOSED" | "LEVEL_DATABASE_NOT_OPEN" => StoreFailureKind::Closed,
        "VersionError" | "BLOCKED" | "LEVEL_LOCKED" => StoreFailureKind::Blocked,
        _ => StoreFailureKind::Other,
    };
    StoreFailure {
        kind,
        message: if name.is_empty() {
            message
        } else {
            format!("{name}: {message}")
        },
    }
}
