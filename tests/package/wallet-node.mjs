// Sync a state into LevelDB, then verify it:
//   node wallet-node.mjs ws://127.0.0.1:30401 0xd7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544
import { syncState, verifyState } from 'statesync';

const [peer, root] = process.argv.slice(2);
const controller = new AbortController();
process.once('SIGINT', () => controller.abort()); // flushes what is complete, then rejects: ABORTED

const summary = await syncState({
  root,
  peers: [peer],
  db: './wallet-state', // LevelDB; run again to resume
  signal: controller.signal,
  onProgress: (p) => console.log(`${(100 * p.fraction).toFixed(1)} %, ${p.committed} items stored`),
});
console.log(`synced ${summary.committed} items, ${summary.committedBytes} bytes`);

const report = await verifyState({ db: './wallet-state' });
console.log(`verified ${report.accounts} accounts, ${report.nodes} trie nodes`);
