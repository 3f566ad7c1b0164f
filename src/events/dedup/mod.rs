//! Admission of a /collect request: the rate-limit count and the dedup claims of all its events in
//! ONE store round trip (an atomic Lua script), an L1 of ids this isolate already claimed (zero round
//! trips), and an in-isolate fallback when the store is down, reported as `"dedup":"local"`.
//!
//! The script is safe to retry: a per-request guard key makes the counters count the request once,
//! and each claim stores the request's token, so a retried claim recognises itself as new.

use crate::config::RateLimits;
use crate::error::AppError;
use crate::http::Outbound;
use crate::upstash::{cmd, Isolate, Keys, Module, PendingBooks, Retry, Store, StoreError, Value};

/// Meta deduplicates browser and server events sharing event_name + event_id within 48 hours.
pub const CLAIM_TTL_SECS: u64 = 172_800;

/// KEYS: rate key per client, rate key per site, per-request guard, the site's books, claims...
/// ARGV: client limit, site limit, window secs, claim TTL, request token, then the book entries this
/// isolate decided without the store since its last write (rejected, duplicates), the number of
/// claims, a JSON array of match-key counts (one object per trailing key: the per-event hashes), and
/// accepted events this isolate counted alone while the store was down.
/// Answers {client count, site count, limited 0/1, per claim 1 new / 0 duplicate...}.
const ADMIT_SCRIPT: &str = r#"
local ipc, sitec
local first = redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3])
if first then
  ipc = redis.call('INCR', KEYS[1])
  if ipc == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  sitec = redis.call('INCR', KEYS[2])
  if sitec == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
else
  ipc = tonumber(redis.call('GET', KEYS[1]) or '0')
  sitec = tonumber(redis.call('GET', KEYS[2]) or '0')
end
if ipc > tonumber(ARGV[1]) or sitec > tonumber(ARGV[2]) then return {ipc, sitec, 1} end
local out = {ipc, sitec, 0}
local new, dup = 0, 0
local nclaims = tonumber(ARGV[8])
for i = 5, 4 + nclaims do
  local old = redis.call('SET', KEYS[i], ARGV[5], 'NX', 'EX', ARGV[4], 'GET')
  if (not old) or old == ARGV[5] then out[#out + 1] = 1; new = new + 1 else out[#out + 1] = 0; dup = dup + 1 end
end
if first then
  local function add(field, n) if n ~= 0 then redis.call('HINCRBY', KEYS[4], field, n) end end
  add('accepted', new + tonumber(ARGV[10]))
  add('duplicates', dup + tonumber(ARGV[7]))
  add('rejected', tonumber(ARGV[6]))
  for j, counts in ipairs(cjson.decode(ARGV[9])) do
    for field, n in pairs(counts) do redis.call('HINCRBY', KEYS[4 + nclaims + j], field, n) end
  end
end
return out
"#;

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
    /// Per claim, in order: true = new (forward it), false = duplicate.
    pub fresh: Vec<bool>,
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

    // L1: ids this isolate already claimed are duplicates without asking anyone.
    let mut fresh: Vec<Option<bool>> = {
        let l1 = iso.claimed.borrow();
        claim_keys.iter().map(|k| if l1.contains(k, now) { Some(false) } else { None }).collect()
    };
    let l1_hits = fresh.iter().filter(|f| f.is_some()).count() as u64;
    if l1_hits > 0 {
        iso.count("l1_hits", l1_hits);
    }
    // Counts decided here travel with the next round trip to the store (none is made for them).
    iso.note_books(a.keys.site(), PendingBooks { duplicates: l1_hits, rejected: a.rejected, ..PendingBooks::default() });
    let pending: Vec<&String> = claim_keys.iter().zip(&fresh).filter(|(_, f)| f.is_none()).map(|(k, _)| k).collect();

    let from_store = match store {
        Some(s) if !pending.is_empty() => Some(admit_in_store(s, a, &w, &pending).await),
        _ => None,
    };
    let (mode, round_trips) = match from_store {
        Some(Ok((ip_count, site_count, decided))) => {
            let rate = check_limits(ip_count, site_count, &a.limits, &w)?;
            let mut raced = 0u64;
            {
                let mut l1 = iso.claimed.borrow_mut();
                let local = iso.claimed_locally.borrow();
                let mut it = decided.into_iter();
                for (slot, key) in fresh.iter_mut().zip(claim_keys) {
                    if slot.is_none() {
                        let new = it.next().unwrap_or(false);
                        // Claimed meanwhile by another request of this isolate that fell back to the
                        // local claims (the store was down for it): that one owns the event.
                        let taken_here = local.contains(key, out.now_ms());
                        if new && taken_here {
                            raced += 1;
                        }
                        // Remembered either way: a key someone claimed stays claimed for the window.
                        l1.insert(key, now, ttl_ms);
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
            return Ok(Admission { fresh: fresh.into_iter().map(|f| f.unwrap_or(false)).collect(), mode: DedupMode::Store, rate, round_trips: 1 });
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
    let (mut accepted, mut dups) = (0, 0);
    for (slot, key) in fresh.iter_mut().zip(claim_keys) {
        if slot.is_none() {
            let new = l1.insert_new(key, now, ttl_ms);
            if new {
                accepted += 1;
                local.insert(key, now, ttl_ms);
            } else {
                dups += 1;
            }
            *slot = Some(new);
        }
    }
    drop((l1, local));
    if mode == DedupMode::Local {
        // Decided here: counted in the books when the store answers again.
        iso.note_books(a.keys.site(), PendingBooks { accepted, duplicates: dups, ..PendingBooks::default() });
    }
    Ok(Admission { fresh: fresh.into_iter().map(|f| f.unwrap_or(false)).collect(), mode, rate, round_trips })
}

async fn admit_in_store<O: Outbound>(s: &Store<'_, O>, a: &Admit<'_>, w: &Window, pending: &[&String]) -> Result<(i64, i64, Vec<bool>), StoreError> {
    let iso = s.isolate();
    let site = a.keys.site();
    let books = iso.take_books(site);
    let matched = iso.take_match(site);
    let mut keys = vec![
        a.keys.key(Module::Rl, &format!("ip:{}:{}", a.client_ip, w.start)),
        a.keys.key(Module::Rl, &format!("site:{}", w.start)),
        a.keys.key(Module::Rl, &format!("req:{}", a.request_token)),
        books_key(a.keys),
    ];
    keys.extend(pending.iter().map(|k| k.to_string()));
    keys.extend(matched.iter().map(|(name, _)| match_key(a.keys, name)));
    let counts: Vec<serde_json::Value> =
        matched.iter().map(|(_, c)| serde_json::Value::Object(c.fields().into_iter().map(|(k, n)| (k, serde_json::json!(n))).collect())).collect();
    let args = [
        a.limits.per_ip.to_string(),
        a.limits.per_site.to_string(),
        a.limits.window_secs.to_string(),
        CLAIM_TTL_SECS.to_string(),
        a.request_token.to_string(),
        books.rejected.to_string(),
        books.duplicates.to_string(),
        pending.len().to_string(),
        serde_json::Value::Array(counts).to_string(),
        books.accepted.to_string(),
    ];
    let v = match s.eval("admit", ADMIT_SCRIPT, &keys, &args, Retry::Idempotent).await {
        Ok(v) => v,
        Err(e) => {
            iso.note_books(site, books);
            iso.restore_match(site, matched);
            return Err(e);
        }
    };
    let Value::Array(items) = v else { return Err(StoreError::Protocol("admit script answered a non-array".into())) };
    let ints: Vec<i64> = items.iter().map(|i| i.as_int().ok_or_else(|| StoreError::Protocol("admit script answered a non-integer".into()))).collect::<Result<_, _>>()?;
    if ints.len() < 3 {
        return Err(StoreError::Protocol("admit script answer too short".into()));
    }
    let decided = if ints[2] == 1 { Vec::new() } else { ints[3..].iter().map(|&c| c == 1).collect() };
    if ints[2] == 0 && decided.len() != pending.len() {
        return Err(StoreError::Protocol("admit script answered the wrong number of claims".into()));
    }
    s.isolate().metrics.borrow_mut().hit("admit", decided.iter().all(|n| !n));
    Ok((ints[0], ints[1], decided))
}

/// Gives claims back (the queue refused the events): nothing must stay marked as seen that was not
/// accepted, nor counted as accepted. Best effort on the store; always on the L1.
pub async fn release<O: Outbound>(store: Option<&Store<'_, O>>, iso: &Isolate, keys: &Keys, claim_keys: &[String], mode: DedupMode) -> Result<(), StoreError> {
    {
        let (mut l1, mut local) = (iso.claimed.borrow_mut(), iso.claimed_locally.borrow_mut());
        for k in claim_keys {
            l1.remove(k);
            local.remove(k);
        }
    }
    if mode == DedupMode::Local {
        // Claimed and counted only here: nothing in the store to give back.
        iso.unnote_accepted(keys.site(), claim_keys.len() as u64);
        return Ok(());
    }
    match store {
        Some(s) if !claim_keys.is_empty() => {
            let mut del = cmd(["DEL"]);
            del.extend(claim_keys.iter().cloned());
            let uncount = cmd(["HINCRBY".to_string(), books_key(keys), "accepted".into(), format!("-{}", claim_keys.len())]);
            s.multi_exec("release", &[del, uncount], Retry::Once).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
