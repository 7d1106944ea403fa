import { syncState, verifyState } from 'statesync';

const { root, peers } = await (await fetch('./config.json')).json();
const bar = document.querySelector('progress');
const status = document.querySelector('#status');

try {
  // The engine and IndexedDB run in a Worker; one tab writes the database, others follow.
  const summary = await syncState({
    root,
    peers, // ['wss://…']
    database: 'wallet-state', // IndexedDB; reload the page to resume
    onProgress: (p) => (bar.value = p.fraction),
  });
  const report = await verifyState({ database: 'wallet-state' });
  status.textContent = `verified ${report.accounts} accounts, ${report.nodes} trie nodes (${summary.processed} fetched)`;
} catch (err) {
  status.textContent = `${err.code}: ${err.message}`; // e.g. UNREACHABLE, DATABASE_BUSY, STORE_QUOTA
}
