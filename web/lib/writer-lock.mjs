// One writer per IndexedDB database across the tabs of an origin. The Web Lock named after the
// database gives one tab the sync; it announces its root and forwards every event on a
// BroadcastChannel of the same name. Another tab syncing the same database:
// - towards the same root follows: it gets the writer's events (onProgress keeps moving),
//   resolves with the writer's summary (`followed: true`), and takes over when the writer's
//   tab closes or stops (the lock passes to it; it resumes from what is stored, so nothing
//   committed is fetched again);
// - towards another root is refused at once with DATABASE_BUSY, never switched silently.
//
// Channel messages: { type: 'query' } (a follower asks who writes), { type: 'writer', root },
// { type: 'event', event }, { type: 'done', root, summary }.

import { StateSyncError } from './errors.mjs';
import { dispatch } from './orchestrate.mjs';

/** How often a follower asks again until the writer has answered. */
const QUERY_INTERVAL_MS = 250;

/**
 * Runs `run(o)` as the database's only writer, or follows the tab that is. Without Web Locks
 * or BroadcastChannel (or for a JS store or memory, which no other tab can open) it just runs.
 * @template T
 * @param {Record<string, any>} o checked sync options
 * @param {(o: Record<string, any>) => Promise<T>} run
 * @returns {Promise<T>}
 */
export async function oneWriter(o, run) {
  const locks = globalThis.navigator?.locks;
  if (o.storage !== 'database' || !locks || typeof BroadcastChannel === 'undefined') return run(o);
  const name = `statesync:${o.database}`;
  const channel = new BroadcastChannel(name);
  try {
    const first = await locks.request(name, { ifAvailable: true }, async (lock) => (lock ? { summary: await lead(channel, o, run) } : null));
    if (first) return first.summary;
    return await follow(channel, name, o, run);
  } finally {
    channel.close();
  }
}

/** Holding the lock: runs the sync and tells the other tabs about it. */
async function lead(channel, o, run) {
  const announce = () => channel.postMessage({ type: 'writer', root: o.root });
  channel.onmessage = ({ data }) => {
    if (data?.type === 'query') announce();
  };
  announce();
  try {
    const summary = await run({
      ...o,
      onEvent: (event) => {
        channel.postMessage({ type: 'event', event });
        o.onEvent?.(event);
      },
    });
    channel.postMessage({ type: 'done', root: o.root, summary });
    return summary;
  } finally {
    channel.onmessage = null;
  }
}

/** Another tab holds the lock: follow it, or refuse another root; take over when it goes. */
function follow(channel, name, o, run) {
  return new Promise((resolve, reject) => {
    let settled = false;
    let following = false;
    const lockRequest = new AbortController();
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearInterval(asking);
      o.signal?.removeEventListener('abort', onAbort);
      lockRequest.abort(); // a lock still pending is no longer wanted
      fn(value);
    };
    const onAbort = () => settle(reject, new StateSyncError('ABORTED', 'sync aborted while following the tab that syncs this database', { reason: 'aborted' }, { cause: o.signal.reason }));

    channel.onmessage = ({ data }) => {
      if (settled || !data) return;
      if (data.type === 'writer') {
        if (data.root !== o.root) {
          settle(
            reject,
            new StateSyncError('DATABASE_BUSY', `another tab is syncing the database "${o.database}" towards ${data.root}, not ${o.root}: wait until it is done or closed, or use another database`, {
              database: o.database,
              runningRoot: data.root,
            }),
          );
        } else if (!following) {
          following = true;
          dispatch(o, { type: 'following', root: o.root, database: o.database });
        }
      } else if (data.type === 'event' && following) {
        dispatch(o, data.event);
      } else if (data.type === 'done' && data.root === o.root) {
        settle(resolve, { ...data.summary, followed: true });
      }
    };
    const ask = () => channel.postMessage({ type: 'query' });
    const asking = setInterval(() => {
      if (!following) ask();
    }, QUERY_INTERVAL_MS);
    ask();
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });

    navigator.locks
      .request(name, { signal: lockRequest.signal }, async () => {
        if (settled) return;
        // The writer is gone (closed, stopped or failed): this tab writes now.
        clearInterval(asking);
        o.signal?.removeEventListener('abort', onAbort);
        dispatch(o, { type: 'takeover', root: o.root, database: o.database });
        try {
          settle(resolve, await lead(channel, o, run));
        } catch (err) {
          settle(reject, err);
        }
      })
      .catch((err) => {
        if (!settled) settle(reject, new StateSyncError('LOCK_FAILED', `cannot wait for the database lock: ${err.message}`, {}, { cause: err }));
      });
  });
}
