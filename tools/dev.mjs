// `make dev`: the whole stack offline. redis-server, upstash-local in front of it, the Meta and
// Cloudflare API fakes, the demo shop as the origin (tools/demo-origin.mjs over build/shop/ on
// http://127.0.0.1:8788, DEV_SHOP_PORT), then `wrangler dev` on http://127.0.0.1:8787: the worker with
// its /__edgekeeper/ assets (build/edge/) in front of that origin (ORIGIN_URL). Settings come from
// .dev.vars (copied from .dev.vars.example on first run); an ORIGIN_URL there puts the worker in front
// of that origin instead, and the demo shop is not started. Ctrl-C stops everything started here.

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/support/stack.mjs';

const varsPath = join(ROOT, '.dev.vars');
if (!existsSync(varsPath)) {
  copyFileSync(join(ROOT, '.dev.vars.example'), varsPath);
  console.log('dev: created .dev.vars from .dev.vars.example');
}
const vars = Object.fromEntries(
  readFileSync(varsPath, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/^"|"$/g, '')]),
);
const portOf = (url, fallback) => (url ? new URL(url).port || fallback : fallback);
const REDIS_PORT = process.env.DEV_REDIS_PORT || '6380';
const SHOP_PORT = process.env.DEV_SHOP_PORT || '8788';
const ORIGIN_URL = vars.ORIGIN_URL || `http://127.0.0.1:${SHOP_PORT}`;

const children = [];
function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT, ...opts });
  for (const s of [child.stdout, child.stderr]) {
    s.on('data', (d) => {
      for (const line of d.toString().split('\n')) if (line.trim()) console.log(`[${name}] ${line}`);
    });
  }
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`dev: ${name} exited (${signal || code}); stopping everything`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const c of children.reverse()) if (c.exitCode === null) c.kill('SIGTERM');
  setTimeout(() => process.exit(code), 1500).unref();
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

const dataDir = join(ROOT, '.wrangler', 'redis');
mkdirSync(dataDir, { recursive: true });
start('redis', 'redis-server', ['--port', REDIS_PORT, '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes']);
start('upstash-local', join(ROOT, 'target/debug/upstash-local'), [
  '--listen', `127.0.0.1:${portOf(vars.UPSTASH_REDIS_REST_URL, '8079')}`,
  '--redis', `127.0.0.1:${REDIS_PORT}`,
  '--token', vars.UPSTASH_REDIS_REST_TOKEN || 'local-dev-token',
]);
if (existsSync(join(ROOT, 'tests/fakes/meta-graph.mjs'))) {
  start('meta-fake', process.execPath, ['tests/fakes/meta-graph.mjs', '--port', portOf(vars.CAPI_BASE_URL, '8081'), '--token', vars.META_ACCESS_TOKEN || '']);
}
if (existsSync(join(ROOT, 'tests/fakes/cloudflare-api.mjs'))) {
  start('cloudflare-fake', process.execPath, [
    'tests/fakes/cloudflare-api.mjs', '--port', portOf(vars.CLOUDFLARE_API_BASE, '8082'),
    '--token', vars.CLOUDFLARE_API_TOKEN || '', '--zone', vars.CLOUDFLARE_ZONE_ID || '',
  ]);
}
if (!vars.ORIGIN_URL) start('demo-shop', process.execPath, ['tools/demo-origin.mjs', '--port', SHOP_PORT]);
start('wrangler', join(ROOT, 'node_modules/.bin/wrangler'), [
  'dev', '--ip', '127.0.0.1', '--port', '8787', '--show-interactive-dev-session=false', '--var', `ORIGIN_URL:${ORIGIN_URL}`,
], {
  env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
});
const shopNote = vars.ORIGIN_URL ? `your origin ${ORIGIN_URL} (ORIGIN_URL in .dev.vars)` : `the demo shop, origin ${ORIGIN_URL}`;
console.log([
  'dev: http://127.0.0.1:8787/ — the shop through edgekeeper: ' + shopNote,
  'dev: http://127.0.0.1:8787/__edgekeeper/dashboard — operations dashboard (token: ADMIN_TOKEN in .dev.vars)',
  'dev: http://127.0.0.1:8787/health — health; Ctrl-C stops everything',
].join('\n'));
