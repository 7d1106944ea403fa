// The CLI as a user runs it, for durability and memory: one fast local peer
// (`statesync serve --synthetic ACCOUNTS:SEED`, a child process) and `statesync sync --json`
// into a fresh LevelDB directory (another child process). Prints one JSON line per state on
// stdout: the sync's peak RSS (its own `process.resourceUsage().maxRSS`, reported by a small
// wrapper around the CLI's `main`), its time, the largest batch (operations and bytes) and the
// largest durability lag (verified items not yet written) over the sync, from the engine's
// final progress report.
//
//   node bench/cli-durability.mjs --states 100000:7,300000:5

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { REPO, parseArgs, log, CLI, serveSynthetic, runCommand } from './lib.mjs';

const args = parseArgs(process.argv.slice(2));
const states = String(args.states ?? '100000:7,300000:5').split(',');

for (const spec of states) {
  const result = await measure(spec);
  log(`synthetic ${spec}: ${result.items} items in ${(result.ms / 1000).toFixed(1)} s, peak RSS ${(result.max_rss_bytes / 2 ** 20).toFixed(0)} MiB, largest batch ${result.largest_batch_items} ops / ${(result.largest_batch_bytes / 1e6).toFixed(2)} MB, largest lag ${result.peak_unwritten_items} items`);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function measure(spec) {
  const peer = await serveSynthetic(spec);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'statesync-bench-cli-'));
  try {
    // The CLI's own main, so that the peak RSS measured is the sync's, not a shell's.
    const wrapper = `
      const { main } = await import(${JSON.stringify(CLI)});
      const code = await main(process.argv.slice(1));
      process.stderr.write('maxrss ' + process.resourceUsage().maxRSS * 1024 + '\\n');
      process.exit(code);`;
    const started = performance.now();
    const { code, stdout, stderr } = await runCommand(process.execPath, ['--input-type=module', '-e', wrapper, '--', 'sync', '--peer', peer.url, '--root', peer.root, '--db', path.join(dir, 'db'), '--json']);
    const ms = performance.now() - started;
    if (code !== 0) throw new Error(`sync exited ${code}: ${stderr}`);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l));
    const finished = lines.find((e) => e.type === 'finished');
    const rss = /maxrss (\d+)/.exec(stderr);
    return {
      state: `synthetic ${spec}`,
      items: finished.committed,
      bytes: finished.committedBytes,
      ms,
      max_rss_bytes: rss ? Number(rss[1]) : null,
      largest_batch_items: finished.largestBatchItems,
      largest_batch_bytes: finished.largestBatchBytes,
      peak_unwritten_items: finished.peakUnwrittenItems,
      items_per_sec: finished.processed / (ms / 1000),
    };
  } finally {
    peer.child.kill('SIGINT');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

