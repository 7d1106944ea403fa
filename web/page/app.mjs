// The example wallet page: imports `statesync` like any consumer (the import map in
// index.html points the bare name at web/lib/browser.mjs; a bundler resolves it through the
// package's exports map) and syncs a state root from WebSocket peers into IndexedDB. The engine
// runs in the package's Worker, so this thread only renders: progress, peers, storage. Reload
// or close the tab at any time: on load the page reads the stored progress record and resumes
// by itself. A second tab on the same database follows the first and takes over when it closes.
//
// Test hook: `window.statesync` (see `hook` below) exposes the last event and progress, the
// verified counts and any error, for the end-to-end tests.

import { syncState, verifyState, readProgress, deleteState } from 'statesync';

/** @typedef {import('statesync').Progress} Progress */
/** @typedef {import('statesync').SyncStateEvent} SyncStateEvent */

const DATABASE = 'statesync';
/** Chart window: two minutes, a sample at most this often (progress comes every 500 ms). */
const CHART_WINDOW_MS = 120_000;
const CHART_SAMPLE_MS = 400;
const LOG_LIMIT = 40;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const ui = {
  form: /** @type {HTMLFormElement} */ ($('settings')),
  peers: /** @type {HTMLTextAreaElement} */ ($('peers')),
  root: /** @type {HTMLInputElement} */ ($('root')),
  start: /** @type {HTMLButtonElement} */ ($('start')),
  stop: /** @type {HTMLButtonElement} */ ($('stop')),
  clear: /** @type {HTMLButtonElement} */ ($('clear')),
  status: $('status'),
  error: $('error'),
  bar: /** @type {HTMLProgressElement} */ ($('bar')),
  percent: $('percent'),
  eta: $('eta'),
  rate: $('rate'),
  peak: $('peak'),
  chartLine: $('chart-line'),
  chartArea: $('chart-area'),
  chartDesc: $('chart-desc'),
  chartMax: $('chart-max'),
  chartSpan: $('chart-span'),
  peerRows: /** @type {HTMLTableSectionElement} */ ($('peer-rows')),
  storage: $('storage'),
  storageKind: $('storage-kind'),
  persisted: $('persisted'),
  verifyStatus: $('verify-status'),
  verifyStats: $('verify-stats'),
  log: $('log'),
};

/** Everything the tests may read; also the page's own state. */
const hook = {
  ready: false,
  database: DATABASE,
  config: /** @type {{peers?: string[], root?: string, batchBytes?: number}} */ ({}),
  /** @type {SyncStateEvent | null} */
  lastEvent: null,
  /** @type {Progress | null} */
  lastProgress: null,
  /** The stored record found at load (null: nothing stored), whatever the page did with it. */
  foundAtLoad: null,
  /** The stored record found at load, when the page resumed by itself. */
  resumedFrom: null,
  autoStarted: false,
  running: false,
  /** Another tab writes this database; this one shows its progress. */
  following: false,
  /** This tab took the sync over from a tab that went away. */
  tookOver: false,
  finished: false,
  /** The last `start` event: what the store held when this tab's engine started. */
  lastStart: null,
  /** The summary syncState resolved with. */
  summary: null,
  /** navigator.storage.persist()'s answer: true, false, or null (not asked, or no such API). */
  persisted: /** @type {boolean | null} */ (null),
  /** @type {import('statesync').VerifyReport | null} */
  verified: null,
  /** @type {{code?: string, message: string} | null} */
  error: null,
  eventCounts: /** @type {Record<string, number>} */ ({}),
  /** Peers by URL: the engine's id for the current connection, state, last error. */
  peers: /** @type {Map<string, {url: string, id?: number, state: string, error?: string, retryAt?: number}>} */ (new Map()),
  /** @type {AbortController | null} */
  controller: null,
};
/** @type {any} */ (window).statesync = hook;

const samples = /** @type {{t: number, rate: number}[]} */ ([]);
let stalledDetail = '';
let peakRate = 0;

// ---------------------------------------------------------------------------- formatting

const integer = new Intl.NumberFormat('en');
const fmt = (n) => integer.format(Math.round(n ?? 0));

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[i]}`;
}

function duration(ms) {
  if (ms == null) return 'estimating…';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const short = (hash) => (hash ? `${hash.slice(0, 10)}…${hash.slice(-6)}` : '');

// ---------------------------------------------------------------------------- status

const PHASE_TEXT = {
  idle: 'Not started.',
  connecting: 'Connecting to peers…',
  syncing: 'Syncing',
  stalled: 'Stalled:',
  paused: 'Paused.',
  done: 'Done: the whole state is stored.',
  following: 'Another tab is syncing this database; showing its progress (this tab takes over if it closes).',
  verifying: 'Done. Verifying the stored state…',
  verified: 'Done and verified.',
  cancelled: 'Stopped.',
  failed: 'Failed.',
};

function setStatus(phase, detail = '') {
  ui.status.dataset.phase = phase;
  ui.status.textContent = detail ? `${PHASE_TEXT[phase] ?? phase} ${detail}` : PHASE_TEXT[phase] ?? phase;
}

function showError(err, context) {
  const message = err?.message ?? String(err);
  hook.error = { code: err?.code, message: context ? `${context}: ${message}` : message };
  ui.error.hidden = false;
  ui.error.textContent = '';
  const title = document.createElement('strong');
  title.textContent = err?.code ? `Error (${err.code})` : 'Error';
  const body = document.createElement('span');
  body.textContent = ` ${hook.error.message}`;
  ui.error.append(title, body);
  log(`error: ${hook.error.message}`, 'error');
}

function clearError() {
  hook.error = null;
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function log(text, kind = 'info') {
  const item = document.createElement('li');
  item.dataset.kind = kind;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString('en-GB');
  item.append(time, ` ${text}`);
  ui.log.prepend(item);
  while (ui.log.children.length > LOG_LIMIT) ui.log.lastElementChild.remove();
}

// ---------------------------------------------------------------------------- rendering

/**
 * The completed share, rounded down to a tenth of a percent: it reads 100.0 % only when done.
 * @param {Progress} p
 */
function percentText(p) {
  const fraction = p.phase === 'done' ? 1 : Math.min(1, Math.max(0, p.fraction));
  return `${(Math.floor(fraction * 1000) / 10).toFixed(1)} %`;
}

/** @param {Progress} p */
function renderProgress(p) {
  const fraction = Math.min(1, Math.max(0, p.fraction));
  ui.bar.value = fraction;
  const percent = percentText(p);
  // Stored: complete subtries, plus verified items staged until their subtries complete.
  const stored = p.committed + p.staged;
  ui.percent.textContent = percent;
  ui.bar.setAttribute('aria-valuetext', `${percent}, ${fmt(stored)} items stored`);
  ui.eta.textContent = p.phase === 'done' ? 'complete' : p.phase === 'stalled' ? 'ETA: unknown while stalled' : `ETA: ${duration(p.etaMs)}`;
  $('committed').textContent = fmt(stored);
  $('staged').textContent = fmt(p.staged);
  $('unwritten').textContent = fmt(p.unwrittenItems);
  $('committed-bytes').textContent = bytes(p.committedBytes + p.stagedBytes);
  $('processed').textContent = p.restored ? `${fmt(p.processed)} (+${fmt(p.restored)} kept from the last session)` : fmt(p.processed);
  $('skipped').textContent = fmt(p.skipped);
  $('pending').textContent = fmt(p.pending);
  $('unexpected').textContent = fmt(p.unexpected + p.duplicate);
  $('received').textContent = bytes(p.bytesReceived);
  ui.rate.textContent = fmt(p.itemsPerSec);
  peakRate = Math.max(peakRate, p.itemsPerSec);
  ui.peak.textContent = fmt(peakRate);
  if (p.phase === 'syncing') setStatus(hook.following ? 'following' : 'syncing', `${percent} of ${short(p.root)}.`);
  else if (p.phase === 'stalled') setStatus(stalledDetail ? 'stalled' : 'connecting', stalledDetail);
  else if (p.phase === 'paused' && !ui.status.dataset.store) setStatus('paused');
  renderPeers(p);
}

/** The peers (URL, connection state, from `peer` events) joined with the engine's figures. */
function renderPeers(p = hook.lastProgress) {
  const byId = new Map((p?.peers ?? []).map((peer) => [peer.peer, peer]));
  const peers = [...hook.peers.values()];
  ui.peerRows.textContent = '';
  if (peers.length === 0) {
    const row = ui.peerRows.insertRow();
    row.className = 'empty';
    const cell = row.insertCell();
    cell.colSpan = 7;
    cell.textContent = hook.following ? 'Another tab is connected to the peers.' : 'No peers yet.';
    return;
  }
  for (const peer of peers) {
    // The engine's last figures for this connection (kept once it closed).
    const figures = peer.id === undefined ? undefined : byId.get(peer.id);
    const row = ui.peerRows.insertRow();
    const url = row.insertCell();
    url.textContent = peer.url;
    url.className = 'url';
    const state = row.insertCell();
    state.textContent = peerState(peer, figures);
    state.dataset.state = peer.state;
    if (peer.error) state.title = peer.error;
    for (const value of [
      figures ? `${fmt(figures.rttMs)} ms` : '–',
      figures ? fmt(figures.capacity) : '–',
      figures ? fmt(figures.inFlight) : '–',
      figures ? fmt(figures.served) : '–',
      figures ? fmt(figures.failures) : '–',
    ]) {
      const cell = row.insertCell();
      cell.className = 'num';
      cell.textContent = value;
    }
  }
}

function peerState(peer, figures) {
  if (!hook.running) return hook.finished ? 'closed (done)' : 'closed';
  switch (peer.state) {
    case 'open':
      if (!figures) return 'connected';
      return figures.headRoot ? (figures.penalty ? `serving (penalty ${figures.penalty})` : 'serving') : 'handshake';
    case 'waiting': {
      const seconds = Math.max(0, Math.ceil(((peer.retryAt ?? 0) - Date.now()) / 1000));
      return `retry in ${seconds} s`;
    }
    case 'lost':
      return 'reconnecting';
    default:
      return peer.state;
  }
}

function sampleRate(p) {
  const now = performance.now();
  const last = samples[samples.length - 1];
  if (last && now - last.t < CHART_SAMPLE_MS) return;
  samples.push({ t: now, rate: p.itemsPerSec });
  while (samples.length && now - samples[0].t > CHART_WINDOW_MS) samples.shift();
  renderChart(now);
}

function renderChart(now = performance.now()) {
  const peak = samples.reduce((m, s) => Math.max(m, s.rate), 0);
  const top = niceCeiling(peak);
  // The x axis spans the session so far, from 10 s up to the two-minute window.
  const span = Math.min(CHART_WINDOW_MS, Math.max(10_000, samples.length ? now - samples[0].t : 0));
  const x = (t) => (600 * (1 - (now - t) / span)).toFixed(1);
  const y = (r) => (160 - (150 * r) / top).toFixed(1);
  const points = samples.map((s) => `${x(s.t)},${y(s.rate)}`).join(' ');
  ui.chartLine.setAttribute('points', points);
  ui.chartArea.setAttribute('points', samples.length ? `${x(samples[0].t)},160 ${points} ${x(samples[samples.length - 1].t)},160` : '');
  ui.chartMax.textContent = `top ${fmt(top)}/s`;
  ui.chartSpan.textContent = span >= 60_000 ? `−${(span / 60_000).toFixed(1)} min` : `−${Math.round(span / 1000)} s`;
  const current = samples.length ? samples[samples.length - 1].rate : 0;
  ui.chartDesc.textContent = `${samples.length} samples; now ${fmt(current)} nodes per second, peak ${fmt(peak)}.`;
}

/** 1, 2 or 5 times a power of ten, at least `n`. */
function niceCeiling(n) {
  if (n <= 10) return 10;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 5, 10]) if (step * power >= n) return step * power;
  return 10 * power;
}

const STORAGE_NAMES = { opfs: 'Origin Private File System', indexeddb: 'IndexedDB' };

/**
 * Asks the browser to keep this site's data under storage pressure (a synced state is large
 * and costly to fetch again) and shows its answer. Chromium answers from its own heuristics
 * (site engagement, an installed app, a bookmark) without a prompt; Firefox may ask the user.
 */
async function askPersistence() {
  if (!navigator.storage?.persist) {
    ui.persisted.textContent = 'not supported by this browser';
    return;
  }
  try {
    hook.persisted = (await navigator.storage.persisted()) || (await navigator.storage.persist());
    ui.persisted.textContent = hook.persisted ? 'granted: the browser will not evict it' : 'not granted: the browser may evict it when space runs low';
  } catch (err) {
    ui.persisted.textContent = `unknown (${err?.name ?? 'error'})`;
  }
}

async function renderStorage() {
  const p = hook.lastProgress;
  const stored = p ? `${bytes(p.committedBytes + p.stagedBytes)} stored` : '';
  if (!navigator.storage?.estimate) {
    ui.storage.textContent = stored || 'unknown';
    return;
  }
  try {
    const { usage = 0, quota = 0 } = await navigator.storage.estimate();
    // The committed bytes are shown beside this as "Stored bytes"; usage adds IndexedDB's own overhead.
    ui.storage.textContent = `${bytes(usage)} of ${bytes(quota)}`;
  } catch {
    ui.storage.textContent = stored || 'unknown';
  }
}

function renderControls() {
  ui.start.disabled = hook.running;
  ui.stop.disabled = !hook.running;
  ui.clear.disabled = hook.running;
  ui.peers.readOnly = hook.running;
  ui.root.readOnly = hook.running;
}

function renderVerified(v) {
  ui.verifyStats.hidden = false;
  $('v-accounts').textContent = fmt(v.accounts);
  $('v-contracts').textContent = fmt(v.contracts);
  $('v-storage').textContent = fmt(v.storageTries);
  $('v-nodes').textContent = fmt(v.nodes);
  $('v-codes').textContent = fmt(v.codes);
  $('v-bytes').textContent = bytes(v.nodeBytes + v.codeBytes);
}

// ---------------------------------------------------------------------------- the sync

/** @param {SyncStateEvent} event */
function onEvent(event) {
  hook.lastEvent = event;
  hook.eventCounts[event.type] = (hook.eventCounts[event.type] ?? 0) + 1;
  switch (event.type) {
    case 'progress':
    case 'finished':
      hook.lastProgress = event;
      renderProgress(event);
      sampleRate(event);
      break;
    case 'start':
      hook.lastStart = event;
      ui.storageKind.textContent = STORAGE_NAMES[event.storage] ?? event.storage ?? 'unknown';
      if (event.storedRoot && event.storedRoot !== event.root) log(`switching the stored ${short(event.storedRoot)} to ${short(event.root)}; stored data is kept`);
      else if (event.resumed) log(`resuming: ${fmt(event.storedItems)} items already stored`);
      break;
    case 'peer': {
      const before = hook.peers.get(event.url);
      hook.peers.set(event.url, { url: event.url, id: event.id, state: event.state, error: event.error, retryAt: event.retryInMs === undefined ? undefined : Date.now() + event.retryInMs });
      if (event.state === 'open') log(`connected to ${event.url}`);
      else if (event.state === 'lost') log(`${event.url} closed${event.error ? ` (${event.error})` : ''}; reconnecting`, 'warn');
      else if (event.state === 'waiting' && before?.state !== 'lost' && before?.state !== 'waiting') log(`cannot connect to ${event.url}; retrying`, 'warn');
      renderPeers();
      break;
    }
    case 'following':
      hook.following = true;
      setStatus('following');
      log('another tab is syncing this database: showing its progress; this tab takes over if it closes');
      renderPeers();
      break;
    case 'takeover':
      hook.following = false;
      hook.tookOver = true;
      log('the tab that was syncing went away: this tab continues the sync');
      break;
    case 'warning':
      log(event.message, 'warn');
      break;
    case 'stalled':
      // The engine tells a stall once, after the peers have had time to connect.
      if (event.unservable === 0) {
        stalledDetail = `no usable peer (${event.peers} with a valid Status); everything verified is stored.`;
        log('stalled: no usable peer', 'warn');
      } else {
        stalledDetail = `${fmt(event.unservable)} items wait for a peer that has them (the first is ${short(event.first ?? '')}; ${event.peers} connected); everything verified is stored.`;
        log(`stalled: no connected peer serves ${event.unservable} items, the first ${event.first}`, 'warn');
      }
      setStatus('stalled', stalledDetail);
      break;
    case 'peerDisconnected':
      log(`dropped ${event.url ?? `peer ${event.peer}`}: ${event.reason}`, 'warn');
      break;
    case 'rootSwitched':
      log(`root switched from ${short(event.from)} to ${short(event.to)}; stored data is kept`);
      break;
    case 'paused':
      // A store write failed and nothing of it landed; the package retries it.
      setStatus('paused', event.reason === 'QuotaExceeded' ? 'The browser refused more storage; retrying. Free some space if this persists.' : 'Storage failed; retrying.');
      log(`storage failed (${event.reason}): ${event.message}`, 'error');
      break;
    case 'cancelled':
      log('stopped; Start resumes');
      break;
    case 'failed':
      log(`failed: ${event.message}`, 'error');
      break;
  }
}

function readInputs() {
  const urls = ui.peers.value
    .split(/[\s,]+/)
    .map((u) => u.trim())
    .filter(Boolean);
  const root = ui.root.value.trim();
  const problems = [];
  if (urls.length === 0) problems.push('enter at least one peer URL');
  for (const url of urls) if (!/^wss?:\/\//.test(url)) problems.push(`"${url}" is not a ws:// or wss:// URL`);
  if (!/^(0x)?[0-9a-fA-F]{64}$/.test(root)) problems.push('the root must be 64 hex digits');
  ui.peers.setAttribute('aria-invalid', String(problems.some((p) => p.includes('peer') || p.includes('URL'))));
  ui.root.setAttribute('aria-invalid', String(problems.some((p) => p.includes('root'))));
  return { urls, root, problems };
}

async function startSync({ urls, root }) {
  clearError();
  hook.running = true;
  hook.finished = false;
  hook.following = false;
  hook.verified = null;
  hook.summary = null;
  hook.peers.clear();
  samples.length = 0;
  peakRate = 0;
  ui.verifyStats.hidden = true;
  ui.verifyStatus.textContent = 'Verification runs when the sync finishes.';
  renderControls();
  setStatus('connecting');
  log(`sync of ${short(root)} from ${urls.length} peer${urls.length === 1 ? '' : 's'}`);
  askPersistence();

  hook.controller = new AbortController();
  try {
    // switchRoot: a wallet following the chain keeps what it has when the root moves on.
    // The engine's batches: whatever is verified is written (complete subtries, or staged)
    // within one batch, so a reload loses at most one. `/config.json` may set `batchBytes`.
    const batchBytes = Number(hook.config.batchBytes) > 0 ? { batchBytes: Number(hook.config.batchBytes) } : {};
    const summary = await syncState({ root, peers: urls, database: DATABASE, switchRoot: true, ...batchBytes, signal: hook.controller.signal, onEvent });
    hook.summary = summary;
    hook.lastProgress = summary.progress;
    renderProgress(summary.progress);
    hook.finished = true;
    hook.following = false;
    log(`finished: ${fmt(summary.committed)} items, ${bytes(summary.committedBytes)}${summary.followed ? ' (synced by another tab)' : ''}`);
    hook.running = false;
    renderPeers();
    await verify(summary.root);
  } catch (err) {
    if (err?.code === 'ABORTED') {
      setStatus('cancelled', `${fmt(err.committed ?? 0)} items stored; Start resumes.`);
    } else {
      setStatus('failed');
      showError(err);
    }
  } finally {
    hook.running = false;
    hook.following = false;
    hook.controller = null;
    renderControls();
    renderPeers();
    renderStorage();
  }
}

async function verify(root) {
  setStatus('verifying');
  ui.verifyStatus.textContent = 'Walking the stored state from the root…';
  try {
    const result = await verifyState({ root, database: DATABASE });
    hook.verified = result;
    renderVerified(result);
    ui.verifyStatus.textContent = `Complete from root ${short(root)}: every node hashes to its key and every account's storage and code are present (checked in ${(result.elapsedMs / 1000).toFixed(1)} s).`;
    setStatus('verified', `${fmt(result.accounts)} accounts, ${fmt(result.nodes)} nodes.`);
    log(`verified: ${result.accounts} accounts, ${result.nodes} nodes, ${result.codes} code blobs`);
  } catch (err) {
    ui.verifyStatus.textContent = 'The stored state did not verify.';
    showError(err, 'verify');
  }
}

function stop() {
  if (!hook.running) return;
  log('stopping: committing what is complete');
  hook.controller?.abort();
}

async function deleteStored() {
  if (hook.running) return;
  if (!confirm('Delete the stored state from this browser?')) return;
  try {
    // Its OPFS store and its IndexedDB database, whichever holds it.
    await deleteState({ database: DATABASE });
  } catch (err) {
    showError(err);
    return;
  }
  log('stored state deleted');
  setStatus('idle');
  renderStorage();
}

// ---------------------------------------------------------------------------- startup

async function loadConfig() {
  try {
    const response = await fetch(new URL('/config.json', location.href), { cache: 'no-store' });
    return response.ok ? await response.json() : {};
  } catch {
    return {};
  }
}

async function main() {
  renderControls();
  ui.form.addEventListener('submit', (event) => {
    event.preventDefault();
    const inputs = readInputs();
    if (inputs.problems.length) {
      showError({ code: 'BAD_INPUT', message: inputs.problems.join('; ') });
      return;
    }
    startSync(inputs);
  });
  ui.stop.addEventListener('click', stop);
  ui.clear.addEventListener('click', deleteStored);

  const config = await loadConfig();
  hook.config = config;
  if (Array.isArray(config.peers)) ui.peers.value = config.peers.join('\n');
  if (typeof config.root === 'string') ui.root.value = config.root;

  setInterval(renderStorage, 2000);
  setInterval(() => hook.running && renderPeers(), 1000);
  renderStorage();

  let record = null;
  try {
    record = await readProgress({ database: DATABASE });
  } catch (err) {
    showError(err, 'reading stored progress');
  }
  hook.foundAtLoad = record;
  hook.ready = true;
  if (record && !record.complete) {
    // Resume by itself: the stored root with the configured peers.
    hook.resumedFrom = record;
    hook.autoStarted = true;
    ui.root.value = record.root;
    log(`resuming ${short(record.root)}: ${fmt(record.committedItems)} items already stored`);
    const inputs = readInputs();
    if (inputs.urls.length === 0) {
      setStatus('paused', `A sync of ${short(record.root)} is stored (${fmt(record.committedItems)} items). Enter peers and press Start to resume.`);
      return;
    }
    startSync(inputs);
  } else if (record?.complete) {
    setStatus('idle', `A complete state for ${short(record.root)} is stored (${fmt(record.committedItems)} items). Start checks it again.`);
  } else {
    setStatus('idle', 'Check the peers and the root, then press Start.');
  }
}

main().catch((err) => {
  setStatus('failed');
  showError(err, 'starting the page');
});
