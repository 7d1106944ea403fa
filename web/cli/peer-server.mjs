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
//
// Whatever a client sends, the server keeps running and keeps serving everyone else: every
// resource a client can make it hold is bounded (`DEFAULT_LIMITS`), and what it refuses is
// counted in `stats.refused` rather than logged line by line.

import http from 'node:http';
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

/**
 * What one client may make the server hold (docs/CLI.md, "serve"). An honest client uses a
 * fraction of each: the CLI and the page keep at most 16 requests in flight per peer (fewer
 * when the peer's measured pipe is small), and read every answer as it comes.
 */
export const DEFAULT_LIMITS = Object.freeze({
  // Open WebSocket connections (and handshakes in progress); more get HTTP 503.
  maxConnections: 128,
  // Requests answered at once per connection. Past it the connection is not read until one
  // is sent (TCP backpressure), so a flooding client slows only itself.
  maxInFlight: 16,
  // Answer bytes waiting to be written to one connection's socket (a client that does not
  // read): past it answers wait, and with them the reading of new requests.
  maxQueuedBytes: 8 * 1024 * 1024,
  // The largest frame a client may send: a GetNodeData of 1024 hashes is 33.8 KB. Larger
  // frames close the connection (WebSocket status 1009).
  maxFrameBytes: 64 * 1024,
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

/** What the server refused, by reason; `stats.refused` holds one counter per key. */
const REFUSALS = Object.freeze({
  connections: 'a connection over the limit of open connections (HTTP 503)',
  oversized: 'a frame over the size limit (connection closed, 1009)',
  protocol: 'a frame breaking the WebSocket protocol (connection closed by ws)',
  text: 'a text frame (connection closed, 1003)',
  malformed: 'a malformed statesync frame (connection closed, 1002)',
  unknown: 'a frame with an unknown message code (ignored)',
  overflow: 'requests past the in-flight limit that arrived after reading paused (dropped)',
  failed: 'a request the source failed to answer (not answered)',
});

/**
 * Starts a peer server. Resolves once listening.
 * @param {object} o
 * @param {object} [o.limits] overrides of `DEFAULT_LIMITS`
 * @param {(message: string) => void} [o.log] told the first time each kind of refusal happens
 * @returns {Promise<{url: string, port: number, stats: object, limits: object, hold: () => () => void, close: () => Promise<void>}>}
 */
export async function startPeerServer({ source, port = 0, host = '127.0.0.1', networkId = 1, faults = {}, limits = {}, seed = 1, statusFrame, log = () => {} }) {
  const f = { ...DEFAULT_FAULTS, ...faults };
  const l = { ...DEFAULT_LIMITS, ...limits };
  const random = seededRandom(seed);
  const stats = {
    connections: 0,
    requests: 0,
    hashes: 0, // hashes asked for in the requests taken (re-requests and hedges included)
    answered: 0,
    answeredHashes: 0, // hashes of the requests answered (an answer may hold fewer items)
    ignored: 0, // Status or NodeData from a client: nothing to answer
    dropped: 0,
    stalled: 0,
    corrupted: 0,
    partial: 0,
    garbage: 0,
    closed: 0,
    paused: 0, // times a connection's reading was paused (in-flight or queued-bytes limit)
    peakConnections: 0,
    peakQueuedBytes: 0, // the most answer bytes ever waiting for one connection's socket
    refused: Object.fromEntries(Object.keys(REFUSALS).map((k) => [k, 0])),
  };
  const status = statusFrame ?? (source.statusFrame ? source.statusFrame(networkId) : null);
  if (!status || status[0] !== STATUS_CODE) throw new Error('peer server needs a Status frame (source.statusFrame or statusFrame)');
  const refuse = (kind, detail) => {
    if (stats.refused[kind]++ === 0) log(`peer server refused ${REFUSALS[kind]}${detail ? `: ${detail}` : ''}; further ones are only counted`);
  };
  // hold(): answers are parked instead of sent until the release it returns (a test's way to
  // freeze a sync at a chosen point, e.g. just before reloading the page that runs it).
  let parked = null;
  const timers = new Set();
  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  // Our own HTTP server, so that connections over the limit are refused before the
  // WebSocket handshake, and plain HTTP requests get a short answer.
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close' });
    res.end('a statesync peer: connect with WebSocket\n');
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: l.maxFrameBytes, clientTracking: true });
  let sockets = 0; // TCP sockets upgrading or upgraded; released when the socket closes
  server.on('upgrade', (req, tcp, head) => {
    tcp.on('error', () => {}); // a reset during the handshake; ws adds its own handler after
    if (sockets >= l.maxConnections) {
      refuse('connections', `${sockets} open`);
      tcp.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      tcp.setTimeout(60_000, () => tcp.destroy()); // a client that never closes its side
      return;
    }
    sockets++;
    stats.peakConnections = Math.max(stats.peakConnections, sockets);
    tcp.once('close', () => sockets--);
    wss.handleUpgrade(req, tcp, head, (socket) => serveConnection(socket));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // After listening an error is one failed accept (e.g. out of file descriptors): say so, go on.
  server.on('error', (err) => log(`peer server: ${err.code ?? err.message}`));

  function serveConnection(socket) {
    stats.connections++;
    let served = 0;
    let inFlight = 0; // requests taken and not yet answered (or dropped)
    let queuedBytes = 0; // answer bytes handed to the socket and not yet written out
    const waiting = []; // requests received while inFlight was at the limit
    let waitingBytes = 0;
    const held = []; // answers ready while queuedBytes was at the limit
    socket.binaryType = 'nodebuffer';
    socket.on('error', (err) => {
      // ws closes the connection itself after any of these.
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') refuse('oversized', `over ${l.maxFrameBytes} bytes`);
      else if (String(err.code).startsWith('WS_ERR_')) refuse('protocol', err.code);
    });
    socket.on('close', () => {
      waiting.length = 0;
      waitingBytes = 0;
      held.length = 0;
    });

    const flowControl = () => {
      const busy = waiting.length > 0;
      if (busy && !socket.isPaused) {
        stats.paused++;
        socket.pause();
      } else if (!busy && socket.isPaused) {
        socket.resume();
      }
    };
    const pump = () => {
      while (held.length && queuedBytes < l.maxQueuedBytes) write(...held.shift());
      while (waiting.length && inFlight < l.maxInFlight && queuedBytes < l.maxQueuedBytes) {
        const frame = waiting.shift();
        waitingBytes -= frame.length;
        take(frame);
      }
      flowControl();
    };
    const finish = () => {
      inFlight--;
      pump();
    };
    const write = (answer, hashes) => {
      if (socket.readyState !== socket.OPEN) return finish();
      queuedBytes += answer.length;
      stats.peakQueuedBytes = Math.max(stats.peakQueuedBytes, queuedBytes);
      stats.answered++;
      stats.answeredHashes += hashes;
      socket.send(answer, () => {
        queuedBytes -= answer.length;
        finish();
      });
    };
    const send = (answer, hashes) => (queuedBytes < l.maxQueuedBytes ? write(answer, hashes) : held.push([answer, hashes]));

    const take = async (frame) => {
      inFlight++;
      stats.requests++;
      const hashes = countHashes(frame);
      stats.hashes += hashes;
      served++;
      if (f.closeAfter > 0 && served > f.closeAfter) {
        stats.closed++;
        socket.close(1000, 'closeAfter reached');
        return finish();
      }
      if (random() < f.dropRate) {
        stats.dropped++;
        return finish();
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
        if (err?.code === 'UNKNOWN_MESSAGE') {
          // Reserved for later protocol versions (snap): not this server's business.
          refuse('unknown', `code 0x${frame[0].toString(16).padStart(2, '0')}`);
        } else if (err?.code === 'BAD_FRAME') {
          refuse('malformed', err.message);
          socket.close(1002, 'malformed frame');
        } else {
          refuse('failed', err?.message ?? String(err));
        }
        return finish();
      }
      if (!answer) {
        stats.ignored++;
        return finish();
      }
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
      const deliver = () => (parked ? parked.push(() => send(answer, hashes)) : send(answer, hashes));
      if (delay > 0) later(delay, deliver);
      else deliver();
    };

    socket.on('message', (data, isBinary) => {
      if (!isBinary) {
        refuse('text');
        socket.close(1003, 'binary frames only');
        return;
      }
      // Reading pauses as soon as a request has to wait, but the frames of the chunk already
      // read still arrive: at most one read (64 KiB) and one frame, so this bound drops
      // nothing a client sent before the pause and still caps what a connection can park.
      if (waitingBytes + data.length > 2 * l.maxFrameBytes) {
        refuse('overflow');
        return;
      }
      waiting.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      waitingBytes += data.length;
      pump();
    });
    socket.send(status);
  }

  const address = server.address();
  return {
    url: `ws://${host}:${address.port}`,
    port: address.port,
    stats,
    limits: l,
    /** Parks every answer (requests are still read) until the returned release is called. */
    hold: () => {
      parked ??= [];
      return () => {
        const due = parked ?? [];
        parked = null;
        for (const deliver of due) deliver();
      };
    },
    close: () =>
      new Promise((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const client of wss.clients) client.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}

/**
 * Hashes in a GetNodeData frame: (bytes - 4) / 33 rounded down, exact for a well-formed frame
 * (a hash is 33 bytes with its RLP prefix; code, request id and list headers are 4-18 bytes).
 */
function countHashes(frame) {
  return Math.max(1, Math.floor((frame.length - 4) / 33));
}
