// A wallet's use of `statesync`, typed: tests/package/package.test.mjs compiles it with
// `tsc --noEmit` against the installed package. The @ts-expect-error lines must stay errors
// (an option of the wrong type is refused by the compiler before the BAD_OPTION check).

import { SYNC_DEFAULTS, StateSync, StateSyncError, init, readProgress, syncState, verifyState } from 'statesync';
import type { ErrorCode, Progress, ProgressRecord, ProgressReport, SyncStateEvent, SyncSummary, VerifyReport } from 'statesync';

export async function syncWallet(root: string, peers: string[]): Promise<string> {
  const controller = new AbortController();
  const fractions: number[] = [];
  let summary: SyncSummary;
  try {
    summary = await syncState({
      root,
      peers,
      database: 'wallet-state',
      signal: controller.signal,
      batchBytes: 256 * 1024,
      connectTimeoutMs: SYNC_DEFAULTS.connectTimeoutMs,
      onProgress: (p: ProgressReport) => fractions.push(p.fraction),
      onEvent: (event: SyncStateEvent) => console.log(describe(event)),
    });
  } catch (err) {
    if (err instanceof StateSyncError) {
      const code: ErrorCode = err.code;
      if (code === 'BAD_OPTION') return `${err.option} must be ${err.expected}`;
      if (code === 'DATABASE_BUSY') return `busy with ${err.runningRoot}`;
      if (code === 'ABORTED') return `stopped with ${err.committed ?? 0} items stored`;
    }
    throw err;
  }
  const report: VerifyReport = await verifyState({ database: 'wallet-state', root: summary.root });
  const record: ProgressRecord | null = await readProgress({ database: 'wallet-state' });
  const last: Progress = summary.progress;
  return `${report.accounts} accounts, ${report.nodes} nodes, ${last.committed} items, complete: ${record?.complete ?? false}`;
}

/** Every event type, each with its own fields: the switch must stay exhaustive. */
function describe(event: SyncStateEvent): string {
  switch (event.type) {
    case 'progress':
    case 'finished':
      return `${event.fraction} ${event.etaMs ?? '?'} ${event.peers.length}`;
    case 'start':
      return `${event.resumed} ${event.storedItems} ${event.storedRoot ?? ''}`;
    case 'peer':
      return `${event.url} ${event.state} ${event.retryInMs ?? 0}`;
    case 'peerDisconnected':
      return `${event.url ?? event.peer}: ${event.reason}`;
    case 'warning':
      return `${event.code} ${event.headRoot}`;
    case 'following':
    case 'takeover':
      return event.database;
    case 'stalled':
      return `${event.unservable} ${event.peers}`;
    case 'rootSwitched':
      return event.to;
    case 'paused':
      return event.reason;
    case 'cancelled':
      return 'cancelled';
    case 'failed':
      return event.message;
  }
}

export async function nodeTool(root: string): Promise<number> {
  const summary = await syncState({ root, peers: ['ws://127.0.0.1:30401'], db: './state', maxInFlight: 8 });
  return summary.committedBytes;
}

export async function lowLevel(root: string): Promise<Progress> {
  await init();
  const sync = new StateSync({ root, memory: true, onEvent: (event) => void event.type });
  sync.addPeer(1, (frame: Uint8Array) => void frame.length);
  return sync.start();
}

export function wrongUses(root: string): void {
  // @ts-expect-error peers is an array of URLs
  void syncState({ root, peers: 'ws://127.0.0.1:30401', db: './state' });
  // @ts-expect-error batchBytes is a number of bytes
  void syncState({ root, peers: [], db: './state', batchBytes: '1mb' });
  // @ts-expect-error root is required
  void syncState({ peers: [] });
  // @ts-expect-error onProgress receives a progress report
  void syncState({ root, peers: [], onProgress: (p: string) => p });
  // @ts-expect-error an unknown option
  void verifyState({ dbPath: './state' });
}
