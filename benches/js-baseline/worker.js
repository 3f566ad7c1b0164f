// The JS baseline for `benches/compare.mjs`: the /collect worker a user would write for the same job
// as edgekeeper, as plain, obvious code: the official @upstash/redis client with its defaults,
// crypto.subtle for SHA-256, the EVENTS queue. It is deliberately NOT optimised (no caches, no Lua,
// no batching tricks, a client per request as Upstash's Cloudflare example does): it is the yardstick
// "the JS worker a user would write". Do not tune it to make the comparison look fair or unfair.
//
// POST /collect  one event, or {"data": [events]}  -> 202 {"accepted", "duplicates", "rejected"}
// GET  /health   PING Upstash                       -> 200 {"status":"ok"} / 503
// queue()        stands in for delivery: prints each message as `SPY <json>` (the bench counts them) and acks.
//
// Bindings: UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN, EVENTS (queue producer), optional
// RATE_LIMIT_PER_MINUTE (per client IP, default 600).

import { Redis } from '@upstash/redis/cloudflare';

const EVENT_NAMES = new Set([
  'PageView', 'ViewContent', 'Search', 'AddToCart', 'AddToWishlist', 'InitiateCheckout',
  'AddPaymentInfo', 'Purchase', 'Lead', 'CompleteRegistration', 'Contact', 'Subscribe',
]);
const MAX_EVENTS = 50;
const MAX_AGE_SECONDS = 7 * 24 * 3600; // Meta refuses events older than 7 days
const MAX_FUTURE_SECONDS = 5 * 60;
const DEDUP_TTL_SECONDS = 48 * 3600; // Meta's deduplication window

function json(body, status = 200, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

// Normalisation as Meta's "Customer information parameters" page describes it.
const normalizers = {
  em: (v) => v.trim().toLowerCase(),
  ph: (v) => v.replace(/\D/g, ''),
  fn: (v) => v.trim().toLowerCase(),
  ln: (v) => v.trim().toLowerCase(),
  ct: (v) => v.toLowerCase().replace(/[^a-z]/g, ''),
  st: (v) => v.toLowerCase().replace(/[^a-z]/g, ''),
  zp: (v) => v.trim().toLowerCase().replace(/\s/g, ''),
  country: (v) => v.toLowerCase().replace(/[^a-z]/g, '').slice(0, 2),
  external_id: (v) => v.trim().toLowerCase(),
};

async function sha256(text) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function hashUserData(userData = {}) {
  const out = {};
  for (const [key, value] of Object.entries(userData)) {
    const normalize = normalizers[key];
    if (!normalize || typeof value !== 'string') continue;
    const normalized = normalize(value);
    if (normalized) out[key] = await sha256(normalized);
  }
  return out;
}

/** Checks one browser event; returns the Meta server event or throws {code, message}. */
async function validateEvent(event, request) {
  const fail = (code, message) => { throw { code, message }; };
  if (!event || typeof event !== 'object') fail('invalid_event', 'event must be an object');
  if (!EVENT_NAMES.has(event.event_name)) fail('unknown_event', 'event_name is not in the catalog');
  if (typeof event.event_id !== 'string' || event.event_id.length === 0 || event.event_id.length > 128) {
    fail('missing_event_id', 'event_id is required (1-128 characters)');
  }
  const now = Math.floor(Date.now() / 1000);
  let eventTime = event.event_time ?? now;
  if (typeof eventTime !== 'number' || !Number.isFinite(eventTime)) fail('invalid_event_time', 'event_time must be Unix seconds');
  if (eventTime > 1e12) eventTime = Math.floor(eventTime / 1000); // milliseconds
  if (eventTime < now - MAX_AGE_SECONDS) fail('stale_event', 'event_time is older than 7 days');
  if (eventTime > now + MAX_FUTURE_SECONDS) fail('future_event', 'event_time is in the future');
  const actionSource = event.action_source ?? 'website';
  if (actionSource !== 'website') fail('invalid_action_source', 'action_source must be website');
  const sourceUrl = event.event_source_url ?? request.headers.get('referer');
  if (!sourceUrl) fail('missing_event_source_url', 'event_source_url is required');

  return {
    event_name: event.event_name,
    event_id: event.event_id,
    event_time: Math.min(eventTime, now),
    action_source: 'website',
    event_source_url: sourceUrl,
    user_data: {
      ...(await hashUserData(event.user_data)),
      client_ip_address: request.headers.get('cf-connecting-ip') ?? undefined,
      client_user_agent: request.headers.get('user-agent') ?? undefined,
    },
    custom_data: event.custom_data,
  };
}

/** Fixed-window rate limit per client IP: INCR, and EXPIRE when the window's key is new. */
async function rateLimited(redis, request, env) {
  const limit = Number(env.RATE_LIMIT_PER_MINUTE ?? 600);
  const ip = request.headers.get('cf-connecting-ip') ?? 'unknown';
  const key = `rl:${ip}:${Math.floor(Date.now() / 60000)}`;
  const count = await redis.incr(key);
  if (count === 1) await redis.expire(key, 60);
  return count > limit;
}

async function collect(request, env) {
  let body;
  try {
    body = await request.json();
  } catch {
    return json({ error: { code: 'invalid_json', message: 'body is not JSON' } }, 400);
  }
  const events = Array.isArray(body?.data) ? body.data : [body];
  if (events.length === 0) return json({ error: { code: 'no_events', message: 'no events' } }, 400);
  if (events.length > MAX_EVENTS) return json({ error: { code: 'too_many_events', message: `at most ${MAX_EVENTS} events` } }, 400);

  const redis = Redis.fromEnv(env);
  if (await rateLimited(redis, request, env)) {
    return json({ error: { code: 'rate_limited', message: 'too many requests' } }, 429, { 'retry-after': '60' });
  }

  const accepted = [];
  const duplicates = [];
  const rejected = [];
  const valid = [];
  for (const event of events) {
    try {
      valid.push(await validateEvent(event, request));
    } catch (error) {
      rejected.push({ event_id: event?.event_id ?? null, error });
    }
  }

  // Deduplicate by event_id: the first SET NX wins for 48 hours.
  const claims = await Promise.all(
    valid.map((e) => redis.set(`dedup:${e.event_name}:${e.event_id}`, 1, { nx: true, ex: DEDUP_TTL_SECONDS })),
  );
  const toQueue = [];
  valid.forEach((e, i) => {
    if (claims[i] === 'OK') {
      accepted.push(e.event_id);
      toQueue.push({ body: e });
    } else {
      duplicates.push(e.event_id);
    }
  });

  if (toQueue.length > 0) await env.EVENTS.sendBatch(toQueue);

  const status = valid.length === 0 ? 400 : 202;
  return json({ accepted, duplicates, rejected }, status);
}

async function health(env) {
  const redis = Redis.fromEnv(env);
  const started = Date.now();
  try {
    await redis.ping();
    return json({ status: 'ok', upstash: { status: 'ok', latency_ms: Date.now() - started } });
  } catch (e) {
    return json({ status: 'degraded', upstash: { status: 'down', error: String(e.message ?? e) } }, 503);
  }
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    try {
      if (pathname === '/collect' && request.method === 'POST') return await collect(request, env);
      if (pathname === '/health' && request.method === 'GET') return await health(env);
      return json({ error: { code: 'not_found', message: 'not found' } }, 404);
    } catch (e) {
      console.error('collect failed', e);
      return json({ error: { code: 'internal', message: 'something went wrong' } }, 500);
    }
  },

  // Delivery to Meta is out of scope for the benchmark: the consumer prints and acks each message.
  async queue(batch) {
    for (const message of batch.messages) {
      console.log('SPY ' + JSON.stringify(message.body));
      message.ack();
    }
  },
};
