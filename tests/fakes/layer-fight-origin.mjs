// An origin that reproduces the "four layers" cache-header fight: platform config, middleware, page
// code and fallbacks each setting their own Cache-Control, CDN and Surrogate headers. The cache policy
// tests put edgekeeper in front of it. Also serves 304s, a cookie-setting page, errors and a slow
// 20 MB stream (to show bodies are not buffered).

import { createServer } from 'node:http';

// `delayMs`: the origin takes that long before it answers (a real shop's time to first byte).
export async function startLayerFightOrigin({ delayMs = 0 } = {}) {
  const log = [];
  let bigFinishedAt = 0;
  const server = createServer((req, res) => (delayMs > 0 ? setTimeout(() => handle(req, res), delayMs) : handle(req, res)));
  const handle = (req, res) => {
    log.push({ method: req.method, url: req.url, cookie: req.headers.cookie ?? null });
    const send = (status, headers, body = '') => { res.writeHead(status, headers); res.end(req.method === 'HEAD' ? undefined : body); };
    const path = req.url.split('?')[0];
    switch (path) {
      case '/assets/app.3f9a1c2b.js': // platform config said a year; middleware rewrote it to 30 days
        return send(200, { 'content-type': 'application/javascript', 'cache-control': 'public, max-age=2592000', etag: '"js-1"' }, 'console.log(1)');
      case '/products/42': // page code: one hour, plus a CDN layer's Surrogate-Control and legacy headers
        if (req.headers['if-none-match'] === '"p42"') return send(304, { etag: '"p42"', 'cache-control': 'max-age=3600' });
        return send(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'public, max-age=3600',
          'surrogate-control': 'max-age=86400',
          'cdn-cache-control': 'max-age=600',
          expires: 'Thu, 01 Jan 2037 00:00:00 GMT',
          pragma: 'public',
          etag: '"p42"',
          'last-modified': 'Wed, 25 Nov 2026 10:00:00 GMT',
          vary: 'Accept-Encoding',
        }, '<!doctype html><h1>Product 42</h1>');
      case '/img/logo.png': // a fallback layer's five minutes
        return send(200, { 'content-type': 'image/png', 'cache-control': 'max-age=300' }, 'PNG');
      case '/account': // personal, yet a layer marked it public
        return send(200, { 'content-type': 'text/html', 'cache-control': 'public, max-age=600', 'set-cookie': 'cart=abc; Path=/; HttpOnly' }, '<h1>Your account</h1>');
      case '/api/cart':
        return send(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=60' }, '{"items":[]}');
      case '/broken':
        return send(503, { 'content-type': 'text/html', 'cache-control': 'public, max-age=600' }, 'down');
      case '/big': {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'max-age=60' });
        const chunk = Buffer.alloc(1024 * 1024, 120);
        let sent = 0;
        const tick = () => {
          if (sent === 20) { bigFinishedAt = Date.now(); return res.end(); }
          sent += 1;
          res.write(chunk);
          setTimeout(tick, 40);
        };
        return tick();
      }
      default:
        return send(404, { 'content-type': 'text/html', 'cache-control': 'max-age=86400' }, 'not here');
    }
  };
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    log,
    bigFinishedAt: () => bigFinishedAt,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
