// `make soak`: 50,000 events (10 % of sends repeat an earlier event), 64 concurrent senders, while the
// Meta fake fails 5 % of batches and redis is restarted once midway. It stops by itself (bounded in
// time) and checks: Meta holds exactly the unique events, none twice; no 5xx; the books balance.
// SOAK_EVENTS, SOAK_CONCURRENCY, SOAK_BATCH and SOAK_MINUTES scale it.

import { startStack, waitFor, TEST_SECRETS } from '../tests/support/stack.mjs';

const EVENTS = Number(process.env.SOAK_EVENTS || 50_000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY || 64);
const BATCH = Number(process.env.SOAK_BATCH || 10);
const DEADLINE = Date.now() + Number(process.env.SOAK_MINUTES || 20) * 60_000;
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };

const stack = await startStack({
  persistentRedis: true,
  vars: { RATE_LIMIT_PER_IP: '1000000', RATE_LIMIT_PER_SITE: '100000000' },
});
const timer = setTimeout(() => { console.error('soak: time limit reached'); process.exit(2); }, DEADLINE - Date.now());
stack.meta.setFault({ fail_rate: 0.05, seed: 42 });

const sent = [];            // unique events sent (event objects)
const statuses = {};
let duplicatesSent = 0;
let next = 0;
let restarted = false;
let firstError = null;
const t0 = Date.now();
const progress = setInterval(() => console.log(`soak: ${next} sent, statuses ${JSON.stringify(statuses)}, at Meta ${stack.meta.received().length}`), 5000);

function makeBatch() {
  const batch = [];
  for (let i = 0; i < BATCH && next < EVENTS; i++, next++) {
    if (sent.length > 100 && next % 10 === 0) {
      batch.push(sent[(next * 7919) % sent.length]); // a repeat of an earlier event
      duplicatesSent += 1;
    } else {
      const e = { event_name: 'ViewContent', event_id: `soak-${next}`, event_source_url: 'https://shop.example/p/1', user_data: { em: `u${next}@example.com` } };
      sent.push(e);
      batch.push(e);
    }
  }
  return batch;
}

async function post(batch) {
  for (let attempt = 0; ; attempt++) {
    let r;
    try {
      r = await fetch(`${stack.url}/collect`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'soak' }, body: JSON.stringify({ data: batch }) });
    } catch {
      statuses.network = (statuses.network ?? 0) + 1;
      await new Promise((res) => setTimeout(res, 100 * (attempt + 1)));
      continue;
    }
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const body = await r.json();
    if (r.status >= 500 && !firstError) firstError = JSON.stringify(body);
    if (r.status === 202) {
      // Events refused by the queue mid-batch come back as rejected with queue_unavailable: resend them.
      const retry = (body.rejected ?? []).filter((x) => x.error.code === 'queue_unavailable').map((x) => x.event_id);
      if (retry.length === 0) return;
      batch = batch.filter((e) => retry.includes(e.event_id));
    }
    await new Promise((res) => setTimeout(res, 100 * Math.min(attempt + 1, 20)));
  }
}

async function sender() {
  while (next < EVENTS) {
    const batch = makeBatch();
    if (!restarted && next >= EVENTS / 2) {
      restarted = true;
      console.log(`soak: restarting redis at event ${next}`);
      stack.redis.restart().then(() => console.log('soak: redis is back'));
    }
    await post(batch);
  }
}

await Promise.all(Array.from({ length: CONCURRENCY }, sender));
const sendSecs = (Date.now() - t0) / 1000;
console.log(`soak: sent ${EVENTS} events (${sent.length} unique, ${duplicatesSent} repeats) in ${sendSecs.toFixed(1)} s; statuses ${JSON.stringify(statuses)}`);

const unique = new Set(sent.map((e) => e.event_id));
await waitFor(() => new Set(stack.meta.received().map((e) => e.event_id)).size >= unique.size, { ms: Math.min(DEADLINE - Date.now() - 10_000, 180_000), every: 1000, what: 'every unique event at Meta' })
  .catch((e) => console.log(`soak: ${e.message}`));
await new Promise((r) => setTimeout(r, 3000)); // let any stray second delivery show up
const got = stack.meta.received().map((e) => e.event_id);
const counts = new Map();
for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
const twice = [...counts].filter(([, n]) => n > 1);
const notYet = [...unique].filter((id) => !counts.has(id));
if (notYet.length) console.log(`soak: not delivered: ${notYet.slice(0, 10).join(', ')}`);
const missing = [...unique].filter((id) => !counts.has(id));
const extra = [...counts.keys()].filter((id) => !unique.has(id));
const books = (await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json()).books;
const fiveXX = Object.entries(statuses).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0);
const capi = stack.meta.requests().filter((r) => r.method === 'POST');
console.log(`soak: Meta holds ${counts.size} unique events, ${twice.length} twice, ${missing.length} missing, ${extra.length} unknown`);
for (const [id] of twice.slice(0, 5)) {
  const copies = stack.meta.received().filter((e) => e.event_id === id).map((e) => `${e.fbtrace_id}`);
  const reqs = copies.map((t) => stack.meta.requests().findIndex((r) => r.trace === t));
  console.log(`soak: ${id} delivered in requests ${copies.join(', ')}; repeated by the client: ${sent.filter((e) => e.event_id === id).length > 1 || 'no'}`);
}
console.log(`soak: CAPI requests ${capi.length} (${capi.filter((r) => r.status !== 200).length} failed by the fake)`);
console.log(`soak: books ${JSON.stringify(books)}`);
const ok = twice.length === 0 && missing.length === 0 && extra.length === 0 && fiveXX === 0
  && books.accepted === unique.size && books.in_flight === 0 && books.accepted === books.delivered + books.dead_lettered;
console.log(`soak: ${ok ? 'PASS' : 'FAIL'} (5xx answers: ${fiveXX}${firstError ? `; first: ${firstError}` : ''})`);
clearTimeout(timer);
clearInterval(progress);
await stack.stop();
process.exit(ok ? 0 : 1);
