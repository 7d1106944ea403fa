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

import fs from 'node:fs/promises';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';

import { storeSource } from './serve.mjs';

/**
 * A storage problem with a `code` the CLI maps to an exit code, and `advice`: the one thing
 * to do about it (the message already says what is wrong).
 */
export class StoreOpenError extends Error {
  constructor(code, message, cause, advice = '') {
    super(advice ? `${message}: ${advice}` : message, { cause });
    this.code = code;
    this.reason = message;
    this.advice = advice;
  }
}

/** Below this much free space a failed write is a full disk (LevelDB writes 2–4 MiB files). */
const LOW_SPACE_BYTES = 64 * 1024 * 1024;

/** What each errno of a file system call on the database means, and what to do about it. */
const ERRNO_FAILURES = {
  ENOENT: { code: 'NOT_FOUND', what: (dir) => `no database at ${dir}`, advice: "check the path ('sync' creates a database; 'verify' and 'serve' only open one)" },
  ENOTDIR: { code: 'NOT_A_DIRECTORY', what: (dir) => `${dir} is not a directory (a directory above it is a file)`, advice: 'pass the directory of a LevelDB database as --db' },
  EACCES: { code: 'PERMISSION', what: (dir, detail) => `permission denied on ${dir}${detail}`, advice: 'run as the user who owns it, or give this user read and write access (chown/chmod)' },
  EROFS: { code: 'READ_ONLY', what: (dir) => `${dir} is on a read-only file system`, advice: 'LevelDB writes a lock and a log even to read: copy the database to a writable disk' },
  ENOSPC: { code: 'DISK_FULL', what: (dir, detail) => `the disk holding ${dir} is full${detail}`, advice: 'free some space and run the same command again (everything written so far is kept)' },
  EMFILE: { code: 'TOO_MANY_FILES', what: () => 'this process has too many open files', advice: "raise the limit ('ulimit -n 4096') and run the same command again" },
};
ERRNO_FAILURES.EPERM = ERRNO_FAILURES.EACCES;
ERRNO_FAILURES.EDQUOT = ERRNO_FAILURES.ENOSPC;
ERRNO_FAILURES.ENFILE = ERRNO_FAILURES.EMFILE;

/** A StoreOpenError for `err`, a Node file system error with an errno `code`, or null. */
async function errnoFailure(err, dir) {
  const known = ERRNO_FAILURES[err?.code];
  if (!known) return null;
  let detail = '';
  if (known.code === 'PERMISSION') {
    const stat = await fs.stat(dir).catch(() => null);
    if (stat && typeof process.getuid === 'function') detail = ` (owned by uid ${stat.uid}; this process runs as uid ${process.getuid()})`;
  } else if (known.code === 'DISK_FULL') {
    const space = await freeSpace(dir);
    if (space !== null) detail = ` (${formatBytes(space)} free)`;
  }
  return new StoreOpenError(known.code, known.what(dir, detail), err, known.advice);
}

/** Bytes free for this user on the file system holding `dir` (or its nearest parent). */
async function freeSpace(dir) {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const stat = await fs.statfs(at).catch(() => null);
    if (stat) return stat.bavail * stat.bsize;
    if (at === path.dirname(at)) return null;
  }
}

const formatBytes = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(0)} kB` : `${n} B`);

/**
 * Why LevelDB failed with LEVEL_IO_ERROR. Its errors carry the errno only inside their text,
 * which is no interface; so ask the file system itself, by errno: can this process write the
 * directory, and is there space left on its disk. Null when neither explains it.
 */
async function diagnoseIoError(err, dir) {
  try {
    await fs.access(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (denied) {
    const failure = await errnoFailure(denied, dir);
    if (failure) return failure;
  }
  const free = await freeSpace(dir);
  if (free !== null && free < LOW_SPACE_BYTES) return errnoFailure(Object.assign(new Error('no space left', { cause: err }), { code: 'ENOSPC' }), dir);
  return null;
}

/**
 * Checks `dir` before LevelDB sees it, so that a mistyped path, a file or a directory that is
 * not a database is reported as such, and so that opening without `createIfMissing` never
 * creates anything: LevelDB writes LOCK and LOG into any directory it is pointed at, even
 * one it then refuses to open.
 */
async function checkDatabasePath(dir, createIfMissing) {
  let stat;
  try {
    stat = await fs.stat(dir);
  } catch (err) {
    // A missing directory is what 'sync' creates; anything else is a path that cannot work.
    if (err.code === 'ENOENT' && createIfMissing) return;
    throw (await errnoFailure(err, dir)) ?? new StoreOpenError('OPEN_FAILED', `cannot open the database ${dir}: ${err.code ?? err.message}`, err);
  }
  if (!stat.isDirectory()) throw new StoreOpenError('NOT_A_DIRECTORY', `${dir} is a file, not a database directory`, undefined, ERRNO_FAILURES.ENOTDIR.advice);
  if (!createIfMissing) {
    try {
      await fs.access(path.join(dir, 'CURRENT'));
    } catch (err) {
      if (err.code === 'ENOENT') throw new StoreOpenError('NOT_FOUND', `${dir} holds no LevelDB database (no CURRENT file)`, err, ERRNO_FAILURES.ENOENT.advice);
      throw (await errnoFailure(err, dir)) ?? err;
    }
  }
  try {
    await fs.access(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw (await errnoFailure(err, dir)) ?? err;
  }
}

/**
 * Opens (creating unless `createIfMissing` is false) the LevelDB database in `dir`.
 * Rejects with a `StoreOpenError` whose `code` says what is wrong: `LOCKED` (another process
 * holds it), `NOT_FOUND`, `NOT_A_DIRECTORY`, `PERMISSION`, `READ_ONLY`, `DISK_FULL`,
 * `TOO_MANY_FILES`, `CORRUPT`, or `OPEN_FAILED` (anything else, with LevelDB's reason); the
 * message ends with what to do. Classified by classic-level's error codes and errnos, never
 * by message text.
 */
export async function openLevelStore(dir, { createIfMissing = true } = {}) {
  await checkDatabasePath(dir, createIfMissing);
  const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  try {
    await db.open({ createIfMissing, errorIfExists: false });
  } catch (err) {
    // abstract-level wraps the binding's error as the cause of LEVEL_DATABASE_NOT_OPEN.
    const cause = err.cause ?? err;
    if (cause.code === 'LEVEL_LOCKED' || err.code === 'LEVEL_LOCKED') {
      throw new StoreOpenError('LOCKED', `the database ${dir} is locked by another process (a sync or a server using it)`, err, 'stop that process or use another --db');
    }
    if (cause.code === 'LEVEL_CORRUPTION') {
      throw new StoreOpenError('CORRUPT', `the database ${dir} is corrupt (${cause.message})`, err, 'move it aside and sync into a fresh --db');
    }
    // classic-level creates the directory with fs.mkdir first: its errors carry an errno.
    const failure = (await errnoFailure(cause, dir)) ?? (cause.code === 'LEVEL_IO_ERROR' ? await diagnoseIoError(cause, dir) : null);
    if (failure) throw failure;
    throw new StoreOpenError('OPEN_FAILED', `cannot open the database ${dir}: ${cause.message ?? err.message}`, err);
  }
  return new LevelStore(db, dir);
}

/** The JS store interface over one open database. Every method is safe to call after close. */
export class LevelStore {
  constructor(db, dir) {
    this.db = db;
    this.dir = dir;
    /** The last storage failure classified (a StoreOpenError), if any. */
    this.failure = null;
    /** Commit batches written by this process, and their payload bytes. */
    this.writes = 0;
    this.writtenBytes = 0;
  }

  /** Whether each key is stored: one native hasMany (no values copied out; classic-level ≥ 2). */
  async has(keys) {
    return this.db.hasMany(keys).catch((err) => classify(err, this));
  }

  async get(keys) {
    const values = await this.db.getMany(keys).catch((err) => classify(err, this));
    return values.map((v) => v ?? null);
  }

  /**
   * One atomic LevelDB write batch: every put and delete of a commit (main keyspace and
   * staging area) and the progress record it advances. A chained batch: each put goes straight
   * into the native batch (copied there, so the engine's views need not outlive this call),
   * with no array of operation objects for abstract-level to check and copy again.
   */
  async write(puts, deletes, progressKey, progress) {
    let bytes = 0;
    let batch;
    try {
      batch = this.db.batch();
      for (const [key, value] of puts) {
        batch.put(key, value);
        bytes += value.length;
      }
      for (const key of deletes) batch.del(key);
      batch.put(progressKey, progress);
    } catch (err) {
      await batch?.close().catch(() => {});
      await classify(err, this);
    }
    await batch.write().catch((err) => classify(err, this));
    this.writes++;
    this.writtenBytes += bytes;
    this.largestBatch = Math.max(this.largestBatch ?? 0, puts.length + deletes.length);
  }

  /** Every [key, value] whose key starts with `prefix` (the staging area on resume). */
  async scan(prefix) {
    const end = Uint8Array.from(prefix);
    end[end.length - 1]++; // the prefixes used here never end in 0xff
    const entries = [];
    try {
      for await (const entry of this.db.iterator({ gte: prefix, lt: end })) entries.push(entry);
    } catch (err) {
      await classify(err, this);
    }
    return entries;
  }

  async readProgress(progressKey) {
    const value = await this.db.get(progressKey).catch((err) => classify(err, this));
    return value ?? null;
  }

  async close() {
    if (this.db.status === 'open' || this.db.status === 'opening') await this.db.close();
  }
}

/**
 * Gives a LevelDB error a `code` the engine classifies (wasm/src/store/mod.rs,
 * `failure_from_js`): a full disk pauses the sync like a browser's quota error. The failure
 * is also kept as `store.failure` (a StoreOpenError: what is wrong and what to do), for the
 * one line a command ends with.
 */
async function classify(err, store) {
  let failure = null;
  if (err?.code === 'LEVEL_DATABASE_NOT_OPEN') {
    throw Object.assign(new Error(`database closed: ${err.message}`, { cause: err }), { code: 'CLOSED' });
  }
  if (err?.code === 'LEVEL_CORRUPTION') {
    failure = new StoreOpenError('CORRUPT', `the database ${store.dir} is corrupt (${err.message})`, err, 'move it aside and sync into a fresh --db');
  } else if (err?.code === 'LEVEL_IO_ERROR') {
    failure = await diagnoseIoError(err, store.dir);
  }
  if (!failure) throw err;
  store.failure = failure;
  throw Object.assign(new Error(failure.reason, { cause: err }), { code: failure.code === 'DISK_FULL' ? 'QuotaExceededError' : `STORE_${failure.code}` });
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
