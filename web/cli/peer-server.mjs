// A WebSocket peer speaking the statesync wire protocol (DESIGN.md): on connect it sends a
// Status frame, then answers every GetNodeData frame with NodeData, using geth's serving
// limits (the core's `answer`). Fault injection makes it a test peer.
//
//   const server = await startPeerServer({ source, port: 0, faults: { dropRate: 0.1 } });
//   server.url  // ws://127.0.0.1:PORT
//
// `source` is anything with `root` (0x hex), `statusFrame(networkId)` or not, and
// `answer(frame, maxItems?, softBytes?) -> Uint8Array | undefined` (sync or async):
// a wasm StateSource, or the LevelDB adapter of the CLI.

import { WebSocketServer } from 'ws';

/** Fault injection settings; every rate is a probability per request. */
export const DEFAULT_FAULTS = Object.freeze({
  latencyMs: 0, // added before each answer
  jitterMs: 0, // plus up to this much, uniformly
  dropRate: 0, // never answer
  stallRate: 0, // answer only after stallMs (past the client's timeout)
  stallMs: 20_000,
  corruptRate: 0, // flip a byte of the last blob: a blob whose hash is wrong
  partialRate: 0, // answer only the first half of what was asked
  garbageRate: 0, // send random bytes instead of an answer
  closeAfter: 0, // close the connection after this many requests (0: never)
  maxItems: 0, // items per answer (0: geth's 1024)
  softBytes: 0, // soft byte limit per answer (0: geth's 2 MiB)
});

/** A small seeded generator (mulberry32), so a faulty peer misbehaves reproducibly. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Parses "key=value,key=value" fault specs from the command line. */
export function parseFaults(spec) {
  const faults = { ...DEFAULT_FAULTS };
  if (!spec) return faults;
  for (const part of spec.split(',').filter(Boolean)) {
    const [key, value] = part.split('=');
    if (!(key in DEFAULT_FAULTS)) throw new Error(`unknown fault "${key}" (known: ${Object.keys(DEFAULT_FAULTS).join(', ')})`);
    const number = Number(value);
    if (!Number.isFinite(number) || number < 0) throw new Error(`fault ${key} needs a non-negative number, got "${value}"`);
    faults[key] = number;
  }
  return faults;
}

const STATUS_CODE = 0x00;

/**
 * Starts a peer server. Resolves once listening.
 * @returns {Promise<{url: string, port: number, stats: object, close: () => Promise<void>}>}
 */
export async function startPeerServer({ source, port = 0, host = '127.0.0.1', networkId = 1, faults = {}, seed = 1, statusFrame, log = () => {} }) {
  const f = { ...DEFAULT_FAULTS, ...faults };
  const random = seededRandom(seed);
  const stats = { connections: 0, requests: 0, answered: 0, dropped: 0, stalled: 0, corrupted: 0, partial: 0, garbage: 0, closed: 0 };
  const status = statusFrame ?? (source.statusFrame ? source.statusFrame(networkId) : null);
  if (!status || status[0] !== STATUS_CODE) throw new Error('peer server needs a Status frame (source.statusFrame or statusFrame)');
  const timers = new Set();
  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const wss = new WebSocketServer({ port, host, maxPayload: 16 * 1024 * 1024 });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });

  wss.on('connection', (socket) => {
    stats.connections++;
    let served = 0;
    socket.binaryType = 'nodebuffer';
    socket.send(status);
    socket.on('message', async (data, isBinary) => {
      if (!isBinary) return;
      const frame = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      stats.requests++;
      served++;
      if (f.closeAfter > 0 && served > f.closeAfter) {
        stats.closed++;
        socket.close(1000, 'closeAfter reached');
        return;
      }
      if (random() < f.dropRate) {
        stats.dropped++;
        return;
      }
      let answer;
      try {
        // Partial: ask the core for at most half the requested items (hash count is the
        // frame's item count, at most 1024; a cheap upper bound is enough here).
        const partial = random() < f.partialRate;
        const maxItems = partial ? Math.max(1, Math.floor(countHashes(frame) / 2)) : f.maxItems || undefined;
        if (partial) stats.partial++;
        answer = await source.answer(frame, maxItems, f.softBytes || undefined);
      } catch (err) {
        log(`peer: bad request: ${err.message}`);
        return;
      }
      if (!answer) return;
      if (random() < f.garbageRate) {
        stats.garbage++;
        answer = Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256));
      } else if (random() < f.corruptRate && answer.length > 40) {
        stats.corrupted++;
        answer = Uint8Array.from(answer);
        answer[answer.length - 1] ^= 0xff;
      }
      let delay = f.latencyMs + (f.jitterMs ? random() * f.jitterMs : 0);
      if (random() < f.stallRate) {
        stats.stalled++;
        delay += f.stallMs;
      }
      const send = () => {
        if (socket.readyState === socket.OPEN) {
          stats.answered++;
          socket.send(answer);
        }
      };
      if (delay > 0) later(delay, send);
      else send();
    });
  });

  const address = wss.address();
  return {
    url: `ws://${host}:${address.port}`,
    port: address.port,
    stats,
    close: () =>
      new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** Hashes in a GetNodeData frame: payload bytes / 33 is close enough for halving. */
function countHashes(frame) {
  return Math.max(1, Math.floor((frame.length - 4) / 33));
}
