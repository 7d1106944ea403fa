//! statesync-core: Ethereum hash-based state sync as plain state machines.
//!
//! Given a trusted state root, the [`Scheduler`] says which trie nodes and code to fetch, takes
//! blobs back only after their keccak-256 matches, and releases them for storage bottom-up, so
//! that a crash at any point leaves only complete subtries behind. Around it: the trie node
//! codec ([`node`]), accounts ([`account`]), a trie and state builder for sources and oracles
//! ([`builder`], [`state`], [`synthetic`]) and a consistency walk ([`walk`]).
//!
//! The crate does no IO, reads no clock and spawns nothing. The host (the wasm driver, a test
//! or a benchmark) feeds it inputs and polls its outputs:
//!
//! ```text
//!   host                              core
//!   ────                              ────
//!   store lookups answered  ───▶  Scheduler::handle_lookup
//!   peer blob (keccak'd)    ───▶  Scheduler::process(HashedBlob)
//!   requests to peers      ◀───   Scheduler::missing
//!   lookups to run         ◀───   Scheduler::take_lookups
//!   atomic store write     ◀───   Scheduler::commit
//! ```
//!
//! Nothing a peer or a store sends can panic it: malformed input is a typed error.
#![forbid(unsafe_code)]
// Errors carry the full trie path of what failed, which makes them large (paths are inline);
// they are rare and end a sync, so their size costs nothing where it matters.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod builder;
pub mod engine;
pub mod filter;
pub mod hash;
pub mod hex;
pub mod nibbles;
pub mod node;
pub mod progress;
pub mod rate;
pub mod rlp_items;
pub mod rng;
pub mod scheduler;
pub mod serve;
pub mod state;
pub mod store;
pub mod synthetic;
pub mod walk;
pub mod wire;

pub use account::{Account, AccountError, Wei};
pub use builder::{KeyMode, TrieBuilder};
pub use engine::{
    Engine, EngineConfig, Event, PeerId, StoreAction, StoreOp, StoreResult, Transmit,
};
pub use hash::{keccak256, EMPTY_ROOT_HASH, H256, KECCAK_EMPTY};
pub use nibbles::Nibbles;
pub use node::{NodeError, TrieNode};
pub use progress::{Progress, ProgressRecord};
pub use scheduler::{
    BatchLimit, Cut, HashedBlob, HashedSlice, ProcessError, Scheduler, SchedulerConfig, SyncMode,
    Task,
};
pub use state::{BuiltState, GenesisAccount, StateBuilder};
pub use store::{CommitBatch, ItemKind, MemoryStore, StoreKey};
