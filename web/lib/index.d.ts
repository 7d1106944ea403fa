// The types of `statesync`, for both builds (web/lib/browser.mjs and web/lib/node.mjs export
// the same names). The engine's own shapes (Progress, SyncEvent, JsStore, …) are generated
// by wasm-bindgen from wasm/src/types.rs into web/pkg/statesync_wasm.d.ts and re-exported.
// tests/package/typed-consumer.ts is compiled against this file by `tsc --noEmit`.

import type {
  Hash,
  JsStore,
  Progress,
  ProgressRecord,
  StateSyncErrorCode,
  SyncEvent,
  SyncOptions,
  VerifyResult,
} from '../pkg/statesync_wasm.js';

export type {
  ClosePeer,
  FlatLookup,
  Hash,
  JsStore,
  PeerProgress,
  Phase,
  Progress,
  ProgressRecord,
  SendFrame,
  StoreFailureKind,
  StoreOptions,
  SyncEvent,
  SyncEventType,
  SyncOptions,
  VerifyOptions,
  VerifyResult,
} from '../pkg/statesync_wasm.js';

/** The low-level engine, for hosts with their own transport or store: `await init()` first. */
export { StateSync, StateSource, answerFrom, encodeStatus, requestedKeys, verifyStore, version } from '../pkg/statesync_wasm.js';

/** Every `code` an error of this package carries. */
export type ErrorCode =
  | StateSyncErrorCode
  /** `signal` aborted the call; the sync flushed what was complete first (`name` is AbortError). */
  | 'ABORTED'
  /** No peer connected for `connectTimeoutMs` (at the start, or after losing all). */
  | 'UNREACHABLE'
  /** Browser: another tab syncs this database towards another root. */
  | 'DATABASE_BUSY'
  /** Node.js: another process has the LevelDB database open. */
  | 'LOCKED'
  /** verifyState / readProgress: no database at `db`. */
  | 'NOT_FOUND'
  /** Node.js, opening a LevelDB database (`advice` says what to do): a file in the way, no
   * access, a read-only or full disk, out of file descriptors, a corrupt database. */
  | 'NOT_A_DIRECTORY'
  | 'PERMISSION'
  | 'READ_ONLY'
  | 'DISK_FULL'
  | 'TOO_MANY_FILES'
  | 'CORRUPT'
  | 'OPEN_FAILED'
  /** The WebAssembly build is missing (a repository checkout that was not built). */
  | 'NOT_BUILT'
  /** Node.js: the optional dependency classic-level is not installed. */
  | 'MISSING_DEPENDENCY'
  | 'WORKER_FAILED'
  | 'LOCK_FAILED'
  | 'FAILED';

/** The one error type: branch on `code`, never on the message. */
export declare class StateSyncError extends Error {
  constructor(code: ErrorCode, message: string, fields?: Record<string, unknown>, options?: { cause?: unknown });
  readonly code: ErrorCode;
  /** BAD_OPTION: the option's name and what it must be. */
  readonly option?: string;
  readonly expected?: string;
  /** Once a sync started: items and bytes the store holds now (a rerun resumes from there), whole subtries and staged. */
  readonly committed?: number;
  readonly committedBytes?: number;
  readonly staged?: number;
  readonly stagedBytes?: number;
  /** STALLED: the first item no peer could serve, and how many could not be served. */
  readonly first?: Hash;
  readonly unservable?: number;
  /** Items this call fetched and verified. */
  readonly processed?: number;
  /** The last progress report. */
  readonly progress?: Progress | null;
  /** UNREACHABLE, STORE_*: what went wrong, without the stored figures. */
  readonly reason?: string;
  /** Node.js storage failures (opening a database): the one thing to do about it. */
  readonly advice?: string;
  /** STORE_*: the store's own diagnosis of the failure, when it keeps one (the LevelDB store
   * does: DISK_FULL, PERMISSION, READ_ONLY, CORRUPT, …), with what to do about it. */
  readonly failure?: { code: ErrorCode; reason: string; advice: string };
  /** ROOT_MISMATCH: the sync the store holds. */
  readonly storedRoot?: Hash;
  readonly storedItems?: number;
  readonly storedComplete?: boolean;
  /** DATABASE_BUSY: the database and the root another tab is syncing it towards. */
  readonly database?: string;
  readonly runningRoot?: Hash;
}

/** Where the state is kept: one of `db` (Node.js), `database` (browser), `store`, `memory`. */
export interface StorageOptions {
  /** Node.js: a LevelDB directory (created by syncState when missing). */
  db?: string;
  /**
   * Browser: a database name (default `"statesync"`), kept in the Origin Private File System
   * where the browser has it (OPFS sync access handles, in the package's Worker), else IndexedDB.
   */
  database?: string;
  /**
   * Browser: how `database` is kept. Default: where a sync of it already is, else `"opfs"`
   * where supported, else `"indexeddb"`. `"opfs"` where it is not supported: `BAD_OPTION`.
   */
  storage?: 'opfs' | 'indexeddb';
  /** Browser: the OPFS store's own memory (index entries and its page cache), bytes; default 32 MiB. */
  opfsMemoryBytes?: number;
  /** Any store implementing the JsStore interface (runs on the calling thread). */
  store?: JsStore;
  /** This call's memory only (tests). */
  memory?: boolean;
  /** Browser: run in a dedicated Worker (default `true`). */
  worker?: boolean;
}

/** A WebSocket class (`ws` in Node.js 20; browsers and Node.js 22 have a global one). */
export type WebSocketConstructor = new (url: string) => object;

/** The engine's own options, checked by the engine (`BAD_OPTION` when out of range). */
export type EngineOptions = Pick<SyncOptions, 'switchRoot' | 'batchBytes' | 'batchItems' | 'batchIntervalMs' | 'stallTimeoutMs' | 'maxInFlight' | 'maxItemsPerRequest' | 'progressIntervalMs' | 'maxPending' | 'maxFetchesPerDepth'>;

export interface SyncStateOptions extends StorageOptions, EngineOptions {
  /** The trusted state root: `0x` and 64 hex digits. */
  root: Hash;
  /** Peers serving the state: `ws://` or `wss://` URLs. */
  peers: string[];
  /** Every progress report (`progress` and the final `finished`), whole. */
  onProgress?: (progress: ProgressReport) => void;
  /** Every event, progress included. */
  onEvent?: (event: SyncStateEvent) => void;
  /** Aborting flushes what is complete, then rejects with `ABORTED`; calling again resumes. */
  signal?: AbortSignal;
  /** No peer connected for this long: `UNREACHABLE` (default 10 000; 0 waits forever). */
  connectTimeoutMs?: number;
  /** Failed store writes retried, 1, 2, 4 … s apart, before `STORE_*` (default 3). */
  storeRetries?: number;
  /** The WebSocket class (Node.js default: `ws`). */
  WebSocket?: WebSocketConstructor;
}

/** A progress report as `onProgress` receives it. */
export type ProgressReport = Extract<SyncEvent, { type: 'progress' | 'finished' }>;

/** Everything `onEvent` receives, told apart by `type`. */
export type SyncStateEvent =
  | Exclude<SyncEvent, { type: 'peerDisconnected' }>
  /** The engine dropped a peer (misbehaving, stalling); the transport reconnects it later. */
  | { type: 'peerDisconnected'; peer: number; url: string | undefined; reason: string }
  /** The engine starts: what the store held. */
  | {
      type: 'start';
      root: Hash;
      resumed: boolean;
      storedRoot: Hash | null;
      /** Stored = committed (whole subtries) + staged (verified, subtries unfinished). */
      storedItems: number;
      committedItems: number;
      stagedItems: number;
      storedBytes: number;
      complete: boolean;
      peers: number;
      /** What keeps the state: `opfs` or `indexeddb` (browser), `leveldb`, `store`, `memory`. */
      storage: 'opfs' | 'indexeddb' | 'leveldb' | 'store' | 'memory' | null;
    }
  /** A connection opened, was lost, or waits to reconnect. `id` is the engine's peer id. */
  | { type: 'peer'; id: number; url: string; state: 'open' | 'lost' | 'waiting'; error?: string; retryInMs?: number }
  | { type: 'warning'; code: 'OTHER_HEAD'; message: string; peer: number; url: string | undefined; headRoot: Hash }
  /** Browser: another tab syncs this database towards this root; its events follow. */
  | { type: 'following'; root: Hash; database: string }
  /** Browser: the tab that was syncing went away; this one continues. */
  | { type: 'takeover'; root: Hash; database: string };

/** What syncState resolves with once the whole state is stored. */
export interface SyncSummary {
  root: Hash;
  /** Items fetched and verified by this call. */
  processed: number;
  /** Verified items of an earlier session taken back from the staging area. */
  restored: number;
  /** Items and bytes in the store, all sessions. */
  committed: number;
  committedBytes: number;
  /** Subtries found already stored and skipped. */
  skipped: number;
  duplicate: number;
  unexpected: number;
  bytesReceived: number;
  elapsedMs: number;
  /** The store held part of this sync (or another root's) before. */
  resumed: boolean;
  /** The final progress report, whole. */
  progress: Progress;
  /** Browser: another tab did the sync; this one followed it. */
  followed?: boolean;
}

export interface VerifyStateOptions extends StorageOptions {
  /** The root to walk (default: the stored sync's root). */
  root?: Hash;
}

/** What verifyState counted. */
export interface VerifyReport extends VerifyResult {
  root: Hash;
  /** Node and code bytes. */
  bytes: number;
  elapsedMs: number;
  /** The stored progress record, if any. */
  record: ProgressRecord | null;
}

/**
 * Downloads every trie node and contract code under `root` from `peers`, verifies each against
 * its hash and stores it; resolves when the whole state is stored. Resumes what the store holds.
 */
export declare function syncState(options: SyncStateOptions): Promise<SyncSummary>;

/** Walks the stored state from its root, hashing every node; rejects with `INCOMPLETE` at a gap. */
export declare function verifyState(options?: VerifyStateOptions): Promise<VerifyReport>;

/** The stored sync's progress record, or `null`. */
export declare function readProgress(options?: StorageOptions): Promise<ProgressRecord | null>;

/**
 * Deletes the stored state of a database: in a browser its OPFS store and its IndexedDB
 * database (`STORE_BLOCKED` while another tab uses it); in Node.js the LevelDB directory `db`.
 */
export declare function deleteState(options?: { db?: string; database?: string }): Promise<void>;

/** A JsStore over OPFS, for a host's own dedicated Worker (browser build). */
export interface OpfsStore extends JsStore {
  close(): Promise<void>;
}

/**
 * Browser build, in a dedicated Worker only: opens (creating unless `create` is false, then
 * `null` when missing) the OPFS store `name`. Rejects with an error whose `code` is `BLOCKED`
 * when another context has it open, `OPFS_UNSUPPORTED` outside a dedicated Worker.
 */
export declare function openOpfsStore(name: string, options?: { memoryBytes?: number; create?: boolean }): Promise<OpfsStore | null>;
/** Browser build: deletes the OPFS store `name` (`BLOCKED` while open). */
export declare function deleteOpfsStore(name: string): Promise<void>;
/** Browser build: whether this context can open an OPFS store. */
export declare function opfsSupported(): boolean;
export declare const OPFS_DEFAULTS: { readonly memoryBytes: number };

/** Loads the WebAssembly module on this thread (for the low-level classes). */
export declare function init(): Promise<unknown>;

/** Defaults of the options syncState adds to the engine's. */
export declare const SYNC_DEFAULTS: {
  readonly connectTimeoutMs: number;
  readonly storeRetries: number;
  readonly storeRetryMs: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
};
