// edgekeeper against a JS baseline: the same /collect load on edgekeeper (the built wasm worker) and
// on benches/js-baseline/worker.js (the obvious JS worker a user would write: @upstash/redis,
// crypto.subtle, the EVENTS queue), one after the other, each alone on the machine:
//
// - each worker in its own workerd through Miniflare, loaded straight at its workerd socket (the
//   `ready` URL; no wrangler dev proxy), each with its own redis-server + upstash-local. edgekeeper
//   twice: as wrangler.toml configures it (startStack; [assets] with run_worker_first puts
//   Miniflare's asset router, JS workers in the same workerd, in front of it) and without the ASSETS
//   binding (`assets: false`), like the baseline. Miniflare's per-request log post from workerd to
//   node (`logRequests`) is off for all three: production has no such hop;
// - BENCH_CONCURRENCY (16) connections for BENCH_SECONDS (5) after BENCH_WARMUP (1) s; each request
//   one beacon-sized event (text/plain, as sendBeacon sends) with messy PII; BENCH_RESEND (10 %) of
//   the requests are exact re-sends of an event accepted earlier (same bytes, same event_id);
// - workerd CPU per request: utime + stime of that instance's workerd process (/proc/<pid>/stat,
//   all its threads). Miniflare spawns workerd straight from this node process (child_process.spawn
//   in its Runtime), so the pid is found by listing this process's children whose cmdline contains
//   `workerd` before the instance starts and after `ready`: exactly one new pid, or the bench stops.
//   Only one instance runs at a time. The process holds everything Miniflare runs for that instance
//   (its entry worker, the asset router, the queue, the queue consumer). The window opens after the
//   warm-up's events have left the queue and closes when the window's have: the consumer's work is
//   counted, however far it lags;
// - store requests and commands per accepted event: HTTP requests at upstash-local (its
//   /__control/log, polled each second; a pipeline or an EVAL is one request, and the commands it
//   carried are counted), and the commands redis itself executed (INFO commandstats: the commands
//   inside a Lua script counted, the EVAL itself not);
// - both queues go to a consumer that prints each message and acks (edgekeeper: stack.mjs's spy
//   worker; the baseline: its own queue() doing the same), and every accepted event_id must come out
//   of the queue exactly once: neither side may skip the queue;
// - the same for GET /health (a short separate load, BENCH_HEALTH_SECONDS, 2 s).
//
// `node benches/compare.mjs` runs it alone; benches/run.mjs (make bench) calls it last. Exits 1 if
// an accepted event is missing from a queue (or extra, or twice), on errors or unexpected answers.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { closedLoop } from './load.mjs';
import { ROOT, TEST_SECRETS, startStack, startRedis, startUpstashLocal, waitFor } from '../tests/support/stack.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONNECTIONS = Number(process.env.BENCH_CONCURRENCY || 16);
const WARMUP = Number(process.env.BENCH_WARMUP || 1);
const HEALTH_SECONDS = Number(process.env.BENCH_HEALTH_SECONDS || 2);
const RESEND = Number(process.env.BENCH_RESEND ?? 0.1);
const CLK_TCK = (() => { try { return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) || 100; } catch { return 100; } })();

// ---------------------------------------------------------------------------------------------
// workerd's CPU time

function stat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // "pid (comm) state ppid … utime stime …": fields after the comm's ")" start at field 3 (state).
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]) };
}

function workerdChildren() {
  const pids = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (stat(name).ppid !== process.pid) continue;
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('workerd')) pids.push(Number(name));
    } catch {} // gone meanwhile
  }
  return pids;
}

/** Runs `start()` and returns [its result, the pid of the workerd process it spawned]. */
async function withWorkerdPid(start) {
  const before = new Set(workerdChildren());
  const started = await start();
  const fresh = workerdChildren().filter((p) => !before.has(p));
  if (fresh.length !== 1) throw new Error(`expected one new workerd child, found ${JSON.stringify(fresh)}`);
  return [started, fresh[0]];
}

const cpuMs = (pid) => (stat(pid).ticks * 1000) / CLK_TCK;

// ---------------------------------------------------------------------------------------------
// The store: upstash-local's request log (polled, it keeps the last 10,000) and redis's commandstats

function redisCommandStats(port) {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n'));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', reject);
    sock.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\r\n');
      if (nl < 0) return;
      const len = Number(buf.slice(1, nl));
      if (Buffer.byteLength(buf) < nl + 2 + len) return;
      sock.destroy();
      const calls = {};
      for (const m of buf.matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) calls[m[1]] = Number(m[2]);
      resolve(calls);
    });
  });
}

function storeMeter(store, redisPort) {
  let seq = 0;
  let startSeq = 0;
  let entries = [];
  let calls0 = {};
  let polling = null;
  let chain = Promise.resolve();
  // One poll at a time, each asking for what came after the last one.
  const poll = () => (chain = chain.then(async () => {
    const r = await store.log(seq);
    entries.push(...r.entries.filter((e) => e.seq > seq));
    seq = Math.max(seq, r.last_seq);
  }));
  return {
    async start() {
      seq = (await store.log()).last_seq;
      startSeq = seq;
      entries = [];
      calls0 = await redisCommandStats(redisPort);
      polling = setInterval(() => poll().catch(() => {}), 1000);
    },
    async stop() {
      clearInterval(polling);
      await poll();
      const calls1 = await redisCommandStats(redisPort);
      const delta = {};
      for (const [cmd, n] of Object.entries(calls1)) if (!['info', 'eval', 'evalsha'].includes(cmd) && n - (calls0[cmd] ?? 0) > 0) delta[cmd] = n - (calls0[cmd] ?? 0);
      return {
        requests: seq - startSeq,
        logged: entries.length, // < requests: the log's ring dropped some between polls
        restCommands: entries.reduce((n, e) => n + e.commands.length, 0),
        endpoints: entries.reduce((o, e) => ({ ...o, [e.endpoint]: (o[e.endpoint] ?? 0) + 1 }), {}),
        redisCommands: Object.values(delta).reduce((a, b) => a + b, 0),
        redisByCommand: delta,
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The traffic: beacon-sized events with messy, real-looking personal data

function prng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ['Zoë', 'José', 'Åsa', 'Björn', 'François', 'Siobhán', 'Renée', 'Łukasz', 'Chloé', 'Mário', 'Jane', 'Ümit'];
const LAST = ['Müller', "O'Brien", 'Nuñez', 'Dvořák', 'García-López', 'Smith', 'Østergaard', 'Le Blanc', 'Kovačević', 'Roe'];
const DOMAINS = ['Example.COM', 'gmail.com', 'Yahoo.co.uk', 'web.de', 'Hotmail.FR'];
const PHONES = ['+1 (415) 555-%04d', '+44 20 7946 %04d', '0049 30 1234%04d', '+33 6 12 34 %04d', '(212) 555-%04d', '+49 (0)151 2345 %04d'];
const PLACES = [
  { ct: 'São Paulo', st: 'SP', zp: '01310-100', country: 'BR' },
  { ct: 'Zürich', st: 'ZH', zp: '8001', country: 'ch' },
  { ct: 'New York', st: ' ny ', zp: '10001-2345', country: 'US' },
  { ct: 'München', st: 'Bavaria', zp: '80331', country: ' DE ' },
  { ct: 'London', st: '', zp: 'SW1A 1AA', country: 'GB' },
  { ct: 'Montréal', st: 'Québec', zp: 'H2X 1Y4', country: 'Canada' },
];
const NAMES = [['ViewContent', 0.45], ['AddToCart', 0.25], ['InitiateCheckout', 0.12], ['Purchase', 0.08], ['Lead', 0.05], ['PageView', 0.05]];
const RUN = Date.now().toString(36);
// An address's local part as people have them: the name without accents (Zoë Müller: zoe.muller).
const ascii = (s) => s.normalize('NFD').replace(/[ØøŁł]/g, (c) => ({ Ø: 'O', ø: 'o', Ł: 'L', ł: 'l' })[c]).replace(/[^A-Za-z0-9.-]/g, '');

export function traffic(seed = 42) {
  const rand = prng(seed);
  const pick = (a) => a[Math.floor(rand() * a.length)];
  const messy = (s) => [...s].map((c) => (rand() < 0.3 ? c.toUpperCase() : c)).join('');
  let n = 0;
  const sent = []; // bodies answered "accepted": what a re-send repeats
  const fresh = () => {
    n += 1;
    let r = rand();
    const name = NAMES.find(([, p]) => (r -= p) < 0)?.[0] ?? 'ViewContent';
    const first = pick(FIRST);
    const last = pick(LAST);
    const place = pick(PLACES);
    const digits = String(Math.floor(rand() * 10000)).padStart(4, '0');
    const ev = {
      event_name: name,
      event_id: `cmp-${RUN}-${n}`,
      event_time: Math.floor(Date.now() / 1000) - Math.floor(rand() * 30),
      action_source: 'website',
      event_source_url: `https://shop.example/products/${100 + Math.floor(rand() * 900)}?utm_source=facebook&fbclid=IwAR${Math.floor(rand() * 1e12).toString(36)}`,
      user_data: {
        em: `${rand() < 0.5 ? ' ' : ''}${messy(ascii(`${first}.${last}`))}${Math.floor(rand() * 100)}@${pick(DOMAINS)}${rand() < 0.5 ? ' ' : ''}`,
        ph: pick(PHONES).replace('%04d', digits),
        fn: rand() < 0.5 ? ` ${first.toUpperCase()} ` : first,
        ln: last,
        ...place,
        external_id: ` CUST-${String(n).padStart(6, '0')} `,
      },
    };
    if (name !== 'ViewContent' && name !== 'PageView') {
      ev.custom_data = { value: Math.round(rand() * 20000) / 100, currency: pick(['EUR', 'USD', 'GBP']), content_ids: [`sku-${Math.floor(rand() * 1000)}`], content_type: 'product' };
    }
    return { id: ev.event_id, body: JSON.stringify(ev), resend: false };
  };
  return {
    next: () => (sent.length > 0 && rand() < RESEND ? { ...pick(sent), resend: true } : fresh()),
    accepted: (item) => { if (!item.resend) sent.push(item); },
  };
}

export const HEADERS = {
  'content-type': 'text/plain;charset=UTF-8',
  origin: 'https://shop.example',
  referer: 'https://shop.example/products/42',
  'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'accept-language': 'de-CH,de;q=0.9,en;q=0.8',
};

// ---------------------------------------------------------------------------------------------
// The load: benches/load.mjs's closed loop, keeping the answers

async function runLoad(send, { seconds, warmup, meter, pid, drained = () => true }) {
  const w = { statuses: {}, accepted: 0, duplicates: 0, rejected: 0, unexpected: 0 };
  let drainTimedOut = false;
  const drain = () => waitFor(drained, { ms: 60000, every: 50, what: 'the queue consumer to catch up' }).catch(() => { drainTimedOut = true; });
  let cpu0 = 0;
  let cpu1 = 0;
  let runEnd = 0;
  let drainMs = 0;
  let store;
  const r = await closedLoop(send, {
    concurrency: CONNECTIONS,
    seconds,
    warmup,
    onResult: (out) => {
      w.statuses[out.status] = (w.statuses[out.status] ?? 0) + 1;
      w.accepted += out.accepted ?? 0;
      w.duplicates += out.duplicates ?? 0;
      w.rejected += out.rejected ?? 0;
      w.unexpected += out.unexpected ? 1 : 0;
    },
    afterWarmup: async () => {
      await drain(); // the warm-up's queue work is not in the window
      await meter?.start();
      cpu0 = cpuMs(pid);
    },
    afterRun: async () => {
      // The CPU window closes when the consumer has had every event the window accepted: the
      // queue's work is part of the cost, and a consumer lagging behind must not make a worker
      // look cheaper.
      runEnd = Date.now();
      await drain();
      drainMs = Date.now() - runEnd;
      cpu1 = cpuMs(pid);
      store = await meter?.stop();
    },
  });
  return {
    ...r, ...w, drainMs, drainTimedOut, store,
    acceptedPerSec: w.accepted / r.elapsed,
    cpuMs: cpu1 - cpu0,
    cpuPerRequest: (cpu1 - cpu0) / Math.max(1, r.requests),
  };
}

/** Loads one worker: /collect, then /health; then checks its queue. */
async function measure({ url, pid, store, redisPort, spyLines, queuedId }) {
  const gen = traffic();
  const acceptedIds = new Set();
  const received = () => spyLines.filter((l) => l.startsWith('SPY '));
  let seen = 0; // SPY lines counted so far (the log only grows)
  const drained = () => {
    for (; seen < spyLines.length; seen += 1) if (spyLines[seen].startsWith('SPY ')) drained.n = (drained.n ?? 0) + 1;
    return (drained.n ?? 0) >= acceptedIds.size;
  };
  const collect = await runLoad(async (agent) => {
    const item = gen.next();
    const r = await request(`${url}/collect`, { method: 'POST', dispatcher: agent, headers: HEADERS, body: item.body });
    const text = await r.body.text();
    let body = {};
    try { body = JSON.parse(text); } catch {}
    const accepted = body.accepted ?? [];
    for (const id of accepted) acceptedIds.add(id);
    if (accepted.includes(item.id)) gen.accepted(item);
    const ok = item.resend ? (body.duplicates ?? []).includes(item.id) : accepted.includes(item.id);
    return { status: r.statusCode, accepted: accepted.length, duplicates: body.duplicates?.length ?? 0, rejected: body.rejected?.length ?? 0, unexpected: !ok };
  }, { seconds: SECONDS, warmup: WARMUP, meter: storeMeter(store, redisPort), pid, drained });

  const health = await runLoad(async (agent) => {
    const r = await request(`${url}/health`, { dispatcher: agent, headers: { 'user-agent': HEADERS['user-agent'] } });
    await r.body.text();
    return { status: r.statusCode };
  }, { seconds: HEALTH_SECONDS, warmup: 0.5, meter: storeMeter(store, redisPort), pid });

  // Every accepted event out of the queue, once; nothing else.
  await new Promise((r) => setTimeout(r, 1500)); // anything extra still on its way
  const messages = received().map((l) => JSON.parse(l.slice(4)));
  const ids = messages.map(queuedId);
  const unique = new Set(ids);
  const queue = {
    accepted: acceptedIds.size,
    received: ids.length,
    missing: [...acceptedIds].filter((id) => !unique.has(id)).length,
    extra: [...unique].filter((id) => !acceptedIds.has(id)).length,
    twice: ids.length - unique.size,
  };
  return { collect, health, queue, messages };
}

// ---------------------------------------------------------------------------------------------
// The workers: edgekeeper (as deployed, and direct), the JS baseline, the floor

async function bundle(dir) {
  const { build } = await import('esbuild');
  const outfile = join(ROOT, `target/${dir}/worker.mjs`);
  mkdirSync(join(ROOT, `target/${dir}`), { recursive: true });
  // What wrangler does with a worker: one ES module, workerd's export conditions, not minified.
  await build({
    entryPoints: [join(ROOT, `benches/${dir}/worker.js`)],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'], outfile, logLevel: 'warning',
  });
  return outfile;
}

/** A JS worker of benches/ (`dir`: js-baseline, js-floor) in its own Miniflare, loaded at its own socket. */
async function startJsWorker(dir, { store }) {
  const { Miniflare, Log, LogLevel } = await import('miniflare');
  const scriptPath = await bundle(dir);
  const compatibilityDate = readFileSync(join(ROOT, 'benches/js-baseline/wrangler.toml'), 'utf8').match(/compatibility_date = "([^"]+)"/)[1];
  const logs = [];
  class CapturingLog extends Log { log(message) { logs.push(message); } } // as stack.mjs's startWorker
  const mf = new Miniflare({
    workers: [{
      name: dir,
      modules: true,
      scriptPath,
      compatibilityDate,
      bindings: { UPSTASH_REDIS_REST_URL: store.url, UPSTASH_REDIS_REST_TOKEN: store.token, RATE_LIMIT_PER_MINUTE: '100000000' },
      queueProducers: { EVENTS: { queueName: `${dir}-events` } },
      // The same consumer settings as stack.mjs's spy for edgekeeper.
      queueConsumers: { [`${dir}-events`]: { maxBatchTimeout: 1 } },
      // Its own workerd socket, past Miniflare's entry worker (as edgekeeper's `direct` below).
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    }],
    host: '127.0.0.1',
    port: 0,
    cf: false,
    logRequests: false, // as for edgekeeper below: no per-request log post from workerd to node
    log: new CapturingLog(LogLevel.DEBUG),
    handleRuntimeStdio(stdout, stderr) {
      for (const s of [stdout, stderr]) createInterface({ input: s }).on('line', (l) => logs.push(l));
    },
  });
  await mf.ready;
  const url = (await mf.unsafeGetDirectURL(dir)).toString().replace(/\/$/, '');
  return { url, logs, stop: () => mf.dispose() };
}

export async function benchCompare() {
  const results = {};

  // edgekeeper: the stack of the tests (its own redis + upstash-local + Meta fake), rate limits far
  // above the load, the queue to the spy consumer (delivery to Meta is not what is compared).
  // `edgekeeper`: as wrangler.toml deploys it, with [assets] (Miniflare then puts its asset router,
  // JS workers in the same workerd, in front: run_worker_first); `edgekeeperNoAssets` ("ek direct"):
  // without the ASSETS binding and loaded at its own workerd socket, like the baseline and the floor.
  // Miniflare's per-request log post to node is off for all.
  for (const [name, opts] of [['edgekeeper', {}], ['edgekeeperNoAssets', { assets: false, direct: true }]]) {
    const [stack, pid] = await withWorkerdPid(() => startStack({
      vars: { RATE_LIMIT_PER_IP: '1000000', RATE_LIMIT_PER_SITE: '100000000' }, spyQueue: true, logRequests: false, ...opts,
    }));
    try {
      results[name] = await measure({
        url: stack.url, pid, store: stack.store, redisPort: stack.redis.port, spyLines: stack.worker.logs,
        queuedId: (m) => m.event?.event_id,
      });
    } finally {
      await stack.stop();
    }
  }

  // The JS baseline, then the floor: each with its own redis + upstash-local, its own Miniflare.
  for (const [name, dir] of [['js', 'js-baseline'], ['floor', 'js-floor']]) {
    const redis = await startRedis();
    const store = await startUpstashLocal({ redisPort: redis.port, token: TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN });
    try {
      const [worker, pid] = await withWorkerdPid(() => startJsWorker(dir, { store }));
      try {
        results[name] = await measure({ url: worker.url, pid, store, redisPort: redis.port, spyLines: worker.logs, queuedId: (m) => m.event_id });
      } finally {
        await worker.stop();
      }
    } finally {
      await store.stop();
      await redis.destroy();
    }
  }

  // Same inputs, same hashes? Per user_data key, for the events both queued.
  const one = (v) => (Array.isArray(v) ? v[0] : v);
  const ekById = new Map(results.edgekeeper.messages.map((m) => [m.event.event_id, m.event.user_data]));
  const parity = { common: 0 };
  for (const m of results.js.messages) {
    const ek = ekById.get(m.event_id);
    if (!ek) continue;
    parity.common += 1;
    for (const k of USER_DATA_KEYS) {
      if (one(ek[k]) === m.user_data[k]) parity[k] = (parity[k] ?? 0) + 1;
    }
  }
  results.parity = parity;
  for (const r of [results.edgekeeper, results.edgekeeperNoAssets, results.js, results.floor]) delete r.messages;
  return results;
}

const USER_DATA_KEYS = ['em', 'ph', 'fn', 'ln', 'ct', 'st', 'zp', 'country', 'external_id'];

export function printCompare(res) {
  const sides = [res.edgekeeper, res.edgekeeperNoAssets, res.js, res.floor];
  const f = (n, d = 1) => (Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : 'n/a');
  const each = (fn) => sides.map(fn);
  const ratios = (fn, d = 2) => [res.edgekeeper, res.edgekeeperNoAssets, res.floor].map((r) => f(fn(r) / fn(res.js), d));
  const perAcc = (k) => (r) => r.collect.store[k] / Math.max(1, r.collect.accepted);
  const rows = [
    ['/collect requests/s', ...each((r) => f(r.collect.rps, 0)), ...ratios((r) => r.collect.rps)],
    ['/collect accepted events/s', ...each((r) => f(r.collect.acceptedPerSec, 0)), ...ratios((r) => r.collect.acceptedPerSec)],
    ['latency p50 / p99 (ms)', ...each((r) => `${f(r.collect.p50)} / ${f(r.collect.p99)}`), '', '', ''],
    ['workerd CPU per request (ms)', ...each((r) => f(r.collect.cpuPerRequest, 3)), ...ratios((r) => r.collect.cpuPerRequest)],
    ['store requests per accepted event', ...each((r) => f(perAcc('requests')(r), 3)), '', '', ''],
    ['  commands in them', ...each((r) => f(perAcc('restCommands')(r), 3)), '', '', ''],
    ['  redis commands run (Lua included)', ...each((r) => f(perAcc('redisCommands')(r), 3)), '', '', ''],
    ['requests / accepted / dup / rejected', ...each((r) => `${r.collect.requests}/${r.collect.accepted}/${r.collect.duplicates}/${r.collect.rejected}`), '', '', ''],
    ['unexpected answers, errors', ...each((r) => `${r.collect.unexpected}, ${r.collect.errors}`), '', '', ''],
    ['queue: accepted -> received', ...each((r) => `${r.queue.accepted} -> ${r.queue.received}`), '', '', ''],
    ['  missing, extra, twice', ...each((r) => `${r.queue.missing}, ${r.queue.extra}, ${r.queue.twice}`), '', '', ''],
    ['/health requests/s', ...each((r) => f(r.health.rps, 0)), ...ratios((r) => r.health.rps)],
    ['/health p50 / p99 (ms)', ...each((r) => `${f(r.health.p50)} / ${f(r.health.p99)}`), '', '', ''],
    ['/health workerd CPU per request (ms)', ...each((r) => f(r.health.cpuPerRequest, 3)), ...ratios((r) => r.health.cpuPerRequest)],
    ['/health store requests per request', ...each((r) => f(r.health.store.requests / Math.max(1, r.health.requests), 3)), '', '', ''],
  ];
  const head = ['', 'edgekeeper', 'ek direct', 'JS direct', 'floor direct', 'ek/JS', 'ek direct/JS', 'floor/JS'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => `  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')}`;
  console.log(`\nedgekeeper against the JS baseline (benches/js-baseline/worker.js) and the floor (benches/js-floor/worker.js): each in its own workerd via Miniflare, own redis + upstash-local`);
  console.log(`  edgekeeper: as deployed (Miniflare's entry worker and asset router in front); direct: no ASSETS binding, loaded at the worker's own workerd socket (unsafeDirectSockets), as a request reaches a deployed worker`);
  console.log(`  ${CONNECTIONS} connections, ${SECONDS} s after ${WARMUP} s warm-up; one beacon-sized event per request, ${Math.round(RESEND * 100)} % exact re-sends; /health ${HEALTH_SECONDS} s; CPU window: measured load + queue drain`);
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  const names = ['edgekeeper', 'ek direct', 'JS', 'floor'];
  sides.forEach((r, i) => {
    console.log(`  ${names[i]}: statuses ${JSON.stringify({ collect: r.collect.statuses, health: r.health.statuses })}, redis ${JSON.stringify(r.collect.store.redisByCommand)}, store endpoints ${JSON.stringify(r.collect.store.endpoints)}, queue drained ${f(r.collect.drainMs, 0)} ms after the window`);
    if (r.collect.store.logged < r.collect.store.requests) console.log(`  [${names[i]}: store log dropped ${r.collect.store.requests - r.collect.store.logged} entries: commands in them are a lower bound]`);
  });
  console.log(`  same hash for the same input, of ${res.parity.common} events both queued (the normalisation rules differ): ${USER_DATA_KEYS.map((k) => `${k} ${res.parity[k] ?? 0}`).join(', ')}`);
  const [acc, accDirect, accFloor] = ratios((r) => r.collect.acceptedPerSec);
  const [cpu, cpuDirect, cpuFloor] = ratios((r) => r.collect.cpuPerRequest);
  console.log(`  edgekeeper/JS: ${accDirect} × the accepted events/s at ${cpuDirect} × the workerd CPU per /collect (as deployed: ${acc} × at ${cpu} ×); the floor, which does only the I/O: ${accFloor} × at ${cpuFloor} ×`);
  const bad = sides.some((r) => r.queue.missing || r.queue.extra || r.queue.twice || r.collect.errors || r.collect.unexpected || r.collect.drainTimedOut);
  if (bad) {
    console.log('  CHECK FAILED: an accepted event missing from a queue, an extra or twice, an error, or an unexpected answer');
    process.exitCode = 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printCompare(await benchCompare());
}
