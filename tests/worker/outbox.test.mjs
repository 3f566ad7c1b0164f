// The durable outbox: accepted means queued (or a 503 with the claim released), the queue's own
// dead-letter queue ends in stored dead letters, redelivery never reaches Meta twice, and what sits
// on the queue carries no raw personal data.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startWorker, waitFor, event, collect, TEST_SECRETS } from '../support/stack.mjs';

const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
const storeAuth = { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` };
const dlq = async (url) => (await fetch(`${url}/admin/dlq?limit=100`, { headers: admin })).json();

test('when the queue refuses, the answer is 503 with Retry-After and the claim is released', async () => {
  const stack = await startStack({ queue: false });
  try {
    const ev = event('Purchase');
    const r = await collect(stack.url, ev);
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'queue_unavailable');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    // A worker whose queue works, on the same store, takes the same event as new.
    const healthy = await startWorker({ vars: stack.vars });
    try {
      const again = await collect(healthy.url, ev);
      assert.equal(again.status, 202);
      assert.deepEqual(again.body.accepted, [ev.event_id], 'not left marked as seen');
      await waitFor(() => stack.meta.received().some((e) => e.event_id === ev.event_id), { what: 'delivery' });
    } finally {
      await healthy.stop();
    }
    const books = (await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json()).books;
    assert.equal(books.accepted, 1, 'the refused attempt is not in the books');
  } finally {
    await stack.stop();
  }
});

test('a 503 takes back the duplicates and rejections it counted: the resent batch is counted once', async () => {
  const stack = await startStack({ queue: false });
  const healthy = await startWorker({ vars: stack.vars });
  try {
    const seen = event('Lead');
    assert.deepEqual((await collect(healthy.url, seen)).body.accepted, [seen.event_id]);
    await waitFor(() => stack.meta.received().some((e) => e.event_id === seen.event_id), { what: 'delivery' });
    // One new event, a copy of one already accepted, one the catalog refuses.
    const batch = { data: [event('Purchase'), seen, event('NotAStandardEvent')] };
    const refused = await collect(stack.url, batch);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    const again = await collect(healthy.url, batch);
    assert.equal(again.status, 202);
    assert.deepEqual([again.body.accepted.length, again.body.duplicates, again.body.rejected.length], [1, [seen.event_id], 1]);
    // Both isolates write what they owe (their next store call would).
    await fetch(`${stack.url}/admin/stats`, { headers: admin });
    const books = (await (await fetch(`${healthy.url}/admin/stats`, { headers: admin })).json()).books;
    assert.deepEqual([books.accepted, books.duplicates, books.rejected], [2, 1, 1], JSON.stringify(books));
  } finally {
    await healthy.stop();
    await stack.stop();
  }
});

test('after max_retries the queue dead-letters; the worker stores it with a reason', async () => {
  const stack = await startStack({ maxRetries: 1 });
  try {
    stack.meta.setFault({ status: 503 });
    const ev = event('Lead');
    assert.equal((await collect(stack.url, ev)).status, 202);
    const letter = await waitFor(async () => (await dlq(stack.url)).entries.find((e) => e.event_id === ev.event_id), { what: 'the dead letter', ms: 30000 });
    assert.match(letter.reason, /max_retries/);
    assert.equal(stack.meta.received().length, 0);
    const { books } = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
    assert.equal(books.dead_lettered, 1);
    assert.ok(books.retried >= 1);
    // Meta is back: replay delivers it.
    stack.meta.setFault(null);
    await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ all: true }) });
    await waitFor(() => stack.meta.received().some((e) => e.event_id === ev.event_id), { what: 'the replay' });
  } finally {
    await stack.stop();
  }
});

test('a message delivered before is never sent to Meta again', async () => {
  const stack = await startStack();
  try {
    const ev = event('Schedule');
    stack.meta.setFault({ reject_event_ids: [ev.event_id] });
    await collect(stack.url, ev);
    await waitFor(async () => (await dlq(stack.url)).entries.some((e) => e.event_id === ev.event_id), { what: 'the dead letter' });
    const raw = (await (await fetch(`${stack.store.url}/`, { method: 'POST', headers: storeAuth, body: JSON.stringify(['LINDEX', 'ek:127.0.0.1:dlq:events', '0']) })).json()).result;
    stack.meta.setFault(null);
    await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ event_ids: [ev.event_id] }) });
    await waitFor(() => stack.meta.received().filter((e) => e.event_id === ev.event_id).length === 1, { what: 'delivery' });
    // The same message comes round again (as a queue redelivery would bring it).
    await fetch(`${stack.store.url}/`, { method: 'POST', headers: storeAuth, body: JSON.stringify(['LPUSH', 'ek:127.0.0.1:dlq:events', raw]) });
    const rep = await (await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ event_ids: [ev.event_id] }) })).json();
    assert.deepEqual(rep.replayed, [ev.event_id]);
    await waitFor(() => stack.worker.logs.some((l) => l.includes('"queue batch"') && l.includes('"capi_requests":0')), { what: 'the skipped redelivery' });
    assert.equal(stack.meta.received().filter((e) => e.event_id === ev.event_id).length, 1);
  } finally {
    await stack.stop();
  }
});

test('queue messages carry hashed data only', async () => {
  const stack = await startStack({ spyQueue: true });
  try {
    const ev = event('Purchase', { user_data: { em: 'Spy.Target@Example.ORG', ph: '+1 (415) 555-0100', fn: 'Zoë', ct: 'San Francisco' } });
    assert.equal((await collect(stack.url, ev)).status, 202);
    const line = await waitFor(() => stack.worker.logs.find((l) => l.startsWith('SPY ') && l.includes(ev.event_id)), { what: 'the queued message' });
    const msg = JSON.parse(line.slice(4));
    assert.match(msg.event.user_data.em, /^[0-9a-f]{64}$/);
    for (const raw of ['spy.target@example.org', 'Spy.Target', '4155550100', '415) 555', 'Zoë', 'zoë', 'San Francisco', 'sanfrancisco']) {
      assert.ok(!line.includes(raw), `${raw} on the queue`);
    }
  } finally {
    await stack.stop();
  }
});

test('CAPI 429 and a CAPI timeout are retried: each event delivered exactly once', async () => {
  const stack = await startStack({ vars: { CAPI_TIMEOUT_MS: '500' } });
  try {
    stack.meta.setFault({ status: 429, times: 1 });
    const limited = event('Lead');
    assert.equal((await collect(stack.url, limited)).status, 202);
    await waitFor(() => stack.meta.received().some((e) => e.event_id === limited.event_id), { what: 'delivery after a 429', ms: 30000 });
    assert.ok(stack.meta.requests().some((r) => r.status === 429));

    stack.meta.setFault({ timeout: true, times: 1 });
    const slow = event('Lead');
    assert.equal((await collect(stack.url, slow)).status, 202);
    await waitFor(() => stack.meta.received().some((e) => e.event_id === slow.event_id), { what: 'delivery after a timeout', ms: 30000 });
    await new Promise((r) => setTimeout(r, 1500));
    for (const e of [limited, slow]) assert.equal(stack.meta.received().filter((g) => g.event_id === e.event_id).length, 1);
    const { books } = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
    assert.ok(books.retried >= 2, JSON.stringify(books));
    assert.equal(books.delivered, 2);
  } finally {
    await stack.stop();
  }
});
