// A small closed-loop load generator (keep-alive, fixed concurrency, fixed duration) so the bench
// needs nothing beyond Node: requests/s and latency percentiles for one target.

import { Agent, request } from 'undici';

export async function load(makeRequest, { concurrency = 32, seconds = 5, warmup = 1 } = {}) {
  const agent = new Agent({ connections: concurrency, pipelining: 1 });
  const latencies = [];
  let errors = 0;
  let statuses = {};
  const run = async (until, record) => {
    while (Date.now() < until) {
      const { url, ...opts } = makeRequest();
      const t0 = performance.now();
      try {
        const r = await request(url, { dispatcher: agent, ...opts });
        await r.body.arrayBuffer();
        if (record) {
          latencies.push(performance.now() - t0);
          statuses[r.statusCode] = (statuses[r.statusCode] ?? 0) + 1;
        }
      } catch {
        if (record) errors += 1;
      }
    }
  };
  const warmEnd = Date.now() + warmup * 1000;
  await Promise.all(Array.from({ length: concurrency }, () => run(warmEnd, false)));
  const start = Date.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, () => run(end, true)));
  const elapsed = (Date.now() - start) / 1000;
  await agent.close();
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] ?? NaN;
  return { requests: latencies.length, rps: latencies.length / elapsed, p50: pct(50), p99: pct(99), errors, statuses };
}

export const fmtLoad = (r) => `${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.requests} requests, ${r.errors} errors, statuses ${JSON.stringify(r.statuses)}`;
