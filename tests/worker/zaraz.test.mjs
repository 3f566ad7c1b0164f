// Zaraz sync through workerd against the Cloudflare API fake, under each way the API may treat
// `zarazVersion` (reject it, require it, fence on it, ignore it).

import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, startWorker, TEST_SECRETS } from '../support/stack.mjs';
import { startCloudflareFake, defaultInitialConfig } from '../fakes/cloudflare-api.mjs';

const ZONE = '0123456789abcdef0123456789abcdef';
const STANDARD = ['PageView', 'ViewContent', 'Search', 'AddToCart', 'AddToWishlist', 'InitiateCheckout', 'AddPaymentInfo', 'Purchase', 'Lead',
  'CompleteRegistration', 'Contact', 'CustomizeProduct', 'Donate', 'FindLocation', 'Schedule', 'StartTrial', 'SubmitApplication', 'Subscribe'];
const MISSING = ['ViewContent', 'AddToCart', 'Purchase'];
const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, 'content-type': 'application/json' };

let cf, stack;

/** Every catalog event but three has a hand-made trigger; a leftover debug trigger a tool fires on. */
function seed() {
  const c = defaultInitialConfig();
  for (const e of STANDARD.filter((x) => !MISSING.includes(x) && x !== 'Lead')) {
    c.triggers[`hand${e}`] = { name: e, description: 'set up by hand', excludeRules: [], clientRules: [],
      loadRules: [{ id: `handRule${e}`, match: '{{ client.__zarazTrack }}', op: 'EQUALS', value: e }] };
  }
  c.triggers.debugTrig = { name: 'ek-debug-test', description: 'left over', excludeRules: [], clientRules: [],
    loadRules: [{ id: 'debugRule', match: '{{ client.__zarazTrack }}', op: 'EQUALS', value: 'DebugPing' }] };
  c.tools.fbPixel01.neoEvents.push({ actionType: 'event', firingTriggers: ['debugTrig'], blockingTriggers: [], data: { ev: 'DebugPing' } });
  return c;
}

const tracking = (config, event) => Object.entries(config.triggers)
  .filter(([, t]) => !t.system && (t.loadRules ?? []).some((r) => r.match?.replace(/\s/g, '') === '{{client.__zarazTrack}}' && r.op === 'EQUALS' && r.value === event))
  .map(([id]) => id);
const puts = () => cf.requests().filter((r) => r.method === 'PUT' && r.path.endsWith('/settings/zaraz/config'));
const withoutVersion = ({ zarazVersion, ...rest }) => rest;

async function sync(body = {}, url = stack.url, headers = admin) {
  const r = await fetch(`${url}/admin/zaraz/sync`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

async function fresh(policy = 'ignore') {
  cf.reset(seed());
  cf.setVersionPolicy(policy);
  // Each scenario starts without a remembered checkpoint.
  await fetch(`${stack.url}/admin/store/purge?site=${ZONE}`, { method: 'POST', headers: admin, body: '{"module":"zaraz"}' });
}

before(async () => {
  cf = await startCloudflareFake({ apiToken: TEST_SECRETS.CLOUDFLARE_API_TOKEN, zoneId: ZONE });
  stack = await startStack({ vars: { CLOUDFLARE_API_BASE: cf.apiBase, CLOUDFLARE_ZONE_ID: ZONE } });
});
after(async () => {
  await stack?.stop();
  await cf?.close();
});
beforeEach(() => fresh());

for (const policy of ['reject', 'require', 'fence', 'ignore']) {
  test(`zarazVersion ${policy}: three missing triggers added across chunks through a 504; right, once, secret alive; re-run a no-op`, async () => {
    await fresh(policy);
    const start = cf.config();
    cf.setFault({ put_status: 504, land: true, after_puts: 1 });
    const r = await sync();
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 2000));
    const report = r.body;
    assert.equal(report.outcome, 'applied');
    assert.deepEqual(report.plan.add.map((a) => a.event).sort(), [...MISSING].sort());
    assert.ok(report.chunks.length >= 2, 'across chunks');
    assert.ok(report.chunks.some((c) => c.answers.some((a) => a.startsWith('unknown outcome'))), 'the 504 shows in the report');
    assert.equal(report.verification.ok, true);
    const now = cf.config();
    for (const e of STANDARD) assert.equal(tracking(now, e).length, 1, `${e} exactly once`);
    for (const [id, t] of Object.entries(start.triggers)) assert.deepEqual(now.triggers[id], t, `${id} untouched`);
    assert.equal(now.variables.capiToken01.value, start.variables.capiToken01.value, 'the secret survived');
    const landed = puts().filter((p) => p.status === 200);
    if (policy === 'reject') assert.ok(landed.every((p) => !p.had_zaraz_version), 'no landed PUT carried zarazVersion');
    if (policy === 'require' || policy === 'fence') assert.ok(landed.every((p) => p.had_zaraz_version));
    const n = puts().length;
    const again = await sync();
    assert.equal(again.body.outcome, 'no_changes');
    assert.equal(puts().length, n, 'a re-run writes nothing');
  });
}

for (const policy of ['reject', 'require', 'fence', 'ignore']) {
  test(`zarazVersion ${policy}: a named test trigger is removed when asked, with the tool references to it`, async () => {
    await fresh(policy);
    const r = await sync({ remove: ['ek-debug-test'] });
    assert.equal(r.status, 200);
    const now = cf.config();
    assert.equal(now.triggers.debugTrig, undefined);
    assert.ok(!JSON.stringify(now.tools).includes('debugTrig'));
    const system = await sync({ remove: ['Pageview'] });
    assert.equal(system.status, 400);
    assert.equal(system.body.error.code, 'invalid_request');
  });

  test(`zarazVersion ${policy}: a concurrent dashboard edit survives the sync`, async () => {
    await fresh(policy);
    cf.setFault({ concurrent_edit: { after_gets: 2, rename_trigger: 'leadTrig01', name: 'Lead (edited in the dashboard)' } });
    const r = await sync();
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 1000));
    const now = cf.config();
    assert.equal(now.triggers.leadTrig01.name, 'Lead (edited in the dashboard)');
    for (const e of MISSING) assert.equal(tracking(now, e).length, 1);
  });

  test(`zarazVersion ${policy}: diff and dry run write nothing; history lists records`, async () => {
    await fresh(policy);
    const d = await (await fetch(`${stack.url}/admin/zaraz/diff`, { headers: admin })).json();
    assert.deepEqual(d.add.map((a) => a.event).sort(), [...MISSING].sort());
    const before = puts().length;
    const r = await sync({ dry_run: true });
    assert.equal(r.status, 200);
    assert.equal(puts().length, before);
    assert.deepEqual(tracking(cf.config(), 'Purchase'), []);
    const h = await (await fetch(`${stack.url}/admin/zaraz/history?limit=5`, { headers: admin })).json();
    assert.ok(h.records.length >= 1 && h.records[0].id);
  });
}

test('bad admin token 401, malformed body 400, a Cloudflare 401 names the token', async () => {
  assert.equal((await sync({}, stack.url, { authorization: 'Bearer nope-nope-nope-nope' })).status, 401);
  const bad = await sync('{"dry_run": ');
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'invalid_json');
  const unknown = await sync({ dryrun: true });
  assert.equal(unknown.status, 400);
  const w = await startWorker({ vars: { ...stack.vars, CLOUDFLARE_API_BASE: cf.apiBase, CLOUDFLARE_ZONE_ID: ZONE, CLOUDFLARE_API_TOKEN: 'wrong-token' } });
  try {
    const r = await sync({}, w.url);
    assert.equal(r.status, 502);
    assert.equal(r.body.error.code, 'cloudflare_unauthorized');
    assert.match(r.body.error.message, /CLOUDFLARE_API_TOKEN/);
    assert.ok(!JSON.stringify(r.body).includes('wrong-token'));
  } finally {
    await w.stop();
  }
});

test('a verification that cannot succeed ends in a restore from history', async () => {
  const start = cf.config();
  cf.setFault({ put_status: 504, land: false, times: 50, after_puts: 1 });
  const r = await sync();
  assert.equal(r.status, 502);
  assert.equal(r.body.report.outcome, 'rolled_back', JSON.stringify(r.body).slice(0, 1500));
  assert.equal(r.body.report.rollback.ok, true);
  assert.deepEqual(withoutVersion(cf.config()), withoutVersion(start), 'the config the sync started from');
  cf.setFault({});
});

test('the cron records drift for /admin/stats without writing', async () => {
  const before = puts().length;
  const w = await stack.worker.mf.getWorker();
  assert.equal((await w.scheduled({ cron: '*/5 * * * *' })).outcome, 'ok');
  const stats = await (await fetch(`${stack.url}/admin/stats`, { headers: admin })).json();
  assert.equal(stats.zaraz.drift.drift, true);
  assert.deepEqual(stats.zaraz.drift.add.sort(), [...MISSING].sort());
  assert.equal(puts().length, before);
});

test('a zone that wipes secrets sent without a value still keeps its secret', async () => {
  const harsh = await startCloudflareFake({ apiToken: TEST_SECRETS.CLOUDFLARE_API_TOKEN, zoneId: ZONE, dropSecretsWithoutValue: true, initialConfig: seed() });
  const w = await startWorker({ vars: { ...stack.vars, CLOUDFLARE_API_BASE: harsh.apiBase, CLOUDFLARE_ZONE_ID: ZONE } });
  try {
    await fetch(`${w.url}/admin/store/purge?site=${ZONE}`, { method: 'POST', headers: admin, body: '{"module":"zaraz"}' });
    const secret = harsh.config().variables.capiToken01.value;
    const r = await sync({}, w.url);
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 1000));
    assert.equal(harsh.config().variables.capiToken01.value, secret);
    for (const e of MISSING) assert.equal(tracking(harsh.config(), e).length, 1);
    assert.ok(!JSON.stringify(r.body).includes(secret), 'the secret never appears in the report');
  } finally {
    await w.stop();
    await harsh.close();
  }
});

test('where secrets cannot be carried (preview workflow) the sync refuses until the operator says the zone keeps them', async () => {
  await fetch(`${cf.apiBase}/zones/${ZONE}/settings/zaraz/workflow`, {
    method: 'PUT', headers: { authorization: `Bearer ${TEST_SECRETS.CLOUDFLARE_API_TOKEN}`, 'content-type': 'application/json' }, body: '"preview"',
  });
  const before = puts().length;
  const refused = await sync();
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, 'secrets_at_risk');
  assert.match(refused.body.error.message, /capiToken01/);
  assert.equal(puts().length, before, 'nothing written');
  const said = await fetch(`${stack.url}/admin/zaraz/secret-handling`, { method: 'POST', headers: admin, body: '{"keeps_secrets": true}' });
  assert.equal(said.status, 200);
  const r = await sync({ publish: true });
  assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 800));
  assert.equal(r.body.publish.published, true);
  assert.equal(cf.config().variables.capiToken01.value, 'EAAGfakeCapiToken0001');
});

test('a body that is not a JSON object is a 400 and nothing is read or written', async () => {
  for (const body of ['[]', '"x"', '1', 'null', '[{"dry_run":false}]']) {
    const n = cf.requests().length;
    const r = await sync(body);
    assert.equal(r.status, 400, `${body}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'invalid_body', body);
    assert.equal(typeof r.body.error.message, 'string');
    assert.equal(cf.requests().length, n, `${body}: no Cloudflare API call`);
  }
  assert.deepEqual(tracking(cf.config(), 'Purchase'), [], 'no sync ran');
  // An empty body still means the defaults (README).
  assert.equal((await sync('')).body.outcome, 'applied');
});

test('ZARAZ_CALL_BUDGET pauses a run; the re-run keeps its remove list, and other options are a 409 until it is done', async () => {
  const w = await startWorker({ vars: { ...stack.vars, CLOUDFLARE_API_BASE: cf.apiBase, CLOUDFLARE_ZONE_ID: ZONE, ZARAZ_CALL_BUDGET: '10' } });
  try {
    const first = await sync({ remove: ['ek-debug-test'] }, w.url);
    assert.equal(first.body.outcome, 'paused', JSON.stringify(first.body).slice(0, 1500));
    assert.ok(cf.config().triggers.debugTrig, 'the removal is still to come');
    const n = puts().length;
    const other = await sync({ remove: ['something else'] }, w.url);
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'conflict');
    assert.match(other.body.error.message, /ek-debug-test/);
    assert.equal(puts().length, n, 'nothing written');
    const second = await sync({}, w.url);
    assert.equal(second.body.outcome, 'applied', JSON.stringify(second.body).slice(0, 1500));
    assert.equal(second.body.checkpoint.resumed, true);
    assert.deepEqual(second.body.remove, ['ek-debug-test']);
    const now = cf.config();
    assert.equal(now.triggers.debugTrig, undefined, 'removed although the re-run did not repeat it');
    for (const e of MISSING) assert.equal(tracking(now, e).length, 1, e);
  } finally {
    await w.stop();
  }
});
