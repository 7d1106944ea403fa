// Killing a sync loses nothing that was committed: SIGKILL at an early, a middle and a late
// point, then a rerun finishes, fetching only what is missing. SIGINT flushes and exits 130.
// The peers are slowed down (latency, small requests, small batches) so there is time to kill.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { startCli, runCli, genesisPeers, tempDir, peerArgs, lastJson, GENESIS_ROOT, GENESIS_NODES, GENESIS_ACCOUNTS } from './helpers.mjs';

const SLOW = ['--json', '--progress-interval', '100', '--batch-bytes', '16384', '--max-items', '48', '--max-in-flight', '1'];

/**
 * Runs the sync until `when(progressEvent)` holds, then sends `signal`. Resolves with the run,
 * the last `committed` it reported before the signal, and its `info` line (resume figures).
 */
async function syncUntil(t, args, when, signal) {
  let sent = false;
  let committed = 0;
  const run = startCli(args, {
    t,
    onLine: (_line, e) => {
      if (sent || e?.type !== 'progress') return;
      committed = Math.max(committed, e.committed);
      if (when(e)) {
        sent = true;
        run.child.kill(signal);
      }
    },
  });
  const result = await run.done;
  return { ...result, sent, committed, info: result.json.find((e) => e.type === 'info') };
}

test('SIGKILL at an early, a middle and a late point; each rerun resumes and the last finishes', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const peers = await genesisPeers(t, { latency: 25 });
  const args = ['sync', ...peerArgs(peers), '--root', GENESIS_ROOT, '--db', db, ...SLOW];
  const points = [
    ['first committed progress line', (e) => e.committed > 0],
    ['middle', (e) => e.processed > 0 && e.fraction >= 0.45],
    ['late', (e) => e.processed > 0 && e.fraction >= 0.85],
  ];
  let storedBefore = 0;
  for (const [name, when] of points) {
    const run = await syncUntil(t, args, when, 'SIGKILL');
    assert.ok(run.sent, `${name}: the sync ended (${run.code}) before the kill point; ${run.stderr}`);
    assert.equal(run.signal, 'SIGKILL', name);
    // Everything reported as committed before the kill is in the database.
    assert.ok((run.info.storedItems ?? 0) >= storedBefore, `${name}: resumed from ${run.info.storedItems}, expected ≥ ${storedBefore}`);
    assert.equal(run.info.resumed, storedBefore > 0, `${name}: ${JSON.stringify(run.info)}`);
    t.diagnostic(`${name}: resumed from ${run.info.storedItems ?? 0} stored items, killed after committed=${run.committed}`);
    storedBefore = run.committed;
  }
  const last = await runCli(args);
  assert.equal(last.code, 0, last.stderr);
  const info = last.json.find((e) => e.type === 'info');
  assert.equal(info.resumed, true);
  assert.ok(info.storedItems >= storedBefore, `resumed from ${info.storedItems}, last run committed ${storedBefore}`);
  const summary = lastJson(last);
  assert.equal(summary.type, 'summary');
  assert.equal(summary.committed, GENESIS_NODES);
  t.diagnostic(`final run: resumed from ${info.storedItems}, processed ${summary.processed} of ${GENESIS_NODES}`);
  // A fresh sync processes every node; the rerun only what was not stored.
  assert.ok(summary.processed < GENESIS_NODES, `rerun processed ${summary.processed}`);
  assert.ok(summary.processed <= GENESIS_NODES - info.storedItems, `rerun processed ${summary.processed} with ${info.storedItems} stored`);

  const verify = await runCli(['verify', '--db', db, '--root', GENESIS_ROOT, '--json']);
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(lastJson(verify).accounts, GENESIS_ACCOUNTS);
  assert.equal(lastJson(verify).nodes, GENESIS_NODES);
});

test('SIGINT flushes the current batch, exits 130, and the database resumes', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const peers = await genesisPeers(t, { latency: 25 });
  const args = ['sync', ...peerArgs(peers), '--root', GENESIS_ROOT, '--db', db, ...SLOW];
  const run = await syncUntil(t, args, (e) => e.committed > 0 && e.fraction >= 0.3, 'SIGINT');
  assert.ok(run.sent, `the sync ended before the signal: ${run.stderr}`);
  assert.equal(run.code, 130, run.stderr);
  assert.match(run.stderr, /interrupted: [\d,]+ items .* stored in .*; run the same command again to resume/);
  assert.ok(run.json.some((e) => e.type === 'cancelled'));
  const interrupted = lastJson(run);
  assert.equal(interrupted.type, 'error');
  assert.equal(interrupted.code, 'INTERRUPTED');
  assert.equal(interrupted.exitCode, 130);
  assert.ok(interrupted.committed >= run.committed, `flushed ${interrupted.committed}, had committed ${run.committed}`);

  const again = await runCli(args);
  assert.equal(again.code, 0, again.stderr);
  const info = again.json.find((e) => e.type === 'info');
  // Stored: complete subtries and the verified items staged for later.
  const stored = interrupted.committed + interrupted.staged;
  assert.equal(info.storedItems, stored);
  const summary = lastJson(again);
  assert.ok(summary.processed <= GENESIS_NODES - stored, `processed ${summary.processed} with ${stored} stored`);
  assert.equal(summary.restored, interrupted.staged, 'every staged item was taken back, none fetched');
  const verify = await runCli(['verify', '--db', db]);
  assert.equal(verify.code, 0, verify.stderr);
});
