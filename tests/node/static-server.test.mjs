// The demo's page server: malformed URLs and path traversal get a 4xx, never a crash and never
// a file outside the served folders; the page, the package's browser build and the config are
// served with their types.

import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { startStaticServer } from '../../web/cli/static-server.mjs';

/** A request with `target` sent exactly as written (no URL normalisation on the way). */
function rawGet(server, target, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path: target }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Bytes on a socket, for request lines http.request refuses to send. */
function rawSocket(server, text) {
  return new Promise((resolve) => {
    const socket = net.connect(server.port, '127.0.0.1', () => socket.end(text));
    let reply = '';
    socket.setEncoding('latin1');
    socket.on('data', (c) => (reply += c));
    socket.on('close', () => resolve(reply));
    socket.on('error', () => resolve(reply));
  });
}

test('malformed URLs and path traversal get 4xx, the server keeps serving', async (t) => {
  const server = await startStaticServer({ config: { root: '0x1' } });
  t.after(() => server.close());
  const attempts = [
    '/%E0%A4%A',
    '/lib/%E0%A4%A',
    '/page/%',
    '/pkg/%zz',
    '/../package.json',
    '/lib/../cli/cli.mjs',
    '/lib/..%2fcli%2fcli.mjs',
    '/lib/%2e%2e/cli/cli.mjs',
    '/lib/%2e%2e%2fcli%2fcli.mjs',
    '/pkg/..%5c..%5cpackage.json',
    '/page/....//....//package.json',
    '//etc/passwd',
    '/lib//../../package.json',
    '/cli/cli.mjs',
    '/lib/%00',
    '/page/index.html%00.js',
    '/.git/config',
    '/lib/.gitignore',
  ];
  for (const target of attempts) {
    const res = await rawGet(server, target);
    assert.ok(res.status >= 400 && res.status < 500, `${target}: ${res.status}`);
    assert.doesNotMatch(res.body, /statesync|import|\[core\]|root:/, `${target} leaked a file`);
  }
  for (const line of ['GET /%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n', 'GET \x00 HTTP/1.1\r\n\r\n', 'GARBAGE\r\n\r\n', `GET /${'a'.repeat(20000)} HTTP/1.1\r\nHost: x\r\n\r\n`]) {
    const reply = await rawSocket(server, line);
    assert.ok(reply === '' || /^HTTP\/1\.1 4\d\d/.test(reply), `${JSON.stringify(line.slice(0, 30))}: ${reply.slice(0, 40)}`);
  }
  assert.equal((await rawGet(server, '/', 'POST')).status, 405);

  // Still up, serving what it should.
  const page = await rawGet(server, '/');
  assert.equal(page.status, 200);
  assert.match(page.type, /^text\/html/);
  assert.match(page.body, /<script type="importmap">/);
  const lib = await rawGet(server, '/lib/browser.mjs');
  assert.equal(lib.status, 200);
  assert.match(lib.type, /javascript/);
  const config = await rawGet(server, '/config.json?x=%E0%A4%A');
  assert.deepEqual(JSON.parse(config.body), { root: '0x1' });
  const wasm = await rawGet(server, '/pkg/statesync_wasm_bg.wasm', 'HEAD');
  assert.equal(wasm.status, 200);
  assert.equal(wasm.type, 'application/wasm');
});
