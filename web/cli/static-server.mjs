// Serves the example page over HTTP on localhost for the demo: the page at /, the package's
// browser build it imports (/lib/, /pkg/), the benchmark page (/bench/), and a /config.json
// that prefills the page (peer URLs and root).
//
//   const site = await startStaticServer({ port: 0, config: { peers: [...], root } });
//   site.url // http://127.0.0.1:PORT/
//
// Files are served by sirv, which only ever serves the files it listed under each folder at
// start (so no path, encoded or not, reaches outside them) and survives malformed URLs. The
// handler around it cannot throw: whatever goes wrong answers 500 and the server goes on.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sirv from 'sirv';

const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** URL prefix → folder under web/. Nothing else is served (not the CLI's own code). */
const MOUNTS = Object.freeze({ '/page/': 'page', '/lib/': 'lib', '/pkg/': 'pkg', '/bench/': 'bench' });

/**
 * @param {{port?: number, host?: string, config?: object, root?: string}} o
 *   `root`: the folder holding the mounts (default web/)
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>}>}
 */
export async function startStaticServer({ port = 0, host = '127.0.0.1', config = {}, root = WEB_DIR } = {}) {
  const noStore = (res) => res.setHeader('Cache-Control', 'no-store');
  // A folder that is not there (the bench page is not in the npm package) is not mounted.
  const mounts = Object.entries(MOUNTS)
    .filter(([, dir]) => fs.existsSync(path.join(root, dir)))
    .map(([prefix, dir]) => [prefix, sirv(path.join(root, dir), { dev: false, dotfiles: false, etag: false, setHeaders: noStore })]);
  const notFound = (res) => {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('not found');
  };

  const handle = (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    const pathname = (req.url ?? '/').split('?')[0];
    if (pathname === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(config));
      return;
    }
    if (pathname === '/' || pathname === '/index.html') req.url = '/page/index.html';
    const mount = mounts.find(([prefix]) => req.url.startsWith(prefix));
    if (!mount) {
      notFound(res);
      return;
    }
    const [prefix, serve] = mount;
    req.url = req.url.slice(prefix.length - 1);
    serve(req, res, () => notFound(res));
  };

  const server = http.createServer((req, res) => {
    // A file stream that fails after the headers went out ends the response, not the server.
    res.on('error', () => res.destroy());
    try {
      handle(req, res);
    } catch {
      if (!res.headersSent) res.writeHead(500);
      res.end();
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
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
