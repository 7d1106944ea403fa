// Shared by the CLI tests: run `node web/cli/cli.mjs …` as a child process, start `serve` peers,
// temporary directories. Every child is killed when its test ends.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO, 'web', 'cli', 'cli.mjs');
export const GENESIS = path.join(REPO, 'fixtures', 'genesis_mainnet.json');
export const GENESIS_ROOT = '0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544';
export const GENESIS_ACCOUNTS = 8893;
export const GENESIS_NODES = 12356;

/** A fresh directory under the OS temp dir, removed by `t.after`. */
export function tempDir(t, name = 'statesync') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts the CLI. `onLine(line, json)` sees every stdout line as it arrives (json: the parsed
 * object, or undefined). `done` resolves with {code, signal, stdout, stderr, lines, json}.
 */
export function startCli(args, { cwd = REPO, env = {}, onLine = () => {}, t } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, CI: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let pending = '';
  const lines = [];
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    pending += chunk;
    let i;
    while ((i = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, i);
      pending = pending.slice(i + 1);
      lines.push(line);
      let json;
      try {
        json = JSON.parse(line);
      } catch {
        json = undefined;
      }
      onLine(line, json);
    }
  });
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const done = new Promise((resolve) => {
    child.on('close', (code, signal) => {
      const json = [];
      for (const line of lines) {
        try {
          json.push(JSON.parse(line));
        } catch {
          /* not JSON */
        }
      }
      resolve({ code, signal, stdout, stderr, lines, json });
    });
  });
  t?.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, done };
}

/** Runs the CLI to its end. */
export function runCli(args, options = {}) {
  return startCli(args, options).done;
}

/**
 * Starts `statesync serve` with `args` (e.g. ['--genesis', GENESIS, '--latency', '20']) and
 * resolves with its URL and root once it listens. Stopped with SIGINT when the test ends.
 */
export async function startServe(t, args) {
  let resolveListening;
  const listening = new Promise((resolve) => (resolveListening = resolve));
  const run = startCli(['serve', '--port', '0', '--json', ...args], {
    onLine: (_line, json) => {
      if (json?.type === 'listening') resolveListening(json);
    },
  });
  const early = run.done.then((r) => {
    throw new Error(`serve exited early (${r.code}): ${r.stderr}`);
  });
  t.after(async () => {
    if (run.child.exitCode === null) {
      run.child.kill('SIGINT');
      await run.done;
    }
  });
  const { url, root } = await Promise.race([listening, early]);
  return { url, root, ...run };
}

/** Three genesis peers, the third one faulty. */
export async function genesisPeers(t, { latency = 0, faulty = ['--corrupt-rate', '0.05', '--drop-rate', '0.03', '--partial-rate', '0.1'] } = {}) {
  const slow = latency ? ['--latency', String(latency)] : [];
  const peers = await Promise.all([
    startServe(t, ['--genesis', GENESIS, ...slow]),
    startServe(t, ['--genesis', GENESIS, ...slow]),
    startServe(t, ['--genesis', GENESIS, ...slow, ...faulty, '--seed', '3']),
  ]);
  return peers.map((p) => p.url);
}

/** A localhost port nothing listens on. */
export async function closedPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export const peerArgs = (urls) => urls.flatMap((u) => ['--peer', u]);

/** The last JSON line of a run. */
export const lastJson = (run) => run.json[run.json.length - 1];
