// The built site through the worker's cache policy: the demo shop (its origin, tools/demo-origin.mjs)
// and the worker's own /__edgekeeper/ files. Fingerprinted assets are `immutable`, pages are `html`,
// every reference resolves, the tracker has its stable URL, and every page loads in Chromium without
// an error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../support/stack.mjs';

import { stackAndBrowser, watch, assertBuilt, sha256, DESKTOP } from './browser.mjs';

const IMMUTABLE = 'public, max-age=31536000, immutable';
const HTML = 'public, max-age=0, must-revalidate';
const SHOP_PAGES = ['/', '/index.html', '/product?id=sku-lamp', '/cart', '/success'];
const PAGES = [...SHOP_PAGES, '/__edgekeeper/dashboard'];
const FINGERPRINTED = /^(\/__edgekeeper)?\/assets\/[\w/-]+\.[0-9a-f]{10}\.[a-z]+$/;
const ASSET_REF = /(\/__edgekeeper)?\/assets\/[^"'()\s<>`]+/g;
const TRACKER = '/__edgekeeper/tracker.js';

const env = stackAndBrowser();

test('build/edge and build/shop are the builds of www/edge and www/shop', () => {
  assertBuilt();
});

test('pages are served with the html class, fingerprinted assets with the immutable class', async () => {
  const assets = new Set();
  for (const path of PAGES) {
    const r = await fetch(`${env.stack.url}${path}`);
    const body = await r.text();
    assert.equal(r.status, 200, path);
    assert.match(r.headers.get('content-type'), /^text\/html/, path);
    assert.equal(r.headers.get('cache-control'), HTML, path);
    assert.match(r.headers.get('x-edgekeeper-cache'), /^html;/, path);
    for (const ref of body.match(ASSET_REF) ?? []) assets.add(ref);
  }
  // The .html names redirect to the clean ones the pages link to; both are html, never immutable.
  const redirect = await fetch(`${env.stack.url}/product.html?id=sku-lamp`, { redirect: 'manual' });
  assert.ok([200, 301, 302, 307, 308].includes(redirect.status), String(redirect.status));
  if (redirect.status !== 200) {
    const to = new URL(redirect.headers.get('location'), env.stack.url);
    assert.equal(to.pathname, '/product');
    assert.equal(to.search, '?id=sku-lamp', 'the redirect keeps the query');
  }

  // Assets referenced by assets (dashboard.js imports charts.js) are followed too.
  const seen = new Set();
  const queue = [...assets];
  while (queue.length) {
    const ref = queue.shift();
    if (seen.has(ref)) continue;
    seen.add(ref);
    assert.match(ref, FINGERPRINTED, `${ref} is referenced without its content hash`);
    const r = await fetch(`${env.stack.url}${ref}`);
    const body = await r.text();
    assert.equal(r.status, 200, ref);
    assert.equal(r.headers.get('cache-control'), IMMUTABLE, ref);
    assert.equal(r.headers.get('cdn-cache-control'), IMMUTABLE, ref);
    assert.match(r.headers.get('x-edgekeeper-cache'), /^immutable;/, ref);
    const type = r.headers.get('content-type');
    if (ref.endsWith('.js')) assert.match(type, /javascript/, ref);
    if (ref.endsWith('.css')) assert.match(type, /^text\/css/, ref);
    if (ref.endsWith('.svg')) assert.match(type, /^image\/svg\+xml/, ref);
    for (const inner of body.match(ASSET_REF) ?? []) queue.push(inner);
  }
  // The shop's own assets come from its origin, the dashboard's from the worker, each in its folder.
  for (const prefix of ['/assets/style.', '/assets/shop.', '/assets/icon.',
    '/__edgekeeper/assets/style.', '/__edgekeeper/assets/dashboard.', '/__edgekeeper/assets/charts.', '/__edgekeeper/assets/icon.']) {
    assert.ok([...seen].some((p) => p.startsWith(prefix)), `${prefix}* is served`);
  }
});

test('the tracker is at its stable URL: every shop page embeds it with a plain script tag', async () => {
  for (const path of SHOP_PAGES) {
    const html = await (await fetch(`${env.stack.url}${path}`)).text();
    assert.ok(html.includes(`<script src="${TRACKER}" defer></script>`), `${path} embeds ${TRACKER}`);
    assert.doesNotMatch(html, /tracker\.[0-9a-f]{10}\.js/, `${path}: no fingerprinted tracker`);
    assert.ok(html.includes('href="/__edgekeeper/dashboard"'), `${path} links the dashboard at /__edgekeeper/dashboard`);
  }
  const r = await fetch(`${env.stack.url}${TRACKER}`);
  const body = await r.text();
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /javascript/);
  assert.equal(body, readFileSync(join(ROOT, 'build/edge/__edgekeeper/tracker.js'), 'utf8'));
  // Its name never changes, so browsers must not keep it for a year.
  assert.doesNotMatch(r.headers.get('cache-control') ?? '', /immutable/);
  assert.doesNotMatch(r.headers.get('x-edgekeeper-cache') ?? '', /^immutable/);
  const head = await fetch(`${env.stack.url}${TRACKER}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test('the worker serves its assets only under /__edgekeeper/; every other path is the shop origin\'s', async () => {
  // A shop page through the worker is the origin's page, byte for byte (its ETag is the sha256 of it).
  const home = await fetch(`${env.stack.url}/`);
  const homeBody = await home.text();
  assert.equal(homeBody, readFileSync(join(ROOT, 'build/shop/index.html'), 'utf8'));
  assert.equal(home.headers.get('etag'), `"${sha256(homeBody)}"`, 'the origin\'s ETag stays');
  // The old dashboard URL and the edge files without their prefix are the origin's 404s, not assets.
  const dashboardJs = readFileSync(join(ROOT, 'build/edge/__edgekeeper/dashboard.html'), 'utf8').match(/\/__edgekeeper(\/assets\/dashboard\.[0-9a-f]{10}\.js)/)[1];
  for (const path of ['/dashboard', '/dashboard.html', '/tracker.js', dashboardJs]) {
    const r = await fetch(`${env.stack.url}${path}`);
    await r.arrayBuffer();
    assert.equal(r.status, 404, path);
    assert.match(r.headers.get('content-type'), /^text\/html/, `${path}: the origin's 404 page`);
  }
  // A missing file under /__edgekeeper/ is the worker's JSON 404, never the origin.
  for (const path of ['/__edgekeeper/nope.js', '/__edgekeeper/assets/style.css']) {
    const r = await fetch(`${env.stack.url}${path}`);
    assert.equal(r.status, 404, path);
    assert.equal((await r.json()).error.code, 'not_found', path);
  }
});

test('every page loads in Chromium: assets 200, no errors', async () => {
  const context = await env.browser.newContext(DESKTOP);
  try {
    for (const path of PAGES) {
      const page = await context.newPage();
      const w = watch(page);
      const bad = [];
      page.on('response', (r) => { if (r.status() >= 400) bad.push(`${r.status()} ${r.url()}`); });
      page.on('requestfailed', (r) => bad.push(`failed ${r.url()}`));
      await page.goto(`${env.stack.url}${path}`, { waitUntil: 'networkidle' });
      assert.deepEqual(bad, [], path);
      const sheets = await page.evaluate(() => [...document.styleSheets].map((s) => s.cssRules.length));
      assert.ok(sheets.length === 1 && sheets[0] > 20, `${path}: the stylesheet applied`);
      w.check();
      await page.close();
    }
  } finally {
    await context.close();
  }
});

test('tracker.js also works as an ES module (import for its side effect)', async () => {
  const context = await env.browser.newContext(DESKTOP);
  try {
    const page = await context.newPage();
    const w = watch(page);
    await page.goto(`${env.stack.url}/__edgekeeper/dashboard`); // a page without the tracker
    const html = await (await fetch(`${env.stack.url}/`)).text();
    const src = html.match(/\/__edgekeeper\/tracker\.js/)[0];
    const api = await page.evaluate(async (src) => {
      await import(src);
      const ek = globalThis.edgekeeper;
      return { version: ek.version, fns: ['track', 'consent', 'setConsent', 'flush', 'outbox', 'hashEmail'].every((f) => typeof ek[f] === 'function'), id: ek.newId() };
    }, src);
    assert.equal(api.version, '1');
    assert.ok(api.fns);
    assert.match(api.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    w.check();
  } finally {
    await context.close();
  }
});
