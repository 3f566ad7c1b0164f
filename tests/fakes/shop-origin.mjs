// An origin that behaves like real shops do with personal pages (Rails/Django/Shopify style: a
// session cookie nobody listed, `private` + `Vary: Cookie`, a fresh CSRF cookie per login page) and
// like a catalogue with public pages, so the worker's cache can be tested from outside: every body
// carries a per-request nonce, every request is logged, and the origin can be taken down (503 or a
// refused connection) and brought back.

import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';

export async function startShopOrigin() {
  const log = [];
  let down = null; // null | '503' | 'refuse'
  let version = 1;
  const server = createServer((req, res) => {
    log.push({ method: req.method, url: req.url, cookie: req.headers.cookie ?? null, inm: req.headers['if-none-match'] ?? null });
    if (down === 'refuse') return req.socket.destroy();
    const nonce = randomUUID();
    const send = (status, headers, body = '') => { res.writeHead(status, headers); res.end(req.method === 'HEAD' ? undefined : body); };
    if (down === '503') return send(503, { 'content-type': 'text/html' }, 'origin down');
    const [path] = req.url.split('?');
    const session = /(?:^|;\s*)_myshop_sess=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? null;
    if (path === '/account') {
      // Personal: the origin says so the way most frameworks do.
      return send(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'private, max-age=0', vary: 'Cookie' },
        `<h1>Account of ${session ?? 'nobody'}</h1><p data-nonce="${nonce}"></p>`);
    }
    if (path === '/login') {
      // A fresh CSRF token per visitor, in the cookie and in the form.
      return send(200, { 'content-type': 'text/html', 'set-cookie': `csrf=${nonce}; Path=/; HttpOnly` },
        `<form><input name="csrf" value="${nonce}"></form>`);
    }
    if (path === '/' || path === '/cart' || path === '/product') {
      // The shop's own pages, which a deployed worker must never replace with its demo shop.
      return send(200, { 'content-type': 'text/html', 'cache-control': 'no-store' }, `<h1>the real shop: ${path}</h1><p data-nonce="${nonce}"></p>`);
    }
    if (path.startsWith('/p/')) {
      const etag = `"${path.slice(3)}-v${version}"`;
      if (req.headers['if-none-match'] === etag) return send(304, { etag });
      return send(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=300', etag },
        `<h1>Product ${path.slice(3)} v${version}</h1><p data-nonce="${nonce}"></p><p data-url="${req.url}"></p>`);
    }
    return send(404, { 'content-type': 'text/html' }, `not here ${nonce}`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    hits: (path) => log.filter((l) => l.url.split('?')[0] === path).length,
    setDown(mode) { down = mode; },
    bump() { version += 1; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
