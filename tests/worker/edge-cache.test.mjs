// The worker's own cache (the Workers Cache API, real in workerd): the class is decided on the
// origin's response, personal pages are never stored, ad-traffic variants share one copy, HTML is
// served stale while refreshed and when the origin is down, purge drops copies, explain predicts,
// and the deployed configuration never shadows the origin's pages.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { startStack, waitFor, TEST_SECRETS, ROOT } from '../support/stack.mjs';
import { startShopOrigin } from '../fakes/shop-origin.mjs';

let origin, stack;
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, 'content-type': 'application/json' };
const nav = { accept: 'text/html' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  origin = await startShopOrigin();
  // HTML windows short enough to watch: fresh 1 s, stale-while-revalidate 2 s, stale-if-error 10 min.
  stack = await startStack({ vars: { ORIGIN_URL: origin.url, CACHE_HTML_TTL: '1', CACHE_HTML_SWR: '2', CACHE_HTML_SIE: '600' } });
});
after(async () => {
  await stack?.stop();
  await origin?.close();
});

const get = async (path, headers = {}, init = {}) => {
  const r = await fetch(`${stack.url}${path}`, { headers: { ...nav, ...headers }, redirect: 'manual', ...init });
  return { status: r.status, headers: r.headers, body: await r.text() };
};
const nonce = (body) => /data-nonce="([^"]+)"/.exec(body)?.[1];
const how = (r) => r.headers.get('x-edgekeeper-cache');

test('private + Vary: Cookie with an unlisted session cookie: each visitor gets their own page, every time', async () => {
  const seen = new Set();
  for (let round = 0; round < 3; round += 1) {
    for (const who of ['alice', 'bob']) {
      const r = await get('/account', { cookie: `_myshop_sess=${who}; theme=dark` });
      assert.equal(r.status, 200);
      assert.match(r.body, new RegExp(`Account of ${who}<`), `round ${round}: ${who} got ${r.body}`);
      assert.ok(!seen.has(nonce(r.body)), 'a body served twice');
      seen.add(nonce(r.body));
      assert.equal(r.headers.get('cache-control'), 'private, no-store');
      assert.equal(how(r), 'private; rule=builtin:vary; pass=private');
      assert.equal(r.headers.get('age'), null);
    }
  }
  assert.equal(origin.hits('/account'), 6, 'every request reached the origin');
});

test('a page with a fresh Set-Cookie: two visitors get two cookies and two bodies', async () => {
  const a = await get('/login');
  const b = await get('/login');
  const cookie = (r) => /csrf=([^;]+)/.exec(r.headers.get('set-cookie'))?.[1];
  assert.ok(cookie(a) && cookie(b));
  assert.notEqual(cookie(a), cookie(b));
  assert.notEqual(a.body, b.body);
  assert.match(a.body, new RegExp(cookie(a)), 'the form carries the visitor\'s own token');
  assert.equal(how(a), 'private; rule=builtin:set-cookie; pass=private');
  assert.equal(origin.hits('/login'), 2);
});

test('ad traffic: three fbclid/utm variants reach the origin once; the second and third are served by the worker', async () => {
  const variants = ['/p/42?fbclid=AAA', '/p/42?fbclid=BBB&utm_source=facebook', '/p/42?utm_campaign=spring&gclid=CCC&utm_medium=cpc'];
  const answers = [];
  for (const v of variants) answers.push(await get(v));
  assert.equal(origin.hits('/p/42'), 1);
  assert.equal(origin.log.find((l) => l.url.startsWith('/p/42')).url, '/p/42?fbclid=AAA', 'the origin saw the full URL of the miss');
  assert.equal(how(answers[0]), 'html; rule=builtin:html; miss');
  for (const r of answers.slice(1)) {
    assert.equal(r.status, 200);
    assert.equal(how(r), 'html; rule=builtin:html; hit');
    assert.match(r.headers.get('age'), /^\d+$/);
    assert.equal(nonce(r.body), nonce(answers[0].body), 'the stored copy');
    assert.equal(r.headers.get('cache-control'), 'public, max-age=0, must-revalidate', 'canonical headers, not the stored copy\'s');
    assert.equal(r.headers.get('cdn-cache-control'), 'public, max-age=1, stale-while-revalidate=2, stale-if-error=600');
    assert.equal(r.headers.get('x-edgekeeper-stored'), null);
  }
  // Query order is normalised; a real parameter is its own page.
  await get('/p/7?b=2&a=1');
  assert.equal(how(await get('/p/7?a=1&b=2&fbclid=x')), 'html; rule=builtin:html; hit');
  assert.equal(how(await get('/p/7?a=1')), 'html; rule=builtin:html; miss');
  assert.equal(origin.hits('/p/7'), 2);
});

test('a stored copy answers conditional requests with 304 and HEAD without a body', async () => {
  const first = await get('/p/31');
  assert.equal(how(first), 'html; rule=builtin:html; miss');
  const cond = await get('/p/31', { 'if-none-match': '"31-v1"' });
  assert.equal(cond.status, 304);
  assert.equal(cond.body, '');
  assert.equal(cond.headers.get('etag'), '"31-v1"');
  assert.equal(how(cond), 'html; rule=builtin:html; hit');
  const other = await get('/p/31', { 'if-none-match': '"31-v0"' });
  assert.equal(other.status, 200);
  assert.equal(nonce(other.body), nonce(first.body));
  const head = await get('/p/31', {}, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal(how(head), 'html; rule=builtin:html; hit');
  assert.equal(origin.hits('/p/31'), 1);
  // Credentials skip the cache and reach the origin.
  const authed = await get('/p/31', { authorization: 'Bearer x' });
  assert.equal(how(authed), 'private; rule=builtin:authorization; bypass=authorization');
  assert.equal(origin.hits('/p/31'), 2);
});

test('HTML is served stale while it is refreshed, and stale when the origin is down, then refreshed', async () => {
  const v1 = await get('/p/9');
  assert.match(v1.body, /v1/);
  origin.bump();
  await sleep(1300); // past the 1 s TTL, inside the 2 s stale-while-revalidate window
  const stale = await get('/p/9');
  assert.equal(how(stale), 'html; rule=builtin:html; stale');
  assert.equal(nonce(stale.body), nonce(v1.body), 'the stored copy, at once');
  const refreshed = await waitFor(async () => {
    const r = await get('/p/9');
    return /v2/.test(r.body) && r;
  }, { ms: 5000, what: 'the background refresh' });
  assert.match(how(refreshed), /; (hit|stale|miss)$/);
  const v2 = nonce(refreshed.body);
  await sleep(3300); // past TTL + SWR: usable only if the origin fails
  for (const mode of ['503', 'refuse']) {
    origin.setDown(mode);
    const r = await get('/p/9');
    assert.equal(r.status, 200, mode);
    assert.equal(how(r), 'html; rule=builtin:html; stale-if-error', mode);
    assert.equal(nonce(r.body), v2, mode);
  }
  origin.setDown(null);
  origin.bump();
  const back = await get('/p/9');
  assert.equal(how(back), 'html; rule=builtin:html; miss');
  assert.match(back.body, /v3/);
  assert.equal(how(await get('/p/9')), 'html; rule=builtin:html; hit');
  // Without a stored copy an outage is a clear 503, not a worker exception.
  origin.setDown('refuse');
  const none = await get('/p/never-stored');
  origin.setDown(null);
  assert.equal(none.status, 503);
  assert.equal(JSON.parse(none.body).error.code, 'origin_unreachable');
});

test('purge drops a URL (any ad variant of it) or a prefix; bad bodies are 400 and change nothing', async () => {
  await get('/p/5');
  await get('/p/6');
  assert.equal(how(await get('/p/5')), 'html; rule=builtin:html; hit');
  const purge = (body, headers = admin) => fetch(`${stack.url}/admin/cache/purge`, { method: 'POST', headers, body: JSON.stringify(body) });
  assert.equal((await purge({ targets: [{ url: '/p/5' }] }, { 'content-type': 'application/json' })).status, 401);
  for (const bad of [[], {}, { targets: [] }, { targets: [{ prefix: 'p/' }] }, { targets: [{ url: 'ftp://x/y' }] }, { targets: [{ url: '/a', prefix: '/b' }] }, { targets: [{ path: '/p/5' }] }]) {
    const r = await purge(bad);
    assert.equal(r.status, 400, JSON.stringify(bad));
    assert.ok((await r.json()).error.code, JSON.stringify(bad));
  }
  assert.equal(how(await get('/p/5')), 'html; rule=builtin:html; hit', 'a refused purge changed nothing');
  const r = await purge({ targets: [{ url: `${stack.url}/p/5?fbclid=ZZZ` }] });
  assert.equal(r.status, 200);
  assert.deepEqual((await r.json()).purged, ['url:/p/5']);
  const before5 = origin.hits('/p/5');
  assert.equal(how(await get('/p/5')), 'html; rule=builtin:html; miss');
  assert.equal(origin.hits('/p/5'), before5 + 1);
  assert.equal(how(await get('/p/6')), 'html; rule=builtin:html; hit', 'another URL kept');
  assert.equal((await purge({ targets: [{ prefix: '/p/' }] })).status, 200);
  assert.equal(how(await get('/p/6')), 'html; rule=builtin:html; miss');
  assert.equal(how(await get('/p/5')), 'html; rule=builtin:html; miss');
  assert.equal(how(await get('/p/5')), 'html; rule=builtin:html; hit', 'stored again after the purge');
});

test('explain predicts hit, miss, pass and bypass for a URL and says why', async () => {
  const explain = async (url) => {
    const r = await fetch(`${stack.url}/admin/cache/explain?url=${encodeURIComponent(url)}`, { headers: admin });
    assert.equal(r.status, 200);
    return (await r.json()).worker_cache;
  };
  const cold = await explain(`${stack.url}/p/77`);
  assert.equal(cold.prediction, 'miss');
  assert.equal(cold.key, `${stack.url}/p/77`);
  await get('/p/77?utm_source=x');
  const warm = await explain(`${stack.url}/p/77?fbclid=Q`);
  assert.equal(warm.prediction, 'hit', JSON.stringify(warm));
  assert.equal(warm.key, `${stack.url}/p/77`);
  assert.equal(warm.why, 'a fresh copy is stored');
  assert.equal(warm.fresh_for, 1);
  assert.equal(warm.stored.class, 'html');
  const personal = await explain(`${stack.url}/account`);
  assert.equal(personal.prediction, 'pass');
  assert.equal(personal.why, 'private');
});

test('the deployed configuration: the origin answers its own /, /cart and /product; the worker keeps only /__edgekeeper/*', async () => {
  for (const path of ['/', '/cart', '/product?id=sku-lamp']) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.match(r.body, new RegExp(`the real shop: ${path.split('?')[0]}<`), path);
  }
  const before = origin.log.length;
  const tracker = await fetch(`${stack.url}/__edgekeeper/tracker.js`);
  assert.equal(tracker.status, 200);
  assert.match(await tracker.text(), /collect/);
  const missing = await fetch(`${stack.url}/__edgekeeper/nope.js`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, 'not_found');
  assert.equal(origin.log.length, before, 'the worker\'s own paths never reach the origin');
  // What `wrangler deploy` uploads as assets: only the worker's prefix.
  const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const dir = /\[assets\][^[]*directory\s*=\s*"([^"]+)"/.exec(toml)[1];
  assert.deepEqual(readdirSync(join(ROOT, dir)), ['__edgekeeper']);
});
