/**
 * A Graph-API-shaped fake of Meta's Conversions API (CAPI) for edgekeeper's tests.
 *
 * Routes (everything else answers 404, Graph code 803):
 *   POST /{vX.Y}/{pixel_id}/events   send events (JSON body, or x-www-form-urlencoded with `data` as a JSON string)
 *   GET  /{vX.Y}/{pixel_id}          pixel info, `{"id": pixel_id}`, handy for health probes
 *   /__control/...                   test control and inspection, see `controlRoute` below
 *
 * What it enforces, and where each rule comes from. "contract" is /work/shared/reference/meta-capi.md; Meta's
 * pages are under https://developers.facebook.com/docs/:
 * - Error envelope `{"error":{message,type,code,error_subcode,is_transient,error_user_title,error_user_msg,
 *   fbtrace_id}}`: graph-api/guides/error-handling.
 * - Access token (`access_token` in the query string or the body) must equal `accessToken`, else code 190 over
 *   HTTP 400 with a `WWW-Authenticate: OAuth "Facebook Platform" "invalid_token" ...` header. Graph answers 400,
 *   not RFC 6750's 401, for bad tokens: error-handling lists 190 as "Access token has expired", and
 *   rudderlabs/rudder-transformer (src/v0/destinations/fb/networkHandler.js) maps 190 to 400. A missing token also
 *   gets 190 here; the real Graph may say 104 for that, but both mean "fix the credentials".
 * - Pixel id numeric (or listed in `pixelIds`), else code 100 subcode 33 "Unsupported post request. Object with
 *   ID ... does not exist", type GraphMethodException, HTTP 400, the Graph's answer for an unknown object.
 * - `data` a non-empty array of at most 1000 events (marketing-api/conversions-api/using-the-api, contract).
 * - Per event (marketing-api/conversions-api/parameters/server-event, customer-information-parameters,
 *   custom-data; contract): `event_name` non-empty string; `event_time` integer Unix seconds, at most 7 days old
 *   (62 for `action_source: physical_store`, per server-event) and at most 60 s in the future; `action_source`
 *   one of ACTION_SOURCES; website events need `event_source_url` and `user_data.client_user_agent`; `user_data`
 *   holds at least one match key; HASHED_KEYS are 64-char lowercase hex SHA-256, or a 32-char MD5 digest, which
 *   Meta's own Parameter Builder forwards as already hashed (capi-param-builder `SHA_256_OR_MD5_REGEX`), or
 *   arrays of them (edgekeeper always hashes `external_id`, so it is checked too); NEVER_HASHED keys must not look like a SHA-256;
 *   `fbp`/`fbc` look like `fb.1.<ms>.<value>`; `client_ip_address` is a bare IP (no port); a `custom_data.value`
 *   is a number and needs a 3-letter `currency`; Purchase needs both.
 *   One bad event fails the whole request and nothing is recorded (server-event: "we return an error for the
 *   entire request and process no events"): 400, code 100, message "Invalid parameter", error_user_msg naming
 *   `data[i]`. Subcode 2804003 "Event Timestamp Too Old" for stale events, 2804019 "Server Side Api Parameter
 *   Error" otherwise (the subcodes Meta sends; seen in rudder-transformer's fb test fixtures).
 * - Malformed body: 400 code 100. Bodies over 5 MB: 413 code 100 (not transient: split the batch).
 * - Success: 200 `{"events_received": N, "messages": [], "fbtrace_id"}`.
 * - Injected faults (see `parseFault`) use graph-api/overview/rate-limiting's throttling codes: 4 application,
 *   17 user ("User request limit reached"), 32 page, 613 custom rate limit, 80004 ads account; 5xx use code 1
 *   "An unknown error occurred" (500) and code 2 "Service temporarily unavailable" (503), both transient.
 *
 * The access token is never recorded nor echoed: `requests()` keeps paths without their query string and
 * `received()` keeps only the events.
 */
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAX_EVENTS = 1000;
const MAX_BODY_BYTES = 5 * 1024 * 1024;
const DAY_SECONDS = 24 * 60 * 60;
const MAX_FUTURE_SECONDS = 60;

const ACTION_SOURCES = new Set([
  'website', 'app', 'email', 'phone_call', 'chat', 'physical_store', 'system_generated', 'business_messaging', 'other',
]);
const HASHED_KEYS = ['em', 'ph', 'fn', 'ln', 'ge', 'db', 'ct', 'st', 'zp', 'country', 'external_id'];
const NEVER_HASHED = ['client_ip_address', 'client_user_agent', 'fbp', 'fbc'];
const MATCH_KEYS = new Set([
  ...HASHED_KEYS, ...NEVER_HASHED, 'subscription_id', 'fb_login_id', 'lead_id', 'anon_id', 'madid', 'page_id',
  'page_scoped_user_id', 'ctwa_clid', 'ig_account_id', 'ig_sid',
]);
const HASHED_HEX = /^[0-9a-f]{64}$|^[0-9a-f]{32}$/;
const LOOKS_HASHED = /^[0-9a-f]{64}$/i;
const FB_COOKIE = /^fb\.\d\.\d+\..+$/;
const CURRENCY = /^[A-Za-z]{3}$/;
const API_VERSION = /^v\d+\.\d+$/;

const THROTTLE_MESSAGES = {
  4: 'Application request limit reached',
  17: 'User request limit reached',
  32: 'Page request limit reached',
  613: 'Calls to this api have exceeded the rate limit.',
  80004: 'There have been too many calls to this ad-account. Wait a bit and try again.',
};

/** A Graph error: HTTP status plus the fields of Meta's `error` envelope. */
class GraphError extends Error {
  constructor(status, code, message, { subcode = null, type = 'OAuthException', transient = false,
    title = '', userMsg = '', headers = {} } = {}) {
    super(message);
    Object.assign(this, { status, code, subcode, type, transient, title, userMsg, headers });
  }

  envelope(fbtraceId) {
    return {
      error: {
        message: this.message,
        type: this.type,
        code: this.code,
        error_subcode: this.subcode,
        is_transient: this.transient,
        error_user_title: this.title,
        error_user_msg: this.userMsg,
        fbtrace_id: fbtraceId,
      },
    };
  }
}

const invalidParameter = (userMsg, { subcode = 2804019, title = 'Server Side Api Parameter Error', status = 400 } = {}) =>
  new GraphError(status, 100, 'Invalid parameter', { subcode, title, userMsg });

const invalidToken = (message) =>
  new GraphError(400, 190, message, {
    headers: { 'www-authenticate': `OAuth "Facebook Platform" "invalid_token" "${message}"` },
  });

const unknownObject = (method, id) =>
  new GraphError(400, 100, `Unsupported ${method.toLowerCase()} request. Object with ID '${id}' does not exist, ` +
    'cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API ' +
    'documentation at https://developers.facebook.com/docs/graph-api', { subcode: 33, type: 'GraphMethodException' });

const unknownPath = (path) =>
  new GraphError(404, 803, `(#803) Some of the aliases you requested do not exist: ${path}`);

const serverError = (status) => status === 503
  ? new GraphError(503, 2, 'Service temporarily unavailable', { transient: true })
  : new GraphError(status, 1, 'An unknown error occurred', { transient: true });

const throttled = (status, code) =>
  new GraphError(status, code, `(#${code}) ${THROTTLE_MESSAGES[code]}`, { transient: true });

const newTraceId = () => randomBytes(16).toString('base64url');

/** mulberry32: a small deterministic PRNG, so `fail_rate` faults replay identically for a given seed. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Validates a fault description and returns its internal form, or null to clear. Modes (one per fault):
 *   {status: 429|5xx}                       that status, transient envelope (429 → code 17)
 *   {throttle_code: 4|17|32|613|80004, status?: 400|403}   throttling as a 400 (default) or 403, transient
 *   {timeout: true}                         read the request, never answer
 *   {reject_event_ids: [...]}               400 code 100 naming data[i] of the first event carrying such an id
 *                                           (may be given with fail_rate/seed: both apply)
 *   {fail_rate: 0..1, seed?: int}           that fraction of requests answer 500 (PRNG seeded, default 1)
 *   {latency_ms: int}                       answer normally, that many milliseconds late (a slow Graph API)
 * `times` (positive integer, optional) counts the requests the fault hits; it clears itself afterwards.
 * Faults apply to POST /{version}/{pixel}/events only.
 */
function parseFault(input) {
  if (input === null || input === undefined) return null;
  if (typeof input !== 'object' || Array.isArray(input)) throw new TypeError('fault must be an object');
  const { times } = input;
  if (times !== undefined && !(Number.isInteger(times) && times > 0)) {
    throw new TypeError('fault.times must be a positive integer');
  }
  const base = { times, spec: structuredClone(input) };
  if (input.throttle_code !== undefined) {
    const status = input.status ?? 400;
    if (!(input.throttle_code in THROTTLE_MESSAGES)) {
      throw new TypeError(`fault.throttle_code must be one of ${Object.keys(THROTTLE_MESSAGES).join(', ')}`);
    }
    if (status !== 400 && status !== 403) throw new TypeError('throttling fault.status must be 400 or 403');
    return { ...base, error: () => throttled(status, input.throttle_code) };
  }
  if (input.status !== undefined) {
    const { status } = input;
    if (status === 429) return { ...base, error: () => throttled(429, 17) };
    if (Number.isInteger(status) && status >= 500 && status <= 599) return { ...base, error: () => serverError(status) };
    throw new TypeError('fault.status must be 429 or 5xx');
  }
  if (input.timeout !== undefined) {
    if (input.timeout !== true) throw new TypeError('fault.timeout must be true');
    return { ...base, hold: true };
  }
  if (input.reject_event_ids !== undefined) {
    const ids = input.reject_event_ids;
    if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === 'string')) {
      throw new TypeError('fault.reject_event_ids must be a non-empty array of strings');
    }
    // With fail_rate as well, both apply: random 5xx go on while these events are refused (the soak).
    const random = input.fail_rate !== undefined ? parseFault({ fail_rate: input.fail_rate, seed: input.seed }) : {};
    return { ...base, rejectIds: new Set(ids), error: random.error, strikes: random.strikes };
  }
  if (input.fail_rate !== undefined) {
    const rate = input.fail_rate;
    const seed = input.seed ?? 1;
    if (typeof rate !== 'number' || rate < 0 || rate > 1) throw new TypeError('fault.fail_rate must be within [0, 1]');
    if (!Number.isInteger(seed)) throw new TypeError('fault.seed must be an integer');
    const next = prng(seed);
    return { ...base, error: () => serverError(500), strikes: () => next() < rate };
  }
  if (input.latency_ms !== undefined) {
    if (!(Number.isInteger(input.latency_ms) && input.latency_ms > 0 && input.latency_ms <= 60000)) throw new TypeError('fault.latency_ms must be an integer in 1..60000');
    return { ...base, latencyMs: input.latency_ms };
  }
  throw new TypeError('fault needs one of status, throttle_code, timeout, reject_event_ids, fail_rate, latency_ms');
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmptyString = (v) => typeof v === 'string' && v.length > 0;

/** Throws the GraphError Meta would answer for event `data[i]`, or returns quietly if it is acceptable. */
function validateEvent(event, i, now) {
  const at = `data[${i}]`;
  const bad = (field, why) => invalidParameter(`${at}${field ? `.${field}` : ''}: ${why}`);
  if (!isObject(event)) throw bad('', 'each event must be an object');
  if (!nonEmptyString(event.event_name)) throw bad('event_name', 'The parameter event_name is required');

  if (!ACTION_SOURCES.has(event.action_source)) {
    throw bad('action_source', `must be one of ${[...ACTION_SOURCES].join(', ')}`);
  }
  if (!Number.isInteger(event.event_time)) throw bad('event_time', 'must be an integer Unix timestamp in seconds');
  const maxAgeDays = event.action_source === 'physical_store' ? 62 : 7;
  if (now - event.event_time > maxAgeDays * DAY_SECONDS) {
    throw invalidParameter(`${at}.event_time: The timestamp for this event is too far in the past. Events need to ` +
      `be sent from your server within ${maxAgeDays} days of when they occurred.`,
    { subcode: 2804003, title: 'Event Timestamp Too Old' });
  }
  if (event.event_time - now > MAX_FUTURE_SECONDS) {
    throw bad('event_time', 'The timestamp for this event is in the future');
  }

  const user = event.user_data;
  if (!isObject(user)) throw bad('user_data', 'The parameter user_data is required');
  if (!Object.keys(user).some((key) => MATCH_KEYS.has(key))) {
    throw bad('user_data', 'must contain at least one customer information parameter');
  }
  for (const key of HASHED_KEYS) {
    if (!(key in user)) continue;
    const values = Array.isArray(user[key]) ? user[key] : [user[key]];
    if (values.length === 0 || !values.every((v) => typeof v === 'string' && HASHED_HEX.test(v))) {
      throw bad(`user_data.${key}`, 'must be a lowercase hex SHA-256 (64 characters) or MD5 (32) hash, or an array of them');
    }
  }
  for (const key of NEVER_HASHED) {
    if (!(key in user)) continue;
    if (!nonEmptyString(user[key])) throw bad(`user_data.${key}`, 'must be a non-empty string');
    if (LOOKS_HASHED.test(user[key])) throw bad(`user_data.${key}`, 'must not be hashed');
  }
  for (const key of ['fbp', 'fbc']) {
    if (key in user && !FB_COOKIE.test(user[key])) {
      throw bad(`user_data.${key}`, 'must look like fb.<subdomain index>.<creation time>.<value>');
    }
  }
  if ('client_ip_address' in user && isIP(user.client_ip_address) === 0) {
    throw bad('user_data.client_ip_address', 'must be a valid IPv4 or IPv6 address without a port');
  }
  if (event.action_source === 'website') {
    if (!nonEmptyString(event.event_source_url)) throw bad('event_source_url', 'is required for website events');
    if (!('client_user_agent' in user)) throw bad('user_data.client_user_agent', 'is required for website events');
  }

  const custom = event.custom_data ?? {};
  if (!isObject(custom)) throw bad('custom_data', 'must be an object');
  if (event.event_name === 'Purchase' && (custom.value === undefined || custom.currency === undefined)) {
    throw bad('custom_data', 'Purchase events require value and currency');
  }
  if (custom.value !== undefined) {
    if (typeof custom.value !== 'number' || !Number.isFinite(custom.value)) throw bad('custom_data.value', 'must be a number');
    if (typeof custom.currency !== 'string' || !CURRENCY.test(custom.currency)) {
      throw bad('custom_data.currency', 'must be a valid ISO 4217 three-letter currency code');
    }
  }
}

/** Reads the whole body; resolves `null` when it exceeds MAX_BODY_BYTES (the rest is drained, not kept). */
function readBody(req) {
  return new Promise((resolveBody, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () => resolveBody(size > MAX_BODY_BYTES ? null : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Parses a Graph request body (JSON, or form-encoded with `data` as JSON) into an object. */
function parseGraphBody(req, text) {
  const bad = (why) => invalidParameter(why, { subcode: null, title: 'Invalid request body' });
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/x-www-form-urlencoded') {
    const form = Object.fromEntries(new URLSearchParams(text));
    if (form.data !== undefined) {
      try {
        form.data = JSON.parse(form.data);
      } catch {
        throw bad('The parameter data must be a JSON array');
      }
    }
    return form;
  }
  if (text.trim() === '') return {};
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw bad('The request body is not valid JSON');
  }
  if (!isObject(body)) throw bad('The request body must be a JSON object');
  return body;
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=UTF-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * Starts the fake. Resolves to `{url, port, close(), received(), requests(), reset(), setFault(fault)}`:
 * - `received()`: accepted events, each plus `pixel_id`, `test_event_code` (or null) and `api_version`;
 * - `requests()`: every Graph-side request, faulted ones too, as `{method, path, status, events, at}` where
 *   `events` is the number of events the request carried and `status` is null while a request is held;
 * - `reset()`: forgets both lists (the fault stays; `setFault(null)` clears it);
 * - `setFault(fault)`: see `parseFault`; throws TypeError on an invalid fault;
 * - `setAccessToken(token)`: the token accepted from now on (revoke with any other value, fix by restoring).
 */
export async function startMetaFake({ port = 0, host = '127.0.0.1', accessToken, pixelIds, tokensByPixel = {} } = {}) {
  if (!nonEmptyString(accessToken)) throw new TypeError('startMetaFake: accessToken (a non-empty string) is required');
  const allowedPixels = pixelIds === undefined ? null : new Set(pixelIds.map(String));
  let events = [];
  let log = [];
  let fault = null;

  const reset = () => {
    events = [];
    log = [];
  };
  const isKnownPixel = (id) => (allowedPixels ? allowedPixels.has(id) : /^\d+$/.test(id));

  const setFault = (input) => {
    fault = parseFault(input);
    return fault?.spec ?? null;
  };

  /** Counts one hit of the active fault, clearing it when its `times` run out. */
  const spendFault = () => {
    if (fault.times !== undefined && --fault.times === 0) fault = null;
  };

  /** A pixel listed in `tokensByPixel` takes only its own token (a system user token per pixel). */
  function checkToken(url, body, pixel) {
    const token = url.searchParams.get('access_token') ?? body.access_token;
    if (token === undefined || token === null || token === '') {
      throw invalidToken('An access token is required to request this resource.');
    }
    if (token !== (tokensByPixel[pixel] ?? accessToken)) throw invalidToken('Invalid OAuth access token - Cannot parse access token');
  }

  /** Handles POST /{version}/{pixel}/events; returns the success body, `null` to hold, or throws a GraphError. */
  function postEvents(url, body, version, pixel) {
    if (fault?.hold) {
      spendFault();
      return null;
    }
    if (fault?.error && (!fault.strikes || fault.strikes())) {
      const error = fault.error();
      spendFault();
      throw error;
    }
    checkToken(url, body, pixel);
    if (!isKnownPixel(pixel)) throw unknownObject('POST', pixel);

    const { data } = body;
    if (data === undefined) throw invalidParameter('The parameter data is required');
    if (!Array.isArray(data)) throw invalidParameter('The parameter data must be an array');
    if (data.length === 0) throw invalidParameter('The parameter data must contain at least one event');
    if (data.length > MAX_EVENTS) {
      throw invalidParameter(`The parameter data must contain at most ${MAX_EVENTS} events, got ${data.length}`);
    }
    if (body.test_event_code !== undefined && !nonEmptyString(body.test_event_code)) {
      throw invalidParameter('The parameter test_event_code must be a non-empty string');
    }
    const now = Math.floor(Date.now() / 1000);
    data.forEach((event, i) => {
      if (fault?.rejectIds?.has(event?.event_id)) {
        spendFault();
        throw invalidParameter(`data[${i}].event_id: event ${event.event_id} was rejected`);
      }
      validateEvent(event, i, now);
    });

    const testEventCode = body.test_event_code ?? null;
    // The trace id ties each recorded event to the request that carried it.
    const fbtraceId = newTraceId();
    for (const event of data) {
      events.push({ ...event, pixel_id: pixel, test_event_code: testEventCode, api_version: version, fbtrace_id: fbtraceId });
    }
    return { events_received: data.length, messages: [], fbtrace_id: fbtraceId };
  }

  /** Answers a Graph-side request; returns `{status, body}`, `null` to leave it unanswered, or throws a GraphError. */
  async function graphRoute(req, url, entry) {
    const match = /^\/([^/]+)\/([^/]+)(\/events)?\/?$/.exec(url.pathname);
    const [, version, pixel, edge] = match ?? [];
    const route = match && API_VERSION.test(version) && `${req.method} ${edge ? 'events' : 'node'}`;
    if (route === 'GET node') {
      checkToken(url, {}, pixel);
      if (!isKnownPixel(pixel)) throw unknownObject('GET', pixel);
      return { status: 200, body: { id: pixel } };
    }
    if (route !== 'POST events') throw unknownPath(url.pathname);

    if (fault?.latencyMs) {
      const ms = fault.latencyMs;
      spendFault();
      await new Promise((r) => setTimeout(r, ms));
    }
    const text = await readBody(req);
    if (text === null) {
      throw invalidParameter(`The request body exceeds ${MAX_BODY_BYTES} bytes`,
        { subcode: null, title: 'Request Entity Too Large', status: 413 });
    }
    const body = parseGraphBody(req, text);
    if (Array.isArray(body.data)) entry.events = body.data.length;
    const answer = postEvents(url, body, version, pixel);
    return answer && { status: 200, body: answer };
  }

  /** The /__control/* endpoints; returns `{status, body}`. */
  async function controlRoute(req, path) {
    switch (`${req.method} ${path}`) {
      case 'GET /__control/received':
        return { status: 200, body: { events: structuredClone(events) } };
      case 'GET /__control/requests':
        return { status: 200, body: structuredClone(log) };
      case 'DELETE /__control/received':
        reset();
        return { status: 200, body: { events: [] } };
      case 'POST /__control/fault': {
        try {
          return { status: 200, body: { fault: setFault(JSON.parse(await readBody(req))) } };
        } catch (error) {
          return { status: 400, body: { error: { message: `invalid fault: ${error.message}` } } };
        }
      }
      case 'DELETE /__control/fault':
        return { status: 200, body: { fault: setFault(null) } };
      default:
        return { status: 404, body: { error: { message: `unknown control endpoint ${req.method} ${path}` } } };
    }
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://meta-fake');
    if (url.pathname.startsWith('/__control/')) {
      const { status, body } = await controlRoute(req, url.pathname);
      sendJson(res, status, body);
      return;
    }
    const entry = { method: req.method, path: url.pathname, status: null, events: 0, at: new Date().toISOString() };
    log.push(entry);
    const traceId = newTraceId();
    try {
      const answer = await graphRoute(req, url, entry);
      if (answer === null) return;
      entry.status = answer.status;
      sendJson(res, answer.status, answer.body, { 'x-fb-trace-id': traceId });
    } catch (error) {
      if (error === req.errored) return; // the client hung up mid-request: nobody is left to answer
      if (!(error instanceof GraphError)) throw error;
      entry.status = error.status;
      sendJson(res, error.status, error.envelope(traceId), { 'x-fb-trace-id': traceId, ...error.headers });
    }
  });

  await new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolveListen);
  });
  const boundPort = server.address().port;

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`,
    port: boundPort,
    close: () => new Promise((resolveClose) => {
      server.close(() => resolveClose());
      server.closeAllConnections();
    }),
    received: () => structuredClone(events),
    requests: () => structuredClone(log),
    reset,
    setFault,
    // The token Meta accepts from now on: a revoked or rotated token answers 190 as Meta does.
    setAccessToken: (token) => {
      if (!nonEmptyString(token)) throw new TypeError('setAccessToken: a non-empty string is required');
      accessToken = token;
    },
  };
}

/** CLI: node tests/fakes/meta-graph.mjs --token TOKEN [--port 8081] [--host 127.0.0.1] [--pixel ID]... */
async function main(argv) {
  const opts = { port: 8081, pixels: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${flag}`);
    if (flag === '--port') opts.port = Number(value);
    else if (flag === '--host') opts.host = value;
    else if (flag === '--token') opts.token = value;
    else if (flag === '--pixel') opts.pixels.push(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  if (!opts.token) throw new Error('--token is required');
  const fake = await startMetaFake({
    port: opts.port,
    host: opts.host,
    accessToken: opts.token,
    pixelIds: opts.pixels.length > 0 ? opts.pixels : undefined,
  });
  process.stdout.write(`meta-fake listening on ${fake.url}\n`);
  const stop = () => fake.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`meta-fake: ${error.message}\n` +
      'usage: node tests/fakes/meta-graph.mjs --token TOKEN [--port 8081] [--host 127.0.0.1] [--pixel ID]...\n');
    process.exit(2);
  });
}
