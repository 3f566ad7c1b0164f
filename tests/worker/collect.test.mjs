// Conversion events end to end through workerd: /collect → dedup in real redis (via upstash-local)
// → the Queue → the consumer → the Meta fake, and the dead-letter path back through /admin/dlq.

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, event, collect, TEST_SECRETS } from '../support/stack.mjs';

let stack;
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
before(async () => { stack = await startStack(); });
after(async () => { await stack?.stop(); });
beforeEach(() => { stack.meta.setFault(null); });

const deliveredIds = () => stack.meta.received().map((e) => `${e.event_name}:${e.event_id}`);
const countOf = (ev) => deliveredIds().filter((k) => k === `${ev.event_name}:${ev.event_id}`).length;

test('an accepted event reaches Meta hashed, once, with IP and user agent from the request', async () => {
  const ev = event('Purchase');
  const r = await collect(stack.url, ev);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.body.accepted, [ev.event_id]);
  assert.equal(r.body.dedup, 'store');
  await waitFor(() => countOf(ev) === 1, { what: 'delivery' });
  const got = stack.meta.received().find((e) => e.event_id === ev.event_id);
  assert.match(got.user_data.em, /^[0-9a-f]{64}$/);
  assert.match(got.user_data.ph, /^[0-9a-f]{64}$/);
  assert.equal(got.user_data.client_user_agent, 'Mozilla/5.0 (edgekeeper tests)');
  assert.ok(got.user_data.client_ip_address, 'client IP from the connection');
  assert.equal(got.custom_data.currency, 'EUR');
  assert.equal(got.pixel_id, '1234567890');
});

test('the same event twice is delivered once', async () => {
  const ev = event('AddToCart');
  const a = await collect(stack.url, ev);
  const b = await collect(stack.url, ev);
  assert.deepEqual(a.body.accepted, [ev.event_id]);
  assert.deepEqual(b.body.duplicates, [ev.event_id]);
  assert.deepEqual(b.body.accepted, []);
  await waitFor(() => countOf(ev) === 1, { what: 'delivery' });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(countOf(ev), 1);
});

test('20 concurrent requests with one id: exactly one delivery', async () => {
  const ev = event('InitiateCheckout');
  const results = await Promise.all(Array.from({ length: 20 }, () => collect(stack.url, ev)));
  assert.ok(results.every((r) => r.status === 202), results.map((r) => r.status).join(','));
  assert.equal(results.filter((r) => r.body.accepted.length === 1).length, 1, 'one request won the claim');
  await waitFor(() => countOf(ev) === 1, { what: 'delivery' });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(countOf(ev), 1);
});

test('the same id under two event names is two events', async () => {
  const view = event('ViewContent');
  const cart = { ...event('AddToCart'), event_id: view.event_id };
  assert.equal((await collect(stack.url, view)).body.accepted.length, 1);
  assert.equal((await collect(stack.url, cart)).body.accepted.length, 1);
  await waitFor(() => countOf(view) === 1 && countOf(cart) === 1, { what: 'both deliveries' });
});

test('sendBeacon (text/plain) is accepted; CORS allows listed origins only', async () => {
  const ev = event('PageView');
  const r = await collect(stack.url, JSON.stringify(ev), { raw: true, headers: { 'content-type': 'text/plain;charset=UTF-8', origin: 'https://shop.example' } });
  assert.equal(r.status, 202);
  assert.equal(r.headers.get('access-control-allow-origin'), 'https://shop.example');
  assert.equal(r.headers.get('access-control-allow-credentials'), 'true');

  const pre = await fetch(`${stack.url}/collect`, { method: 'OPTIONS', headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST' } });
  assert.equal(pre.status, 204);
  assert.match(pre.headers.get('access-control-allow-methods'), /POST/);

  const evil = await collect(stack.url, event('PageView'), { headers: { origin: 'https://evil.example' } });
  assert.equal(evil.status, 403);
  assert.equal(evil.body.error.code, 'origin_not_allowed');
  const evilPre = await fetch(`${stack.url}/collect`, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
  assert.equal(evilPre.status, 403);
  assert.equal(evilPre.headers.get('access-control-allow-origin'), null);
});

test('a batch mixes accepted, duplicate and rejected events; nothing valid is a 400', async () => {
  const dup = event('Lead');
  await collect(stack.url, dup);
  const fresh = event('Lead');
  const r = await collect(stack.url, { data: [fresh, dup, { event_name: 'Nope', event_id: 'bad-1' }, { event_name: 'Lead' }] });
  assert.equal(r.status, 202);
  assert.deepEqual(r.body.accepted, [fresh.event_id]);
  assert.deepEqual(r.body.duplicates, [dup.event_id]);
  assert.deepEqual(r.body.rejected.map((x) => x.error.code), ['unknown_event', 'missing_event_id']);
  const none = await collect(stack.url, { data: [{ event_name: 'Nope', event_id: 'bad-2' }] });
  assert.equal(none.status, 400);
  assert.deepEqual(none.body.accepted, []);
  assert.equal(none.body.rejected[0].event_id, 'bad-2');
});

test('consent denied: accepted nowhere, forwarded never', async () => {
  const ev = event('ViewContent');
  const r = await collect(stack.url, { ...ev, consent: 'denied' });
  assert.equal(r.status, 202);
  assert.deepEqual(r.body.accepted, []);
  assert.equal(r.body.skipped[0].reason, 'consent_denied');
  const viaCookie = event('ViewContent');
  const c = await collect(stack.url, viaCookie, { headers: { cookie: 'ek_consent=denied' } });
  assert.deepEqual(c.body.accepted, []);
  await new Promise((res) => setTimeout(res, 2500));
  assert.equal(countOf(ev) + countOf(viaCookie), 0);
});

test('an event\'s own denied consent in a granted batch: only the granted one reaches Meta', async () => {
  const denied = event('ViewContent', { consent: 'denied' });
  const granted = event('ViewContent');
  const r = await collect(stack.url, { data: [denied, granted], consent: 'granted' });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.body.accepted, [granted.event_id]);
  assert.deepEqual(r.body.skipped.map((s) => [s.event_id, s.reason]), [[denied.event_id, 'consent_denied']]);
  await waitFor(() => countOf(granted) === 1, { what: 'the granted event' });
  await new Promise((res) => setTimeout(res, 1500));
  assert.equal(countOf(denied), 0, 'the denied event never reached Meta');
  // Not claimed either: the same id sent later with consent is a first, not a duplicate.
  const later = await collect(stack.url, { ...denied, consent: 'granted' });
  assert.deepEqual(later.body.accepted, [denied.event_id]);
});

test('LDU codes Meta does not define are rejected per event, with the field named', async () => {
  const ldu = (country, state) => event('PageView', { data_processing_options: ['LDU'], data_processing_options_country: country, data_processing_options_state: state });
  const [ok, badCountry, badState] = [ldu(1, 1000), ldu(2, 0), ldu(0, 1)];
  const r = await collect(stack.url, { data: [ok, badCountry, badState] });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.body.accepted, [ok.event_id]);
  assert.deepEqual(r.body.rejected.map((x) => [x.event_id, x.error.code]),
    [[badCountry.event_id, 'invalid_data_processing_options'], [badState.event_id, 'invalid_data_processing_options']]);
  assert.match(r.body.rejected[0].error.message, /data_processing_options_country must be 0 or 1/);
  assert.match(r.body.rejected[1].error.message, /data_processing_options_state must be 0 or 1000/);
  const only = await collect(stack.url, ldu(1000, 0));
  assert.equal(only.status, 400);
  await waitFor(() => countOf(ok) === 1, { what: 'the valid LDU event' });
  const got = stack.meta.received().find((e) => e.event_id === ok.event_id);
  assert.deepEqual([got.data_processing_options_country, got.data_processing_options_state], [1, 1000]);
});

test('malformed, oversized and wrong-typed bodies are 4xx JSON, never 5xx', async () => {
  const cases = [
    ['{not json', {}],
    ['[]', {}],
    ['"string"', {}],
    [JSON.stringify({ data: 'x' }), {}],
    [JSON.stringify({ data: Array.from({ length: 51 }, () => event()) }), {}],
    ['x'.repeat(70_000), {}],
    ['['.repeat(5000), {}],
    [JSON.stringify(event()), { 'content-type': 'application/xml' }],
    [Buffer.from([0xff, 0xfe, 0x7b]), {}],
    [JSON.stringify({ ...event(), event_id: { $gt: '' } }), {}],
    [JSON.stringify({ ...event(), user_data: { em: 42 } }), {}],
  ];
  for (const [body, headers] of cases) {
    const r = await collect(stack.url, body, { raw: true, headers });
    assert.ok(r.status >= 400 && r.status < 500, `${r.status} for ${String(body).slice(0, 40)}`);
    const err = r.body.error ?? r.body.rejected?.[0]?.error;
    assert.ok(err?.code && err?.message, JSON.stringify(r.body).slice(0, 200));
  }
});

test('250 events become 3 Conversions API requests at batch size 100', async () => {
  const s = await startStack({ batchTimeout: 3 });
  try {
    const events = Array.from({ length: 250 }, () => event('PageView'));
    const chunks = [0, 50, 100, 150, 200].map((i) => events.slice(i, i + 50));
    const rs = await Promise.all(chunks.map((data) => collect(s.url, { data })));
    assert.ok(rs.every((r) => r.status === 202 && r.body.accepted.length === 50));
    await waitFor(() => s.meta.received().length === 250, { what: '250 deliveries', ms: 20000 });
    const posts = s.meta.requests().filter((r) => r.method === 'POST' && r.status === 200);
    assert.deepEqual(posts.map((p) => p.events).sort((a, b) => b - a), [100, 100, 50]);
  } finally {
    await s.stop();
  }
});

test('CAPI 500 then 200: delivered once, and the books show the retry', async () => {
  stack.meta.setFault({ status: 500, times: 1 });
  const ev = event('Subscribe');
  assert.equal((await collect(stack.url, ev)).status, 202);
  await waitFor(() => countOf(ev) === 1, { what: 'delivery after a retry', ms: 20000 });
  const failed = stack.meta.requests().filter((r) => r.status === 500);
  assert.ok(failed.length >= 1, 'the first attempt failed');
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(countOf(ev), 1);
  const stats = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
  assert.ok(stats.books.retried >= 1, JSON.stringify(stats.books));
});

test('CAPI 400 for one event: the rest delivered, that one dead-lettered with the reason, then replayed', async () => {
  const bad = event('Contact');
  const good = [event('Contact'), event('Contact')];
  stack.meta.setFault({ reject_event_ids: [bad.event_id] });
  const r = await collect(stack.url, { data: [good[0], bad, good[1]] });
  assert.equal(r.body.accepted.length, 3);
  await waitFor(() => good.every((g) => countOf(g) === 1), { what: 'the good events', ms: 20000 });
  const letter = await waitFor(async () => {
    const list = await (await fetch(`${stack.url}/admin/dlq?limit=50`, { headers: admin })).json();
    return list.entries.find((e) => e.event_id === bad.event_id);
  }, { what: 'the dead letter' });
  assert.match(letter.reason, /code 100/);
  assert.match(letter.reason, /rejected/);
  assert.equal(countOf(bad), 0);

  // Meta's side is fixed; replay it.
  stack.meta.setFault(null);
  const unauth = await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', body: JSON.stringify({ event_ids: [bad.event_id] }) });
  assert.equal(unauth.status, 401);
  const rep = await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ event_ids: [bad.event_id] }) });
  assert.equal(rep.status, 200);
  assert.deepEqual((await rep.json()).replayed, [bad.event_id]);
  await waitFor(() => countOf(bad) === 1, { what: 'the replayed event', ms: 20000 });
  const list = await (await fetch(`${stack.url}/admin/dlq?limit=50`, { headers: admin })).json();
  assert.ok(!list.entries.some((e) => e.event_id === bad.event_id), 'gone from the dead letters');
});

test('the books balance: accepted = delivered + in flight + dead-lettered', async () => {
  await waitFor(async () => {
    const { books } = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
    return books.in_flight === 0 && books.accepted === books.delivered + books.dead_lettered;
  }, { what: 'settled books', ms: 20000 });
  const { books } = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
  assert.ok(books.accepted > 0 && books.duplicates > 0 && books.rejected > 0, JSON.stringify(books));
});

test('no raw email or phone in redis, outbound payloads or logs', async () => {
  const raw = ['jane.roe@example.com', 'Jane.Roe@Example.COM', '2079460958', '7946 0958'];
  const keys = await (await fetch(`${stack.store.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` }, body: JSON.stringify(['KEYS', '*']) })).json();
  const dump = [];
  for (const k of keys.result) {
    const type = (await (await fetch(`${stack.store.url}/type/${encodeURIComponent(k)}`, { headers: { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` } })).json()).result;
    const cmd = { string: ['GET', k], hash: ['HGETALL', k], list: ['LRANGE', k, '0', '-1'] }[type];
    if (cmd) dump.push(k, JSON.stringify((await (await fetch(`${stack.store.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` }, body: JSON.stringify(cmd) })).json()).result));
  }
  const storeLog = JSON.stringify((await stack.store.log()).entries);
  const outbound = JSON.stringify(stack.meta.received());
  const logs = stack.worker.logs.join('\n');
  for (const [where, text] of [['redis', dump.join('\n')], ['store requests', storeLog], ['CAPI payloads', outbound], ['worker logs', logs]]) {
    for (const r of raw) assert.ok(!text.includes(r), `${r} found in ${where}`);
    for (const [name, secret] of Object.entries(TEST_SECRETS)) {
      if (where !== 'store requests') assert.ok(!text.includes(secret), `${name} found in ${where}`);
    }
  }
  assert.ok(dump.length > 0 && outbound.length > 100, 'there was data to scan');
});

test('the default site-wide rate limit lets a busy shop through (600,000 a window, not 6,000)', async () => {
  // A long window so the counter seeded below is the one the next request meets.
  const own = await startStack({ vars: { RATE_LIMIT_WINDOW_SECS: '3600' } });
  try {
    const call = async (command) => (await (await fetch(own.store.url, { method: 'POST', headers: { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` }, body: JSON.stringify(command) })).json()).result;
    assert.equal((await collect(own.url, event('Lead'))).status, 202);
    const [siteKey] = await call(['KEYS', '*:rl:site:*']);
    assert.ok(siteKey, 'the site counter');
    // 7,000 requests this window from many shoppers: still accepted.
    await call(['SET', siteKey, '7000', 'KEEPTTL']);
    const busy = await collect(own.url, event('Lead'));
    assert.equal(busy.status, 202, JSON.stringify(busy.body));
    // Past the default: the site limit answers.
    await call(['SET', siteKey, '600000', 'KEEPTTL']);
    const over = await collect(own.url, event('Lead'));
    assert.equal(over.status, 429, JSON.stringify(over.body));
    assert.equal(over.body.error.code, 'rate_limited');
    assert.match(over.body.error.message, /site/);
  } finally {
    await own.stop();
  }
});
