// The WebSocket transport between peers and a StateSync: one socket per peer URL, binary
// frames both ways, reconnects with exponential backoff, and a closed socket reported to the
// engine as a peer leaving. Works in browsers (native WebSocket) and Node (pass `ws`).
//
//   const peers = connectPeers({ urls, sync, WebSocket });
//   ...
//   peers.close();

/** Reconnect delays: doubling from `initialMs` up to `maxMs`, reset after a healthy minute. */
export const DEFAULT_BACKOFF = Object.freeze({ initialMs: 500, maxMs: 30_000, healthyMs: 60_000 });

/**
 * One peer URL's connection, as `onChange` sees it.
 * @typedef {{url: string, id: number, state: 'connecting' | 'open' | 'waiting' | 'closed', socket: object | null,
 *   attempts: number, timer: ReturnType<typeof setTimeout> | null, openedAt: number, lastError: string,
 *   retryAt?: number, reported?: string}} PeerInfo
 */

/**
 * Connects every URL and keeps reconnecting until `close()`.
 * @param {object} o
 * @param {string[]} o.urls
 * @param {{addPeer: Function, removePeer: Function, receive: Function}} o.sync
 * @param {typeof WebSocket} [o.WebSocket] constructor (defaults to the global one)
 * @param {(peer: PeerInfo) => void} [o.onChange] called whenever a peer's state changes
 * @param {object} [o.backoff]
 * @param {boolean} [o.reconnect] default true
 */
export function connectPeers({ urls, sync, WebSocket: Ctor = globalThis.WebSocket, onChange = () => {}, backoff = {}, reconnect = true }) {
  if (!Ctor) throw new Error('no WebSocket implementation: pass one (in Node: import { WebSocket } from "ws")');
  const b = { ...DEFAULT_BACKOFF, ...backoff };
  let nextId = 1;
  let closed = false;
  const peers = urls.map((url) => ({ url, id: 0, state: 'connecting', socket: null, attempts: 0, timer: null, openedAt: 0, lastError: '' }));

  const open = (peer) => {
    if (closed) return;
    peer.state = 'connecting';
    peer.id = nextId++; // a new engine peer per connection: old requests die with the old one
    onChange(peer);
    let socket;
    try {
      socket = new Ctor(peer.url);
    } catch (err) {
      peer.lastError = err.message;
      retry(peer);
      return;
    }
    peer.socket = socket;
    // ws (Node.js) hands over its own Buffer as is; 'arraybuffer' would copy every frame into
    // a fresh ArrayBuffer first. A browser's WebSocket ignores 'nodebuffer'.
    socket.binaryType = 'nodebuffer';
    if (socket.binaryType !== 'nodebuffer') socket.binaryType = 'arraybuffer';
    const id = peer.id;
    let registered = false;
    socket.onopen = () => {
      peer.state = 'open';
      peer.openedAt = Date.now();
      registered = true;
      sync.addPeer(
        id,
        (frame) => {
          if (socket.readyState === 1) socket.send(frame);
        },
        (reason) => {
          // The engine dropped this peer (misbehaving or stalling): close, and reconnect later.
          peer.lastError = reason;
          registered = false;
          try {
            socket.close(4000, String(reason).slice(0, 120));
          } catch {
            /* already closing */
          }
        },
      );
      onChange(peer);
    };
    socket.onmessage = (event) => {
      // After close() the sync may be gone: a late frame has nowhere to go.
      if (closed || typeof event.data === 'string') return;
      sync.receive(id, event.data instanceof Uint8Array ? event.data : new Uint8Array(event.data));
    };
    socket.onerror = (event) => {
      peer.lastError = event?.message || 'connection error';
    };
    socket.onclose = () => {
      if (registered && !closed) sync.removePeer(id);
      registered = false;
      peer.socket = null;
      if (peer.openedAt && Date.now() - peer.openedAt > b.healthyMs) peer.attempts = 0;
      retry(peer);
    };
  };

  const retry = (peer) => {
    if (closed || !reconnect) {
      peer.state = 'closed';
      onChange(peer);
      return;
    }
    const delay = Math.min(b.maxMs, b.initialMs * 2 ** peer.attempts);
    peer.attempts++;
    peer.state = 'waiting';
    peer.retryAt = Date.now() + delay;
    onChange(peer);
    peer.timer = setTimeout(() => open(peer), delay);
  };

  for (const peer of peers) open(peer);

  return {
    peers,
    /** Closes every socket and stops reconnecting. */
    close() {
      closed = true;
      for (const peer of peers) {
        clearTimeout(peer.timer);
        if (peer.socket) {
          try {
            peer.socket.close(1000, 'client closing');
          } catch {
            /* ignore */
          }
        }
        peer.state = 'closed';
      }
    },
  };
}
