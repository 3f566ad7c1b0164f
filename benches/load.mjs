// A small closed-loop load generator (keep-alive, fixed concurrency, fixed duration) so the bench
// needs nothing beyond Node: requests/s and latency percentiles for one target.

import { Agent, request } from 'undici';

/** The p-th percentile of sorted numbers (NaN when there are none). */
export const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/**
 * The loop itself: `concurrency` workers call `send(agent)` back to back, first for `warmup` seconds
 * (not recorded), then for `seconds`; `onResult(value)` sees each recorded answer. `afterWarmup` runs
 * between the two phases and `afterRun` after the second, before the agent closes (both may be async).
 */
export async function closedLoop(send, { concurrency = 32, seconds = 5, warmup = 1, onResult = () => {}, afterWarmup, afterRun } = {}) {
  const agent = new Agent({ connections: concurrency, pipelining: 1 });
  const latencies = [];
  let errors = 0;
  const run = async (until, record) => {
    while (Date.now() < until) {
      const t0 = performance.now();
      try {
        const value = await send(agent);
        if (record) {
          latencies.push(performance.now() - t0);
          onResult(value);
        }
      } catch {
        if (record) errors += 1;
      }
    }
  };
  const warmEnd = Date.now() + warmup * 1000;
  await Promise.all(Array.from({ length: concurrency }, () => run(warmEnd, false)));
  await afterWarmup?.();
  const start = Date.now();
  await Promise.all(Array.from({ length: concurrency }, () => run(start + seconds * 1000, true)));
  const elapsed = (Date.now() - start) / 1000;
  await afterRun?.();
  await agent.close();
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, elapsed, rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

export async function load(makeRequest, options = {}) {
  const statuses = {};
  const result = await closedLoop(async (agent) => {
    const { url, ...opts } = makeRequest();
    const r = await request(url, { dispatcher: agent, ...opts });
    await r.body.arrayBuffer();
    return r.statusCode;
  }, { ...options, onResult: (status) => { statuses[status] = (statuses[status] ?? 0) + 1; } });
  return { ...result, statuses };
}

export const fmtLoad = (r) => `${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.requests} requests, ${r.errors} errors, statuses ${JSON.stringify(r.statuses)}`;
