// The README's main job: `statesync demo` syncs the genesis state from three local peers into
// ./statesync-data, verifies it, and serves the browser page until Ctrl-C.

import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';

import { runCli, startCli, tempDir, lastJson, GENESIS_ROOT, GENESIS_NODES } from './helpers.mjs';

test('demo syncs, verifies and exits when stdout is not a terminal; a rerun finishes from the database', async (t) => {
  const cwd = tempDir(t, 'demo');
  const first = await runCli(['demo'], { cwd });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /root verified: 0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544/);
  assert.match(first.stdout, /accounts 8,893 · trie nodes 12,356 · 1\.48 MB · synced in/);
  assert.ok(fs.existsSync(path.join(cwd, 'statesync-data', 'CURRENT')), 'a LevelDB database in ./statesync-data');

  const again = await runCli(['demo', '--json'], { cwd });
  assert.equal(again.code, 0, again.stderr);
  const summary = lastJson(again);
  assert.equal(summary.type, 'summary');
  assert.equal(summary.resumed, true);
  assert.equal(summary.processed, 0);
  assert.equal(summary.verified.nodes, GENESIS_NODES);

  const text = await runCli(['demo', '--exit'], { cwd });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /already held the complete state, so nothing was fetched/);
});

test('demo --serve serves the page config and the peers until Ctrl-C', async (t) => {
  const cwd = tempDir(t, 'demo');
  let serving;
  const ready = new Promise((resolve) => (serving = resolve));
  const run = startCli(['demo', '--serve', '--port', '0', '--json'], {
    cwd,
    t,
    onLine: (_line, e) => {
      if (e?.type === 'serving') serving(e);
    },
  });
  const info = await Promise.race([ready, run.done.then((r) => assert.fail(`demo exited ${r.code}: ${r.stderr}`))]);
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);

  const config = await (await fetch(new URL('config.json', info.url))).json();
  assert.equal(config.root, GENESIS_ROOT);
  assert.equal(config.peers.length, 3);

  // The peers keep serving for the browser: the first frame is a Status (code 0x00).
  const status = await new Promise((resolve, reject) => {
    const socket = new WebSocket(config.peers[0]);
    socket.on('message', (data) => {
      socket.close();
      resolve(data);
    });
    socket.on('error', reject);
  });
  assert.equal(status[0], 0x00);

  run.child.kill('SIGINT');
  const result = await run.done;
  assert.equal(result.code, 0, result.stderr);
});
