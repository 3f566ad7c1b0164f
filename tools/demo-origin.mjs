// The demo shop as an origin: a small static server over build/shop/ (tools/build-www.mjs) that
// behaves like a real shop's origin behind edgekeeper. Only `make dev` (tools/dev.mjs) and the tests
// (startStack({ shop: true })) start it; `wrangler deploy` never ships the shop.
//
//   /, /product, /cart, /success   the pages (index.html, product.html, …): clean URLs; a query is
//                                  the page's business (`/product?id=sku-lamp`)
//   /product.html, /index.html     307 to the clean URL, query kept (so does a trailing slash: /cart/)
//   /assets/<name>.<hash>.<ext>    fingerprinted files: `public, max-age=31536000, immutable`
//   anything else                  a 404 HTML page
// Pages are `public, max-age=300`; every file has a strong ETag (sha256 of its body) and
// `If-None-Match` answers 304. GET and HEAD only (405 otherwise). Files are read on each request, so a
// rebuild shows without a restart. Node built-ins only.
//
//   import { startDemoOrigin } from './tools/demo-origin.mjs';
//   const shop = await startDemoOrigin({ port: 0 }); … shop.url … await shop.close();
//   node tools/demo-origin.mjs --port 8788

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SHOP_DIR = join(ROOT, 'build', 'shop');

export const PAGE_CACHE = 'public, max-age=300';
export const ASSET_CACHE = 'public, max-age=31536000, immutable';
const NOT_FOUND_CACHE = 'public, max-age=60';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

const NOT_FOUND_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Not found — Edgekeeper Goods</title></head>
<body><main><h1>Page not found</h1><p>There is nothing at this address. <a href="/">Back to the shop</a></p></main></body>
</html>
`;

const etagOf = (body) => `"${createHash('sha256').update(body).digest('hex')}"`;

/** If-None-Match matches `etag` (weak comparison, as RFC 9110 says for this header). */
function notModified(header, etag) {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const bare = (t) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

/** A regular file inside `dir` for the URL path `rel` (already decoded), or null. */
function fileIn(dir, rel) {
  if (rel.includes('\0')) return null;
  const p = resolve(dir, `.${rel}`);
  if (p !== dir && !p.startsWith(dir + sep)) return null;
  try {
    return statSync(p).isFile() ? p : null;
  } catch {
    return null;
  }
}

/** What to answer for `pathname`: a file to serve, a redirect, or not found. */
function route(dir, pathname) {
  let path;
  try { path = decodeURIComponent(pathname); } catch { return { notFound: true }; }
  if (path === '/' || path === '/index.html' || path === '/index') {
    return path === '/' ? { file: join(dir, 'index.html'), cache: PAGE_CACHE } : { redirect: '/' };
  }
  if (path.startsWith('/assets/')) {
    const file = fileIn(dir, path);
    return file ? { file, cache: ASSET_CACHE } : { notFound: true };
  }
  // A page: /name (clean), /name.html and /name/ redirect to it. Only top-level pages exist.
  const m = path.match(/^\/([A-Za-z0-9_-]+)(\.html|\/)?$/);
  if (m) {
    const file = fileIn(dir, `/${m[1]}.html`);
    if (file) return m[2] ? { redirect: `/${m[1]}` } : { file, cache: PAGE_CACHE };
  }
  return { notFound: true };
}

function handler(dir) {
  return (req, res) => {
    const url = new URL(req.url, 'http://demo-origin.invalid');
    const head = req.method === 'HEAD';
    const send = (status, headers, body) => {
      res.writeHead(status, { 'content-length': body ? body.length : 0, ...headers });
      res.end(head || !body ? undefined : body);
    };
    if (req.method !== 'GET' && !head) {
      const body = Buffer.from('Method not allowed\n');
      return send(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body);
    }
    const r = route(dir, url.pathname);
    if (r.redirect) {
      // Relative, so it stays right behind the worker (whatever host the browser used).
      const location = r.redirect + url.search;
      return send(307, { location, 'cache-control': PAGE_CACHE, 'content-type': 'text/plain; charset=utf-8' }, Buffer.from(`Moved to ${location}\n`));
    }
    if (r.notFound) {
      return send(404, { 'content-type': TYPES['.html'], 'cache-control': NOT_FOUND_CACHE }, Buffer.from(NOT_FOUND_PAGE));
    }
    let body;
    try {
      body = readFileSync(r.file);
    } catch {
      return send(404, { 'content-type': TYPES['.html'], 'cache-control': NOT_FOUND_CACHE }, Buffer.from(NOT_FOUND_PAGE));
    }
    const etag = etagOf(body);
    const headers = { etag, 'cache-control': r.cache };
    if (notModified(req.headers['if-none-match'], etag)) {
      res.writeHead(304, headers);
      return res.end();
    }
    send(200, { ...headers, 'content-type': TYPES[extname(r.file)] || 'application/octet-stream' }, body);
  };
}

/**
 * Starts the demo origin on 127.0.0.1:`port` (0: a free port) over `root` (default build/shop/).
 * Resolves with `{ url, port, close() }`.
 */
export async function startDemoOrigin({ port = 0, root = SHOP_DIR } = {}) {
  const dir = resolve(root);
  if (!existsSync(join(dir, 'index.html'))) {
    throw new Error(`demo origin: ${dir} has no index.html; build it with \`node tools/build-www.mjs\``);
  }
  const server = createServer(handler(dir));
  server.keepAliveTimeout = 1000;
  await new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(port, '127.0.0.1', () => { server.off('error', rej); res(); });
  });
  const actual = server.address().port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    close: () => new Promise((res) => {
      server.close(() => res());
      server.closeAllConnections?.();
    }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : Number(process.env.DEV_SHOP_PORT || 8788);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`demo origin: bad --port ${args[at + 1]}`);
    process.exit(2);
  }
  const shop = await startDemoOrigin({ port });
  console.log(`demo origin: listening on ${shop.url} (${SHOP_DIR})`);
  const stop = () => shop.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
