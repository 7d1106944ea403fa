// The OPFS store's index: main-keyspace key → where its record is in the log, without holding
// every key in memory. Keys are Keccak hashes, so their first 8 bytes (the fingerprint) are
// uniformly distributed; an entry is 16 bytes, four little-endian u32 words:
//
//   fingerprint high | fingerprint low | record length << 8 | offset >> 32 | offset & 0xffffffff
//
// Recent entries live in a bounded in-memory table (the memtable). When it fills it is sorted
// and written as an immutable run file; four runs of one level merge into one of the next, a
// bounded number of entries per batch, so no write waits for a large merge. A lookup probes
// the memtable and each run (an interpolation search over 4 KiB pages read through a bounded
// LRU cache). A fingerprint only nominates a record: the caller reads it and compares the
// whole key, so two keys sharing a fingerprint, or a stale entry, never answer for each other.
//
// Small random writes through a FileSystemSyncAccessHandle cost about 0.1 ms each in Chromium
// (sequential writes of megabytes cost about the same): the index is only ever written in
// long sequential runs, never updated in place.

export const ENTRY_WORDS = 4;
export const ENTRY_BYTES = 16;
export const PAGE_ENTRIES = 256;
const PAGE_BYTES = PAGE_ENTRIES * ENTRY_BYTES;
/** Runs of a level that merge into one run of the next. */
export const MERGE_FAN_IN = 4;
/** Entries read or written per call while merging (64 KiB). */
const CHUNK_ENTRIES = 4096;
/** The memtable sorts with its slot number in the low 21 bits of a double. */
export const MAX_MEMTABLE_ENTRIES = 2 ** 21;
const TWO_32 = 2 ** 32;

/** The big-endian u32 at `at`: a fingerprint is the words at a hash's bytes 0 and 4. */
export const word = (bytes, at) => ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;

/** The two location words of a record at `offset` of `length` bytes. */
export function location(offset, length) {
  return [((length << 8) | Math.floor(offset / TWO_32)) >>> 0, offset >>> 0];
}

/** A location's offset and length. */
export function unpackLocation(hi, lo) {
  return { offset: (hi & 0xff) * TWO_32 + lo, length: hi >>> 8 };
}

const compare = (aHi, aLo, bHi, bLo) => (aHi !== bHi ? (aHi < bHi ? -1 : 1) : aLo !== bLo ? (aLo < bLo ? -1 : 1) : 0);

/** The newest entries: an open-addressing table in one typed array, `limit` entries at most. */
export class Memtable {
  constructor(limit) {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_MEMTABLE_ENTRIES) throw new RangeError(`memtable limit ${limit} out of range`);
    this.limit = limit;
    let slots = 1;
    while (slots < limit * 2) slots *= 2;
    this.slots = slots;
    this.allocate(slots);
  }

  allocate(slots) {
    this.mask = slots - 1;
    this.words = new Uint32Array(slots * ENTRY_WORDS);
    this.size = 0;
  }

  get full() {
    return this.size >= this.limit;
  }

  get bytes() {
    return this.words.byteLength;
  }

  /**
   * Adds an entry (an identical one already there is kept once). Location words are never 0.
   * A batch larger than the table's spare half grows it until the next flush.
   */
  insert(fpHi, fpLo, locHi, locLo) {
    if (this.size >= (this.mask + 1) * 0.75) this.grow();
    const w = this.words;
    for (let slot = fpLo & this.mask; ; slot = (slot + 1) & this.mask) {
      const b = slot * ENTRY_WORDS;
      if (w[b + 2] === 0) {
        w[b] = fpHi;
        w[b + 1] = fpLo;
        w[b + 2] = locHi;
        w[b + 3] = locLo;
        this.size++;
        return;
      }
      if (w[b] === fpHi && w[b + 1] === fpLo && w[b + 2] === locHi && w[b + 3] === locLo) return;
    }
  }

  grow() {
    const old = this.words;
    this.allocate((this.mask + 1) * 2);
    for (let b = 0; b < old.length; b += ENTRY_WORDS) if (old[b + 2] !== 0) this.insert(old[b], old[b + 1], old[b + 2], old[b + 3]);
  }

  /** Pushes the location words of every entry with this fingerprint onto `out`. */
  find(fpHi, fpLo, out) {
    const w = this.words;
    for (let slot = fpLo & this.mask; ; slot = (slot + 1) & this.mask) {
      const b = slot * ENTRY_WORDS;
      if (w[b + 2] === 0) return;
      if (w[b] === fpHi && w[b + 1] === fpLo) out.push(w[b + 2], w[b + 3]);
    }
  }

  /** Every entry, sorted by fingerprint, as run words. */
  sorted() {
    const n = this.size;
    const w = this.words;
    if (n > MAX_MEMTABLE_ENTRIES) return this.sortedSlowly();
    // Sort doubles of (fingerprint high, entry number): native and exact below 2^53.
    const order = new Float64Array(n);
    const slotOf = new Uint32Array(n);
    let k = 0;
    for (let slot = 0; slot <= this.mask; slot++) {
      const b = slot * ENTRY_WORDS;
      if (w[b + 2] === 0) continue;
      slotOf[k] = slot;
      order[k] = w[b] * MAX_MEMTABLE_ENTRIES + k;
      k++;
    }
    order.sort();
    const out = new Uint32Array(n * ENTRY_WORDS);
    for (let i = 0; i < n; i++) {
      const b = slotOf[order[i] % MAX_MEMTABLE_ENTRIES] * ENTRY_WORDS;
      out.set(w.subarray(b, b + ENTRY_WORDS), i * ENTRY_WORDS);
    }
    // Entries sharing the high word (a handful per million) are put in low-word order.
    for (let i = 1; i < n; i++) {
      let j = i;
      while (j > 0 && out[j * 4] === out[(j - 1) * 4] && out[j * 4 + 1] < out[(j - 1) * 4 + 1]) {
        for (let x = 0; x < ENTRY_WORDS; x++) {
          const t = out[j * 4 + x];
          out[j * 4 + x] = out[(j - 1) * 4 + x];
          out[(j - 1) * 4 + x] = t;
        }
        j--;
      }
    }
    return out;
  }

  /** `sorted` for a table grown past what the fast sort can number (one huge batch). */
  sortedSlowly() {
    const w = this.words;
    const slots = [];
    for (let slot = 0; slot <= this.mask; slot++) if (w[slot * ENTRY_WORDS + 2] !== 0) slots.push(slot * ENTRY_WORDS);
    slots.sort((a, b) => compare(w[a], w[a + 1], w[b], w[b + 1]));
    const out = new Uint32Array(slots.length * ENTRY_WORDS);
    slots.forEach((b, i) => out.set(w.subarray(b, b + ENTRY_WORDS), i * ENTRY_WORDS));
    return out;
  }

  clear() {
    if (this.mask + 1 !== this.slots) this.allocate(this.slots);
    else {
      this.words.fill(0);
      this.size = 0;
    }
  }
}

/**
 * A sorted run of entries in its own file, read through `handle` (a sync access handle).
 * `id` names the file (`run-<id>`); `level` 0 is a flushed memtable, level n + 1 the merge of
 * MERGE_FAN_IN runs of level n.
 */
export class Run {
  /** @param {{id: number, level: number, count: number, handle: any}} run */
  constructor({ id, level, count, handle }) {
    this.id = id;
    this.level = level;
    this.count = count;
    /** @type {import('../opfs-store.mjs').SyncHandle} */
    this.handle = handle;
  }

  get pages() {
    return Math.ceil(this.count / PAGE_ENTRIES);
  }

  /** Entries [first, first + n) as words, read directly (no cache). */
  read(first, n) {
    const bytes = new Uint8Array(n * ENTRY_BYTES);
    const got = this.handle.read(bytes, { at: first * ENTRY_BYTES });
    return new Uint32Array(bytes.buffer, 0, Math.floor(got / ENTRY_BYTES) * ENTRY_WORDS);
  }
}

export const runFileName = (id) => `run-${id}`;

/** An LRU cache of run pages, `maxPages` of 4 KiB at most. */
export class PageCache {
  constructor(maxPages) {
    this.max = Math.max(1, maxPages);
    /** @type {Map<number, Uint32Array>} */
    this.pages = new Map();
    this.hits = 0;
    this.misses = 0;
  }

  /** Page `p` of `run`: its entries as words. */
  page(run, p) {
    const key = run.id * TWO_32 + p;
    const cached = this.pages.get(key);
    if (cached) {
      this.pages.delete(key);
      this.pages.set(key, cached);
      this.hits++;
      return cached;
    }
    this.misses++;
    const words = run.read(p * PAGE_ENTRIES, Math.min(PAGE_ENTRIES, run.count - p * PAGE_ENTRIES));
    this.pages.set(key, words);
    if (this.pages.size > this.max) this.pages.delete(this.pages.keys().next().value);
    return words;
  }

  /** Forgets a deleted run's pages (ids are never reused, so this only frees memory). */
  forget(run) {
    for (let p = 0; p < run.pages; p++) this.pages.delete(run.id * TWO_32 + p);
  }
}

/**
 * Pushes the location words of every entry of `run` with this fingerprint onto `out`:
 * interpolation search over pages (fingerprints are uniform, so it lands within a page or two
 * of the answer), falling back to bisection if it does not.
 */
export function probe(cache, run, fpHi, fpLo, out) {
  if (run.count === 0) return;
  const target = fpHi * TWO_32 + fpLo;
  let lo = 0;
  let hi = run.pages - 1;
  let loKey = 0;
  let hiKey = TWO_32 * TWO_32;
  for (let step = 0; lo <= hi; step++) {
    const span = hi - lo + 1;
    const guess = step < 3 ? lo + Math.floor(((target - loKey) / (hiKey - loKey)) * span) : lo + (span >> 1);
    const p = Math.min(hi, Math.max(lo, guess));
    const words = cache.page(run, p);
    const last = words.length - ENTRY_WORDS;
    if (compare(fpHi, fpLo, words[0], words[1]) < 0) {
      hi = p - 1;
      hiKey = words[0] * TWO_32 + words[1];
      continue;
    }
    if (compare(fpHi, fpLo, words[last], words[last + 1]) > 0) {
      lo = p + 1;
      loKey = words[last] * TWO_32 + words[last + 1];
      continue;
    }
    collect(words, fpHi, fpLo, out);
    // Equal fingerprints may continue on the neighbouring pages.
    for (let q = p - 1; q >= 0; q--) {
      const before = cache.page(run, q);
      const end = before.length - ENTRY_WORDS;
      if (before[end] !== fpHi || before[end + 1] !== fpLo) break;
      collect(before, fpHi, fpLo, out);
    }
    for (let q = p + 1; q < run.pages; q++) {
      const after = cache.page(run, q);
      if (after[0] !== fpHi || after[1] !== fpLo) break;
      collect(after, fpHi, fpLo, out);
    }
    return;
  }
}

function collect(words, fpHi, fpLo, out) {
  for (let b = 0; b < words.length; b += ENTRY_WORDS) if (words[b] === fpHi && words[b + 1] === fpLo) out.push(words[b + 2], words[b + 3]);
}

/**
 * Merges sorted runs into one new run file, a bounded number of entries per `step` call, so
 * that the batches written meanwhile never wait for a whole merge. Identical entries are kept
 * once. The caller installs the output (a new checkpoint) once `step` returns true.
 */
export class Merge {
  /**
   * @param {Run[]} inputs
   * @param {{id: number, level: number, handle: any}} output an empty run file
   */
  constructor(inputs, output) {
    this.inputs = inputs;
    this.output = output;
    this.readers = inputs.map((run) => ({ run, next: 0, words: new Uint32Array(0), at: 0 }));
    this.out = new Uint32Array(CHUNK_ENTRIES * ENTRY_WORDS);
    this.outEntries = 0;
    this.written = 0;
    this.last = null;
  }

  /** Merges up to `budget` entries; true once every input is consumed and the output flushed. */
  step(budget) {
    for (let n = 0; n < budget; n++) {
      let best = null;
      for (const r of this.readers) {
        if (r.at === r.words.length) {
          if (r.next >= r.run.count) continue;
          r.words = r.run.read(r.next, Math.min(CHUNK_ENTRIES, r.run.count - r.next));
          r.next += r.words.length / ENTRY_WORDS;
          r.at = 0;
          if (r.words.length === 0) {
            r.next = r.run.count; // a short read: the file is shorter than its count says
            continue;
          }
        }
        const w = r.words;
        if (!best || compare(w[r.at], w[r.at + 1], best.words[best.at], best.words[best.at + 1]) < 0) best = r;
      }
      if (!best) return this.finish();
      const w = best.words;
      const e = best.at;
      best.at += ENTRY_WORDS;
      const l = this.last;
      if (l && l[0] === w[e] && l[1] === w[e + 1] && l[2] === w[e + 2] && l[3] === w[e + 3]) continue;
      const o = this.outEntries * ENTRY_WORDS;
      this.out[o] = w[e];
      this.out[o + 1] = w[e + 1];
      this.out[o + 2] = w[e + 2];
      this.out[o + 3] = w[e + 3];
      this.last = this.out.subarray(o, o + ENTRY_WORDS);
      if (++this.outEntries === CHUNK_ENTRIES) this.drain();
    }
    return false;
  }

  drain() {
    const bytes = new Uint8Array(this.out.buffer, 0, this.outEntries * ENTRY_BYTES);
    this.output.handle.write(bytes, { at: this.written * ENTRY_BYTES });
    this.written += this.outEntries;
    this.last = this.out.slice((this.outEntries - 1) * ENTRY_WORDS, this.outEntries * ENTRY_WORDS);
    this.outEntries = 0;
  }

  finish() {
    if (this.outEntries > 0) this.drain();
    this.output.handle.flush();
    return true;
  }

  /** The merged run, once `step` returned true. */
  result() {
    return new Run({ id: this.output.id, level: this.output.level, count: this.written, handle: this.output.handle });
  }
}
