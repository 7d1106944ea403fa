// The browser benchmark: headless Chromium (Debian's, driven by playwright-core, a fresh
// profile) runs web/bench/ for each state and prints one JSON line per state on stdout.
//
//   node bench/browser.mjs --states genesis,synthetic:100000 [--repeat 3] [--repeat-large 1] [--batch-bytes N]
//   node bench/browser.mjs --storage opfs --states synthetic:100000,synthetic:1000000 [--raw-idb-large | --no-raw-idb]
//
// --storage opfs: the engine into the OPFS store in a Worker, against raw OPFS appends and raw
// IndexedDB puts of the same batches and the engine alone (its memory store) in that Worker
// (web/bench/opfs-worker.mjs); the raw
// IndexedDB pass is left out for states over 500,000 items unless --raw-idb-large, and for all
// with --no-raw-idb (npm run bench compares with the IndexedDB rows of the same run instead).
//
// States of more than 500,000 items are run --repeat-large times (a pass takes minutes).
//
// CHROMIUM overrides /usr/bin/chromium.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { startStaticServer } from '../web/cli/static-server.mjs';
import { GENESIS_FIXTURE, parseArgs, log } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const args = parseArgs(process.argv.slice(2));
const states = String(args.states ?? 'genesis,synthetic:100000').split(',').filter(Boolean);
const repeat = Number(args.repeat ?? 3);
const repeatLarge = Number(args['repeat-large'] ?? 1);
const LARGE_ITEMS = 500_000;
const batchBytes = Number(args['batch-bytes'] ?? 1 << 20);
const opfs = args.storage === 'opfs';
const isLarge = (state) => /^synthetic[:-](\d+)$/.test(state) && Number(/\d+/.exec(state)[0]) > LARGE_ITEMS;

const genesisJson = await fs.readFile(GENESIS_FIXTURE, 'utf8');
const site = await startStaticServer({ port: 0 });
const profile = await fs.mkdtemp(path.join(os.tmpdir(), 'statesync-bench-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(new URL('bench/index.html', site.url).href);
  await page.waitForFunction(() => window.bench !== undefined);
  await page.evaluate(() => window.bench.ready);
  const version = context.browser()?.version() ?? null;
  for (const state of opfs ? states : []) {
    const rawIndexedDb = !args['no-raw-idb'] && (!isLarge(state) || Boolean(args['raw-idb-large']));
    const times = isLarge(state) ? repeatLarge : repeat;
    log(`browser: ${state}: syncing into OPFS in a Worker, replaying raw OPFS appends (${times}x)${rawIndexedDb ? ' and raw IndexedDB puts (once)' : ''}`);
    const result = await page.evaluate((o) => window.bench.runOpfs(o), { state, genesisJson: state === 'genesis' ? genesisJson : undefined, repeat: times, batchBytes, rawIndexedDb });
    if (problems.length) throw new Error(`page errors: ${problems.join('; ')}`);
    result.chromium = version;
    log(`browser: ${result.state}: sync into OPFS ${Math.round(result.sync_items_per_sec)} items/s, engine alone ${Math.round(result.engine_memory_items_per_sec)}, raw OPFS ${Math.round(result.raw_opfs_items_per_sec)}, raw IndexedDB ${result.raw_idb_items_per_sec === null ? 'not run' : Math.round(result.raw_idb_items_per_sec)}; sync/raw OPFS ${result.sync_to_raw_opfs.toFixed(3)}${result.sync_to_raw_idb === null ? '' : `, sync/raw IndexedDB ${result.sync_to_raw_idb.toFixed(2)}x`}; main thread: ${result.main_thread_long_tasks} long tasks (longest ${Math.round(result.main_thread_longest_task_ms)} ms)`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
  for (const state of opfs ? [] : states) {
    log(`browser: ${state}: syncing into IndexedDB and replaying raw puts (${repeat}x)`);
    const result = await page.evaluate((o) => window.bench.run(o), {
      state,
      genesisJson: state === 'genesis' ? genesisJson : undefined,
      repeat: /^synthetic[:-](\d+)$/.test(state) && Number(/\d+/.exec(state)[0]) > LARGE_ITEMS ? repeatLarge : repeat,
      batchBytes,
    });
    if (problems.length) throw new Error(`page errors: ${problems.join('; ')}`);
    result.chromium = version;
    log(`browser: ${result.state}: sync ${Math.round(result.sync_items_per_sec)} items/s, raw puts ${Math.round(result.raw_items_per_sec)} items/s, raw/sync ${result.raw_to_sync.toFixed(3)} (${result.batches} batches, largest ${result.largest_batch_items} ops, lag at most ${result.peak_unwritten_items} items)`);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  }
} finally {
  await context?.close().catch(() => {});
  await site.close();
  await fs.rm(profile, { recursive: true, force: true });
}
