// Parity with Meta's Parameter Builder through workerd: one event per case of
// tests/fixtures/param-builder-cases.json is posted to /collect, and the Meta fake must receive
// sha256(what the builder normalises the value to), the digest itself for an already-hashed value, or no
// such key where the builder drops the value. No event may be rejected for a value the builder drops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startStack, waitFor, collect, ROOT, TEST_SECRETS } from '../support/stack.mjs';

const { cases } = JSON.parse(readFileSync(`${ROOT}/tests/fixtures/param-builder-cases.json`, 'utf8'));
const sha256 = (s) => createHash('sha256').update(s, 'utf8').digest('hex');

let stack;
before(async () => { stack = await startStack({ vars: { RATE_LIMIT_PER_IP: '10000' } }); });
after(async () => { await stack?.stop(); });

test(`every Parameter Builder case (${cases.length}) reaches Meta as the builder hashes it`, async () => {
  const run = `pb-${process.pid}-${Date.now()}`;
  const events = cases.map((c, i) => ({
    event_name: 'Lead',
    event_id: `${run}-${i}`,
    event_source_url: 'https://shop.example/signup',
    user_data: { [c.key]: c.input },
  }));
  for (let i = 0; i < events.length; i += 50) {
    const batch = events.slice(i, i + 50);
    const r = await collect(stack.url, { data: batch });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body.rejected ?? [], [], 'no event is rejected for its user_data value');
    assert.equal(r.body.accepted.length, batch.length);
  }
  const byId = () => new Map(stack.meta.received().filter((e) => e.event_id.startsWith(run)).map((e) => [e.event_id, e]));
  await waitFor(() => byId().size === events.length, { ms: 60000, what: `${events.length} deliveries` });
  const got = byId();
  const wrong = [];
  cases.forEach((c, i) => {
    const sent = got.get(`${run}-${i}`).user_data[c.key];
    const want = c.expected === null ? undefined : (c.expected.digest ?? sha256(c.expected.normalized));
    if (sent !== want) wrong.push(`${c.key} ${JSON.stringify(c.input)} (${c.why}): want ${want}, got ${sent}`);
  });
  assert.deepEqual(wrong, [], `${wrong.length} of ${cases.length} differ from the Parameter Builder`);

  // The match-key report counts a key only when it survived normalisation.
  const r = await fetch(`${stack.url}/admin/match-quality`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } });
  assert.equal(r.status, 200);
  const lead = (await r.json()).by_event.Lead;
  assert.equal(lead.events, cases.length);
  for (const key of new Set(cases.map((c) => c.key))) {
    const survived = cases.filter((c) => c.key === key && c.expected !== null).length;
    assert.ok(survived < cases.filter((c) => c.key === key).length || key === 'ln', `${key}: the table has dropped cases`);
    assert.equal(lead.coverage[key].events, survived, `${key}: counted only where it survived`);
  }
});
