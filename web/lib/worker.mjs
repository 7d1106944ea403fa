// The dedicated Worker the browser build runs syncs in: the engine, the peers' WebSockets and
// IndexedDB all live here, so the page's thread only receives progress messages.
//
// Protocol (one call per worker):
//   page → worker  { type: 'call', kind: 'sync' | 'verify' | 'read', options }   options checked,
//                                                                              minus functions
//                  { type: 'abort' }
//   worker → page  { type: 'event', event }   every onEvent event (progress included)
//                  { type: 'result', result } | { type: 'error', error }   (errorToData)

import { errorToData } from './errors.mjs';
import { callHere } from './in-thread.mjs';

const controller = new AbortController();

self.onmessage = async ({ data }) => {
  if (data?.type === 'abort') {
    controller.abort();
    return;
  }
  if (data?.type !== 'call') return;
  const options = { ...data.options, signal: controller.signal, onEvent: (event) => self.postMessage({ type: 'event', event }) };
  try {
    self.postMessage({ type: 'result', result: await callHere(data.kind, options) });
  } catch (err) {
    self.postMessage({ type: 'error', error: errorToData(err) });
  }
};
