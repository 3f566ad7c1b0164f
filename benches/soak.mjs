// `make soak`: accepted means never lost, delivered once, books balanced, under load with the
// failures of issue 17 on top of each other. 50,000 events from 64 concurrent senders (every 10th send
// repeats an earlier event), the Meta fake failing 5 % of batches (seeded), and along the way:
//   1. two consumers (a second workerd) handed the same SOAK_COPIES queue messages at the same time;
//   2. a colo whose queue refuses (a worker with no EVENTS binding) takes a quarter of the senders for
//      8 s while the store fails every call that releases a claim (HTTP 500): the refused claims stay
//      pending; its clients resend to the healthy worker, as a tracker does after a 503;
//   3. redis restarted at event 25,000 (append-only file, as a managed Redis keeps its data);
//   4. 120 events Meta refuses (400 naming each) with DLQ_MAX 50: 50 stored, the rest wait on the
//      dead-letter queue (/health dlq degraded); replayed once Meta takes them;
//   5. once the 50,000 are delivered (the refused ones waiting as dead letters), the Meta token revoked
//      for SOAK_REVOKE_SECS (default 180) while a wave of SOAK_WAVE (2,000) more events comes in, then
//      restored (/health capi down meanwhile; the wave held on the queue, none dead-lettered for it).
//      The wave stays well under 10,000 events because Miniflare's local queue keeps one timer per delayed
//      message and workerd allows an isolate 10,000 active timers: past that the local queue stalls
//      for good (QuotaExceededError in its broker). Cloudflare's Queues keep delays server-side (RELIABILITY.md).
//   6. the store failing every delivery-record write while the held backlog is delivered: 500s for
//      20 s, then 10 s of replies lost after the script ran.
// Passes only if Meta holds exactly the unique accepted events, each once, none unknown; the books
// balance (accepted = delivered = unique, nothing in flight or dead-lettered); each fault was really
// met (failed releases, failed record writes, copies held behind the other consumer's lease, the two
// alarms); and no answer was a 5xx except the refusing colo's own 503 queue_unavailable (nothing
// accepted; the client resent). Stops by itself after SOAK_MINUTES (default 20).
// SOAK_EVENTS, SOAK_CONCURRENCY, SOAK_BATCH, SOAK_COPIES, SOAK_WAVE, SOAK_REVOKE_SECS scale it.

import { startStack, startWorker, waitFor, TEST_SECRETS } from '../tests/support/stack.mjs';

const EVENTS = Number(process.env.SOAK_EVENTS || 50_000);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY || 64);
const BATCH = Number(process.env.SOAK_BATCH || 10);
const COPIES = Number(process.env.SOAK_COPIES || 1000);
const REVOKE_SECS = Number(process.env.SOAK_REVOKE_SECS || 180);
const WAVE = Number(process.env.SOAK_WAVE || 2000);
const DEADLINE = Date.now() + Number(process.env.SOAK_MINUTES || 20) * 60_000;
const DLQ_MAX = 50;
const BAD = 120;
const HOLD_SECS = 10;
const FAIL = { fail_rate: 0.05, seed: 42 };
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (m) => console.log(`soak: ${m}`);

const stack = await startStack({
  persistentRedis: true,
  vars: { RATE_LIMIT_PER_IP: '1000000', RATE_LIMIT_PER_SITE: '100000000', DLQ_MAX: String(DLQ_MAX), QUEUE_HOLD_SECS: String(HOLD_SECS) },
});
// The refusing colo: its breaker never opens, so its releases really go to the failing store.
const refusing = await startWorker({ vars: { ...stack.vars, UPSTASH_BREAKER_THRESHOLD: '1000' }, queue: false });
const second = await startWorker({ vars: stack.vars });
const timer = setTimeout(() => { console.error('soak: time limit reached'); process.exit(2); }, DEADLINE - Date.now());
stack.meta.setFault(FAIL);

const sent = [];            // unique events sent through /collect
const statuses = {};        // the healthy worker's answers
const refusedStatuses = {}; // the refusing colo's answers
let duplicatesSent = 0;
let duplicateAnswers = 0;   // events answered "duplicate" (the books must count exactly these)
let next = 0;
let firstError = null;
const seen = { inProgress: 0, dlqDegraded: false, capiDown: null, releaseFailed: 0, recordFailed: 0, recordReplyLost: 0 };

// --- what the store saw: release attempts and delivery records that met a fault -------------------
let logSeq = 0;
const recordSeqs = [];
let watching = true;
async function watchStore() {
  while (watching) {
    try {
      const { last_seq: last, entries } = await stack.store.log(logSeq);
      for (const e of entries) {
        const text = e.commands.map((c) => c.join(' ')).join('\n');
        const isRecord = text.includes("KEYS[m[2]], 'delivered'");
        if (isRecord) recordSeqs.push([e.seq, e.status]);
        if (e.status >= 500 && text.includes(RELEASE)) seen.releaseFailed += 1;
        if (e.status >= 500 && isRecord) seen.recordFailed += 1;
      }
      logSeq = last;
    } catch { /* the store is being restarted */ }
    await sleep(250);
  }
}

/** A store outage for `ms` of the calls that carry `matching` (a piece of one script or argument). */
async function outage(fault, matching, ms) {
  await stack.store.setFaults({ ...fault, matching });
  await sleep(ms);
  await stack.store.clearFaults();
}
const RELEASE = '"r":[[';                      // a ride that gives claims back (dedup/mod.rs)
const RECORD = "KEYS[m[2]], 'delivered'";      // the delivery record script (capi/deliver.rs)

/** The alarms as an operator sees them on /health, polled through the run. */
async function watchHealth() {
  while (watching) {
    const h = await health();
    if (h?.checks?.capi?.status === 'down' && !seen.capiDown) { seen.capiDown = h.checks.capi.reason ?? 'down'; log(`/health capi down: ${seen.capiDown}`); }
    if (h?.checks?.dlq?.status === 'degraded' && !seen.dlqDegraded) { seen.dlqDegraded = true; log(`/health dlq degraded: ${h.checks.dlq.reason}`); }
    await sleep(1000);
  }
}

// --- sending ----------------------------------------------------------------------------------------
function makeBatch() {
  const batch = [];
  for (let i = 0; i < BATCH && next < EVENTS; i++, next++) {
    if (sent.length > 100 && next % 10 === 0) {
      batch.push(sent[(next * 7919) % sent.length]); // a repeat of an earlier event
      duplicatesSent += 1;
    } else {
      const e = { event_name: 'ViewContent', event_id: `soak-${next}`, event_source_url: 'https://shop.example/p/1', user_data: { em: `u${next}@example.com` } };
      sent.push(e);
      batch.push(e);
    }
  }
  return batch;
}

/** Posts until every event of the batch is accepted or a duplicate; `first` is where it goes first. */
async function post(batch, first = stack.url) {
  let url = first;
  for (let attempt = 0; ; attempt++) {
    const tally = url === refusing.url ? refusedStatuses : statuses;
    let r;
    try {
      r = await fetch(`${url}/collect`, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'soak' }, body: JSON.stringify({ data: batch }) });
    } catch {
      tally.network = (tally.network ?? 0) + 1;
      await sleep(100 * (attempt + 1));
      continue;
    }
    tally[r.status] = (tally[r.status] ?? 0) + 1;
    const body = await r.json();
    if (r.status >= 500 && url !== refusing.url && !firstError) firstError = JSON.stringify(body);
    if (r.status === 202) {
      duplicateAnswers += (body.duplicates ?? []).length;
      // Refused by the queue mid-batch, or another request is still queuing it: send those again.
      const again = (body.rejected ?? []).filter((x) => ['queue_unavailable', 'event_in_progress'].includes(x.error.code)).map((x) => x.event_id);
      seen.inProgress += (body.rejected ?? []).filter((x) => x.error.code === 'event_in_progress').length;
      if (again.length === 0) return;
      batch = batch.filter((e) => again.includes(e.event_id));
    }
    url = stack.url; // a client that met a refusing colo resends, and reaches another one
    await sleep(100 * Math.min(attempt + 1, 20));
  }
}

// --- the phases -------------------------------------------------------------------------------------
/** 1: the same queue messages to two consumers at once (captured as the intake writes them). */
async function twoConsumers() {
  const spy = await startWorker({ vars: stack.vars, spyQueue: true });
  const evs = Array.from({ length: COPIES }, (_, i) => ({ event_name: 'AddToCart', event_id: `copy-${i}`, event_source_url: 'https://shop.example/p/2', user_data: { em: `c${i}@example.com` } }));
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    for (let i = w * BATCH; i < evs.length; i += 8 * BATCH) await post(evs.slice(i, i + BATCH), spy.url);
  }));
  const bodies = await waitFor(() => {
    const b = spy.logs.filter((l) => l.includes('SPY ')).map((l) => l.slice(l.indexOf('SPY ') + 4));
    return b.length >= COPIES && b;
  }, { what: 'the spied queue messages', ms: 60_000 });
  await settleBooks(spy);
  await spy.stop();
  const producers = await Promise.all([stack.worker, second].map((w) => w.mf.getQueueProducer('EVENTS')));
  for (let i = 0; i < bodies.length; i += 100) {
    const chunk = bodies.slice(i, i + 100).map((body) => ({ body, contentType: 'text' }));
    await Promise.all(producers.map((p) => p.sendBatch(chunk)));
  }
  log(`${bodies.length} queue messages handed to both consumers at once`);
  return evs;
}

let refusingWindow = false;
/** 2: a quarter of the senders reach the refusing colo while the store fails its releases. */
async function refusedReleases() {
  log(`the refusing colo takes a quarter of the senders; the store fails claim releases (from event ${next})`);
  refusingWindow = true;
  await outage({ status: 500 }, RELEASE, 8000);
  refusingWindow = false;
  log(`refusing colo closed at event ${next}; releases that met the outage: ${seen.releaseFailed}`);
}

let badIds = [];
/** 4: the next BAD unique ids are refused by Meta, more than the dead-letter store holds. */
function refuseSome() {
  for (let n = next + BATCH * CONCURRENCY; badIds.length < BAD; n++) if (n % 10 !== 0) badIds.push(`soak-${n}`);
  stack.meta.setFault({ ...FAIL, reject_event_ids: badIds });
  log(`Meta refuses ${BAD} events from ${badIds[0]} (DLQ_MAX ${DLQ_MAX})`);
}

/** 5 and 6: the token revoked, restored, then the store failing under the backlog's records. */
async function revokeToken() {
  log(`Meta token revoked for ${REVOKE_SECS} s; a wave of ${WAVE} events comes in meanwhile`);
  stack.meta.setAccessToken('revoked-token');
  const end = Date.now() + REVOKE_SECS * 1000;
  const wave = Array.from({ length: WAVE }, (_, i) => ({ event_name: 'ViewContent', event_id: `wave-${i}`, event_source_url: 'https://shop.example/p/3', user_data: { em: `w${i}@example.com` } }));
  sent.push(...wave);
  let at = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (at < wave.length) { const b = wave.slice(at, at + BATCH); at += BATCH; await post(b); }
  }));
  await sleep(end - Date.now());
  const atMeta = stack.meta.requests().length;
  stack.meta.setAccessToken(TEST_SECRETS.META_ACCESS_TOKEN);
  log('Meta token restored; waiting for the held backlog');
  await waitFor(() => stack.meta.requests().length > atMeta, { what: 'a delivery after the fix', ms: (HOLD_SECS + 30) * 1000, every: 50 })
    .catch((e) => { log(`${e.message}; the worker's last lines:\n${stack.worker.logs.filter((l) => !l.includes('/collect')).slice(-40).join('\n')}`); });
  await outage({ status: 500 }, RECORD, 2 * HOLD_SECS * 1000);
  const seqNow = async () => (await stack.store.log(Number.MAX_SAFE_INTEGER)).last_seq;
  const from = await seqNow();
  await outage({ lose_reply: true }, RECORD, HOLD_SECS * 1000);
  const to = await seqNow();
  await sleep(500);
  seen.recordReplyLost = recordSeqs.filter(([q, st]) => q > from && q <= to && st === 200).length;
  log(`store outage under the records done: ${seen.recordReplyLost} record replies lost, ${seen.recordFailed} records failed`);
}

/** A worker's isolate writes what it still owes the books (as its next store call would). */
const settleBooks = (w) => fetch(`${w.url}/admin/stats`, { headers: admin }).then((r) => r.json()).catch(() => null);
const health = async () => { try { return await (await fetch(`${stack.url}/health`)).json(); } catch { return null; } };

async function sender(i) {
  while (next < EVENTS) {
    const batch = makeBatch();
    await post(batch, refusingWindow && i % 4 === 0 ? refusing.url : stack.url);
  }
}

// --- the run ----------------------------------------------------------------------------------------
const watchers = [watchStore(), watchHealth()];
const atMetaNow = () => new Set(stack.meta.received().map((e) => e.event_id)).size;
const t0 = Date.now();
/** A worker's "queue batch" log lines, parsed; with `queue`, only that queue's. */
const batchLogs = (w, queue) => w.logs
  .filter((l) => l.includes('"msg":"queue batch"') && (!queue || l.includes(`"queue":"${queue}"`)))
  .map((l) => JSON.parse(l.slice(l.indexOf('{'))));
const consumerTally = () => {
  const t = { batches: 0, messages: 0, delivered: 0, retried: 0, held: 0, dead_lettered: 0 };
  for (const b of batchLogs(stack.worker)) {
    t.batches += 1;
    for (const f of ['messages', 'delivered', 'retried', 'held', 'dead_lettered']) t[f] += b[f];
  }
  return t;
};
const progress = setInterval(() => log(`${next} sent, statuses ${JSON.stringify(statuses)}, refusing colo ${JSON.stringify(refusedStatuses)}, at Meta ${stack.meta.received().length} (${stack.meta.requests().length} requests); consumer ${JSON.stringify(consumerTally())}`), 5000);
const copies = await twoConsumers();
const phases = [];
const at = (fraction, fn) => { let done = false; return () => { if (!done && next >= EVENTS * fraction) { done = true; phases.push(fn()); } }; };
const triggers = [
  at(0.15, refusedReleases),
  at(0.5, async () => { log(`restarting redis at event ${next}`); await stack.redis.restart(); log('redis is back'); }),
  at(0.65, async () => refuseSome()),
];
const ticker = setInterval(() => triggers.forEach((t) => t()), 20);
await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => sender(i)));
clearInterval(ticker);
triggers.forEach((t) => t());
const sendSecs = (Date.now() - t0) / 1000;
log(`sent ${EVENTS} events (${sent.length} unique, ${duplicatesSent} repeats) in ${sendSecs.toFixed(1)} s; statuses ${JSON.stringify(statuses)}; refusing colo ${JSON.stringify(refusedStatuses)}`);
await Promise.all(phases);

// Every event at Meta but the refused ones, which fill the dead-letter store (the rest waiting on
// its queue); then the token's turn.
// Events that shared a consumer batch with refused ones can be there too (they follow them through
// retries): "delivered" here is all but those, or no progress at Meta for 20 s.
const firstWave = new Set([...sent.map((e) => e.event_id), ...copies.map((e) => e.event_id)]);
let last = { n: -1, at: Date.now() };
await waitFor(async () => {
  const n = atMetaNow();
  if (n !== last.n) last = { n, at: Date.now() };
  return seen.dlqDegraded && (n >= firstWave.size - BAD || Date.now() - last.at > 20_000)
    && (await (await fetch(`${stack.url}/admin/dlq?limit=1000`, { headers: admin })).json()).entries?.length >= DLQ_MAX;
}, { ms: 300_000, every: 1000, what: 'the first 50,000 delivered and a full dead-letter store' }).catch((e) => log(e.message));
log(`first part delivered: ${atMetaNow()} unique events at Meta; consumer ${JSON.stringify(consumerTally())}`);
await revokeToken();
// Meta takes the refused events again; the dead letters are replayed until every one is delivered.
stack.meta.setFault(FAIL);
const unique = new Set([...sent.map((e) => e.event_id), ...copies.map((e) => e.event_id)]);
let replayed = 0;
await waitFor(async () => {
  if (atMetaNow() >= unique.size) return true;
  const r = await fetch(`${stack.url}/admin/dlq/replay`, { method: 'POST', headers: admin, body: JSON.stringify({ all: true }) }).catch(() => null);
  if (r?.ok) replayed += (await r.json()).replayed.length;
  return false;
}, { ms: Math.max(10_000, Math.min(DEADLINE - Date.now() - 20_000, 300_000)), every: 2000, what: 'every unique event at Meta' })
  .catch((e) => log(e.message));
await sleep(5000); // let any stray second delivery show up
watching = false;
await Promise.all(watchers);

const runtimeErrors = [...new Set(stack.worker.logs.filter((l) => /\[mf:(error|warn)\]/.test(l)).map((l) => l.slice(0, 200)))];
if (runtimeErrors.length) log(`the local runtime's errors and warnings (${runtimeErrors.length} kinds):\n${runtimeErrors.slice(0, 8).join('\n')}`);
if (process.env.SOAK_KEEP) { log(`keeping the stack for a look: redis on ${stack.redis.port}`); await sleep(Number(process.env.SOAK_KEEP) * 1000); }
const got = stack.meta.received().map((e) => e.event_id);
const counts = new Map();
for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
const twice = [...counts].filter(([, n]) => n > 1);
const missing = [...unique].filter((id) => !counts.has(id));
const extra = [...counts.keys()].filter((id) => !unique.has(id));
if (missing.length) log(`not delivered: ${missing.slice(0, 10).join(', ')}`);
for (const [id] of twice.slice(0, 5)) log(`${id} delivered in requests ${stack.meta.received().filter((e) => e.event_id === id).map((e) => e.fbtrace_id).join(', ')}`);
await Promise.all([refusing, second].map(settleBooks));
const books = (await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json()).books;
const finalHealth = await health();
const fiveXX = Object.entries(statuses).filter(([s]) => Number(s) >= 500).reduce((a, [, n]) => a + n, 0);
const refused503 = refusedStatuses[503] ?? 0;
const refusedOther5xx = Object.entries(refusedStatuses).filter(([s]) => Number(s) >= 500 && s !== '503').reduce((a, [, n]) => a + n, 0);
const capi = stack.meta.requests().filter((r) => r.method === 'POST');
const secondMessages = batchLogs(second, 'edgekeeper-events').reduce((a, b) => a + b.messages, 0);
const leaseRetries = [stack.worker, second].flatMap((w) => batchLogs(w, 'edgekeeper-events')).reduce((a, b) => a + b.retried, 0);
const badAtMeta = badIds.filter((id) => counts.get(id) === 1).length;

log(`Meta holds ${counts.size} unique events (${copies.length} of them handed to both consumers), ${twice.length} twice, ${missing.length} missing, ${extra.length} unknown`);
log(`CAPI requests ${capi.length} (${capi.filter((r) => r.status !== 200).length} refused or failed by the fake)`);
log(`two consumers: the second took ${secondMessages} messages; batches retried (leases held elsewhere, Meta 5xx, holds) ${leaseRetries}`);
log(`refusing colo: ${refused503} answers 503 queue_unavailable (nothing accepted, resent); releases failed at the store ${seen.releaseFailed}; in-progress answers resent ${seen.inProgress}`);
log(`dead letters: ${BAD} refused by Meta, DLQ_MAX ${DLQ_MAX}, /health dlq degraded seen: ${seen.dlqDegraded}; replayed ${replayed}; delivered once ${badAtMeta}/${BAD}`);
log(`token revoked ${REVOKE_SECS} s: /health capi down seen: ${seen.capiDown ? 'yes' : 'no'}; record writes met the outage: ${seen.recordReplyLost} replies lost, ${seen.recordFailed} failed`);
log(`duplicates: ${duplicatesSent} repeats sent, ${duplicateAnswers} answered "duplicate", books ${books.duplicates}`);
log(`books ${JSON.stringify(books)}; /health after: capi ${finalHealth?.checks?.capi?.status}, dlq ${finalHealth?.checks?.dlq?.status}`);
const checks = {
  'each unique event at Meta once': twice.length === 0 && missing.length === 0 && extra.length === 0,
  'books balanced': books.accepted === unique.size && books.delivered === unique.size && books.in_flight === 0 && books.dead_lettered === 0,
  'duplicates counted as answered': books.duplicates === duplicateAnswers,
  'no 5xx (but the refusing colo\'s 503)': fiveXX === 0 && refusedOther5xx === 0,
  'the second consumer took every copy': secondMessages >= copies.length,
  'releases met the store outage': seen.releaseFailed > 0 && refused503 > 0,
  'records met the store outage': seen.recordFailed + seen.recordReplyLost > 0,
  'dlq alarm raised and cleared': seen.dlqDegraded && finalHealth?.checks?.dlq?.status === 'ok' && badAtMeta === BAD,
  'capi alarm raised and cleared': Boolean(seen.capiDown) && finalHealth?.checks?.capi?.status === 'ok',
};
for (const [what, ok] of Object.entries(checks)) if (!ok) log(`FAILED: ${what}`);
const ok = Object.values(checks).every(Boolean);
log(`${ok ? 'PASS' : 'FAIL'} (5xx answers: ${fiveXX}${firstError ? `; first: ${firstError}` : ''})`);
clearTimeout(timer);
clearInterval(progress);
await Promise.all([refusing.stop(), second.stop()]);
await stack.stop();
process.exit(ok ? 0 : 1);
