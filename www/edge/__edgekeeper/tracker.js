// edgekeeper browser tracker: sends conversion events to the worker's `/collect`, which hashes,
// deduplicates by `event_id` and forwards them to Meta's Conversions API.
//
// The worker serves it at the stable URL /__edgekeeper/tracker.js (never fingerprinted: a shop embeds
// it with a plain script tag). Load it either way; both give the same `globalThis.edgekeeper`:
//   <script src="/__edgekeeper/tracker.js" defer></script>   (a plain script, as the demo shop does)
//   import "/__edgekeeper/tracker.js"; const ek = globalThis.edgekeeper;   (an ES module)
// It has no `export` statement on purpose: that would make it unusable as a plain script.
//
// Delivery, in short:
// - Every event gets an `event_id` (`crypto.randomUUID()`, or the caller's, e.g. an order id) and is
//   written to a localStorage outbox before anything is sent. The same id goes to
//   `zaraz.track(name, {...custom_data, event_id})` when Zaraz is on the page, so Meta pairs the
//   browser and server copies.
// - While the page is alive the outbox is sent with `fetch(..., {keepalive: true})`, because only a
//   fetch tells us how it went: 2xx → done (ids the worker calls duplicates are done too); other 4xx →
//   final, logged and dropped; 5xx, 408, 429 or a network error → kept and retried with exponential
//   backoff (1 s, 2 s, 4 s … capped at 60 s, never sooner than `Retry-After`), and again on the next
//   page load. Retries reuse the event's id and `event_time`, so the worker counts it once.
// - When the page is being hidden or unloaded, what is still waiting goes out with
//   `navigator.sendBeacon(url, new Blob([json], {type: 'text/plain'}))` (falling back to a keepalive
//   fetch when sendBeacon is missing or returns false). A beacon's answer is never seen, so those
//   events stay in the outbox and the next page confirms them (a duplicate answer removes them).
// - Consent: `ek_consent=granted|denied`, a first-party cookie the worker reads too. Until the visitor
//   answers the banner, events wait in the outbox. Granted → sent with `"consent": "granted"`.
//   Denied → each event is posted once, by beacon, with `"consent": "denied"` and without any
//   user_data (the worker forwards nothing); no outbox, no retries, no Zaraz call.
// - Nothing here ever throws into the page or waits on the network before returning.
(function (global) {
  'use strict';
  if (global.edgekeeper && global.edgekeeper.version) return; // loaded twice (script and module)

  const cfg = Object.assign({
    endpoint: '/collect',
    backoffBaseMs: 1000,
    backoffMaxMs: 60000,
    burstMs: 500, // clicks closer than this on the same burst key are one event
    graceMs: 2500, // a request from a previous page may still be answering: wait this long before resending
    batchSize: 20,
    maxOutbox: 200,
    maxAgeMs: 6 * 24 * 3600 * 1000, // the worker rejects events older than 7 days
    banner: true,
  }, global.edgekeeperConfig || {});

  const OUTBOX_KEY = 'ek_outbox';
  const RECENT_KEY = 'ek_recent';
  const CONSENT_COOKIE = 'ek_consent';
  const CONSENT_MAX_AGE = 180 * 24 * 3600;

  const log = (...a) => { try { console.warn('[edgekeeper]', ...a); } catch (_) { /* no console */ } };
  const safe = (fn, fallback) => { try { return fn(); } catch (e) { log(e && e.message ? e.message : e); return fallback; } };

  // ---- storage (localStorage, or memory when it is unavailable) ----------------------------------
  const memory = {};
  const store = {
    get(key, fallback) {
      try {
        const raw = global.localStorage ? global.localStorage.getItem(key) : memory[key];
        if (raw == null) return fallback;
        const v = JSON.parse(raw);
        return v == null ? fallback : v;
      } catch (_) { return fallback; }
    },
    set(key, value) {
      const raw = JSON.stringify(value);
      try { if (global.localStorage) { global.localStorage.setItem(key, raw); return; } } catch (_) { /* quota, disabled */ }
      memory[key] = raw;
    },
  };

  // ---- ids, cookies, hashing ---------------------------------------------------------------------
  function newId() {
    const c = global.crypto;
    if (c && typeof c.randomUUID === 'function') return c.randomUUID();
    // randomUUID needs a secure context; the same v4 layout from getRandomValues otherwise.
    const b = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(b); else for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function cookie(name) {
    const all = safe(() => global.document.cookie, '') || '';
    for (const part of all.split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === name) {
        return safe(() => decodeURIComponent(part.slice(i + 1).trim()), part.slice(i + 1).trim());
      }
    }
    return null;
  }

  /** SHA-256 of the email as Meta normalises it (trimmed, lower-cased), hex; null when impossible. */
  async function hashEmail(email) {
    const v = String(email == null ? '' : email).trim().toLowerCase();
    if (!v || v.indexOf('@') < 1) return null;
    const subtle = global.crypto && global.crypto.subtle;
    if (!subtle) return null; // no secure context: never keep a raw address around
    try {
      const digest = await subtle.digest('SHA-256', new TextEncoder().encode(v));
      return Array.from(new Uint8Array(digest), (x) => x.toString(16).padStart(2, '0')).join('');
    } catch (_) { return null; }
  }

  // ---- consent -----------------------------------------------------------------------------------
  function consent() {
    const v = cookie(CONSENT_COOKIE);
    return v === 'granted' || v === 'denied' ? v : null;
  }

  function setConsent(value) {
    if (value !== 'granted' && value !== 'denied') throw new TypeError('consent is "granted" or "denied"');
    const secure = global.location && global.location.protocol === 'https:' ? '; Secure' : '';
    safe(() => { global.document.cookie = `${CONSENT_COOKIE}=${value}; Path=/; Max-Age=${CONSENT_MAX_AGE}; SameSite=Lax${secure}`; });
    hideBanner();
    safe(() => global.dispatchEvent(new CustomEvent('edgekeeper:consent', { detail: { consent: value } })));
    if (value === 'granted') {
      // Events that waited for the answer: Zaraz sees them now, the worker too.
      const box = loadOutbox();
      let changed = false;
      for (const e of box) {
        if (e.zaraz) { toZaraz(e.event); e.zaraz = false; changed = true; }
      }
      if (changed) saveOutbox(box);
      flush({ all: true });
    } else {
      const box = loadOutbox();
      saveOutbox([]);
      if (box.length) postDenied(box.map((e) => e.event));
    }
  }

  // ---- outbox ------------------------------------------------------------------------------------
  const inflight = new Set(); // ids this page is sending right now
  let timer = null;

  function loadOutbox() {
    const box = store.get(OUTBOX_KEY, []);
    return Array.isArray(box) ? box.filter((e) => e && e.event && typeof e.event.event_id === 'string') : [];
  }
  function saveOutbox(box) { store.set(OUTBOX_KEY, box); }

  /** Applies `fn` to the stored entries with these ids (re-read first: another page may have changed it). */
  function updateEntries(ids, fn) {
    const want = new Set(ids);
    const box = loadOutbox();
    const next = [];
    for (const e of box) {
      if (!want.has(e.event.event_id)) { next.push(e); continue; }
      const kept = fn(e);
      if (kept) next.push(kept);
    }
    saveOutbox(next);
  }

  function remember(id) {
    const recent = store.get(RECENT_KEY, []);
    if (!Array.isArray(recent)) { store.set(RECENT_KEY, [id]); return; }
    if (recent.indexOf(id) !== -1) return;
    recent.push(id);
    store.set(RECENT_KEY, recent.slice(-100));
  }
  function seen(id) {
    const recent = store.get(RECENT_KEY, []);
    return Array.isArray(recent) && recent.indexOf(id) !== -1;
  }

  function enqueue(event, { zaraz }) {
    const now = Date.now();
    let box = loadOutbox().filter((e) => now - e.created_at < cfg.maxAgeMs);
    if (box.some((e) => e.event.event_id === event.event_id)) return;
    box.push({ event, created_at: now, attempts: 0, next_at: 0, sent_at: null, zaraz: !!zaraz });
    if (box.length > cfg.maxOutbox) box = box.slice(box.length - cfg.maxOutbox);
    saveOutbox(box);
  }

  function schedule(delayMs) {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => { timer = null; flush(); }, Math.max(0, delayMs));
  }

  function scheduleNext() {
    const now = Date.now();
    let soonest = Infinity;
    for (const e of loadOutbox()) {
      if (inflight.has(e.event.event_id)) continue;
      soonest = Math.min(soonest, dueAt(e));
    }
    if (soonest !== Infinity) schedule(soonest - now);
  }

  function dueAt(e) {
    // Sent by another page (or a beacon) with no answer seen: give that request time to land.
    const waiting = e.sent_at ? e.sent_at + cfg.graceMs : 0;
    return Math.max(e.next_at || 0, waiting);
  }

  /** Sends what is due (`all`: everything not in flight, as on a page load). Never throws. */
  function flush({ all = false } = {}) {
    safe(() => {
      if (consent() !== 'granted') return;
      const now = Date.now();
      const box = loadOutbox();
      const due = box.filter((e) => {
        if (inflight.has(e.event.event_id)) return false;
        if (e.sent_at && e.sent_at + cfg.graceMs > now) return false;
        return all || (e.next_at || 0) <= now;
      });
      for (let i = 0; i < due.length; i += cfg.batchSize) post(due.slice(i, i + cfg.batchSize)).catch((e) => log(e && e.message ? e.message : e));
      scheduleNext();
    });
  }

  function retryDelay(attempts, retryAfterSecs) {
    const backoff = Math.min(cfg.backoffMaxMs, cfg.backoffBaseMs * Math.pow(2, Math.max(0, attempts - 1)));
    const floor = retryAfterSecs > 0 ? retryAfterSecs * 1000 : 0;
    return Math.max(backoff, Math.min(floor, cfg.backoffMaxMs));
  }

  async function post(entries) {
    const ids = entries.map((e) => e.event.event_id);
    ids.forEach((id) => inflight.add(id));
    const now = Date.now();
    updateEntries(ids, (e) => Object.assign(e, { attempts: (e.attempts || 0) + 1, sent_at: now }));
    const body = JSON.stringify({ data: entries.map((e) => e.event), consent: 'granted' });
    let res = null;
    try {
      res = await global.fetch(cfg.endpoint, {
        method: 'POST',
        keepalive: body.length < 60000,
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json' },
        body,
      });
    } catch (_) {
      res = null; // network error, offline, page going away
    }
    try {
      const retryAfter = res ? parseFloat(res.headers.get('retry-after') || '') : NaN;
      if (!res || res.status >= 500 || res.status === 408 || res.status === 429) {
        failed(ids, res ? res.status : 'network error', retryAfter);
      } else if (res.status >= 200 && res.status < 300) {
        let answer = null;
        try { answer = await res.json(); } catch (_) { /* a 2xx is enough */ }
        const again = new Set();
        for (const r of (answer && Array.isArray(answer.rejected) ? answer.rejected : [])) {
          // Not queued, or another request is still queuing it: retry, never drop.
          if (r && r.error && (r.error.code === 'queue_unavailable' || r.error.code === 'event_in_progress')) again.add(r.event_id);
          else if (r) log(`event ${r.event_id} rejected: ${r.error && r.error.code}`);
        }
        updateEntries(ids.filter((id) => !again.has(id)), () => null);
        if (again.size) failed([...again], 'queue_unavailable', NaN);
      } else {
        // Any other 4xx is final: the same body would be refused again.
        let code = '';
        try { const a = await res.json(); code = a && a.error ? a.error.code : (a && a.rejected || []).map((r) => r.error && r.error.code).join(','); } catch (_) { /* not JSON */ }
        log(`dropping ${ids.length} event(s): /collect answered ${res.status} ${code}`);
        updateEntries(ids, () => null);
      }
    } finally {
      ids.forEach((id) => inflight.delete(id));
      scheduleNext();
    }
  }

  function failed(ids, why, retryAfterSecs) {
    const now = Date.now();
    updateEntries(ids, (e) => Object.assign(e, { sent_at: null, next_at: now + retryDelay(e.attempts || 1, retryAfterSecs), last_error: String(why) }));
    log(`/collect: ${why}; ${ids.length} event(s) kept for a retry`);
  }

  // ---- beacons -----------------------------------------------------------------------------------
  /** sendBeacon with a text/plain Blob; a keepalive fetch when it is missing or refuses. */
  function beacon(payload) {
    const json = JSON.stringify(payload);
    let ok = false;
    try {
      if (global.navigator && typeof global.navigator.sendBeacon === 'function') {
        ok = global.navigator.sendBeacon(cfg.endpoint, new Blob([json], { type: 'text/plain' }));
      }
    } catch (_) { ok = false; }
    if (!ok) {
      try {
        const p = global.fetch(cfg.endpoint, { method: 'POST', keepalive: true, credentials: 'same-origin', body: json, headers: { 'content-type': 'application/json' } });
        if (p && p.catch) p.catch(() => {});
      } catch (_) { /* nothing else to try */ }
    }
    return ok;
  }

  function postDenied(events) {
    const stripped = events.map((e) => {
      const copy = Object.assign({}, e);
      delete copy.user_data;
      return copy;
    });
    for (let i = 0; i < stripped.length; i += cfg.batchSize) beacon({ data: stripped.slice(i, i + cfg.batchSize), consent: 'denied' });
  }

  /** The page is going away: hand what is waiting to a beacon; keep it until a later page confirms. */
  function onHide() {
    safe(() => {
      if (consent() !== 'granted') return;
      const box = loadOutbox().filter((e) => !inflight.has(e.event.event_id) && !e.sent_at);
      if (!box.length) return;
      const now = Date.now();
      for (let i = 0; i < box.length; i += cfg.batchSize) {
        beacon({ data: box.slice(i, i + cfg.batchSize).map((e) => e.event), consent: 'granted' });
      }
      updateEntries(box.map((e) => e.event.event_id), (e) => Object.assign(e, { sent_at: now, attempts: (e.attempts || 0) + 1 }));
    });
  }

  // ---- Zaraz -------------------------------------------------------------------------------------
  function toZaraz(event) {
    safe(() => {
      const z = global.zaraz;
      if (z && typeof z.track === 'function') {
        const r = z.track(event.event_name, Object.assign({}, event.custom_data || {}, { event_id: event.event_id }));
        if (r && typeof r.catch === 'function') r.catch(() => {});
      }
    });
  }

  // ---- tracking ----------------------------------------------------------------------------------
  const bursts = new Map(); // burstKey -> { id, at }

  /**
   * Tracks one event; returns at once with `{event_id, fresh}`. `fresh` is false when this call
   * repeats an event already tracked (same explicit `event_id`, or within a click burst).
   * Options: `event_id` (e.g. an order id), `burstKey` (calls with this key closer than `burstMs`
   * share one id and one event), `user_data` (already hashed values, e.g. from `hashEmail`).
   */
  function track(name, customData, options) {
    return safe(() => {
      const opts = options || {};
      const now = Date.now();
      let id = opts.event_id ? String(opts.event_id) : null;
      if (!id && opts.burstKey) {
        const b = bursts.get(opts.burstKey);
        if (b && now - b.at < cfg.burstMs) {
          b.at = now; // the burst goes on while the clicks keep coming
          return { event_id: b.id, fresh: false };
        }
      }
      if (!id) id = newId();
      if (opts.burstKey) bursts.set(opts.burstKey, { id, at: now });
      if (opts.event_id) {
        if (seen(id)) return { event_id: id, fresh: false };
        remember(id); // a caller's id (an order) is one event, even across reloads
      }

      const event = {
        event_name: String(name),
        event_id: id,
        event_time: Math.floor(now / 1000),
        event_source_url: String(global.location && global.location.href || ''),
        action_source: 'website',
      };
      if (customData && Object.keys(customData).length) event.custom_data = customData;
      const c = consent();
      if (c === 'denied') {
        postDenied([event]);
        return { event_id: id, fresh: true };
      }
      const userData = Object.assign({}, opts.user_data || {});
      const fbp = cookie('_fbp');
      const fbc = cookie('_fbc');
      if (fbp) userData.fbp = fbp;
      if (fbc) userData.fbc = fbc;
      if (Object.keys(userData).length) event.user_data = userData;

      if (c === 'granted') toZaraz(event);
      enqueue(event, { zaraz: c !== 'granted' });
      if (c === 'granted') schedule(0); // coalesces events tracked in the same tick into one request
      return { event_id: id, fresh: true };
    }, { event_id: null, fresh: false });
  }

  // ---- consent banner ----------------------------------------------------------------------------
  let bannerEl = null;
  function hideBanner() {
    if (bannerEl) { bannerEl.remove(); bannerEl = null; }
  }
  function showConsentBanner() {
    safe(() => {
      const doc = global.document;
      if (!doc || !doc.body || bannerEl) return;
      const el = doc.createElement('section');
      el.className = 'ek-consent';
      el.id = 'consent-banner';
      el.setAttribute('role', 'dialog');
      el.setAttribute('aria-live', 'polite');
      el.setAttribute('aria-label', 'Cookie consent');
      const text = doc.createElement('p');
      text.textContent = 'We measure visits and purchases to improve our ads (Meta, via our own server). Allow it?';
      const actions = doc.createElement('div');
      actions.className = 'ek-consent-actions';
      const decline = doc.createElement('button');
      decline.type = 'button';
      decline.id = 'consent-decline';
      decline.className = 'btn btn-ghost';
      decline.textContent = 'Decline';
      decline.addEventListener('click', () => safe(() => setConsent('denied')));
      const accept = doc.createElement('button');
      accept.type = 'button';
      accept.id = 'consent-accept';
      accept.className = 'btn btn-primary';
      accept.textContent = 'Accept';
      accept.addEventListener('click', () => safe(() => setConsent('granted')));
      actions.append(decline, accept);
      el.append(text, actions);
      doc.body.appendChild(el);
      bannerEl = el;
    });
  }

  // ---- start -------------------------------------------------------------------------------------
  function start() {
    if (cfg.banner && consent() === null) showConsentBanner();
    flush({ all: true }); // whatever an earlier page left behind
  }

  safe(() => {
    global.addEventListener('pagehide', onHide);
    global.addEventListener('online', () => flush({ all: true }));
    if (global.document) {
      global.document.addEventListener('visibilitychange', () => {
        if (global.document.visibilityState === 'hidden') onHide();
        else flush();
      });
      if (global.document.readyState === 'loading') global.document.addEventListener('DOMContentLoaded', start);
      else start();
    }
  });

  global.edgekeeper = {
    version: '1',
    track,
    consent,
    setConsent,
    showConsentBanner,
    hashEmail,
    newId,
    flush: () => flush({ all: true }),
    outbox: () => loadOutbox().map((e) => Object.assign({}, e)),
    config: cfg,
  };
})(typeof globalThis !== 'undefined' ? globalThis : window);
