// The Upstash provider through the worker: one round trip per /collect, faults injected in the
// local store (500, latency, dropped connections, 401), the breaker opening and recovering, rate
// limits, SCAN-based purge and /admin/stats.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, event, collect, TEST_SECRETS } from '../support/stack.mjs';

let stack;
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
const storeAuth = { authorization: `Bearer ${TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN}` };

before(async () => {
  stack = await startStack({
    // HEALTH_PROBE_MS=0: /health probes on every call, as these tests watch the store fail and recover.
    vars: { HEALTH_PROBE_MS: '0', UPSTASH_BREAKER_THRESHOLD: '3', UPSTASH_BREAKER_COOLDOWN_MS: '1000', UPSTASH_TIMEOUT_MS: '200', UPSTASH_DEADLINE_MS: '450', RATE_LIMIT_PER_IP: '1000' },
  });
});
after(async () => { await stack?.stop(); });

const health = async () => (await fetch(`${stack.url}/health`)).json();
const stats = async () => (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();

test('the dedup claims and the rate-limit count travel in one HTTP request to the store', async () => {
  const { last_seq } = await stack.store.log();
  const evs = [event('ViewContent'), event('AddToCart')];
  const r = await collect(stack.url, { data: evs });
  assert.equal(r.status, 202);
  const { entries } = await stack.store.log(last_seq);
  assert.equal(entries.length, 1, JSON.stringify(entries.map((e) => e.commands.map((c) => c[0]))));
  const [cmd] = entries[0].commands;
  assert.equal(cmd[0], 'EVAL');
  const keys = cmd.slice(3, 3 + Number(cmd[2]));
  assert.ok(keys.some((k) => /^ek:[^:]+:rl:ip:/.test(k)), 'client counter');
  assert.ok(keys.some((k) => /^ek:[^:]+:rl:site:/.test(k)), 'site counter');
  for (const e of evs) assert.ok(keys.includes(`ek:127.0.0.1:evt:${e.event_name}:${e.event_id}`), 'claim key in the scheme');
  // A duplicate this isolate already claimed costs no round trip at all.
  const again = await collect(stack.url, { data: evs });
  assert.deepEqual(again.body.duplicates.sort(), evs.map((e) => e.event_id).sort());
  assert.equal((await stack.store.log(entries[0].seq)).entries.length, 0);
});

test('store failing: intake keeps answering 202 with local dedup, the breaker opens, health degrades, then all recovers', async () => {
  await stack.store.setFaults({ status: 500 });
  const ev = event('Lead');
  const first = await collect(stack.url, ev);
  assert.equal(first.status, 202, JSON.stringify(first.body));
  assert.equal(first.body.dedup, 'local');
  assert.deepEqual(first.body.accepted, [ev.event_id]);
  const dup = await collect(stack.url, ev);
  assert.deepEqual(dup.body.duplicates, [ev.event_id], 'the isolate still deduplicates');
  for (let i = 0; i < 3; i++) {
    const r = await collect(stack.url, event('PageView'));
    assert.equal(r.status, 202);
  }
  const s = await stats();
  assert.equal(s.isolate.upstash.breaker.state, 'open');
  assert.ok(s.isolate.upstash.counters.dedup_local >= 2);
  const h = await health();
  assert.equal(h.status, 'degraded');
  assert.match(h.checks.upstash.reason, /circuit open|HTTP 500/);

  await stack.store.clearFaults();
  await new Promise((r) => setTimeout(r, 1100));
  const back = await waitFor(async () => { const x = await health(); return x.status === 'ok' && x; }, { what: 'health ok' });
  assert.equal(back.checks.upstash.breaker, 'closed');
  const after = await collect(stack.url, event('PageView'));
  assert.equal(after.body.dedup, 'store');
  // The event accepted during the outage was still delivered.
  await waitFor(() => stack.meta.received().some((e) => e.event_id === ev.event_id), { what: 'delivery of the outage event' });
});

test('a slow store and dropped connections also fall back without a 5xx', async () => {
  for (const fault of [{ latency_ms: 1500 }, { drop: true }]) {
    await stack.store.setFaults(fault);
    const r = await collect(stack.url, event('Search'));
    assert.equal(r.status, 202, `${JSON.stringify(fault)}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.dedup, 'local');
    await stack.store.clearFaults();
    await new Promise((res) => setTimeout(res, 1100));
    await waitFor(async () => (await health()).status === 'ok', { what: 'recovery' });
  }
});

test('a 401 from Upstash: health is down and names the token; intake still answers', async () => {
  await stack.store.setFaults({ status: 401 });
  const h = await fetch(`${stack.url}/health`);
  assert.equal(h.status, 503);
  const body = await h.json();
  assert.equal(body.status, 'down');
  assert.match(body.checks.upstash.reason, /rejected the token.*UPSTASH_REDIS_REST_TOKEN/);
  const r = await collect(stack.url, event('PageView'));
  assert.equal(r.status, 202);
  assert.equal(r.body.dedup, 'local');
  await stack.store.clearFaults();
  assert.equal((await health()).status, 'ok');
});

test('rate limits answer 429 with Retry-After and RateLimit headers', async () => {
  const s = await startStack({ vars: { RATE_LIMIT_PER_IP: '3', RATE_LIMIT_WINDOW_SECS: '60' } });
  try {
    const ok = await collect(s.url, event('PageView'));
    assert.equal(ok.headers.get('ratelimit-limit'), '3');
    assert.equal(ok.headers.get('ratelimit-remaining'), '2');
    await collect(s.url, event('PageView'));
    await collect(s.url, event('PageView'));
    const limited = await collect(s.url, event('PageView'));
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'rate_limited');
    const retry = Number(limited.headers.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `retry-after ${retry}`);
    assert.equal(limited.headers.get('ratelimit-remaining'), '0');
  } finally {
    await s.stop();
  }
});

test('admin stats need the token and show latency percentiles and the breaker', async () => {
  assert.equal((await fetch(`${stack.url}/admin/stats`)).status, 401);
  const wrong = await fetch(`${stack.url}/admin/stats`, { headers: { authorization: 'Bearer wrong-token-wrong-token' } });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).error.code, 'unauthorized');
  const s = await stats();
  const ops = s.isolate.upstash.ops;
  assert.ok(ops.admit.calls > 0);
  assert.equal(typeof s.isolate.upstash.latency_ms.p50, 'number');
  assert.equal(typeof s.isolate.upstash.latency_ms.p99, 'number');
  assert.ok(['closed', 'open', 'half-open'].includes(s.isolate.upstash.breaker.state));
});

test('purging 10,000 keys uses SCAN in pages and does not block other clients', async () => {
  const pipe = async (cmds) => (await fetch(`${stack.store.url}/pipeline`, { method: 'POST', headers: storeAuth, body: JSON.stringify(cmds) })).json();
  for (let i = 0; i < 10; i++) {
    await pipe(Array.from({ length: 1000 }, (_, j) => ['SET', `ek:purge.example:evt:PageView:${i}-${j}`, '1', 'EX', '600']));
  }
  await pipe([['SET', 'ek:purge.example:dlq:events', 'keep']]);
  const { last_seq } = await stack.store.log();
  let stop = false;
  const pings = [];
  const pinger = (async () => {
    while (!stop) {
      const t0 = performance.now();
      await fetch(`${stack.store.url}/ping`, { headers: storeAuth });
      pings.push(performance.now() - t0);
    }
  })();
  const r = await fetch(`${stack.url}/admin/store/purge?site=purge.example`, { method: 'POST', headers: admin, body: JSON.stringify({ module: 'evt' }) });
  stop = true;
  await pinger;
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { module: 'evt', site: 'purge.example', deleted: 10000, complete: true });
  const used = (await stack.store.log(last_seq)).entries.flatMap((e) => e.commands.map((c) => c[0].toUpperCase()));
  assert.ok(used.includes('SCAN') && used.includes('UNLINK') && !used.includes('KEYS'), used.join(','));
  pings.sort((a, b) => a - b);
  assert.ok(pings.length > 0 && pings.at(-1) < 250, `slowest concurrent PING ${pings.at(-1)} ms`);
  const left = await pipe([['EXISTS', 'ek:purge.example:evt:PageView:0-0'], ['GET', 'ek:purge.example:dlq:events']]);
  assert.deepEqual(left.map((x) => x.result), [0, 'keep']);
  const bad = await fetch(`${stack.url}/admin/store/purge`, { method: 'POST', headers: admin, body: JSON.stringify({ module: 'everything' }) });
  assert.equal(bad.status, 400);
});

test('dead letters over 2 KB are stored compressed and read back transparently', async () => {
  const big = event('ViewContent', { custom_data: { contents: Array.from({ length: 60 }, (_, i) => ({ id: `sku-${i}-${'x'.repeat(40)}`, quantity: 1 })) } });
  stack.meta.setFault({ reject_event_ids: [big.event_id] });
  assert.equal((await collect(stack.url, big)).status, 202);
  const entry = await waitFor(async () => {
    const l = await (await fetch(`${stack.url}/admin/dlq?limit=100`, { headers: admin })).json();
    return l.entries.find((e) => e.event_id === big.event_id);
  }, { what: 'the dead letter' });
  stack.meta.setFault(null);
  assert.equal(entry.message.event.custom_data.contents.length, 60);
  const raw = await (await fetch(`${stack.store.url}/`, { method: 'POST', headers: storeAuth, body: JSON.stringify(['LRANGE', 'ek:127.0.0.1:dlq:events', '0', '-1']) })).json();
  const stored = raw.result.find((v) => v.startsWith('~z1:') || v.includes(big.event_id));
  assert.ok(stored.startsWith('~z1:'), 'compressed in redis');
});
