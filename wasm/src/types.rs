//! The TypeScript shapes of everything that crosses the boundary as a plain object: options,
//! events, progress reports, verify results, the JS store interface and error codes.
//! Functions and classes name these through `unchecked_param_type` / `unchecked_return_type`,
//! so the emitted `.d.ts` has no `any` for them. Keep this in step with the serde shapes in
//! `statesync_core` (`Progress`, `PeerProgress`, `ProgressRecord`, `WalkStats`) and with
//! `sync::event_to_js`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A 32-byte hash as `0x`-prefixed lowercase hex (inputs may omit the `0x`). */
export type Hash = string;

/** What the engine is doing. */
export type Phase = "syncing" | "stalled" | "paused" | "done" | "cancelled" | "failed";

/** Why a store write failed. `QuotaExceeded`: the browser refused more storage. */
export type StoreFailureKind = "QuotaExceeded" | "Closed" | "Blocked" | "Other";

/** The `code` of every error this package throws or rejects with. */
export type StateSyncErrorCode =
  | "BAD_ROOT"
  | "BAD_OPTION"
  | "BAD_PEER_ID"
  | "BAD_STORE"
  | "BAD_FRAME"
  | "UNKNOWN_MESSAGE"
  | "BAD_GENESIS"
  | "ALREADY_STARTED"
  | "ROOT_MISMATCH"
  | "INVALID_STATE"
  | "STALLED"
  | "INCOMPLETE"
  | "STORE_QUOTA"
  | "STORE_CLOSED"
  | "STORE_BLOCKED"
  | "STORE_ERROR";

/** An `Error` with a machine-readable `code`. `BAD_OPTION` also names the `option` and what was `expected`. */
export interface StateSyncError extends Error {
  code: StateSyncErrorCode;
  option?: string;
  expected?: string;
}

/** One peer's figures in a progress report. */
export interface PeerProgress {
  /** The id the host passed to `addPeer`. */
  peer: number;
  /** Measured round trip, milliseconds. */
  rttMs: number;
  /** Items the next request to this peer would ask for. */
  capacity: number;
  /** Requests outstanding. */
  inFlight: number;
  /** Items those requests ask for. */
  outstanding: number;
  /** Items it may have outstanding: twice its bandwidth-delay product (its delivery rate ×
   *  its shortest round trip), within `maxInFlight` full requests. */
  window: number;
  /** Useful items it delivered. */
  served: number;
  /** Timeouts and empty answers. */
  failures: number;
  /** Accumulated protocol penalty; the peer is dropped at the limit. */
  penalty: number;
  /** Root the peer announced in its Status, once it arrived. */
  headRoot: Hash | undefined;
}

/** A live progress report. Counters are per session unless noted. */
export interface Progress {
  root: Hash;
  phase: Phase;
  /** Completed share of the account keyspace, 0..1: never decreases, exactly 1 when done. */
  fraction: number;
  /** Estimated milliseconds left, once the rate is known. */
  etaMs: number | undefined;
  /** Items fetched from peers, verified and accepted in this session. */
  processed: number;
  /** Verified items read back from the staging area in this session instead of fetched again. */
  restored: number;
  /** Items in the main keyspace (complete subtries), all sessions. */
  committed: number;
  /** Their bytes. */
  committedBytes: number;
  /** Verified items in the staging area: durable, their subtries not complete yet. Stored = committed + staged. */
  staged: number;
  stagedBytes: number;
  /** Verified items and bytes not durable yet: what a crash now would lose. At most one batch. */
  unwrittenItems: number;
  unwrittenBytes: number;
  /** The most items held unwritten at once this session. */
  peakUnwrittenItems: number;
  /** The largest batch written this session: puts and deletes, and payload bytes. */
  largestBatchItems: number;
  largestBatchBytes: number;
  /** Requests known but not complete. */
  pending: number;
  /** Items delivered again after another copy was taken. */
  duplicate: number;
  /** Items nobody asked for (stale answers, other roots, garbage). */
  unexpected: number;
  /** Subtries found already stored (resume, root switch) and skipped. */
  skipped: number;
  /** Frame bytes received from peers. */
  bytesReceived: number;
  requestsInFlight: number;
  /** Items waiting to be asked of another peer. */
  retrying: number;
  /** Items no connected peer could serve. */
  unservable: number;
  /** The first of them, for messages that name one. */
  firstUnservable: Hash | undefined;
  /** Scheduler entries held in memory. */
  liveEntries: number;
  /** Items accepted per second, recently. */
  itemsPerSec: number;
  peers: PeerProgress[];
}

/** The record stored with every commit: what `readProgress` returns. */
export interface ProgressRecord {
  /** The root being synced towards. */
  root: Hash;
  /** Items in the main keyspace, written by all sessions so far. */
  committedItems: number;
  committedBytes: number;
  /** Verified items in the staging area (their subtries were not complete yet). */
  stagedItems: number;
  stagedBytes: number;
  /** Whether everything under `root` is stored. */
  complete: boolean;
}

/** What `verifyStore` counted in a complete state. */
export interface VerifyResult {
  accounts: number;
  /** Accounts with code. */
  contracts: number;
  /** Distinct non-empty storage tries. */
  storageTries: number;
  /** Values in storage tries. */
  values: number;
  /** Hashed nodes read (a node shared by two places counts twice). */
  nodes: number;
  nodeBytes: number;
  /** Distinct code blobs. */
  codes: number;
  codeBytes: number;
}

/**
 * A store implemented in JavaScript (the Node.js tool's LevelDB). Keys use geth's flat
 * layout: a node under its 32-byte hash, code under `"c" || codeHash`; verified nodes whose
 * subtries are not complete yet under `"statesync-staged-" || hash` (the staging area). A rejection's
 * `code` or `name` classifies it: `QuotaExceededError` / `QUOTA_EXCEEDED` as
 * `QuotaExceeded`, `InvalidStateError` / `CLOSED` / `LEVEL_DATABASE_NOT_OPEN` as `Closed`,
 * `VersionError` / `BLOCKED` / `LEVEL_LOCKED` as `Blocked`, anything else as `Other`.
 *
 * Lifetime: the keys and values the engine passes (to `has`, `get` and `write`) are views into
 * one buffer per call, valid only until the call returns or its promise settles; the engine may
 * reuse that memory afterwards. A store that keeps a key or value longer copies it
 * (`value.slice()`); a store that writes them out before settling (LevelDB's batch, an
 * IndexedDB put, which clones) needs nothing more. What the store returns is the engine's to copy.
 */
export interface JsStore {
  /** Whether each key is stored, in order. */
  has(keys: Uint8Array[]): Promise<boolean[]> | boolean[];
  /** Each key's value, in order; `null` or `undefined` when absent. */
  get(keys: Uint8Array[]): Promise<(Uint8Array | null | undefined)[]> | (Uint8Array | null | undefined)[];
  /** Atomic: every put, every delete and the progress record land together, or nothing does. */
  write(puts: [key: Uint8Array, value: Uint8Array][], deletes: Uint8Array[], progressKey: Uint8Array, progress: Uint8Array): Promise<void> | void;
  /** Every entry whose key starts with `prefix` (the staging area), read when a sync resumes. */
  scan(prefix: Uint8Array): Promise<[key: Uint8Array, value: Uint8Array][]> | [key: Uint8Array, value: Uint8Array][];
  /** The value stored under `progressKey` by `write`, if any. */
  readProgress(progressKey: Uint8Array): Promise<Uint8Array | null | undefined> | Uint8Array | null | undefined;
}

/** Where a sync persists. At most one of `store` and `memory`; otherwise IndexedDB. */
export interface StoreOptions {
  /** IndexedDB database name (default `"statesync"`). */
  database?: string;
  /** A JavaScript store; takes precedence over `database` and `memory`. */
  store?: JsStore;
  /** Keep everything in this instance's memory (tests, benchmarks). */
  memory?: boolean;
}

/** Options of `new StateSync(options)`. */
export interface SyncOptions extends StoreOptions {
  /** The trusted state root to sync. */
  root: Hash;
  /** When the store holds a sync towards another root, sync it towards `root` instead of rejecting with `ROOT_MISMATCH` (what is stored is kept). */
  switchRoot?: boolean;
  /** Payload bytes per commit batch at most (default 1 MiB, at most 1 GiB); also the most verified data held unwritten at once, which is what a crash can lose. */
  batchBytes?: number;
  /** Puts and deletes per commit batch at most (default 8192); verified items not yet durable never exceed it. */
  batchItems?: number;
  /** Verified items are written within this many milliseconds even when no batch fills up (default 2000). */
  batchIntervalMs?: number;
  /** Give up after this many milliseconds stalled without progress: everything verified is written, then `start()` rejects with `STALLED`. Default: wait for peers forever. */
  stallTimeoutMs?: number;
  /** Requests outstanding per peer at most (default 16, at most 64); within it the items out follow the peer's measured bandwidth-delay product. */
  maxInFlight?: number;
  /** Hashes per request at most (default 1024, the protocol's limit); each peer's requests
   *  are sized from its measured rate within it. */
  maxItemsPerRequest?: number;
  /** Milliseconds between progress events while syncing (default 500). */
  progressIntervalMs?: number;
  /** Entries the scheduler holds at most (default 98304, about 21 MB): the bound on its memory,
   *  whatever the state's size. A larger bound lets more of a large state be on its way at
   *  once: at 100–300 ms round trips 196608 syncs large states 1.3–1.6× faster (simulator),
   *  for about 21 MB more. */
  maxPending?: number;
  /** Scheduler entries fetched or waiting per trie depth at most (default: as `maxPending`). */
  maxFetchesPerDepth?: number;
  /** Receives every event. Called synchronously from the engine; may call back into it. */
  onEvent?: (event: SyncEvent) => void;
}

/** Options of `verifyStore`: which root in which store. */
export interface VerifyOptions extends StoreOptions {
  root: Hash;
}

/** Everything `onEvent` receives, told apart by `type`. */
export type SyncEvent =
  | ({ type: "progress" } & Progress)
  /** Every item under the root is stored and the final record is written. */
  | ({ type: "finished" } & Progress)
  /** Nothing can move: no connected peer can serve `unservable` items (the first is `first`), or no peer is usable. Told once per stall, after peers had time to connect. */
  | { type: "stalled"; unservable: number; first: Hash | undefined; peers: number }
  /** The engine dropped a peer (its `close` was called). */
  | { type: "peerDisconnected"; peer: number; reason: string }
  | { type: "rootSwitched"; from: Hash; to: Hash }
  /** A store write failed and nothing of it landed; `resume()` retries it. */
  | { type: "paused"; reason: StoreFailureKind; message: string }
  | { type: "cancelled" }
  /** The sync cannot finish, with everything verified written: `code` is `INVALID_STATE` (the root commits to data that is not a valid state) or `STALLED` (past `stallTimeoutMs`); `start()` rejects with it. */
  | { type: "failed"; code: "INVALID_STATE" | "STALLED"; message: string; first?: Hash };

/** The `type` of every event. */
export type SyncEventType = SyncEvent["type"];

/** Sends one binary frame to a peer. */
export type SendFrame = (frame: Uint8Array) => void;

/** Closes a peer's connection: the engine dropped it for `reason`. */
export type ClosePeer = (reason: string) => void;

/** Looks a flat key up for `answerFrom`. */
export type FlatLookup = (flatKey: Uint8Array) => Uint8Array | null | undefined;
"#;
