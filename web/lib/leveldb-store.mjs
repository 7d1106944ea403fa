// LevelDB storage for the Node.js tool (classic-level), in geth's hash scheme: a trie node
// under its 32-byte hash, code under "c" || hash, the progress record under its own key, all
// in one keyspace (DESIGN.md, "Store layout"). Verified nodes whose subtries are not complete
// yet live apart under "statesync-staged-" || hash (49-byte keys, never a geth key) until the
// batch that stores them completes them.
//
//   const store = await openLevelStore('./statesync-data');
//   new StateSync({ root, store, ... });   // the JS store interface of wasm/src/store/js.rs
//   await store.close();
//
// `levelSource(store, root)` turns the same database into something web/cli/peer-server.mjs can
// serve, so any synced node can serve others.

import { ClassicLevel } from 'classic-level';

import { storeSource } from './serve.mjs';

/** An error with a `code` the CLI maps to an exit code. */
export class StoreOpenError extends Error {
  constructor(code, message, cause) {
    super(message, { cause });
    this.code = code;
  }
}

/**
 * Opens (creating unless `createIfMissing` is false) the LevelDB database in `dir`.
 * Rejects with `StoreOpenError` code `LOCKED` when another process holds it, `NOT_FOUND`
 * when it does not exist and may not be created, `OPEN_FAILED` otherwise.
 */
export async function openLevelStore(dir, { createIfMissing = true } = {}) {
  const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open({ createIfMissing, errorIfExists: false });
  } catch (err) {
    const cause = err.cause ?? err;
    if (cause.code === 'LEVEL_LOCKED' || /lock/i.test(cause.message ?? '')) {
      throw new StoreOpenError('LOCKED', `the database ${dir} is locked by another process (a sync or a server using it); stop that process or use another --db`, err);
    }
    if (!createIfMissing && /does not exist|not found|No such file/i.test(`${cause.message}`)) {
      throw new StoreOpenError('NOT_FOUND', `no database at ${dir}`, err);
    }
    throw new StoreOpenError('OPEN_FAILED', `cannot open the database ${dir}: ${cause.message ?? err.message}`, err);
  }
  return new LevelStore(db, dir);
}

/** The JS store interface over one open database. Every method is safe to call after close. */
export class LevelStore {
  constructor(db, dir) {
    this.db = db;
    this.dir = dir;
    /** Commit batches written by this process, and their payload bytes. */
    this.writes = 0;
    this.writtenBytes = 0;
  }

  /** Whether each key is stored: one native multi-get (values are small; no iterator). */
  async has(keys) {
    const values = await this.db.getMany(keys).catch(classify);
    return values.map((v) => v !== undefined);
  }

  async get(keys) {
    const values = await this.db.getMany(keys).catch(classify);
    return values.map((v) => v ?? null);
  }

  /**
   * One atomic LevelDB write batch: every put and delete of a commit (main keyspace and
   * staging area) and the progress record it advances.
   */
  async write(puts, deletes, progressKey, progress) {
    const ops = new Array(puts.length + deletes.length + 1);
    let bytes = 0;
    let i = 0;
    for (const [key, value] of puts) {
      ops[i++] = { type: 'put', key, value };
      bytes += value.length;
    }
    for (const key of deletes) ops[i++] = { type: 'del', key };
    ops[i] = { type: 'put', key: progressKey, value: progress };
    await this.db.batch(ops).catch(classify);
    this.writes++;
    this.writtenBytes += bytes;
    this.largestBatch = Math.max(this.largestBatch ?? 0, ops.length - 1);
  }

  /** Every [key, value] whose key starts with `prefix` (the staging area on resume). */
  async scan(prefix) {
    const end = Uint8Array.from(prefix);
    end[end.length - 1]++; // the prefixes used here never end in 0xff
    const entries = [];
    try {
      for await (const entry of this.db.iterator({ gte: prefix, lt: end })) entries.push(entry);
    } catch (err) {
      classify(err);
    }
    return entries;
  }

  async readProgress(progressKey) {
    const value = await this.db.get(progressKey).catch(classify);
    return value ?? null;
  }

  async close() {
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close();
  }
}

/**
 * Gives a LevelDB error a `code` the engine classifies (wasm/src/store/mod.rs,
 * `failure_from_js`): a full disk pauses the sync like a browser's quota error.
 */
function classify(err) {
  if (/no space left|ENOSPC|disk full/i.test(err?.message ?? '')) {
    throw Object.assign(new Error(err.message, { cause: err }), { code: 'QuotaExceededError' });
  }
  if (err?.code === 'LEVEL_DATABASE_NOT_OPEN') {
    throw Object.assign(new Error(`database closed: ${err.message}`, { cause: err }), { code: 'CLOSED' });
  }
  throw err;
}

/**
 * A peer-server source over a LevelDB store (web/lib/serve.mjs: one multi-get per request,
 * then the core's `answerFrom` applies geth's limits).
 * @param {LevelStore} store
 * @param {string} root the root announced in the Status frame
 * @param {{encodeStatus: Function, requestedKeys: Function, answerFrom: Function}} wasm
 */
export function levelSource(store, root, wasm) {
  return storeSource(store, root, wasm);
}
