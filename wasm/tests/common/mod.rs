//! Shared by the wasm test binaries: in-process peers serving a `StateSource` to a
//! `StateSync`, an in-memory JavaScript store, options objects and small async helpers.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use statesync_wasm::source::StateSource;
use statesync_wasm::sync::StateSync;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{spawn_local, JsFuture};

/// A plain object from `(name, value)` pairs.
pub fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let object = Object::new();
    for (name, value) in fields {
        Reflect::set(&object, &(*name).into(), value).expect("set a field on a fresh object");
    }
    object.into()
}

pub fn field(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

pub fn number(value: &JsValue, name: &str) -> f64 {
    field(value, name)
        .as_f64()
        .unwrap_or_else(|| panic!("{name} is not a number in {value:?}"))
}

pub fn string(value: &JsValue, name: &str) -> String {
    field(value, name)
        .as_string()
        .unwrap_or_else(|| panic!("{name} is not a string in {value:?}"))
}

/// The `code` of a rejected promise or thrown error.
pub fn code(err: &JsValue) -> String {
    field(err, "code").as_string().unwrap_or_default()
}

/// Resolves after `ms` milliseconds (a `setTimeout` on the global object).
pub async fn sleep(ms: u32) {
    let promise = Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        let set: Function = Reflect::get(&global, &"setTimeout".into())
            .expect("setTimeout")
            .unchecked_into();
        set.call2(&global, &resolve, &ms.into())
            .expect("setTimeout call");
    });
    JsFuture::from(promise).await.expect("timer");
}

/// How long a test waits for something that takes milliseconds before calling it a hang: long
/// enough that a busy machine never fails a test, short enough that a hang still ends the run.
pub const PATIENCE_MS: u32 = 5 * 60_000;

/// Waits until `done()` holds, checking every 10 ms; panics after `PATIENCE_MS` (a hang).
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let mut waited = 0;
    while !done() {
        assert!(
            waited < PATIENCE_MS,
            "still waiting for {what} after {PATIENCE_MS} ms"
        );
        sleep(10).await;
        waited += 10;
    }
}

/// Events a sync delivered to `onEvent`, in order.
#[derive(Clone, Default)]
pub struct Events(Rc<RefCell<Vec<JsValue>>>);

impl Events {
    /// The `onEvent` callback that records into this list.
    pub fn callback(&self) -> JsValue {
        let list = self.0.clone();
        Closure::<dyn Fn(JsValue)>::new(move |event: JsValue| list.borrow_mut().push(event))
            .into_js_value()
    }

    pub fn types(&self) -> Vec<String> {
        self.0.borrow().iter().map(|e| string(e, "type")).collect()
    }

    pub fn of_type(&self, kind: &str) -> Vec<JsValue> {
        self.0
            .borrow()
            .iter()
            .filter(|e| string(e, "type") == kind)
            .cloned()
            .collect()
    }
}

/// A peer in this process: answers the sync's requests from `source`, one task later, the
/// way a socket would. Counts the requests it was sent.
pub struct Peer {
    pub requests: Rc<Cell<u32>>,
}

/// Connects `source` to `sync` as peer `id` and delivers its Status frame.
pub fn connect(sync: &Rc<StateSync>, id: u32, source: &Rc<StateSource>) -> Peer {
    connect_slow(sync, id, source, 0)
}

/// `connect`, with every answer delivered `delay_ms` after the request.
pub fn connect_slow(
    sync: &Rc<StateSync>,
    id: u32,
    source: &Rc<StateSource>,
    delay_ms: u32,
) -> Peer {
    let requests = Rc::new(Cell::new(0));
    let weak: Weak<StateSync> = Rc::downgrade(sync);
    let (count, server) = (requests.clone(), source.clone());
    let send = Closure::<dyn Fn(Uint8Array)>::new(move |frame: Uint8Array| {
        count.set(count.get() + 1);
        let answer = server.answer(&frame.to_vec(), None, None).ok().flatten();
        let weak = weak.clone();
        spawn_local(async move {
            if delay_ms > 0 {
                sleep(delay_ms).await;
            }
            if let (Some(answer), Some(sync)) = (answer, weak.upgrade()) {
                sync.receive(id.into(), &answer.to_vec())
                    .expect("a valid peer id");
            }
        });
    });
    sync.add_peer(id.into(), send.into_js_value().unchecked_into(), None)
        .expect("a valid peer id");
    sync.receive(id.into(), &source.status_frame(1).to_vec())
        .expect("a valid peer id");
    Peer { requests }
}

/// Awaits `start()`: the final progress, or the rejection.
pub async fn run(sync: &StateSync) -> Result<JsValue, JsValue> {
    JsFuture::from(sync.start()).await
}

/// A JavaScript object implementing the store interface over `Map`s (keys as hex): `data`
/// (the main keyspace), `staged` (keys under the staging prefix), `progress`; with switches to
/// make `write` reject with any error (`failWith`) or take time (`writeDelayMs`), and a count
/// of writes.
pub const MAP_STORE_JS: &str = r#"
const hex = (k) => Array.from(k, (b) => b.toString(16).padStart(2, '0')).join('');
const unhex = (h) => Uint8Array.from(h.match(/../g), (b) => parseInt(b, 16));
const STAGING = hex(new TextEncoder().encode('statesync-staged-'));
const mapOf = (key) => (key.startsWith(STAGING) ? store.staged : store.data);
const store = {
  data: new Map(),
  staged: new Map(),
  progress: new Map(),
  writes: 0,
  failWith: null,
  async has(keys) { return keys.map((k) => store.data.has(hex(k))); },
  async get(keys) { return keys.map((k) => store.data.get(hex(k))); },
  writeDelayMs: 0,
  async write(puts, deletes, progressKey, progress) {
    if (store.writeDelayMs) await new Promise((r) => setTimeout(r, store.writeDelayMs));
    if (store.failWith) throw store.failWith();
    for (const [k, v] of puts) mapOf(hex(k)).set(hex(k), Uint8Array.from(v));
    for (const k of deletes) mapOf(hex(k)).delete(hex(k));
    store.progress.set(hex(progressKey), Uint8Array.from(progress));
    store.writes++;
  },
  async readProgress(progressKey) { return store.progress.get(hex(progressKey)); },
  async scan(prefix) {
    const p = hex(prefix);
    return [...store.data, ...store.staged].filter(([k]) => k.startsWith(p)).map(([k, v]) => [unhex(k), v]);
  },
};
return store;
"#;

/// Opens `name` as a schema version 1 database (before the staging area): `nodes`, `code`,
/// `meta`.
pub async fn open_version_1_database(name: &str) -> idb::Database {
    let factory = idb::Factory::new().expect("IndexedDB");
    let mut request = factory.open(name, Some(1)).expect("open");
    request.on_upgrade_needed(|event| {
        use idb::DatabaseEvent;
        let db = event.database().expect("the database");
        for store in ["nodes", "code", "meta"] {
            db.create_object_store(store, idb::ObjectStoreParams::new())
                .expect("create");
        }
    });
    request.await.expect("opens version 1")
}

/// Puts one value straight into an object store.
pub async fn put_raw(db: &idb::Database, store: &str, key: &[u8], value: &[u8]) {
    let tx = db
        .transaction(&[store], idb::TransactionMode::ReadWrite)
        .expect("transaction");
    let key: JsValue = Uint8Array::from(key).into();
    let value: JsValue = Uint8Array::from(value).into();
    tx.object_store(store)
        .expect("store")
        .put(&value, Some(&key))
        .expect("put")
        .await
        .expect("put lands");
    tx.await.expect("commits");
}

pub fn map_store() -> JsValue {
    Function::new_no_args(MAP_STORE_JS)
        .call0(&JsValue::NULL)
        .expect("build the map store")
}

/// Items (nodes and code) the map store holds.
pub fn map_store_len(store: &JsValue) -> f64 {
    number(&field(store, "data"), "size")
}

/// `[a, b, …]` as a JS array.
pub fn array(values: &[JsValue]) -> Array {
    values.iter().collect()
}
