// Arguments and failures: every documented exit code with its message.

import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';

import { runCli, tempDir, closedPort, GENESIS_ROOT } from './helpers.mjs';

test('--help on every command exits 0 with its usage', async () => {
  for (const command of ['sync', 'verify', 'serve', 'demo']) {
    const run = await runCli([command, '--help']);
    assert.equal(run.code, 0, `${command} --help`);
    assert.match(run.stdout, new RegExp(`^usage: statesync ${command}`));
    assert.match(run.stdout, /exit codes/);
  }
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const code of ['130', 'malformed root', 'locked', '--switch-root']) assert.ok(top.stdout.includes(code), code);
});

test('bad arguments exit 2 with a one-line reason', async () => {
  const cases = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [[], /usage: statesync/],
    [['sync', '--root', GENESIS_ROOT, '--db', 'x', '--bogus'], /unknown option '--bogus'/],
    [['sync', '--root', GENESIS_ROOT, '--db', 'x'], /--peer URL is required/],
    [['sync', '--peer', 'ws://127.0.0.1:1', '--db', 'x'], /--root HASH is required/],
    [['sync', '--peer', 'http://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', 'x'], /not a ws:\/\/ or wss:\/\/ URL/],
    [['sync', '--peer', 'ws://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', 'x', '--max-items', '5000'], /--max-items needs an integer from 1 to 1024/],
    [['sync', '--peer', 'ws://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', 'x', '--batch-bytes', 'lots'], /--batch-bytes needs/],
    [['sync', '--peer', 'ws://127.0.0.1:1', '--root'], /argument missing/],
    [['verify'], /--db DIR is required/],
    [['serve'], /a source is required/],
    [['serve', '--genesis', 'a.json', '--synthetic', '10'], /give one source/],
    [['serve', '--synthetic', '10', '--drop-rate', '2'], /--drop-rate needs a number from 0 to 1/],
    [['serve', '--synthetic', 'many'], /--synthetic needs ACCOUNTS\[:SEED\]/],
    [['serve', '--synthetic', '10', '--faults', 'nonsense=1'], /unknown fault "nonsense"/],
    [['serve', '--synthetic', '10', '--max-connections', '0'], /--max-connections needs an integer ≥ 1/],
    [['serve', '--synthetic', '10', '--max-queued-bytes', 'lots'], /--max-queued-bytes needs an integer ≥ 1/],
    [['demo', '--exit', '--serve'], /contradict/],
  ];
  const runs = await Promise.all(cases.map(([args]) => runCli(args)));
  for (const [i, [args, reason]] of cases.entries()) {
    const run = runs[i];
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    const text = args.length ? run.stderr : run.stdout;
    assert.match(text, reason, args.join(' '));
    if (args.length) assert.equal(run.stderr.trim().split('\n').length, 1, `one line: ${run.stderr}`);
  }
});

test('a malformed root exits 3', async (t) => {
  const db = path.join(tempDir(t), 'db');
  for (const args of [
    ['sync', '--peer', 'ws://127.0.0.1:1', '--root', '0x1234', '--db', db],
    ['sync', '--peer', 'ws://127.0.0.1:1', '--root', `0x${'zz'.repeat(32)}`, '--db', db],
    ['verify', '--db', db, '--root', 'not-a-hash'],
  ]) {
    const run = await runCli(args);
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /malformed root .*64 hex digits/);
  }
});

test('unreachable peers exit 4 after --connect-timeout, with a JSON error line', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const port = await closedPort();
  const run = await runCli(['sync', '--peer', `ws://127.0.0.1:${port}`, '--root', GENESIS_ROOT, '--db', db, '--connect-timeout', '1', '--json']);
  assert.equal(run.code, 4, run.stderr);
  // The message names the timeout it waited (not the 10 s default); how long the run took is
  // the machine's business.
  assert.match(run.stderr, /no peer reachable within 1 s: ws:\/\/127\.0\.0\.1:\d+ \(connect ECONNREFUSED/);
  for (const line of run.stdout.trim().split('\n')) JSON.parse(line);
  const last = run.json.at(-1);
  assert.equal(last.type, 'error');
  assert.equal(last.code, 'UNREACHABLE');
  assert.equal(last.exitCode, 4);
});

test('a database locked by another process exits 6', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const holder = new ClassicLevel(db);
  await holder.open();
  t.after(() => holder.close());
  const sync = await runCli(['sync', '--peer', 'ws://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', db]);
  assert.equal(sync.code, 6, sync.stderr);
  assert.match(sync.stderr, /locked by another process/);
  const verify = await runCli(['verify', '--db', db, '--root', GENESIS_ROOT]);
  assert.equal(verify.code, 6, verify.stderr);
  const serve = await runCli(['serve', '--db', db, '--root', GENESIS_ROOT]);
  assert.equal(serve.code, 6, serve.stderr);
});

test('verify of a missing or empty database fails with its code', async (t) => {
  const dir = tempDir(t);
  const missing = await runCli(['verify', '--db', path.join(dir, 'nothing'), '--root', GENESIS_ROOT]);
  assert.equal(missing.code, 8, missing.stderr);
  assert.match(missing.stderr, /no database at/);

  const empty = path.join(dir, 'empty');
  const db = new ClassicLevel(empty);
  await db.open();
  await db.close();
  const gap = await runCli(['verify', '--db', empty, '--root', GENESIS_ROOT]);
  assert.equal(gap.code, 7, gap.stderr);
  assert.match(gap.stderr, /incomplete/);
  const noRecord = await runCli(['verify', '--db', empty]);
  assert.equal(noRecord.code, 7, noRecord.stderr);
  assert.match(noRecord.stderr, /holds no sync/);
});
