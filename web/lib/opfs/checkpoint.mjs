// A checkpoint of the OPFS store: which index runs hold the entries of the log up to `logEnd`,
// and the state at that point that is not in the runs (the staging area's locations, the
// progress record, counters). Opening the store loads the newest checkpoint whose checksum
// holds and replays the log after `logEnd`. Each checkpoint is a new file
// (`checkpoint-<seq>`), written and flushed before older ones are deleted: a crash while one is
// written leaves the previous one in force.
//
//   "SSK1" | version | seq | next batch | logEnd (f64) | next run id | run count
//   runs: id | level | count (f64)
//   progress key length | key | progress length | value
//   staged count | staged: name (f64, opfs/log.mjs stagedName) | location (2 × u32)
//   SHA-256 of all the above [0..8]
// (little-endian).

import { checksum } from './log.mjs';

const MAGIC = 0x314b5353; // "SSK1"
const VERSION = 1;
export const checkpointFileName = (seq) => `checkpoint-${seq}`;
export const CHECKPOINT_PATTERN = /^checkpoint-(\d+)$/;

/**
 * @typedef {{seq: number, batch: number, logEnd: number, nextRunId: number,
 *   runs: {id: number, level: number, count: number}[],
 *   progressKey: Uint8Array | null, progress: Uint8Array | null,
 *   staged: Map<number, [number, number]>}} Checkpoint
 */

/** @param {Checkpoint} c */
export async function encodeCheckpoint(c) {
  const pk = c.progressKey ?? new Uint8Array(0);
  const pv = c.progress ?? new Uint8Array(0);
  const size = 32 + c.runs.length * 16 + 4 + pk.length + 4 + pv.length + 4 + c.staged.size * 16;
  const bytes = new Uint8Array(size + 8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, c.seq, true);
  view.setUint32(12, c.batch >>> 0, true);
  view.setFloat64(16, c.logEnd, true);
  view.setUint32(24, c.nextRunId, true);
  view.setUint32(28, c.runs.length, true);
  let at = 32;
  for (const run of c.runs) {
    view.setUint32(at, run.id, true);
    view.setUint32(at + 4, run.level, true);
    view.setFloat64(at + 8, run.count, true);
    at += 16;
  }
  for (const part of [pk, pv]) {
    view.setUint32(at, part.length, true);
    bytes.set(part, at + 4);
    at += 4 + part.length;
  }
  view.setUint32(at, c.staged.size, true);
  at += 4;
  for (const [name, [hi, lo]] of c.staged) {
    view.setFloat64(at, name, true);
    view.setUint32(at + 8, hi, true);
    view.setUint32(at + 12, lo, true);
    at += 16;
  }
  bytes.set(await checksum(bytes.subarray(0, size)), size);
  return bytes;
}

/** The checkpoint in `bytes`, or null when it is not one whole (torn, foreign, another version). */
export async function decodeCheckpoint(bytes) {
  if (bytes.length < 40) return null;
  const size = bytes.length - 8;
  const sum = await checksum(bytes.subarray(0, size));
  if (!sum.every((x, i) => x === bytes[size + i])) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (view.getUint32(0, true) !== MAGIC || view.getUint32(4, true) !== VERSION) return null;
  const c = {
    seq: view.getUint32(8, true),
    batch: view.getUint32(12, true),
    logEnd: view.getFloat64(16, true),
    nextRunId: view.getUint32(24, true),
    runs: [],
    progressKey: null,
    progress: null,
    staged: new Map(),
  };
  let at = 32;
  const runCount = view.getUint32(28, true);
  for (let i = 0; i < runCount; i++, at += 16) c.runs.push({ id: view.getUint32(at, true), level: view.getUint32(at + 4, true), count: view.getFloat64(at + 8, true) });
  const parts = [];
  for (let i = 0; i < 2; i++) {
    const n = view.getUint32(at, true);
    parts.push(bytes.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  if (parts[0].length > 0) [c.progressKey, c.progress] = parts;
  const staged = view.getUint32(at, true);
  at += 4;
  if (at + staged * 16 !== size) return null;
  for (let i = 0; i < staged; i++, at += 16) c.staged.set(view.getFloat64(at, true), [view.getUint32(at + 8, true), view.getUint32(at + 12, true)]);
  return at === size ? c : null;
}
