// edgekeeper operations dashboard. The admin token lives in sessionStorage only (this tab), goes out
// as `Authorization: Bearer`, and never touches localStorage or cookies. Every few seconds it reads
// /health, /admin/stats, /admin/match-quality and /admin/dlq, shows their numbers exactly as the API
// gave them, and keeps an in-memory time series (lost on reload) for the charts.

import { lineChart, barChart } from '/__edgekeeper/assets/charts.js';

const TOKEN_KEY = 'ek_admin_token';
const params = new URLSearchParams(location.search);
const POLL_MS = Math.min(60, Math.max(1, Number(params.get('every')) || 3)) * 1000;
const HISTORY = 240; // points kept per series (12 minutes at 3 s)

const BOOKS = [
  ['accepted', 'Accepted', 's1'], ['delivered', 'Delivered', 's3'], ['in_flight', 'In flight', 's2'], ['duplicates', 'Duplicates', 's7'],
  ['rejected', 'Rejected', 's4'], ['retried', 'Retried', 's6'], ['dead_lettered', 'Dead-lettered', 's5'],
];
const CACHE_CLASSES = ['cache_html', 'cache_immutable', 'cache_static', 'cache_api', 'cache_private', 'cache_error', 'cache_not_found'];

const $ = (id) => document.getElementById(id);
const show = (v) => (v === null || v === undefined ? '—' : String(v));
const when = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'medium' });
const clock = new Intl.DateTimeFormat('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });

let token = null;
let timer = null;
let running = false;
let rerun = false;
let history = [];
let latest = { stats: null, mq: null };
const redraws = new Map();

function text(id, value) {
  const e = $(id);
  if (e) e.textContent = show(value);
  return e;
}
function pill(id, value) {
  const e = text(id, value);
  if (e) e.className = `pill ${String(value ?? '').replace(/[^a-z_]/gi, '')}`;
}
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function panelError(id, message) {
  const e = $(id);
  if (!e) return;
  e.hidden = !message;
  e.textContent = message || '';
}
const errorText = (r) => {
  if (!r) return 'no answer';
  if (r.error) return r.error;
  const e = r.body && r.body.error;
  return e ? `${r.status} ${e.code}: ${e.message}` : `HTTP ${r.status}`;
};

// ---- network -----------------------------------------------------------------------------------
class SignedOut extends Error {}

async function call(path, { method = 'GET', body, auth = true } = {}) {
  const headers = { accept: 'application/json' };
  if (auth) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    return { status: 0, ok: false, body: null, error: `network error: ${e.message}` };
  }
  let json = null;
  try { json = await res.json(); } catch { /* not JSON */ }
  if (auth && res.status === 401) throw new SignedOut('The worker refused that token (401). Enter it again.');
  return { status: res.status, ok: res.ok, body: json };
}

// ---- auth --------------------------------------------------------------------------------------
function setLive(state, label) {
  const e = $('live');
  e.className = `live ${state}`;
  e.textContent = label;
}

function signedIn() {
  $('auth').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  $('refresh').hidden = false;
}

function signOut(message = '') {
  clearTimeout(timer);
  timer = null;
  token = null;
  history = [];
  latest = { stats: null, mq: null };
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage disabled */ }
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('refresh').hidden = true;
  $('auth').hidden = false;
  $('auth-error').textContent = message;
  setLive('', 'Signed out');
  $('token-input').focus();
}

$('token-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const input = $('token-input');
  const value = input.value.trim();
  if (!value) return;
  $('token-save').disabled = true;
  $('auth-error').textContent = '';
  token = value;
  try {
    const r = await call('/admin/stats');
    if (!r.ok) {
      token = null;
      $('auth-error').textContent = r.body?.error?.code === 'not_configured'
        ? 'ADMIN_TOKEN is not set on the worker (wrangler secret put ADMIN_TOKEN, or .dev.vars locally).'
        : `Could not open the dashboard: ${errorText(r)}`;
      return;
    }
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* this page keeps it in memory */ }
    input.value = '';
    signedIn();
    refresh();
  } catch (err) {
    token = null;
    $('auth-error').textContent = err instanceof SignedOut ? 'That token was refused (401).' : String(err.message || err);
  } finally {
    $('token-save').disabled = false;
  }
});
$('sign-out').addEventListener('click', () => signOut());
$('refresh').addEventListener('click', () => refresh());

// ---- polling -----------------------------------------------------------------------------------
/** Runs a poll now (or right after the one in progress), then every POLL_MS. */
function refresh() {
  if (!token) return;
  clearTimeout(timer);
  timer = null;
  if (running) { rerun = true; return; }
  poll();
}

async function poll() {
  running = true;
  try {
    const [health, stats, mq, dlq] = await Promise.all([
      call('/health', { auth: false }),
      call('/admin/stats'),
      call('/admin/match-quality'),
      call('/admin/dlq?limit=50'),
    ]);
    if (!token) return;
    safely(() => renderHealth(health));
    safely(() => renderStats(stats));
    safely(() => renderQuality(mq));
    safely(() => renderDlq(dlq));
    const ok = stats.ok && health.status !== 0;
    setLive(ok ? 'on' : 'err', ok ? `Live · ${clock.format(new Date())}` : `Error · ${errorText(stats)}`);
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (err) {
    if (err instanceof SignedOut) { signOut(err.message); return; }
    setLive('err', `Error · ${err.message || err}`);
  } finally {
    running = false;
    if (token) {
      if (rerun) { rerun = false; poll(); } else timer = setTimeout(poll, POLL_MS);
    }
  }
}

function safely(fn) {
  try { fn(); } catch (e) { console.warn('dashboard render', e); }
}

function chart(id, draw) {
  redraws.set(id, draw);
  draw();
}
let resizeTimer = null;
window.addEventListener('resize', () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => redraws.forEach((d) => safely(d)), 150);
});

// ---- panels ------------------------------------------------------------------------------------
function renderHealth(r) {
  const h = r.body;
  if (!h || !h.checks) {
    panelError('health-error', `/health: ${errorText(r)}`);
    pill('health-overall', 'down');
    return;
  }
  panelError('health-error', '');
  pill('health-overall', h.status);
  text('health-version', h.version);
  const c = h.checks.config || {};
  pill('health-config', c.status);
  const missing = Object.entries(c.missing || {}).map(([job, vars]) => `${job}: ${vars.join(', ')}`);
  const errors = (c.errors || []).map((x) => `${x.variable}: ${x.message}`);
  $('health-config-detail').textContent = [...missing, ...errors].join('; ');
  const u = h.checks.upstash || {};
  pill('health-upstash', u.status);
  text('health-upstash-latency', u.latency_ms);
  pill('health-upstash-breaker', u.breaker);
  $('health-upstash-reason').textContent = u.reason || '';
}

function renderStats(r) {
  if (!r.ok || !r.body) {
    panelError('books-error', `/admin/stats: ${errorText(r)}`);
    return;
  }
  const s = r.body;
  latest.stats = s;
  const books = s.books;
  if (!books) panelError('books-error', 'No store configured (UPSTASH_REDIS_REST_URL): the books live in Upstash.');
  else if (books.error) panelError('books-error', `Books unavailable: ${books.error}`);
  else panelError('books-error', '');
  const ok = books && !books.error;
  for (const [k] of BOOKS) text(`book-${k}`, ok ? books[k] : null);

  const up = (s.isolate && s.isolate.upstash) || {};
  const lat = up.latency_ms || {};
  const br = up.breaker || {};
  text('upstash-p50', lat.p50);
  text('upstash-p99', lat.p99);
  text('upstash-samples', lat.samples);
  text('upstash-opened', br.opened_total);
  pill('upstash-breaker', br.state);
  $('upstash-last-error').textContent = br.last_error ? `Last error: ${br.last_error}` : '';

  history.push({ t: Date.now(), books: ok ? { ...books } : null, p50: lat.p50 ?? null, p99: lat.p99 ?? null, breaker: br.state || 'unknown' });
  if (history.length > HISTORY) history = history.slice(-HISTORY);

  chart('chart-books', () => lineChart($('chart-books'), {
    label: 'Event books over time',
    series: BOOKS.map(([k, label, cls]) => ({ key: k, label, cls, values: history.filter((p) => p.books).map((p) => [p.t, p.books[k]]) })),
  }));
  chart('chart-latency', () => lineChart($('chart-latency'), {
    label: 'Upstash latency p50 and p99 over time, with the breaker state',
    unit: ' ms',
    height: 160,
    series: [
      { key: 'p50', label: 'p50', cls: 's1', values: history.map((p) => [p.t, p.p50]) },
      { key: 'p99', label: 'p99', cls: 's5', values: history.map((p) => [p.t, p.p99]) },
    ],
    bands: history.map((p) => [p.t, p.breaker]),
    bandLabel: 'breaker',
  }));
  const counters = up.counters || {};
  chart('chart-cache', () => barChart($('chart-cache'), {
    label: 'Responses by cache class',
    bars: CACHE_CLASSES.map((k, i) => ({ key: k, label: k.replace(/^cache_/, ''), value: counters[k] ?? 0, cls: `s${(i % 7) + 1}` })),
  }));
  renderZaraz(s.zaraz);
}

function renderZaraz(z) {
  const last = z && z.last_sync;
  const drift = z && z.drift;
  const tbody = $('zaraz-chunks');
  if (!last) {
    pill('zaraz-outcome', 'none');
    $('zaraz-sync-detail').textContent = z === null ? 'no store configured' : 'no sync recorded yet (POST /admin/zaraz/sync)';
    $('zaraz-plan').textContent = '—';
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No chunks.' })));
  } else {
    pill('zaraz-outcome', last.outcome);
    const bits = [];
    if (last.dry_run) bits.push('dry run');
    if (typeof last.duration_ms === 'number') bits.push(`${last.duration_ms} ms`);
    if (typeof last.calls === 'number') bits.push(`${last.calls} API calls`);
    if (last.verification) bits.push(last.verification.ok ? 'verified' : 'verification failed');
    if (last.rollback) bits.push(`rollback ${last.rollback.ok ? 'ok' : 'failed'}`);
    $('zaraz-sync-detail').textContent = bits.join(' · ');
    const plan = last.plan || {};
    const n = (k) => (Array.isArray(plan[k]) ? plan[k].length : 0);
    $('zaraz-plan').textContent = `${show(plan.changes)} change(s): ${n('add')} add, ${n('update')} update, ${n('remove')} remove`;
    const chunks = Array.isArray(last.chunks) ? last.chunks : [];
    tbody.replaceChildren(...(chunks.length ? chunks.flatMap((c) => [
      el('tr', { 'data-testid': 'zaraz-chunk', 'data-status': c.status },
        el('td', { class: 'num', text: `${show(c.n)}/${chunks.length}` }),
        el('td', {}, el('span', { class: `pill ${String(c.status || '').replace(/[^a-z_]/gi, '')}`, text: show(c.status) })),
        el('td', { class: 'num', 'data-testid': 'zaraz-chunk-attempts', text: show(c.attempts) }),
        el('td', { class: 'num', 'data-testid': 'zaraz-chunk-duration', text: show(c.duration_ms) }),
        el('td', { class: 'mono', text: show(c.zaraz_version) })),
      el('tr', { class: 'sub' }, el('td', { colspan: 5, class: 'chunk-changes small', text: Array.isArray(c.changes) ? c.changes.join(', ') : '' })),
    ]) : [el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'The last sync had nothing to write.' }))]));
  }
  const d = $('zaraz-drift');
  if (!drift) d.textContent = 'not checked yet (the cron checks every 5 minutes)';
  else if (drift.error) d.textContent = `check failed: ${drift.error.code}: ${drift.error.message}`;
  else {
    const at = typeof drift.checked_at_ms === 'number' ? ` · checked ${when.format(new Date(drift.checked_at_ms))}` : '';
    const parts = [];
    if (drift.add?.length) parts.push(`missing: ${drift.add.join(', ')}`);
    if (drift.update?.length) parts.push(`changed: ${drift.update.join(', ')}`);
    d.replaceChildren(el('span', { class: `pill ${drift.drift ? 'drift' : 'in_sync'}`, text: drift.drift ? 'drift' : 'in sync' }), ` ${parts.join('; ')}${at}`);
  }
}

$('zaraz-check').addEventListener('click', async () => {
  const out = $('zaraz-diff');
  const button = $('zaraz-check');
  button.disabled = true;
  out.textContent = 'Checking…';
  try {
    const r = await call('/admin/zaraz/diff');
    const d = r.body;
    if (!r.ok || !d) {
      out.replaceChildren(el('p', { class: 'error', 'data-testid': 'zaraz-diff-error', text: `Diff failed: ${errorText(r)}` }));
      return;
    }
    const list = (label, items) => (items && items.length
      ? el('div', {}, el('strong', { text: label }), el('ul', {}, items.map((i) => el('li', { text: typeof i === 'string' ? i : `${i.event ?? ''}${i.trigger_id ? ` (${i.trigger_id})` : ''}${i.trigger_ids ? ` (${i.trigger_ids.join(', ')})` : ''}` }))))
      : null);
    out.replaceChildren(
      el('p', {}, el('span', { class: `pill ${d.in_sync ? 'in_sync' : 'drift'}`, 'data-testid': 'zaraz-diff-status', text: d.in_sync ? 'in sync' : 'drift' }),
        ` ${show(d.changes)} change(s) a sync would make · checked ${clock.format(new Date())}`),
      ...[list('Add', d.add), list('Update', d.update), list('Remove', d.remove), list('Duplicates', d.duplicates), list('Orphaned', d.orphaned)].filter(Boolean));
  } catch (err) {
    if (err instanceof SignedOut) signOut(err.message);
    else out.textContent = String(err.message || err);
  } finally {
    button.disabled = false;
  }
});

function renderQuality(r) {
  if (!r.ok || !r.body) {
    panelError('mq-error', `/admin/match-quality: ${errorText(r)}`);
    return;
  }
  panelError('mq-error', '');
  latest.mq = r.body;
  const select = $('mq-event');
  const names = Object.keys(r.body.by_event || {}).sort();
  const current = select.value;
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join('|') !== names.join('|')) {
    select.replaceChildren(el('option', { value: '', text: 'All events' }), ...names.map((n) => el('option', { value: n, text: n })));
    select.value = names.includes(current) ? current : '';
  }
  drawQuality();
}

function drawQuality() {
  const mq = latest.mq;
  if (!mq) return;
  const name = $('mq-event').value;
  const report = (name && mq.by_event && mq.by_event[name]) || mq.all_events || {};
  text('mq-score', report.estimated_score);
  text('mq-events', report.events);
  $('mq-note').textContent = mq.note || '';
  const weights = mq.weights || {};
  const keys = Object.keys(weights).sort((a, b) => weights[b] - weights[a] || a.localeCompare(b));
  const coverage = report.coverage || {};
  chart('chart-coverage', () => barChart($('chart-coverage'), {
    label: `Match key coverage, ${name || 'all events'}`,
    max: 100,
    suffix: '%',
    bars: keys.map((k) => ({ key: k, label: `${k} (${weights[k]})`, value: coverage[k] ? coverage[k].percent : 0, cls: weights[k] >= 2 ? 's1' : weights[k] >= 1 ? 's2' : 's7', title: `${k}: ${coverage[k] ? coverage[k].events : 0} of ${report.events} events; weight ${weights[k]}` })),
  }));
}
$('mq-event').addEventListener('change', drawQuality);

function renderDlq(r) {
  const tbody = $('dlq-rows');
  if (!r.ok || !r.body) {
    $('dlq-message').textContent = `/admin/dlq: ${errorText(r)}`;
    return;
  }
  const entries = Array.isArray(r.body.entries) ? r.body.entries : [];
  const total = $('dlq-total');
  total.textContent = show(r.body.total);
  total.className = `pill ${r.body.total > 0 ? 'error' : 'ok'}`;
  $('dlq-replay-all').disabled = entries.length === 0;
  if (!entries.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No dead letters.' })));
    return;
  }
  tbody.replaceChildren(...entries.map((e) => {
    const button = el('button', { type: 'button', class: 'btn btn-ghost btn-small', 'data-testid': 'dlq-replay', 'data-event-id': e.event_id, text: 'Replay' });
    button.addEventListener('click', () => replay({ event_ids: [e.event_id] }, button));
    const at = typeof e.dead_lettered_at_ms === 'number' ? when.format(new Date(e.dead_lettered_at_ms)) : '—';
    return el('tr', { 'data-testid': 'dlq-row', 'data-event-id': e.event_id },
      el('td', { class: 'mono', text: show(e.event_id) }),
      el('td', { text: show(e.event_name) }),
      el('td', { class: 'reason small', text: show(e.reason) }),
      el('td', { class: 'small', text: at }),
      el('td', {}, button));
  }));
}

async function replay(body, button) {
  const msg = $('dlq-message');
  if (body.all && !confirm('Put every dead letter back on the queue?')) return;
  if (button) button.disabled = true;
  try {
    const r = await call('/admin/dlq/replay', { method: 'POST', body });
    if (r.ok && r.body) {
      const ids = r.body.replayed || [];
      msg.textContent = `Replayed ${ids.length} event(s)${ids.length ? `: ${ids.join(', ')}` : ''}.`;
    } else {
      msg.textContent = `Replay failed: ${errorText(r)}`;
    }
  } catch (err) {
    if (err instanceof SignedOut) { signOut(err.message); return; }
    msg.textContent = String(err.message || err);
  } finally {
    if (button) button.disabled = false;
  }
  refresh();
}
$('dlq-replay-all').addEventListener('click', (e) => replay({ all: true }, e.currentTarget));

// ---- start -------------------------------------------------------------------------------------
try { token = sessionStorage.getItem(TOKEN_KEY); } catch { token = null; }
if (token) {
  signedIn();
  setLive('', 'Connecting…');
  refresh();
} else {
  signOut();
}
