// The browser benchmark: headless Chromium (Debian's, driven by playwright-core, a fresh
// profile) runs web/bench/ for each state and prints one JSON line per state on stdout.
//
//   node bench/browser.mjs --states genesis,synthetic:100000 [--repeat 3] [--repeat-large 1] [--batch-bytes N]
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
  for (const state of states) {
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
