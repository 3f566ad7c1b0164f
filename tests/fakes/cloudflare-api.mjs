#!/usr/bin/env node
/**
 * Fake of the Cloudflare v4 API's Zaraz endpoints, for testing edgekeeper's Zaraz sync against the
 * documented contract and the failure modes seen in the field. ES module, Node built-ins only.
 *
 *   import { startCloudflareFake } from './cloudflare-api.mjs';
 *   const cf = await startCloudflareFake({ apiToken: 't', zoneId: '0123…(32 hex)' });
 *   // API base: `${cf.url}/client/v4` (also `cf.apiBase`)
 *
 *   node tests/fakes/cloudflare-api.mjs --port 8082 --token TOKEN --zone ZONEID \
 *        [--version-policy reject|require|fence|ignore] [--drop-secrets-without-value] [--host H]
 *   prints one line `cloudflare-fake listening on http://127.0.0.1:PORT` and runs until SIGINT/SIGTERM.
 *
 * Sources (cited as [n] below):
 *  [1] Contract: /work/shared/reference/zaraz-api.md (endpoints, config shape, field observations).
 *  [2] Cloudflare API reference, "Update Zaraz configuration" (PUT /zones/{zone_id}/settings/zaraz/config):
 *      https://developers.cloudflare.com/api/resources/zaraz/subresources/config/methods/update/
 *      and "Get Zaraz configuration": "Secret variables values will not be included"; permissions
 *      Zaraz Read/Edit/Admin; envelope {errors:[{code,message,…}], messages, result, success}.
 *  [3] Cloudflare OpenAPI schema (cloudflare/api-schemas, as split in Yuyz0112/public-api-skills
 *      apis/cloudflare/cloudflare-api/references/schemas/zaraz/zaraz-zaraz-config-base.md): required
 *      config fields dataLayer, debugKey, settings (settings.autoInjectScript), tools, triggers,
 *      variables, zarazVersion ("Zaraz internal version of the config").
 *  [4] SDK generated from that schema, cloudflare/cloudflare-typescript src/resources/zaraz/
 *      {config,workflow,publish}.ts and history/{history,configs}.ts: trigger = {name, description?,
 *      loadRules, excludeRules, system?: 'pageload'}; rule = {id, match, op ∈ CONTAINS|EQUALS|…, value}
 *      or {id, action ∈ clickListener|timer|…, settings}; tool = {name, type ∈ component|custom-mc,
 *      enabled, blockingTriggers, neoEvents?/actions? with firingTriggers/blockingTriggers, …};
 *      variable = {name, type ∈ string|secret|worker, value}; workflow 'realtime'|'preview';
 *      publish body = description string, result string; history list item {id, createdAt,
 *      updatedAt, description, userId}, query offset (default 0) / limit (default 10) / sortField
 *      (id|user_id|description|created_at|updated_at, default updated_at) / sortOrder (DESC|ASC,
 *      default DESC); history/configs?ids=… → {"<id>": {id, createdAt, updatedAt, userId, config}};
 *      PUT history body = integer id, result = the restored config.
 *  [5] Error codes observed in real API answers (GitHub issues): 10000 "Authentication error"
 *      (e.g. cloudflare/pages-action#112, lablabs/cloudflare-exporter#120; the real API sends it
 *      with HTTP 403 for a token lacking permission); 7003 "Could not route to …, perhaps your
 *      object identifier is invalid?" + 7000 "No route for that URI" (timothymiller/cloudflare-ddns#152,
 *      DonnchaC/cloudflare-tor-whitelister#4); 6007 "Malformed JSON in request body"
 *      (undefinedplayer/cloudflare-ddns#10).
 *
 * What is enforced:
 *  - Envelope on every API answer: {success, errors:[{code,message}], messages:[], result} [2].
 *  - Auth: `Authorization: Bearer <apiToken>` or 401 + code 10000 [5] (401 rather than the real
 *    403, so a bad token and a bad permission read alike; the fake has one token with all rights).
 *  - Zone: any other zone id → 404 + 7003; unknown path or method → 404 + 7003/7000 [5].
 *  - Body that is not JSON (PUT/POST) → 400 + 6007 [5].
 *  - PUT config: full replace, validated against [3][4] (whole body object; tools/triggers/variables/
 *    settings objects; dataLayer boolean; debugKey string; settings.autoInjectScript boolean; each
 *    trigger's name, loadRules/excludeRules arrays of well-formed rules, system ∈ {pageload}; every
 *    tool's name/type/enabled/blockingTriggers; every firingTriggers/blockingTriggers id must name a
 *    trigger in the same body; variables' type/value) → 400 + VALIDATION_ERROR_CODE listing every
 *    problem. Fake-only rule from [1]: a non-system trigger needs at least one load rule.
 *    On success: stored, zarazVersion = stored + 1 (server-assigned), history record, answer = new
 *    config with secret values removed.
 *  - zarazVersion in the PUT body, per versionPolicy (the field is contested [1] vs required [3]):
 *    'reject'  → present ⇒ 400 naming zarazVersion (as observed in the field [1]);
 *    'require' → absent ⇒ 400 naming zarazVersion as required (as the schema says [3]);
 *    'fence'   → required and must equal the stored version, else 409 "stale … conflict";
 *    'ignore'  → accepted either way (default).
 *  - Secret variables: GET never returns their `value` [2]. A PUT that sends a secret variable
 *    without `value` (as a client that round-trips a GET would) keeps the stored value, unless
 *    `dropSecretsWithoutValue: true`, which stores it without a value (wiped). Which of these the
 *    real API does is not documented; [1] reports secrets wiped by a PUT built from a GET, so use
 *    `dropSecretsWithoutValue: true` to test against the pessimistic case. A new secret (no stored
 *    one under that id) must carry a value.
 *  - History [4]: every stored change (API PUT, dashboard edit, restore) and every publish adds a
 *    record; list/configs/restore as documented; configs in answers have secret values removed.
 *
 * Fault injection (setFault(f) or POST /__control/fault; merged into the active faults;
 * setFault(null) or DELETE /__control/fault clears them all):
 *  {put_status: 504, land?: false, times?: 1, after_puts?: 0} next `times` PUT config calls (after
 *                                `after_puts` that succeed normally) answer that status with
 *                                Cloudflare's edge HTML page; land=true still applies the change.
 *  {put_delay_ms: n}             every PUT config waits n ms first, then is applied even if the
 *                                client has given up (a client timeout does not mean "not landed").
 *  {max_put_bytes: n}            PUT config bodies over n bytes answer 504 and do not land.
 *  {concurrent_edit: {after_gets: k, rename_trigger?: id, name?: s, add_trigger?: {id, …}}}
 *                                right after answering the k-th GET config from now, applies a
 *                                dashboard edit (version bump + history record).
 *  {status: 500|401|…, times?: 1} next `times` API requests (any endpoint) answer that status.
 *
 * JS handle returned by startCloudflareFake: {url (origin), apiBase (url + /client/v4), port, close(),
 *  config() (deep copy incl. secret values), history() (records newest first, each with its full
 *  config), requests() (the API request log), setFault(f), setVersionPolicy(p), editConfig(fn)
 *  (dashboard edit: fn mutates the draft config or returns a replacement; version bump + history),
 *  reset(config?) (back to the start: that config or the initial one, one history record, no
 *  faults, empty log, workflow 'realtime', the versionPolicy given at start)}.
 *
 * Control/inspection endpoints (plain JSON, no auth, never part of the API log):
 *  GET /__control/config, GET /__control/history, GET /__control/requests,
 *  POST|DELETE /__control/fault, POST /__control/edit ({rename_trigger, name?} | {add_trigger}),
 *  POST /__control/reset (optional body: a config), PUT /__control/version-policy ("reject"|…).
 * The API token is never stored in the request log or any answer.
 */
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const VERSION_POLICIES = ['reject', 'require', 'fence', 'ignore'];

// Codes from real answers [5]. The schema [2] gives no Zaraz-specific codes (its examples use
// 1000), so validation, conflict and not-found answers use 1000 and are told apart by HTTP
// status and message.
const AUTH_ERROR = { code: 10000, message: 'Authentication error' };
const MALFORMED_JSON = { code: 6007, message: 'Malformed JSON in request body' };
const NO_ROUTE = { code: 7000, message: 'No route for that URI' };
export const VALIDATION_ERROR_CODE = 1000;
// Code for an injected non-401 status fault: not sourced, chosen to be recognisable.
const INJECTED_FAULT_CODE = 10001;

const API_PREFIX = '/client/v4';
const ZARAZ_PATH = /^\/client\/v4\/zones\/([^/]+)\/settings\/zaraz\/(.+)$/;
const API_USER_ID = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const DASHBOARD_USER_ID = 'f0e9d8c7b6a5948372615a4b3c2d1e0f';

const RULE_OPS = ['CONTAINS', 'EQUALS', 'STARTS_WITH', 'ENDS_WITH', 'MATCH_REGEX', 'NOT_MATCH_REGEX',
  'GREATER_THAN', 'GREATER_THAN_OR_EQUAL', 'LESS_THAN', 'LESS_THAN_OR_EQUAL'];
const RULE_ACTIONS = ['clickListener', 'timer', 'formSubmission', 'variableMatch', 'scrollDepth',
  'elementVisibility'];
const TOOL_TYPES = ['component', 'custom-mc'];
const VARIABLE_TYPES = ['string', 'secret', 'worker'];
const WORKFLOWS = ['realtime', 'preview'];
const HISTORY_SORT_FIELDS = { id: 'id', user_id: 'userId', description: 'description',
  created_at: 'createdAt', updated_at: 'updatedAt' };

/** The config a fresh fake holds: one tool, a system pageview trigger, one custom trigger. */
export function defaultInitialConfig() {
  return {
    zarazVersion: 43,
    dataLayer: true,
    debugKey: 'dbgFakeZarazKey42',
    historyChange: true,
    settings: {
      autoInjectScript: true, ecommerce: true, hideExternalReferer: false, hideIPAddress: true,
      hideQueryParams: false, hideUserAgent: false, injectIframes: false,
    },
    tools: {
      fbPixel01: {
        name: 'Facebook Pixel',
        type: 'component',
        component: 'facebook-pixel',
        enabled: true,
        permissions: ['access_client_kv'],
        settings: { property: '123456789012345', ecommerce: true },
        defaultFields: {},
        blockingTriggers: [],
        neoEvents: [
          { actionType: 'pageview', firingTriggers: ['Pageview'], blockingTriggers: [],
            data: { __zaraz_setting_name: 'PageView' } },
          { actionType: 'event', firingTriggers: ['leadTrig01'], blockingTriggers: [],
            data: { __zaraz_setting_name: 'Lead', ev: 'Lead' } },
        ],
      },
    },
    triggers: {
      Pageview: { name: 'Pageview', description: 'All page loads', loadRules: [], excludeRules: [],
        clientRules: [], system: 'pageload' },
      leadTrig01: { name: 'Lead', description: 'zaraz.track("Lead")', excludeRules: [], clientRules: [],
        loadRules: [{ id: 'leadRule01', match: '{{ client.__zarazTrack }}', op: 'EQUALS', value: 'Lead' }] },
    },
    variables: {
      capiToken01: { name: 'Facebook CAPI access token', type: 'secret', value: 'EAAGfakeCapiToken0001' },
      siteName01: { name: 'Site name', type: 'string', value: 'Example Store' },
    },
    consent: { enabled: false, cookieName: 'cf_consent', companyName: 'Example Store', purposes: {} },
    analytics: { enabled: true, defaultPurpose: '', sessionExpTime: 1800 },
  };
}

/** Cloudflare's default config as answered by GET default (version: the stored one). */
function defaultZarazConfig(zarazVersion) {
  return {
    zarazVersion,
    dataLayer: true,
    debugKey: '',
    historyChange: false,
    settings: { autoInjectScript: true },
    tools: {},
    triggers: {
      Pageview: { name: 'Pageview', description: 'All page loads', loadRules: [], excludeRules: [],
        clientRules: [], system: 'pageload' },
    },
    variables: {},
    consent: { enabled: false },
    analytics: { enabled: true, sessionExpTime: 1800 },
  };
}

class ApiError extends Error {
  /** @param {number} status @param {{code:number,message:string}[]} errors */
  constructor(status, errors) {
    super(errors.map((e) => e.message).join('; '));
    this.status = status;
    this.errors = errors;
  }
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNonEmptyString = (v) => typeof v === 'string' && v.length > 0;
const validation = (status, ...messages) =>
  new ApiError(status, messages.map((message) => ({ code: VALIDATION_ERROR_CODE, message })));

function validateRule(at, rule, problems) {
  if (!isObject(rule) || !isNonEmptyString(rule.id)) {
    problems.push(`${at}.id must be a non-empty string`);
  } else if ('action' in rule) {
    if (!RULE_ACTIONS.includes(rule.action)) problems.push(`${at}.action must be one of ${RULE_ACTIONS.join('|')}`);
    if (!isObject(rule.settings)) problems.push(`${at}.settings must be an object`);
  } else {
    if (typeof rule.match !== 'string') problems.push(`${at}.match must be a string`);
    if (!RULE_OPS.includes(rule.op)) problems.push(`${at}.op must be one of ${RULE_OPS.join('|')}`);
    if (typeof rule.value !== 'string') problems.push(`${at}.value must be a string`);
  }
}

function validateTrigger(id, trigger, problems) {
  const at = `triggers.${id}`;
  if (!isObject(trigger)) return problems.push(`${at} must be an object`);
  if (!isNonEmptyString(trigger.name)) problems.push(`${at}.name must be a non-empty string`);
  if (trigger.system !== undefined && trigger.system !== 'pageload') problems.push(`${at}.system must be "pageload"`);
  for (const list of ['loadRules', 'excludeRules']) {
    if (!Array.isArray(trigger[list])) problems.push(`${at}.${list} must be an array`);
    else trigger[list].forEach((rule, i) => validateRule(`${at}.${list}[${i}]`, rule, problems));
  }
  if (trigger.system === undefined && Array.isArray(trigger.loadRules) && trigger.loadRules.length === 0) {
    problems.push(`${at}.loadRules must not be empty (only system triggers have no load rules)`);
  }
}

function validateTriggerRefs(at, ids, triggerIds, problems) {
  if (!Array.isArray(ids)) return problems.push(`${at} must be an array of trigger ids`);
  for (const id of ids) {
    if (!triggerIds.has(id)) problems.push(`${at} references unknown trigger "${id}"`);
  }
}

function validateTool(id, tool, triggerIds, problems) {
  const at = `tools.${id}`;
  if (!isObject(tool)) return problems.push(`${at} must be an object`);
  if (!isNonEmptyString(tool.name)) problems.push(`${at}.name must be a non-empty string`);
  if (!TOOL_TYPES.includes(tool.type)) problems.push(`${at}.type must be one of ${TOOL_TYPES.join('|')}`);
  if (typeof tool.enabled !== 'boolean') problems.push(`${at}.enabled must be a boolean`);
  validateTriggerRefs(`${at}.blockingTriggers`, tool.blockingTriggers, triggerIds, problems);
  const events = [];
  if (tool.neoEvents !== undefined) {
    if (!Array.isArray(tool.neoEvents)) problems.push(`${at}.neoEvents must be an array`);
    else tool.neoEvents.forEach((e, i) => events.push([`${at}.neoEvents[${i}]`, e]));
  }
  if (tool.actions !== undefined) {
    if (!isObject(tool.actions)) problems.push(`${at}.actions must be an object`);
    else for (const [key, e] of Object.entries(tool.actions)) events.push([`${at}.actions.${key}`, e]);
  }
  for (const [eventAt, event] of events) {
    if (!isObject(event)) {
      problems.push(`${eventAt} must be an object`);
      continue;
    }
    if (!isNonEmptyString(event.actionType)) problems.push(`${eventAt}.actionType must be a non-empty string`);
    validateTriggerRefs(`${eventAt}.firingTriggers`, event.firingTriggers, triggerIds, problems);
    validateTriggerRefs(`${eventAt}.blockingTriggers`, event.blockingTriggers, triggerIds, problems);
  }
}

function validateVariable(id, variable, stored, problems) {
  const at = `variables.${id}`;
  if (!isObject(variable)) return problems.push(`${at} must be an object`);
  if (!isNonEmptyString(variable.name)) problems.push(`${at}.name must be a non-empty string`);
  if (!VARIABLE_TYPES.includes(variable.type)) {
    problems.push(`${at}.type must be one of ${VARIABLE_TYPES.join('|')}`);
  } else if (variable.type === 'worker') {
    const v = variable.value;
    if (!isObject(v) || typeof v.escapedWorkerName !== 'string' || typeof v.workerTag !== 'string') {
      problems.push(`${at}.value must be {escapedWorkerName, workerTag}`);
    }
  } else if (variable.type === 'secret' && variable.value === undefined) {
    if (stored?.variables[id]?.type !== 'secret') problems.push(`${at}.value is required for a new secret variable`);
  } else if (typeof variable.value !== 'string') {
    problems.push(`${at}.value must be a string`);
  }
}

/** Every problem with a would-be config, [] when it is acceptable. `stored` is the current config. */
function validateConfig(body, stored) {
  if (!isObject(body)) return ['the body must be a JSON object holding the whole Zaraz configuration'];
  const problems = [];
  for (const key of ['tools', 'triggers', 'variables', 'settings']) {
    if (!isObject(body[key])) problems.push(`${key} is required and must be an object`);
  }
  if (typeof body.dataLayer !== 'boolean') problems.push('dataLayer is required and must be a boolean');
  if (typeof body.debugKey !== 'string') problems.push('debugKey is required and must be a string');
  if (isObject(body.settings) && typeof body.settings.autoInjectScript !== 'boolean') {
    problems.push('settings.autoInjectScript is required and must be a boolean');
  }
  if (problems.length > 0) return problems;
  for (const [id, trigger] of Object.entries(body.triggers)) validateTrigger(id, trigger, problems);
  const triggerIds = new Set(Object.keys(body.triggers));
  for (const [id, tool] of Object.entries(body.tools)) validateTool(id, tool, triggerIds, problems);
  for (const [id, variable] of Object.entries(body.variables)) validateVariable(id, variable, stored, problems);
  return problems;
}

function checkZarazVersion(body, policy, current) {
  if (policy === 'ignore' || !isObject(body)) return;
  const present = Object.hasOwn(body, 'zarazVersion');
  if (policy === 'reject') {
    if (present) throw validation(400, 'zarazVersion: property is not allowed in the request body');
    return;
  }
  if (!present) throw validation(400, 'zarazVersion is required');
  if (!Number.isInteger(body.zarazVersion)) throw validation(400, 'zarazVersion must be an integer');
  if (policy === 'fence' && body.zarazVersion !== current) {
    throw validation(409, `zarazVersion ${body.zarazVersion} is stale: the stored configuration is at `
      + `zarazVersion ${current} (conflict; read the configuration again)`);
  }
}

/** A copy of a config as the API shows it: secret variables without their value [2]. */
function stripSecrets(config) {
  const copy = structuredClone(config);
  for (const variable of Object.values(copy.variables ?? {})) {
    if (variable?.type === 'secret') delete variable.value;
  }
  return copy;
}

function edgeErrorPage(status) {
  const title = `${status} ${http.STATUS_CODES[status] ?? 'Error'}`;
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n`
    + '<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n';
}

function intAtLeast(min, value, what) {
  if (!Number.isInteger(value) || value < min) throw new TypeError(`${what} must be an integer >= ${min}`);
  return value;
}

function httpStatus(value, what) {
  if (!Number.isInteger(value) || value < 400 || value > 599) throw new TypeError(`${what} must be an HTTP status 400-599`);
  return value;
}

/** Applies a dashboard-style edit spec ({rename_trigger, name?} and/or {add_trigger}) to `config`. */
function applyEditSpec(config, spec) {
  if (!isObject(spec) || (spec.rename_trigger === undefined && spec.add_trigger === undefined)) {
    throw new TypeError('an edit needs rename_trigger (with optional name) or add_trigger');
  }
  if (spec.rename_trigger !== undefined) {
    const trigger = config.triggers[spec.rename_trigger];
    if (!trigger) throw new TypeError(`rename_trigger: no trigger "${spec.rename_trigger}"`);
    trigger.name = spec.name ?? `${trigger.name} (renamed in dashboard)`;
  }
  if (spec.add_trigger !== undefined) {
    const { id, ...fields } = spec.add_trigger ?? {};
    if (!isNonEmptyString(id)) throw new TypeError('add_trigger.id must be a non-empty string');
    const name = fields.name ?? id;
    config.triggers[id] = {
      name,
      description: '',
      loadRules: [{ id: `${id}Rule`, match: '{{ client.__zarazTrack }}', op: 'EQUALS', value: name }],
      excludeRules: [],
      ...fields,
    };
  }
}

/** Turns a fault description (snake_case, as on the wire) into the fake's fault state. */
function parseFault(f, currentConfig) {
  if (!isObject(f)) throw new TypeError('a fault must be a JSON object');
  if ('put_status' in f && 'status' in f) throw new TypeError('give put_status and status in separate calls');
  const known = ['put_status', 'land', 'times', 'after_puts', 'put_delay_ms', 'max_put_bytes', 'concurrent_edit', 'status'];
  const unknown = Object.keys(f).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new TypeError(`unknown fault field(s): ${unknown.join(', ')}`);
  const times = f.times === undefined ? 1 : intAtLeast(1, f.times, 'times');
  const out = {};
  if ('put_status' in f) {
    const skip = f.after_puts === undefined ? 0 : intAtLeast(0, f.after_puts, 'after_puts');
    out.putStatus = { status: httpStatus(f.put_status, 'put_status'), land: f.land === true, remaining: times, skip };
  }
  if ('status' in f) out.status = { status: httpStatus(f.status, 'status'), remaining: times };
  if ('put_delay_ms' in f) out.putDelayMs = intAtLeast(0, f.put_delay_ms, 'put_delay_ms');
  if ('max_put_bytes' in f) out.maxPutBytes = intAtLeast(1, f.max_put_bytes, 'max_put_bytes');
  if ('concurrent_edit' in f) {
    const { after_gets: afterGets, ...spec } = f.concurrent_edit ?? {};
    intAtLeast(1, afterGets, 'concurrent_edit.after_gets');
    applyEditSpec(structuredClone(currentConfig), spec); // reject a spec that cannot apply now
    out.concurrentEdit = { afterGets, seen: 0, spec };
  }
  return out;
}

/** Takes one use of a counted fault; drops it from `faults` when used up. */
function consume(faults, key) {
  const fault = faults[key];
  fault.remaining -= 1;
  if (fault.remaining === 0) delete faults[key];
  return fault;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(buffer) {
  if (buffer.length === 0) return { present: false };
  try {
    return { present: true, ok: true, value: JSON.parse(buffer.toString('utf8')) };
  } catch {
    return { present: true, ok: false };
  }
}

/** A finished HTTP answer. API routes return either one of these or a result to wrap in the envelope. */
class Answer {
  constructor(status, type, text) {
    Object.assign(this, { status, type, text });
  }
}
const json = (status, body) => new Answer(status, 'application/json', JSON.stringify(body));
const edgeError = (status) => new Answer(status, 'text/html', edgeErrorPage(status));
const envelope = (status, result, errors = []) =>
  json(status, { success: errors.length === 0, errors, messages: [], result });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts the fake.
 * @param {{port?: number, host?: string, apiToken: string, zoneId: string, initialConfig?: object,
 *   versionPolicy?: 'reject'|'require'|'fence'|'ignore', dropSecretsWithoutValue?: boolean}} opts
 */
export async function startCloudflareFake(opts) {
  const { port = 0, host = '127.0.0.1', apiToken, zoneId, initialConfig, versionPolicy = 'ignore',
    dropSecretsWithoutValue = false } = opts ?? {};
  if (!isNonEmptyString(apiToken)) throw new TypeError('apiToken is required');
  if (!/^[0-9a-f]{32}$/i.test(zoneId ?? '')) throw new TypeError('zoneId must be 32 hex characters');
  const checkPolicy = (p) => {
    if (!VERSION_POLICIES.includes(p)) throw new TypeError(`versionPolicy must be one of ${VERSION_POLICIES.join('|')}`);
    return p;
  };
  checkPolicy(versionPolicy);

  let state;

  const addHistory = (description, userId) => {
    const now = new Date().toISOString();
    state.history.push({ id: state.nextHistoryId++, createdAt: now, updatedAt: now, description, userId,
      config: structuredClone(state.config) });
  };

  /** Stores `next` as a new version (server-assigned zarazVersion) with a history record. */
  const commit = (next, description, userId) => {
    state.config = { ...next, zarazVersion: state.config.zarazVersion + 1 };
    addHistory(description, userId);
  };

  const dashboardEdit = (fn) => {
    const draft = structuredClone(state.config);
    const returned = fn(draft);
    commit(isObject(returned) ? returned : draft, 'Edited in the dashboard', DASHBOARD_USER_ID);
    return structuredClone(state.config);
  };

  const reset = (config) => {
    const start = structuredClone(config ?? initialConfig ?? defaultInitialConfig());
    const problems = validateConfig(start, null);
    if (problems.length > 0) throw new TypeError(`invalid initial config: ${problems.join('; ')}`);
    state = { config: { ...start, zarazVersion: start.zarazVersion ?? 1 }, workflow: 'realtime', history: [],
      nextHistoryId: 1, requests: [], faults: {}, versionPolicy };
    addHistory('Initial configuration', DASHBOARD_USER_ID);
  };
  reset();

  const requireJsonBody = (ctx) => {
    if (ctx.parsed.present && !ctx.parsed.ok) throw new ApiError(400, [MALFORMED_JSON]);
    return ctx.parsed.value;
  };

  const applyPut = (ctx) => {
    const body = requireJsonBody(ctx);
    checkZarazVersion(body, state.versionPolicy, state.config.zarazVersion);
    const problems = validateConfig(body, state.config);
    if (problems.length > 0) throw validation(400, ...problems);
    const next = structuredClone(body);
    for (const [id, variable] of Object.entries(next.variables)) {
      if (variable.type !== 'secret' || variable.value !== undefined || dropSecretsWithoutValue) continue;
      variable.value = state.config.variables[id].value;
    }
    commit(next, 'Updated via API', API_USER_ID);
    return stripSecrets(state.config);
  };

  const historySummary = ({ id, createdAt, updatedAt, description, userId }) =>
    ({ id, createdAt, updatedAt, description, userId });

  const routes = {
    'GET config': () => {
      const result = stripSecrets(state.config);
      const edit = state.faults.concurrentEdit;
      if (edit && ++edit.seen === edit.afterGets) {
        delete state.faults.concurrentEdit;
        dashboardEdit((config) => applyEditSpec(config, edit.spec));
      }
      return result;
    },
    'PUT config': async (ctx) => {
      const { maxPutBytes, putDelayMs } = state.faults;
      if (maxPutBytes !== undefined && ctx.bodyBytes > maxPutBytes) return edgeError(504);
      if (putDelayMs) await sleep(putDelayMs);
      if (!state.faults.putStatus) return applyPut(ctx);
      if (state.faults.putStatus.skip > 0) {
        state.faults.putStatus.skip -= 1;
        return applyPut(ctx);
      }
      const { status, land } = consume(state.faults, 'putStatus');
      if (land) {
        try {
          applyPut(ctx);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
        }
      }
      return edgeError(status);
    },
    'GET default': () => defaultZarazConfig(state.config.zarazVersion),
    // "Exports full current published Zaraz configuration for a zone, secret variables included"
    // (cloudflare-typescript src/resources/zaraz/export.ts). The fake publishes on every write.
    'GET export': () => structuredClone(state.config),
    'GET workflow': () => state.workflow,
    'PUT workflow': (ctx) => {
      const workflow = requireJsonBody(ctx);
      if (!WORKFLOWS.includes(workflow)) throw validation(400, `workflow must be one of ${WORKFLOWS.join('|')}`);
      state.workflow = workflow;
      return workflow;
    },
    'POST publish': (ctx) => {
      const description = requireJsonBody(ctx) ?? '';
      if (typeof description !== 'string') throw validation(400, 'the publish body must be a description string');
      addHistory(description, API_USER_ID);
      return 'Config has been published successfully'; // a string per [4]; the wording is the fake's
    },
    'GET history': (ctx) => {
      const q = ctx.url.searchParams;
      const int = (name, fallback) => {
        if (!q.has(name)) return fallback;
        const n = Number(q.get(name));
        if (!Number.isInteger(n) || n < 0) throw validation(400, `${name} must be a non-negative integer`);
        return n;
      };
      const offset = int('offset', 0);
      const limit = int('limit', 10);
      const sortField = q.get('sortField') ?? 'updated_at';
      const field = Object.hasOwn(HISTORY_SORT_FIELDS, sortField) && HISTORY_SORT_FIELDS[sortField];
      const order = q.get('sortOrder') ?? 'DESC';
      if (!field) throw validation(400, `sortField must be one of ${Object.keys(HISTORY_SORT_FIELDS).join('|')}`);
      if (order !== 'DESC' && order !== 'ASC') throw validation(400, 'sortOrder must be DESC or ASC');
      const sign = order === 'ASC' ? 1 : -1;
      const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
      return [...state.history]
        .sort((a, b) => sign * (cmp(a[field], b[field]) || cmp(a.id, b.id)))
        .slice(offset, offset + limit)
        .map(historySummary);
    },
    'GET history/configs': (ctx) => {
      const raw = ctx.url.searchParams.get('ids');
      const ids = (raw ?? '').split(',').filter(Boolean).map(Number);
      if (ids.length === 0 || !ids.every(Number.isInteger)) {
        throw validation(400, 'ids is required: a comma separated list of configuration ids');
      }
      const result = {};
      for (const record of state.history.filter((r) => ids.includes(r.id))) {
        const { id, createdAt, updatedAt, userId } = record;
        result[id] = { id, createdAt, updatedAt, userId, config: stripSecrets(record.config) };
      }
      return result;
    },
    'PUT history': (ctx) => {
      const id = requireJsonBody(ctx);
      if (!Number.isInteger(id)) throw validation(400, 'the body must be a configuration id (integer)');
      const record = state.history.find((r) => r.id === id);
      if (!record) throw validation(404, `no historical configuration with id ${id}`);
      commit(structuredClone(record.config), `Restored configuration ${id}`, API_USER_ID);
      return stripSecrets(state.config);
    },
  };

  /** Answers one API request. */
  const handleApi = async (req, url, body, parsed) => {
    const { pathname } = url;
    if (state.faults.status) {
      const { status } = consume(state.faults, 'status');
      const error = status === 401 || status === 403 ? AUTH_ERROR
        : { code: INJECTED_FAULT_CODE, message: `${http.STATUS_CODES[status] ?? 'Error'} (injected fault)` };
      return envelope(status, null, [error]);
    }
    if (req.headers.authorization !== `Bearer ${apiToken}`) return envelope(401, null, [AUTH_ERROR]);
    const noRoute = { code: 7003, message: `Could not route to ${pathname}, perhaps your object identifier is invalid?` };
    const match = ZARAZ_PATH.exec(pathname);
    if (match && match[1] !== zoneId) return envelope(404, null, [noRoute]);
    const route = match && routes[`${req.method} ${match[2]}`];
    if (!route) return envelope(404, null, [noRoute, NO_ROUTE]);
    try {
      const result = await route({ url, parsed, bodyBytes: body.length });
      return result instanceof Answer ? result : envelope(200, result);
    } catch (err) {
      if (err instanceof ApiError) return envelope(err.status, null, err.errors);
      throw err;
    }
  };

  const api = {
    config: () => structuredClone(state.config),
    history: () => structuredClone([...state.history].reverse()),
    requests: () => structuredClone(state.requests),
    setFault: (f) => {
      if (f === null || f === undefined) state.faults = {};
      else Object.assign(state.faults, parseFault(f, state.config));
    },
    setVersionPolicy: (p) => {
      state.versionPolicy = checkPolicy(p);
    },
    editConfig: (fn) => dashboardEdit(fn),
    reset: (config) => reset(config),
  };

  const control = {
    'GET config': () => api.config(),
    'GET history': () => api.history(),
    'GET requests': () => api.requests(),
    'POST fault': (body) => (api.setFault(body ?? {}), { ok: true }),
    'DELETE fault': () => (api.setFault(null), { ok: true }),
    'POST edit': (body) => ({ ok: true, config: api.editConfig((config) => applyEditSpec(config, body)) }),
    'POST reset': (body) => (api.reset(body), { ok: true }),
    'PUT version-policy': (body) => (api.setVersionPolicy(body), { ok: true, versionPolicy: body }),
  };

  const handleControl = (req, name, parsed) => {
    const action = control[`${req.method} ${name}`];
    if (!action) return json(404, { error: `no control endpoint ${req.method} /__control/${name}` });
    if (parsed.present && !parsed.ok) return json(400, { error: 'malformed JSON' });
    try {
      return json(200, action(parsed.value));
    } catch (err) {
      if (err instanceof TypeError) return json(400, { error: err.message });
      throw err;
    }
  };

  const server = http.createServer(async (req, res) => {
    let answer;
    try {
      const url = new URL(req.url, 'http://fake.invalid');
      const body = await readBody(req);
      const parsed = parseJson(body);
      if (url.pathname.startsWith('/__control/')) {
        answer = handleControl(req, url.pathname.slice('/__control/'.length), parsed);
      } else if (url.pathname === API_PREFIX || url.pathname.startsWith(`${API_PREFIX}/`)) {
        answer = await handleApi(req, url, body, parsed);
        state.requests.push({ method: req.method, path: `${url.pathname}${url.search}`, status: answer.status,
          at: new Date().toISOString(), body_bytes: body.length,
          had_zaraz_version: parsed.ok === true && isObject(parsed.value) && Object.hasOwn(parsed.value, 'zarazVersion') });
      } else {
        answer = json(404, { error: 'not found: the API is under /client/v4' });
      }
    } catch (err) {
      answer = json(500, { error: `cloudflare fake bug: ${err.stack ?? err}` });
    }
    res.writeHead(answer.status, { 'content-type': `${answer.type}; charset=utf-8` });
    res.end(answer.text);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  const url = `http://${host}:${actualPort}`;

  return {
    url,
    apiBase: `${url}${API_PREFIX}`,
    port: actualPort,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
    ...api,
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8082' },
      host: { type: 'string', default: '127.0.0.1' },
      token: { type: 'string' },
      zone: { type: 'string' },
      'version-policy': { type: 'string', default: 'ignore' },
      'drop-secrets-without-value': { type: 'boolean', default: false },
    },
  });
  if (!values.token || !values.zone) {
    console.error('usage: node tests/fakes/cloudflare-api.mjs --port 8082 --token TOKEN --zone ZONEID '
      + `[--version-policy ${VERSION_POLICIES.join('|')}] [--drop-secrets-without-value] [--host 127.0.0.1]`);
    process.exit(2);
  }
  const fake = await startCloudflareFake({
    port: Number(values.port), host: values.host, apiToken: values.token, zoneId: values.zone,
    versionPolicy: values['version-policy'], dropSecretsWithoutValue: values['drop-secrets-without-value'],
  });
  console.log(`cloudflare-fake listening on ${fake.url}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => fake.close().then(() => process.exit(0)));
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    console.error(err.message);
    process.exit(1);
  });
}
