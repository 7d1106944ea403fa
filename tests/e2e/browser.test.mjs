// End-to-end in headless Chromium: the example page (web/page, which imports `statesync` and
// runs the engine in the package's Worker) syncs the mainnet genesis state from local
// WebSocket peers into the Origin Private File System (the package's default where the browser
// has it; IndexedDB is tested in tests/e2e/opfs.test.mjs and the wasm tests), survives a reload in the middle by resuming on its own, and
// verifies the stored state. Then: a peer that sends garbage, corrupts answers and drops its
// connections; two tabs on one database (one writes, the other follows and takes over when
// the first closes; another root is refused); the main thread during a 279k-item sync.
//
//   node --test tests/e2e/browser.test.mjs     (after scripts/build-wasm.sh)
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by playwright-core; every
// run gets a fresh profile. Screenshots go to tests/e2e/artifacts/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { startPeerServer } from '../../web/cli/peer-server.mjs';
import { startStaticServer } from '../../web/cli/static-server.mjs';
import { init, StateSource } from '../../web/lib/node.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const ARTIFACTS = path.join(HERE, 'artifacts');

const MAINNET_ROOT = '0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544';
const MAINNET_ACCOUNTS = 8893;
const MAINNET_NODES = 12356;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Deadlines only stop a hung run: the syncs here take seconds, a busy machine may make that
// minutes, and neither may fail the test.
const PATIENCE_MS = 10 * 60_000;
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

await init();
const source = StateSource.fromGenesis(await fs.readFile(path.join(REPO, 'fixtures/genesis_mainnet.json'), 'utf8'));

/** Starts peers, the static server and a fresh Chromium profile; `run(env)`; cleans up. */
async function withSetup({ peerFaults, name, state = source, config = {} }, run) {
  const peers = [];
  for (const [i, faults] of peerFaults.entries()) peers.push(await startPeerServer({ source: state, faults, seed: 100 + i }));
  const site = await startStaticServer({ config: { peers: peers.map((p) => p.url), root: state.root, ...config } });
  const profile = await fs.mkdtemp(path.join(os.tmpdir(), `statesync-e2e-${name}-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1100, height: 900 },
    // Playwright's own 30 s default for launching, navigating and clicking, widened likewise.
    timeout: PATIENCE_MS,
  });
  context.setDefaultTimeout(PATIENCE_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  try {
    await run({ page, site, peers, problems, context });
  } finally {
    await context.close().catch(() => {});
    await Promise.all(peers.map((p) => p.close()));
    await site.close();
    await fs.rm(profile, { recursive: true, force: true });
  }
}

/** The page's test hook, as plain data. */
const hook = (page) =>
  page.evaluate(() => {
    const h = window.statesync;
    if (!h) return null;
    return {
      ready: h.ready,
      running: h.running,
      finished: h.finished,
      autoStarted: h.autoStarted,
      following: h.following,
      tookOver: h.tookOver,
      summary: h.summary,
      lastStart: h.lastStart,
      persisted: h.persisted,
      foundAtLoad: h.foundAtLoad,
      resumedFrom: h.resumedFrom,
      lastProgress: h.lastProgress,
      lastEventType: h.lastEvent?.type ?? null,
      verified: h.verified,
      error: h.error,
      eventCounts: h.eventCounts,
    };
  });

async function waitFor(page, what, predicate, { timeoutMs = PATIENCE_MS, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await hook(page);
    if (last?.error) throw new Error(`page error while waiting for ${what}: ${JSON.stringify(last.error)}`);
    if (last && predicate(last)) return last;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}; last state: ${JSON.stringify(last)?.slice(0, 2000)}`);
}

async function openAndStart(page, site, root = MAINNET_ROOT) {
  await page.goto(site.url);
  await waitFor(page, 'the page to load', (h) => h.ready);
  // The form is prefilled from /config.json.
  assert.equal(await page.inputValue('#root'), root);
  assert.equal((await page.inputValue('#peers')).split('\n').length, 3);
  await page.getByRole('button', { name: 'Start' }).click();
}

async function checkVerified(page, h) {
  assert.equal(h.verified.accounts, MAINNET_ACCOUNTS);
  assert.equal(h.verified.nodes, MAINNET_NODES);
  assert.equal(h.lastProgress.phase, 'done');
  assert.equal(h.lastProgress.fraction, 1);
  // Kept in OPFS, and the page shows it and what navigator.storage.persist() answered.
  assert.equal(h.lastStart.storage, 'opfs');
  assert.equal(await page.textContent('#storage-kind'), 'Origin Private File System');
  assert.equal(typeof h.persisted, 'boolean');
  assert.match(await page.textContent('#persisted'), h.persisted ? /^granted/ : /^not granted/);
  // verifyState once more, from the test, on the page's database.
  const again = await page.evaluate(async (root) => {
    const { verifyState } = await import('statesync');
    return verifyState({ root, database: 'statesync' });
  }, MAINNET_ROOT);
  assert.equal(again.accounts, h.verified.accounts);
  assert.equal(again.nodes, h.verified.nodes);
  assert.match(await page.textContent('#status'), /verified/i);
  assert.equal(await page.textContent('#v-accounts'), '8,893');
}

test('the page syncs the mainnet genesis into OPFS, resumes by itself after a reload and verifies it', async (t) => {
  // Slow peers with small answers and small batches, so that there is a middle to reload in
  // whatever the machine's load: about 40 round trips of 250-350 ms (a busy machine only makes
  // it longer), and a batch lands every ~550 items (64 KiB) instead of after the time cut, so
  // some of the state is committed long before 70 %.
  const slow = { latencyMs: 250, jitterMs: 100, maxItems: 24 };
  await withSetup({ name: 'reload', peerFaults: [slow, slow, slow], config: { batchBytes: 65536 } }, async ({ page, site, problems }) => {
    await openAndStart(page, site);
    const before = await waitFor(
      page,
      'progress between 10% and 70% with batches committed',
      (h) => h.lastProgress && h.lastProgress.fraction >= 0.1 && h.lastProgress.fraction <= 0.7 && h.lastProgress.committed > 0,
      { intervalMs: 25 },
    );
    assert.ok(before.lastProgress.fraction < 0.7, `reloading at ${before.lastProgress.fraction}`);
    await fs.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'syncing.png'), fullPage: true });
    await page.reload();

    const resumed = await waitFor(page, 'the page to resume by itself', (h) => h.ready && h.autoStarted);
    assert.equal(resumed.resumedFrom.root, MAINNET_ROOT);
    assert.equal(resumed.resumedFrom.complete, false);
    assert.ok(resumed.resumedFrom.committedItems > 0);

    // Stop (an AbortSignal: the worker flushes what is complete), then Start resumes.
    await page.getByRole('button', { name: 'Stop' }).click();
    const stopped = await waitFor(page, 'the sync to stop', (h) => !h.running);
    if (!stopped.finished) {
      assert.match(await page.textContent('#status'), /stopped/i);
      await page.getByRole('button', { name: 'Start' }).click();
    }

    const done = await waitFor(page, 'the resumed sync to finish and verify', (h) => h.verified);
    await checkVerified(page, done);
    const p = done.lastProgress;
    assert.equal(p.committed, MAINNET_NODES, 'every node committed once, over both sessions');
    assert.ok(p.skipped > 0 || p.processed < MAINNET_NODES, `resume fetched everything again: ${JSON.stringify(p)}`);
    assert.ok(p.processed < MAINNET_NODES);
    t.diagnostic(
      `reloaded at ${(before.lastProgress.fraction * 100).toFixed(1)}% with ${before.lastProgress.committed} committed; ` +
        `resumed from ${resumed.resumedFrom.committedItems} stored items, fetched ${p.processed}, skipped ${p.skipped} subtries`,
    );
    assert.deepEqual(problems, []);
    await page.screenshot({ path: path.join(ARTIFACTS, 'finished.png'), fullPage: true });
  });
});

test('a reload at 90 % with fast peers keeps at least 85 % stored and fetches at most 15 % again', async (t) => {
  const big = StateSource.synthetic(100_000, 7);
  const items = big.nodeCount + big.codeCount;
  await withSetup({ name: 'reload90', peerFaults: [{}, {}, {}], state: big }, async ({ page, site, peers, problems }) => {
    await openAndStart(page, site, big.root);
    // Freeze the sync once the peers were asked for 90 % of the items: with fast peers the
    // last 10 % takes a fraction of a second, less than the page's progress reports lag, and a
    // reload that lands after the end finds a complete state, not one to resume. The peers run
    // in this process, so their count is seen at once; their answers are parked from here on.
    const asked = () => peers.reduce((n, p) => n + p.stats.hashes, 0);
    await new Promise((resolve) => {
      const poll = setInterval(() => asked() >= 0.9 * items && resolve(clearInterval(poll)), 1);
    });
    const releases = peers.map((p) => p.hold());
    const askedAtHold = asked();
    const before = await hook(page);
    await page.reload();
    const loaded = await waitFor(page, 'the reloaded page to read its stored progress', (h) => h.ready);
    for (const release of releases) release();
    assert.ok(loaded.autoStarted && loaded.resumedFrom, `the reloaded page did not resume by itself: ${JSON.stringify(loaded)}`);
    const resumed = loaded;
    const record = resumed.resumedFrom;
    const storedAtLoad = record.committedItems + record.stagedItems;
    // What the page shows once the resumed sync reports.
    const shown = await waitFor(page, 'the first progress after the reload', (h) => h.lastProgress && h.lastProgress.processed === 0 && h.lastProgress.committed >= record.committedItems, { intervalMs: 20 }).then(async () => Number((await page.textContent('#committed')).replace(/,/g, '')));
    const done = await waitFor(page, 'the resumed sync to finish and verify', (h) => h.verified, { timeoutMs: 600_000, intervalMs: 250 });
    const fetchedAgain = done.summary.processed;
    t.diagnostic(
      `reloaded with ${askedAtHold} items asked of ${items} (${((100 * askedAtHold) / items).toFixed(1)} %), the page last reported ${before?.lastProgress?.processed} fetched; ` +
        `stored at the reload ${storedAtLoad} (${((100 * storedAtLoad) / items).toFixed(1)} %: ${record.committedItems} complete, ${record.stagedItems} staged), the page showed ${shown}; ` +
        `the second session fetched ${fetchedAgain} (${((100 * fetchedAgain) / items).toFixed(1)} %) and took ${done.summary.restored} back from staging`,
    );
    assert.ok(storedAtLoad >= 0.85 * items, `only ${storedAtLoad} of ${items} stored after the reload`);
    assert.ok(shown >= 0.85 * items, `the page shows ${shown} stored`);
    assert.ok(fetchedAgain <= 0.15 * items, `fetched ${fetchedAgain} of ${items} again`);
    assert.equal(done.summary.committed, items);
    assert.equal(done.verified.accounts, 100_000);
    assert.deepEqual(problems, []);
  });
});

test('a peer sending garbage and dropping its connections does not stop the page from finishing', async (t) => {
  // The good peers are slower, so the bad one is asked often.
  const good = { latencyMs: 80, jitterMs: 40, maxItems: 256 };
  const bad = { garbageRate: 0.25, corruptRate: 0.25, closeAfter: 6 };
  await withSetup({ name: 'faulty', peerFaults: [good, bad, good] }, async ({ page, site, peers, problems }) => {
    await openAndStart(page, site);
    const done = await waitFor(page, 'the sync to finish and verify', (h) => h.verified);
    await checkVerified(page, done);
    const faulty = peers[1].stats;
    assert.ok(faulty.closed > 0, `the faulty peer closed connections: ${JSON.stringify(faulty)}`);
    assert.ok(faulty.garbage + faulty.corrupted > 0, `the faulty peer misbehaved: ${JSON.stringify(faulty)}`);
    assert.ok(faulty.connections > 1, 'the page reconnected to it');
    t.diagnostic(`faulty peer: ${JSON.stringify(faulty)}; page events: ${JSON.stringify(done.eventCounts)}`);
    assert.deepEqual(problems, []);
    await fs.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'finished-faulty-peer.png'), fullPage: true });
  });
});

test('two tabs on one database: one syncs, the other follows and takes over when it closes; another root is refused', async (t) => {
  const slow = { latencyMs: 150, jitterMs: 50, maxItems: 64 };
  await withSetup({ name: 'tabs', peerFaults: [slow, slow, slow] }, async ({ page: first, site, peers, problems, context }) => {
    const connections = () => peers.reduce((n, p) => n + p.stats.connections, 0);
    await openAndStart(first, site);
    await waitFor(first, 'a first batch committed', (h) => h.lastProgress?.committed > 0, { intervalMs: 25 });

    // The second tab finds the unfinished sync stored, resumes it by itself, and follows.
    const second = await context.newPage();
    second.on('pageerror', (err) => problems.push(`second tab: page error: ${err.message}`));
    await second.goto(site.url);
    const following = await waitFor(second, 'the second tab to follow the first', (h) => h.autoStarted && h.following && h.lastProgress);
    const seen = following.lastProgress.committed;
    await waitFor(second, "the first tab's progress in the second", (h) => h.lastProgress.committed > seen);
    assert.equal(connections(), 3, 'the following tab opens no connection of its own');

    // Another root on the same database, while this one runs: a typed error, nothing switched.
    const other = `0x${'11'.repeat(32)}`;
    const refused = await second.evaluate(
      async ({ root, urls }) => {
        const { syncState } = await import('statesync');
        try {
          await syncState({ root, peers: urls, database: 'statesync' });
          return null;
        } catch (err) {
          return { code: err.code, runningRoot: err.runningRoot, message: err.message };
        }
      },
      { root: other, urls: peers.map((p) => p.url) },
    );
    assert.equal(refused?.code, 'DATABASE_BUSY', JSON.stringify(refused));
    assert.equal(refused.runningRoot, MAINNET_ROOT);

    // Closing the first tab hands the sync over: the second resumes from what is stored.
    const atClose = (await hook(first)).lastProgress.committed;
    await first.close();
    const done = await waitFor(second, 'the second tab to take over, finish and verify', (h) => h.tookOver && h.verified);
    await checkVerified(second, done);
    const stored = done.lastStart.storedItems;
    assert.ok(stored >= atClose, `resumed from ${stored}, the first tab had committed ${atClose}`);
    assert.equal(done.summary.committed, MAINNET_NODES);
    assert.ok(done.summary.processed <= MAINNET_NODES - stored, `fetched ${done.summary.processed} with ${stored} of ${MAINNET_NODES} stored`);
    t.diagnostic(`first tab closed at ${atClose} committed; the second resumed from ${stored} and fetched ${done.summary.processed} (${MAINNET_NODES - stored} missing)`);
    assert.deepEqual(problems, []);
  });
});

test('during a 279k-item sync the main thread only renders: no wasm on it, its long tasks reported', async (t) => {
  const big = StateSource.synthetic(100_000, 7);
  const items = big.nodeCount + big.codeCount;
  await withSetup({ name: 'longtasks', peerFaults: [{}, {}, {}], state: big }, async ({ page, site, problems }) => {
    await page.addInitScript(() => {
      const watch = { longTasks: [], wasmCalls: 0 };
      window.__mainThread = watch;
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) watch.longTasks.push({ start: e.startTime, duration: e.duration });
      }).observe({ type: 'longtask' });
      for (const name of ['instantiate', 'instantiateStreaming', 'compile', 'compileStreaming']) {
        const original = WebAssembly[name];
        WebAssembly[name] = function (...args) {
          watch.wasmCalls++;
          return original.apply(this, args);
        };
      }
    });
    await openAndStart(page, site, big.root);
    const began = await page.evaluate(() => performance.now());
    const done = await waitFor(page, 'the 279k-item sync to finish and verify', (h) => h.verified, { timeoutMs: 600_000, intervalMs: 250 });
    // The observer is live: a 120 ms busy loop in a task of the page's own (a timer; code that
    // Playwright evaluates does not count as a task) shows up as a long task.
    await page.evaluate(
      () =>
        new Promise((resolve) =>
          setTimeout(() => {
            const end = performance.now() + 120;
            while (performance.now() < end);
            resolve();
          }, 0),
        ),
    );
    await page.waitForTimeout(300);
    const watch = await page.evaluate(() => window.__mainThread);
    assert.ok(watch.longTasks.some((task) => task.duration >= 100 && task.start > began), `the busy loop was not observed: ${JSON.stringify(watch.longTasks)}`);
    const syncEnd = began + done.summary.elapsedMs + 1000;
    const during = watch.longTasks.filter((task) => task.start >= began && task.start <= syncEnd);
    const longest = during.reduce((m, task) => Math.max(m, task.duration), 0);
    const figures = { items, syncMs: done.summary.elapsedMs, longTasks: during.length, over50ms: during.filter((x) => x.duration > 50).length, longestMs: Math.round(longest), chromium: page.context().browser()?.version() ?? null };
    await fs.mkdir(ARTIFACTS, { recursive: true });
    await fs.writeFile(path.join(ARTIFACTS, 'main-thread-long-tasks.json'), `${JSON.stringify(figures, null, 2)}\n`);
    t.diagnostic(`main thread during a ${items}-item sync (${(done.summary.elapsedMs / 1000).toFixed(1)} s): ${figures.longTasks} long tasks, longest ${figures.longestMs} ms (figures, not a pass mark: a busy machine stretches tasks)`);
    assert.equal(watch.wasmCalls, 0, 'the page compiled or instantiated WebAssembly on its main thread');
    assert.equal(done.summary.committed, items);
    assert.equal(done.verified.accounts, 100_000);
    assert.deepEqual(problems, []);
  });
});
