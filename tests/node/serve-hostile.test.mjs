// `statesync serve` under attack: garbage, oversized and broken frames, unknown messages, a
// connection flood, a request flood and a client that never reads. The server must stay up,
// hold no more than its limits, count every refusal in the stats it prints, and keep
// answering an honest client correctly between every attack (checked byte for byte against
// the same state built in this process), while a `sync` runs from it to the end.

import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { WebSocket } from 'ws';

import { runCli, startCli, startServe, tempDir, lastJson } from './helpers.mjs';
import { seededRandom, startPeerServer } from '../../web/cli/peer-server.mjs';
import { init, StateSource } from '../../web/lib/node.mjs';

await init();

const ACCOUNTS = 2000;
const SEED = 5;
const LIMITS = { connections: 24, inFlight: 4, queuedBytes: 1 << 20 };

// ── frames ──────────────────────────────────────────────────────────────────────────────

const rlpHeader = (length, offset) => {
  if (length < 56) return Buffer.from([offset + length]);
  const bytes = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Buffer.from([offset + 55 + bytes.length, ...bytes]);
};
const rlpString = (bytes) => (bytes.length === 1 && bytes[0] < 0x80 ? Buffer.from(bytes) : Buffer.concat([rlpHeader(bytes.length, 0x80), bytes]));
const rlpList = (items) => {
  const body = Buffer.concat(items);
  return Buffer.concat([rlpHeader(body.length, 0xc0), body]);
};
const rlpUint = (n) => {
  const bytes = [];
  for (; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return rlpString(Buffer.from(bytes));
};
/** A GetNodeData frame (DESIGN.md: 0x0d || rlp([id, [hash, …]])). */
const getNodeData = (id, hashes) => Buffer.concat([Buffer.from([0x0d]), rlpList([rlpUint(id), rlpList(hashes.map((h) => rlpString(Buffer.from(h))))])]);

// ── clients ─────────────────────────────────────────────────────────────────────────────

/** A WebSocket client with a queue of received frames; resolves once the Status frame came. */
async function connect(url) {
  const ws = new WebSocket(url);
  const frames = [];
  const waiters = [];
  ws.on('message', (data) => (waiters.length ? waiters.shift()(data) : frames.push(data)));
  const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  const failed = new Promise((resolve) => ws.on('error', (err) => resolve(err)));
  const next = () => (frames.length ? Promise.resolve(frames.shift()) : new Promise((resolve) => waiters.push(resolve)));
  const opened = await Promise.race([next().then((status) => ({ status })), failed.then((error) => ({ error }))]);
  return { ws, next, closed, ...opened };
}

/**
 * `connect`, again while the server refuses (503) because connections closed by this test
 * are not closed on its side yet. Returns the client and how many attempts were refused.
 */
async function connectWhenFree(url) {
  for (let refused = 0; ; refused++) {
    const c = await connect(url);
    if (c.status) return { ...c, refused };
    assert.match(c.error.message, /503/);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A GetNodeData whose answer is as large as the serving limits allow: the largest code, 1024 times. */
function bigRequest(source, id) {
  const codes = source.keys().filter((k) => k.length === 33);
  const largest = codes.reduce((a, b) => (source.get(b).length > source.get(a).length ? b : a));
  return getNodeData(id, Array.from({ length: 1024 }, () => largest.subarray(1)));
}

/**
 * A raw TCP connection that completed the WebSocket handshake (for frames `ws` will not send),
 * retried like `connectWhenFree`.
 */
async function rawUpgrade(port, { read = true } = {}) {
  for (let refused = 0; ; refused++) {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    // The 101 response and the Status frame may come in one chunk or two.
    const head = await new Promise((resolve) => socket.once('data', resolve));
    if (String(head).startsWith('HTTP/1.1 101')) {
      if (!read) socket.pause();
      return { socket, closed, refused };
    }
    assert.match(String(head), /^HTTP\/1\.1 503/);
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A masked client frame, as RFC 6455 requires of clients (`opcode` 2: binary). */
function maskedFrame(payload, opcode = 2) {
  const mask = Buffer.from([1, 2, 3, 4]);
  const length = payload.length < 126 ? Buffer.from([0x80 | payload.length]) : payload.length < 65536 ? Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]) : null;
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x80 | opcode]), length, mask, masked]);
}

test('serve survives hostile clients, holds its limits, counts refusals and keeps serving', { timeout: 600_000 }, async (t) => {
  const source = StateSource.synthetic(ACCOUNTS, SEED);
  const hashes = source.keys().filter((k) => k.length === 32);
  const server = await startServe(t, [
    '--synthetic', `${ACCOUNTS}:${SEED}`,
    '--max-connections', String(LIMITS.connections),
    '--max-in-flight', String(LIMITS.inFlight),
    '--max-queued-bytes', String(LIMITS.queuedBytes),
    // Slower answers, so that the sync below is still running during most attacks.
    '--latency', '15',
  ]);
  assert.equal(server.root, source.root);
  const port = Number(new URL(server.url).port);

  // An honest client, connected before the attacks: after each one it asks for the root and
  // a few hundred nodes and must get exactly what the state holds.
  let retried = 0; // connections refused because this test's closed ones were still counted
  const honest = await connect(server.url);
  let honestId = 1;
  const checkHonest = async (after) => {
    const frame = getNodeData(honestId++, [Buffer.from(source.root.slice(2), 'hex'), ...hashes.slice(honestId * 7, honestId * 7 + 300)]);
    honest.ws.send(frame);
    const answer = await honest.next();
    assert.deepEqual(new Uint8Array(answer), source.answer(frame), `honest answer after ${after}`);
  };
  await checkHonest('connecting');

  // A whole sync from the same server, started before the attacks and checked after them.
  const db = path.join(tempDir(t), 'db');
  let syncConnected;
  const connected = new Promise((resolve) => (syncConnected = resolve));
  const sync = startCli(['sync', '--peer', server.url, '--root', source.root, '--db', db, '--json', '--max-items', '32', '--max-in-flight', '1'], {
    t,
    onLine: (_line, e) => e?.type === 'peer' && e.state === 'open' && syncConnected(),
  });
  await Promise.race([connected, sync.done]);

  const attacksStarted = Date.now();
  // Plain HTTP, and a malformed URL, to the WebSocket port.
  for (const target of ['/', '/%E0%A4%A', '/../../etc/passwd']) {
    const reply = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`));
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('close', () => resolve(text));
      s.on('error', () => {});
    });
    assert.match(reply, /^HTTP\/1\.1 426/, `GET ${target}`);
  }
  await checkHonest('plain HTTP requests');

  // Seeded garbage, one connection each: frames that do not decode close the connection
  // (1002); frames that do (a code this version does not know) are ignored and the same
  // connection still gets answers.
  const random = seededRandom(13);
  const bytes = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));
  const good = getNodeData(77, hashes.slice(0, 3));
  const garbage = [
    ...Array.from({ length: 40 }, () => bytes(1 + Math.floor(random() * 300))),
    ...Array.from({ length: 40 }, () => Buffer.concat([Buffer.from([0x0d]), bytes(Math.floor(random() * 200))])),
    ...Array.from({ length: 20 }, () => good.subarray(0, Math.floor(random() * good.length))),
    getNodeData(1, Array.from({ length: 1025 }, () => hashes[0])), // over the 1024-hash limit
    Buffer.concat([Buffer.from([0x0d]), rlpList([rlpUint(1), rlpList([rlpString(Buffer.alloc(31))])])]), // a 31-byte hash
  ];
  let closedMalformed = 0;
  for (const frame of garbage) {
    const c = await connectWhenFree(server.url);
    retried += c.refused;
    c.ws.send(frame);
    c.ws.send(good);
    const outcome = await Promise.race([c.next().then((answer) => ({ answer })), c.closed.then((code) => ({ code }))]);
    if (outcome.answer) assert.deepEqual(new Uint8Array(outcome.answer), source.answer(good), 'answer after an ignored frame');
    else {
      assert.equal(outcome.code, 1002, 'a malformed frame closes with 1002');
      closedMalformed++;
    }
    c.ws.terminate();
  }
  assert.ok(closedMalformed >= 60, `${closedMalformed} of ${garbage.length} garbage frames closed their connection`);
  await checkHonest('garbage frames');

  // Messages a server does not answer: unknown codes (reserved for later versions), a Status,
  // a NodeData. The connection stays and is answered.
  const polite = await connectWhenFree(server.url);
  retried += polite.refused;
  for (const frame of [Buffer.from([0x21, 0xc0]), Buffer.from([0x7f, 0xff, 0x00]), honest.status, Buffer.concat([Buffer.from([0x0e]), rlpList([rlpUint(3), rlpList([])])])]) polite.ws.send(frame);
  polite.ws.send(good);
  assert.deepEqual(new Uint8Array(await polite.next()), source.answer(good), 'answered after unknown and unanswerable messages');
  polite.ws.terminate();

  // A text frame (1003) and a frame over the size limit (1009).
  const text = await connectWhenFree(server.url);
  retried += text.refused;
  text.ws.send('hello');
  assert.equal(await text.closed, 1003);
  const big = await connectWhenFree(server.url);
  retried += big.refused;
  big.ws.send(Buffer.alloc(100_000, 0x0d));
  assert.equal(await big.closed, 1009);

  // Frames that break the WebSocket protocol itself, sent over raw TCP: unmasked, a reserved
  // opcode, a length header of 100 MiB. Each connection is closed; the server stays.
  const unmasked = Buffer.from([0x82, good.length, ...good]);
  const hugeHeader = Buffer.alloc(14);
  hugeHeader[0] = 0x82;
  hugeHeader[1] = 0x80 | 127;
  hugeHeader.writeBigUInt64BE(100n << 20n, 2);
  for (const frame of [unmasked, maskedFrame(good, 0x3), hugeHeader]) {
    const raw = await rawUpgrade(port);
    retried += raw.refused;
    raw.socket.write(frame);
    await raw.closed;
  }
  await checkHonest('protocol violations');

  // A connection flood: past the limit, connections are refused (HTTP 503) and the ones open,
  // the honest client's among them, are still served.
  const flood = await Promise.all(Array.from({ length: LIMITS.connections + 10 }, () => connect(server.url)));
  const accepted = flood.filter((c) => c.status);
  const refused = flood.filter((c) => c.error);
  assert.ok(refused.length >= 10, `${refused.length} of ${flood.length} flood connections refused`);
  for (const c of refused) assert.match(c.error.message, /503/);
  await checkHonest('a connection flood, at the limit');
  for (const c of accepted) c.ws.terminate();
  await Promise.all(accepted.map((c) => c.closed));

  // A request flood on one connection: more than --max-in-flight at once. The connection is
  // paused, not dropped: every request is answered.
  const greedy = await connectWhenFree(server.url);
  retried += greedy.refused;
  const burst = Array.from({ length: 60 }, (_, i) => getNodeData(1000 + i, hashes.slice(i * 10, i * 10 + 10)));
  for (const frame of burst) greedy.ws.send(frame);
  const answers = [];
  for (let i = 0; i < burst.length; i++) answers.push(Buffer.from(await greedy.next()).toString('hex'));
  const expected = burst.map((frame) => Buffer.from(source.answer(frame)).toString('hex'));
  assert.deepEqual(answers.sort(), expected.sort(), 'every request of the burst answered');
  greedy.ws.terminate();
  await checkHonest('a request flood');

  // A client that never reads asks for far more than the queued-bytes limit (answers of 2 MiB:
  // the largest code, 1024 times). The honest client is still served meanwhile.
  const slow = await rawUpgrade(port, { read: false });
  retried += slow.refused;
  let requested = 0;
  for (let i = 0; i < 100; i++) {
    const frame = bigRequest(source, 5000 + i);
    requested += source.answer(frame).length;
    slow.socket.write(maskedFrame(frame));
  }
  assert.ok(requested > 100 * LIMITS.queuedBytes, `the slow reader asks for ${requested} bytes`);
  await checkHonest('a client that does not read');
  slow.socket.destroy();
  honest.ws.close();
  const attacksMs = Date.now() - attacksStarted;

  const synced = await sync.done;
  assert.equal(synced.code, 0, `the sync during the attacks: ${synced.stderr}`);
  assert.equal(lastJson(synced).type, 'summary');
  t.diagnostic(`the sync ran ${lastJson(synced).elapsedMs} ms from before the first attack; the attacks took ${attacksMs} ms`);
  const verified = await runCli(['verify', '--db', db, '--json']);
  assert.equal(verified.code, 0, verified.stderr);
  assert.equal(lastJson(verified).accounts, ACCOUNTS);

  // Still up after everything; its stats count what it refused.
  assert.equal(server.child.exitCode, null, 'serve is still running');
  server.child.kill('SIGINT');
  const stopped = await server.done;
  assert.equal(stopped.code, 0, stopped.stderr);
  const stats = lastJson(stopped);
  assert.equal(stats.type, 'stats');
  t.diagnostic(`stats: ${JSON.stringify(stats)}`);
  assert.equal(stats.refused.malformed, closedMalformed);
  assert.ok(stats.refused.unknown >= 2, 'unknown message codes');
  assert.ok(stats.ignored >= 2, 'a Status and a NodeData from a client');
  assert.equal(stats.refused.text, 1);
  assert.ok(stats.refused.oversized >= 1, 'oversized frames');
  assert.ok(stats.refused.oversized + stats.refused.protocol >= 3 + 1, 'protocol violations');
  assert.equal(stats.refused.connections, refused.length + retried);
  assert.equal(stats.refused.overflow, 0, 'nothing a client sent before a pause was dropped');
  assert.ok(stats.peakConnections <= LIMITS.connections, `peak connections ${stats.peakConnections}`);
  assert.ok(stats.paused > 0, 'reading was paused for the floods');
  // One answer past the limit at most: the queue is checked before each write.
  const largestAnswer = source.answer(bigRequest(source, 1)).length;
  assert.ok(stats.peakQueuedBytes <= LIMITS.queuedBytes + largestAnswer, `peak queued ${stats.peakQueuedBytes} bytes`);
  // Each kind of refusal is reported once as it first happens, not once per frame.
  const warnings = stopped.json.filter((e) => e.type === 'warning' && /^peer server refused/.test(e.message));
  assert.equal(warnings.length, Object.values(stats.refused).filter((n) => n > 0).length, warnings.map((w) => w.message).join('\n'));
});

test('a client that does not read makes the server hold at most maxQueuedBytes, and loses nothing', { timeout: 600_000 }, async (t) => {
  const source = StateSource.synthetic(ACCOUNTS, SEED);
  const limits = { maxInFlight: 4, maxQueuedBytes: 1 << 20 };
  const server = await startPeerServer({ source, limits });
  t.after(() => server.close());
  const client = await connect(server.url);
  client.ws.pause();
  // 40 answers of 2 MiB: more than the kernel's socket buffers on both sides can take.
  const frames = Array.from({ length: 40 }, (_, i) => bigRequest(source, i));
  for (const frame of frames) client.ws.send(frame);
  const largestAnswer = source.answer(frames[0]).length;

  // The buffers fill, then answers queue in the server up to the limit, and no further.
  while (server.stats.peakQueuedBytes < limits.maxQueuedBytes) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(server.stats.requests < frames.length, `the server stopped taking requests (took ${server.stats.requests})`);
  assert.ok(server.stats.paused > 0, 'reading was paused');
  assert.ok(server.stats.peakQueuedBytes <= limits.maxQueuedBytes + largestAnswer, `peak queued ${server.stats.peakQueuedBytes}`);

  // Reading again, the client gets every answer.
  client.ws.resume();
  const answers = [];
  for (let i = 0; i < frames.length; i++) answers.push(Buffer.from(await client.next()).toString('hex'));
  const expected = frames.map((frame) => Buffer.from(source.answer(frame)).toString('hex'));
  assert.deepEqual(answers.sort(), expected.sort());
  assert.equal(server.stats.refused.overflow, 0);
  assert.ok(server.stats.peakQueuedBytes <= limits.maxQueuedBytes + largestAnswer, `peak queued ${server.stats.peakQueuedBytes}`);
  client.ws.terminate();
});
