// The OPFS store's data log: one file of framed commit batches, appended and never rewritten.
// A frame is one `write(puts, deletes, progressKey, progress)` of the JS store interface:
//
//   header   16 bytes   magic "SSB1" | payload bytes P | batch number | operations
//   payload  P bytes    operations, each: kind u8 | key length u8 | value length u32 | key | value
//   trailer  16 bytes   SHA-256(header ‖ payload)[0..8] | P | commit marker "SSC1"
//
// (little-endian u32 words). The trailer is written after the header and payload, and the file
// is flushed after both: a frame whose trailer is missing, names another length or does not
// match its checksum was torn by a crash and is dropped on open with everything after it, so
// a batch and its progress record land whole or not at all. The trailer repeats P so that the
// last frame can be found from the end of the file (readers that must not lock the file).

import { storeError } from './errors.mjs';

export const HEADER_BYTES = 16;
export const TRAILER_BYTES = 16;
/** Bytes before an operation's key: kind, key length, value length. */
export const OP_HEADER_BYTES = 6;
const FRAME_MAGIC = 0x31425353; // "SSB1"
const COMMIT_MAGIC = 0x31435353; // "SSC1"
/** A record's location packs its length into 24 bits (index entries are 16 bytes). */
export const MAX_RECORD_BYTES = 2 ** 24 - 1;

/** Operation kinds. */
export const PUT = 1;
export const STAGE = 2;
export const UNSTAGE = 3;
export const PROGRESS = 4;

/** The staging area's key prefix (`"statesync-staged-"`, core/src/store.rs) and key length. */
export const STAGING_PREFIX = new TextEncoder().encode('statesync-staged-');
const STAGED_KEY_BYTES = STAGING_PREFIX.length + 32;
const CODE_PREFIX = 0x63; // "c"

/** Whether `key` starts with the bytes of `prefix`. */
export function startsWith(key, prefix) {
  if (key.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (key[i] !== prefix[i]) return false;
  return true;
}

/**
 * Where the 32-byte hash of a main-keyspace key starts (a node's key is its hash, a code's is
 * "c" ‖ hash), or -1 for a key of no other shape: those are refused, never stored.
 */
export function hashOffset(key) {
  if (key.length === 32) return 0;
  if (key.length === 33 && key[0] === CODE_PREFIX) return 1;
  return -1;
}

export const isStagedKey = (key) => key.length === STAGED_KEY_BYTES && startsWith(key, STAGING_PREFIX);

/**
 * A staged node's name in the staging table: 53 bits of its hash, at `at` in `bytes` (where
 * the staging key starts). Two live staged nodes sharing them (~10^-8 per sync) would cost
 * one of them a fetch again, never a wrong answer: a staged record carries its whole key.
 */
export function stagedName(bytes, at) {
  const h = at + STAGING_PREFIX.length;
  const hi = ((bytes[h] << 24) | (bytes[h + 1] << 16) | (bytes[h + 2] << 8) | bytes[h + 3]) >>> 0;
  return hi * 2 ** 21 + (((bytes[h + 4] << 13) | (bytes[h + 5] << 5) | (bytes[h + 6] >>> 3)) & 0x1fffff);
}

/** The first 8 bytes of SHA-256: detects a torn or foreign frame, not an adversary. */
export async function checksum(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes), 0, 8);
}

const equal8 = (a, b) => a.length === 8 && b.length === 8 && a.every((x, i) => x === b[i]);

/**
 * A frame's operations, as typed arrays over its bytes: operation i is of kind `kinds[i]`,
 * its record starts at `ats[i]` within `bytes` (kind, key length, value length, key, value)
 * and is `lengths[i]` bytes long.
 * @typedef {{bytes: Uint8Array, count: number, kinds: Uint8Array, ats: Uint32Array, lengths: Uint32Array}} Frame
 */

/** Reusable encoding space: the frame's bytes and its operation table, grown when too small. */
export class FrameBuffer {
  constructor() {
    this.bytes = new Uint8Array(1 << 16);
    this.kinds = new Uint8Array(1024);
    this.ats = new Uint32Array(1024);
    this.lengths = new Uint32Array(1024);
  }

  reserve(size, count) {
    if (this.bytes.length < size) this.bytes = new Uint8Array(Math.max(size, this.bytes.length * 2));
    if (this.kinds.length < count) {
      const n = Math.max(count, this.kinds.length * 2);
      this.kinds = new Uint8Array(n);
      this.ats = new Uint32Array(n);
      this.lengths = new Uint32Array(n);
    }
  }
}

const recordBytes = (key, value) => {
  const length = OP_HEADER_BYTES + key.length + value.length;
  if (key.length > 255 || length > MAX_RECORD_BYTES) throw storeError('BAD_VALUE', `a record of ${length} bytes (key ${key.length}) is larger than the OPFS store takes (${MAX_RECORD_BYTES} bytes)`);
  return length;
};

/**
 * Lays out one batch as a frame in `buffer`. Checks every key first: a key of no known shape,
 * or a value too large, throws before anything is encoded. Returns the frame up to its
 * trailer, with its operation table.
 * @param {FrameBuffer} buffer
 * @param {number} batch the frame's batch number
 * @returns {Frame}
 */
export function encodeFrame(buffer, batch, puts, deletes, progressKey, progress) {
  let size = HEADER_BYTES;
  for (const [key, value] of puts) {
    if (!isStagedKey(key) && hashOffset(key) < 0) throw storeError('BAD_KEY', `the OPFS store keeps trie nodes (32-byte keys), code ("c" + 32 bytes) and staged nodes; got a ${key.length}-byte key`);
    size += recordBytes(key, value);
  }
  for (const key of deletes) {
    // The engine deletes only from the staging area; the main keyspace is append-only.
    if (!isStagedKey(key)) throw storeError('BAD_KEY', `the OPFS store deletes only staged nodes; got a ${key.length}-byte key`);
    size += OP_HEADER_BYTES + key.length;
  }
  size += recordBytes(progressKey, progress);
  const count = puts.length + deletes.length + 1;
  buffer.reserve(size, count);
  const { kinds, ats, lengths } = buffer;
  const bytes = buffer.bytes.subarray(0, size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, size);
  let at = HEADER_BYTES;
  let i = 0;
  const put = (kind, key, value) => {
    const length = OP_HEADER_BYTES + key.length + (value ? value.length : 0);
    bytes[at] = kind;
    bytes[at + 1] = key.length;
    view.setUint32(at + 2, value ? value.length : 0, true);
    bytes.set(key, at + OP_HEADER_BYTES);
    if (value) bytes.set(value, at + OP_HEADER_BYTES + key.length);
    kinds[i] = kind;
    ats[i] = at;
    lengths[i++] = length;
    at += length;
  };
  for (const [key, value] of puts) put(key.length === STAGED_KEY_BYTES ? STAGE : PUT, key, value);
  for (const key of deletes) put(UNSTAGE, key, null);
  put(PROGRESS, progressKey, progress);
  view.setUint32(0, FRAME_MAGIC, true);
  view.setUint32(4, size - HEADER_BYTES, true);
  view.setUint32(8, batch >>> 0, true);
  view.setUint32(12, count, true);
  return { bytes, count, kinds, ats, lengths };
}

/** The trailer for a frame's bytes (header and payload) and their checksum. */
export function encodeTrailer(frameBytes, sum) {
  const trailer = new Uint8Array(TRAILER_BYTES);
  const view = new DataView(trailer.buffer);
  trailer.set(sum, 0);
  view.setUint32(8, frameBytes.length - HEADER_BYTES, true);
  view.setUint32(12, COMMIT_MAGIC, true);
  return trailer;
}

/** A frame's length from its header, or -1 when the header is not a frame's. */
export function frameLength(header) {
  if (header.length < HEADER_BYTES) return -1;
  const view = new DataView(header.buffer, header.byteOffset, HEADER_BYTES);
  if (view.getUint32(0, true) !== FRAME_MAGIC) return -1;
  return HEADER_BYTES + view.getUint32(4, true) + TRAILER_BYTES;
}

/** A frame's length from its trailer (the last 16 bytes before `end`), or -1. */
export function frameLengthFromTrailer(trailer) {
  if (trailer.length < TRAILER_BYTES) return -1;
  const view = new DataView(trailer.buffer, trailer.byteOffset, TRAILER_BYTES);
  if (view.getUint32(12, true) !== COMMIT_MAGIC) return -1;
  return HEADER_BYTES + view.getUint32(8, true) + TRAILER_BYTES;
}

/**
 * Checks a whole frame (header, payload, trailer) and decodes its operation table, or null
 * when the frame is torn or corrupt (its commit marker, length or checksum does not hold, or
 * an operation runs past the payload).
 * @returns {Promise<(Frame & {batch: number}) | null>}
 */
export async function decodeFrame(frame) {
  const length = frameLength(frame);
  if (length !== frame.length) return null;
  const payloadEnd = length - TRAILER_BYTES;
  if (frameLengthFromTrailer(frame.subarray(payloadEnd)) !== length) return null;
  if (!equal8(await checksum(frame.subarray(0, payloadEnd)), frame.subarray(payloadEnd, payloadEnd + 8))) return null;
  const view = new DataView(frame.buffer, frame.byteOffset, length);
  const count = view.getUint32(12, true);
  if (count > (payloadEnd - HEADER_BYTES) / OP_HEADER_BYTES) return null;
  const kinds = new Uint8Array(count);
  const ats = new Uint32Array(count);
  const lengths = new Uint32Array(count);
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + OP_HEADER_BYTES > payloadEnd) return null;
    const end = at + OP_HEADER_BYTES + frame[at + 1] + view.getUint32(at + 2, true);
    if (end > payloadEnd) return null;
    kinds[i] = frame[at];
    ats[i] = at;
    lengths[i] = end - at;
    at = end;
  }
  if (at !== payloadEnd) return null;
  return { batch: view.getUint32(8, true), bytes: frame, count, kinds, ats, lengths };
}

/** The value of a frame's last progress record, copied, or null. */
export function progressOf(frame) {
  for (let i = frame.count - 1; i >= 0; i--) {
    if (frame.kinds[i] !== PROGRESS) continue;
    const at = frame.ats[i];
    return frame.bytes.slice(at + OP_HEADER_BYTES + frame.bytes[at + 1], at + frame.lengths[i]);
  }
  return null;
}

/**
 * Reads a record (as located by the index) and returns its key and value, or null when the
 * bytes there are not a record of that length (a stale or corrupt index entry: the caller
 * treats the key as absent, and the sync fetches it again).
 */
export function parseRecord(bytes) {
  if (bytes.length < OP_HEADER_BYTES) return null;
  const keyLength = bytes[1];
  const valueLength = bytes[2] | (bytes[3] << 8) | (bytes[4] << 16) | (bytes[5] << 24);
  if (OP_HEADER_BYTES + keyLength + valueLength !== bytes.length) return null;
  return { kind: bytes[0], key: bytes.subarray(OP_HEADER_BYTES, OP_HEADER_BYTES + keyLength), value: bytes.subarray(OP_HEADER_BYTES + keyLength) };
}
