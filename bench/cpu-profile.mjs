// Where a Node.js process spent its time, from a V8 CPU profile (`node --cpu-prof`): shares by
// category. Prints a table on stderr and one JSON line on stdout.
//
//   node bench/cpu-profile.mjs FILE.cpuprofile [--top 15]
//
// Each sample is charged to the first category found walking its stack from the leaf up: a
// built-in (a typed array constructor, a Map lookup) counts for the code that called it, so a
// Uint8Array made by the wasm-bindgen glue is a copy across the JS boundary and one made in the
// LevelDB store is LevelDB's. Native work done on the main thread inside a binding (LevelDB's
// batch() preparing its native write batch) is charged to that binding's caller the same way.
// Work on other threads (LevelDB's writes in libuv's pool) is not in the profile at all.

import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

import { parseArgs } from './lib.mjs';

/**
 * The categories, in the order a stack frame's URL is tested against them. `engine` is the
 * WebAssembly engine itself; `handoff` the wasm-bindgen glue (copies of frames and store keys
 * and values across the boundary, JS objects built for the engine); `leveldb` the LevelDB
 * store and classic-level; `transport` ws, sockets and streams.
 */
export const CATEGORIES = [
  { name: 'engine', label: 'engine (wasm)', test: (url) => url.startsWith('wasm://') },
  { name: 'handoff', label: 'copies / JS store handoff (wasm-bindgen glue)', test: (url) => /statesync_wasm\.js(\?.*)?$/.test(url) },
  { name: 'leveldb', label: 'LevelDB (store, classic-level)', test: (url) => /leveldb-store\.mjs$|node_modules\/(classic-level|abstract-level|level-transcoder|module-error|maybe-combine-errors|napi-macros|level-supports)\//.test(url) },
  { name: 'store', label: 'JS store (memory / discard, bench)', test: (url) => /bench\/lib\.mjs$/.test(url) },
  { name: 'transport', label: 'ws / socket / streams', test: (url) => /node_modules\/ws\/|web\/lib\/transport\.mjs$|^node:(net|tls|stream|buffer|internal\/(stream_base_commons|streams|net|buffer))/.test(url) },
];

/** Leaves that are not code: V8's own entries. */
const SPECIAL = new Map([
  ['(garbage collector)', 'gc'],
  ['(idle)', 'idle'],
  ['(program)', 'program'],
]);

const LABELS = { startup: 'start-up (loading modules)', gc: 'garbage collection', idle: 'idle (waiting for I/O or timers)', program: 'V8 / native, no JS frame', other: 'other JS (orchestration, CLI, timers, events)' };

/**
 * Summarises a parsed .cpuprofile: `{ total_ms, categories: { name: { ms, share, label } },
 * top: [{ function, url, self_ms }] }`. Shares are of the whole profile, idle included.
 */
export function summarise(profile, { top = 15 } = {}) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const categoryOf = new Map();
  const classify = (id) => {
    if (categoryOf.has(id)) return categoryOf.get(id);
    const leaf = byId.get(id);
    let found = SPECIAL.get(leaf.callFrame.functionName);
    // Loading and compiling modules (start-up) is charged as such, whoever's module it was.
    for (let at = id; !found && at !== undefined; at = parent.get(at)) {
      const f = byId.get(at).callFrame;
      if (f.url.startsWith('node:internal/modules/') || f.functionName === 'compileForInternalLoader') found = 'startup';
    }
    for (let at = id; !found && at !== undefined; at = parent.get(at)) {
      const url = byId.get(at).callFrame.url;
      if (url) found = CATEGORIES.find((c) => c.test(url))?.name;
    }
    found ??= 'other';
    categoryOf.set(id, found);
    return found;
  };
  const ms = new Map();
  const self = new Map();
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < profile.samples.length; i++) {
    // timeDeltas[i] is the time before sample i; the sample stands for the interval after it.
    const dt = (deltas[i + 1] ?? 0) / 1000;
    const id = profile.samples[i];
    const cat = classify(id);
    ms.set(cat, (ms.get(cat) ?? 0) + dt);
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = (profile.endTime - profile.startTime) / 1000;
  const categories = {};
  for (const name of [...CATEGORIES.map((c) => c.name), 'gc', 'program', 'startup', 'other', 'idle']) {
    const value = ms.get(name) ?? 0;
    categories[name] = { ms: value, share: value / total, label: CATEGORIES.find((c) => c.name === name)?.label ?? LABELS[name] };
  }
  const functions = new Map();
  for (const [id, value] of self) {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url}:${f.lineNumber}`;
    const entry = functions.get(key) ?? { function: f.functionName || '(anonymous)', url: f.url, category: classify(id), self_ms: 0 };
    entry.self_ms += value;
    functions.set(key, entry);
  }
  return { total_ms: total, categories, top: [...functions.values()].sort((a, b) => b.self_ms - a.self_ms).slice(0, top) };
}

/** The summary as lines for people. */
export function formatSummary(s) {
  const lines = [`${(s.total_ms / 1000).toFixed(2)} s profiled`];
  for (const c of Object.values(s.categories)) lines.push(`  ${(c.ms / 1000).toFixed(2).padStart(7)} s  ${(c.share * 100).toFixed(1).padStart(5)} %  ${c.label}`);
  lines.push('  heaviest functions (self time):');
  for (const f of s.top) lines.push(`  ${(f.self_ms / 1000).toFixed(2).padStart(7)} s  ${f.category.padEnd(9)} ${f.function} ${f.url.replace(/^.*\/(node_modules|web|bench)\//, '$1/')}`);
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = parseArgs(process.argv.slice(2));
  const file = process.argv.slice(2).find((a) => !a.startsWith('--') && a.endsWith('.cpuprofile'));
  if (!file) {
    process.stderr.write('usage: node bench/cpu-profile.mjs FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  const summary = summarise(JSON.parse(fs.readFileSync(file, 'utf8')), { top: Number(args.top ?? 15) });
  process.stderr.write(`${formatSummary(summary)}\n`);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
