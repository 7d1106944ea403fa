// Serves the browser page and the wasm package over HTTP on localhost, plus a /config.json
// that prefills the page (peer URLs and root) for the local demo.
//
//   const site = await startStaticServer({ port: 0, config: { peers: [...], root } });
//   site.url // http://127.0.0.1:PORT/

import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
};

/** What the server exposes: the page at /, modules and the web wasm package below it. */
function resolve(urlPath) {
  const clean = decodeURIComponent(urlPath.split('?')[0]);
  const relative = clean === '/' ? 'page/index.html' : clean.replace(/^\/+/, '');
  const full = path.normalize(path.join(WEB_DIR, relative));
  // Never outside web/, and never the Node-only package or server code.
  if (!full.startsWith(WEB_DIR + path.sep) || full.includes(`${path.sep}pkg${path.sep}node`)) return null;
  return full;
}

/**
 * @param {{port?: number, host?: string, config?: object}} o
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>}>}
 */
export async function startStaticServer({ port = 0, host = '127.0.0.1', config = {} } = {}) {
  const server = http.createServer(async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    if (req.url.split('?')[0] === '/config.json') {
      res.writeHead(200, { 'content-type': TYPES['.json'], 'cache-control': 'no-store' });
      res.end(JSON.stringify(config));
      return;
    }
    const file = resolve(req.url);
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    try {
      const body = await fs.readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, ok);
  });
  const actual = server.address().port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}
