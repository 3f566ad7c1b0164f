// The operations dashboard in real Chromium: token in sessionStorage only, numbers exactly as the
// admin API gives them, live charts, the Zaraz sync and diff, match quality, and a dead letter
// replayed from the page until Meta has it. Screenshots (desktop and phone) go to tests/artifacts/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, waitFor, collect, event, TEST_SECRETS } from '../support/stack.mjs';
import { startCloudflareFake } from '../fakes/cloudflare-api.mjs';
import { launch, watch, countsById, artifact, sleep, DESKTOP, PHONE } from './browser.mjs';

const ZONE = '0123456789abcdef0123456789abcdef';
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, 'content-type': 'application/json' };
const BOOKS = ['accepted', 'duplicates', 'rejected', 'delivered', 'retried', 'dead_lettered', 'in_flight'];
const CACHE = ['cache_html', 'cache_immutable', 'cache_static', 'cache_api', 'cache_private', 'cache_error', 'cache_not_found'];

let stack;
let cf;
let browser;
let bad; // the event Meta refuses, dead-lettered

const api = async (path, init = {}) => (await fetch(`${stack.url}${path}`, { headers: admin, ...init })).json();

before(async () => {
  cf = await startCloudflareFake({ apiToken: TEST_SECRETS.CLOUDFLARE_API_TOKEN, zoneId: ZONE });
  [stack, browser] = await Promise.all([
    startStack({ shop: true, vars: { CLOUDFLARE_API_BASE: cf.apiBase, CLOUDFLARE_ZONE_ID: ZONE } }),
    launch(),
  ]);
  // Traffic for every panel: events (one duplicate, one rejected, one Meta refuses), pages and
  // assets through the cache policy, a Zaraz sync with its chunks and the cron's drift check.
  bad = event('Contact');
  stack.meta.setFault({ reject_event_ids: [bad.event_id] });
  const good = [event('ViewContent'), event('Purchase'), event('AddToCart', { user_data: { em: 'a@example.com', fn: 'Ann' } })];
  const r = await collect(stack.url, { data: [...good, bad], consent: 'granted' });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await collect(stack.url, { data: [good[0], event('Lead', { event_time: 1 })] });
  const html = await (await fetch(`${stack.url}/`)).text();
  for (const path of html.match(/\/assets\/[^"]+/g)) await (await fetch(`${stack.url}${path}`)).arrayBuffer();
  await (await fetch(`${stack.url}/__edgekeeper/dashboard`)).arrayBuffer();
  const sync = await fetch(`${stack.url}/admin/zaraz/sync`, { method: 'POST', headers: admin, body: '{}' });
  assert.equal(sync.status, 200);
  assert.equal((await (await stack.worker.mf.getWorker()).scheduled({ cron: '*/5 * * * *' })).outcome, 'ok');
  await waitFor(async () => (await api('/admin/dlq?limit=50')).entries.some((e) => e.event_id === bad.event_id), { what: 'the dead letter' });
  await waitFor(async () => (await api('/admin/stats')).books.in_flight === 0, { what: 'settled books' });
});
after(async () => {
  await browser?.close();
  await stack?.stop();
  await cf?.close();
});

/** Opens the dashboard in a fresh context and signs in through the form. */
async function openDashboard(options) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const w = watch(page, { allow: /status of 401/ }); // the wrong token tried first
  const seen = { stats: null, health: null };
  page.on('response', async (res) => {
    const path = new URL(res.url()).pathname;
    if (path === '/admin/stats' && res.status() === 200) seen.stats = await res.json().catch(() => seen.stats);
    if (path === '/health') seen.health = await res.json().catch(() => seen.health);
  });
  await page.goto(`${stack.url}/__edgekeeper/dashboard?every=1`);
  await page.fill('[data-testid=token-input]', 'wrong-token-wrong-token');
  await page.click('[data-testid=token-save]');
  await page.waitForFunction(() => document.querySelector('[data-testid=auth-error]').textContent.includes('401'));
  await page.fill('[data-testid=token-input]', TEST_SECRETS.ADMIN_TOKEN);
  await page.click('[data-testid=token-save]');
  await page.waitForSelector('[data-testid=dashboard]:not([hidden])');
  await page.waitForFunction(() => Number(document.body.dataset.polls || 0) >= 1);
  return { context, page, w, seen };
}

const rendered = (page, ids) => page.evaluate((ids) => Object.fromEntries(ids.map((id) => [id, document.querySelector(`[data-testid="${id}"]`)?.textContent ?? null])), ids);
const shown = (v) => (v === null || v === undefined ? '—' : String(v));

async function booksMatchApi(page) {
  return waitFor(async () => {
    const { books } = await api('/admin/stats');
    const r = await rendered(page, BOOKS.map((k) => `book-${k}`));
    return BOOKS.every((k) => r[`book-${k}`] === String(books[k])) && books;
  }, { what: 'rendered books equal to /admin/stats' });
}

test('dashboard: token, exact numbers, live charts, Zaraz, match quality, dead letter replayed', async () => {
  const { context, page, w, seen } = await openDashboard(DESKTOP);
  try {
    // The token lives in this tab's sessionStorage only.
    const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('ek_admin_token'), local: JSON.stringify(localStorage), cookie: document.cookie }));
    assert.equal(storage.session, TEST_SECRETS.ADMIN_TOKEN);
    assert.ok(!storage.local.includes(TEST_SECRETS.ADMIN_TOKEN) && !storage.cookie.includes(TEST_SECRETS.ADMIN_TOKEN));
    assert.ok(!(await context.cookies()).some((c) => c.value.includes(TEST_SECRETS.ADMIN_TOKEN)));
    assert.equal(await page.inputValue('[data-testid=token-input]'), '', 'the form forgets the token');
    assert.equal(await page.getAttribute('.brand', 'href'), '/__edgekeeper/dashboard');
    assert.equal(await page.getAttribute('.dash-tools a', 'href'), '/', 'the Shop link goes to the site');

    // Books: exactly the API's numbers.
    const books = await booksMatchApi(page);
    assert.equal(books.dead_lettered, 1);
    assert.ok(books.accepted >= 4 && books.duplicates >= 1 && books.rejected >= 1, JSON.stringify(books));

    // Isolate numbers (they move with every call): equal to the last /admin/stats the page received.
    await waitFor(async () => {
      const s = seen.stats;
      if (!s) return false;
      const up = s.isolate.upstash;
      const r = await rendered(page, ['upstash-p50', 'upstash-p99', 'upstash-breaker', 'upstash-samples']);
      const bars = await page.$$eval('[data-testid=chart-cache] g[data-key]', (gs) => Object.fromEntries(gs.map((g) => [g.dataset.key, g.dataset.value])));
      return r['upstash-p50'] === shown(up.latency_ms.p50) && r['upstash-p99'] === shown(up.latency_ms.p99)
        && r['upstash-breaker'] === up.breaker.state && r['upstash-samples'] === shown(up.latency_ms.samples)
        && CACHE.every((k) => bars[k] === String(up.counters[k] ?? 0));
    }, { what: 'isolate numbers equal to the page’s last /admin/stats' });
    assert.ok(Number(seen.stats.isolate.upstash.counters.cache_html) >= 1 && Number(seen.stats.isolate.upstash.counters.cache_immutable) >= 1);
    assert.equal((await rendered(page, ['upstash-breaker']))['upstash-breaker'], 'closed');

    // Health, as /health said it.
    await waitFor(async () => {
      const h = seen.health;
      const r = await rendered(page, ['health-overall', 'health-config', 'health-upstash', 'health-upstash-latency', 'health-upstash-breaker', 'health-version']);
      return h && r['health-overall'] === h.status && r['health-config'] === h.checks.config.status && r['health-upstash'] === h.checks.upstash.status
        && r['health-upstash-latency'] === shown(h.checks.upstash.latency_ms) && r['health-upstash-breaker'] === h.checks.upstash.breaker && r['health-version'] === h.version;
    }, { what: 'health as /health said' });
    assert.equal(seen.health.status, 'ok');

    // Charts: live series, drawn as SVG with data.
    await page.waitForFunction(() => Number(document.body.dataset.polls) >= 3);
    for (const id of ['chart-books', 'chart-latency']) {
      const c = await page.$eval(`[data-testid=${id}] svg`, (svg) => ({ points: Number(svg.dataset.points), lines: svg.querySelectorAll('polyline').length, pts: svg.querySelector('polyline')?.getAttribute('points') ?? '' }));
      assert.ok(c.points >= 3 && c.lines >= 1 && c.pts.split(' ').length >= 3, `${id}: ${JSON.stringify(c)}`);
    }
    const accepted = await page.$eval('[data-testid=chart-books] g[data-series=accepted]', (g) => g.dataset.last);
    assert.equal(accepted, String(books.accepted));
    assert.ok(await page.$$eval('[data-testid=chart-latency] g[data-series=band] rect', (r) => r.length) >= 3, 'breaker band over time');

    // Zaraz: the last sync and its chunks, the drift, and a diff on demand.
    const { zaraz } = await api('/admin/stats');
    assert.equal(await page.textContent('[data-testid=zaraz-outcome]'), zaraz.last_sync.outcome);
    const chunks = await page.$$eval('[data-testid=zaraz-chunk]', (rows) => rows.map((r) => ({
      status: r.dataset.status, attempts: r.querySelector('[data-testid=zaraz-chunk-attempts]').textContent, ms: r.querySelector('[data-testid=zaraz-chunk-duration]').textContent })));
    assert.ok(zaraz.last_sync.chunks.length >= 2);
    assert.deepEqual(chunks, zaraz.last_sync.chunks.map((c) => ({ status: c.status, attempts: String(c.attempts), ms: String(c.duration_ms) })));
    assert.match(await page.textContent('[data-testid=zaraz-plan]'), new RegExp(`^${zaraz.last_sync.plan.changes} change`));
    assert.match(await page.textContent('[data-testid=zaraz-drift]'), zaraz.drift.drift ? /drift/ : /in sync/);
    await page.click('[data-testid=zaraz-check]');
    await page.waitForSelector('[data-testid=zaraz-diff-status]');
    const diff = await api('/admin/zaraz/diff');
    assert.equal(await page.textContent('[data-testid=zaraz-diff-status]'), diff.in_sync ? 'in sync' : 'drift');

    // Match quality: score, events and per-key coverage as the API reports them.
    const mq = await api('/admin/match-quality');
    await waitFor(async () => (await page.textContent('[data-testid=mq-events]')) === String(mq.all_events.events), { what: 'match quality' });
    assert.equal(await page.textContent('[data-testid=mq-score]'), String(mq.all_events.estimated_score));
    const coverage = await page.$$eval('[data-testid=chart-coverage] g[data-key]', (gs) => Object.fromEntries(gs.map((g) => [g.dataset.key, g.dataset.value])));
    assert.deepEqual(Object.keys(coverage).sort(), Object.keys(mq.weights).sort());
    for (const [k, v] of Object.entries(mq.all_events.coverage)) assert.equal(coverage[k], String(v.percent), k);
    await page.selectOption('[data-testid=mq-event]', 'AddToCart');
    assert.equal(await page.textContent('[data-testid=mq-score]'), String(mq.by_event.AddToCart.estimated_score));
    await page.selectOption('[data-testid=mq-event]', '');

    // Dead letters: listed with Meta's reason; replayed from the page, then delivered and gone.
    const row = page.locator(`[data-testid=dlq-row][data-event-id="${bad.event_id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /code 100/);
    assert.equal(await page.textContent('[data-testid=dlq-total]'), '1');
    await page.screenshot({ path: artifact('dashboard-desktop.png'), fullPage: true });

    stack.meta.setFault(null);
    await row.locator('[data-testid=dlq-replay]').click();
    await waitFor(() => countsById(stack).get(bad.event_id) === 1, { ms: 20000, what: 'the replayed event at Meta' });
    await row.waitFor({ state: 'detached' });
    assert.match(await page.textContent('[data-testid=dlq-message]'), new RegExp(`Replayed 1 event\\(s\\): ${bad.event_id}`));
    await waitFor(async () => (await api('/admin/stats')).books.in_flight === 0, { what: 'the replay settled' });
    const after = await booksMatchApi(page);
    assert.equal(after.dead_lettered, 0);
    assert.equal(after.delivered, books.delivered + 1, 'live: the books moved on screen');
    assert.equal(await page.textContent('[data-testid=dlq-total]'), '0');
    await sleep(1200);
    assert.equal(countsById(stack).get(bad.event_id), 1, 'delivered once');
    w.check();
  } finally {
    await context.close();
  }
});

test('dashboard on a phone: one column, no sideways scroll, same numbers; replay all', async () => {
  const { context, page, w } = await openDashboard(PHONE);
  try {
    await booksMatchApi(page);
    await page.waitForFunction(() => Number(document.body.dataset.polls) >= 2);
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scroll at 390 px');
    const widths = await page.$$eval('.panel', (ps) => ps.map((p) => Math.round(p.getBoundingClientRect().width)));
    assert.ok(widths.every((x) => x === widths[0] && x <= 390), `panels stack in one column: ${widths}`);
    const svgWidth = await page.$eval('[data-testid=chart-books] svg', (s) => s.getBoundingClientRect().width);
    assert.ok(svgWidth > 200 && svgWidth <= 390, `chart fits: ${svgWidth}`);
    await page.screenshot({ path: artifact('dashboard-phone.png'), fullPage: true });

    // "Replay all" puts every dead letter back on the queue.
    const letters = [event('Lead'), event('Lead')];
    stack.meta.setFault({ reject_event_ids: letters.map((e) => e.event_id) });
    assert.equal((await collect(stack.url, { data: letters })).status, 202);
    for (const e of letters) await page.locator(`[data-testid=dlq-row][data-event-id="${e.event_id}"]`).waitFor({ timeout: 20000 });
    stack.meta.setFault(null);
    page.once('dialog', (d) => d.accept());
    await page.tap('[data-testid=dlq-replay-all]');
    await waitFor(() => letters.every((e) => countsById(stack).get(e.event_id) === 1), { ms: 20000, what: 'both replayed events at Meta' });
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=dlq-row]').length === 0);
    assert.match(await page.textContent('[data-testid=dlq-message]'), /^Replayed 2 event/);
    // Signing out forgets the token.
    await page.tap('[data-testid=sign-out]');
    await page.waitForSelector('[data-testid=auth]:not([hidden])');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('ek_admin_token')), null);
    w.check();
  } finally {
    await context.close();
  }
});
