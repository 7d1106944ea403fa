// End-to-end in headless Chromium: the page (web/page) syncs the mainnet genesis state from
// local WebSocket peers into IndexedDB, survives a reload in the middle by resuming on its
// own, and verifies the stored state in the page. A second run has one peer that sends
// garbage, corrupts answers and drops its connections.
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
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import { startPeerServer } from '../../web/peer-server.mjs';
import { startStaticServer } from '../../web/static-server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const ARTIFACTS = path.join(HERE, 'artifacts');
const require = createRequire(import.meta.url);
const { StateSource } = require(path.join(REPO, 'web/pkg/node/statesync_wasm.js'));

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

const source = StateSource.fromGenesis(await fs.readFile(path.join(REPO, 'fixtures/genesis_mainnet.json'), 'utf8'));

/** Starts peers, the static server and a fresh Chromium profile; `run(env)`; cleans up. */
async function withSetup({ peerFaults, name }, run) {
  const peers = [];
  for (const [i, faults] of peerFaults.entries()) peers.push(await startPeerServer({ source, faults, seed: 100 + i }));
  const site = await startStaticServer({ config: { peers: peers.map((p) => p.url), root: MAINNET_ROOT } });
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
    await run({ page, site, peers, problems });
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

async function openAndStart(page, site) {
  await page.goto(site.url);
  await waitFor(page, 'the page to load', (h) => h.ready);
  // The form is prefilled from /config.json.
  assert.match(await page.inputValue('#root'), /^0xd7f8974f/);
  assert.equal((await page.inputValue('#peers')).split('\n').length, 3);
  await page.getByRole('button', { name: 'Start' }).click();
}

async function checkVerified(page, h) {
  assert.equal(h.verified.accounts, MAINNET_ACCOUNTS);
  assert.equal(h.verified.nodes, MAINNET_NODES);
  assert.equal(h.lastProgress.phase, 'done');
  assert.equal(h.lastProgress.fraction, 1);
  // verifyStore once more, from the test, on the page's IndexedDB database.
  const again = await page.evaluate(async (root) => {
    const { verifyStore } = await import('/pkg/web/statesync_wasm.js');
    return verifyStore({ root, database: 'statesync' });
  }, MAINNET_ROOT);
  assert.deepEqual(again, h.verified);
  assert.match(await page.textContent('#status'), /verified/i);
  assert.equal(await page.textContent('#v-accounts'), '8,893');
}

test('the page syncs the mainnet genesis into IndexedDB, resumes by itself after a reload and verifies it', async (t) => {
  // Slow peers with small answers, so that there is a middle to reload in (about ten
  // progress events at 500 ms).
  const slow = { latencyMs: 250, jitterMs: 100, maxItems: 96 };
  await withSetup({ name: 'reload', peerFaults: [slow, slow, slow] }, async ({ page, site, problems }) => {
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

    // Pause and Resume from the page's buttons.
    await page.getByRole('button', { name: 'Pause' }).click();
    await waitFor(page, 'the paused phase', (h) => h.lastProgress?.phase === 'paused' || h.finished);
    if (!(await hook(page)).finished) {
      assert.match(await page.textContent('#status'), /paused/i);
      await page.getByRole('button', { name: 'Resume' }).click();
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
