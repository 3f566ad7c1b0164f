// Match quality through workerd: first-party browser ids on consent, the match-key report, dry runs,
// per-request test codes, automatic LDU by the visitor's state, and several pixels in one deployment.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, event, collect, TEST_SECRETS } from '../support/stack.mjs';

const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
let stack;
before(async () => {
  stack = await startStack({ vars: { COLLECT_DRY_RUN: 'on', ALLOW_TEST_EVENT_CODE: 'on', LDU_MODE: 'geo' } });
});
after(async () => { await stack?.stop(); });

const at = (id) => waitFor(() => stack.meta.received().find((e) => e.event_id === id), { what: `delivery of ${id}` });

/** POST /collect through Miniflare's dispatchFetch, so `request.cf` can be set. */
async function send(body, { cf, headers = {} } = {}) {
  const r = await stack.worker.mf.dispatchFetch(`${stack.url}/collect`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 (matching tests)', ...headers },
    body: JSON.stringify(body),
    cf,
  });
  return { status: r.status, headers: r.headers, body: await r.json() };
}

test('a first visit with a consent grant gets _fbp and _fbc, and the event carries the same values', async () => {
  const ev = event('ViewContent', { event_source_url: 'https://shop.example/p/1?utm_source=fb&fbclid=AbC123xYz' });
  const r = await collect(stack.url, { data: [ev], consent: 'granted' });
  assert.equal(r.status, 202);
  const cookies = r.headers.getSetCookie();
  const fbp = cookies.find((c) => c.startsWith('_fbp='));
  const fbc = cookies.find((c) => c.startsWith('_fbc='));
  assert.match(fbp, /^_fbp=fb\.1\.\d{13}\.\d{10}; Path=\/; Max-Age=7776000; SameSite=Lax$/);
  assert.match(fbc, /^_fbc=fb\.1\.\d{13}\.AbC123xYz; Path=\/; Max-Age=7776000; SameSite=Lax$/);
  assert.ok(!/HttpOnly/i.test(fbp), 'the Pixel must be able to read it');
  const got = await at(ev.event_id);
  assert.equal(got.user_data.fbp, fbp.split(';')[0].slice('_fbp='.length));
  assert.equal(got.user_data.fbc, fbc.split(';')[0].slice('_fbc='.length));
  assert.match(got.user_data.fbc, /\.AbC123xYz$/);
});

test('Google Consent Mode grants work too; no consent statement sets no cookie', async () => {
  const granted = await collect(stack.url, { data: [event('PageView')], consent: { ad_storage: 'granted', ad_user_data: 'granted' } });
  assert.ok(granted.headers.getSetCookie().some((c) => c.startsWith('_fbp=')));
  const silent = await collect(stack.url, event('PageView'));
  assert.deepEqual(silent.headers.getSetCookie(), []);
});

test('a denied visit gets no cookie and no delivery', async () => {
  const ev = event('ViewContent', { event_source_url: 'https://shop.example/?fbclid=DeniedClick' });
  const r = await collect(stack.url, { data: [ev], consent: { ad_storage: 'denied' } });
  assert.deepEqual(r.headers.getSetCookie(), []);
  assert.deepEqual(r.body.accepted, []);
  await new Promise((res) => setTimeout(res, 2000));
  assert.ok(!stack.meta.received().some((e) => e.event_id === ev.event_id));
});

test('an existing _fbp is reused and a newer _fbc is never overwritten', async () => {
  const newer = `fb.1.${Date.now() - 1000}.NewerClick`;
  const ev = event('AddToCart', { event_time: Math.floor(Date.now() / 1000) - 3600, event_source_url: 'https://shop.example/?fbclid=OlderClick' });
  const r = await collect(stack.url, { data: [ev], consent: 'granted' }, { headers: { cookie: `_fbp=fb.1.1596403881668.1116446470; _fbc=${newer}` } });
  assert.deepEqual(r.headers.getSetCookie(), [], 'nothing to set');
  const got = await at(ev.event_id);
  assert.equal(got.user_data.fbp, 'fb.1.1596403881668.1116446470');
  assert.equal(got.user_data.fbc, newer);
});

test('Parameter Builder ids with an appendix pass through untouched and are never re-minted', async () => {
  const fbp = 'fb.1.1700000000000.1234567890.BQ';
  const fbc = 'fb.1.1700000000000.IwAR2xyz-_abc.AQ';
  const ev = event('ViewContent', { event_source_url: 'https://shop.example/p/1?fbclid=IwAR2xyz-_abc' });
  const r = await collect(stack.url, { data: [ev], consent: 'granted' }, { headers: { cookie: `_fbp=${fbp}; _fbc=${fbc}` } });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.deepEqual(r.headers.getSetCookie(), [], 'the same click and browser: nothing to set');
  const got = await at(ev.event_id);
  assert.equal(got.user_data.fbp, fbp);
  assert.equal(got.user_data.fbc, fbc);
  // Sent in the body, they reach Meta exactly as given too.
  const body = event('Lead', { user_data: { em: 'pb@example.com', fbp, fbc } });
  assert.equal((await collect(stack.url, body)).status, 202);
  const sent = await at(body.event_id);
  assert.deepEqual([sent.user_data.fbp, sent.user_data.fbc], [fbp, fbc]);
});

test('the match-key report counts exactly the keys of the events sent', async () => {
  const s = await startStack();
  try {
    const site = { headers: {} };
    const evs = [
      event('Lead', { user_data: { em: 'a@example.com', ph: '+1 415 555 0100', external_id: 'u-1' } }),
      event('Lead', { user_data: { em: 'b@example.com' } }),
      event('Lead', { user_data: {} }),
      event('Search', { user_data: { em: 'c@example.com', country: 'FR' } }),
    ];
    for (const e of evs) assert.equal((await collect(s.url, e, site)).status, 202);
    await collect(s.url, evs[0]); // a duplicate is not counted again
    // Counted by the consumer as Meta takes the events, so the report follows the deliveries.
    const q = await waitFor(async () => {
      const r = await fetch(`${s.url}/admin/match-quality`, { headers: admin });
      assert.equal(r.status, 200);
      const body = await r.json();
      return body.all_events?.events === 4 && s.meta.received().length >= 4 && body;
    }, { what: 'match-key counts of the four delivered events' });
    const lead = q.by_event.Lead;
    assert.equal(lead.events, 3);
    assert.equal(lead.coverage.em.events, 2);
    assert.equal(lead.coverage.ph.events, 1);
    assert.equal(lead.coverage.external_id.events, 1);
    assert.equal(lead.coverage.client_user_agent.events, 3);
    assert.equal(lead.coverage.client_ip_address.events, 3);
    assert.equal(lead.coverage.country.events, 0);
    assert.equal(q.by_event.Search.coverage.country.events, 1);
    assert.equal(q.all_events.events, 4);
    assert.equal(typeof lead.estimated_score, 'number');
    assert.ok(q.weights.em > q.weights.ge);
    assert.equal((await fetch(`${s.url}/admin/match-quality`)).status, 401);
    const raw = JSON.stringify(q);
    assert.ok(!raw.includes('a@example.com') && !raw.includes('u-1'), 'counts only, never values');
  } finally {
    await s.stop();
  }
});

test('dry run answers with the hashed user_data and the keys present, and forwards nothing', async () => {
  const ev = event('Purchase', { user_data: { em: 'Dry.Run@Example.com', ct: 'São Paulo' } });
  const r = await collect(stack.url, { data: [ev], dry_run: true });
  assert.equal(r.status, 200);
  assert.equal(r.body.dry_run, true);
  const [view] = r.body.events;
  assert.match(view.user_data.em, /^[0-9a-f]{64}$/);
  assert.ok(view.match_keys.includes('em') && view.match_keys.includes('ct'));
  await new Promise((res) => setTimeout(res, 2000));
  assert.ok(!stack.meta.received().some((e) => e.event_id === ev.event_id));
  // Not claimed either: the real send is accepted afterwards.
  assert.deepEqual((await collect(stack.url, ev)).body.accepted, [ev.event_id]);
  const off = await startStack();
  try {
    const denied = await collect(off.url, { data: [event()], dry_run: true, test_event_code: 'TEST1' });
    assert.equal(denied.status, 403);
  } finally {
    await off.stop();
  }
});

test('per-request test codes: events with different codes never share a CAPI request', async () => {
  const a = [event('PageView'), event('PageView')];
  const b = [event('PageView'), event('PageView')];
  const none = [event('PageView')];
  await Promise.all([
    collect(stack.url, { data: a, test_event_code: 'TESTA' }),
    collect(stack.url, { data: b, test_event_code: 'TESTB' }),
    collect(stack.url, { data: none }),
  ]);
  const ids = [...a, ...b, ...none].map((e) => e.event_id);
  await waitFor(() => ids.every((id) => stack.meta.received().some((e) => e.event_id === id)), { what: 'all five' });
  const got = stack.meta.received().filter((e) => ids.includes(e.event_id));
  for (const e of a) assert.equal(got.find((g) => g.event_id === e.event_id).test_event_code, 'TESTA');
  for (const e of b) assert.equal(got.find((g) => g.event_id === e.event_id).test_event_code, 'TESTB');
  assert.equal(got.find((g) => g.event_id === none[0].event_id).test_event_code, null);
  const byRequest = new Map();
  for (const g of got) byRequest.set(g.fbtrace_id, new Set([...(byRequest.get(g.fbtrace_id) ?? []), g.test_event_code]));
  for (const codes of byRequest.values()) assert.equal(codes.size, 1, 'one test code per request');
});

test('LDU by the visitor\'s state; an explicit value wins', async () => {
  const ca = event('PageView');
  const tx = event('PageView');
  const de = event('PageView');
  const explicit = event('PageView', { data_processing_options: [] });
  await send(ca, { cf: { country: 'US', regionCode: 'CA' } });
  await send(tx, { cf: { country: 'US', regionCode: 'TX' } });
  await send(de, { cf: { country: 'DE', regionCode: 'BE' } });
  await send(explicit, { cf: { country: 'US', regionCode: 'CA' } });
  const got = async (e) => at(e.event_id);
  const c = await got(ca);
  assert.deepEqual([c.data_processing_options, c.data_processing_options_country, c.data_processing_options_state], [['LDU'], 1, 1000]);
  const t = await got(tx);
  assert.deepEqual([t.data_processing_options, t.data_processing_options_country, t.data_processing_options_state], [['LDU'], 0, 0]);
  assert.equal((await got(de)).data_processing_options, undefined);
  assert.deepEqual((await got(explicit)).data_processing_options, []);
});

test('two pixels: each site\'s events reach its own pixel with its own token; an unknown origin is refused', async () => {
  const s = await startStack({
    meta: { tokensByPixel: { 111: 'token-for-a', 222: 'token-for-b' } },
    vars: {
      PIXELS: JSON.stringify({
        'a.example': { pixel_id: '111', token_secret: 'META_TOKEN_A', allowed_origins: ['https://a.example'] },
        'b.example': { pixel_id: '222', token_secret: 'META_TOKEN_B', allowed_origins: ['https://b.example'] },
      }),
      META_TOKEN_A: 'token-for-a',
      META_TOKEN_B: 'token-for-b',
      ALLOW_TEST_EVENT_CODE: 'on',
    },
  });
  try {
    const fromA = [event('Lead'), event('Lead')];
    const fromB = [event('Lead')];
    const ra = await collect(s.url, { data: fromA }, { headers: { origin: 'https://a.example' } });
    const rb = await collect(s.url, { data: fromB, test_event_code: 'TESTB' }, { headers: { origin: 'https://b.example' } });
    assert.equal(ra.status, 202);
    assert.equal(ra.headers.get('access-control-allow-origin'), 'https://a.example');
    assert.equal(rb.status, 202);
    const c = await collect(s.url, event('Lead'), { headers: { origin: 'https://c.example' } });
    assert.equal(c.status, 403);
    assert.match(c.body.error.message, /maps to no site/);
    await waitFor(() => s.meta.received().length === 3, { what: 'three deliveries' });
    const got = s.meta.received();
    for (const e of fromA) assert.equal(got.find((g) => g.event_id === e.event_id).pixel_id, '111');
    assert.equal(got.find((g) => g.event_id === fromB[0].event_id).pixel_id, '222');
    const perRequest = new Map();
    for (const g of got) perRequest.set(g.fbtrace_id, new Set([...(perRequest.get(g.fbtrace_id) ?? []), `${g.pixel_id}/${g.test_event_code}`]));
    for (const set of perRequest.values()) assert.equal(set.size, 1, 'no request mixes pixels or test codes');
    // Books are per site.
    const books = async (site) => (await (await fetch(`${s.url}/admin/stats?site=${site}`, { headers: admin })).json()).books;
    assert.equal((await books('a.example')).accepted, 2);
    assert.equal((await books('b.example')).accepted, 1);
  } finally {
    await s.stop();
  }
});
