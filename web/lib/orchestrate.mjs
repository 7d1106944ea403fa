// The one sync orchestration, for every host: the CLI, the browser Worker, a page that runs
// the engine on its own thread, a Node.js script. Given the wasm module, checked options and
// a store, it connects the peers (reconnecting with backoff), drives a StateSync to the end,
// retries failed store writes, gives up when no peer can be reached, and stops cleanly on an
// AbortSignal (the engine flushes what is complete first). Everything the host needs to show
// arrives through `onEvent` / `onProgress`; the result is a summary or a StateSyncError.
//
// Events, besides the engine's own (progress, finished, stalled, peerDisconnected with the
// peer's `url` added, rootSwitched, paused, cancelled, failed; passed on whole):
//   { type: 'start', root, resumed, storedRoot, storedItems, storedBytes, complete, peers }
//   { type: 'peer', id, url, state: 'open' | 'waiting' | 'lost', error?, retryInMs? }
//   { type: 'warning', code: 'OTHER_HEAD', message, peer, url, headRoot }

import { connectPeers } from './transport.mjs';
import { StateSyncError, asStateSyncError } from './errors.mjs';
import { engineOptions } from './options.mjs';

/** Defaults of the options the orchestration adds to the engine's. */
export const SYNC_DEFAULTS = Object.freeze({
  /** No peer connected for this long (at the start, or after losing all): UNREACHABLE. */
  connectTimeoutMs: 10_000,
  /** Store writes retried after a failure, 1, 2, 4 ... seconds apart, before giving up. */
  storeRetries: 3,
  storeRetryMs: 1000,
  /** Reconnect delays: local and remote peers alike come back within seconds. */
  backoff: Object.freeze({ initialMs: 250, maxMs: 5_000 }),
});

/** The engine's StoreFailureKind as an error code. */
const STORE_CODES = { QuotaExceeded: 'STORE_QUOTA', Closed: 'STORE_CLOSED', Blocked: 'STORE_BLOCKED', Other: 'STORE_ERROR' };

/**
 * Calls a listener; a listener that throws is reported as an uncaught error, and the sync goes
 * on (its state must not depend on a host's rendering code).
 */
function call(listener, event) {
  if (!listener) return;
  try {
    listener(event);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}

/** Hands one event to the options' `onEvent`, and progress reports to `onProgress` too. */
export function dispatch(o, event) {
  call(o.onEvent, event);
  if (event.type === 'progress' || event.type === 'finished') call(o.onProgress, event);
}

/**
 * Syncs `o.root` into the store `host.storeOptions` names.
 * @param {any} wasm the initialised wasm package (StateSync, readProgress)
 * @param {Record<string, any>} o options checked by checkOptions(…, SYNC_OPTIONS, …)
 * @param {{storeOptions: {store?: object, database?: string, memory?: boolean}, WebSocket?: any}} host
 * @returns {Promise<import('./index.js').SyncSummary>}
 */
export async function runSync(wasm, o, host) {
  const { root } = o;
  const emit = (event) => dispatch(o, event);
  const connectTimeoutMs = o.connectTimeoutMs ?? SYNC_DEFAULTS.connectTimeoutMs;
  const storeRetries = o.storeRetries ?? SYNC_DEFAULTS.storeRetries;
  const startedAt = Date.now();

  let onEngineEvent = (_event) => {};
  // Created first: the engine checks its options before anything is read or connected.
  // A JavaScript store is handed to the engine behind a switch: once this call gives up on a
  // store that keeps failing, the engine's last writes go nowhere, so that it can wind down
  // (its timers would otherwise keep a Node.js process alive) without touching the store.
  const retiring = host.storeOptions.store ? retirable(host.storeOptions.store) : null;
  const engineStore = retiring ? { store: retiring.store } : host.storeOptions;
  let sync;
  try {
    sync = new wasm.StateSync({ ...engineOptions(o), ...engineStore, root, onEvent: (event) => onEngineEvent(event) });
  } catch (err) {
    throw asStateSyncError(err, 'BAD_OPTION');
  }
  let transport;
  let watchdog;
  let retryTimer;
  let removeAbort = () => {};
  try {
    if (o.signal?.aborted) throw aborted(o.signal, 'aborted before the sync started', null);
    let record;
    try {
      record = await wasm.readProgress(host.storeOptions);
    } catch (err) {
      throw withStoreFailure(asStateSyncError(err, 'STORE_ERROR'), host);
    }
    if (record && record.root !== root && !o.switchRoot) {
      throw new StateSyncError(
        'ROOT_MISMATCH',
        `the store holds a sync towards another root, ${record.root} (${record.complete ? 'complete' : `${record.committedItems} items stored`}); pass switchRoot to sync it towards ${root}, keeping what is stored`,
        { storedRoot: record.root, storedItems: record.committedItems, storedComplete: record.complete },
      );
    }
    emit({
      type: 'start',
      root,
      resumed: Boolean(record),
      storedRoot: record?.root ?? null,
      // Stored = committed (whole subtries) + staged (verified, their subtries unfinished).
      storedItems: (record?.committedItems ?? 0) + (record?.stagedItems ?? 0),
      committedItems: record?.committedItems ?? 0,
      stagedItems: record?.stagedItems ?? 0,
      storedBytes: (record?.committedBytes ?? 0) + (record?.stagedBytes ?? 0),
      complete: Boolean(record?.complete && record.root === root),
      peers: o.peers.length,
    });

    const urlOf = new Map(); // engine peer id -> URL
    const dropped = new Set(); // engine peer ids the engine disconnected
    const otherHeads = new Set(); // engine peer ids warned about announcing another root
    let stopping = null;
    let unreachable = '';
    let storeFailures = 0;
    let committedAtFailure = null; // what the store held when the last write failed
    let latest = null; // the last progress report

    const outcome = await new Promise((resolve) => {
      let settled = false;
      const finish = (value) => {
        if (!settled) {
          settled = true;
          resolve(value);
        }
      };
      onEngineEvent = (event) => {
        if (event.type === 'peerDisconnected') {
          dropped.add(event.peer);
          event.url = urlOf.get(event.peer);
        } else if (event.type === 'progress' || event.type === 'finished') {
          latest = event;
          for (const p of event.peers ?? []) {
            // A peer whose head is another root may well not hold this state: say so once.
            if (p.headRoot && p.headRoot !== root && !otherHeads.has(p.peer)) {
              otherHeads.add(p.peer);
              const url = urlOf.get(p.peer);
              emit({ type: 'warning', code: 'OTHER_HEAD', message: `peer ${url ?? p.peer} announces head ${p.headRoot}, not ${root}; it may not hold this state`, peer: p.peer, url, headRoot: p.headRoot });
            }
          }
          if (committedAtFailure !== null && event.committed > committedAtFailure) {
            // A write went through after the failure: a later one starts a fresh round of retries.
            storeFailures = 0;
            committedAtFailure = null;
          }
        }
        emit(event);
        if (event.type === 'paused') {
          // Only a store failure pauses this sync. Retry the write a few times, then give
          // up: every batch already written is whole, so the store stays resumable.
          storeFailures++;
          committedAtFailure = sync.progress()?.committed ?? 0;
          if (stopping) {
            // The last flush of an abort failed: the store keeps what it had; end now.
            finish({ kind: stopping, reason: event.reason, message: event.message });
            windDown();
          } else if (storeFailures > storeRetries) {
            stopping = 'store';
            finish({ kind: 'store', reason: event.reason, message: event.message });
            windDown();
          } else {
            retryTimer = setTimeout(() => {
              if (!settled) sync.resume();
            }, SYNC_DEFAULTS.storeRetryMs * 2 ** (storeFailures - 1));
          }
        }
      };
      // After giving up on the store: the engine's remaining writes go nowhere, so it can
      // finish cancelling and let go of its timers.
      const windDown = () => {
        if (!retiring) return;
        retiring.retire();
        sync.resume();
        sync.cancel();
      };

      // Abort and the watchdog stop through cancel(): the engine flushes what is complete,
      // then start() resolves (with phase 'cancelled').
      const stop = (reason) => {
        if (stopping) return;
        stopping = reason;
        const cancel = () => {
          // The engine exists once start() has opened the store; until then cancel() waits.
          if (sync.progress() === undefined && !settled) setTimeout(cancel, 20);
          else sync.cancel();
        };
        cancel();
      };
      if (o.signal) {
        const onAbort = () => stop('aborted');
        o.signal.addEventListener('abort', onAbort, { once: true });
        removeAbort = () => o.signal.removeEventListener('abort', onAbort);
      }

      sync.start().then(
        (progress) => finish(progress?.phase === 'done' ? { kind: 'finished', progress } : { kind: stopping ?? 'aborted', progress }),
        (error) => finish({ kind: 'error', error }),
      );

      let everConnected = false;
      transport = connectPeers({
        urls: o.peers,
        sync,
        WebSocket: host.WebSocket,
        backoff: SYNC_DEFAULTS.backoff,
        onChange: (peer) => {
          urlOf.set(peer.id, peer.url);
          const was = peer.reported;
          peer.reported = peer.state;
          if (peer.state === 'open' && was !== 'open') {
            everConnected = true;
            emit({ type: 'peer', id: peer.id, url: peer.url, state: 'open' });
          } else if (settled || stopping) {
            // Closing at the end is no news.
          } else if (was === 'open' && peer.state !== 'open') {
            if (!dropped.has(peer.id)) emit({ type: 'peer', id: peer.id, url: peer.url, state: 'lost', error: peer.lastError });
          } else if (peer.state === 'waiting' && was !== 'waiting') {
            emit({ type: 'peer', id: peer.id, url: peer.url, state: 'waiting', error: peer.lastError, retryInMs: Math.max(0, (peer.retryAt ?? 0) - Date.now()) });
          }
        },
      });

      let noPeerSince = Date.now();
      watchdog = setInterval(() => {
        if (transport.peers.some((p) => p.state === 'open')) {
          noPeerSince = null;
          return;
        }
        noPeerSince ??= Date.now();
        if (connectTimeoutMs > 0 && Date.now() - noPeerSince >= connectTimeoutMs && !stopping) {
          const why = transport.peers.map((p) => `${p.url}${p.lastError ? ` (${p.lastError})` : ''}`).join(', ');
          const seconds = connectTimeoutMs / 1000;
          unreachable = everConnected ? `lost every peer for ${seconds} s: ${why}` : `no peer reachable within ${seconds} s: ${why}`;
          stop('unreachable');
        }
      }, 100);
    });

    clearInterval(watchdog);
    transport.close();
    const elapsedMs = Date.now() - startedAt;

    if (outcome.kind === 'finished') {
      const p = outcome.progress;
      return {
        root,
        processed: p.processed,
        restored: p.restored ?? 0,
        committed: p.committed,
        committedBytes: p.committedBytes,
        skipped: p.skipped,
        duplicate: p.duplicate,
        unexpected: p.unexpected,
        bytesReceived: p.bytesReceived,
        elapsedMs,
        resumed: Boolean(record),
        progress: p,
      };
    }
    // What the store holds now, for the error: a rerun resumes from exactly this.
    const last = await wasm.readProgress(host.storeOptions).catch(() => null);
    const fields = {
      committed: last?.committedItems ?? 0,
      committedBytes: last?.committedBytes ?? 0,
      staged: last?.stagedItems ?? 0,
      stagedBytes: last?.stagedBytes ?? 0,
      processed: outcome.progress?.processed ?? latest?.processed ?? 0,
      progress: outcome.progress ?? latest,
    };
    const stored = `the store holds ${fields.committed + fields.staged} items; syncing again resumes from there`;
    switch (outcome.kind) {
      case 'aborted':
        throw aborted(o.signal, stored, fields);
      case 'unreachable':
        throw new StateSyncError('UNREACHABLE', `${unreachable}; ${stored}`, { ...fields, reason: unreachable });
      case 'store': {
        const reason = `store writes keep failing (${outcome.reason}: ${outcome.message})`;
        throw withStoreFailure(new StateSyncError(STORE_CODES[outcome.reason] ?? 'STORE_ERROR', `${reason}; ${stored}`, { ...fields, reason }), host);
      }
      default: {
        const err = asStateSyncError(outcome.error);
        Object.assign(err, fields);
        throw err.code.startsWith('STORE_') ? withStoreFailure(err, host) : err;
      }
    }
  } finally {
    clearInterval(watchdog);
    clearTimeout(retryTimer);
    removeAbort();
    transport?.close();
    sync.free();
  }
}

/**
 * Checks the engine's own options (the engine refuses them with BAD_OPTION) before a host
 * opens or creates anything: an engine that is created and dropped does no IO.
 */
export function checkEngineOptions(wasm, o) {
  try {
    new wasm.StateSync({ ...engineOptions(o), root: o.root, memory: true }).free();
  } catch (err) {
    throw asStateSyncError(err, 'BAD_OPTION');
  }
}

/**
 * A JS store that forwards everything (whatever methods the store interface has) until
 * `retire()`, after which writes succeed without writing.
 */
function retirable(store) {
  let retired = false;
  const proxy = new Proxy(store, {
    get(target, name) {
      if (name === 'write' && retired) return async () => {};
      const value = Reflect.get(target, name);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: proxy, retire: () => (retired = true) };
}

/**
 * A store error with the store's own diagnosis, when the store keeps one as `store.failure`
 * (the LevelDB store does: `code` such as DISK_FULL or PERMISSION, `reason`, and `advice`, the
 * one thing to do). The engine only passes a failure's kind and message on.
 */
function withStoreFailure(err, host) {
  const failure = host.storeOptions.store?.failure;
  if (failure) err.failure = { code: failure.code, reason: failure.reason, advice: failure.advice };
  return err;
}

/** The error an aborted sync rejects with: `name` AbortError, `cause` the signal's reason. */
function aborted(signal, detail, fields) {
  return new StateSyncError('ABORTED', `sync aborted: ${detail}`, { ...fields, reason: 'aborted' }, { cause: signal?.reason });
}

/**
 * Walks the state under `root` (default: the stored sync's root) in the store, checking every
 * node's hash and that every account's storage and code are present.
 * @returns {Promise<import('./index.js').VerifyReport>}
 */
export async function runVerify(wasm, o, host) {
  const record = await wasm.readProgress(host.storeOptions).catch((err) => {
    throw withStoreFailure(asStateSyncError(err, 'STORE_ERROR'), host);
  });
  const root = o.root ?? record?.root;
  if (!root) throw new StateSyncError('INCOMPLETE', 'the store holds no sync (no progress record): pass root to walk a root anyway', { record: null });
  const startedAt = Date.now();
  let stats;
  try {
    stats = await wasm.verifyStore({ ...host.storeOptions, root });
  } catch (err) {
    throw withStoreFailure(Object.assign(asStateSyncError(err, 'STORE_ERROR'), { root, record }), host);
  }
  return { root, ...stats, bytes: stats.nodeBytes + stats.codeBytes, elapsedMs: Date.now() - startedAt, record };
}
