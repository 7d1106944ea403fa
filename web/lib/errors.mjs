// The one error type of the package's JavaScript: an Error with a machine-readable `code`
// (the same codes the engine's own errors carry) and, depending on the code, fields such as
// `option` and `expected` (BAD_OPTION), `storedRoot` (ROOT_MISMATCH), `committed` (how many
// items the store holds after a failed or aborted sync). Callers branch on `code`, never on
// the message.

export class StateSyncError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [fields]
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, fields = {}, options = undefined) {
    super(message, options);
    this.name = code === 'ABORTED' ? 'AbortError' : 'StateSyncError';
    this.code = code;
    Object.assign(this, fields);
  }
}

/** A short, printable form of a wrong value for an error message. */
export function describeValue(value) {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) {
    const text = JSON.stringify(value) ?? '';
    return text.length > 120 ? `an array of ${value.length}: ${text.slice(0, 117)}...` : text;
  }
  return `an ${typeof value}`;
}

/** `BAD_OPTION`: names the option and what it must be. */
export function badOption(option, expected, value) {
  return new StateSyncError('BAD_OPTION', `options.${option} must be ${expected}, got ${describeValue(value)}`, { option, expected });
}

/**
 * Any rejection (an engine error with a `code`, a LevelDB error, a thrown string) as a
 * StateSyncError, keeping its code when it has one.
 */
export function asStateSyncError(err, fallbackCode = 'FAILED') {
  if (err instanceof StateSyncError) return err;
  const code = typeof err?.code === 'string' ? err.code : fallbackCode;
  // The engine's errors carry their details as own fields (option, expected; first and
  // unservable for STALLED): keep them.
  const fields = {};
  if (err !== null && typeof err === 'object') {
    for (const [key, value] of Object.entries(err)) if (!['code', 'message', 'name', 'stack', 'cause'].includes(key)) fields[key] = value;
  }
  return new StateSyncError(code, err?.message ?? String(err), fields, { cause: err });
}

/** An error as plain data, to cross a `postMessage` with its code and fields intact. */
export function errorToData(err) {
  const e = asStateSyncError(err);
  const data = { ...e, name: e.name, code: e.code, message: e.message };
  delete data.cause;
  return data;
}

/** The other side of `errorToData`. */
export function errorFromData(data) {
  const { code, message, name: _name, stack: _stack, ...fields } = data ?? {};
  return new StateSyncError(code ?? 'FAILED', message ?? 'unknown error', fields);
}
