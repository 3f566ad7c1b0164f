// Replays the hostile corpus through the worker in workerd: every request a 4xx JSON error, no 5xx,
// no panic, and the worker healthy afterwards.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack } from '../support/stack.mjs';
import { corpus } from './corpus.mjs';

let stack;
before(async () => { stack = await startStack({ vars: { RATE_LIMIT_PER_IP: '100000', RATE_LIMIT_PER_SITE: '100000' } }); });
after(async () => { await stack?.stop(); });

test(`the corpus holds at least 200 hostile requests (${corpus.length})`, () => {
  assert.ok(corpus.length >= 200);
});

test('every hostile request gets a 4xx JSON error, never a 5xx', async () => {
  const failures = [];
  for (const c of corpus) {
    const body = c.body_b64 !== undefined ? Buffer.from(c.body_b64, 'base64') : c.body;
    let r;
    try {
      r = await fetch(`${stack.url}${c.path}`, { method: c.method, headers: c.headers, body: ['GET', 'HEAD'].includes(c.method) ? undefined : body });
    } catch (e) {
      failures.push(`${c.family}/${c.name}: fetch failed ${e.message}`);
      continue;
    }
    const text = await r.text();
    let json;
    try { json = JSON.parse(text); } catch { json = null; }
    const err = json?.error ?? json?.rejected?.[0]?.error;
    if (r.status < 400 || r.status >= 500) failures.push(`${c.family}/${c.name}: HTTP ${r.status} ${text.slice(0, 120)}`);
    else if (!err?.code || !err?.message) failures.push(`${c.family}/${c.name}: no JSON error in ${text.slice(0, 120)}`);
    else if (!/application\/json/.test(r.headers.get('content-type') ?? '')) failures.push(`${c.family}/${c.name}: content-type ${r.headers.get('content-type')}`);
  }
  assert.deepEqual(failures, []);
});

test('after the corpus the worker is healthy and never panicked', async () => {
  const h = await (await fetch(`${stack.url}/health`)).json();
  assert.equal(h.status, 'ok');
  const logs = stack.worker.logs.join('\n');
  assert.ok(!/panicked|RuntimeError|unreachable executed/i.test(logs), logs.split('\n').filter((l) => /panic|RuntimeError|unreachable/i.test(l)).slice(0, 5).join('\n'));
  assert.equal(stack.meta.received().length, 0, 'nothing hostile reached Meta');
});
