// Errors of the OPFS store, classified by `code` the way the engine reads a JS store's
// rejections (wasm/src/store/mod.rs, `failure_from_js`): `QuotaExceededError` pauses the sync
// as QuotaExceeded (STORE_QUOTA), `CLOSED` as Closed (STORE_CLOSED: the store was deleted
// underneath, e.g. site data cleared), `BLOCKED` as Blocked (STORE_BLOCKED: another context has
// it open), anything else as Other (STORE_ERROR).

/**
 * @param {string} code
 * @param {string} message
 * @param {unknown} [cause]
 */
export function storeError(code, message, cause = undefined) {
  const err = new Error(message, cause === undefined ? undefined : { cause });
  err.name = 'OpfsStoreError';
  return Object.assign(err, { code });
}

/**
 * An error from the File System API as a store error: DOMException names, never messages.
 * `what` says which operation failed.
 */
export function fromFileSystem(err, what) {
  if (err?.name === 'OpfsStoreError') return err;
  const name = err?.name ?? '';
  const text = `${what}: ${name ? `${name}: ` : ''}${err?.message ?? err}`;
  switch (name) {
    case 'QuotaExceededError':
      return storeError('QuotaExceededError', text, err);
    case 'NotFoundError':
    case 'InvalidStateError':
      // The directory or file went away (site data cleared), or the handle was closed.
      return storeError('CLOSED', text, err);
    case 'NoModificationAllowedError':
      return storeError('BLOCKED', text, err);
    default:
      return storeError('OPFS_ERROR', text, err);
  }
}
