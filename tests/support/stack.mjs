// Test stack: a real redis-server, the real upstash-local in front of it, the fakes, and the built
// worker running in workerd through Miniflare, configured from wrangler.toml exactly as deployed
// (plus per-test vars). Every process listens on a free loopback port and is stopped by `stop()`.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitForPort(port, ms = 10000) {
  const { connect } = await import('node:net');
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((r) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listening on ${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Spawns a command and resolves with the first stdout line matching `pattern`. */
function spawnWithBanner(cmd, args, pattern, opts = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', rej);
    child.on('exit', (code) => rej(new Error(`${cmd} exited with ${code}: ${stderr}`)));
    const rl = createInterface({ input: child.stdout });
    rl.on('line', (line) => {
      const m = line.match(pattern);
      if (m) res({ child, match: m });
    });
  });
}

function kill(child) {
  return new Promise((r) => {
    if (!child || child.exitCode !== null || child.signalCode) return r();
    child.removeAllListeners('exit');
    child.once('exit', () => r());
    child.kill('SIGTERM');
    setTimeout(() => { try { child.kill('SIGKILL'); } catch {} }, 3000).unref();
  });
}

/** A real redis-server on a free port. `persistent`: an append-only file, so a restart keeps the data. */
export async function startRedis({ persistent = false } = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ek-redis-'));
  let child;
  const durability = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...durability, '--dir', dir], { stdio: 'ignore' });
    child.on('error', (e) => { throw new Error(`redis-server: ${e.message} (apt install redis-server)`); });
    await waitForPort(port);
  };
  await start();
  return {
    port,
    stop: () => kill(child),
    start,
    async restart() { await kill(child); await start(); },
    async destroy() { await kill(child); rmSync(dir, { recursive: true, force: true }); },
  };
}

export async function startUpstashLocal({ redisPort, token }) {
  const bin = process.env.UPSTASH_LOCAL_BIN || join(ROOT, 'target/debug/upstash-local');
  const { child, match } = await spawnWithBanner(
    bin,
    ['--listen', '127.0.0.1:0', '--redis', `127.0.0.1:${redisPort}`, '--token', token],
    /listening on (http:\/\/\S+)/,
  );
  const url = match[1];
  const control = async (method, path, body) => {
    const r = await fetch(url + path, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return r.json();
  };
  return {
    url,
    token,
    stop: () => kill(child),
    setFaults: (f) => control('POST', '/__control/faults', f),
    clearFaults: () => control('DELETE', '/__control/faults'),
    log: async (since = 0) => (await control('GET', `/__control/log?since=${since}`)).result,
  };
}

/** The built worker (build/) in workerd, configured from wrangler.toml plus `vars`. */
/**
 * The built worker (build/) in workerd, configured from wrangler.toml plus `vars`.
 * Options for tests: `batchTimeout` (seconds the queue gathers a batch), `maxRetries` (the main
 * queue's), `dlqMaxRetries` (the dead-letter queue's), `queue: false` (no EVENTS binding: every send
 * fails), `spyQueue: true` (EVENTS goes
 * to a spy worker that prints each message body as `SPY <json>` in the logs instead of to delivery).
 * For benches: `assets: false` (no ASSETS binding, so no asset router in front of the worker) and
 * `logRequests: false` (Miniflare's entry worker does not post a log line to node per request), and
 * `direct: true` (`url` is the worker's own workerd socket, past Miniflare's entry worker, as a
 * request reaches a deployed worker; only without assets, whose router would be skipped too);
 * `inspectorPort` (V8's inspector, for benches/profile.mjs).
 */
export async function startWorker({ vars = {}, log = false, batchTimeout = 1, maxRetries, dlqMaxRetries, queue = true, spyQueue = false, assets = true, logRequests = true, direct = false, inspectorPort } = {}) {
  const { Miniflare, Log, LogLevel } = await import('miniflare');
  const { unstable_getMiniflareWorkerOptions, unstable_readConfig } = await import('wrangler');
  const configPath = join(ROOT, 'wrangler.toml');
  const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
  // Only wrangler.toml's [vars]: a developer's .dev.vars must not change what tests see.
  const tomlVars = unstable_readConfig({ config: configPath }).vars ?? {};
  const logs = [];
  class CapturingLog extends Log {
    log(message) { logs.push(message); if (log) super.log(message); }
  }
  let queueProducers = workerOptions.queueProducers;
  if (!queue) queueProducers = {};
  if (spyQueue) queueProducers = { EVENTS: { queueName: 'edgekeeper-spy' } };
  const edgekeeper = {
    ...workerOptions,
    name: 'edgekeeper',
    modules: true,
    scriptPath: main,
    // worker-build's shim imports ../index.js (an ES module) and the wasm beside it.
    modulesRoot: join(ROOT, 'build'),
    modulesRules: [{ type: 'ESModule', include: ['**/*.js', '**/*.mjs'] }, ...(workerOptions.modulesRules ?? [])],
    bindings: { ...tomlVars, ...vars },
    queueProducers,
    // Tests wait less for the queue to gather a batch than production does.
    queueConsumers: Object.fromEntries(
      Object.entries(workerOptions.queueConsumers ?? {}).map(([q, c]) => [
        q,
        { ...c, maxBatchTimeout: batchTimeout, ...(maxRetries !== undefined && !q.endsWith('-dlq') ? { maxRetries } : {}),
          ...(dlqMaxRetries !== undefined && q.endsWith('-dlq') ? { maxRetries: dlqMaxRetries } : {}) },
      ]),
    ),
  };
  if (!assets) delete edgekeeper.assets;
  if (direct) {
    if (assets) throw new Error('direct: true skips the asset router; use it with assets: false');
    edgekeeper.unsafeDirectSockets = [{ host: '127.0.0.1', port: 0 }];
  }
  const spy = {
    name: 'spy',
    modules: true,
    script: 'export default { async queue(batch) { for (const m of batch.messages) { console.log("SPY " + (typeof m.body === "string" ? m.body : JSON.stringify(m.body))); m.ack(); } } }',
    queueConsumers: { 'edgekeeper-spy': { maxBatchTimeout: 1 } },
  };
  const mf = new Miniflare({
    workers: spyQueue ? [edgekeeper, spy] : [edgekeeper],
    host: '127.0.0.1',
    port: 0,
    log: new CapturingLog(LogLevel.DEBUG),
    // No network here: skip fetching the real `request.cf` object.
    cf: false,
    logRequests,
    ...(inspectorPort ? { inspectorPort } : {}),
    // The worker's console output: kept so tests can scan it (for leaks, for events).
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        createInterface({ input: stream }).on('line', (line) => {
          logs.push(line);
          if (log) console.log(line);
        });
      }
    },
  });
  const entry = (await mf.ready).toString().replace(/\/$/, '');
  const url = direct ? (await mf.unsafeGetDirectURL('edgekeeper')).toString().replace(/\/$/, '') : entry;
  return { mf, url, logs, stop: () => mf.dispose() };
}

export const TEST_SECRETS = {
  UPSTASH_REDIS_REST_TOKEN: 'test-upstash-token-5f0c7e',
  META_ACCESS_TOKEN: 'test-meta-token-a81b2d',
  CLOUDFLARE_API_TOKEN: 'test-cloudflare-token-33c9e1',
  ADMIN_TOKEN: 'test-admin-token-9d2e4f6a8b',
};

/**
 * redis + upstash-local + the Meta fake + worker, wired together; `vars` override settings.
 * `shop: true` also starts the demo shop origin (tools/demo-origin.mjs over build/shop/) first and
 * points ORIGIN_URL at it (unless `vars` sets ORIGIN_URL); `stack.shop` is it.
 */
export async function startStack({ vars = {}, meta: metaOptions = {}, persistentRedis = false, shop: withShop = false, ...workerOptions } = {}) {
  const { startMetaFake } = await import('../fakes/meta-graph.mjs');
  let shop = null;
  if (withShop) {
    const { startDemoOrigin } = await import('../../tools/demo-origin.mjs');
    shop = await startDemoOrigin();
  }
  const redis = await startRedis({ persistent: persistentRedis });
  const store = await startUpstashLocal({ redisPort: redis.port, token: TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN });
  const meta = await startMetaFake({ accessToken: TEST_SECRETS.META_ACCESS_TOKEN, ...metaOptions });
  const stackVars = {
    CAPI_BASE_URL: meta.url,
    ALLOWED_ORIGINS: 'https://shop.example',
    UPSTASH_REDIS_REST_URL: store.url,
    UPSTASH_REDIS_REST_TOKEN: TEST_SECRETS.UPSTASH_REDIS_REST_TOKEN,
    META_PIXEL_ID: '1234567890',
    META_ACCESS_TOKEN: TEST_SECRETS.META_ACCESS_TOKEN,
    CLOUDFLARE_API_TOKEN: TEST_SECRETS.CLOUDFLARE_API_TOKEN,
    CLOUDFLARE_ZONE_ID: '0123456789abcdef0123456789abcdef',
    ADMIN_TOKEN: TEST_SECRETS.ADMIN_TOKEN,
    ...(shop ? { ORIGIN_URL: shop.url } : {}),
    ...vars,
  };
  const worker = await startWorker({ ...workerOptions, vars: stackVars });
  const stack = {
    vars: stackVars,
    redis,
    store,
    meta,
    worker,
    shop,
    url: worker.url,
    async stop() {
      await worker.stop();
      await meta.close();
      await store.stop();
      await redis.destroy();
      await shop?.close();
    },
  };
  return stack;
}

/** Polls `fn` until it returns a truthy value (returned) or `ms` pass (throws with `what`). */
export async function waitFor(fn, { ms = 15000, every = 100, what = 'condition' } = {}) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

let seq = 0;
/** A fresh, valid browser event. */
export function event(name = 'ViewContent', extra = {}) {
  seq += 1;
  const base = {
    event_name: name,
    event_id: `evt-${process.pid}-${Date.now()}-${seq}`,
    event_source_url: 'https://shop.example/products/42',
    user_data: { em: ' Jane.Roe@Example.COM ', ph: '+44 (0)20 7946 0958' },
  };
  if (name === 'Purchase') base.custom_data = { value: 49.5, currency: 'EUR', content_ids: ['sku-42'] };
  return { ...base, ...extra };
}

export async function collect(url, body, { headers = {}, raw = false } = {}) {
  const r = await fetch(`${url}/collect`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'Mozilla/5.0 (edgekeeper tests)', ...headers },
    body: raw ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = { unparsed: text }; }
  return { status: r.status, headers: r.headers, body: json };
}
