// A CPU profile of edgekeeper's isolate under workerd, while `/collect` is loaded as in
// benches/compare.mjs (direct at the worker's socket, no assets, the spy queue). V8's sampling
// profiler through the inspector (Chrome DevTools Protocol), self time summed per function.
//
//   KEEP_NAMES=1 bash tools/build-worker.sh   # with wasm-opt = false in Cargo.toml's wasm-pack
//                                             # metadata for that build: names survive only then
//   node benches/profile.mjs                  # PROFILE_SECONDS (8), PROFILE_TOP (45)
//
// Only the worker's isolate is sampled: workerd's own C++ (HTTP, kj, the queue broker in other
// isolates) shows in compare.mjs's /proc CPU, not here.

import { request } from 'undici';
import WebSocket from 'ws';
import { closedLoop } from './load.mjs';
import { HEADERS, traffic } from './compare.mjs';
import { startStack } from '../tests/support/stack.mjs';

const SECONDS = Number(process.env.PROFILE_SECONDS || 8);
const TOP = Number(process.env.PROFILE_TOP || 45);
const PORT = 9400 + Math.floor(Math.random() * 500);

const stack = await startStack({
  vars: { RATE_LIMIT_PER_IP: '1000000', RATE_LIMIT_PER_SITE: '100000000' }, spyQueue: true, logRequests: false,
  assets: false, direct: true, inspectorPort: PORT,
});
try {
  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json/list`)).json();
  const target = targets.find((t) => /edgekeeper/.test(t.title ?? t.id ?? '') || /edgekeeper/.test(t.webSocketDebuggerUrl)) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  let id = 0;
  const pending = new Map();
  ws.on('message', (d) => { const m = JSON.parse(d); if (pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id); } });
  const cdp = (method, params = {}) => new Promise((res) => { id += 1; pending.set(id, res); ws.send(JSON.stringify({ id, method, params })); });

  const gen = traffic(7);
  const load = (seconds) => closedLoop(async (agent) => {
    const item = gen.next();
    const r = await request(`${stack.url}/collect`, { method: 'POST', dispatcher: agent, headers: HEADERS, body: item.body });
    const body = JSON.parse(await r.body.text());
    if ((body.accepted ?? []).includes(item.id)) gen.accepted(item);
    return { status: r.statusCode };
  }, { concurrency: 16, seconds, warmup: 1 });
  await load(2); // warm: JIT tiers, the configuration, the store's scripts

  await cdp('Profiler.enable');
  await cdp('Profiler.setSamplingInterval', { interval: 100 });
  await cdp('Profiler.start');
  const r = await load(SECONDS);
  const { result } = await cdp('Profiler.stop');
  ws.close();

  const { nodes, samples, timeDeltas } = result.profile;
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const self = new Map();
  samples.forEach((s, i) => self.set(s, (self.get(s) ?? 0) + (timeDeltas[i] ?? 0)));
  const perFn = new Map();
  let total = 0;
  let idle = 0;
  for (const [nodeId, us] of self) {
    const f = byId.get(nodeId).callFrame;
    const name = `${f.functionName || '(anonymous)'}${f.url ? ` ${f.url.split('/').pop()}` : ''}`;
    if (f.functionName === '(idle)') { idle += us; continue; }
    total += us;
    perFn.set(name, (perFn.get(name) ?? 0) + us);
  }
  const requests = r.requests;
  console.log(`${requests} /collect requests in ${r.elapsed.toFixed(1)} s; isolate busy ${(total / 1000).toFixed(0)} ms = ${(total / requests).toFixed(1)} µs per request (idle ${(idle / 1000).toFixed(0)} ms)`);
  const cats = {};
  for (const [name, us] of perFn) {
    const cat = /\.wasm/.test(name) ? /dlmalloc|__rdl_|__rust_(alloc|dealloc|realloc)/.test(name) ? 'wasm: allocator' : 'wasm: edgekeeper' : / index\.js$/.test(name) ? 'JS glue (wasm-bindgen)' : name.startsWith('(') ? name : / \S+\.m?js$/.test(name) ? 'other JS' : 'runtime APIs (native)';
    cats[cat] = (cats[cat] ?? 0) + us;
  }
  for (const [cat, us] of Object.entries(cats).sort((a, b) => b[1] - a[1])) console.log(`${(us / requests).toFixed(1).padStart(7)} µs  ${((100 * us) / total).toFixed(1).padStart(5)} %  [${cat}]`);
  console.log('');
  const only = process.env.PROFILE_ONLY ? new RegExp(process.env.PROFILE_ONLY) : null;
  const rows = [...perFn].filter(([n]) => !only || only.test(n)).sort((a, b) => b[1] - a[1]).slice(0, TOP);
  for (const [name, us] of rows) console.log(`${(us / requests).toFixed(1).padStart(7)} µs  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${name.slice(0, 140)}`);
} finally {
  await stack.stop();
}
