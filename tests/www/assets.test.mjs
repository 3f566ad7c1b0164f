// The built site through the worker's cache policy: fingerprinted assets are `immutable`, pages are
// `html`, every reference resolves, and every page loads in Chromium without an error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { stackAndBrowser, watch, assertBuilt, DESKTOP } from './browser.mjs';

const IMMUTABLE = 'public, max-age=31536000, immutable';
const HTML = 'public, max-age=0, must-revalidate';
const PAGES = ['/', '/index.html', '/product?id=sku-lamp', '/cart', '/success', '/dashboard'];
const FINGERPRINTED = /^\/assets\/[\w/-]+\.[0-9a-f]{10}\.[a-z]+$/;

const env = stackAndBrowser();

test('build/www is the build of www/', () => {
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
    for (const ref of body.match(/\/assets\/[^"'()\s<>]+/g) ?? []) assets.add(ref);
  }
  // The .html names redirect to the clean ones the pages link to; both are html, never immutable.
  const redirect = await fetch(`${env.stack.url}/product.html?id=sku-lamp`, { redirect: 'manual' });
  assert.ok([200, 301, 302, 307, 308].includes(redirect.status), String(redirect.status));
  if (redirect.status !== 200) assert.equal(new URL(redirect.headers.get('location'), env.stack.url).pathname, '/product');

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
    for (const inner of body.match(/\/assets\/[^"'()\s<>`]+/g) ?? []) queue.push(inner);
  }
  for (const name of ['style.css', 'tracker.js', 'shop.js', 'dashboard.js', 'charts.js', 'icon.svg']) {
    assert.ok([...seen].some((p) => p.startsWith(`/assets/${name.split('.')[0]}.`)), `${name} is served`);
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
    await page.goto(`${env.stack.url}/dashboard`); // a page without the tracker
    const html = await (await fetch(`${env.stack.url}/`)).text();
    const src = html.match(/\/assets\/tracker\.[0-9a-f]{10}\.js/)[0];
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
