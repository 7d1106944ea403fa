// The package as a wallet gets it: `npm pack` (its prepack builds the wasm), the tarball
// installed into a fresh directory outside the repository, then, from that directory only:
// a peer started with the installed bin; the README's Node.js example syncing and verifying
// the mainnet genesis into LevelDB; `tsc --noEmit` of a typed consumer; the README's browser
// example built by Vite and run in headless Chromium into IndexedDB.
//
//   node --test tests/package/     (needs the npm registry or its cache for ws, sirv, classic-level)

import test, { after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import sirv from 'sirv';

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const BIN = path.join(REPO, 'node_modules', '.bin');
const ROOT = '0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544';
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** What the tarball must hold, and what it must not. */
const MUST_HOLD = ['package.json', 'README.md', 'web/lib/browser.mjs', 'web/lib/node.mjs', 'web/lib/worker.mjs', 'web/lib/index.d.ts', 'web/pkg/statesync_wasm.js', 'web/pkg/statesync_wasm.d.ts', 'web/pkg/statesync_wasm_bg.wasm', 'web/cli/cli.mjs', 'fixtures/genesis_mainnet.json'];
const MUST_NOT = /^(core|wasm|tests|bench|scripts|target|\.ci|\.cargo)\/|Cargo\.(toml|lock)$|\.rs$|^web\/pkg\/\.built-from$/;

/** The installed app: one pack and install for every test in this file. */
let app;
async function installed(t) {
  app ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-consumer-'));
    assert.ok(!path.relative(REPO, dir).match(/^[^.]/), 'the app is outside the repository');
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO, maxBuffer: 1 << 24 });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('[')));
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify({ name: 'wallet', private: true, type: 'module' })}\n`);
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, packed.filename)], { cwd: dir, maxBuffer: 1 << 24 });
    return { dir, files: packed.files.map((f) => f.path) };
  })();
  const result = await app;
  return result;
}

after(async () => {
  if (app) fs.rmSync((await app).dir, { recursive: true, force: true });
});

/** `statesync serve` from the installed bin, in the app's directory. */
async function installedPeer(t, dir) {
  const child = spawn(path.join(dir, 'node_modules', '.bin', 'statesync'), ['serve', '--genesis', path.join(dir, 'node_modules', 'statesync', 'fixtures', 'genesis_mainnet.json'), '--port', '0', '--json'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGINT'));
  let out = '';
  child.stdout.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line));
    });
    child.on('exit', (code) => reject(new Error(`the installed bin exited ${code}`)));
  });
}

test('npm pack holds the built wasm and the JavaScript, and nothing of the Rust side or the tests', async (t) => {
  const { files } = await installed(t);
  for (const file of MUST_HOLD) assert.ok(files.includes(file), `the tarball lacks ${file}`);
  const extra = files.filter((f) => MUST_NOT.test(f));
  assert.deepEqual(extra, [], 'the tarball holds files a user does not need');
  const manifest = JSON.parse(fs.readFileSync(path.join((await app).dir, 'node_modules/statesync/package.json'), 'utf8'));
  assert.equal(manifest.private, undefined);
  assert.deepEqual(Object.keys(manifest.exports['.']), ['types', 'browser', 'node', 'default']);
  assert.ok(manifest.optionalDependencies['classic-level'] && !manifest.dependencies['classic-level'], 'LevelDB is needed by the Node.js side only');
});

test("the README's Node.js example syncs the mainnet genesis from a peer started with the installed bin", async (t) => {
  const { dir } = await installed(t);
  const peer = await installedPeer(t, dir);
  assert.equal(peer.root, ROOT);
  fs.copyFileSync(path.join(HERE, 'wallet-node.mjs'), path.join(dir, 'wallet-node.mjs'));
  const { stdout } = await run(process.execPath, ['wallet-node.mjs', peer.url, ROOT], { cwd: dir });
  assert.match(stdout, /synced 12356 items, 1483023 bytes/);
  assert.match(stdout, /^verified 8893 accounts, 12356 trie nodes$/m);
  assert.ok(fs.existsSync(path.join(dir, 'wallet-state', 'CURRENT')), 'a LevelDB database in ./wallet-state');
});

test('tsc --noEmit compiles a typed consumer against the installed declarations', async (t) => {
  const { dir } = await installed(t);
  for (const file of ['typed-consumer.ts', 'tsconfig.json']) fs.copyFileSync(path.join(HERE, file), path.join(dir, file));
  const result = await run(path.join(BIN, 'tsc'), ['-p', path.join(dir, 'tsconfig.json')], { cwd: dir }).catch((err) => err);
  assert.equal(result.code ?? 0, 0, `tsc:\n${result.stdout}${result.stderr}`);
});

test("the README's browser example, built by Vite from the installed package, syncs into IndexedDB in Chromium", async (t) => {
  const { dir } = await installed(t);
  const peer = await installedPeer(t, dir);
  const web = path.join(dir, 'web');
  fs.cpSync(path.join(HERE, 'wallet-browser'), web, { recursive: true });
  const dist = path.join(web, 'dist');
  await run(process.execPath, [path.join(REPO, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', web, '--outDir', dist, '--emptyOutDir', '--logLevel', 'warn'], { cwd: dir });
  const assets = fs.readdirSync(path.join(dist, 'assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `Vite emitted the wasm module: ${assets}`);
  assert.ok(assets.some((f) => f.startsWith('worker')), `Vite emitted the worker: ${assets}`);
  fs.writeFileSync(path.join(dist, 'config.json'), JSON.stringify({ root: ROOT, peers: [peer.url] }));

  const serve = sirv(dist, { dev: true });
  const server = http.createServer((req, res) => serve(req, res, () => res.writeHead(404).end()));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-consumer-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 600_000 });
  t.after(async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  });
  // Playwright's 30 s defaults and the wait below only stop a hung run: a busy machine must
  // not fail the test.
  context.setDefaultTimeout(600_000);
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text()));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => !/syncing/.test(document.querySelector('#status').textContent), null, { timeout: 600_000 });
  assert.equal(await page.textContent('#status'), 'verified 8893 accounts, 12356 trie nodes (12356 fetched)');
  assert.equal(await page.evaluate(() => document.querySelector('progress').value), 1);
  // The state is in the page's IndexedDB, in the database the example named.
  const databases = await page.evaluate(async () => (await indexedDB.databases()).map((d) => d.name));
  assert.ok(databases.includes('wallet-state'), `IndexedDB databases: ${databases}`);
  assert.deepEqual(problems, []);
});

test('the README shows exactly the examples these tests run', () => {
  const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  for (const file of ['wallet-node.mjs', 'wallet-browser/main.js']) {
    const code = fs.readFileSync(path.join(HERE, file), 'utf8').trim();
    assert.ok(readme.includes(code), `README.md does not show tests/package/${file} as it is`);
  }
});
