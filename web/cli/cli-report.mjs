// What the CLI prints while a sync runs: a progress bar redrawn in place on a terminal, plain
// periodic lines when stdout is a file or a pipe, or one JSON object per line with --json.
// Every reporter has the same methods, so the sync loop never asks which one it has.

/** 12345 -> "12,345". */
export const count = (n) => Math.round(n ?? 0).toLocaleString('en-US');

/** (3, 'peer') -> "3 peers". */
export const plural = (n, noun) => `${count(n)} ${noun}${n === 1 ? '' : 's'}`;

/** 1483023 -> "1.48 MB". */
export function formatBytes(n) {
  n = n ?? 0;
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let i = -1;
  do {
    n /= 1000;
    i++;
  } while (n >= 1000 && i < units.length - 1);
  return `${n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${units[i]}`;
}

/** 75_000 -> "1:15", 3_725_000 -> "1:02:05". */
export function formatDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return '?';
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** 1234 -> "1.2 s", 80 -> "80 ms". */
export const formatSeconds = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/** "0xd7f8974f…0544". */
export const shortHash = (h) => (h && h.length > 20 ? `${h.slice(0, 10)}…${h.slice(-4)}` : h);

/**
 * The completed share as a percentage with one decimal, rounded down: it reads 100.0 % only
 * when the sync is done.
 */
export function percent(p) {
  if (p.phase === 'done') return '100.0%';
  return `${(Math.floor(1000 * Math.min(1, Math.max(0, p.fraction ?? 0))) / 10).toFixed(1)}%`;
}

/** Items durable in the store: complete subtries plus verified items staged for later. */
export const storedItems = (p) => (p.committed ?? 0) + (p.staged ?? 0);

/** The figures a progress line shows, from a Progress event (core/src/progress.rs). */
export function progressLine(p, { width = 80, peers } = {}) {
  const pct = percent(p).padStart(6);
  const stalled = p.phase === 'stalled';
  const eta = p.phase === 'done' ? 'done' : stalled ? 'ETA unknown' : `ETA ${p.etaMs == null ? '?' : formatDuration(p.etaMs)}`;
  const rate = `${count(p.itemsPerSec)} nodes/s`;
  const fetched = `${count(p.processed)} fetched${p.restored ? ` (+${count(p.restored)} kept)` : ''}`;
  const stored = `${count(storedItems(p))} stored (${formatBytes((p.committedBytes ?? 0) + (p.stagedBytes ?? 0))})`;
  const peerCount = peers ?? p.peers?.length ?? 0;
  const peerText = `${peerCount} peer${peerCount === 1 ? '' : 's'}`;
  const phase = stalled
    ? ` · stalled${p.unservable ? `: ${plural(p.unservable, "item")} no peer can serve` : ': no usable peer'}`
    : p.phase && !['syncing', 'done'].includes(p.phase)
      ? ` · ${p.phase}`
      : '';
  const tail = ` ${eta} · ${rate} · ${fetched} · ${stored} · ${peerText}${phase}`;
  const barWidth = Math.max(10, Math.min(30, width - pct.length - tail.length - 4));
  const filled = Math.round(barWidth * Math.min(1, Math.max(0, p.fraction ?? 0)));
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]`;
  const line = `${pct} ${bar}${tail}`;
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) : line;
}

/** One JSON object per line on `out`; the last line of a run is `summary` or `error`. */
export class JsonReporter {
  constructor(out = process.stdout) {
    this.out = out;
  }
  emit(object) {
    this.out.write(`${JSON.stringify({ time: Date.now(), ...object })}\n`);
  }
  event(e) {
    this.emit(e);
  }
  peer(info) {
    this.emit({ type: 'peer', ...info });
  }
  info(message, fields = {}) {
    this.emit({ type: 'info', message, ...fields });
  }
  warn(message, fields = {}) {
    this.emit({ type: 'warning', message, ...fields });
  }
  result({ text, ...object }) {
    this.emit(object);
  }
  error({ code, exitCode, message }) {
    this.emit({ type: 'error', code, exitCode, message });
  }
  done() {}
}

/**
 * Human output. On a TTY the progress line is redrawn in place with \r and messages scroll
 * above it; otherwise a plain progress line is printed every `intervalMs`.
 */
export class TextReporter {
  constructor({ out = process.stdout, err = process.stderr, tty = Boolean(out.isTTY), intervalMs = 5000, quiet = false } = {}) {
    this.out = out;
    this.err = err;
    this.tty = tty;
    this.intervalMs = intervalMs;
    this.quiet = quiet;
    this.bar = ''; // the line currently drawn, if any
    this.lastPlain = 0;
    this.latest = null;
    this.peers = undefined;
    this.lastLine = null; // the last message printed, its stream, and how often it came again
    this.lastStream = null;
    this.repeats = 0;
  }
  width() {
    return this.out.columns || 100;
  }
  clearBar() {
    if (this.tty && this.bar) {
      this.out.write('\r\x1b[K');
      this.bar = '';
    }
  }
  drawBar() {
    if (!this.latest || !this.tty || this.quiet) return;
    this.bar = progressLine(this.latest, { width: this.width(), peers: this.peers });
    this.out.write(`\r${this.bar}\x1b[K`);
  }
  /** A message above the bar. The same message again is only counted (a full disk fails
   * every retry alike), and the count is printed once another line comes or the run ends. */
  line(text, stream = this.out) {
    if (text === this.lastLine && stream === this.lastStream) {
      this.repeats++;
      return;
    }
    this.flushRepeats();
    this.clearBar();
    stream.write(`${text}\n`);
    this.drawBar();
    this.lastLine = text;
    this.lastStream = stream;
  }
  flushRepeats() {
    if (!this.repeats) return;
    const n = this.repeats;
    this.repeats = 0;
    this.clearBar();
    this.lastStream.write(`  (the line above ${n === 1 ? 'once' : `${count(n)} times`} more)\n`);
    this.drawBar();
  }
  event(e) {
    switch (e.type) {
      case 'progress':
      case 'finished': {
        this.latest = e;
        if (this.quiet) return;
        if (this.tty) this.drawBar();
        else if (e.type === 'finished' || Date.now() - this.lastPlain >= this.intervalMs) {
          this.lastPlain = Date.now();
          this.out.write(`${progressLine(e, { width: 200, peers: this.peers }).trim()}\n`);
        }
        return;
      }
      case 'stalled':
        // The engine tells a stall once, after the peers have had time to connect.
        if (e.unservable) {
          this.line(`stalled: ${plural(e.unservable, 'item')} no connected peer can serve (the first is ${e.first}; ${plural(e.peers, 'peer')} connected); everything verified is written, waiting for a peer that has them`);
        } else {
          this.line(`stalled: no usable peer (${plural(e.peers, 'peer')} with a valid Status); waiting for peers`);
        }
        return;
      case 'rootSwitched':
        this.line(`switched the target root from ${e.from} to ${e.to}; stored data is kept`);
        return;
      case 'paused':
        this.line(`storage failed (${e.reason}): ${e.message}`, this.err);
        return;
      case 'cancelled':
        return;
      case 'failed':
        this.line(`sync failed: ${e.message}`, this.err);
        return;
      default:
        return; // peerDisconnected is reported with its URL through peer()
    }
  }
  peer({ url, state, error, reason }) {
    if (this.quiet) return;
    if (state === 'open') this.line(`peer ${url} connected`);
    else if (state === 'dropped') this.line(`peer ${url} dropped by the engine: ${reason}`);
    else if (state === 'lost') this.line(`peer ${url} disconnected${error ? ` (${error})` : ''}; reconnecting`);
  }
  setPeers(n) {
    this.peers = n;
  }
  info(message) {
    if (!this.quiet) this.line(message);
  }
  warn(message) {
    this.line(`warning: ${message}`, this.err);
  }
  result(object) {
    if (object.text) this.line(object.text);
  }
  error({ message }) {
    this.flushRepeats();
    this.clearBar();
    this.err.write(`error: ${message}\n`);
  }
  /** Leaves the bar on screen as the last progress line. */
  done() {
    this.flushRepeats();
    if (this.tty && this.bar) {
      this.out.write('\n');
      this.bar = '';
    }
    this.latest = null;
  }
}
