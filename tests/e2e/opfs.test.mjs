// The OPFS store in headless Chromium (web/lib/opfs-store.mjs): a batch torn by terminating
// its Worker mid-write, reopening, every committed key found, resuming, verifyState on OPFS,
// serving from it, the quota path (the browser's own quota, lowered through the DevTools
// protocol), site data cleared under a running sync, and how syncState chooses the storage.
//
//   node --test tests/e2e/opfs.test.mjs     (after scripts/build-wasm.sh)
//
// The harness page and Worker are tests/e2e/opfs-harness/; the package's files are served
// from web/lib and web/pkg as they are. Chromium is Debian's (/usr/bin/chromium, or
// $CHROMIUM), driven by playwright-core, with a fresh profile per test.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import sirv from 'sirv';

import { startPeerServer } from '../../web/cli/peer-server.mjs';
import { init, StateSource } from '../../web/lib/node.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const GENESIS_JSON = await fs.readFile(path.join(REPO, 'fixtures/genesis_mainnet.json'), 'utf8');
const MAINNET_ROOT = '0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544';
const MAINNET_ACCOUNTS = 8893;
const MAINNET_NODES = 12356;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

await init();
const genesis = StateSource.fromGenesis(GENESIS_JSON);

/** Serves the harness at /, the package's browser files at /lib/ and /pkg/, web/bench at /bench/. */
async function startHarnessServer() {
  const mount = (dir) => sirv(dir, { dev: true, dotfiles: false, etag: false });
  const mounts = [
    ['/lib/', mount(path.join(REPO, 'web/lib'))],
    ['/pkg/', mount(path.join(REPO, 'web/pkg'))],
    ['/harness/', mount(path.join(HERE, 'opfs-harness'))],
    ['/bench/', mount(path.join(REPO, 'web/bench'))],
  ];
  const server = http.createServer((req, res) => {
    const url = req.url === '/' ? '/harness/index.html' : (req.url ?? '/');
    const found = mounts.find(([prefix]) => url.startsWith(prefix));
    if (!found) {
      res.writeHead(404);
      res.end();
      return;
    }
    req.url = url.slice(found[0].length - 1);
    found[1](req, res, () => {
      res.writeHead(404);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** A fresh profile and the harness page; `run({ page, cdp, origin, problems })`; cleans up. */
async function withHarness(name, run) {
  const site = await startHarnessServer();
  const profile = await fs.mkdtemp(path.join(os.tmpdir(), `statesync-opfs-${name}-`));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  try {
    await page.goto(site.url);
    await page.waitForFunction(() => window.harness !== undefined);
    const cdp = await context.newCDPSession(page);
    await run({ page, cdp, origin: new URL(site.url).origin, problems });
  } finally {
    await context.close().catch(() => {});
    await site.close();
    await fs.rm(profile, { recursive: true, force: true });
  }
}

const spawn = (page) => page.evaluate(() => window.harness.spawn());
const call = (page, id, cmd, args) => page.evaluate(([i, c, a]) => window.harness.call(i, c, a), [id, cmd, args]);

/** Polls a worker's events until one satisfies `predicate` (no time limit of its own: the test runner's). */
async function eventOf(page, id, predicate) {
  for (;;) {
    const events = await page.evaluate((i) => window.harness.events(i), id);
    const found = events.find(predicate);
    if (found) return found;
    const failed = events.find((e) => e.type === 'workerError');
    if (failed) throw new Error(`the worker failed: ${failed.message}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Syncs `state` into `name` until batch `tearAtBatch` is half written (its frame, not its
 * commit marker), terminates the Worker there, and returns what the acknowledged batches
 * stored and the torn batch's keys.
 */
async function syncAndTear(page, args) {
  const id = await spawn(page);
  await page.evaluate(([i, a]) => window.harness.post(i, 'sync', a), [id, args]);
  const tearing = await eventOf(page, id, (e) => e.type === 'tearing');
  await page.evaluate((i) => window.harness.kill(i), id);
  return tearing;
}

test('a batch torn by terminating the Worker mid-write leaves nothing of it; reopen finds every committed key; the sync resumes, verifies and serves', async (t) => {
  await withHarness('torn', async ({ page, problems }) => {
    const state = { state: 'genesis', genesisJson: GENESIS_JSON };
    const tearing = await syncAndTear(page, { name: 'torn', ...state, batchBytes: 65_536, tearAtBatch: 6 });
    assert.equal(tearing.acked.batches, 5);
    assert.ok(tearing.acked.keys.length > 0 && tearing.torn.length > 0, `acknowledged ${tearing.acked.keys.length} keys, torn batch ${tearing.torn.length}`);

    const checker = await spawn(page);
    const reopened = await call(page, checker, 'reopen', { name: 'torn', ...state, acked: tearing.acked, torn: tearing.torn });
    assert.ok(reopened.stats.droppedBytes > 0, `the torn frame was dropped on open: ${JSON.stringify(reopened.stats)}`);
    assert.equal(reopened.found, reopened.ackedKeys, 'every key of an acknowledged batch is found');
    assert.equal(reopened.equalValues, reopened.ackedKeys, 'with its value');
    assert.equal(reopened.tornFound, 0, 'no key of the torn batch is there');
    assert.ok(reopened.progressIsLastAcked, 'the progress record is the last acknowledged batch’s');
    assert.equal(reopened.record.root, MAINNET_ROOT);

    const resumed = await call(page, checker, 'sync', { name: 'torn', ...state, frames: 8 });
    assert.equal(resumed.phase, 'done');
    assert.ok(resumed.processed < MAINNET_NODES, `the resumed sync fetched ${resumed.processed} of ${MAINNET_NODES}`);
    assert.equal(resumed.committed, MAINNET_NODES);
    assert.equal(resumed.verified.accounts, MAINNET_ACCOUNTS);
    assert.equal(resumed.verified.nodes, MAINNET_NODES);
    assert.equal(resumed.served, resumed.requests, 'answers served from OPFS equal the source’s own');

    // verifyState of the package, on the OPFS store it finds under that database name.
    const report = await page.evaluate(async () => {
      const { verifyState } = await import('statesync');
      return verifyState({ database: 'torn' });
    });
    assert.equal(report.accounts, MAINNET_ACCOUNTS);
    assert.equal(report.nodes, MAINNET_NODES);
    t.diagnostic(`torn at batch 6 (${tearing.torn.length} keys): ${reopened.found} of ${reopened.ackedKeys} acknowledged keys found after reopening, ${reopened.stats.droppedBytes} bytes dropped; the resumed sync fetched ${resumed.processed}, took ${resumed.restored} back from staging`);
    assert.deepEqual(problems, []);
  });
});

test('an index spread over runs and merges: every committed key found after a torn batch; the sync resumes and verifies', async (t) => {
  const accounts = 30_000;
  await withHarness('runs', async ({ page, problems }) => {
    // 1 MiB of store memory: 8,192 index entries per run, so ~95k items make a dozen runs and merges.
    const args = { name: 'runs', state: `synthetic:${accounts}:3`, memoryBytes: 2 ** 20 };
    const tearing = await syncAndTear(page, { ...args, tearAfterKeys: 20_000 });
    const checker = await spawn(page);
    const reopened = await call(page, checker, 'reopen', { ...args, acked: tearing.acked, torn: tearing.torn });
    // More keys than the memtable holds (8,192): found through index runs on disk (how many
    // runs depends on how far their merges got).
    assert.ok(reopened.stats.runs >= 1 && reopened.ackedKeys >= 20_000, `the index is in runs: ${reopened.ackedKeys} keys, ${JSON.stringify(reopened.stats)}`);
    assert.equal(reopened.found, reopened.ackedKeys);
    assert.equal(reopened.equalValues, reopened.ackedKeys);
    assert.equal(reopened.tornFound, 0);
    assert.ok(reopened.progressIsLastAcked);
    const resumed = await call(page, checker, 'sync', args);
    assert.equal(resumed.phase, 'done');
    assert.equal(resumed.verified.accounts, accounts);
    assert.ok(resumed.stats.merges > 0, `runs were merged: ${JSON.stringify(resumed.stats)}`);
    t.diagnostic(`${reopened.ackedKeys} keys in ${tearing.acked.batches} batches found after reopening (${reopened.stats.runs} runs); the resumed sync: ${resumed.committed} items, ${resumed.stats.runs.length} runs (${resumed.stats.merges} merges), ${resumed.stats.checkpoints} checkpoints`);
    assert.deepEqual(problems, []);
  });
});

test('quota exhausted: the write fails whole with the typed error, the sync pauses; with room again resume() finishes', async (t) => {
  const accounts = 10_000;
  await withHarness('quota', async ({ page, cdp, origin, problems }) => {
    // The browser's own quota for this origin, lowered: a few batches fit, the state does not.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 2_000_000 });
    const id = await spawn(page);
    const args = { name: 'quota', state: `synthetic:${accounts}:5`, batchBytes: 262_144 };
    const syncing = call(page, id, 'sync', args);
    const paused = await eventOf(page, id, (e) => e.type === 'paused');
    assert.equal(paused.reason, 'QuotaExceeded', `paused: ${JSON.stringify(paused)}`);
    const tail = await call(page, await spawn(page), 'logTail', { name: 'quota' });
    assert.ok(tail.whole, `the log ends on a whole frame while paused (${tail.size} bytes)`);
    assert.ok(tail.size < 2_000_000);

    await cdp.send('Storage.overrideQuotaForOrigin', { origin }); // the browser's quota again
    await call(page, id, 'resume');
    const result = await syncing;
    assert.equal(result.phase, 'done');
    assert.equal(result.verified.accounts, accounts);
    t.diagnostic(`paused by the quota with ${tail.size} bytes of whole frames (${paused.message}); resumed to ${result.committed} items`);
    assert.deepEqual(problems, []);
  });
});

test('the store deleted underneath a running sync (site data cleared): the write is refused as STORE_CLOSED and nothing of it is kept; a new sync starts over and finishes', async (t) => {
  const accounts = 10_000;
  await withHarness('cleared', async ({ page, cdp, origin, problems }) => {
    const id = await spawn(page);
    const args = { name: 'cleared', state: `synthetic:${accounts}:5`, batchBytes: 262_144 };
    const syncing = call(page, id, 'sync', { ...args, holdAtBatch: 3 });
    await eventOf(page, id, (e) => e.type === 'holding');
    await cdp.send('Storage.clearDataForOrigin', { origin, storageTypes: 'file_systems' });
    // Held over a second: the store asks whether its directory is still there before the next
    // write (while batches follow closely it asks in the background, once a second).
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await call(page, id, 'release');
    const paused = await eventOf(page, id, (e) => e.type === 'paused');
    assert.equal(paused.reason, 'Closed', `paused: ${JSON.stringify(paused)}`);
    await call(page, id, 'cancel');
    const cancelled = await syncing;
    assert.notEqual(cancelled.phase, 'done');
    assert.equal(cancelled.batches, 2, 'the first batch after the clear was refused');
    await page.evaluate((i) => window.harness.kill(i), id);
    const left = await page.evaluate(async () => {
      const names = [];
      for await (const name of (await navigator.storage.getDirectory()).keys()) names.push(name);
      return names;
    });
    assert.deepEqual(left, [], 'nothing of the cleared store (or of the refused batch) is in the origin');

    // Chromium 156 keeps the removed log's lock until the browser exits (its handles cannot be
    // closed: docs/BROWSER.md), so the new sync uses another database name.
    const again = await call(page, await spawn(page), 'sync', { ...args, name: 'cleared-again' });
    assert.equal(again.phase, 'done');
    assert.equal(again.processed, again.committed, 'the new sync fetched everything');
    assert.equal(again.verified.accounts, accounts);
    t.diagnostic(`cleared before batch 3: ${paused.message}; the new sync fetched ${again.processed} items`);
    assert.deepEqual(problems, []);
  });
});

test('syncState keeps a browser database in OPFS by default (storage "indexeddb" still chosen when asked); verifyState and readProgress find it', async (t) => {
  await withHarness('package', async ({ page, problems }) => {
    const peer = await startPeerServer({ source: genesis });
    try {
      const out = await page.evaluate(
        async ([url, root]) => {
          const { syncState, verifyState, readProgress } = await import('statesync');
          const starts = [];
          const onEvent = (e) => e.type === 'start' && starts.push(e.storage);
          const opfs = await syncState({ root, peers: [url], database: 'pkg-default', onEvent });
          const idb = await syncState({ root, peers: [url], database: 'pkg-idb', storage: 'indexeddb', onEvent });
          const again = await syncState({ root, peers: [url], database: 'pkg-default', onEvent });
          const opfsDirs = [];
          for await (const name of (await (await navigator.storage.getDirectory()).getDirectoryHandle('statesync')).keys()) opfsDirs.push(name);
          return {
            starts,
            committed: [opfs.committed, idb.committed, again.committed],
            againProcessed: again.processed,
            verified: await verifyState({ database: 'pkg-default' }),
            verifiedIdb: await verifyState({ database: 'pkg-idb' }),
            progress: await readProgress({ database: 'pkg-default' }),
            opfsDirs,
          };
        },
        [peer.url, MAINNET_ROOT],
      );
      assert.deepEqual(out.starts, ['opfs', 'indexeddb', 'opfs']);
      assert.deepEqual(out.committed, [MAINNET_NODES, MAINNET_NODES, MAINNET_NODES]);
      assert.equal(out.againProcessed, 0, 'the second sync of the OPFS database found it complete');
      assert.equal(out.verified.accounts, MAINNET_ACCOUNTS);
      assert.equal(out.verified.nodes, MAINNET_NODES);
      assert.equal(out.verifiedIdb.accounts, MAINNET_ACCOUNTS);
      assert.equal(out.progress.root, MAINNET_ROOT);
      assert.ok(out.progress.complete);
      assert.deepEqual(out.opfsDirs, ['pkg-default']);
      t.diagnostic(`storage chosen: ${out.starts.join(', ')}; verifyState on OPFS: ${out.verified.accounts} accounts, ${out.verified.nodes} nodes`);
      assert.deepEqual(problems, []);
    } finally {
      await peer.close();
    }
  });
});
