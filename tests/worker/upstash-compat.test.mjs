// upstash-local speaks the Upstash REST protocol well enough for the official client: the same
// @upstash/redis code that runs against Upstash runs against our local store (redis behind it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from '@upstash/redis';
import { startRedis, startUpstashLocal } from '../support/stack.mjs';

const TOKEN = 'compat-token-7c1d';
let redis, store, client;

before(async () => {
  redis = await startRedis();
  store = await startUpstashLocal({ redisPort: redis.port, token: TOKEN });
  // Defaults on purpose: base64 response encoding and automatic deserialisation, as users run it.
  client = new Redis({ url: store.url, token: TOKEN, retry: false, enableAutoPipelining: false });
});

after(async () => {
  await store?.stop();
  await redis?.destroy();
});

test('strings, NX/EX, TTL and deletion', async () => {
  assert.equal(await client.set('greeting', 'héllo wörld ✓'), 'OK');
  assert.equal(await client.get('greeting'), 'héllo wörld ✓');
  assert.equal(await client.set('once', 'first', { nx: true, ex: 100 }), 'OK');
  assert.equal(await client.set('once', 'second', { nx: true, ex: 100 }), null);
  assert.equal(await client.get('once'), 'first');
  const ttl = await client.ttl('once');
  assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
  assert.equal(await client.del('once', 'greeting'), 2);
  assert.equal(await client.get('once'), null);
});

test('json values round-trip through the client serialiser', async () => {
  const value = { event_id: 'e-1', n: 42, nested: { ok: true } };
  await client.set('obj', value);
  assert.deepEqual(await client.get('obj'), value);
});

test('INCR, EXPIRE and PING', async () => {
  assert.equal(await client.incr('counter'), 1);
  assert.equal(await client.incrby('counter', 41), 42);
  assert.equal(await client.expire('counter', 60), 1);
  assert.equal(await client.ping(), 'PONG');
});

test('pipeline: one HTTP request, per-command results', async () => {
  const before = (await store.log()).last_seq;
  const p = client.pipeline();
  p.set('p:a', 'x');
  p.incr('p:n');
  p.incr('p:n');
  p.get('p:a');
  p.lpush('p:list', 'a', 'b', 'c');
  p.lrange('p:list', 0, -1);
  assert.deepEqual(await p.exec(), ['OK', 1, 2, 'x', 3, ['c', 'b', 'a']]);
  const log = await store.log(before);
  assert.equal(log.entries.length, 1, 'a pipeline is one round trip');
  assert.equal(log.entries[0].endpoint, '/pipeline');
});

test('multi-exec: atomic, and concurrent transactions do not nest', async () => {
  const tx = client.multi();
  tx.set('t:k', 'v');
  tx.incr('t:n');
  tx.get('t:k');
  assert.deepEqual(await tx.exec(), ['OK', 1, 'v']);

  const runs = Array.from({ length: 20 }, () => {
    const m = client.multi();
    m.incr('t:concurrent');
    m.expire('t:concurrent', 60);
    return m.exec();
  });
  const results = await Promise.all(runs);
  assert.deepEqual(results.map((r) => r[0]).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
});

test('redis errors surface as client errors, pipelines keep going', async () => {
  await client.set('text', 'not a number');
  await assert.rejects(client.incr('text'), /not an integer/);
  const p = client.pipeline();
  p.incr('text');
  p.get('text');
  await assert.rejects(p.exec(), /not an integer/);
  const keepErrors = client.pipeline();
  keepErrors.incr('text');
  keepErrors.get('text');
  const results = await keepErrors.exec({ keepErrors: true });
  assert.match(results[0].error, /not an integer/);
  assert.equal(results[1].result, 'not a number');
});

test('path-style commands and base64 response encoding on the wire', async () => {
  await client.set('path:key', 'with space/and slash');
  const plain = await fetch(`${store.url}/get/path%3Akey`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.deepEqual(await plain.json(), { result: 'with space/and slash' });
  const encoded = await fetch(`${store.url}/get/path%3Akey`, {
    headers: { authorization: `Bearer ${TOKEN}`, 'upstash-encoding': 'base64' },
  });
  assert.deepEqual(await encoded.json(), { result: Buffer.from('with space/and slash').toString('base64') });
  const posted = await fetch(`${store.url}/set/path%3Abody`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: 'from the body' });
  assert.deepEqual(await posted.json(), { result: 'OK' });
  assert.equal(await client.get('path:body'), 'from the body');
  const byQuery = await fetch(`${store.url}/get/path%3Abody?_token=${TOKEN}`);
  assert.deepEqual(await byQuery.json(), { result: 'from the body' });
});

test('a wrong token is a 401 for the client and on the wire', async () => {
  const wrong = new Redis({ url: store.url, token: 'wrong-token', retry: false });
  await assert.rejects(wrong.get('anything'), /Unauthorized|401/);
  const r = await fetch(`${store.url}/get/x`, { headers: { authorization: 'Bearer wrong' } });
  assert.equal(r.status, 401);
  assert.ok((await r.json()).error);
  const none = await fetch(`${store.url}/`, { method: 'POST', body: '["PING"]' });
  assert.equal(none.status, 401);
});

test('commands that would break a pooled connection are refused', async () => {
  const r = await fetch(`${store.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '["SUBSCRIBE","ch"]' });
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /not allowed/);
  assert.equal(await client.ping(), 'PONG');
});

test('a fault with `matching` meets only the requests that carry that text, and counts only them', async () => {
  const call = async (body) => fetch(`${store.url}/`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(body) });
  await store.setFaults({ status: 500, matching: 'victim', times: 2 });
  try {
    assert.equal((await call(['SET', 'bystander', '1'])).status, 200, 'another request passes');
    assert.equal((await call(['SET', 'victim:1', '1'])).status, 500);
    assert.equal((await call(['EVAL', "return 'victim'", '0'])).status, 500, 'any argument, e.g. a script');
    assert.equal((await call(['SET', 'victim:2', '1'])).status, 200, 'times counted only the matching ones');
    await store.setFaults({ lose_reply: true, matching: 'victim', times: 1 });
    assert.equal((await call(['SET', 'victim:3', 'ran'])).status, 502);
    assert.equal(await client.get('victim:3'), 'ran', 'the command ran, its reply was lost');
  } finally {
    await store.clearFaults();
  }
});
