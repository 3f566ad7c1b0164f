// `make bench`: figures anyone can rerun. For now the release wasm's size, raw and gzip, against
// Cloudflare's limits and this project's own budget (size is cold-start time).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT } from '../tests/support/stack.mjs';

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
