// Whole syncs through the CLI: three `serve` peers (one faulty) into LevelDB, verify, serving
// from the synced database, and a database synced towards another root.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';

import { runCli, startServe, genesisPeers, tempDir, peerArgs, lastJson, GENESIS, GENESIS_ROOT, GENESIS_ACCOUNTS, GENESIS_NODES } from './helpers.mjs';

test('syncs the genesis state from three peers, one faulty, and any synced node can serve it', async (t) => {
  const dir = tempDir(t);
  const db = path.join(dir, 'db');
  const peers = await genesisPeers(t);
  const sync = await runCli(['sync', ...peerArgs(peers), '--root', GENESIS_ROOT, '--db', db, '--json', '--max-items', '128']);
  assert.equal(sync.code, 0, sync.stderr);

  // --json: every line is one object with a type; the last is the summary.
  const lines = sync.stdout.trim().split('\n');
  const events = lines.map((line) => JSON.parse(line));
  assert.ok(events.every((e) => typeof e.type === 'string'));
  assert.ok(events.some((e) => e.type === 'progress'));
  assert.equal(events.filter((e) => e.type === 'peer' && e.state === 'open').length >= 3, true);
  const finished = events.find((e) => e.type === 'finished');
  assert.equal(finished.fraction, 1);
  const summary = lastJson(sync);
  assert.equal(summary.type, 'summary');
  assert.equal(summary.exitCode, 0);
  assert.equal(summary.committed, GENESIS_NODES);
  assert.equal(summary.processed, GENESIS_NODES);
  assert.equal(summary.resumed, false);

  const verify = await runCli(['verify', '--db', db, '--root', GENESIS_ROOT]);
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /verified root 0xd7f8974f/);
  assert.match(verify.stdout, /accounts\s+8,893/);
  assert.match(verify.stdout, /trie nodes\s+12,356 \(1\.48 MB\)/);
  const verifyJson = lastJson(await runCli(['verify', '--db', db, '--json']));
  assert.equal(verifyJson.type, 'verified');
  assert.equal(verifyJson.root, GENESIS_ROOT);
  assert.equal(verifyJson.accounts, GENESIS_ACCOUNTS);
  assert.equal(verifyJson.nodes, GENESIS_NODES);
  assert.equal(verifyJson.nodeBytes, 1_483_023);

  // The synced database serves another node (root from its progress record).
  const fromDb = await startServe(t, ['--db', db]);
  const second = path.join(dir, 'second');
  const again = await runCli(['sync', '--peer', fromDb.url, '--root', GENESIS_ROOT, '--db', second, '--json']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(lastJson(again).committed, GENESIS_NODES);
  const verifySecond = await runCli(['verify', '--db', second, '--json']);
  assert.equal(verifySecond.code, 0, verifySecond.stderr);
  assert.equal(lastJson(verifySecond).accounts, GENESIS_ACCOUNTS);
});

test('a database synced towards another root exits 5, then --switch-root syncs the new root', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const genesis = await startServe(t, ['--genesis', GENESIS]);
  const synthetic = await startServe(t, ['--synthetic', '400:5']);
  const root = synthetic.root;
  assert.notEqual(root, GENESIS_ROOT);
  const first = await runCli(['sync', '--peer', genesis.url, '--root', GENESIS_ROOT, '--db', db]);
  assert.equal(first.code, 0, first.stderr);
  // Plain (non-TTY) output: lines, no carriage returns, and a summary.
  assert.ok(!first.stdout.includes('\r'));
  assert.match(first.stdout, /synced 0xd7f8974f\w+ into .* in /);

  const mismatch = await runCli(['sync', '--peer', synthetic.url, '--root', root, '--db', db]);
  assert.equal(mismatch.code, 5, mismatch.stderr);
  assert.match(mismatch.stderr, new RegExp(`holds a sync towards another root, ${GENESIS_ROOT}`));
  assert.match(mismatch.stderr, /--switch-root/);

  const switched = await runCli(['sync', '--peer', synthetic.url, '--root', root, '--db', db, '--switch-root']);
  assert.equal(switched.code, 0, switched.stderr);
  assert.match(switched.stdout, /switching .* to 0x/);
  const verify = await runCli(['verify', '--db', db, '--json']);
  assert.equal(verify.code, 0, verify.stderr);
  assert.equal(lastJson(verify).root, root);
  assert.equal(lastJson(verify).accounts, 400);
});
