// The cache policy through workerd, in front of an origin that reproduces the layer fight.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TEST_SECRETS } from '../support/stack.mjs';
import { startLayerFightOrigin } from '../fakes/layer-fight-origin.mjs';

let origin, worker;
const CACHE_HEADERS = ['cache-control', 'cdn-cache-control', 'cloudflare-cdn-cache-control', 'surrogate-control', 'expires', 'pragma', 'vercel-cdn-cache-control'];
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };

before(async () => {
  origin = await startLayerFightOrigin();
  worker = await startWorker({ vars: { ORIGIN_URL: origin.url, ADMIN_TOKEN: TEST_SECRETS.ADMIN_TOKEN } });
});
after(async () => {
  await worker?.stop();
  await origin?.close();
});

const cacheHeaders = (r) => Object.fromEntries(CACHE_HEADERS.filter((h) => r.headers.get(h) !== null).map((h) => [h, r.headers.get(h)]));

test('each response leaves with the canonical headers of its class and nothing else', async () => {
  const expect = {
    '/assets/app.3f9a1c2b.js': ['immutable', 'public, max-age=31536000, immutable', 'public, max-age=31536000, immutable'],
    '/products/42': ['html', 'public, max-age=0, must-revalidate', 'public, max-age=120, stale-while-revalidate=60, stale-if-error=86400'],
    '/img/logo.png': ['static', 'public, max-age=3600', 'public, max-age=86400, stale-while-revalidate=86400'],
    '/api/cart': ['api', 'no-store', 'no-store'],
    '/broken': ['error', 'no-store', 'no-store'],
    '/nowhere': ['not_found', 'public, max-age=60', 'public, max-age=60'],
  };
  for (const [path, [cls, browser, cdn]] of Object.entries(expect)) {
    const r = await fetch(`${worker.url}${path}`, { headers: { accept: 'text/html' } });
    await r.arrayBuffer();
    assert.deepEqual(cacheHeaders(r), { 'cache-control': browser, 'cdn-cache-control': cdn, 'cloudflare-cdn-cache-control': cdn }, path);
    assert.match(r.headers.get('x-edgekeeper-cache'), new RegExp(`^${cls}; rule=`), path);
  }
  const page = await fetch(`${worker.url}/products/42`);
  assert.equal(page.headers.get('etag'), '"p42"');
  assert.equal(page.headers.get('last-modified'), 'Wed, 25 Nov 2026 10:00:00 GMT');
  assert.equal(page.headers.get('vary'), 'Accept-Encoding');
  assert.match(await page.text(), /Product 42/);
});

test('a response setting a cookie is never publicly cacheable, whatever rule matches', async () => {
  const ruled = await startWorker({
    vars: { ORIGIN_URL: origin.url, CACHE_RULES: JSON.stringify([{ id: 'everything-immutable', match: { path: '/**' }, class: 'immutable' }]) },
  });
  try {
    for (const w of [worker, ruled]) {
      const r = await fetch(`${w.url}/account`);
      assert.equal(r.headers.get('cache-control'), 'private, no-store');
      assert.equal(r.headers.get('cdn-cache-control'), 'no-store');
      assert.equal(r.headers.get('x-edgekeeper-cache'), 'private; rule=builtin:set-cookie; pass=private');
      assert.match(r.headers.get('set-cookie'), /cart=abc/);
    }
    const viaRule = await fetch(`${ruled.url}/products/42`);
    assert.match(viaRule.headers.get('x-edgekeeper-cache'), /^immutable; rule=everything-immutable; (miss|hit)$/);
    const withSession = await fetch(`${ruled.url}/products/42`, { headers: { cookie: 'PHPSESSID=abc' } });
    assert.equal(withSession.headers.get('cache-control'), 'private, no-store');
    const withAuth = await fetch(`${ruled.url}/img/logo.png`, { headers: { authorization: 'Bearer x' } });
    assert.equal(withAuth.headers.get('cache-control'), 'private, no-store');
  } finally {
    await ruled.stop();
  }
});

test('304 and HEAD keep their class', async () => {
  const r = await fetch(`${worker.url}/products/42`, { headers: { 'if-none-match': '"p42"' } });
  assert.equal(r.status, 304);
  assert.equal(r.headers.get('cache-control'), 'public, max-age=0, must-revalidate');
  assert.equal(r.headers.get('etag'), '"p42"');
  const h = await fetch(`${worker.url}/products/42`, { method: 'HEAD' });
  assert.equal(h.status, 200);
  assert.equal(h.headers.get('cache-control'), 'public, max-age=0, must-revalidate');
  assert.equal(h.headers.get('surrogate-control'), null);
  assert.equal((await h.arrayBuffer()).byteLength, 0);
});

test('a 20 MB body streams through without being buffered', async () => {
  const t0 = Date.now();
  const r = await fetch(`${worker.url}/big`);
  const reader = r.body.getReader();
  const first = await reader.read();
  const firstByteAt = Date.now();
  let total = first.value.byteLength;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
  }
  assert.equal(total, 20 * 1024 * 1024);
  assert.ok(firstByteAt < origin.bigFinishedAt(), `first byte at +${firstByteAt - t0} ms, origin finished at +${origin.bigFinishedAt() - t0} ms`);
  assert.ok(origin.bigFinishedAt() - firstByteAt > 300, 'the client read while the origin was still sending');
  assert.equal(r.headers.get('cache-control'), 'public, max-age=0, must-revalidate');
});

test('an invalid CACHE_RULES is a clear error, and the site keeps working untouched', async () => {
  const bad = await startWorker({ vars: { ORIGIN_URL: origin.url, CACHE_RULES: '[{"match":{"status":"999"},"class":"html"}]' } });
  try {
    const h = await (await fetch(`${bad.url}/health`)).json();
    assert.equal(h.status, 'down');
    const err = h.checks.config.errors.find((e) => e.variable === 'CACHE_RULES');
    assert.match(err.message, /rules\[0\]\.match\.status/);
    const r = await fetch(`${bad.url}/products/42`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=3600', 'origin headers untouched');
    assert.equal(r.headers.get('x-edgekeeper-cache'), 'bypass; reason=config-invalid');
  } finally {
    await bad.stop();
  }
});

test('the worker\'s own assets (/__edgekeeper/*) get the policy too, and are never stored by the worker', async () => {
  const r = await fetch(`${worker.url}/__edgekeeper/dashboard`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('x-edgekeeper-cache'), /^html; rule=builtin:html; bypass=worker-asset$/);
  assert.equal(r.headers.get('cache-control'), 'public, max-age=0, must-revalidate');
});

test('explain reports what the origin sent, the rule, what was set, the zone cache and conflicts', async () => {
  assert.equal((await fetch(`${worker.url}/admin/cache/explain?url=https://shop.example/products/42`)).status, 401);
  const r = await fetch(`${worker.url}/admin/cache/explain?url=${encodeURIComponent('https://shop.example/products/42')}`, { headers: admin });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('cache-control'), 'no-store', 'the worker\'s own answers are not cached');
  const e = await r.json();
  assert.equal(e.origin.headers['cache-control'], 'public, max-age=3600');
  assert.equal(e.origin.headers['surrogate-control'], 'max-age=86400');
  assert.deepEqual(e.decision, { class: 'html', rule: 'builtin:html' });
  assert.equal(e.set['cache-control'], 'public, max-age=0, must-revalidate');
  assert.equal(e.zone_cache.forced, false, 'nothing is forced on the zone cache before the response');
  assert.equal(e.worker_cache.prediction, 'miss');
  assert.ok(e.conflicts.some((c) => c.startsWith('origin sent surrogate-control: max-age=86400; removed')), JSON.stringify(e.conflicts));
  assert.ok(e.conflicts.some((c) => c.startsWith('origin sent cache-control: public, max-age=3600; replaced by')));
  const acct = await (await fetch(`${worker.url}/admin/cache/explain?url=${encodeURIComponent('https://shop.example/account')}`, { headers: admin })).json();
  assert.equal(acct.decision.rule, 'builtin:set-cookie');
  assert.ok(acct.conflicts.some((c) => c.includes('Set-Cookie made a html response private')));
  const bad = await fetch(`${worker.url}/admin/cache/explain?url=javascript:alert(1)`, { headers: admin });
  assert.equal(bad.status, 400);
});

test('without ORIGIN_URL, explain fetches only the site\'s own host; any other host is a 400 and is never fetched', async () => {
  const w = await startWorker({ vars: { ADMIN_TOKEN: TEST_SECRETS.ADMIN_TOKEN } });
  try {
    const before = origin.log.length;
    for (const url of [`${origin.url}/products/42` /* same IP, another port */, 'http://169.254.169.254/latest/meta-data', 'https://evil.example/']) {
      const r = await fetch(`${w.url}/admin/cache/explain?url=${encodeURIComponent(url)}`, { headers: admin });
      const body = await r.json();
      assert.equal(r.status, 400, `${url}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'host_not_allowed');
      assert.match(body.error.message, /only this site's own hosts/);
    }
    assert.equal(origin.log.length, before, 'the other host was never fetched');
    // The worker's own host is allowed (no origin behind it here: explain reports what came back).
    const own = await fetch(`${w.url}/admin/cache/explain?url=${encodeURIComponent(`${w.url}/__edgekeeper/dashboard`)}`, { headers: admin });
    assert.notEqual((await own.json()).error?.code, 'host_not_allowed');
  } finally {
    await w.stop();
  }
});

test('the policy can be switched off: headers pass untouched', async () => {
  const off = await startWorker({ vars: { ORIGIN_URL: origin.url, CACHE_POLICY: 'off' } });
  try {
    const r = await fetch(`${off.url}/products/42`);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=3600');
    assert.equal(r.headers.get('surrogate-control'), 'max-age=86400');
    assert.equal(r.headers.get('x-edgekeeper-cache'), null);
  } finally {
    await off.stop();
  }
});
