//! Admission of a /collect request: the rate-limit count and the dedup claims of all its events in
//! ONE store round trip (an atomic Lua script), an L1 of ids this isolate already claimed (zero round
//! trips), and an in-isolate fallback when the store is down, reported as `"dedup":"local"`.
//!
//! The script is safe to retry: a per-request guard key makes the counters count the request once,
//! and each claim stores the request's token, so a retried claim recognises itself as new.

use crate::config::RateLimits;
use crate::error::AppError;
use crate::http::Outbound;
use crate::upstash::{cmd, Isolate, Keys, Module, PendingBooks, Retry, Ride, Store, StoreError, Value};

/// Meta deduplicates browser and server events sharing event_name + event_id within 48 hours.
pub const CLAIM_TTL_SECS: u64 = 172_800;
/// A pending claim younger than this belongs to a request that may still be queuing its event (a
/// request's store and queue deadlines are far shorter); older, it is taken over. Written as a
/// literal in ADMIT_SCRIPT.
pub const PENDING_SECS: u64 = 30;

/// The ride-along part both scripts share (KEYS[4]: the site's books, ARGV[4]: the claim TTL,
/// ARGV[9]: the ride as JSON, KEYS by index; see [`Ride`]). Each entry counts once however often
/// it is carried: a sealed bundle under its own guard, a local claim only if the store has none,
/// a release only if the claim is still the releasing request's pending one.
macro_rules! ride_lua {
    () => {
        r#"
local function add(field, n) n = tonumber(n) if n ~= 0 then redis.call('HINCRBY', KEYS[4], field, n) end end
local ride = cjson.decode(ARGV[9])
for _, b in ipairs(ride.s) do
  if redis.call('SET', KEYS[b[1]], '1', 'NX', 'EX', 3600) then add('duplicates', b[2]); add('rejected', b[3]) end
end
for _, k in ipairs(ride.l) do
  local had = redis.call('SET', KEYS[k], 'c', 'NX', 'EX', ARGV[4], 'GET')
  if not had then add('accepted', 1)
  elseif had:sub(1, 2) == 'p:' then redis.call('SET', KEYS[k], 'c', 'KEEPTTL') end
end
for _, r in ipairs(ride.r) do
  if redis.call('GET', KEYS[r[1]]) == 'p:' .. r[2] then redis.call('DEL', KEYS[r[1]]); add('accepted', -1) end
end
for _, c in ipairs(ride.c) do
  local v = redis.call('GET', KEYS[c[1]])
  if v == 'p:' .. c[2] or v == 't:' .. c[2] then redis.call('SET', KEYS[c[1]], 'c', 'KEEPTTL') end
end
"#
    };
}

/// KEYS: rate key per client, rate key per site, per-request guard, the site's books, claims, then
/// the ride's keys. ARGV: client limit, site limit, window secs, claim TTL, request token, this
/// request's rejected and duplicate counts (with the open ride counts), the number of claims, the
/// ride, the guard's TTL. Answers {client count, site count, limited 0/1, per claim 1 new / 0 duplicate}.
///
/// Answers per claim 1 new, 0 duplicate, 2 in progress.
///
/// A claim is pending (`p:<token>`) until the queue consumer confirms it (`c`). A request that
/// finds another's pending claim younger than PENDING_SECS is told "in progress" (the other request
/// may still be queuing it, or fail to: the client must retry, not drop it); an older one it takes
/// over (`t:<token>`, not counted again) and is accepted, so a claim whose request never queued its
/// event (the queue refused, its release was lost) never turns a client's retry into a "duplicate"
/// that is then dropped. The consumer's lease makes a copy taken over that was queued harmless.
const ADMIT_SCRIPT: &str = concat!(
    r#"
local first = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[10])
local ipc, sitec
if first then
  ipc = redis.call('INCR', KEYS[1])
  if ipc == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  sitec = redis.call('INCR', KEYS[2])
  if sitec == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
else
  ipc = tonumber(redis.call('GET', KEYS[1]) or '0')
  sitec = tonumber(redis.call('GET', KEYS[2]) or '0')
end
"#,
    ride_lua!(),
    r#"
if first then add('rejected', ARGV[6]); add('duplicates', ARGV[7]) end
if ipc > tonumber(ARGV[1]) or sitec > tonumber(ARGV[2]) then return {ipc, sitec, 1} end
local out = {ipc, sitec, 0}
local new, dup, tok = 0, 0, ARGV[5]
for i = 5, 4 + tonumber(ARGV[8]) do
  local old = redis.call('GET', KEYS[i])
  if not old then
    redis.call('SET', KEYS[i], 'p:' .. tok, 'EX', ARGV[4]); out[#out + 1] = 1; new = new + 1
  elseif old == 'p:' .. tok or old == 't:' .. tok then out[#out + 1] = 1
  elseif old:sub(1, 2) == 'p:' or old:sub(1, 2) == 't:' then
    if tonumber(ARGV[4]) - redis.call('TTL', KEYS[i]) > 30 then
      redis.call('SET', KEYS[i], 't:' .. tok, 'EX', ARGV[4]); out[#out + 1] = 1
    else out[#out + 1] = 2 end
  else out[#out + 1] = 0; dup = dup + 1 end
end
if first then add('accepted', new); add('duplicates', dup) end
return out
"#
);

/// The ride alone (KEYS[4] the books; other ARGV unused but positional).
const FLUSH_SCRIPT: &str = concat!(ride_lua!(), "return 1");

/// The ride as the scripts' JSON, its keys appended to `keys` (referred to by 1-based index).
fn ride_json(ride: &Ride, keys: &mut Vec<String>) -> String {
    let mut at = |k: &str| {
        keys.push(k.to_string());
        keys.len()
    };
    let sealed: Vec<serde_json::Value> = ride.sealed.iter().map(|(g, b)| serde_json::json!([at(g), b.duplicates, b.rejected])).collect();
    let local: Vec<usize> = ride.local.iter().map(|k| at(k)).collect();
    let mut pairs = |list: &[(String, String)]| -> Vec<serde_json::Value> { list.iter().map(|(k, t)| serde_json::json!([at(k), t])).collect() };
    let (releases, confirms) = (pairs(&ride.releases), pairs(&ride.confirms));
    serde_json::json!({ "s": sealed, "l": local, "r": releases, "c": confirms }).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// Claims decided by Upstash (or entirely by this isolate's L1).
    Store,
    /// The store was unavailable: claims decided by this isolate alone.
    Local,
}

impl DedupMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupMode::Store => "store",
            DedupMode::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    pub limit: u32,
    pub remaining: u32,
    pub reset_secs: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// Per claim, in order: true = new (forward it), false = duplicate or in progress.
    pub fresh: Vec<bool>,
    /// Per claim: another request's pending claim, still being queued: retry, neither new nor a
    /// duplicate. All false unless the store said so.
    pub in_progress: Vec<bool>,
    pub mode: DedupMode,
    pub rate: RateInfo,
    /// Store round trips this admission cost (0 or 1).
    pub round_trips: u32,
}

/// The site's event books: accepted, duplicates, rejected (here), delivered, retried, dead_lettered
/// (by delivery). accepted = delivered + in flight + dead_lettered.
pub fn books_key(keys: &Keys) -> String {
    keys.key(Module::Stats, "books")
}

/// Match-key counts of one event name: `events` and one field per key (counts only, no values).
pub fn match_key(keys: &Keys, event_name: &str) -> String {
    keys.key(Module::Stats, &format!("mq:{event_name}"))
}

pub fn claim_key(keys: &Keys, event_name: &str, event_id: &str) -> String {
    keys.key(Module::Evt, &format!("{event_name}:{event_id}"))
}

struct Window {
    start: u64,
    reset_secs: u32,
}

fn window(now_ms: f64, limits: &RateLimits) -> Window {
    let now = (now_ms / 1000.0) as u64;
    let w = u64::from(limits.window_secs);
    let start = now - now % w;
    Window { start, reset_secs: (start + w - now) as u32 }
}

fn check_limits(ip_count: i64, site_count: i64, limits: &RateLimits, w: &Window) -> Result<RateInfo, AppError> {
    if ip_count > i64::from(limits.per_ip) {
        return Err(AppError::RateLimited { scope: "client", limit: limits.per_ip, window_secs: limits.window_secs, reset_secs: w.reset_secs });
    }
    if site_count > i64::from(limits.per_site) {
        return Err(AppError::RateLimited { scope: "site", limit: limits.per_site, window_secs: limits.window_secs, reset_secs: w.reset_secs });
    }
    Ok(RateInfo { limit: limits.per_ip, remaining: (i64::from(limits.per_ip) - ip_count).max(0) as u32, reset_secs: w.reset_secs })
}

pub struct Admit<'a> {
    pub keys: &'a Keys,
    /// Events of this request rejected by intake, counted in the books with the claims.
    pub rejected: u64,
    pub client_ip: &'a str,
    pub limits: RateLimits,
    /// Unique per request: makes the script idempotent under retries.
    pub request_token: &'a str,
}

pub async fn admit<O: Outbound>(store: Option<&Store<'_, O>>, iso: &Isolate, out: &O, a: &Admit<'_>, claim_keys: &[String]) -> Result<Admission, AppError> {
    let now = out.now_ms();
    let w = window(now, &a.limits);
    let ttl_ms = (CLAIM_TTL_SECS * 1000) as f64;

    // L1: ids this isolate already queued are duplicates without asking anyone.
    let mut fresh: Vec<Option<bool>> = {
        let l1 = iso.claimed.borrow();
        claim_keys.iter().map(|k| if l1.contains(k, now) { Some(false) } else { None }).collect()
    };
    let l1_hits = fresh.iter().filter(|f| f.is_some()).count() as u64;
    if l1_hits > 0 {
        iso.count("l1_hits", l1_hits);
    }
    // Counts decided here travel with the next round trip to the store (none is made for them).
    iso.note_books(a.keys.site(), PendingBooks { duplicates: l1_hits as i64, rejected: a.rejected as i64 });
    let pending: Vec<&String> = claim_keys.iter().zip(&fresh).filter(|(_, f)| f.is_none()).map(|(k, _)| k).collect();

    let from_store = match store {
        Some(s) if !pending.is_empty() => Some(admit_in_store(s, a, &w, &pending).await),
        _ => None,
    };
    let mut in_progress = vec![false; claim_keys.len()];
    let (mode, round_trips) = match from_store {
        Some(Ok((ip_count, site_count, decided))) => {
            let rate = check_limits(ip_count, site_count, &a.limits, &w)?;
            let mut raced = 0u64;
            {
                let mut l1 = iso.claimed.borrow_mut();
                let local = iso.claimed_locally.borrow();
                let mut it = decided.into_iter();
                for ((slot, key), busy) in fresh.iter_mut().zip(claim_keys).zip(in_progress.iter_mut()) {
                    if slot.is_none() {
                        let state = it.next().unwrap_or(0);
                        let new = state == 1;
                        *busy = state == 2;
                        // Claimed meanwhile by another request of this isolate that fell back to the
                        // local claims (the store was down for it): that one owns the event.
                        let taken_here = local.contains(key, out.now_ms());
                        if new && taken_here {
                            raced += 1;
                        }
                        // A confirmed duplicate stays one for the window. A new claim is remembered
                        // only once its event is queued (`queued`).
                        if state == 0 {
                            l1.insert(key, now, ttl_ms);
                        }
                        *slot = Some(new && !taken_here);
                    }
                }
            }
            if raced > 0 {
                if let Some(s) = store {
                    // The script counted these as accepted: correct the books (rare; best effort).
                    let key = books_key(a.keys);
                    let fix = [cmd(["HINCRBY".to_string(), key.clone(), "accepted".into(), format!("-{raced}")]), cmd(["HINCRBY".to_string(), key, "duplicates".into(), raced.to_string()])];
                    let _ = s.multi_exec("books_fix", &fix, Retry::Once).await;
                }
            }
            return Ok(Admission { fresh: fresh.into_iter().map(|f| f.unwrap_or(false)).collect(), in_progress, mode: DedupMode::Store, rate, round_trips: 1 });
        }
        Some(Err(e)) => {
            iso.count("dedup_local", pending.len() as u64);
            if matches!(e, StoreError::Unauthorized(_)) {
                iso.count("store_unauthorized", 1);
            }
            (DedupMode::Local, 1)
        }
        // Nothing to ask the store (all L1 hits), or no store configured.
        None => (if store.is_some() { DedupMode::Store } else { DedupMode::Local }, 0),
    };
    if mode == DedupMode::Local && store.is_none() {
        iso.count("dedup_local", pending.len() as u64);
    }

    // Local counting and claiming: this isolate's view only.
    let (ip_count, site_count) = {
        let mut c = iso.counters.borrow_mut();
        (c.incr(&format!("ip:{}", a.client_ip), w.start), c.incr("site", w.start))
    };
    let rate = check_limits(i64::from(ip_count), i64::from(site_count), &a.limits, &w)?;
    let mut l1 = iso.claimed.borrow_mut();
    let mut local = iso.claimed_locally.borrow_mut();
    let (mut accepted, mut dups) = (Vec::new(), 0);
    for (slot, key) in fresh.iter_mut().zip(claim_keys) {
        if slot.is_none() {
            let new = l1.insert_new(key, now, ttl_ms);
            if new {
                accepted.push(key.clone());
                local.insert(key, now, ttl_ms);
            } else {
                dups += 1;
            }
            *slot = Some(new);
        }
    }
    drop((l1, local));
    if mode == DedupMode::Local {
        // Decided here: counted in the books when the store answers again (if it never saw them).
        iso.note_books(a.keys.site(), PendingBooks { duplicates: dups as i64, rejected: 0 });
    }
    Ok(Admission { fresh: fresh.into_iter().map(|f| f.unwrap_or(false)).collect(), in_progress, mode, rate, round_trips })
}

/// After the queue took the events: their claims are remembered by this isolate (L1), so a repeat
/// is a duplicate without a round trip, and confirmed in the store by the next one. Claims this
/// isolate decided alone are owed to the store only now: written before the queue took them (a
/// concurrent request carrying them), a refused event would be marked seen and its resend answered
/// "duplicate" and dropped.
pub fn queued(iso: &Isolate, keys: &Keys, claim_keys: &[String], token: &str, now_ms: f64, mode: DedupMode, store_configured: bool) {
    {
        let mut l1 = iso.claimed.borrow_mut();
        for k in claim_keys {
            l1.insert(k, now_ms, (CLAIM_TTL_SECS * 1000) as f64);
        }
    }
    match mode {
        DedupMode::Store => iso.note_confirms(keys.site(), claim_keys.iter().map(|k| (k.clone(), token.to_string()))),
        DedupMode::Local if store_configured => iso.note_local(keys.site(), claim_keys),
        DedupMode::Local => {}
    }
}

fn guard_key(keys: &Keys, token: &str) -> String {
    keys.key(Module::Rl, &format!("req:{token}"))
}

async fn admit_in_store<O: Outbound>(s: &Store<'_, O>, a: &Admit<'_>, w: &Window, pending: &[&String]) -> Result<(i64, i64, Vec<i64>), StoreError> {
    let iso = s.isolate();
    let site = a.keys.site();
    let mut ride = iso.take_ride(site);
    let own = std::mem::take(&mut ride.open);
    let guard = guard_key(a.keys, a.request_token);
    let mut keys = vec![a.keys.key(Module::Rl, &format!("ip:{}:{}", a.client_ip, w.start)), a.keys.key(Module::Rl, &format!("site:{}", w.start)), guard.clone(), books_key(a.keys)];
    keys.extend(pending.iter().map(|k| k.to_string()));
    let ride_arg = ride_json(&ride, &mut keys);
    // A guard that seals counts must outlive an outage; one that guards only the rate count need not.
    let guard_secs = if own.is_empty() { a.limits.window_secs } else { 3600 };
    let args = [
        a.limits.per_ip.to_string(),
        a.limits.per_site.to_string(),
        a.limits.window_secs.to_string(),
        CLAIM_TTL_SECS.to_string(),
        a.request_token.to_string(),
        own.rejected.to_string(),
        own.duplicates.to_string(),
        pending.len().to_string(),
        ride_arg,
        guard_secs.to_string(),
    ];
    let v = match s.eval("admit", ADMIT_SCRIPT, &keys, &args, Retry::Idempotent).await {
        Ok(v) => v,
        Err(e) => {
            // The call may have run: its own counts go back sealed under its guard.
            ride.open = own;
            iso.put_back(site, ride, Some(guard));
            return Err(e);
        }
    };
    let Value::Array(items) = v else { return Err(StoreError::Protocol("admit script answered a non-array".into())) };
    let ints: Vec<i64> = items.iter().map(|i| i.as_int().ok_or_else(|| StoreError::Protocol("admit script answered a non-integer".into()))).collect::<Result<_, _>>()?;
    if ints.len() < 3 {
        return Err(StoreError::Protocol("admit script answer too short".into()));
    }
    let decided: Vec<i64> = if ints[2] == 1 { Vec::new() } else { ints[3..].to_vec() };
    if ints[2] == 0 && decided.len() != pending.len() {
        return Err(StoreError::Protocol("admit script answered the wrong number of claims".into()));
    }
    s.isolate().metrics.borrow_mut().hit("admit", decided.iter().all(|&n| n != 1));
    Ok((ints[0], ints[1], decided))
}

/// Writes what the site's books owe the store (the ride) in one script: before reading the books,
/// and to give claims back. What fails stays owed.
pub async fn flush<O: Outbound>(s: &Store<'_, O>, keys: &Keys, token: &str) -> Result<(), StoreError> {
    let iso = s.isolate();
    let mut ride = iso.take_ride(keys.site());
    if ride.is_empty() {
        return Ok(());
    }
    // Open counts go sealed under a guard of their own: the script then counts them once.
    if !ride.open.is_empty() {
        ride.sealed.push((guard_key(keys, token), std::mem::take(&mut ride.open)));
    }
    let mut k = vec![String::new(), String::new(), String::new(), books_key(keys)];
    let arg = ride_json(&ride, &mut k);
    let args = ["", "", "", &CLAIM_TTL_SECS.to_string(), "", "", "", "", &arg].map(str::to_string);
    match s.eval("books_flush", FLUSH_SCRIPT, &k, &args, Retry::Idempotent).await {
        Ok(_) => Ok(()),
        Err(e) => {
            iso.put_back(keys.site(), ride, None);
            Err(e)
        }
    }
}

/// Gives claims back (the queue refused the events): nothing must stay marked as seen that was not
/// accepted, nor counted as accepted. Only a claim still pending under this request's token is
/// deleted; a release that fails is carried by the next round trip, and meanwhile the pending claim
/// lets the client's retry through (see ADMIT_SCRIPT).
pub async fn release<O: Outbound>(store: Option<&Store<'_, O>>, iso: &Isolate, keys: &Keys, claim_keys: &[String], mode: DedupMode, token: &str) -> Result<(), StoreError> {
    {
        let (mut l1, mut local) = (iso.claimed.borrow_mut(), iso.claimed_locally.borrow_mut());
        for k in claim_keys {
            l1.remove(k);
            local.remove(k);
        }
    }
    if mode == DedupMode::Local {
        // Claimed here only, and owed to the store only once queued: nothing to give back.
        return Ok(());
    }
    match store {
        Some(s) if !claim_keys.is_empty() => {
            iso.note_releases(keys.site(), claim_keys.iter().map(|k| (k.clone(), token.to_string())).collect());
            flush(s, keys, &format!("{token}:release")).await
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
