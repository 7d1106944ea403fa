// `npm run bench` cannot rot: its quick mode (small states, one repeat) runs every piece and
// prints the table and the JSON. Only their shape is checked, never a figure: the figures of
// a smoke run on a shared machine mean nothing.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { REPO, tempDir } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const COLUMNS = ['measurement', 'state', 'figure', 'unit', 'ratio', 'target', 'met?'];

// The timeout only stops a hung run: about 40 s on an idle 2-core machine, and several times
// that while the machine is busy, must both pass.
test('bench --quick prints one table and writes the JSON of every piece', { timeout: 20 * 60_000 }, async (t) => {
  const out = path.join(tempDir(t, 'bench'), 'results.json');
  const haveChromium = fs.existsSync(CHROMIUM);
  const pieces = ['native', 'wasm', 'e2e', 'product', 'latency', 'sim', ...(haveChromium ? ['browser'] : [])];
  if (!haveChromium) t.diagnostic(`no Chromium at ${CHROMIUM}: the browser piece is left out`);
  // The wasm package is built by scripts/test-node.sh; the Rust benches reuse `cargo test`'s build.
  const args = ['bench/run.mjs', '--quick', '--no-build', '--cargo-profile', 'test', '--out', out, '--only', pieces.join(',')];
  const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(code, 0, `bench failed:\n${stderr}`);

  // One table: a header with the columns, a rule, then the rows.
  const lines = stdout.trimEnd().split('\n');
  assert.deepEqual(lines[0].split(/\s{2,}/), COLUMNS);
  assert.match(lines[1], /^-+( +-+){6}$/);

  const results = JSON.parse(fs.readFileSync(out, 'utf8'));
  assert.equal(results.quick, true);
  assert.deepEqual(results.errors, []);
  for (const key of ['cpu', 'cores', 'memory_bytes', 'node', 'rustc']) assert.ok(results.machine[key], `machine.${key}`);
  assert.equal(lines.length, 2 + results.rows.length, 'one table line per row');
  assert.ok(results.native.length >= 3 && results.wasm.length >= 3 && results.e2e.length >= 2, 'native, wasm and e2e figures');
  assert.ok(results.sim?.runs.length > 0, 'simulator figures');
  if (haveChromium) assert.ok(results.browser.length >= 1, 'browser figures');
  assert.deepEqual(results.product?.runs.map((r) => r.latency_ms), [0, 100], 'the product path at 0 and 100 ms');
  assert.ok(results.rows.some((r) => /^product: CLI sync.*100 ms/.test(r.measurement) && r.target === '≥ 0.8'), 'the product path 100 ms / 0 ms row with its target');

  const measured = (prefix) => results.rows.filter((r) => r.measurement.startsWith(prefix));
  for (const prefix of ['engine, native', 'engine, wasm', 'Node e2e', 'product: CLI sync', 'product: wasm engine alone', ...(haveChromium ? ['browser: engine'] : []), 'peak memory: native', 'peak memory: wasm', 'memory growth, native', 'memory growth, wasm']) {
    assert.ok(measured(prefix).length > 0, `a row for ${prefix}`);
  }
  assert.ok(results.rows.some((r) => /ms RTT.*wasm in Node/.test(r.measurement)), 'latency rows (real time)');
  assert.ok(results.rows.some((r) => /ms RTT.*simulator/.test(r.measurement)), 'latency rows (simulator)');
  for (const row of results.rows) {
    assert.equal(typeof row.figure, 'number', `${row.measurement}: figure`);
    // Only a time may be 0 (the longest main-thread task when there was none).
    assert.ok(Number.isFinite(row.figure) && (row.figure > 0 || (row.unit === 'ms' && row.figure === 0)), `${row.measurement}: figure ${row.figure}`);
    if (row.target !== null) {
      assert.equal(typeof row.ratio, 'number', `${row.measurement}: ratio`);
      assert.ok(Number.isFinite(row.ratio) && (row.ratio > 0 || (row.unit === 'ms' && row.ratio === 0)), `${row.measurement}: ratio ${row.ratio}`);
      assert.equal(typeof row.met, 'boolean', `${row.measurement}: met`);
    }
  }
});
