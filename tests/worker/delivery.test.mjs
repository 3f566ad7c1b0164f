// Accepted means never lost, delivered once, books balanced: the failures of issue 17 as an operator
// meets them, each through workerd against the real store (upstash-local over redis) and the Meta fake.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startWorker, waitFor, event, collect, TEST_SECRETS } from '../support/stack.mjs';

const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
const getJson = async (url, path) => (await fetch(`${url}${path}`, { headers: admin })).json();
const books = async (url) => (await getJson(url, '/admin/stats')).books;
const health = async (url) => (await fetch(`${url}/health`)).json();
const delivered = (stack, id) => stack.meta.received().filter((e) => e.event_id === id).length;
const settled = (b, n) => b.accepted === n && b.delivered === n && b.in_flight === 0 && b;

/** Makes every pending claim look older than PENDING_SECS (a claim's TTL tells its age). */
async function ageClaims(stack) {
  const call = async (command) => (await (await fetch(stack.store.url, { method: 'POST', headers: { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` }, body: JSON.stringify(command) })).json()).result;
  for (const key of await call(['KEYS', '*:evt:*'])) await call(['EXPIRE', key, String(172800 - 31)]);
}

/** Queue message bodies exactly as the worker's intake writes them (captured by a spy consumer). */
async function queuedBodies(vars, events) {
  const spy = await startWorker({ vars, spyQueue: true });
  try {
    for (const ev of events) assert.equal((await collect(spy.url, ev)).status, 202);
    return await waitFor(() => {
      const bodies = spy.logs.filter((l) => l.includes('SPY ')).map((l) => l.slice(l.indexOf('SPY ') + 4));
      return bodies.length === events.length && bodies;
    }, { what: 'the spied queue messages' });
  } finally {
    await spy.stop();
  }
}

test('dead letters past DLQ_MAX are not trimmed: they wait on the queue, /health says so, none is lost', async () => {
  const stack = await startStack({ vars: { DLQ_MAX: '2', QUEUE_HOLD_SECS: '1' } });
  try {
    const evs = [1, 2, 3, 4].map(() => event('Lead'));
    stack.meta.setFault({ reject_event_ids: evs.map((e) => e.event_id) });
    for (const ev of evs) assert.equal((await collect(stack.url, ev)).status, 202);
    const full = await waitFor(async () => { const h = await health(stack.url); return h.checks.dlq.status === 'degraded' && h; }, { what: 'the dlq alarm' });
    assert.match(full.checks.dlq.reason, /DLQ_MAX/);
    assert.equal((await getJson(stack.url, '/admin/dlq?limit=100')).entries.length, 2, 'the store holds DLQ_MAX, no more');
    // Room again: replay what is stored (Meta now takes it); the two waiting come in as dead letters.
    stack.meta.setFault(null);
    const replay = async () => (await (await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ all: true }) })).json()).replayed;
    const replayed = await replay();
    assert.equal(replayed.length, 2);
    await waitFor(async () => (await getJson(stack.url, '/admin/dlq?limit=100')).entries.length === 2 && (await replay()).length === 2, { what: 'the held dead letters stored, then replayed', ms: 30000 });
    await waitFor(() => evs.every((e) => delivered(stack, e.event_id) === 1), { what: 'all four delivered', ms: 20000 });
    const b = await waitFor(async () => settled(await books(stack.url), 4), { what: 'balanced books' });
    assert.equal(b.dead_lettered, 0);
    assert.ok(evs.every((e) => delivered(stack, e.event_id) === 1), 'each once');
    await waitFor(async () => (await health(stack.url)).checks.dlq.status === 'ok', { what: 'the alarm cleared' });
  } finally {
    await stack.stop();
  }
});

test('the dead-letter consumer holds through an invalid configuration instead of burning its retries', async () => {
  const stack = await startStack({ dlqMaxRetries: 1 });
  try {
    const [body] = await queuedBodies(stack.vars, [event('Purchase')]);
    // A deployment with a typo in an unrelated setting, a message arriving on its dead-letter queue.
    const broken = await startWorker({ vars: { ...stack.vars, QUEUE_HOLD_SECS: '1', CACHE_RULES: '[{"match": ' }, dlqMaxRetries: 1 });
    try {
      await (await broken.mf.getQueueProducer('EVENTS_DLQ')).send(body, { contentType: 'text' });
      // Four passes with one retry allowed: the queue alone would have deleted it after two.
      await waitFor(() => dlqHolds(broken) >= 4, { what: 'repeated holds', ms: 20000 });
      assert.ok(broken.logs.some((l) => l.includes('configuration invalid') && l.includes('CACHE_RULES')), 'the log names the variable');
    } finally {
      await broken.stop();
    }
  } finally {
    await stack.stop();
  }
});

test('the dead-letter consumer holds while the store refuses its token, and stores the letter once it is back', async () => {
  const stack = await startStack({ dlqMaxRetries: 1, vars: { QUEUE_HOLD_SECS: '1' } });
  try {
    const [body] = await queuedBodies(stack.vars, [event('Purchase')]);
    const { event_id: id } = JSON.parse(body).event;
    await stack.store.setFaults({ status: 401 });
    await (await stack.worker.mf.getQueueProducer('EVENTS_DLQ')).send(body, { contentType: 'text' });
    await waitFor(() => dlqHolds(stack.worker) >= 4, { what: 'repeated holds', ms: 30000 });
    await stack.store.clearFaults();
    const letter = await waitFor(async () => (await getJson(stack.url, '/admin/dlq?limit=10')).entries.find((e) => e.event_id === id), { what: 'the stored dead letter', ms: 30000 });
    assert.match(letter.reason, /max_retries/);
  } finally {
    await stack.stop();
  }
});

/** Batches of the dead-letter queue the worker put back on it (held, the re-send accepted). */
const dlqHolds = (worker) => worker.logs.filter((l) => l.includes('"queue":"edgekeeper-events-dlq"') && l.includes('"held":1') && l.includes('"hold_sent":true')).length;

test("a claim whose release failed does not turn the client's retry into a duplicate", async () => {
  // The queue refuses; the store answers the admission, then fails the release (and its retries).
  const stack = await startStack({ queue: false });
  try {
    const ev = event('Purchase');
    await stack.store.setFaults({ status: 500, skip: 1, times: 10 });
    const refused = await collect(stack.url, ev);
    assert.equal(refused.status, 503);
    await stack.store.clearFaults();
    const healthy = await startWorker({ vars: stack.vars });
    try {
      // At once, the claim may still be another request's: "in progress", kept by the client.
      const early = await collect(healthy.url, ev);
      assert.equal(early.status, 202);
      assert.deepEqual(early.body.rejected.map((r) => [r.event_id, r.error.code]), [[ev.event_id, 'event_in_progress']]);
      assert.deepEqual(early.body.duplicates, [], 'never a duplicate');
      await ageClaims(stack);
      const again = await collect(healthy.url, ev);
      assert.equal(again.status, 202, JSON.stringify(again.body));
      assert.deepEqual(again.body.accepted, [ev.event_id], 'accepted, not answered "duplicate"');
      await waitFor(() => delivered(stack, ev.event_id) === 1, { what: 'delivery' });
      await waitFor(async () => settled(await books(healthy.url), 1), { what: 'one accepted, one delivered' });
    } finally {
      await healthy.stop();
    }
  } finally {
    await stack.stop();
  }
});

test('two consumers holding the same message at once send it to Meta once', async () => {
  const stack = await startStack();
  try {
    const evs = [event('Purchase'), event('Lead')];
    const bodies = await queuedBodies(stack.vars, evs);
    const other = await startWorker({ vars: stack.vars });
    try {
      // Slow Meta: both consumers are in their CAPI call window together.
      stack.meta.setFault({ latency_ms: 1500, times: 4 });
      const producers = await Promise.all([stack.worker, other].map((w) => w.mf.getQueueProducer('EVENTS')));
      await Promise.all(producers.flatMap((p) => bodies.map((b) => p.send(b, { contentType: 'text' }))));
      await waitFor(() => evs.every((e) => delivered(stack, e.event_id) >= 1), { what: 'delivery' });
      await new Promise((r) => setTimeout(r, 4000)); // the other copy's lease retry comes back and finds the marker
      assert.deepEqual(evs.map((e) => delivered(stack, e.event_id)), [1, 1]);
      const b = await books(stack.url);
      assert.equal(b.delivered, 2, 'counted once each');
    } finally {
      await other.stop();
    }
  } finally {
    await stack.stop();
  }
});

test('books balance when store replies are lost and delivery records fail', async () => {
  const stack = await startStack({ vars: { RATE_LIMIT_PER_IP: '5', RATE_LIMIT_WINDOW_SECS: '60' } });
  try {
    const evs = [1, 2, 3].map(() => event('Lead'));
    // The admission runs in redis but its reply is lost: the retry must not count it twice.
    await stack.store.setFaults({ lose_reply: true, times: 1 });
    assert.equal((await collect(stack.url, evs[0])).status, 202);
    await stack.store.clearFaults();
    assert.equal((await collect(stack.url, evs[1])).status, 202);
    assert.deepEqual((await collect(stack.url, evs[1])).body.duplicates, [evs[1].event_id]);
    // Delivery goes through but its record fails (the admission and the lease pass): held for
    // recording, counted once later.
    await stack.store.setFaults({ status: 500, skip: 2, times: 6 });
    assert.equal((await collect(stack.url, evs[2])).status, 202);
    await waitFor(() => evs.every((e) => delivered(stack, e.event_id) === 1), { what: 'delivery' });
    await waitFor(() => stack.worker.logs.some((l) => l.includes('"queue batch"') && !l.includes('"held":0')), { what: 'the held record' });
    await stack.store.clearFaults();
    // A duplicate the isolate decides alone (no round trip) is owed to the books; the next call is
    // over the per-IP limit and answered 429, and still carries it.
    assert.deepEqual((await collect(stack.url, evs[0])).body.duplicates, [evs[0].event_id]);
    const more = [];
    let limited = false;
    for (let i = 0; i < 5 && !limited; i++) {
      const ev = event('Lead');
      const r = await collect(stack.url, ev);
      if (r.status === 202) more.push(ev);
      limited = r.status === 429;
    }
    assert.ok(limited, 'the per-IP limit was reached');
    const all = [...evs, ...more];
    const b = await waitFor(async () => settled(await books(stack.url), all.length), { what: 'balanced books', ms: 30000 });
    assert.equal(b.duplicates, 2, 'both duplicates counted, once each');
    assert.ok(all.every((e) => delivered(stack, e.event_id) === 1), 'each delivered once');
  } finally {
    await stack.stop();
  }
});

test('Meta refusing the token holds events with capi down on /health, and delivers them once fixed', async () => {
  const stack = await startStack({ vars: { QUEUE_HOLD_SECS: '1' }, maxRetries: 1 });
  try {
    stack.meta.setAccessToken('rotated-elsewhere');
    const evs = [event('Purchase'), event('Lead')];
    for (const ev of evs) assert.equal((await collect(stack.url, ev)).status, 202);
    const down = await waitFor(async () => { const h = await health(stack.url); return h.checks.capi.status === 'down' && h; }, { what: 'capi down' });
    assert.match(JSON.stringify(down.checks.capi), /190/);
    // Longer than max_retries would allow: still held, nothing dead-lettered.
    await waitFor(() => stack.meta.requests().filter((r) => r.status === 400).length >= 4, { what: 'several refused attempts', ms: 20000 });
    assert.equal((await getJson(stack.url, '/admin/dlq?limit=10')).entries.length, 0);
    stack.meta.setAccessToken(TEST_SECRETS.META_ACCESS_TOKEN);
    await waitFor(() => evs.every((e) => delivered(stack, e.event_id) === 1), { what: 'delivery after the fix', ms: 20000 });
    await waitFor(async () => (await health(stack.url)).checks.capi.status === 'ok', { what: 'capi ok again' });
    const b = await waitFor(async () => settled(await books(stack.url), 2), { what: 'balanced books' });
    assert.equal(b.dead_lettered, 0);
  } finally {
    await stack.stop();
  }
});

test('a pixel id Meta does not know holds the batch whole instead of bisecting it into dead letters', async () => {
  const stack = await startStack({ vars: { QUEUE_HOLD_SECS: '1' }, meta: { pixelIds: ['999'] } });
  try {
    const evs = [event('Lead'), event('Lead'), event('Lead')];
    assert.equal((await collect(stack.url, { data: evs })).status, 202);
    const down = await waitFor(async () => { const h = await health(stack.url); return h.checks.capi.status === 'down' && h; }, { what: 'capi down' });
    assert.match(JSON.stringify(down.checks.capi), /code 100/);
    await waitFor(() => stack.meta.requests().filter((r) => r.method === 'POST').length >= 2, { what: 'a second attempt' });
    const posts = stack.meta.requests().filter((r) => r.method === 'POST');
    assert.ok(posts.every((r) => r.events === 3), `never split: ${JSON.stringify(posts.map((r) => r.events))}`);
    assert.equal((await getJson(stack.url, '/admin/dlq?limit=10')).entries.length, 0);
    assert.equal((await books(stack.url)).dead_lettered, 0);
  } finally {
    await stack.stop();
  }
});
