// Serving a stored state to other peers from any JS store (LevelDB in Node.js, OPFS in a
// browser Worker): each GetNodeData is answered by fetching every key it may need with one
// `get`, then the core's `answerFrom` applies geth's limits. The result is a source for
// web/cli/peer-server.mjs, or for any transport a host has.

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * A peer-server source over a JS store.
 * @param {{get(keys: Uint8Array[]): Promise<(Uint8Array | null | undefined)[]>}} store
 * @param {string} root the root announced in the Status frame
 * @param {{encodeStatus: Function, requestedKeys: Function, answerFrom: Function}} wasm
 */
export function storeSource(store, root, wasm) {
  return {
    root,
    statusFrame: (networkId) => wasm.encodeStatus(networkId, root),
    /** The NodeData frame answering `frame`, or undefined for a frame that is not a request. */
    async answer(frame, maxItems, softBytes) {
      const keys = wasm.requestedKeys(frame);
      if (!keys) return undefined;
      const values = await store.get(keys);
      const found = new Map();
      for (let i = 0; i < keys.length; i++) if (values[i]) found.set(hex(keys[i]), values[i]);
      return wasm.answerFrom(frame, (key) => found.get(hex(key)), maxItems, softBytes);
    },
  };
}
