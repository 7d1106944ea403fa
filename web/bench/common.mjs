// Pieces the browser benchmarks share: the page (web/bench/bench.mjs), its OPFS Worker
// (web/bench/opfs-worker.mjs) and the OPFS test harness (tests/e2e/opfs-harness/).

export const ITEMS_PER_ACCOUNT = 3.2;
export const SYNTHETIC_SEED = 1;

/** The next task, without setTimeout's clamping of nested timers to 4 ms. */
export const nextTask = (() => {
  const channel = new MessageChannel();
  const queue = [];
  channel.port1.onmessage = () => queue.shift()();
  return (fn) => {
    queue.push(fn);
    channel.port2.postMessage(0);
  };
})();

/**
 * Runs `sync` to the end against `peers` in-process peers answering from `source` on the next
 * task. The time spent serving is measured apart, so a pass can subtract it: the peers run on
 * the syncing thread here, which a real peer would not. Throws unless the sync ends done.
 * @returns {Promise<{progress: any, servingMs: number, wallMs: number}>}
 */
export async function syncFromPeers(sync, source, peers) {
  let servingMs = 0;
  for (let id = 1; id <= peers; id++) {
    sync.addPeer(id, (frame) => {
      const t0 = performance.now();
      const answer = source.answer(frame);
      servingMs += performance.now() - t0;
      if (answer) nextTask(() => sync.receive(id, answer));
    });
  }
  const status = source.statusFrame(1);
  const started = performance.now();
  const done = sync.start();
  for (let id = 1; id <= peers; id++) sync.receive(id, status);
  const progress = await done;
  const wallMs = performance.now() - started;
  if (progress?.phase !== 'done') throw new Error(`sync ended in phase ${progress?.phase}`);
  return { progress, servingMs, wallMs };
}

/** An IDBRequest as a promise. */
export const request = (req) =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

/** A transaction's end as a promise: resolves on complete, rejects on error or abort. */
export const transactionDone = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('aborted'));
  });

/** The StateSource of a bench state ("genesis" or "synthetic:<items>") and its name in the rows. */
export function buildSource(wasm, state, genesisJson) {
  if (state === 'genesis') return { source: wasm.StateSource.fromGenesis(genesisJson), name: 'mainnet-genesis' };
  const m = /^synthetic[:-](\d+)$/.exec(state);
  if (!m) throw new Error(`unknown state ${state}`);
  const target = Number(m[1]);
  return { source: wasm.StateSource.synthetic(Math.floor(target / ITEMS_PER_ACCOUNT), SYNTHETIC_SEED), name: `synthetic-${target}` };
}
