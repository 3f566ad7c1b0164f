// /health through the built worker in workerd, with real redis behind the local Upstash store.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startWorker, TEST_SECRETS } from '../support/stack.mjs';

let stack;
// Every call probes here (HEALTH_PROBE_MS=0): these tests watch the store change under it.
before(async () => { stack = await startStack({ vars: { HEALTH_PROBE_MS: '0' } }); });
after(async () => { await stack?.stop(); });

async function health(url) {
  const r = await fetch(`${url}/health`);
  return { status: r.status, headers: r.headers, body: await r.json() };
}

test('health is ok with real redis behind the local Upstash store', async () => {
  const { status, headers, body } = await health(stack.url);
  assert.equal(status, 200);
  assert.equal(body.status, 'ok');
  assert.match(body.version, /^\d+\.\d+\.\d+/);
  assert.equal(body.checks.config.status, 'ok');
  assert.equal(body.checks.upstash.status, 'ok');
  assert.equal(typeof body.checks.upstash.latency_ms, 'number');
  assert.equal(headers.get('cache-control'), 'no-store');
  // The probe really reached redis through the store.
  const log = await stack.store.log();
  assert.ok(log.entries.some((e) => e.commands[0][0] === 'PING'), 'PING reached the store');
});

test('by default the store is probed at most every 5 s per isolate; between probes the last one is shown with its age', async () => {
  const w = await startWorker({ vars: { ...stack.vars, HEALTH_PROBE_MS: '60000' } });
  try {
    const pings = async () => (await stack.store.log()).entries.filter((e) => e.commands[0][0] === 'PING').length;
    const first = await health(w.url);
    assert.equal(first.body.checks.upstash.status, 'ok');
    assert.equal(first.body.checks.upstash.age_ms, undefined, 'a fresh probe');
    const before = await pings();
    for (let i = 0; i < 5; i += 1) {
      const again = await health(w.url);
      assert.equal(again.body.checks.upstash.status, 'ok');
      assert.equal(typeof again.body.checks.upstash.age_ms, 'number');
    }
    assert.equal(await pings(), before, 'no store round trip for /health between probes');
  } finally {
    await w.stop();
  }
});

test('health turns degraded when redis stops, and ok again when it is back', async () => {
  await stack.redis.stop();
  const down = await health(stack.url);
  assert.equal(down.status, 200, 'degraded is still served, not a 5xx');
  assert.equal(down.body.status, 'degraded');
  assert.equal(down.body.checks.upstash.status, 'degraded');
  assert.match(down.body.checks.upstash.reason, /unreachable/i);
  await stack.redis.start();
  const up = await health(stack.url);
  assert.equal(up.body.status, 'ok', JSON.stringify(up.body));
});

test('an unreachable store that hangs is cut off by the timeout, retries included', async () => {
  await stack.store.setFaults({ hang: true });
  const t0 = Date.now();
  const { body } = await health(stack.url);
  assert.equal(body.checks.upstash.status, 'degraded');
  assert.match(body.checks.upstash.reason, /timed out/);
  assert.ok(Date.now() - t0 < 5000, 'the health probe is bounded');
  await stack.store.clearFaults();
});

test('a rejected Upstash token is down, naming the variable, not degraded', async () => {
  await stack.store.setFaults({ status: 401, times: 1 });
  const { status, body } = await health(stack.url);
  assert.equal(status, 503);
  assert.equal(body.status, 'down');
  assert.match(body.checks.upstash.reason, /UPSTASH_REDIS_REST_TOKEN/);
});

test('health output and worker logs contain no secret values', async () => {
  const bodies = [];
  bodies.push(JSON.stringify((await health(stack.url)).body));
  await stack.store.setFaults({ status: 401, times: 1 });
  bodies.push(JSON.stringify((await health(stack.url)).body));
  await stack.redis.stop();
  bodies.push(JSON.stringify((await health(stack.url)).body));
  await stack.redis.start();
  const everything = bodies.join('\n') + '\n' + stack.worker.logs.join('\n');
  for (const [name, value] of Object.entries(TEST_SECRETS)) {
    assert.ok(!everything.includes(value), `${name} leaked`);
  }
});

test('an invalid setting makes health down and names the variable', async () => {
  const w = await startWorker({ vars: { META_PIXEL_ID: 'not-a-number', ADMIN_TOKEN: 'short' } });
  try {
    const { status, body } = await health(w.url);
    assert.equal(status, 503);
    assert.equal(body.status, 'down');
    const vars = body.checks.config.errors.map((e) => e.variable).sort();
    assert.deepEqual(vars, ['ADMIN_TOKEN', 'META_PIXEL_ID']);
    assert.ok(!JSON.stringify(body).includes('short'), 'the bad secret value is not echoed');
  } finally {
    await w.stop();
  }
});

test('missing settings are named by job, with no values', async () => {
  const w = await startWorker({ vars: {} });
  try {
    const { body } = await health(w.url);
    assert.equal(body.status, 'degraded');
    assert.deepEqual(body.checks.config.missing.store, ['UPSTASH_REDIS_REST_URL', 'UPSTASH_REDIS_REST_TOKEN']);
    assert.deepEqual(body.checks.config.missing.admin, ['ADMIN_TOKEN']);
    assert.equal(body.checks.upstash.status, 'degraded');
  } finally {
    await w.stop();
  }
});

test('the configuration is parsed once per isolate, not per request', async () => {
  const w = await startWorker({ vars: { ...stack.vars } });
  try {
    for (let i = 0; i < 5; i += 1) await health(w.url);
    await fetch(`${w.url}/collect`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
    const stats = await (await fetch(`${w.url}/admin/stats`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
    assert.equal(stats.isolate.upstash.counters.config_parsed, 1, JSON.stringify(stats.isolate.upstash.counters));
  } finally {
    await w.stop();
  }
});

test('META_API_VERSION: warned 90 days before Meta retires it, down once it has expired, ok when current', async () => {
  // From Meta's versions page (src/capi/versions.rs): v25.0 expires 2027-02-23, v21.0 on 2025-09-09.
  const daysLeft = (Date.UTC(2027, 1, 23) - Date.now()) / 86_400_000;
  const v25 = daysLeft <= 0 ? ['down', 503, /v25\.0 expired on 2027-02-23/] : daysLeft <= 90 ? ['degraded', 200, /v25\.0 expires on 2027-02-23/] : ['ok', 200, null];
  const cases = { 'v25.0': v25, 'v21.0': ['down', 503, /v21\.0 expired on 2025-09-09/], 'v27.0': ['ok', 200, null] };
  for (const [version, [status, code, message]] of Object.entries(cases)) {
    const w = await startWorker({ vars: { ...stack.vars, META_API_VERSION: version } });
    try {
      const r = await health(w.url);
      const check = r.body.checks.meta_api_version;
      assert.equal(check.status, status, `${version}: ${JSON.stringify(check)}`);
      assert.equal(r.body.status, status, version);
      assert.equal(r.status, code, version);
      assert.equal(check.version, version);
      if (message) assert.match(check.message, message);
    } finally {
      await w.stop();
    }
  }
  // wrangler.toml as deployed carries the current default.
  assert.equal((await health(stack.url)).body.checks.meta_api_version.version, 'v27.0');
});
