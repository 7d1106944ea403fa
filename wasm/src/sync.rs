//! `StateSync`: the engine as a JavaScript class, with the async driver that runs its store
//! operations, timers and events.
//!
//! The driver is a pump: after every input (a frame, a peer change, a store result, a
//! timer) it drains the engine's outputs. Frames go to the peers' `send` functions, store
//! operations run one at a time on the store (so a lookup always sees earlier commits),
//! events go to `onEvent`, and the next deadline becomes one `setTimeout`. JavaScript calls
//! are made with no borrow held, so a handler may call back into the class.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

use js_sys::{Function, Promise, Uint8Array};
use statesync_core::engine::{DisconnectReason, EngineError, StoreFailure};
use statesync_core::{
    Engine, EngineConfig, Event, PeerId, Progress, StoreAction, StoreOp, StoreResult, Transmit,
    H256,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, spawn_local, JsFuture};

use crate::js::{self, error, now_ms, opt_bool, opt_string, opt_value, to_js};
use crate::store::{IdbStore, JsStore, Store};

/// Default IndexedDB database name.
pub const DEFAULT_DATABASE: &str = "statesync";

struct PeerHandle {
    send: Function,
    close: Option<Function>,
}

enum Action {
    Send(Function, Uint8Array),
    Close(Option<Function>, String),
    Event(JsValue),
    Settle(Function, JsValue),
}

struct Driver {
    root: H256,
    config: EngineConfig,
    options: JsValue,
    on_event: Option<Function>,
    engine: Option<Engine>,
    store: Option<Rc<Store>>,
    peers: BTreeMap<PeerId, PeerHandle>,
    /// Frames that arrived before `start` opened the store (a peer's Status, typically).
    early_frames: Vec<(PeerId, Vec<u8>)>,
    store_queue: VecDeque<StoreOp>,
    store_busy: bool,
    timer: Option<(u64, JsValue)>,
    timer_callback: Option<Closure<dyn FnMut()>>,
    settle: Option<(Function, Function)>,
    last_progress: Option<Progress>,
    started: bool,
    /// `cancel()` was called. Re-asserted on every pump until the engine has cancelled: the
    /// engine's flush is cut once, and an answer or lookup result that lands while it is
    /// being written completes more items that would otherwise wait for a commit that never
    /// comes. Also covers a `cancel()` before `start()` opened the store.
    cancelling: bool,
}

impl Drop for Driver {
    /// A dropped sync leaves no timer behind to call into a freed closure.
    fn drop(&mut self) {
        if let Some((_, handle)) = self.timer.take() {
            js::clear_timeout(&handle);
        }
    }
}

/// The sync engine for JavaScript: `new StateSync(options)`, `addPeer` for every connected
/// peer, `receive` for every frame they send, then `await start()`.
#[wasm_bindgen]
pub struct StateSync {
    driver: Rc<RefCell<Driver>>,
}

fn parse_root(text: &str) -> Result<H256, JsValue> {
    text.parse().map_err(|e| {
        error(
            "BAD_ROOT",
            &format!("root {text:?} is not a 32-byte hex hash: {e}"),
        )
    })
}

/// One numeric engine option: its name in `SyncOptions`, the integers it accepts, and the
/// `EngineConfig` field it sets. A new option is one more row of [`ENGINE_OPTIONS`].
struct EngineOption {
    name: &'static str,
    min: u64,
    max: u64,
    set: fn(&mut EngineConfig, u64),
}

/// Every numeric option of `new StateSync(options)`. Values outside the range are refused
/// with `BAD_OPTION`, never clamped or ignored.
const ENGINE_OPTIONS: &[EngineOption] = &[
    EngineOption {
        name: "batchBytes",
        min: 1,
        max: 1 << 30,
        set: |c, v| c.batch_bytes = v as usize,
    },
    EngineOption {
        name: "batchItems",
        min: 1,
        max: 1 << 24,
        set: |c, v| c.batch_items = v as usize,
    },
    EngineOption {
        name: "batchIntervalMs",
        min: 1,
        max: 3_600_000,
        set: |c, v| c.batch_interval_ms = v,
    },
    EngineOption {
        name: "stallTimeoutMs",
        min: 1,
        max: 1 << 40,
        set: |c, v| c.stall_timeout_ms = Some(v),
    },
    EngineOption {
        name: "maxInFlight",
        min: 1,
        max: 64,
        set: |c, v| c.max_in_flight_per_peer = v as usize,
    },
    EngineOption {
        name: "maxItemsPerRequest",
        min: 1,
        max: statesync_core::wire::MAX_HASHES_PER_REQUEST as u64,
        set: |c, v| c.max_items_per_request = v as usize,
    },
    EngineOption {
        name: "progressIntervalMs",
        min: 1,
        max: 3_600_000,
        set: |c, v| c.progress_interval_ms = v,
    },
    EngineOption {
        name: "maxPending",
        min: 1,
        max: 1 << 26,
        set: |c, v| c.max_pending = v as usize,
    },
    EngineOption {
        name: "maxFetchesPerDepth",
        min: 1,
        max: 1 << 24,
        set: |c, v| c.max_fetches_per_depth = v as usize,
    },
];

/// The options that are not numbers, with the JavaScript type each must have.
const TYPED_OPTIONS: &[(&str, &str)] = &[
    ("database", "string"),
    ("switchRoot", "boolean"),
    ("memory", "boolean"),
    ("onEvent", "function"),
    ("store", "object"),
];

/// `BAD_OPTION`: names the option, what it must be and what it was.
pub(crate) fn bad_option(name: &str, expected: &str, got: &JsValue) -> JsValue {
    let got_text = if got.is_string() {
        format!("{:?}", got.as_string().unwrap_or_default())
    } else {
        js_sys::JSON::stringify(got)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| got.js_typeof().as_string().unwrap_or_default())
    };
    let err = error(
        "BAD_OPTION",
        &format!("options.{name} must be {expected}, got {got_text}"),
    );
    let _ = js_sys::Reflect::set(&err, &"option".into(), &name.into());
    let _ = js_sys::Reflect::set(&err, &"expected".into(), &expected.into());
    err
}

/// Checks the options object and builds the engine configuration from it.
pub(crate) fn config_from(options: &JsValue) -> Result<EngineConfig, JsValue> {
    if !options.is_object() {
        return Err(bad_option("", "an object", options));
    }
    for (name, kind) in TYPED_OPTIONS {
        if let Some(value) = opt_value(options, name) {
            if value.js_typeof().as_string().as_deref() != Some(kind) {
                let article = if kind.starts_with('o') { "an" } else { "a" };
                return Err(bad_option(name, &format!("{article} {kind}"), &value));
            }
        }
    }
    let mut config = EngineConfig::default();
    for option in ENGINE_OPTIONS {
        let Some(value) = opt_value(options, option.name) else {
            continue;
        };
        let number = value
            .as_f64()
            .filter(|v| v.fract() == 0.0 && *v >= option.min as f64 && *v <= option.max as f64);
        match number {
            Some(v) => (option.set)(&mut config, v as u64),
            None => {
                let expected = format!("an integer from {} to {}", option.min, option.max);
                return Err(bad_option(option.name, &expected, &value));
            }
        }
    }
    Ok(config)
}

/// A peer id from JavaScript: a non-negative safe integer, or `BAD_PEER_ID`. (A cast would
/// turn NaN, -1 or 1.5 into some other peer silently.)
fn peer_id(id: &JsValue) -> Result<PeerId, JsValue> {
    const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;
    match id.as_f64() {
        Some(v) if v.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&v) => Ok(v as PeerId),
        _ => {
            let err = bad_option("peer", "a non-negative safe integer", id);
            let _ = js_sys::Reflect::set(&err, &"code".into(), &"BAD_PEER_ID".into());
            Err(err)
        }
    }
}

/// Opens the store the options name: a JS store object, memory, or an IndexedDB database.
pub(crate) async fn open_store(options: &JsValue) -> Result<Store, JsValue> {
    if let Some(object) = opt_value(options, "store") {
        return JsStore::new(object)
            .map(Store::Js)
            .map_err(|m| error("BAD_STORE", &m));
    }
    if opt_bool(options, "memory") == Some(true) {
        return Ok(Store::memory());
    }
    let name = opt_string(options, "database").unwrap_or_else(|| DEFAULT_DATABASE.to_string());
    IdbStore::open(&name)
        .await
        .map(Store::IndexedDb)
        .map_err(|f| store_error(&f))
}

pub(crate) fn store_error(failure: &StoreFailure) -> JsValue {
    let code = match failure.kind {
        statesync_core::engine::StoreFailureKind::QuotaExceeded => "STORE_QUOTA",
        statesync_core::engine::StoreFailureKind::Closed => "STORE_CLOSED",
        statesync_core::engine::StoreFailureKind::Blocked => "STORE_BLOCKED",
        statesync_core::engine::StoreFailureKind::Other => "STORE_ERROR",
    };
    error(code, &failure.message)
}

#[wasm_bindgen]
impl StateSync {
    /// Creates a sync of `options.root`. Nothing happens until `start()`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "SyncOptions")] options: JsValue,
    ) -> Result<StateSync, JsValue> {
        let root = opt_string(&options, "root")
            .ok_or_else(|| error("BAD_ROOT", "options.root is required"))?;
        let root = parse_root(&root)?;
        let config = config_from(&options)?;
        let on_event = opt_value(&options, "onEvent").and_then(|f| f.dyn_into::<Function>().ok());
        let driver = Driver {
            root,
            config,
            options,
            on_event,
            engine: None,
            store: None,
            peers: BTreeMap::new(),
            early_frames: Vec::new(),
            store_queue: VecDeque::new(),
            store_busy: false,
            timer: None,
            timer_callback: None,
            settle: None,
            last_progress: None,
            started: false,
            cancelling: false,
        };
        Ok(StateSync {
            driver: Rc::new(RefCell::new(driver)),
        })
    }

    /// Registers a connected peer. `send(frame)` transmits a binary frame; `close(reason)`
    /// is called when the engine drops the peer.
    #[wasm_bindgen(js_name = addPeer)]
    pub fn add_peer(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SendFrame")] send: Function,
        #[wasm_bindgen(unchecked_optional_param_type = "ClosePeer")] close: Option<Function>,
    ) -> Result<(), JsValue> {
        let peer = peer_id(&id)?;
        {
            let mut d = self.driver.borrow_mut();
            d.peers.insert(peer, PeerHandle { send, close });
            if let Some(engine) = d.engine.as_mut() {
                engine.handle_peer_joined(peer, now_ms());
            }
        }
        pump(&self.driver);
        Ok(())
    }

    /// The peer's connection closed.
    #[wasm_bindgen(js_name = removePeer)]
    pub fn remove_peer(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] id: JsValue,
    ) -> Result<(), JsValue> {
        let peer = peer_id(&id)?;
        {
            let mut d = self.driver.borrow_mut();
            d.peers.remove(&peer);
            d.early_frames.retain(|(p, _)| *p != peer);
            if let Some(engine) = d.engine.as_mut() {
                engine.handle_peer_left(peer, now_ms());
            }
        }
        pump(&self.driver);
        Ok(())
    }

    /// A binary frame received from peer `id`.
    pub fn receive(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number")] id: JsValue,
        frame: &[u8],
    ) -> Result<(), JsValue> {
        let peer = peer_id(&id)?;
        {
            let mut d = self.driver.borrow_mut();
            if !d.peers.contains_key(&peer) {
                return Ok(());
            }
            match d.engine.as_mut() {
                Some(engine) => engine.handle_frame(peer, frame, now_ms()),
                None => d.early_frames.push((peer, frame.to_vec())),
            }
        }
        pump(&self.driver);
        Ok(())
    }

    /// Opens the store, resumes from what it holds and syncs. Settles with the final progress
    /// when the root is complete, or rejects on a fatal error (`code`: ROOT_MISMATCH,
    /// INVALID_STATE, STORE_*). A cancelled sync resolves with phase `cancelled`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Progress>")]
    pub fn start(&self) -> Promise {
        let driver = self.driver.clone();
        future_to_promise(async move {
            let options = {
                let mut d = driver.borrow_mut();
                if d.started {
                    return Err(error("ALREADY_STARTED", "start() was already called"));
                }
                d.started = true;
                d.options.clone()
            };
            let store = open_store(&options).await?;
            let record = store.load_progress().await.map_err(|f| store_error(&f))?;
            let (root, config) = {
                let d = driver.borrow();
                (d.root, d.config.clone())
            };
            if let Some(record) = record {
                if record.root != root && opt_bool(&options, "switchRoot") != Some(true) {
                    return Err(error(
                        "ROOT_MISMATCH",
                        &format!("the database holds a sync towards {}; pass switchRoot to sync it towards {root} instead", record.root),
                    ));
                }
            }
            let done = Promise::new(&mut |resolve, reject| {
                driver.borrow_mut().settle = Some((resolve, reject));
            });
            {
                let mut d = driver.borrow_mut();
                let now = now_ms();
                let mut engine = Engine::new(root, config, record, now);
                let peers: Vec<PeerId> = d.peers.keys().copied().collect();
                for peer in peers {
                    engine.handle_peer_joined(peer, now);
                }
                for (peer, frame) in std::mem::take(&mut d.early_frames) {
                    engine.handle_frame(peer, &frame, now);
                }
                d.engine = Some(engine);
                d.store = Some(Rc::new(store));
            }
            pump(&driver);
            JsFuture::from(done).await
        })
    }

    /// Stops sending requests (answers in flight are still taken).
    pub fn pause(&self) {
        self.with_engine(|e| e.pause(now_ms()));
    }

    /// Resumes after `pause()` or a store failure (the failed write is retried).
    pub fn resume(&self) {
        self.with_engine(|e| e.resume(now_ms()));
    }

    /// Syncs towards another root, keeping everything stored.
    #[wasm_bindgen(js_name = switchRoot)]
    pub fn switch_root(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Hash")] root: &str,
    ) -> Result<(), JsValue> {
        let root = parse_root(root)?;
        self.driver.borrow_mut().root = root;
        self.with_engine(|e| e.switch_root(root, now_ms()));
        Ok(())
    }

    /// Flushes what is complete and stops; `start()` then resolves with phase `cancelled`.
    pub fn cancel(&self) {
        self.driver.borrow_mut().cancelling = true;
        self.with_engine(|e| e.cancel(now_ms()));
    }

    /// The latest progress report, or `undefined` before `start()` opened the store.
    #[wasm_bindgen(unchecked_return_type = "Progress | undefined")]
    pub fn progress(&self) -> JsValue {
        let d = self.driver.borrow();
        d.engine
            .as_ref()
            .map(|e| to_js(&e.progress()))
            .or_else(|| d.last_progress.as_ref().map(to_js))
            .unwrap_or(JsValue::UNDEFINED)
    }

    fn with_engine(&self, f: impl FnOnce(&mut Engine)) {
        if let Some(engine) = self.driver.borrow_mut().engine.as_mut() {
            f(engine);
        }
        pump(&self.driver);
    }
}

/// Drains the engine's outputs, then makes the JavaScript calls they ask for.
fn pump(driver: &Rc<RefCell<Driver>>) {
    let actions = {
        let mut guard = driver.borrow_mut();
        let d = &mut *guard;
        let Some(engine) = d.engine.as_mut() else {
            return;
        };
        if d.cancelling && !engine.is_finished() {
            engine.cancel(now_ms());
        }
        let mut actions = Vec::new();
        while let Some(transmit) = engine.poll_transmit() {
            match transmit {
                Transmit::Frame { peer, frame } => {
                    if let Some(handle) = d.peers.get(&peer) {
                        actions.push(Action::Send(handle.send.clone(), js::bytes(&frame)));
                    }
                }
                Transmit::Disconnect { peer, reason } => {
                    if let Some(handle) = d.peers.remove(&peer) {
                        actions.push(Action::Close(handle.close, describe(&reason)));
                    }
                }
            }
        }
        while let Some(op) = engine.poll_store_op() {
            d.store_queue.push_back(op);
        }
        let mut events = Vec::new();
        while let Some(event) = engine.poll_event() {
            events.push(event);
        }
        let next = engine.poll_timeout();
        for event in events {
            if let Some(settle) = settlement(&event, engine, &mut d.settle) {
                actions.push(settle);
            }
            if let Event::Progress(p) | Event::Finished(p) = &event {
                d.last_progress = Some(p.clone());
            }
            actions.push(Action::Event(event_to_js(&event)));
        }
        schedule_timer(d, next, Rc::downgrade(driver));
        actions
    };
    let on_event = driver.borrow().on_event.clone();
    for action in actions {
        match action {
            Action::Send(send, frame) => {
                let _ = send.call1(&JsValue::NULL, &frame);
            }
            Action::Close(close, reason) => {
                if let Some(close) = close {
                    let _ = close.call1(&JsValue::NULL, &reason.into());
                }
            }
            Action::Event(event) => {
                if let Some(f) = &on_event {
                    let _ = f.call1(&JsValue::NULL, &event);
                }
            }
            Action::Settle(f, value) => {
                let _ = f.call1(&JsValue::NULL, &value);
            }
        }
    }
    run_store(driver);
}

/// The promise settlement an event calls for, if any.
fn settlement(
    event: &Event,
    engine: &Engine,
    settle: &mut Option<(Function, Function)>,
) -> Option<Action> {
    let value = match event {
        Event::Finished(p) => Ok(to_js(p)),
        Event::Cancelled => Ok(to_js(&engine.progress())),
        Event::Failed(err) => Err(failure_error(err)),
        _ => return None,
    };
    let (resolve, reject) = settle.take()?;
    Some(match value {
        Ok(v) => Action::Settle(resolve, v),
        Err(e) => Action::Settle(reject, e),
    })
}

/// The error a failed sync rejects with: `code`, and for a stall `first` (the first item no
/// peer could serve) and `unservable`.
fn failure_error(err: &EngineError) -> JsValue {
    let value = error(failure_code(err), &err.to_string());
    if let EngineError::Stalled {
        first, unservable, ..
    } = err
    {
        let first = first.map_or(JsValue::UNDEFINED, |h| h.to_string().into());
        let _ = js_sys::Reflect::set(&value, &"first".into(), &first);
        let _ = js_sys::Reflect::set(&value, &"unservable".into(), &(*unservable as f64).into());
    }
    value
}

/// The `code` a failed sync rejects with.
fn failure_code(err: &EngineError) -> &'static str {
    match err {
        EngineError::Stalled { .. } => "STALLED",
        _ => "INVALID_STATE",
    }
}

/// Starts the next store operation if none is running.
fn run_store(driver: &Rc<RefCell<Driver>>) {
    let (op, store) = {
        let mut d = driver.borrow_mut();
        if d.store_busy {
            return;
        }
        let Some(store) = d.store.clone() else { return };
        let Some(op) = d.store_queue.pop_front() else {
            return;
        };
        d.store_busy = true;
        (op, store)
    };
    let driver = driver.clone();
    spawn_local(async move {
        let result = match &op.action {
            StoreAction::Lookup(keys) => store.lookup(keys).await.map(StoreResult::Lookup),
            StoreAction::Commit { batch, progress } => store
                .commit(batch, progress)
                .await
                .map(|()| StoreResult::Committed),
            StoreAction::LoadStaged => store.load_staged().await.map(StoreResult::Staged),
        };
        let result = result.unwrap_or_else(StoreResult::Failed);
        // Done with the op: a written batch the driver no longer holds goes back to the engine,
        // which reuses its buffers for the next blobs.
        let id = op.id;
        drop(op);
        {
            let mut d = driver.borrow_mut();
            d.store_busy = false;
            if let Some(engine) = d.engine.as_mut() {
                engine.handle_store_result(id, result, now_ms());
            }
        }
        pump(&driver);
    });
}

/// Keeps one `setTimeout` armed for the engine's next deadline.
fn schedule_timer(d: &mut Driver, next: Option<u64>, weak: Weak<RefCell<Driver>>) {
    if d.timer.as_ref().map(|(at, _)| *at) == next {
        return;
    }
    if let Some((_, handle)) = d.timer.take() {
        js::clear_timeout(&handle);
    }
    let Some(at) = next else { return };
    if d.timer_callback.is_none() {
        let callback = Closure::<dyn FnMut()>::new(move || {
            let Some(driver) = weak.upgrade() else { return };
            {
                let mut d = driver.borrow_mut();
                d.timer = None;
                if let Some(engine) = d.engine.as_mut() {
                    engine.handle_timeout(now_ms());
                }
            }
            pump(&driver);
        });
        d.timer_callback = Some(callback);
    }
    let delay = at.saturating_sub(now_ms());
    if let Some(callback) = &d.timer_callback {
        if let Some(handle) = js::set_timeout(callback.as_ref().unchecked_ref(), delay) {
            d.timer = Some((at, handle));
        }
    }
}

fn describe(reason: &DisconnectReason) -> String {
    match reason {
        DisconnectReason::Misbehaving { penalty, last } => {
            format!("misbehaving (penalty {penalty}): {last}")
        }
        DisconnectReason::Stalling => "stalling: repeated timeouts on minimal requests".into(),
        DisconnectReason::IncompatibleVersion { version } => {
            format!("incompatible protocol version {version}")
        }
        DisconnectReason::NoStatus { waited_ms } => format!(
            "sent no valid Status within {:.1} s of connecting (not a statesync peer?)",
            *waited_ms as f64 / 1000.0
        ),
    }
}

/// `{ type, ... }` objects for `onEvent`.
fn event_to_js(event: &Event) -> JsValue {
    #[derive(serde::Serialize)]
    #[serde(tag = "type", rename_all = "camelCase")]
    enum Out<'a> {
        Progress(&'a Progress),
        Finished(&'a Progress),
        #[serde(rename_all = "camelCase")]
        Stalled {
            unservable: usize,
            first: Option<String>,
            peers: usize,
        },
        #[serde(rename_all = "camelCase")]
        PeerDisconnected {
            peer: u64,
            reason: String,
        },
        #[serde(rename_all = "camelCase")]
        RootSwitched {
            from: String,
            to: String,
        },
        #[serde(rename_all = "camelCase")]
        Paused {
            reason: String,
            message: String,
        },
        Cancelled,
        #[serde(rename_all = "camelCase")]
        Failed {
            code: &'static str,
            message: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            first: Option<String>,
        },
    }
    let out = match event {
        Event::Progress(p) => Out::Progress(p),
        Event::Finished(p) => Out::Finished(p),
        Event::Stalled {
            unservable,
            first,
            peers,
        } => Out::Stalled {
            unservable: *unservable,
            first: first.map(|h| h.to_string()),
            peers: *peers,
        },
        Event::PeerDisconnected { peer, reason } => Out::PeerDisconnected {
            peer: *peer,
            reason: describe(reason),
        },
        Event::RootSwitched { from, to } => Out::RootSwitched {
            from: from.to_string(),
            to: to.to_string(),
        },
        Event::Paused(f) => Out::Paused {
            reason: format!("{:?}", f.kind),
            message: f.message.clone(),
        },
        Event::Cancelled => Out::Cancelled,
        Event::Failed(err) => Out::Failed {
            code: failure_code(err),
            message: err.to_string(),
            first: match err {
                EngineError::Stalled { first, .. } => first.map(|h| h.to_string()),
                _ => None,
            },
        },
    };
    to_js(&out)
}
