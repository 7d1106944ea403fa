//! Small bridges to the JavaScript host: clock, timers, byte arrays, errors.

use std::cell::Cell;

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;

thread_local! {
    static LAST_NOW: Cell<u64> = const { Cell::new(0) };
}

/// Milliseconds from `performance.now()` (or `Date.now()`), never going backwards: the engine
/// takes time as an input and assumes it is monotonic.
pub fn now_ms() -> u64 {
    let global = js_sys::global();
    let performance = Reflect::get(&global, &"performance".into()).ok();
    let from_performance = performance.and_then(|p| {
        let now = Reflect::get(&p, &"now".into())
            .ok()?
            .dyn_into::<Function>()
            .ok()?;
        now.call0(&p).ok()?.as_f64()
    });
    let raw = from_performance.unwrap_or_else(js_sys::Date::now) as u64;
    LAST_NOW.with(|last| {
        let now = raw.max(last.get());
        last.set(now);
        now
    })
}

/// `performance.now()` with its fraction, for timing benchmarks.
pub fn now_precise() -> f64 {
    let global = js_sys::global();
    Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|p| {
            let now = Reflect::get(&p, &"now".into())
                .ok()?
                .dyn_into::<Function>()
                .ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}

/// `setTimeout(callback, delay)` on the global object (window, worker or Node).
pub fn set_timeout(callback: &Function, delay_ms: u64) -> Option<JsValue> {
    let global = js_sys::global();
    let set = Reflect::get(&global, &"setTimeout".into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    set.call2(&global, callback, &JsValue::from_f64(delay_ms as f64))
        .ok()
}

pub fn clear_timeout(handle: &JsValue) {
    let global = js_sys::global();
    if let Some(clear) = Reflect::get(&global, &"clearTimeout".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
    {
        let _ = clear.call1(&global, handle);
    }
}

pub fn bytes(data: &[u8]) -> Uint8Array {
    Uint8Array::from(data)
}

/// A JavaScript `Error` with a `code` property, so callers can branch on it.
pub fn error(code: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    let _ = Reflect::set(&err, &"code".into(), &code.into());
    err.into()
}

/// A plain object from a serializable value (maps as objects, u64 as numbers).
pub fn to_js<T: serde::Serialize>(value: &T) -> JsValue {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_large_number_types_as_bigints(false);
    value.serialize(&serializer).unwrap_or(JsValue::NULL)
}

pub fn opt_string(options: &JsValue, name: &str) -> Option<String> {
    Reflect::get(options, &name.into())
        .ok()
        .and_then(|v| v.as_string())
}

pub fn opt_bool(options: &JsValue, name: &str) -> Option<bool> {
    Reflect::get(options, &name.into())
        .ok()
        .and_then(|v| v.as_bool())
}

pub fn opt_value(options: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(options, &name.into())
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}
