//! statesync-wasm: the statesync engine for JavaScript, in browsers and Node.js.
//!
//! - [`StateSync`](sync::StateSync): runs a sync. JavaScript moves frames between peers
//!   and the engine; the engine decides what to request, verifies every byte and persists
//!   it through a store: IndexedDB by default, or any object implementing the store interface
//!   (the Node.js tool's LevelDB), or memory.
//! - [`StateSource`](source::StateSource) and `answerFrom`: serving state to peers.
//! - `verifyStore`, `readProgress`: checking and inspecting a stored sync.
//!
//! Bytes cross the boundary as `Uint8Array`, reports as plain objects.
#![forbid(unsafe_code)]

mod js;
pub mod source;
pub mod store;
pub mod sync;
mod types;
pub mod verify;

pub use statesync_core;

/// The crate version, for diagnostics.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
