// Tests of the Meta CAPI fake itself: run with `node --test tests/fakes/meta-graph.test.mjs`.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startMetaFake } from './meta-graph.mjs';

const TOKEN = 'test-token-abc';
const PIXEL = '1234567890';
const EVENTS_PATH = `/v21.0/${PIXEL}/events`;
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const now = () => Math.floor(Date.now() / 1000);

function event(overrides = {}) {
  const { user_data: user = {}, ...rest } = overrides;
  return {
    event_name: 'PageView',
    event_time: now(),
    event_id: 'evt-1',
    action_source: 'website',
    event_source_url: 'https://shop.example.com/',
    ...rest,
    user_data: {
      em: [sha256('john.doe@example.com')],
      client_user_agent: 'Mozilla/5.0',
      client_ip_address: '203.0.113.7',
      fbp: 'fb.1.1596403881668.1116446470',
      ...user,
    },
  };
}

let fake;

before(async () => {
  fake = await startMetaFake({ accessToken: TOKEN });
});
after(() => fake.close());
beforeEach(() => {
  fake.reset();
  fake.setFault(null);
});

async function call(path, { method = 'POST', body, token = TOKEN, headers = {}, signal } = {}) {
  const url = new URL(path, fake.url);
  if (token !== null) url.searchParams.set('access_token', token);
  const res = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body),
    signal,
  });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

const send = (data, options = {}) => call(EVENTS_PATH, { ...options, body: { data, ...options.extra } });

/** Asserts a 400 code 100 naming `data[index]`, and that nothing was recorded. */
function assertEventRejected(res, index, fieldPattern) {
  assert.equal(res.status, 400);
  assert.equal(res.json.error.code, 100);
  assert.equal(res.json.error.message, 'Invalid parameter');
  assert.equal(res.json.error.is_transient, false);
  assert.match(res.json.error.error_user_msg, new RegExp(`^data\\[${index}\\]`));
  if (fieldPattern) assert.match(res.json.error.error_user_msg, fieldPattern);
  assert.deepEqual(fake.received(), []);
}

test('a valid batch is accepted and recorded with pixel, api version and test_event_code', async () => {
  const res = await send([event(), event({ event_id: 'evt-2', event_name: 'Purchase',
    custom_data: { value: 12.5, currency: 'EUR' } })], { extra: { test_event_code: 'TEST123' } });
  assert.equal(res.status, 200);
  assert.equal(res.json.events_received, 2);
  assert.deepEqual(res.json.messages, []);
  assert.ok(res.json.fbtrace_id.length > 8);

  const received = fake.received();
  assert.equal(received.length, 2);
  assert.deepEqual(received.map((e) => [e.event_id, e.pixel_id, e.api_version, e.test_event_code]),
    [['evt-1', PIXEL, 'v21.0', 'TEST123'], ['evt-2', PIXEL, 'v21.0', 'TEST123']]);

  const overHttp = await call('/__control/received', { method: 'GET', token: null });
  assert.deepEqual(overHttp.json, { events: received });
  const requests = (await call('/__control/requests', { method: 'GET', token: null })).json;
  assert.deepEqual(requests.map(({ method, path, status, events }) => ({ method, path, status, events })),
    [{ method: 'POST', path: EVENTS_PATH, status: 200, events: 2 }]);
  assert.ok(!Number.isNaN(Date.parse(requests[0].at)));
  assert.ok(!JSON.stringify([received, requests]).includes(TOKEN), 'the token is never recorded');
});

test('form-encoded bodies with data as a JSON string and the token in the body are accepted', async () => {
  const form = new URLSearchParams({ access_token: TOKEN, data: JSON.stringify([event()]), test_event_code: 'T9' });
  const res = await call(EVENTS_PATH, { token: null, body: form.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  assert.equal(res.status, 200);
  assert.equal(fake.received()[0].test_event_code, 'T9');
  assert.ok(!JSON.stringify(fake.received()).includes(TOKEN));
});

test('a wrong or missing token answers 400 with code 190', async () => {
  for (const token of ['wrong', null]) {
    const res = await send([event()], { token });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.code, 190);
    assert.equal(res.json.error.type, 'OAuthException');
    assert.match(res.headers.get('www-authenticate'), /invalid_token/);
  }
  assert.deepEqual(fake.received(), []);
});

test('data must be a non-empty array of at most 1000 events', async () => {
  const tooMany = await send(Array.from({ length: 1001 }, (_, i) => event({ event_id: `e${i}` })));
  assert.equal(tooMany.status, 400);
  assert.equal(tooMany.json.error.code, 100);
  assert.match(tooMany.json.error.error_user_msg, /1000/);
  assert.equal((await send([])).json.error.code, 100);
  assert.equal((await call(EVENTS_PATH, { body: {} })).json.error.code, 100);
  assert.equal((await send(Array.from({ length: 1000 }, (_, i) => event({ event_id: `e${i}` })))).status, 200);
});

test('a stale event fails the whole batch, naming its index', async () => {
  const stale = event({ event_id: 'old', event_time: now() - 8 * 24 * 3600 });
  const res = await send([event(), event({ event_id: 'e2' }), stale]);
  assertEventRejected(res, 2, /event_time/);
  assert.equal(res.json.error.error_subcode, 2804003);
  assert.equal(res.json.error.error_user_title, 'Event Timestamp Too Old');
});

test('event_time must be integer seconds, at most 60 s ahead', async () => {
  assertEventRejected(await send([event({ event_time: now() + 300 })]), 0, /future/);
  assertEventRejected(await send([event({ event_time: Date.now() })]), 0, /event_time/);
  assertEventRejected(await send([event({ event_time: String(now()) })]), 0, /integer/);
  assert.equal((await send([event({ event_time: now() + 30 })])).status, 200);
});

test('required event fields: event_name, action_source, website url and user agent, a match key', async () => {
  assertEventRejected(await send([event({ event_name: '' })]), 0, /event_name/);
  assertEventRejected(await send([event({ action_source: 'web' })]), 0, /action_source/);
  assertEventRejected(await send([event({ event_source_url: undefined })]), 0, /event_source_url/);
  const { client_user_agent: _ua, ...noAgent } = event().user_data;
  assertEventRejected(await send([{ ...event(), user_data: noAgent }]), 0, /client_user_agent/);
  assertEventRejected(await send([{ ...event(), action_source: 'system_generated', user_data: { foo: 1 } }]), 0,
    /user_data/);
  assert.equal((await send([{ ...event(), action_source: 'system_generated', user_data: { external_id: sha256('u1') } }]))
    .status, 200);
});

test('hashed keys must be lowercase SHA-256 hex; an unhashed email is rejected', async () => {
  assertEventRejected(await send([event({ user_data: { em: '5d41402abc4b2a76b9719d911017c5' } })]), 0, /user_data\.em/);
  assertEventRejected(await send([event(), event({ user_data: { em: 'john.doe@example.com' } })]), 1, /user_data\.em/);
  assertEventRejected(await send([event({ user_data: { ph: sha256('16505551212').toUpperCase() } })]), 0, /ph/);
  assertEventRejected(await send([event({ user_data: { country: 'us' } })]), 0, /country/);
  assert.equal((await send([event({ user_data: { ph: [sha256('1'), sha256('2')], country: sha256('us') } })])).status, 200);
  // MD5 digests pass, as Meta's Parameter Builder forwards them (30 hex digits did not, above).
  assert.equal((await send([event({ user_data: { em: '5d41402abc4b2a76b9719d911017c592' } })])).status, 200);
});

test('ip, user agent, fbp and fbc must not be hashed; cookies keep their format; the ip has no port', async () => {
  assertEventRejected(await send([event({ user_data: { fbp: sha256('fb.1.1.1') } })]), 0, /fbp.*must not be hashed/);
  assertEventRejected(await send([event({ user_data: { client_ip_address: sha256('203.0.113.7') } })]), 0, /client_ip/);
  assertEventRejected(await send([event({ user_data: { client_user_agent: sha256('ua') } })]), 0, /client_user_agent/);
  assertEventRejected(await send([event({ user_data: { fbc: 'AbCdEf' } })]), 0, /fbc/);
  assertEventRejected(await send([event({ user_data: { client_ip_address: '203.0.113.7:443' } })]), 0, /port/);
  assert.equal((await send([event({ user_data: { fbc: 'fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQ',
    client_ip_address: '2001:db8::1' } })])).status, 200);
});

test('value needs a currency, and Purchase needs both', async () => {
  assertEventRejected(await send([event({ event_name: 'Purchase', custom_data: { value: 10 } })]), 0, /custom_data/);
  assertEventRejected(await send([event({ event_name: 'Purchase' })]), 0, /Purchase/);
  assertEventRejected(await send([event({ custom_data: { value: 3, currency: 'EURO' } })]), 0, /currency/);
  assertEventRejected(await send([event({ custom_data: { value: '3', currency: 'EUR' } })]), 0, /value/);
});

test('malformed JSON answers 400 code 100; bodies over 5 MB answer 413', async () => {
  const malformed = await call(EVENTS_PATH, { body: '{"data": [' });
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.error.code, 100);
  const huge = await call(EVENTS_PATH, { body: JSON.stringify({ data: [event()], pad: 'x'.repeat(5 * 1024 * 1024) }) });
  assert.equal(huge.status, 413);
  assert.equal(huge.json.error.code, 100);
  assert.deepEqual(fake.received(), []);
});

test('unknown paths answer 404 code 803; pixel info answers with the id', async () => {
  for (const path of ['/v21.0/123/adsets', '/latest/123/events', '/']) {
    const res = await call(path, { body: { data: [] } });
    assert.equal(res.status, 404, path);
    assert.equal(res.json.error.code, 803);
  }
  assert.deepEqual((await call(`/v21.0/${PIXEL}`, { method: 'GET' })).json, { id: PIXEL });
  assert.equal((await call(`/v21.0/${PIXEL}`, { method: 'GET', token: 'nope' })).json.error.code, 190);
  const notAPixel = await call('/v21.0/not-a-pixel', { method: 'GET' });
  assert.deepEqual([notAPixel.status, notAPixel.json.error.code, notAPixel.json.error.error_subcode], [400, 100, 33]);
});

test('pixelIds restricts the accepted pixels', async () => {
  const restricted = await startMetaFake({ accessToken: TOKEN, pixelIds: ['111'] });
  try {
    const post = (pixel) => fetch(`${restricted.url}/v21.0/${pixel}/events?access_token=${TOKEN}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [event()] }),
    }).then(async (r) => ({ status: r.status, json: await r.json() }));
    assert.equal((await post('111')).status, 200);
    const other = await post('222');
    assert.deepEqual([other.status, other.json.error.code, other.json.error.error_subcode], [400, 100, 33]);
  } finally {
    await restricted.close();
  }
});

test('status faults answer transient errors for `times` requests, then clear', async () => {
  fake.setFault({ status: 503, times: 2 });
  for (let i = 0; i < 2; i++) {
    const res = await send([event()]);
    assert.equal(res.status, 503);
    assert.equal(res.json.error.is_transient, true);
  }
  assert.equal((await send([event()])).status, 200);

  fake.setFault({ status: 429 });
  const limited = await send([event()]);
  assert.deepEqual([limited.status, limited.json.error.code, limited.json.error.is_transient], [429, 17, true]);
  assert.match(limited.json.error.message, /User request limit reached/);
  assert.equal((await send([event()])).status, 429, 'no `times`: until cleared');

  assert.deepEqual(fake.requests().map((r) => r.status), [503, 503, 200, 429, 429], 'faulted requests are logged');
  assert.equal(fake.received().length, 1);
});

test('throttle faults arrive as 400/403 with the rate-limit code', async () => {
  fake.setFault({ throttle_code: 613, status: 403, times: 1 });
  const res = await send([event()]);
  assert.deepEqual([res.status, res.json.error.code, res.json.error.is_transient], [403, 613, true]);
  fake.setFault({ throttle_code: 4 });
  assert.deepEqual((await send([event()])).json.error.code, 4);
  assert.equal((await send([event()])).status, 400);
  assert.throws(() => fake.setFault({ throttle_code: 99 }), TypeError);
});

test('reject_event_ids fails the whole request, naming the event index', async () => {
  fake.setFault({ reject_event_ids: ['bad-1'] });
  const res = await send([event({ event_id: 'ok-1' }), event({ event_id: 'ok-2' }), event({ event_id: 'bad-1' })]);
  assertEventRejected(res, 2, /event_id/);
  assert.equal((await send([event({ event_id: 'ok-3' })])).status, 200);
});

test('reject_event_ids with fail_rate: both apply', async () => {
  fake.setFault({ reject_event_ids: ['bad-2'], fail_rate: 0.5, seed: 3 });
  const statuses = [];
  for (let i = 0; i < 30; i++) statuses.push((await send([event({ event_id: `fine-${i}` })])).status);
  assert.deepEqual(new Set(statuses), new Set([200, 500]), 'random failures go on');
  fake.reset();
  for (let i = 0; i < 10; i++) {
    const res = await send([event({ event_id: 'bad-2' })]);
    assert.ok([400, 500].includes(res.status));
    if (res.status === 400) assertEventRejected(res, 0, /event_id/);
  }
  fake.setFault(null);
});

test('fail_rate answers 500 for a deterministic fraction of requests', async () => {
  const pattern = async () => {
    fake.setFault({ fail_rate: 0.3, seed: 42 });
    const statuses = [];
    for (let i = 0; i < 40; i++) statuses.push((await send([event()])).status);
    return statuses;
  };
  const first = await pattern();
  assert.deepEqual(await pattern(), first, 'same seed, same outcome');
  const failures = first.filter((s) => s === 500).length;
  assert.ok(failures > 3 && failures < 25, `${failures} failures out of 40`);
  assert.deepEqual(new Set(first), new Set([200, 500]));
});

test('faults can be set and cleared over HTTP; invalid faults are refused', async () => {
  const set = await call('/__control/fault', { token: null, body: { status: 500, times: 1 } });
  assert.deepEqual(set.json, { fault: { status: 500, times: 1 } });
  const res = await send([event()]);
  assert.deepEqual([res.status, res.json.error.code, res.json.error.is_transient], [500, 1, true]);
  assert.equal((await send([event()])).status, 200, 'times ran out');

  await call('/__control/fault', { token: null, body: { status: 500 } });
  assert.deepEqual((await call('/__control/fault', { method: 'DELETE', token: null })).json, { fault: null });
  assert.equal((await send([event()])).status, 200);

  assert.equal((await call('/__control/fault', { token: null, body: { status: 200 } })).status, 400);
  assert.equal((await call('/__control/fault', { token: null, body: 'nope' })).status, 400);
});

test('DELETE /__control/received forgets events and requests', async () => {
  await send([event()]);
  const res = await call('/__control/received', { method: 'DELETE', token: null });
  assert.deepEqual(res.json, { events: [] });
  assert.deepEqual(fake.received(), []);
  assert.deepEqual(fake.requests(), []);
});

test('timeout faults never answer, and close() still returns promptly', { timeout: 5000 }, async () => {
  const held = await startMetaFake({ accessToken: TOKEN });
  held.setFault({ timeout: true, times: 1 });
  const post = (signal) => fetch(`${held.url}${EVENTS_PATH}?access_token=${TOKEN}`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ data: [event()] }), signal,
  });
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 300);
  await assert.rejects(post(controller.signal), { name: 'AbortError' });
  clearTimeout(timer);
  assert.equal((await post()).status, 200, 'times ran out');

  held.setFault({ timeout: true });
  const pending = post().catch((error) => error);
  while (held.requests().length < 3) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(held.requests().map((r) => r.status), [null, 200, null]);
  const started = Date.now();
  await held.close();
  assert.ok(Date.now() - started < 1000, 'close() destroys held sockets');
  assert.ok((await pending) instanceof Error, 'the held client sees its connection close');
});

test('CLI prints the banner line and answers until SIGTERM', { timeout: 5000 }, async () => {
  const script = fileURLToPath(new URL('./meta-graph.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, '--port', '0', '--token', TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const [line] = await createInterface({ input: child.stdout })[Symbol.asyncIterator]().next()
      .then(({ value }) => [value]);
    const match = /^meta-fake listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line);
    assert.ok(match, `banner: ${line}`);
    const res = await fetch(`${match[1]}/v21.0/${PIXEL}?access_token=${TOKEN}`);
    assert.deepEqual(await res.json(), { id: PIXEL });
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});
