// Shared helpers for the www suites: real Chromium through playwright-core, page error collection,
// a check that build/edge and build/shop are the builds of www/edge and www/shop, and small waits.
// The suites run the worker with the demo shop (tools/demo-origin.mjs) as its origin: the shop's
// pages and /assets/* come through the worker from there, /__edgekeeper/* from the worker's assets.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { chromium } from 'playwright-core';
import { before, after } from 'node:test';
import { ROOT, startStack } from '../support/stack.mjs';

export const ARTIFACTS = join(ROOT, 'tests', 'artifacts');
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 900 } };

export function launch() {
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: CHROMIUM_ARGS });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const sha256 = (s) => createHash('sha256').update(s).digest('hex');

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/**
 * Collects what a page reports: uncaught exceptions (`pageerror`) and console errors. `check()`
 * fails on any uncaught exception, and on console errors not matched by `allow` (a RegExp).
 */
export function watch(page, { allow = null } = {}) {
  const errors = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => errors.push(`${e.name}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  return {
    errors,
    consoleErrors,
    check() {
      assert.deepEqual(errors, [], `uncaught exceptions in the page:\n${errors.join('\n')}`);
      const unexpected = consoleErrors.filter((t) => !(allow && allow.test(t)));
      assert.deepEqual(unexpected, [], `console errors in the page:\n${unexpected.join('\n')}`);
    },
  };
}

/**
 * Records every POST /collect the page makes (fetches and beacons): its parsed body, resource type
 * (`fetch` or `ping` for sendBeacon), content type and the answer's status. It sees the body through
 * request interception (beacon bodies are not reported otherwise) and then falls back to routes
 * registered before it, or the network.
 */
export async function recordCollect(page) {
  const posts = [];
  await page.route('**/collect', async (route) => {
    const r = route.request();
    if (r.method() === 'POST') {
      let body = null;
      try { body = JSON.parse(r.postData() || 'null'); } catch { body = { unparsed: r.postData() }; }
      const entry = { at: Date.now(), body, type: r.resourceType(), contentType: r.headers()['content-type'], status: null };
      posts.push(entry);
      r.response().then((res) => { entry.status = res ? res.status() : null; }).catch(() => {});
    }
    await route.fallback();
  });
  return posts;
}

/** The events Meta's fake received, counted by event_id. */
export function countsById(stack) {
  const counts = new Map();
  for (const e of stack.meta.received()) counts.set(e.event_id, (counts.get(e.event_id) || 0) + 1);
  return counts;
}

export async function outboxSize(page) {
  return page.evaluate(() => (globalThis.edgekeeper ? globalThis.edgekeeper.outbox().length : -1));
}

/**
 * The two trees tools/build-www.mjs builds: www/edge → build/edge (the worker's assets, deployed: all
 * under /__edgekeeper/) and www/shop → build/shop (the demo shop, served by tools/demo-origin.mjs).
 * `assets` is the folder whose files are fingerprinted.
 */
export const TREES = [
  { src: 'www/edge', out: 'build/edge', assets: '__edgekeeper/assets/' },
  { src: 'www/shop', out: 'build/shop', assets: 'assets/' },
];
/** Files both trees serve from their assets folder; the build copies them into each. */
export const SHARED = 'www/shared';

/**
 * build/edge and build/shop must be the builds of www/edge and www/shop (tools/build-www.mjs): the
 * same files (plus www/shared/ in each tree's assets folder), with every file in the tree's assets folder renamed name.<10 hex>.ext and referenced by
 * that name. Fails with the command to run when someone changed www/ without rebuilding. Also: the
 * deployed tree holds nothing outside /__edgekeeper/ (it must never shadow a shop's page), and the
 * tracker keeps its stable, unhashed name.
 */
export function assertBuilt() {
  const files = (dir) => readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
  const unhash = (t) => t.replace(/(\/assets\/[\w/-]+)\.[0-9a-f]{10}(\.\w+)/g, '$1$2');
  const esc = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const tree of TREES) {
    const src = join(ROOT, tree.src);
    const out = join(ROOT, tree.out);
    let built;
    try { built = files(out).map((p) => relative(out, p)); } catch { built = []; }
    const hint = `${tree.out} is not the build of ${tree.src}/: run \`node tools/build-www.mjs\``;
    const shared = join(ROOT, SHARED);
    const sources = [...files(src).map((p) => [p, relative(src, p)]), ...files(shared).map((p) => [p, `${tree.assets}${relative(shared, p)}`])];
    assert.equal(built.length, sources.length, `${hint} (${built.length} files built from ${sources.length})`);
    for (const [p, rel] of sources) {
      let target = rel;
      if (rel.startsWith(tree.assets)) {
        const dot = rel.lastIndexOf('.');
        const re = new RegExp(`^${esc(rel.slice(0, dot))}\\.[0-9a-f]{10}${esc(rel.slice(dot))}$`);
        target = built.find((b) => re.test(b));
        assert.ok(target, `${hint} (no hashed copy of ${rel})`);
      }
      assert.ok(built.includes(target), `${hint} (${rel} missing)`);
      const a = readFileSync(p);
      const b = readFileSync(join(out, target));
      if (/\.(html|css|js|svg)$/.test(rel)) assert.equal(unhash(b.toString('utf8')), a.toString('utf8'), `${hint} (${rel} differs)`);
      else assert.ok(a.equals(b), `${hint} (${rel} differs)`);
    }
  }
  const edge = files(join(ROOT, 'build/edge')).map((p) => relative(join(ROOT, 'build/edge'), p));
  assert.deepEqual(edge.filter((p) => !p.startsWith('__edgekeeper/')), [], 'build/edge (deployed) holds only /__edgekeeper/ files');
  assert.ok(edge.includes('__edgekeeper/tracker.js'), 'the tracker keeps its stable URL /__edgekeeper/tracker.js');
  assert.ok(edge.includes('__edgekeeper/dashboard.html'), 'the dashboard is /__edgekeeper/dashboard');
}

/**
 * The stack (with the demo shop as its origin) and a browser for one test file: started before its
 * tests, stopped after them.
 */
export function stackAndBrowser(options) {
  const env = {};
  before(async () => {
    [env.stack, env.browser] = await Promise.all([startStack({ shop: true, ...options }), launch()]);
  });
  after(async () => {
    await env.browser?.close();
    await env.stack?.stop();
  });
  return env;
}
