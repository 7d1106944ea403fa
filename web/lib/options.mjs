// Checks the options of syncState / verifyState / readProgress: every option is a row of a
// table (what it must be and a check), an option nobody knows is refused by name, and a wrong
// value is a BAD_OPTION error naming the option and what was expected, never ignored. The
// engine's numeric options (batchBytes, maxInFlight, ...) are checked by the engine itself
// (wasm/src/sync.rs, ENGINE_OPTIONS) when the sync is created, with the same error.

import { StateSyncError, badOption } from './errors.mjs';

/** Where a call runs: `node` or `browser`. Some options only mean something in one. */
export const NODE = 'node';
export const BROWSER = 'browser';

const ROOT = /^(0x)?([0-9a-fA-F]{64})$/;

const isFunction = (v) => typeof v === 'function';
const isBoolean = (v) => typeof v === 'boolean';
const isName = (v) => typeof v === 'string' && v.length > 0;
const isMillis = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isSignal = (v) => typeof AbortSignal !== 'undefined' && v instanceof AbortSignal;
const isStore = (v) => v !== null && typeof v === 'object' && ['has', 'get', 'write', 'scan', 'readProgress'].every((m) => typeof v[m] === 'function');
const integerFrom = (min, max) => (v) => Number.isInteger(v) && v >= min && v <= max;

function isPeerUrl(v) {
  if (typeof v !== 'string') return false;
  try {
    const url = new URL(v);
    return url.protocol === 'ws:' || url.protocol === 'wss:';
  } catch {
    return false;
  }
}

/** Options the engine checks itself: passed to `new StateSync` unchanged. */
export const ENGINE_OPTIONS = Object.freeze(['switchRoot', 'batchBytes', 'batchItems', 'batchIntervalMs', 'stallTimeoutMs', 'maxInFlight', 'maxItemsPerRequest', 'progressIntervalMs', 'maxPending', 'maxFetchesPerDepth']);

/** A browser database lives in the Origin Private File System or in IndexedDB. */
export const STORAGE_KINDS = Object.freeze(['opfs', 'indexeddb']);
const MIN_OPFS_MEMORY = 2 ** 20;

/**
 * Where the state is stored: one of these (the browser defaults to the database "statesync",
 * in OPFS where the browser has it, else IndexedDB; Node.js needs `db`, `store` or `memory`).
 * `storage` and `opfsMemoryBytes` say how a browser `database` is kept.
 */
const STORAGE = {
  db: { expected: 'a LevelDB directory path (a non-empty string)', valid: isName, only: NODE, instead: 'database names an IndexedDB database in browsers' },
  database: { expected: 'an IndexedDB database name (a non-empty string)', valid: isName, only: BROWSER, instead: 'db is a LevelDB directory in Node.js' },
  store: { expected: 'an object with has, get, write, scan and readProgress methods (the JsStore interface)', valid: isStore },
  memory: { expected: 'a boolean', valid: isBoolean },
  worker: { expected: 'a boolean (false runs the engine on this thread)', valid: isBoolean, only: BROWSER, instead: 'Node.js runs the engine on the calling thread' },
  storage: { expected: '"opfs" or "indexeddb"', valid: (v) => STORAGE_KINDS.includes(v), only: BROWSER, instead: 'Node.js stores in LevelDB (db)' },
  opfsMemoryBytes: { expected: `an integer from ${MIN_OPFS_MEMORY} to ${2 ** 30} (bytes)`, valid: integerFrom(MIN_OPFS_MEMORY, 2 ** 30), only: BROWSER, instead: 'it sizes the browser OPFS store' },
};

/** syncState's options. Add a row to add an option. */
export const SYNC_OPTIONS = {
  root: { expected: '0x and 64 hex digits (a 32-byte state root)', valid: (v) => typeof v === 'string' && ROOT.test(v.trim()), required: true, code: 'BAD_ROOT' },
  peers: { expected: 'a non-empty array of ws:// or wss:// URLs', valid: (v) => Array.isArray(v) && v.length > 0 && v.every(isPeerUrl), required: true },
  ...STORAGE,
  onProgress: { expected: 'a function', valid: isFunction },
  onEvent: { expected: 'a function', valid: isFunction },
  signal: { expected: 'an AbortSignal', valid: isSignal },
  connectTimeoutMs: { expected: 'milliseconds, 0 or more (0 waits for peers forever)', valid: isMillis },
  storeRetries: { expected: 'an integer from 0 to 100', valid: integerFrom(0, 100) },
  WebSocket: { expected: 'a WebSocket constructor', valid: isFunction },
  ...Object.fromEntries(ENGINE_OPTIONS.map((name) => [name, { engine: true }])),
};

/** verifyState's and readProgress's options. */
export const VERIFY_OPTIONS = {
  root: { ...SYNC_OPTIONS.root, required: false },
  ...STORAGE,
};

export const READ_OPTIONS = { ...STORAGE };

/** deleteState's options: which database. */
export const DELETE_OPTIONS = { db: STORAGE.db, database: STORAGE.database };

/**
 * Checks `options` against `table` for `env`. Resolves the store choice (`place`: which
 * of db / database / store / memory) and normalises the root to 0x + lowercase hex.
 * @returns {Record<string, any> & {place: 'db' | 'database' | 'store' | 'memory'}}
 */
export function checkOptions(options, table, env) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new StateSyncError('BAD_OPTION', `options must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}`, { option: '', expected: 'an object' });
  }
  const known = Object.keys(table);
  for (const [name, value] of Object.entries(options)) {
    const rule = table[name];
    if (!rule) {
      throw new StateSyncError('BAD_OPTION', `options.${name} is not an option here (known: ${known.join(', ')})`, { option: name, expected: `one of ${known.join(', ')}` });
    }
    if (value === undefined || rule.engine) continue;
    if (rule.only && rule.only !== env) {
      throw new StateSyncError('BAD_OPTION', `options.${name} has no meaning in ${env === NODE ? 'Node.js' : 'a browser'}: ${rule.instead}`, { option: name, expected: `not given in ${env === NODE ? 'Node.js' : 'a browser'}` });
    }
    if (!rule.valid(value)) {
      const err = badOption(name, rule.expected, value);
      if (rule.code) err.code = rule.code;
      throw err;
    }
  }
  for (const [name, rule] of Object.entries(table)) {
    if (rule.required && options[name] === undefined) throw badOption(name, rule.expected, undefined);
  }
  const chosen = ['db', 'database', 'store', 'memory'].filter((k) => k in table && options[k] !== undefined && options[k] !== false);
  if (chosen.length > 1) {
    throw new StateSyncError('BAD_OPTION', `options.${chosen[1]} cannot go with options.${chosen[0]}: give one place to store the state`, { option: chosen[1], expected: `not given with ${chosen[0]}` });
  }
  let place = chosen[0];
  if (!place) {
    if (env === NODE) throw badOption('db', 'a LevelDB directory path (or give store or memory)', undefined);
    place = 'database';
  }
  for (const name of ['storage', 'opfsMemoryBytes']) {
    if (place !== 'database' && options[name] !== undefined) {
      throw new StateSyncError('BAD_OPTION', `options.${name} cannot go with options.${place}: it says how a browser database is kept`, { option: name, expected: `not given with ${place}` });
    }
  }
  const checked = { ...options, place };
  if (typeof options.root === 'string') checked.root = `0x${ROOT.exec(options.root.trim())[2].toLowerCase()}`;
  if (place === 'database') checked.database = options.database ?? 'statesync';
  return checked;
}

/** The engine's own options, as `new StateSync` takes them. */
export function engineOptions(options) {
  const out = {};
  for (const name of ENGINE_OPTIONS) if (options[name] !== undefined) out[name] = options[name];
  return out;
}
