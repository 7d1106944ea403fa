// The page's main thread during a browser sync: headless Chromium (Debian's, a fresh profile
// per run) opens the example page and calls `syncState` of the 279,208-item synthetic state
// (100,000 accounts, seed 7: the demo's --synthetic 100000:7) from three local WebSocket peers
// into IndexedDB, once with the engine in the package's Worker (the default) and once with
// `worker: false` (the engine on the page's thread), and reports the main thread's long tasks
// (PerformanceObserver `longtask`: tasks over 50 ms) while it ran. One JSON line per mode.
//
//   node bench/main-thread.mjs [--accounts 100000] [--seed 7] [--modes worker,main]
//
// CHROMIUM overrides /usr/bin/chromium.

import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

import { startPeerServer } from '../web/cli/peer-server.mjs';
import { startStaticServer } from '../web/cli/static-server.mjs';
import { init, StateSource } from '../web/lib/node.mjs';
import { parseArgs, log } from './lib.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const args = parseArgs(process.argv.slice(2));
const accounts = Number(args.accounts ?? 100_000);
const seed = Number(args.seed ?? 7);
const modes = String(args.modes ?? 'worker,main').split(',');

await init();
const source = StateSource.synthetic(accounts, seed);
const items = source.nodeCount + source.codeCount;
const peers = [];
for (let i = 0; i < 3; i++) peers.push(await startPeerServer({ source, port: 0, seed: 1 + i }));
const site = await startStaticServer({ port: 0 });
log(`main thread: ${items} items (${accounts} accounts, seed ${seed}) from ${peers.length} peers`);

try {
  for (const mode of modes) {
    const profile = await fs.mkdtemp(path.join(os.tmpdir(), 'statesync-bench-main-'));
    const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.addInitScript(() => {
        window.__longTasks = [];
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
        }).observe({ type: 'longtask' });
      });
      await page.goto(site.url);
      await page.waitForFunction(() => window.statesync?.ready);
      const result = await page.evaluate(
        async ({ root, urls, worker }) => {
          const { syncState } = await import('statesync');
          let reports = 0;
          const began = performance.now();
          const summary = await syncState({ root, peers: urls, database: 'bench-main-thread', worker, batchBytes: 128 * 1024, onProgress: () => reports++ });
          const ended = performance.now();
          const tasks = window.__longTasks.filter((t) => t.start >= began && t.start <= ended);
          return {
            ms: ended - began,
            committed: summary.committed,
            reports,
            longTasks: tasks.length,
            longestMs: tasks.reduce((m, t) => Math.max(m, t.duration), 0),
            blockingMs: tasks.reduce((sum, t) => sum + (t.duration - 50), 0),
          };
        },
        { root: source.root, urls: peers.map((p) => p.url), worker: mode === 'worker' },
      );
      if (result.committed !== items) throw new Error(`${mode}: committed ${result.committed} of ${items}`);
      const line = { mode, items, ...result, items_per_sec: items / (result.ms / 1000), chromium: context.browser()?.version() ?? null };
      log(`main thread, engine in ${mode === 'worker' ? 'the Worker' : 'the page'}: ${result.longTasks} long tasks, longest ${Math.round(result.longestMs)} ms, ${Math.round(result.blockingMs)} ms blocking, sync ${(result.ms / 1000).toFixed(1)} s`);
      process.stdout.write(`${JSON.stringify(line)}\n`);
    } finally {
      await context.close().catch(() => {});
      await fs.rm(profile, { recursive: true, force: true });
    }
  }
} finally {
  await Promise.all(peers.map((p) => p.close()));
  await site.close();
}
