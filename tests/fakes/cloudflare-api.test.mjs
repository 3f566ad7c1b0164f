// Tests of the Cloudflare Zaraz API fake itself: node --test tests/fakes/cloudflare-api.test.mjs
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startCloudflareFake, VALIDATION_ERROR_CODE } from './cloudflare-api.mjs';

const TOKEN = 'test-token-0123456789';
const ZONE = '023e105f4ecef8ad9ca31a8372d0c353';
const FAKE_PATH = fileURLToPath(new URL('./cloudflare-api.mjs', import.meta.url));

let cf;
before(async () => {
  cf = await startCloudflareFake({ apiToken: TOKEN, zoneId: ZONE });
});
after(() => cf.close());
beforeEach(() => cf.reset());

/** Calls the fake's API; `body` is JSON-encoded unless `raw` is given. */
async function call(method, path, { body, raw, token = TOKEN, signal } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${cf.apiBase}${path}`, {
    method, headers, signal, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

const zaraz = (rest) => `/zones/${ZONE}/settings/zaraz/${rest}`;
const getConfig = async () => (await call('GET', zaraz('config'))).json.result;
const putConfig = (config) => call('PUT', zaraz('config'), { body: config });
const control = (method, name, body) => fetch(`${cf.url}/__control/${name}`, {
  method, body: body === undefined ? undefined : JSON.stringify(body),
}).then(async (r) => ({ status: r.status, json: await r.json() }));

/** The config a careful client would PUT after a GET: renamed trigger, version dropped. */
function edited(config, name = 'Lead (edited)') {
  const next = structuredClone(config);
  next.triggers.leadTrig01.name = name;
  return next;
}

describe('envelope, auth and routing', () => {
  test('missing or wrong token answers 401 with code 10000', async () => {
    for (const token of ['', 'wrong-token']) {
      const { status, json } = await call('GET', zaraz('config'), { token });
      assert.equal(status, 401);
      assert.deepEqual(json, { success: false, errors: [{ code: 10000, message: 'Authentication error' }],
        messages: [], result: null });
    }
  });

  test('unknown zone answers 404 with code 7003; unknown route adds 7000', async () => {
    const zone = await call('GET', '/zones/ffffffffffffffffffffffffffffffff/settings/zaraz/config');
    assert.equal(zone.status, 404);
    assert.deepEqual(zone.json.errors.map((e) => e.code), [7003]);
    const route = await call('DELETE', zaraz('config'));
    assert.equal(route.status, 404);
    assert.deepEqual(route.json.errors.map((e) => e.code), [7003, 7000]);
  });

  test('malformed JSON answers 400 with code 6007 and stores nothing', async () => {
    const { status, json } = await call('PUT', zaraz('config'), { raw: '{"tools": ' });
    assert.equal(status, 400);
    assert.equal(json.errors[0].code, 6007);
    assert.equal(cf.config().zarazVersion, 43);
  });
});

describe('config GET/PUT', () => {
  test('GET strips secret values; config() keeps them', async () => {
    const { status, json } = await call('GET', zaraz('config'));
    assert.equal(status, 200);
    assert.equal(json.success, true);
    assert.deepEqual(json.errors, []);
    assert.equal(json.result.variables.capiToken01.type, 'secret');
    assert.equal('value' in json.result.variables.capiToken01, false);
    assert.equal(json.result.variables.siteName01.value, 'Example Store');
    assert.equal(cf.config().variables.capiToken01.value, 'EAAGfakeCapiToken0001');
  });

  test('GET export includes secret values', async () => {
    const r = await call('GET', zaraz('export'));
    assert.equal(r.status, 200);
    assert.equal(r.json.result.variables.capiToken01.value, 'EAAGfakeCapiToken0001');
  });

  test('PUT round trip replaces the config, bumps the version, adds history, keeps secrets', async () => {
    const before = await getConfig();
    const { status, json } = await putConfig(edited(before));
    assert.equal(status, 200);
    assert.equal(json.result.zarazVersion, 44);
    assert.equal(json.result.triggers.leadTrig01.name, 'Lead (edited)');
    assert.equal('value' in json.result.variables.capiToken01, false);
    assert.equal(cf.config().variables.capiToken01.value, 'EAAGfakeCapiToken0001');
    const history = cf.history();
    assert.equal(history.length, 2);
    assert.equal(history[0].description, 'Updated via API');
    assert.equal(history[0].config.zarazVersion, 44);
  });

  test('PUT is a full replace: omitted tools are dropped', async () => {
    const config = await getConfig();
    config.tools = {};
    assert.equal((await putConfig(config)).status, 200);
    assert.deepEqual(cf.config().tools, {});
  });

  test('dropSecretsWithoutValue wipes a secret sent without value', async () => {
    const wiping = await startCloudflareFake({ apiToken: TOKEN, zoneId: ZONE, dropSecretsWithoutValue: true });
    try {
      const headers = { authorization: `Bearer ${TOKEN}` };
      const base = `${wiping.apiBase}${zaraz('config')}`;
      const got = (await (await fetch(base, { headers })).json()).result;
      const res = await fetch(base, { method: 'PUT', headers, body: JSON.stringify(got) });
      assert.equal(res.status, 200);
      assert.equal('value' in wiping.config().variables.capiToken01, false);
    } finally {
      await wiping.close();
    }
  });

  test('a new secret variable without value is rejected', async () => {
    const config = await getConfig();
    config.variables.newSecret = { name: 'New secret', type: 'secret' };
    const { status, json } = await putConfig(config);
    assert.equal(status, 400);
    assert.match(json.errors[0].message, /variables\.newSecret\.value/);
  });

  test('a dangling firingTriggers id answers 400 naming it, and stores nothing', async () => {
    const config = await getConfig();
    config.tools.fbPixel01.neoEvents[1].firingTriggers = ['leadTrig01', 'ghostTrigger'];
    const { status, json } = await putConfig(config);
    assert.equal(status, 400);
    assert.equal(json.success, false);
    assert.equal(json.errors[0].code, VALIDATION_ERROR_CODE);
    assert.match(json.errors[0].message, /tools\.fbPixel01\.neoEvents\[1\]\.firingTriggers.*"ghostTrigger"/);
    assert.equal(cf.config().zarazVersion, 43);
  });

  test('shape validation lists each problem', async () => {
    const config = await getConfig();
    config.triggers.leadTrig01.loadRules = [{ id: 'r1', match: '{{ client.__zarazTrack }}', op: 'IS' }];
    delete config.triggers.Pageview.excludeRules;
    const { status, json } = await putConfig(config);
    assert.equal(status, 400);
    const messages = json.errors.map((e) => e.message);
    assert.ok(messages.some((m) => /leadTrig01\.loadRules\[0\]\.op/.test(m)), messages.join('\n'));
    assert.ok(messages.some((m) => /leadTrig01\.loadRules\[0\]\.value/.test(m)), messages.join('\n'));
    assert.ok(messages.some((m) => /Pageview\.excludeRules/.test(m)), messages.join('\n'));
    const missing = await putConfig({ tools: {}, triggers: {} });
    assert.equal(missing.status, 400);
    assert.ok(missing.json.errors.some((e) => /dataLayer/.test(e.message)));
  });

  test('GET default answers a valid default config', async () => {
    const { status, json } = await call('GET', zaraz('default'));
    assert.equal(status, 200);
    assert.equal(json.result.triggers.Pageview.system, 'pageload');
    assert.equal((await putConfig(json.result)).status, 200);
  });
});

describe('zarazVersion policies', () => {
  test("'reject' refuses a body with zarazVersion and accepts one without", async () => {
    cf.setVersionPolicy('reject');
    const config = await getConfig();
    const refused = await putConfig(config);
    assert.equal(refused.status, 400);
    assert.match(refused.json.errors[0].message, /zarazVersion/);
    delete config.zarazVersion;
    const accepted = await putConfig(config);
    assert.equal(accepted.status, 200);
    assert.equal(accepted.json.result.zarazVersion, 44);
  });

  test("'require' refuses a body without zarazVersion", async () => {
    cf.setVersionPolicy('require');
    const config = await getConfig();
    const { zarazVersion, ...without } = config;
    const refused = await putConfig(without);
    assert.equal(refused.status, 400);
    assert.match(refused.json.errors[0].message, /zarazVersion is required/);
    assert.equal((await putConfig({ ...without, zarazVersion: zarazVersion - 5 })).status, 200);
  });

  test("'fence' refuses a stale version with 409 and accepts the current one", async () => {
    cf.setVersionPolicy('fence');
    const config = await getConfig();
    const stale = await putConfig({ ...config, zarazVersion: 42 });
    assert.equal(stale.status, 409);
    assert.match(stale.json.errors[0].message, /zarazVersion 42 is stale.*43.*conflict/);
    const { zarazVersion, ...without } = config;
    assert.equal((await putConfig(without)).status, 400);
    const current = await putConfig({ ...config, zarazVersion });
    assert.equal(current.status, 200);
    assert.equal(current.json.result.zarazVersion, 44);
  });

  test("'ignore' accepts both forms", async () => {
    cf.setVersionPolicy('ignore');
    const config = await getConfig();
    assert.equal((await putConfig(config)).status, 200);
    delete config.zarazVersion;
    assert.equal((await putConfig(config)).status, 200);
    assert.equal(cf.config().zarazVersion, 45);
  });

  test('the policy can be switched over HTTP and bad values are refused', async () => {
    assert.equal((await control('PUT', 'version-policy', 'reject')).status, 200);
    assert.equal((await putConfig(await getConfig())).status, 400);
    assert.equal((await control('PUT', 'version-policy', 'sometimes')).status, 400);
    assert.throws(() => cf.setVersionPolicy('sometimes'), TypeError);
  });
});

describe('faults', () => {
  test('504 with land=true applies the change behind an edge error page', async () => {
    cf.setFault({ put_status: 504, land: true });
    const res = await putConfig(edited(await getConfig()));
    assert.equal(res.status, 504);
    assert.equal(res.json, undefined);
    assert.match(res.text, /<title>504 Gateway Timeout<\/title>.*cloudflare/s);
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead (edited)');
    assert.equal(cf.config().zarazVersion, 44);
  });

  test('504 with land=false changes nothing, for `times` PUTs only', async () => {
    cf.setFault({ put_status: 504, land: false, times: 2 });
    const config = edited(await getConfig());
    assert.equal((await putConfig(config)).status, 504);
    assert.equal((await putConfig(config)).status, 504);
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead');
    assert.equal((await putConfig(config)).status, 200);
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead (edited)');
  });

  test('after_puts lets the first PUTs through before the 504', async () => {
    cf.setFault({ put_status: 504, land: false, after_puts: 1 });
    const config = edited(await getConfig());
    assert.equal((await putConfig(config)).status, 200);
    assert.equal((await putConfig(config)).status, 504);
    assert.equal((await putConfig(config)).status, 200);
  });

  test('max_put_bytes answers 504 without landing for large bodies only', async () => {
    const config = await getConfig();
    const size = Buffer.byteLength(JSON.stringify(config));
    cf.setFault({ max_put_bytes: size + 100 });
    const big = edited(config);
    big.tools.fbPixel01.settings.padding = 'x'.repeat(200);
    assert.equal((await putConfig(big)).status, 504);
    assert.equal(cf.config().zarazVersion, 43);
    assert.equal((await putConfig(edited(config))).status, 200);
  });

  test('put_delay_ms outlasts a client timeout and the change still lands', async () => {
    cf.setFault({ put_delay_ms: 300 });
    await assert.rejects(
      call('PUT', zaraz('config'), { body: edited(await getConfig()), signal: AbortSignal.timeout(50) }),
      { name: 'TimeoutError' },
    );
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead (edited)');
  });

  test('concurrent_edit lands after the k-th GET, so a PUT from that GET would clobber it', async () => {
    const set = await control('POST', 'fault', { concurrent_edit: { after_gets: 2, rename_trigger: 'leadTrig01',
      name: 'Lead (dashboard)' } });
    assert.equal(set.status, 200);
    await getConfig();
    assert.equal(cf.config().zarazVersion, 43);
    const read = await getConfig();
    assert.equal(read.triggers.leadTrig01.name, 'Lead');
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead (dashboard)');
    assert.equal(cf.config().zarazVersion, 44);
    assert.equal(cf.history()[0].description, 'Edited in the dashboard');

    cf.setVersionPolicy('fence');
    const fenced = await putConfig(edited(read, 'Lead (sync)'));
    assert.equal(fenced.status, 409);
    cf.setVersionPolicy('ignore');
    assert.equal((await putConfig(edited(read, 'Lead (sync)'))).status, 200);
    assert.equal(cf.config().triggers.leadTrig01.name, 'Lead (sync)'); // the dashboard edit is lost
  });

  test('concurrent_edit can add a trigger; a spec that cannot apply is refused', async () => {
    cf.setFault({ concurrent_edit: { after_gets: 1, add_trigger: { id: 'dashTrig01', name: 'Signup' } } });
    await getConfig();
    assert.equal(cf.config().triggers.dashTrig01.loadRules[0].value, 'Signup');
    const refused = await control('POST', 'fault', { concurrent_edit: { after_gets: 1, rename_trigger: 'nope' } });
    assert.equal(refused.status, 400);
    assert.throws(() => cf.setFault({ bogus: 1 }), /unknown fault/);
  });

  test('status faults hit any endpoint `times` times, then clear', async () => {
    await control('POST', 'fault', { status: 500, times: 2 });
    const first = await call('GET', zaraz('workflow'));
    assert.equal(first.status, 500);
    assert.equal(first.json.success, false);
    assert.equal((await call('GET', zaraz('history'))).status, 500);
    assert.equal((await call('GET', zaraz('workflow'))).status, 200);
    cf.setFault({ status: 401 });
    const auth = await call('GET', zaraz('config'));
    assert.equal(auth.status, 401);
    assert.equal(auth.json.errors[0].code, 10000);
  });

  test('DELETE /__control/fault clears every fault', async () => {
    cf.setFault({ put_status: 504 });
    cf.setFault({ max_put_bytes: 1 });
    assert.equal((await control('DELETE', 'fault')).status, 200);
    assert.equal((await putConfig(await getConfig())).status, 200);
  });
});

describe('history, publish, workflow', () => {
  test('history lists records newest first with paging and sorting', async () => {
    const config = await getConfig();
    await putConfig(edited(config, 'Lead 2'));
    await putConfig(edited(config, 'Lead 3'));
    const { status, json } = await call('GET', zaraz('history'));
    assert.equal(status, 200);
    assert.deepEqual(json.result.map((r) => r.id), [3, 2, 1]);
    assert.deepEqual(Object.keys(json.result[0]).sort(), ['createdAt', 'description', 'id', 'updatedAt', 'userId']);
    const page = await call('GET', zaraz('history?offset=1&limit=1&sortField=id&sortOrder=ASC'));
    assert.deepEqual(page.json.result.map((r) => r.id), [2]);
    assert.equal((await call('GET', zaraz('history?sortOrder=UP'))).status, 400);
    assert.equal((await call('GET', zaraz('history?sortField=constructor'))).status, 400);
  });

  test('history/configs answers configs keyed by id, secrets stripped', async () => {
    await putConfig(edited(await getConfig()));
    const { status, json } = await call('GET', zaraz('history/configs?ids=1,2'));
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(json.result), ['1', '2']);
    assert.equal(json.result['1'].config.triggers.leadTrig01.name, 'Lead');
    assert.equal(json.result['2'].config.triggers.leadTrig01.name, 'Lead (edited)');
    assert.equal('value' in json.result['1'].config.variables.capiToken01, false);
    assert.equal((await call('GET', zaraz('history/configs'))).status, 400);
  });

  test('PUT history restores a record as a new version with its secrets', async () => {
    await putConfig(edited(await getConfig()));
    const { status, json } = await call('PUT', zaraz('history'), { body: 1 });
    assert.equal(status, 200);
    assert.equal(json.result.triggers.leadTrig01.name, 'Lead');
    assert.equal(json.result.zarazVersion, 45);
    assert.equal(cf.config().variables.capiToken01.value, 'EAAGfakeCapiToken0001');
    assert.equal(cf.history()[0].description, 'Restored configuration 1');
    assert.equal((await call('PUT', zaraz('history'), { body: 99 })).status, 404);
    assert.equal((await call('PUT', zaraz('history'), { body: 'one' })).status, 400);
  });

  test('workflow GET/PUT and publish', async () => {
    assert.equal((await call('GET', zaraz('workflow'))).json.result, 'realtime');
    const put = await call('PUT', zaraz('workflow'), { body: 'preview' });
    assert.equal(put.json.result, 'preview');
    assert.equal((await call('GET', zaraz('workflow'))).json.result, 'preview');
    assert.equal((await call('PUT', zaraz('workflow'), { body: 'later' })).status, 400);
    const published = await call('POST', zaraz('publish'), { body: 'edgekeeper sync' });
    assert.equal(published.status, 200);
    assert.equal(typeof published.json.result, 'string');
    assert.equal(cf.history()[0].description, 'edgekeeper sync');
    assert.equal((await call('POST', zaraz('publish'), { body: { text: 'x' } })).status, 400);
  });
});

describe('control and inspection', () => {
  test('requests are logged without the token, with had_zaraz_version', async () => {
    const config = await getConfig();
    await putConfig(config);
    const { zarazVersion, ...without } = config;
    await putConfig(without);
    await call('GET', zaraz('config'), { token: 'nope' });
    const { json } = await control('GET', 'requests');
    assert.deepEqual(json.map((r) => [r.method, r.status, r.had_zaraz_version]),
      [['GET', 200, false], ['PUT', 200, true], ['PUT', 200, false], ['GET', 401, false]]);
    assert.equal(json[1].path, `/client/v4${zaraz('config')}`);
    assert.ok(json[1].body_bytes > 100);
    assert.ok(!Number.isNaN(Date.parse(json[0].at)));
    assert.ok(!JSON.stringify(cf.requests()).includes(TOKEN));
  });

  test('edit, config, history and reset over HTTP', async () => {
    const rename = await control('POST', 'edit', { rename_trigger: 'leadTrig01', name: 'Renamed' });
    assert.equal(rename.status, 200);
    await control('POST', 'edit', { add_trigger: { id: 'extra01', name: 'Extra' } });
    const { json: config } = await control('GET', 'config');
    assert.equal(config.triggers.leadTrig01.name, 'Renamed');
    assert.equal(config.triggers.extra01.name, 'Extra');
    assert.equal(config.variables.capiToken01.value, 'EAAGfakeCapiToken0001');
    assert.equal(config.zarazVersion, 45);
    assert.equal((await control('GET', 'history')).json.length, 3);
    assert.equal((await control('POST', 'edit', { rename_trigger: 'missing' })).status, 400);
    assert.equal((await control('POST', 'reset')).status, 200);
    assert.equal(cf.config().zarazVersion, 43);
    assert.equal(cf.history().length, 1);
    assert.deepEqual(cf.requests(), []);
  });

  test('editConfig applies a function as a dashboard edit', () => {
    const after = cf.editConfig((c) => (c.debugKey = 'changed'));
    assert.equal(after.debugKey, 'changed');
    assert.equal(after.zarazVersion, 44);
    assert.equal(cf.history()[0].userId, 'f0e9d8c7b6a5948372615a4b3c2d1e0f');
  });

  test('reset takes a replacement config and rejects an invalid one', async () => {
    const config = cf.config();
    delete config.zarazVersion;
    config.tools = {};
    cf.reset(config);
    assert.equal(cf.config().zarazVersion, 1);
    assert.deepEqual((await getConfig()).tools, {});
    assert.throws(() => cf.reset({ tools: {} }), /invalid initial config/);
  });

  test('startCloudflareFake checks its options', async () => {
    await assert.rejects(startCloudflareFake({ apiToken: TOKEN, zoneId: 'example.com' }), /zoneId/);
    await assert.rejects(startCloudflareFake({ zoneId: ZONE }), /apiToken/);
    await assert.rejects(startCloudflareFake({ apiToken: TOKEN, zoneId: ZONE, versionPolicy: 'x' }), /versionPolicy/);
  });
});

test('CLI prints the banner, serves the API and exits on SIGTERM', async () => {
  const child = spawn(process.execPath, [FAKE_PATH, '--port', '0', '--token', TOKEN, '--zone', ZONE,
    '--version-policy', 'fence'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const firstLine = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]);
    });
    child.once('exit', () => reject(new Error(`CLI exited before printing a banner: ${out}`)));
  });
  try {
    const match = /^cloudflare-fake listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(firstLine);
    assert.ok(match, firstLine);
    const base = `${match[1]}/client/v4${zaraz('config')}`;
    const got = await fetch(base, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(got.status, 200);
    const config = (await got.json()).result;
    delete config.zarazVersion;
    const put = await fetch(base, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(config) });
    assert.equal(put.status, 400); // --version-policy fence took effect
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
});
