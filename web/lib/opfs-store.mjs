// The OPFS store: the sync's state in the Origin Private File System, through
// FileSystemSyncAccessHandles (so only in a dedicated Worker), behind the JS store interface
// the engine drives (wasm/src/store/js.rs: has, get, write, scan, readProgress). One directory
// per database, `statesync/<name>/`:
//
//   log               every commit batch, framed, appended (opfs/log.mjs): the data
//   run-<id>          sorted index runs: key fingerprint → record location (opfs/index.mjs)
//   checkpoint-<seq>  which runs cover the log up to where, the staging area, the progress
//                     record at that point (opfs/checkpoint.mjs)
//
// A write appends one frame (the batch's puts and deletes and its progress record) and its
// commit marker, flushes, and only then acknowledges: a batch lands whole or not at all (I3).
// Opening loads the newest whole checkpoint, replays the frames after it and drops a torn tail.
// Memory is bounded by `memoryBytes`: a quarter for the newest index entries, half for a cache
// of index pages; values are read from the log when asked for, never held.
//
// Measured in Chromium 156 (docs/BENCHMARKS.md): appending megabytes through a sync access
// handle costs about as much per call as writing 16 bytes (~0.1 ms), a read ~7 µs; so the log
// and the index are written sequentially in large pieces, and reads are grouped.

import { storeError, fromFileSystem } from './opfs/errors.mjs';
import {
  HEADER_BYTES,
  TRAILER_BYTES,
  OP_HEADER_BYTES,
  PUT,
  STAGE,
  UNSTAGE,
  PROGRESS,
  STAGING_PREFIX,
  FrameBuffer,
  checksum,
  decodeFrame,
  encodeFrame,
  encodeTrailer,
  frameLength,
  frameLengthFromTrailer,
  hashOffset,
  parseRecord,
  progressOf,
  stagedName,
  startsWith,
} from './opfs/log.mjs';
import { ENTRY_BYTES, MAX_MEMTABLE_ENTRIES, MERGE_FAN_IN, Memtable, Merge, PageCache, Run, location, probe, runFileName, unpackLocation, word } from './opfs/index.mjs';
import { CHECKPOINT_PATTERN, checkpointFileName, decodeCheckpoint, encodeCheckpoint } from './opfs/checkpoint.mjs';

/** @typedef {{read(b: Uint8Array, o?: {at?: number}): number, write(b: Uint8Array, o?: {at?: number}): number, flush(): void, truncate(n: number): void, getSize(): number, close(): void}} SyncHandle */

export const OPFS_DEFAULTS = Object.freeze({
  /** The store's own memory: index entries not yet in a run, and the index page cache. */
  memoryBytes: 32 * 2 ** 20,
});
export const MIN_MEMORY_BYTES = 2 ** 20;

/** The folder (in the origin's OPFS root) holding one folder per database. */
const ROOT_DIR = 'statesync';
const LOG = 'log';
/** A checkpoint is also written when this much log was appended since the last: bounds the replay on open. */
const TAIL_BYTES = 64 * 2 ** 20;
/** Index entries merged per batch at least (more for large batches: 8 per operation). */
const MIN_MERGE_STEP = 65_536;
/** Records this close in the log are read with one call (a call costs ~7 µs, 4 KiB ~1 µs). */
const READ_GAP_BYTES = 16 * 1024;
const READ_SPAN_BYTES = 2 ** 20;
/** How often a running store asks whether its directory is still there (site data cleared). */
const PRESENCE_INTERVAL_MS = 1000;
/**
 * Opening waits this long (10 s) for another context to let go of the store: a Worker just
 * terminated (the package ends its Worker after each call) releases its handles a little
 * later, more so on a busy machine.
 */
const LOCK_ATTEMPTS = 100;
const LOCK_RETRY_MS = 100;

const EMPTY = new Uint8Array(0);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether this context can open an OPFS store (a dedicated Worker of a browser that has them). */
export function opfsSupported() {
  const fileHandle = globalThis.FileSystemFileHandle;
  return typeof globalThis.navigator?.storage?.getDirectory === 'function' && typeof fileHandle === 'function' && 'createSyncAccessHandle' in fileHandle.prototype;
}

/** A database name as a directory name: any string, with "/", "\\", "." and ".." made safe. */
function directoryName(name) {
  return encodeURIComponent(name).replace(/\./g, '%2E');
}

/** The store's directory, or null when it does not exist and `create` is false. */
async function storeDirectory(name, create) {
  try {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle(ROOT_DIR, { create });
    return await top.getDirectoryHandle(directoryName(name), { create });
  } catch (err) {
    if (!create && (err?.name === 'NotFoundError' || err?.name === 'TypeMismatchError')) return null;
    throw fromFileSystem(err, `opening the OPFS directory of "${name}"`);
  }
}

/** Whether an OPFS store named `name` exists (it has a log). */
export async function opfsStoreExists(name) {
  if (typeof globalThis.navigator?.storage?.getDirectory !== 'function') return false;
  const dir = await storeDirectory(name, false);
  if (!dir) return false;
  try {
    await dir.getFileHandle(LOG);
    return true;
  } catch {
    return false;
  }
}

/** Deletes the OPFS store `name`. BLOCKED while a sync or verify has it open. */
export async function deleteOpfsStore(name) {
  try {
    const root = await navigator.storage.getDirectory();
    const top = await root.getDirectoryHandle(ROOT_DIR, { create: false });
    await top.removeEntry(directoryName(name), { recursive: true });
  } catch (err) {
    if (err?.name === 'NotFoundError') return;
    throw fromFileSystem(err, `deleting the OPFS store "${name}"`);
  }
}

/** An exclusive sync access handle on `file`, waiting a little for a context that is letting go. */
async function lockFile(file, what) {
  for (let attempt = 1; ; attempt++) {
    try {
      return /** @type {SyncHandle} */ (await /** @type {any} */ (file).createSyncAccessHandle());
    } catch (err) {
      if (err?.name !== 'NoModificationAllowedError' || attempt >= LOCK_ATTEMPTS) {
        const e = fromFileSystem(err, what);
        if (e.code === 'BLOCKED') e.message = `${what}: another tab or worker has this OPFS store open (a sync or a verify running)`;
        throw e;
      }
      await sleep(LOCK_RETRY_MS);
    }
  }
}

/**
 * Opens (creating unless `create` is false; then null when missing) the OPFS store `name`, in
 * a dedicated Worker. Rejects with a store error: `BLOCKED` when another context has it open.
 * @param {string} name
 * @param {{memoryBytes?: number, create?: boolean}} [options]
 */
export async function openOpfsStore(name, { memoryBytes = OPFS_DEFAULTS.memoryBytes, create = true } = {}) {
  if (!opfsSupported()) throw storeError('OPFS_UNSUPPORTED', 'this context has no OPFS sync access handles (they exist in dedicated Workers of current browsers)');
  if (!Number.isInteger(memoryBytes) || memoryBytes < MIN_MEMORY_BYTES) throw new RangeError(`memoryBytes must be an integer of at least ${MIN_MEMORY_BYTES}`);
  const dir = await storeDirectory(name, create);
  if (!dir) return null;
  let logFile;
  try {
    logFile = await dir.getFileHandle(LOG, { create });
  } catch (err) {
    if (!create && err?.name === 'NotFoundError') return null;
    throw fromFileSystem(err, 'opening the OPFS log');
  }
  const log = await lockFile(logFile, `opening the OPFS store "${name}"`);
  const store = new OpfsStore(name, dir, logFile, log, memoryBytes);
  try {
    await store.load();
  } catch (err) {
    store.closeFiles();
    throw fromFileSystem(err, `opening the OPFS store "${name}"`);
  }
  return store;
}

/**
 * A JS store over an OPFS directory. Every method is serialised: one operation at a time, as
 * the engine drives it anyway; a write is never interleaved with another.
 */
export class OpfsStore {
  /** @param {SyncHandle} log */
  constructor(name, dir, logFile, log, memoryBytes) {
    this.name = name;
    this.dir = dir;
    this.logFile = logFile;
    this.log = log;
    this.memoryBytes = memoryBytes;
    let limit = 1024;
    while (limit * 2 * 32 <= memoryBytes / 4 && limit * 2 <= MAX_MEMTABLE_ENTRIES) limit *= 2;
    this.memtable = new Memtable(limit);
    this.cache = new PageCache(Math.floor(memoryBytes / 2 / 4096));
    /** @type {Run[]} */
    this.runs = [];
    /** Staged node (its stagedName) → location words. */
    this.staged = new Map();
    this.progressKey = null;
    this.progress = null;
    this.logEnd = 0;
    this.batch = 0;
    this.checkpointSeq = 0;
    this.checkpointLogEnd = 0;
    this.checkpointFile = null;
    this.nextRunId = 1;
    /** @type {Merge | null} */
    this.merge = null;
    this.buffer = new FrameBuffer();
    /** The last answer of stillPresent not yet consulted (a boolean, or the Error it failed with). */
    this.lastWriteAt = performance.now();
    this.presence = { asking: false, askedAt: -Infinity, answer: /** @type {boolean | Error | undefined} */ (undefined) };
    /** Why the store refuses everything: set once it was closed or deleted underneath. */
    this.closed = null;
    this.queue = Promise.resolve();
    this.stats = { batches: 0, checkpoints: 0, merges: 0, droppedBytes: 0, replayedBatches: 0, maintenanceErrors: 0 };
  }

  // ------------------------------------------------------------------ the JS store interface

  /** Whether each key is in the main keyspace. */
  has(keys) {
    return this.exclusive(() => this.lookup(keys, false));
  }

  /** Each key's value in the main keyspace, or null. */
  get(keys) {
    return this.exclusive(() => this.lookup(keys, true));
  }

  /** Appends one batch and its progress record as a frame, flushed before it resolves. */
  write(puts, deletes, progressKey, progress) {
    return this.exclusive(() => this.append(puts, deletes, progressKey, progress));
  }

  /** Every staged entry (the only prefix the engine scans: the staging area's). */
  scan(prefix) {
    return this.exclusive(async () => {
      if (!startsWith(prefix, STAGING_PREFIX)) throw storeError('NOT_SUPPORTED', 'the OPFS store scans only the staging area ("statesync-staged-" prefixes); the main keyspace is looked up by key');
      const wanted = [];
      for (const [name, [hi, lo]] of this.staged) wanted.push({ name, ...unpackLocation(hi, lo), bytes: EMPTY });
      this.readRecords(wanted);
      const entries = [];
      for (const w of wanted) {
        const record = parseRecord(w.bytes);
        // A location that does not hold a staged record of that name is skipped: the sync
        // fetches the node again.
        if (record?.kind === STAGE && stagedName(record.key, 0) === w.name && startsWith(record.key, prefix)) entries.push([record.key, record.value]);
      }
      return entries;
    });
  }

  /** The progress record of the last batch written (the engine's key), or null. */
  readProgress(progressKey) {
    return this.exclusive(async () => (this.progress && (!progressKey || sameBytes(progressKey, this.progressKey)) ? this.progress.slice() : null));
  }

  /**
   * Closes every file; the store refuses everything afterwards. Waits for an operation
   * running. Closing a closed store (or one deleted underneath) does nothing.
   */
  close() {
    const run = this.queue.then(() => {
      if (this.closed) return;
      this.closeFiles();
      this.closed = 'closed';
    });
    this.queue = run;
    return run;
  }

  // ------------------------------------------------------------------ internals

  /** Runs `fn` after every operation before it; a closed store refuses with CLOSED. */
  exclusive(fn) {
    const run = this.queue.then(() => {
      if (this.closed) throw storeError('CLOSED', this.closed === 'deleted' ? `the OPFS store "${this.name}" was deleted while in use (site data cleared?); sync again to start over` : `the OPFS store "${this.name}" is closed`);
      return fn();
    });
    this.queue = run.catch(() => {});
    return run;
  }

  closeFiles() {
    for (const handle of [this.log, ...this.runs.map((r) => r.handle), this.merge?.output.handle]) {
      try {
        handle?.close();
      } catch {
        // Already closed, or its file is gone: nothing to release.
      }
    }
  }

  lookup(keys, values) {
    const answers = new Array(keys.length).fill(values ? null : false);
    let pending = [];
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const at = hashOffset(key);
      if (at < 0) continue; // not a main-keyspace key: never stored here
      const hi = word(key, at);
      const lo = word(key, at + 4);
      const found = [];
      this.memtable.find(hi, lo, found);
      for (const run of this.runs) probe(this.cache, run, hi, lo, found);
      if (found.length) pending.push({ i, key, found, next: 0 });
    }
    // Read each key's first candidate record (grouped by place in the log); a key whose record
    // does not match tries its next candidate.
    while (pending.length) {
      const reads = pending.map((p) => {
        const { offset, length } = unpackLocation(p.found[p.next], p.found[p.next + 1]);
        return { p, offset, length: values ? length : Math.min(length, OP_HEADER_BYTES + p.key.length), bytes: EMPTY };
      });
      this.readRecords(reads);
      pending = [];
      for (const r of reads) {
        const { p } = r;
        const b = r.bytes;
        const keyMatches = b.length >= OP_HEADER_BYTES + p.key.length && b[0] === PUT && b[1] === p.key.length && sameBytes(b.subarray(OP_HEADER_BYTES, OP_HEADER_BYTES + p.key.length), p.key);
        const record = keyMatches && values ? parseRecord(b) : null;
        if (keyMatches && (!values || record)) answers[p.i] = values ? record.value : true;
        else if ((p.next += 2) < p.found.length) pending.push(p);
      }
    }
    return answers;
  }

  /**
   * Fills `bytes` of each `{offset, length}`, reading records that lie close together at once.
   * @param {{offset: number, length: number, bytes: Uint8Array}[]} reads
   */
  readRecords(reads) {
    const sorted = [...reads].sort((a, b) => a.offset - b.offset);
    for (let i = 0; i < sorted.length; ) {
      const start = sorted[i].offset;
      let end = start + sorted[i].length;
      let j = i + 1;
      while (j < sorted.length && sorted[j].offset - end <= READ_GAP_BYTES && sorted[j].offset + sorted[j].length - start <= READ_SPAN_BYTES) {
        end = Math.max(end, sorted[j].offset + sorted[j].length);
        j++;
      }
      const group = new Uint8Array(Math.max(0, Math.min(end, this.logEnd) - start));
      const got = group.length > 0 ? this.log.read(group, { at: start }) : 0;
      for (; i < j; i++) {
        const r = sorted[i];
        const from = r.offset - start;
        r.bytes = group.subarray(Math.min(from, got), Math.min(from + r.length, got));
      }
    }
  }

  async append(puts, deletes, progressKey, progress) {
    // Checks every key before anything is written: a refused batch leaves no trace.
    const frame = encodeFrame(this.buffer, this.batch, puts, deletes, progressKey, progress);
    const { bytes } = frame;
    // Whether the log is still in its directory. Walking the directories costs round trips to
    // the browser (20-70 ms on a busy machine) that would hold up this write and the engine's
    // lookups queued behind it: while batches follow each other, the answer asked in the
    // background after an earlier batch (at most once a second) is used; after a second or
    // more without a write (the engine was paused or waiting anyway), it is asked now.
    let answer;
    if (performance.now() - this.lastWriteAt >= PRESENCE_INTERVAL_MS) answer = await this.stillPresent().catch((err) => err);
    else if ((answer = this.presence.answer) !== undefined) this.presence.answer = undefined;
    if (answer instanceof Error) throw answer;
    if (answer === false) {
      // Its handles are left as they are: in Chromium 156, closing (or reading) a sync access
      // handle whose files were removed by clearing site data blocks the thread for good. They
      // are let go with the Worker (the package runs each call in a fresh one).
      this.closed = 'deleted';
      throw storeError('CLOSED', `the OPFS store "${this.name}" was deleted while in use (site data cleared?); sync again to start over`);
    }
    // A previous checkpoint that failed (quota) is retried first: the index memory stays bounded.
    if (this.memtable.full) await this.checkpoint();
    // Asked now, answered while this thread writes (the bytes are copied, hashed elsewhere).
    const sum = checksum(bytes);
    const at = this.logEnd;
    try {
      if (this.log.write(bytes, { at }) !== bytes.length) throw storeError('QuotaExceededError', 'the OPFS log took only part of a batch');
      const trailer = encodeTrailer(bytes, await sum);
      if (this.log.write(trailer, { at: at + bytes.length }) !== trailer.length) throw storeError('QuotaExceededError', 'the OPFS log took only part of a commit marker');
      this.log.flush();
    } catch (err) {
      // Nothing of a failed batch may stay: cut the log back to the last whole frame.
      try {
        this.log.truncate(at);
        this.log.flush();
      } catch {
        // The file is gone or refuses: the next open drops the torn frame by its checksum.
      }
      throw fromFileSystem(err, 'writing a batch to the OPFS log');
    }
    this.lastWriteAt = performance.now();
    this.askPresence();
    this.apply(frame, at);
    this.logEnd = at + bytes.length + TRAILER_BYTES;
    this.batch++;
    this.stats.batches++;
    try {
      await this.maintain(frame.count);
    } catch (err) {
      // The batch is durable; the index's housekeeping is retried with the next batch.
      this.stats.maintenanceErrors++;
      this.stats.lastMaintenanceError = `${err?.name}: ${err?.message}`;
    }
  }

  /** Updates the in-memory state for a frame's operations, the frame starting at `at` in the log. */
  apply({ bytes, count, kinds, ats, lengths }, at) {
    for (let i = 0; i < count; i++) {
      const a = ats[i];
      const kind = kinds[i];
      const key = a + OP_HEADER_BYTES;
      if (kind === PUT) {
        const hash = key + (bytes[a + 1] === 33 ? 1 : 0); // code keys are "c" || hash
        const [locHi, locLo] = location(at + a, lengths[i]);
        this.memtable.insert(word(bytes, hash), word(bytes, hash + 4), locHi, locLo);
      } else if (kind === STAGE) {
        this.staged.set(stagedName(bytes, key), location(at + a, lengths[i]));
      } else if (kind === UNSTAGE) {
        this.staged.delete(stagedName(bytes, key));
      } else if (kind === PROGRESS) {
        this.progressKey = bytes.slice(key, key + bytes[a + 1]);
        this.progress = bytes.slice(key + bytes[a + 1], a + lengths[i]);
      }
    }
  }

  /** Asks stillPresent in the background, unless asked less than a second ago or still asking. */
  askPresence() {
    const p = this.presence;
    const now = performance.now();
    if (p.asking || now - p.askedAt < PRESENCE_INTERVAL_MS) return;
    p.asking = true;
    p.askedAt = now;
    this.stillPresent().then(
      (present) => Object.assign(p, { asking: false, answer: present }),
      (err) => Object.assign(p, { asking: false, answer: err }),
    );
  }

  /**
   * Whether the directory still has this log. Site data cleared under a running sync leaves
   * the open handle writing into a file nobody can open again: the next batch is refused and
   * the store closes for good (writing on into a new, empty store would leave parents without
   * their children). A batch acknowledged meanwhile went into the removed store with the rest
   * of it: nothing of the sync is left, so nothing is left half-written.
   */
  async stillPresent() {
    try {
      // Walked from the origin's root: after site data is cleared, Chromium still resolves
      // names under a directory handle taken before, into the removed directory.
      const dir = await storeDirectory(this.name, false);
      return dir !== null && (await (await dir.getFileHandle(LOG)).isSameEntry(this.logFile));
    } catch (err) {
      if (err?.name === 'NotFoundError' || err?.name === 'TypeMismatchError') return false;
      throw fromFileSystem(err, 'checking the OPFS store is still there');
    }
  }

  /** Index housekeeping after a batch: a full memtable becomes a run; runs merge a step at a time. */
  async maintain(ops) {
    if (this.memtable.full || this.logEnd - this.checkpointLogEnd > TAIL_BYTES) await this.checkpoint();
    if (!this.merge) this.merge = await this.planMerge();
    if (this.merge && this.merge.step(Math.max(MIN_MERGE_STEP, 8 * ops))) await this.installMerge();
  }

  /** Writes the memtable as a level-0 run (when it has entries) and a checkpoint naming it. */
  async checkpoint() {
    if (this.memtable.size > 0) {
      const words = this.memtable.sorted();
      const id = this.nextRunId++;
      const handle = await this.createFile(runFileName(id));
      try {
        const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
        if (handle.write(bytes, { at: 0 }) !== bytes.length) throw storeError('QuotaExceededError', 'an index run was written only in part');
        handle.flush();
      } catch (err) {
        await this.removeFile(runFileName(id), handle);
        throw fromFileSystem(err, 'writing an index run');
      }
      this.runs.push(new Run({ id, level: 0, count: words.length / 4, handle }));
      this.memtable.clear();
    }
    this.checkpointLogEnd = this.logEnd;
    await this.writeCheckpoint();
  }

  async writeCheckpoint() {
    const seq = this.checkpointSeq + 1;
    const bytes = await encodeCheckpoint({
      seq,
      batch: this.batch,
      logEnd: this.checkpointLogEnd,
      nextRunId: this.nextRunId,
      runs: this.runs.map(({ id, level, count }) => ({ id, level, count })),
      progressKey: this.progressKey,
      progress: this.progress,
      staged: this.staged,
    });
    const name = checkpointFileName(seq);
    const handle = await this.createFile(name);
    try {
      if (handle.write(bytes, { at: 0 }) !== bytes.length) throw storeError('QuotaExceededError', 'a checkpoint was written only in part');
      handle.flush();
      handle.close();
    } catch (err) {
      await this.removeFile(name, handle);
      throw fromFileSystem(err, 'writing a checkpoint');
    }
    this.checkpointSeq = seq;
    const previous = this.checkpointFile;
    this.checkpointFile = name;
    this.stats.checkpoints++;
    if (previous) await this.removeFile(previous);
  }

  /** The merge to run next: the oldest MERGE_FAN_IN runs of the lowest level that has that many. */
  async planMerge() {
    const levels = new Map();
    for (const run of this.runs) levels.set(run.level, [...(levels.get(run.level) ?? []), run]);
    for (const level of [...levels.keys()].sort((a, b) => a - b)) {
      const runs = levels.get(level);
      if (runs.length < MERGE_FAN_IN) continue;
      const inputs = runs.sort((a, b) => a.id - b.id).slice(0, MERGE_FAN_IN);
      const id = this.nextRunId++;
      return new Merge(inputs, { id, level: level + 1, handle: await this.createFile(runFileName(id)) });
    }
    return null;
  }

  /** Puts a finished merge's run in place of its inputs, checkpoints, deletes the inputs. */
  async installMerge() {
    const merge = this.merge;
    const merged = merge.result();
    this.runs = [...this.runs.filter((r) => !merge.inputs.includes(r)), merged];
    this.merge = null;
    this.stats.merges++;
    await this.writeCheckpoint();
    for (const run of merge.inputs) {
      this.cache.forget(run);
      await this.removeFile(runFileName(run.id), run.handle);
    }
  }

  /** A new (emptied) file of this store, open for writing. */
  async createFile(name) {
    try {
      const file = await this.dir.getFileHandle(name, { create: true });
      const handle = await lockFile(file, `opening ${name}`);
      handle.truncate(0);
      return handle;
    } catch (err) {
      throw fromFileSystem(err, `creating ${name}`);
    }
  }

  /** Closes (if given) and deletes a file of this store; a file already gone is no error. */
  async removeFile(name, handle = null) {
    try {
      handle?.close();
    } catch {
      // Closed already.
    }
    try {
      await this.dir.removeEntry(name);
    } catch (err) {
      if (err?.name !== 'NotFoundError') throw fromFileSystem(err, `deleting ${name}`);
    }
  }

  /** Loads the newest whole checkpoint, opens its runs, removes leftovers, replays the log after it. */
  async load() {
    const names = [];
    for await (const name of /** @type {any} */ (this.dir).keys()) names.push(name);
    const checkpoints = names
      .map((n) => CHECKPOINT_PATTERN.exec(n))
      .filter(Boolean)
      .map((m) => ({ name: m[0], seq: Number(m[1]) }))
      .sort((a, b) => b.seq - a.seq);
    let chosen = null;
    for (const candidate of checkpoints) {
      const cp = await readCheckpoint(this.dir, candidate.name);
      if (cp && (await runsPresent(this.dir, cp.runs))) {
        chosen = { ...cp, name: candidate.name };
        break;
      }
    }
    if (chosen) {
      for (const { id, level, count } of chosen.runs) {
        const file = await this.dir.getFileHandle(runFileName(id));
        this.runs.push(new Run({ id, level, count, handle: await lockFile(file, `opening ${runFileName(id)}`) }));
      }
      this.staged = chosen.staged;
      this.progressKey = chosen.progressKey;
      this.progress = chosen.progress;
      this.batch = chosen.batch;
      this.checkpointSeq = chosen.seq;
      this.checkpointLogEnd = chosen.logEnd;
      this.checkpointFile = chosen.name;
      this.nextRunId = chosen.nextRunId;
    }
    // Leftovers of a crash: checkpoints not chosen, runs no checkpoint names (an unfinished merge).
    const kept = new Set([chosen?.name, ...this.runs.map((r) => runFileName(r.id))]);
    for (const name of names) if (name !== LOG && !kept.has(name)) await this.removeFile(name);
    for (const checkpoint of checkpoints) this.checkpointSeq = Math.max(this.checkpointSeq, checkpoint.seq);
    await this.replay();
  }

  /** Applies every whole frame after the checkpoint; cuts the log at the first torn one. */
  async replay() {
    const size = this.log.getSize();
    let at = this.checkpointLogEnd;
    if (at > size) throw storeError('CORRUPT', `the OPFS store "${this.name}" is damaged: its log (${size} bytes) is shorter than its checkpoint says (${at}); delete it and sync again`);
    const header = new Uint8Array(HEADER_BYTES);
    while (at + HEADER_BYTES <= size) {
      this.log.read(header, { at });
      const length = frameLength(header);
      if (length < 0 || at + length > size) break;
      const frame = new Uint8Array(length);
      this.log.read(frame, { at });
      const decoded = await decodeFrame(frame);
      if (!decoded) break;
      this.apply(decoded, at);
      this.logEnd = at += length;
      this.batch = decoded.batch + 1;
      this.stats.replayedBatches++;
      if (this.memtable.full) await this.checkpoint();
    }
    this.logEnd = at;
    if (at < size) {
      // A torn frame (the crash hit its write) and anything after it: never acknowledged.
      this.stats.droppedBytes = size - at;
      this.log.truncate(at);
      this.log.flush();
    }
  }
}

function sameBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function readFile(dir, name) {
  const file = await (await dir.getFileHandle(name)).getFile();
  return new Uint8Array(await file.arrayBuffer());
}

async function readCheckpoint(dir, name) {
  try {
    return await decodeCheckpoint(await readFile(dir, name));
  } catch {
    return null; // unreadable: an older checkpoint is used
  }
}

async function runsPresent(dir, runs) {
  for (const { id, count } of runs) {
    try {
      const file = await (await dir.getFileHandle(runFileName(id))).getFile();
      if (file.size < count * ENTRY_BYTES) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The progress record of the OPFS store `name` without opening it: readable while a sync in
 * another tab or worker holds it (a File snapshot takes no lock), never writing anything.
 * The last frame is found from the end of the log; when the tail is torn (a crash, or a write
 * in progress), the frames after the newest checkpoint are read forward.
 * @returns {Promise<Uint8Array | null>}
 */
export async function readOpfsProgress(name) {
  const dir = await storeDirectory(name, false);
  if (!dir) return null;
  for (let attempt = 1; ; attempt++) {
    try {
      return await progressFromSnapshot(dir);
    } catch (err) {
      // NotReadableError: the log changed while it was read (a sync is writing): read again.
      if (err?.name !== 'NotReadableError' || attempt >= 20) throw fromFileSystem(err, `reading the progress of the OPFS store "${name}"`);
      await sleep(25);
    }
  }
}

async function progressFromSnapshot(dir) {
  let file;
  try {
    file = await (await dir.getFileHandle(LOG)).getFile();
  } catch (err) {
    if (err?.name === 'NotFoundError') return null;
    throw err;
  }
  const bytes = async (from, to) => new Uint8Array(await file.slice(from, to).arrayBuffer());
  if (file.size >= HEADER_BYTES + TRAILER_BYTES) {
    const length = frameLengthFromTrailer(await bytes(file.size - TRAILER_BYTES, file.size));
    if (length > 0 && length <= file.size) {
      const last = await decodeFrame(await bytes(file.size - length, file.size));
      if (last && progressOf(last)) return progressOf(last);
    }
  }
  // The tail is not a whole frame: the newest checkpoint, then every whole frame after it.
  const names = [];
  for await (const n of /** @type {any} */ (dir).keys()) names.push(n);
  const newest = names
    .map((n) => CHECKPOINT_PATTERN.exec(n))
    .filter(Boolean)
    .sort((a, b) => Number(b[1]) - Number(a[1]));
  let progress = null;
  let at = 0;
  for (const m of newest) {
    const cp = await readCheckpoint(dir, m[0]);
    if (cp) {
      progress = cp.progress;
      at = cp.logEnd;
      break;
    }
  }
  while (at + HEADER_BYTES <= file.size) {
    const length = frameLength(await bytes(at, at + HEADER_BYTES));
    if (length < 0 || at + length > file.size) break;
    const decoded = await decodeFrame(await bytes(at, at + length));
    if (!decoded) break;
    progress = progressOf(decoded) ?? progress;
    at += length;
  }
  return progress;
}

/**
 * A JS store that answers only `readProgress` (from `readOpfsProgress`): what readProgress of
 * the package hands the engine for an OPFS store, so that reading never locks or writes it.
 */
export function opfsProgressReader(name) {
  const refuse = async () => {
    throw storeError('NOT_SUPPORTED', 'this OPFS progress reader only reads the progress record');
  };
  return { has: refuse, get: refuse, write: refuse, scan: refuse, readProgress: () => readOpfsProgress(name) };
}
