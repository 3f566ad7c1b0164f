// /collect under load: the worker in workerd (Miniflare, no wrangler dev proxy), real redis behind
// upstash-local, the Meta fake behind the queue; driven by autocannon. Reports throughput, latency,
// store round trips per accepted event (counted at the store), and CAPI requests per 1,000 events.

import autocannon from 'autocannon';
import { startStack, waitFor, TEST_SECRETS } from '../tests/support/stack.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONNECTIONS = Number(process.env.BENCH_CONCURRENCY || 16);
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };

export async function benchCollect() {
  const stack = await startStack({ vars: { RATE_LIMIT_PER_IP: '1000000', RATE_LIMIT_PER_SITE: '100000000' }, batchTimeout: 1 });
  try {
    let n = 0;
    const body = () => JSON.stringify({
      event_name: 'AddToCart',
      event_id: `bench-${process.pid}-${++n}`,
      event_source_url: 'https://shop.example/p/42?fbclid=AbC123',
      user_data: { em: 'Bench.User@Example.com', ph: '+44 20 7946 0958', fn: 'Zoë', ct: 'London', country: 'GB' },
      custom_data: { value: 19.9, currency: 'EUR', content_ids: ['sku-42'] },
    });
    const before = await stack.store.log();
    const result = await autocannon({
      url: `${stack.url}/collect`,
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [{ method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'autocannon bench' }, setupRequest: (req) => ({ ...req, body: body() }) }],
    });
    const after = await stack.store.log(before.last_seq);
    const books = (await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json()).books;
    const intakeTrips = after.entries.filter((e) => e.commands[0]?.[0] === 'EVAL').length;

    // A duplicate this isolate already claimed: zero round trips.
    const dupe = body();
    await fetch(`${stack.url}/collect`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'x' }, body: dupe });
    const mark = (await stack.store.log()).last_seq;
    const d = await (await fetch(`${stack.url}/collect`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'x' }, body: dupe })).json();
    // Intake round trips only (the consumer delivering the first copy meanwhile is not the intake).
    const dupTrips = (await stack.store.log(mark)).entries.filter((e) => e.commands.some((c) => c.some((a) => a.includes(':evt:')))).length;

    await waitFor(() => stack.meta.received().length >= books.accepted + 1, { ms: 120000, what: 'the queue to drain' });
    const capiRequests = stack.meta.requests().filter((r) => r.method === 'POST').length;
    const events = stack.meta.received().length;
    return {
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      requests: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors,
      accepted: books.accepted,
      intakeTripsPerEvent: intakeTrips / Math.max(1, books.accepted),
      storeLogTruncated: after.entries.length >= 10000,
      duplicateWasDuplicate: d.duplicates?.length === 1,
      dupTrips,
      capiPer1000: (capiRequests / Math.max(1, events)) * 1000,
      delivered: events,
    };
  } finally {
    await stack.stop();
  }
}

export function printCollect(r) {
  console.log(`\n/collect (workerd via Miniflare, real redis via upstash-local, ${CONNECTIONS} connections, ${SECONDS} s, autocannon)`);
  console.log(`  ${r.rps.toFixed(0)} req/s, p50 ${r.p50} ms, p99 ${r.p99} ms, ${r.requests} requests, non-2xx ${r.non2xx}, errors ${r.errors}`);
  console.log(`  store round trips per accepted event at intake: ${r.intakeTripsPerEvent.toFixed(3)} (goal ≤ 1)${r.storeLogTruncated ? ' [log truncated: lower bound]' : ''}`);
  console.log(`  store round trips for a duplicate this isolate already saw: ${r.dupTrips} (goal 0; answered as duplicate: ${r.duplicateWasDuplicate})`);
  console.log(`  Conversions API requests per 1,000 delivered events: ${r.capiPer1000.toFixed(1)} (${r.delivered} delivered)`);
}
