// Operator mistakes and storage failures: each one exits with its code and ends with one line
// that says what is wrong and what to do; 'verify' and 'serve' never create anything; a full
// disk prints its failure once (with a count) and the same command resumes once space is free.
//
// The full-disk case mounts a small tmpfs and the permission case runs the CLI as another
// user: both need root, and are skipped (saying so) without it.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';

import { CLI, runCli, startServe, tempDir, lastJson, GENESIS_ROOT } from './helpers.mjs';

const isRoot = process.getuid?.() === 0;

/** The run failed with `exitCode`, and stderr is exactly one line matching each pattern. */
function assertOneLine(run, exitCode, ...patterns) {
  assert.equal(run.code, exitCode, `exit code; stderr: ${run.stderr}`);
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  for (const pattern of patterns) assert.match(lines[0], pattern);
}

/** A file or directory tree, as names, to check that nothing was created. */
const listing = (dir) => (fs.existsSync(dir) ? fs.readdirSync(dir, { recursive: true }).sort() : null);

test('a file, a mistyped path or a plain directory as --db: exit 8, nothing created', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'a-file');
  fs.writeFileSync(file, 'not a database\n');
  const plain = path.join(dir, 'plain');
  fs.mkdirSync(plain);
  const before = listing(dir);

  const root = ['--root', GENESIS_ROOT];
  for (const command of ['verify', 'serve']) {
    const onFile = await runCli([command, '--db', file, ...root, '--json']);
    assertOneLine(onFile, 8, /a-file is a file, not a database directory: pass the directory of a LevelDB database as --db$/);
    assert.equal(lastJson(onFile).code, 'NOT_A_DIRECTORY');

    const underFile = await runCli([command, '--db', path.join(file, 'db'), ...root]);
    assertOneLine(underFile, 8, /is not a directory \(a directory above it is a file\): pass the directory/);

    const missing = await runCli([command, '--db', path.join(dir, 'mistyped', 'db'), ...root, '--json']);
    assertOneLine(missing, 8, /no database at .*mistyped.*: check the path \('sync' creates a database; 'verify' and 'serve' only open one\)$/);
    assert.equal(lastJson(missing).code, 'NOT_FOUND');

    const notDb = await runCli([command, '--db', plain, ...root]);
    assertOneLine(notDb, 8, /plain holds no LevelDB database \(no CURRENT file\): check the path/);
  }
  // LevelDB would have left LOCK and LOG files, or a whole directory, behind.
  assert.deepEqual(listing(dir), before, 'verify and serve created nothing');

  const sync = await runCli(['sync', '--peer', 'ws://127.0.0.1:1', ...root, '--db', path.join(file, 'db')]);
  assertOneLine(sync, 8, /is not a directory .*: pass the directory of a LevelDB database as --db$/);
});

test('a corrupt database: exit 8, move it aside', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const level = new ClassicLevel(db);
  await level.put('k', 'v');
  await level.close();
  fs.writeFileSync(path.join(db, 'CURRENT'), 'no manifest named here');
  const run = await runCli(['verify', '--db', db, '--json']);
  assertOneLine(run, 8, /the database .* is corrupt \(.*\): move it aside and sync into a fresh --db$/);
  assert.equal(lastJson(run).code, 'CORRUPT');
});

test('a database locked by another process: exit 6, stop that process', async (t) => {
  const db = path.join(tempDir(t), 'db');
  const holder = new ClassicLevel(db);
  await holder.open();
  t.after(() => holder.close());
  const run = await runCli(['verify', '--db', db, '--root', GENESIS_ROOT]);
  assertOneLine(run, 6, /locked by another process .*: stop that process or use another --db$/);
});

test('--connect-timeout -1 is a number out of range, not an ambiguous argument', async () => {
  const run = await runCli(['sync', '--peer', 'ws://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', 'x', '--connect-timeout', '-1']);
  assertOneLine(run, 2, /--connect-timeout needs a number ≥ 0, got "-1"/);
  const serve = await runCli(['serve', '--synthetic', '10', '--max-connections', '-5']);
  assertOneLine(serve, 2, /--max-connections needs an integer ≥ 1, got "-5"/);
});

test('a database owned by another user: exit 8, permissions', { skip: !isRoot && 'needs root to run the CLI as another user' }, async (t) => {
  // A world-readable parent, a database only root may open, the CLI as 'nobody'.
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const db = path.join(dir, 'db');
  const level = new ClassicLevel(db);
  await level.put('k', 'v');
  await level.close();
  fs.chmodSync(db, 0o700);
  const asNobody = (args) => spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, ...args], { encoding: 'utf8', env: { ...process.env, CI: '' } });
  const before = listing(db);
  for (const command of ['verify', 'serve']) {
    const run = asNobody([command, '--db', db, '--root', GENESIS_ROOT]);
    assertOneLine({ code: run.status, stderr: run.stderr }, 8, /permission denied on .*db \(owned by uid 0; this process runs as uid 65534\): run as the user who owns it, or give this user read and write access \(chown\/chmod\)$/);
  }
  // sync into a directory this user may not create anything in.
  const sync = asNobody(['sync', '--peer', 'ws://127.0.0.1:1', '--root', GENESIS_ROOT, '--db', path.join(db, 'inner')]);
  assertOneLine({ code: sync.status, stderr: sync.stderr }, 8, /permission denied on .*inner.*: run as the user who owns it/);
  assert.deepEqual(listing(db), before);
});

test('a full disk: the failure once with a count, one line of advice, and the rerun resumes', { skip: !isRoot && 'needs root to mount a small tmpfs' }, async (t) => {
  // Not tempDir(): the file system must be unmounted before its mount point is removed.
  const mount = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-small-disk-'));
  // 3 MB for a state of 9.6 MB.
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mount], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    fs.rmdirSync(mount);
    return t.skip(`cannot mount a tmpfs here: ${mounted.stderr.trim()}`);
  }
  t.after(() => {
    spawnSync('umount', ['-l', mount]);
    fs.rmSync(mount, { recursive: true, force: true });
  });
  const peer = await startServe(t, ['--synthetic', '30000:7']);
  const db = path.join(mount, 'db');
  const args = ['sync', '--peer', peer.url, '--root', peer.root, '--db', db];

  const full = await runCli(args);
  assert.equal(full.code, 8, full.stderr);
  const lines = full.stderr.trimEnd().split('\n');
  // The failure once (the CLI retries it), how often it came again, then the advice.
  assert.equal(lines.filter((l) => l.startsWith('storage failed')).length, 1, full.stderr);
  assert.match(lines[0], /^storage failed \(QuotaExceeded\): .*the disk holding .* is full/);
  assert.match(lines[1], /^ {2}\(the line above (once|\d+ times) more\)$/);
  assert.equal(lines.length, 3, full.stderr);
  assert.match(lines[2], /^statesync sync: the disk holding .*db is full \(.* free\); [\d,]+ items \(.*\) stored in .*: free some space and run the same command again \(everything written so far is kept\)$/);

  // Space freed: the same command resumes from what was stored, and the state verifies.
  execFileSync('mount', ['-o', 'remount,size=64m', mount]);
  const rerun = await runCli([...args, '--json']);
  assert.equal(rerun.code, 0, rerun.stderr);
  const info = rerun.json.find((e) => e.type === 'info');
  assert.equal(info.resumed, true, 'resumed from the full disk');
  assert.ok(info.storedItems > 0, `resumed with ${info.storedItems} items stored`);
  const verify = await runCli(['verify', '--db', db]);
  assert.equal(verify.code, 0, verify.stderr);
});
