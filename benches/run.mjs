// `make bench`: figures anyone can rerun. For now the release wasm's size, raw and gzip, against
// Cloudflare's limits and this project's own budget (size is cold-start time).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, startWorker } from '../tests/support/stack.mjs';
import { startLayerFightOrigin } from '../tests/fakes/layer-fight-origin.mjs';
import { load, fmtLoad } from './load.mjs';
import { benchCollect, printCollect } from './collect.mjs';

const KB = 1024;
const BUDGET_GZIP = 350 * KB; // ours
// Cloudflare's published script limits: long 3 MB free / 10 MB paid compressed; since 2026 a single
// 64 MiB uncompressed limit (workers-sdk#14001). Both are far; our own budget is the one that bites.
const CF_LIMITS = { 'free, compressed': 3 * KB * KB, 'paid, compressed': 10 * KB * KB, '2026, uncompressed': 64 * KB * KB };

execFileSync('bash', ['tools/build-worker.sh'], { cwd: ROOT, stdio: 'pipe' });
const wasm = readFileSync(join(ROOT, 'build/index_bg.wasm'));
const js = readFileSync(join(ROOT, 'build/index.js'));
const gz = gzipSync(wasm, { level: 9 }).length;
const fmt = (n) => `${(n / KB).toFixed(1)} KB`;

console.log('wasm size (release, build/index_bg.wasm)');
console.log(`  raw   ${fmt(wasm.length)}`);
console.log(`  gzip  ${fmt(gz)}   budget ${fmt(BUDGET_GZIP)} -> ${gz <= BUDGET_GZIP ? 'within' : 'OVER'} (${((gz / BUDGET_GZIP) * 100).toFixed(0)}%)`);
console.log(`  js glue ${fmt(js.length)} raw, ${fmt(gzipSync(js, { level: 9 }).length)} gzip`);
for (const [plan, limit] of Object.entries(CF_LIMITS)) {
  const used = plan.includes('uncompressed') ? wasm.length + js.length : gz;
  console.log(`  Cloudflare limit (${plan}) ${fmt(limit)}: ${((used / limit) * 100).toFixed(1)}% used`);
}
if (gz > BUDGET_GZIP) process.exitCode = 1;

// Proxy overhead of the cache policy: the same worker in front of the same origin, once with the
// policy deciding and rewriting headers, once with CACHE_POLICY=off (headers passed untouched).
const SECONDS = Number(process.env.BENCH_SECONDS || 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY || 16);
const origin = await startLayerFightOrigin();
const paths = ['/products/42', '/assets/app.3f9a1c2b.js', '/img/logo.png', '/api/cart'];
const results = {};
for (const mode of ['on', 'off']) {
  const w = await startWorker({ vars: { ORIGIN_URL: origin.url, CACHE_POLICY: mode } });
  let i = 0;
  results[mode] = await load(() => ({ url: `${w.url}${paths[i++ % paths.length]}`, headers: { accept: 'text/html' } }), { concurrency: CONCURRENCY, seconds: SECONDS });
  await w.stop();
}
await origin.close();
console.log(`\nproxy through the cache policy (workerd via Miniflare, local origin, ${CONCURRENCY} connections, ${SECONDS} s each)`);
console.log(`  policy on   ${fmtLoad(results.on)}`);
console.log(`  policy off  ${fmtLoad(results.off)}`);
console.log(`  throughput ratio on/off: ${(results.on.rps / results.off.rps).toFixed(3)}`);

printCollect(await benchCollect());

// Native cost per event of validate + normalise + hash + serialise (criterion, release build).
console.log('\nnative intake cost per event (criterion: cargo bench --bench intake)');
const crit = execFileSync('cargo', ['bench', '--bench', 'intake', '--', '--noplot'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
for (const line of crit.split('\n').filter((l) => /time:|^intake/.test(l))) console.log(`  ${line.trim()}`);
