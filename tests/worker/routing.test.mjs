// The worker's own paths answer JSON or its own files (`/__edgekeeper/*`); everything else is the
// origin's, including `/` (a deployment never shadows the site's pages).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startWorker } from '../support/stack.mjs';

let origin, originUrl, worker, seen;

before(async () => {
  seen = [];
  origin = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body, cookie: req.headers.cookie });
      res.writeHead(201, { 'content-type': 'text/plain', 'x-origin': 'yes' });
      res.end(`origin saw ${req.method} ${req.url}`);
    });
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  originUrl = `http://127.0.0.1:${origin.address().port}`;
  worker = await startWorker({ vars: { ORIGIN_URL: originUrl } });
});

after(async () => {
  await worker?.stop();
  origin?.close();
});

test('the worker\'s own files are under /__edgekeeper/; / is the origin\'s', async () => {
  const r = await fetch(`${worker.url}/__edgekeeper/dashboard`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /text\/html/);
  assert.match(await r.text(), /edgekeeper/);
  const root = await fetch(`${worker.url}/`);
  assert.equal(root.status, 201);
  assert.equal(await root.text(), 'origin saw GET /');
});

test('unknown paths under the worker prefixes are JSON 404s, never the origin', async () => {
  for (const path of ['/admin/nope', '/collect/extra', '/health/deep', '/__edgekeeper/x']) {
    const r = await fetch(`${worker.url}${path}`);
    assert.equal(r.status, 404, path);
    const body = await r.json();
    assert.equal(body.error.code, 'not_found');
    assert.equal(typeof body.error.message, 'string');
  }
  assert.ok(!seen.some((s) => /admin|collect|health|__edgekeeper/.test(s.url)));
});

test('a wrong method on a worker path is a JSON 405 with Allow', async () => {
  const r = await fetch(`${worker.url}/health`, { method: 'POST', body: '{}' });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, HEAD');
  assert.equal((await r.json()).error.code, 'method_not_allowed');
});

test('HEAD /health has headers and no body', async () => {
  const r = await fetch(`${worker.url}/health`, { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), '');
});

test('everything else goes to the origin with method, query, headers and body', async () => {
  const r = await fetch(`${worker.url}/products/42?colour=blue&x=%2F`, {
    method: 'POST',
    headers: { cookie: 'session=abc', 'content-type': 'text/plain' },
    body: 'hello origin',
  });
  assert.equal(r.status, 201);
  assert.equal(r.headers.get('x-origin'), 'yes');
  assert.equal(await r.text(), 'origin saw POST /products/42?colour=blue&x=%2F');
  const last = seen.at(-1);
  assert.deepEqual(last, { method: 'POST', url: '/products/42?colour=blue&x=%2F', body: 'hello origin', cookie: 'session=abc' });
});

test('without an origin, a local request for a missing page says how to configure one', async () => {
  const bare = await startWorker({ vars: {} });
  try {
    const r = await fetch(`${bare.url}/no-such-page`);
    assert.equal(r.status, 502);
    const body = await r.json();
    assert.equal(body.error.code, 'no_origin');
    assert.match(body.error.message, /ORIGIN_URL/);
  } finally {
    await bare.stop();
  }
});

test('the cron trigger runs and reports the health status', async () => {
  const w = await worker.mf.getWorker();
  const result = await w.scheduled({ cron: '*/5 * * * *' });
  assert.equal(result.outcome, 'ok');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(worker.logs.some((l) => l.includes('"msg":"cron"') && l.includes('*/5 * * * *') && l.includes('"health"')), worker.logs.join('\n'));
});

test('a body sent to a route that takes none does not break the connection for the next request', async () => {
  const { Agent, request } = await import('undici');
  const agent = new Agent({ connections: 1, pipelining: 1 });
  try {
    for (let i = 0; i < 5; i++) {
      const bad = await request(`${worker.url}/health`, { method: 'POST', body: 'x'.repeat(200_000), dispatcher: agent });
      assert.equal(bad.statusCode, 405);
      await bad.body.json();
      const ok = await request(`${worker.url}/health`, { dispatcher: agent });
      assert.equal(ok.statusCode, 200);
      await ok.body.json();
    }
  } finally {
    await agent.close();
  }
});
