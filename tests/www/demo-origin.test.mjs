// The demo shop origin on its own (tools/demo-origin.mjs over build/shop/), as the worker sees it:
// clean page URLs and redirects from the .html names, fingerprinted assets `immutable`, pages
// `max-age=300` with a strong ETag and 304 on If-None-Match, HEAD, 404 and 405.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT } from '../support/stack.mjs';
import { startDemoOrigin, PAGE_CACHE, ASSET_CACHE } from '../../tools/demo-origin.mjs';

const SHOP = join(ROOT, 'build', 'shop');
const etagOf = (buf) => `"${createHash('sha256').update(buf).digest('hex')}"`;
let origin;

before(async () => { origin = await startDemoOrigin(); });
after(async () => { await origin?.close(); });

const get = (path, init) => fetch(`${origin.url}${path}`, { redirect: 'manual', ...init });

test('clean URLs serve the pages, with the page cache header and a strong ETag', async () => {
  const pages = { '/': 'index.html', '/product?id=sku-lamp': 'product.html', '/cart': 'cart.html', '/success?order=order-1': 'success.html' };
  for (const [path, file] of Object.entries(pages)) {
    const r = await get(path);
    const body = Buffer.from(await r.arrayBuffer());
    const want = readFileSync(join(SHOP, file));
    assert.equal(r.status, 200, path);
    assert.ok(body.equals(want), `${path} is ${file}`);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8', path);
    assert.equal(r.headers.get('cache-control'), PAGE_CACHE, path);
    assert.equal(r.headers.get('etag'), etagOf(want), `${path}: strong ETag, sha256 of the body`);
    assert.equal(r.headers.get('content-length'), String(want.length), path);
  }
});

test('.html names, /index and a trailing slash redirect to the clean URL, keeping the query', async () => {
  const cases = { '/product.html?id=sku-lamp': '/product?id=sku-lamp', '/index.html': '/', '/index.html?utm_source=x': '/?utm_source=x',
    '/cart.html': '/cart', '/cart/': '/cart', '/success.html?order=o-1': '/success?order=o-1' };
  for (const [path, location] of Object.entries(cases)) {
    const r = await get(path);
    await r.arrayBuffer();
    assert.ok([307, 308].includes(r.status), `${path}: ${r.status}`);
    assert.equal(r.headers.get('location'), location, path);
  }
});

test('fingerprinted assets: immutable, right content types, bodies as built', async () => {
  const names = readdirSync(join(SHOP, 'assets'));
  assert.ok(names.length >= 3);
  const types = { '.css': /^text\/css/, '.js': /^text\/javascript/, '.svg': /^image\/svg\+xml$/ };
  for (const name of names) {
    assert.match(name, /\.[0-9a-f]{10}\.\w+$/, `${name} carries its content hash`);
    const r = await get(`/assets/${name}`);
    const body = Buffer.from(await r.arrayBuffer());
    assert.equal(r.status, 200, name);
    assert.equal(r.headers.get('cache-control'), ASSET_CACHE, name);
    assert.match(r.headers.get('content-type'), types[name.slice(name.lastIndexOf('.'))], name);
    assert.ok(body.equals(readFileSync(join(SHOP, 'assets', name))), name);
    assert.equal(r.headers.get('etag'), etagOf(body), name);
  }
});

test('If-None-Match with the ETag is a 304 without a body; another tag gets the page', async () => {
  const first = await get('/product?id=sku-lamp');
  await first.arrayBuffer();
  const etag = first.headers.get('etag');
  for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const r = await get('/product?id=sku-lamp', { headers: { 'if-none-match': inm } });
    assert.equal(r.status, 304, inm);
    assert.equal(await r.text(), '', inm);
    assert.equal(r.headers.get('etag'), etag, inm);
    assert.equal(r.headers.get('cache-control'), PAGE_CACHE, inm);
  }
  const other = await get('/product', { headers: { 'if-none-match': '"not-it"' } });
  assert.equal(other.status, 200);
  assert.ok((await other.text()).includes('<body data-page="product">'));
});

test('HEAD: the GET headers without a body, and 304 on a matching ETag', async () => {
  for (const path of ['/', '/cart', `/assets/${readdirSync(join(SHOP, 'assets'))[0]}`]) {
    const g = await get(path);
    const body = await g.arrayBuffer();
    const h = await get(path, { method: 'HEAD' });
    assert.equal(h.status, 200, path);
    assert.equal(await h.text(), '', path);
    for (const k of ['content-type', 'cache-control', 'etag']) assert.equal(h.headers.get(k), g.headers.get(k), `${path} ${k}`);
    assert.equal(h.headers.get('content-length'), String(body.byteLength), path);
    const c = await get(path, { method: 'HEAD', headers: { 'if-none-match': g.headers.get('etag') } });
    assert.equal(c.status, 304, path);
  }
  const missing = await get('/nope', { method: 'HEAD' });
  assert.equal(missing.status, 404);
  assert.equal(await missing.text(), '');
});

test('anything else is a 404 HTML page; no path leaves build/shop/; only GET and HEAD', async () => {
  // The worker's own files are not the shop's: /__edgekeeper/* never comes from here.
  for (const path of ['/nope', '/dashboard', '/__edgekeeper/tracker.js', '/__edgekeeper/dashboard', '/assets/style.css', '/assets/nope.0123456789.js',
    '/assets', '/product/extra', '/%2e%2e/package.json', '/assets/..%2f..%2f..%2fpackage.json', '/..%2fpackage.json', '/%E0%A4%A']) {
    const r = await get(path);
    const body = await r.text();
    assert.equal(r.status, 404, path);
    assert.equal(r.headers.get('content-type'), 'text/html; charset=utf-8', path);
    assert.match(body, /Page not found/, path);
    assert.doesNotMatch(body, /"name": "edgekeeper"/, path);
  }
  const post = await get('/cart', { method: 'POST', body: 'x' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});

test('runs as a CLI: --port N, prints where it listens', async () => {
  const child = spawn(process.execPath, [join(ROOT, 'tools/demo-origin.mjs'), '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise((res, rej) => {
      child.on('exit', (code) => rej(new Error(`demo origin exited with ${code}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        if (m) res(m[1]);
      });
    });
    const r = await fetch(`${url}/cart`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /data-page="cart"/);
  } finally {
    child.removeAllListeners('exit');
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});
