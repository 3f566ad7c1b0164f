//! Delivery of queued events to Meta, for one queue batch, and each message's fate. Nothing is
//! sent twice and nothing accepted is dropped:
//! - a lease per event, taken atomically before the Conversions API call, keeps two consumers
//!   holding copies of one event (a queue redelivery, a send retried inside the request) from both
//!   sending it; the same script confirms the event's dedup claim, so a later re-send is a duplicate;
//! - what the worker cannot finish because of its own side (Meta refusing our token or pixel, the
//!   store down while a fate is written, the dead-letter store full) is held: put back on the queue
//!   as a new message with a delay, so it never spends the queue's retries and is never acked unkept;
//! - one bad event is dead-lettered with Meta's reason and the rest sent again; a batch rejected
//!   without a culprit is split in halves until the culprit is alone.
//! Store round trips per batch: the lease script, then one record script (markers, books, match-key
//! counts, dead letters, alarms), safe to retry.

use std::collections::BTreeMap;

use serde_json::json;

use super::{classify, request, Verdict};
use crate::config::Config;
use crate::events::dedup::{books_key, match_key};
use crate::events::outbox::QueuedEvent;
use crate::events::quality::WEIGHTS;
use crate::http::Outbound;
use crate::upstash::{codec, Isolate, Keys, Module, Retry, Store, StoreError, Value};

/// Delivered markers outlive Meta's 48 h dedup window and the queue's retention.
pub const DELIVERED_TTL_SECS: u64 = 7 * 24 * 3600;
/// Conversions API requests one invocation may make (subrequests are limited per invocation).
pub const MAX_REQUESTS: u32 = 40;
/// A lease lasts one Conversions API timeout plus this: past it, the holder is presumed gone.
pub const LEASE_SLACK_SECS: u32 = 30;
/// A record script's answer is kept this long, so a retried call (reply lost) is applied once.
const RECORD_GUARD_SECS: u32 = 3600;
/// The longest a message waits for the store to come back before its fate is tried again.
const STORE_HOLD_SECS: u32 = 30;

/// How long a message waits for the store: short at first (most outages are blips), doubling with
/// each hold up to STORE_HOLD_SECS (and never past the configured hold).
fn store_hold(times_held: u32, cap: u32) -> u32 {
    (2u32 << times_held.min(4)).min(STORE_HOLD_SECS).min(cap)
}

#[derive(Debug, Clone)]
pub struct Item {
    pub msg: QueuedEvent,
    /// Milliseconds since the event was accepted (the queue's attempt count is not exposed to
    /// Rust consumers; age grows the same way and drives the retry delay).
    pub age_ms: f64,
    /// The queue message's id: a redelivery of the same message recognises its own lease.
    pub lease_id: String,
}

/// What a held message does when it comes back.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    Deliver,
    /// Meta has it: write the marker and the books only.
    Record,
    /// A dead letter waiting to be stored.
    Bury(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Delivered,
    /// A marker says an earlier attempt delivered it.
    AlreadyDelivered,
    /// Retried by the queue (counts toward max_retries): Meta's transient failures.
    Retry { delay_secs: u32, reason: String },
    /// Put back on the queue as a new message after `delay_secs`, the original acked.
    Hold { delay_secs: u32, reason: String, then: Then },
    DeadLettered { reason: String },
}

impl Fate {
    pub fn acked(&self) -> bool {
        !matches!(self, Fate::Retry { .. })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fates: Vec<Option<Fate>>,
    pub capi_requests: u32,
}

impl Report {
    /// The message to queue for a held item: what is left to do, marked on it.
    pub fn held_message(&self, i: usize, item: &Item, now_ms: f64) -> Option<(QueuedEvent, u32)> {
        let Some(Fate::Hold { delay_secs, then, .. }) = &self.fates[i] else { return None };
        let mut msg = item.msg.clone();
        msg.held += 1;
        msg.held_at_ms = Some(now_ms as i64);
        match then {
            Then::Deliver => {}
            Then::Record => msg.sent_at_ms = Some(msg.sent_at_ms.unwrap_or(now_ms as i64)),
            Then::Bury(reason) => msg.dead = Some(reason.clone()),
        }
        Some((msg, *delay_secs))
    }
}

/// How long an item has been in Meta's hands for the retry backoff: since it was last held, else
/// since it was accepted.
fn retry_age_ms(item: &Item, now_ms: f64) -> f64 {
    item.msg.held_at_ms.map_or(item.age_ms, |at| (now_ms - at as f64).max(0.0))
}

/// Retry delay for the queue: as long as the event has already waited, between 5 s and 10 min, so
/// successive delays roughly double (5, 5, 10, 20, 40 ... 600 s).
pub fn retry_delay(age_ms: f64) -> u32 {
    ((age_ms / 1000.0) as u32).clamp(5, 600)
}

/// KEYS: per event its delivered marker, its lease and its dedup claim; ARGV: per event the lease
/// id, then the lease TTL. Answers per event 0 delivered before, 1 leased to us, 2 held elsewhere.
const LEASE_SCRIPT: &str = r#"
local ttl = ARGV[#ARGV]
local out = {}
for i = 1, #KEYS / 3 do
  if redis.call('EXISTS', KEYS[3*i-2]) == 1 then out[i] = 0
  else
    local held = redis.call('SET', KEYS[3*i-1], ARGV[i], 'NX', 'EX', ttl, 'GET')
    if (not held) or held == ARGV[i] then
      redis.call('SET', KEYS[3*i], 'c', 'XX', 'KEEPTTL')
      out[i] = 1
    else out[i] = 2 end
  end
end
return out
"#;

/// KEYS[1]: this run's guard; ARGV: guard TTL, marker TTL, the plan (JSON, KEYS by index):
/// m [marker, books, match-key hash, fields]: a delivery (counted only if the marker is new, so any
/// copy counts once); l: leases to drop; a [hash, field, value or ""]: alarms set or cleared;
/// q [list, books, cap, values, alarm hash, field, at]: dead letters stored while there is room;
/// i [books, field, n]: counts. q and i run once per guard; the answer (dead letters stored per
/// q entry) is kept on the guard for a retried call.
const RECORD_SCRIPT: &str = r#"
local p = cjson.decode(ARGV[3])
for _, m in ipairs(p.m) do
  if not redis.call('SET', KEYS[m[1]], '1', 'EX', ARGV[2], 'GET') then
    redis.call('HINCRBY', KEYS[m[2]], 'delivered', 1)
    redis.call('HINCRBY', KEYS[m[3]], 'events', 1)
    for _, f in ipairs(m[4]) do redis.call('HINCRBY', KEYS[m[3]], f, 1) end
  end
end
for _, l in ipairs(p.l) do redis.call('DEL', KEYS[l]) end
for _, a in ipairs(p.a) do
  if a[3] == '' then redis.call('HDEL', KEYS[a[1]], a[2]) else redis.call('HSET', KEYS[a[1]], a[2], a[3]) end
end
local done = redis.call('GET', KEYS[1])
if done then return done end
local stored = {0}
for j, q in ipairs(p.q) do
  local n = math.max(0, math.min(q[3] - redis.call('LLEN', KEYS[q[1]]), #q[4]))
  for x = 1, n do redis.call('LPUSH', KEYS[q[1]], q[4][x]) end
  if n > 0 then redis.call('HINCRBY', KEYS[q[2]], 'dead_lettered', n) end
  if n < #q[4] then redis.call('HSET', KEYS[q[5]], q[6], q[7]) else redis.call('HDEL', KEYS[q[5]], q[6]) end
  stored[j + 1] = n
end
for _, i in ipairs(p.i) do redis.call('HINCRBY', KEYS[i[1]], i[2], i[3]) end
local r = cjson.encode(stored)
redis.call('SET', KEYS[1], r, 'EX', ARGV[1])
return r
"#;

pub fn delivered_key(msg: &QueuedEvent, prefix: &str) -> String {
    Keys::new(prefix, &msg.site).key(Module::Sent, &format!("{}:{}", msg.event_name(), msg.event_id()))
}

fn lease_key(msg: &QueuedEvent, prefix: &str) -> String {
    Keys::new(prefix, &msg.site).key(Module::Sent, &format!("lease:{}:{}", msg.event_name(), msg.event_id()))
}

pub fn dlq_key(prefix: &str, site: &str) -> String {
    Keys::new(prefix, site).key(Module::Dlq, "events")
}

/// The worker's alarms, for `/health`: `capi:<pixel>` (Meta refuses our credentials) and
/// `dlq:<site>` (the dead-letter store is full), each a JSON object; cleared when it passes.
pub fn alarms_key(prefix: &str) -> String {
    Keys::new(prefix, "_worker").key(Module::Stats, "alarms")
}

/// A dead letter as stored: the queued message (hashed data only) and why Meta or we gave up.
pub fn dead_letter(item: &Item, reason: &str, now_ms: f64) -> serde_json::Value {
    let mut message = item.msg.clone();
    message.dead = None;
    json!({
        "event_id": item.msg.event_id(),
        "event_name": item.msg.event_name(),
        "site": item.msg.site,
        "reason": reason,
        "age_ms": item.age_ms as i64,
        "dead_lettered_at_ms": now_ms as i64,
        "message": message,
    })
}

fn hold(delay_secs: u32, reason: String, then: Then) -> Option<Fate> {
    Some(Fate::Hold { delay_secs, reason, then })
}

pub async fn deliver<O: Outbound>(items: &[Item], cfg: &Config, out: &O, iso: &Isolate) -> Report {
    let mut report = Report { fates: vec![None; items.len()], capi_requests: 0 };
    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    let held = cfg.delivery.hold_secs;

    // What an earlier attempt left to do: store a waiting dead letter, or record a delivery Meta
    // already has. The same event twice in one batch: only the first copy counts.
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        report.fates[i] = if let Some(reason) = &item.msg.dead {
            Some(Fate::DeadLettered { reason: reason.clone() })
        } else if !seen.insert(delivered_key(&item.msg, &cfg.key_prefix)) {
            Some(Fate::AlreadyDelivered)
        } else if item.msg.sent_at_ms.is_some() {
            Some(Fate::Delivered)
        } else {
            None
        };
    }

    let todo: Vec<usize> = (0..items.len()).filter(|&i| report.fates[i].is_none()).collect();
    let mut leased = vec![false; items.len()];
    let lease_secs = cfg.meta.timeout_ms / 1000 + LEASE_SLACK_SECS;
    if let (Some(s), false) = (&store, todo.is_empty()) {
        match lease(s, cfg, items, &todo, lease_secs).await {
            Ok(states) => {
                for (&i, state) in todo.iter().zip(states) {
                    match state {
                        0 => report.fates[i] = Some(Fate::AlreadyDelivered),
                        1 => leased[i] = true,
                        _ => report.fates[i] = Some(Fate::Retry { delay_secs: lease_secs, reason: "another delivery of this event is under way".into() }),
                    }
                }
            }
            // Sending without a lease could send twice: wait for the store instead.
            Err(e) => {
                for &i in &todo {
                    report.fates[i] = hold(store_hold(items[i].msg.held, held), format!("no delivery lease, the store failed: {e}"), Then::Deliver);
                }
            }
        }
    }

    let mut groups: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if report.fates[i].is_none() {
            groups.entry((item.msg.pixel_id.clone(), item.msg.test_event_code.clone())).or_default().push(i);
        }
    }
    let batch = cfg.capi_batch_size.clamp(1, super::MAX_BATCH);
    let mut work: Vec<(String, Option<String>, Vec<usize>)> = Vec::new();
    for ((pixel, code), idx) in groups {
        for chunk in idx.chunks(batch) {
            work.push((pixel.clone(), code.clone(), chunk.to_vec()));
        }
    }
    work.reverse();

    // Per pixel: Some(alarm) when Meta refused our credentials, None when a batch went through.
    let mut alarms: BTreeMap<String, Option<String>> = BTreeMap::new();
    while let Some((pixel, code, idx)) = work.pop() {
        if report.capi_requests >= MAX_REQUESTS {
            for &i in &idx {
                // Not the events' fault: held (a new message), so a batch full of events Meta
                // refuses one by one does not spend its neighbours' retries (the soak found good
                // events dead-lettered after max_retries this way).
                report.fates[i] = hold(1, "request budget of this invocation used".into(), Then::Deliver);
            }
            continue;
        }
        // Each pixel with its own token (PIXELS), or META_ACCESS_TOKEN.
        let Some(token) = cfg.token_for(&pixel) else {
            for &i in &idx {
                report.fates[i] = hold(held, format!("no access token configured for pixel {pixel}"), Then::Deliver);
            }
            continue;
        };
        let events: Vec<_> = idx.iter().map(|&i| &items[i].msg.event).collect();
        let req = request(&cfg.meta, &pixel, code.as_deref(), &events, token.expose());
        report.capi_requests += 1;
        let result = out.send(req).await;
        match classify(&result) {
            Verdict::Delivered { .. } => {
                alarms.insert(pixel.clone(), None);
                for &i in &idx {
                    report.fates[i] = Some(Fate::Delivered);
                }
            }
            Verdict::Retry { reason } => {
                let now = out.now_ms();
                for &i in &idx {
                    report.fates[i] = Some(Fate::Retry { delay_secs: retry_delay(retry_age_ms(&items[i], now)), reason: reason.clone() });
                }
            }
            // Our token or pixel, not the events: they wait on the queue until it is fixed.
            Verdict::Credentials { reason } => {
                iso.count("capi_credentials_errors", 1);
                alarms.insert(pixel.clone(), Some(json!({ "reason": reason, "at_ms": out.now_ms() as i64 }).to_string()));
                for &i in &idx {
                    report.fates[i] = hold(held, reason.clone(), Then::Deliver);
                }
            }
            Verdict::BadEvent { index, reason } if index < idx.len() => {
                report.fates[idx[index]] = Some(Fate::DeadLettered { reason });
                let rest: Vec<usize> = idx.iter().enumerate().filter(|(n, _)| *n != index).map(|(_, &i)| i).collect();
                if !rest.is_empty() {
                    work.push((pixel, code, rest));
                }
            }
            Verdict::BadEvent { reason, .. } | Verdict::BadBatch { reason } => {
                if idx.len() == 1 {
                    report.fates[idx[0]] = Some(Fate::DeadLettered { reason });
                } else {
                    let (a, b) = idx.split_at(idx.len() / 2);
                    work.push((pixel.clone(), code.clone(), b.to_vec()));
                    work.push((pixel, code, a.to_vec()));
                }
            }
        }
    }

    record(items, &mut report, &leased, &alarms, cfg, store.as_ref(), out).await;
    report
}

async fn lease<O: Outbound>(s: &Store<'_, O>, cfg: &Config, items: &[Item], todo: &[usize], lease_secs: u32) -> Result<Vec<i64>, StoreError> {
    let mut keys = Vec::with_capacity(todo.len() * 3);
    let mut args: Vec<String> = Vec::with_capacity(todo.len() + 1);
    for &i in todo {
        let m = &items[i].msg;
        keys.extend([delivered_key(m, &cfg.key_prefix), lease_key(m, &cfg.key_prefix), m.claim_key.clone()]);
        args.push(items[i].lease_id.clone());
    }
    args.push(lease_secs.to_string());
    match s.eval("delivery_lease", LEASE_SCRIPT, &keys, &args, Retry::Idempotent).await? {
        Value::Array(v) if v.len() == todo.len() => Ok(v.iter().map(|x| x.as_int().unwrap_or(2)).collect()),
        other => Err(StoreError::Protocol(format!("lease script answered {other:?}"))),
    }
}

/// Messages the queue gave up on (its own dead-letter queue, after max_retries): stored as dead
/// letters with `reason`, or held on that queue while they cannot be.
pub async fn bury<O: Outbound>(items: &[Item], reason: &str, cfg: &Config, out: &O, iso: &Isolate) -> Report {
    let fates = items.iter().map(|i| Some(Fate::DeadLettered { reason: i.msg.dead.clone().unwrap_or_else(|| reason.to_string()) })).collect();
    let mut report = Report { fates, capi_requests: 0 };
    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    record(items, &mut report, &vec![false; items.len()], &BTreeMap::new(), cfg, store.as_ref(), out).await;
    report
}

/// Every KEYS entry once, referred to by index in the record plan.
#[derive(Default)]
struct KeyTable {
    keys: Vec<String>,
    index: BTreeMap<String, usize>,
}

impl KeyTable {
    fn at(&mut self, key: String) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        self.keys.push(key.clone());
        self.index.insert(key, self.keys.len());
        self.keys.len()
    }
}

/// Markers, books, match-key counts, dead letters and alarms in one script. What it could not write
/// is held on the queue: a delivery to be recorded, a dead letter to be stored.
async fn record<O: Outbound>(items: &[Item], report: &mut Report, leased: &[bool], alarms: &BTreeMap<String, Option<String>>, cfg: &Config, store: Option<&Store<'_, O>>, out: &O) {
    let now_ms = out.now_ms();
    let prefix = &cfg.key_prefix;
    let mut t = KeyTable::default();
    let token = format!("{:x}{:08x}", now_ms as u64, (out.random() * 4_294_967_296.0) as u64);
    t.at(Keys::new(prefix, "_worker").key(Module::Stats, &format!("rec:{token}")));
    let alarm_key = t.at(alarms_key(prefix));
    let (mut m, mut l, mut a, mut q, mut incr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut retried: BTreeMap<&str, i64> = BTreeMap::new();
    let mut letters: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (item, fate)) in items.iter().zip(&report.fates).enumerate() {
        let keys = Keys::new(prefix, &item.msg.site);
        match fate {
            Some(Fate::Delivered) => {
                let user = item.msg.event.get("user_data");
                let fields: Vec<&str> = WEIGHTS.iter().map(|(k, _)| *k).filter(|k| user.and_then(|u| u.get(*k)).is_some_and(|v| !v.is_null())).collect();
                m.push(json!([t.at(delivered_key(&item.msg, prefix)), t.at(books_key(&keys)), t.at(match_key(&keys, item.msg.event_name())), fields]));
            }
            Some(Fate::Retry { .. }) => *retried.entry(item.msg.site.as_str()).or_default() += 1,
            Some(Fate::DeadLettered { .. }) => letters.entry(item.msg.site.as_str()).or_default().push(i),
            _ => {}
        }
        if leased[i] {
            l.push(t.at(lease_key(&item.msg, prefix)));
        }
    }
    for (pixel, alarm) in alarms {
        a.push(json!([alarm_key, format!("capi:{pixel}"), alarm.clone().unwrap_or_default()]));
    }
    for (site, idx) in &letters {
        let values: Vec<String> = idx
            .iter()
            .map(|&i| match &report.fates[i] {
                Some(Fate::DeadLettered { reason }) => codec::encode(&dead_letter(&items[i], reason, now_ms).to_string()),
                _ => String::new(),
            })
            .collect();
        let alarm = json!({ "at_ms": now_ms as i64, "max": cfg.delivery.dlq_max }).to_string();
        q.push(json!([t.at(dlq_key(prefix, site)), t.at(books_key(&Keys::new(prefix, site))), cfg.delivery.dlq_max, values, alarm_key, format!("dlq:{site}"), alarm]));
    }
    for (site, n) in &retried {
        incr.push(json!([t.at(books_key(&Keys::new(prefix, site))), "retried", n]));
    }
    if m.is_empty() && l.is_empty() && a.is_empty() && q.is_empty() && incr.is_empty() {
        return;
    }
    let plan = json!({ "m": m, "l": l, "a": a, "q": q, "i": incr }).to_string();
    let args = [RECORD_GUARD_SECS.to_string(), DELIVERED_TTL_SECS.to_string(), plan];
    let stored: Result<Vec<usize>, String> = match store {
        Some(s) => match s.eval("delivery_record", RECORD_SCRIPT, &t.keys, &args, Retry::Idempotent).await {
            // Lua's cjson writes the list of counts, led by a 0 so that it is never an empty object.
            Ok(Value::Str(text)) => serde_json::from_str::<Vec<usize>>(&text).map(|v| v.into_iter().skip(1).collect()).map_err(|e| e.to_string()),
            Ok(other) => Err(format!("record script answered {other:?}")),
            Err(e) => Err(e.to_string()),
        },
        None => Err("no store configured for dead letters".into()),
    };
    let hold_for = cfg.delivery.hold_secs;
    match stored {
        Ok(counts) => {
            // Past the cap: the rest of a site's letters wait on the queue, never trimmed away.
            for ((_, idx), n) in letters.iter().zip(counts.into_iter().chain(std::iter::repeat(0))) {
                for &i in idx.iter().skip(n) {
                    if let Some(Fate::DeadLettered { reason }) = report.fates[i].clone() {
                        report.fates[i] = hold(hold_for, format!("the dead-letter store is full (DLQ_MAX {})", cfg.delivery.dlq_max), Then::Bury(reason));
                    }
                }
            }
        }
        Err(e) => {
            iso_note(store, "delivery_record_failures");
            for (fate, item) in report.fates.iter_mut().zip(items) {
                let wait = store_hold(item.msg.held, hold_for);
                *fate = match fate.take() {
                    Some(Fate::Delivered) if store.is_some() => hold(wait, format!("delivered; the record failed: {e}"), Then::Record),
                    Some(Fate::DeadLettered { reason }) => hold(wait, format!("dead letter not stored yet: {e}"), Then::Bury(reason)),
                    other => other,
                };
            }
        }
    }
}

fn iso_note<O: Outbound>(store: Option<&Store<'_, O>>, name: &'static str) {
    if let Some(s) = store {
        s.isolate().count(name, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::native::NativeOutbound;
    use crate::http::{OutboundRequest, OutboundResponse, TransportError};
    use crate::testsupport::LocalStore;

    /// The store is the real one; Meta answers every batch with `status` (200 by default) and
    /// `body`, and counts the events it was sent.
    struct Meta {
        requests: std::cell::Cell<u32>,
        events: std::cell::Cell<u32>,
        answer: std::cell::RefCell<(u16, String)>,
    }

    impl Meta {
        fn ok() -> Self {
            Meta { requests: Default::default(), events: Default::default(), answer: std::cell::RefCell::new((200, r#"{"events_received":1,"messages":[]}"#.into())) }
        }
    }

    impl Outbound for Meta {
        async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError> {
            if req.url.contains("/events") {
                self.requests.set(self.requests.get() + 1);
                let body: serde_json::Value = serde_json::from_slice(req.body.as_deref().unwrap_or_default()).unwrap_or_default();
                self.events.set(self.events.get() + body["data"].as_array().map_or(0, |d| d.len() as u32));
                let (status, text) = self.answer.borrow().clone();
                return Ok(OutboundResponse { status, headers: vec![], body: text.into_bytes() });
            }
            NativeOutbound.send(req).await
        }
        async fn sleep(&self, ms: u32) {
            NativeOutbound.sleep(ms).await
        }
        fn now_ms(&self) -> f64 {
            NativeOutbound.now_ms()
        }
        fn random(&self) -> f64 {
            NativeOutbound.random()
        }
    }

    fn item(id: &str) -> Item {
        let event = json!({ "event_name": "Lead", "event_id": id, "event_time": 1, "action_source": "website", "user_data": {} });
        Item {
            msg: QueuedEvent { v: 1, site: "shop.example".into(), pixel_id: "1".into(), test_event_code: None, claim_key: "c".into(), accepted_at_ms: 0, event, sent_at_ms: None, dead: None, held: 0, held_at_ms: None },
            age_ms: 0.0,
            lease_id: format!("m-{id}"),
        }
    }

    #[test]
    fn delivered_markers_cost_two_store_commands_per_batch_and_stop_a_second_send() {
        let store = LocalStore::start();
        let vars = [("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str()), ("META_ACCESS_TOKEN", "t")];
        let cfg = Config::from_source(&vars[..]).unwrap();
        let (out, iso) = (Meta::ok(), Isolate::default());
        let batch: Vec<Item> = (0..20).map(|i| item(&format!("e{i}"))).collect();
        let since = store.log_seq();
        let first = pollster::block_on(deliver(&batch, &cfg, &out, &iso));
        assert!(first.fates.iter().all(|f| *f == Some(Fate::Delivered)), "{:?}", first.fates);
        assert_eq!(out.requests.get(), 1);
        // The lease script, then the record script: two store requests for 20 events.
        assert_eq!(store.log_seq() - since, 2);
        // The same messages again (a redelivery after a lost ack): nothing is sent twice.
        let again = pollster::block_on(deliver(&batch[5..], &cfg, &out, &iso));
        assert!(again.fates.iter().all(|f| *f == Some(Fate::AlreadyDelivered)), "{:?}", again.fates);
        assert_eq!(out.requests.get(), 1);
        let mixed: Vec<Item> = vec![item("e1"), item("new-1")];
        let third = pollster::block_on(deliver(&mixed, &cfg, &out, &iso));
        assert_eq!(third.fates, vec![Some(Fate::AlreadyDelivered), Some(Fate::Delivered)]);
    }

    fn config(store: &LocalStore, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str()), ("META_ACCESS_TOKEN", "t")];
        vars.extend_from_slice(extra);
        Config::from_source(&vars[..]).unwrap()
    }

    fn get(store: &LocalStore, cfg: &Config, c: &[&str]) -> Value {
        let (out, iso) = (NativeOutbound, Isolate::default());
        pollster::block_on(Store::new(cfg.upstash.as_ref().unwrap(), &out, &iso).command("t", &crate::upstash::cmd(c.iter().copied()), Retry::Idempotent)).unwrap_or_else(|e| panic!("{e} ({})", store.url))
    }

    #[test]
    fn two_consumers_with_copies_of_one_event_send_it_once() {
        let store = LocalStore::start();
        let cfg = config(&store, &[]);
        let out = Meta::ok();
        // Two copies (two queue messages) of one event, in two consumers' batches at the same time:
        // the first takes the lease; the second finds it held and is retried, not sent.
        let (iso_a, iso_b) = (Isolate::default(), Isolate::default());
        let copy_a = item("race-1");
        let mut copy_b = item("race-1");
        copy_b.lease_id = "m-other".into();
        let (ra, rb) = pollster::block_on(async {
            let a = lease(&Store::new(cfg.upstash.as_ref().unwrap(), &out, &iso_a), &cfg, std::slice::from_ref(&copy_a), &[0], 40).await.unwrap();
            let b = deliver(std::slice::from_ref(&copy_b), &cfg, &out, &iso_b).await;
            (a, b)
        });
        assert_eq!(ra, vec![1]);
        assert!(matches!(rb.fates[0], Some(Fate::Retry { .. })), "{:?}", rb.fates);
        assert_eq!(out.requests.get(), 0);
        // The lease holder's own redelivery (same message id) may go on.
        let a = pollster::block_on(deliver(std::slice::from_ref(&copy_a), &cfg, &out, &iso_a));
        assert_eq!(a.fates, vec![Some(Fate::Delivered)]);
        // The other copy, when it comes back: already delivered, nothing sent.
        let b = pollster::block_on(deliver(std::slice::from_ref(&copy_b), &cfg, &out, &iso_b));
        assert_eq!(b.fates, vec![Some(Fate::AlreadyDelivered)]);
        assert_eq!(out.events.get(), 1);
    }

    #[test]
    fn a_record_that_fails_holds_the_delivery_for_recording_and_counts_it_once() {
        let store = LocalStore::start();
        let cfg = config(&store, &[("UPSTASH_TIMEOUT_MS", "200"), ("UPSTASH_DEADLINE_MS", "300")]);
        let (out, iso) = (Meta::ok(), Isolate::default());
        let batch = vec![item("rec-1"), item("rec-2")];
        // A lease taken earlier by these same messages (their ids) does not stop them.
        let mut leased_only = pollster::block_on(async {
            let s = Store::new(cfg.upstash.as_ref().unwrap(), &out, &iso);
            lease(&s, &cfg, &batch, &[0, 1], 40).await.unwrap()
        });
        assert_eq!(leased_only, vec![1, 1]);
        leased_only.clear();
        store.set_faults(json!({ "lose_reply": true }));
        let r = pollster::block_on(deliver(&batch, &cfg, &out, &iso));
        store.set_faults(json!({}));
        // Leases could not be read either (the reply was lost): nothing was sent, all held.
        assert!(r.fates.iter().all(|f| matches!(f, Some(Fate::Hold { then: Then::Deliver, .. }))), "{:?}", r.fates);
        assert_eq!(out.requests.get(), 0);
        // Sent now; the record's replies are lost, every time.
        let mut held = Report { fates: vec![Some(Fate::Delivered); 2], capi_requests: 1 };
        store.set_faults(json!({ "status": 500 }));
        pollster::block_on(record(&batch, &mut held, &[true, true], &BTreeMap::new(), &cfg, Some(&Store::new(cfg.upstash.as_ref().unwrap(), &out, &iso)), &out));
        store.set_faults(json!({}));
        assert!(held.fates.iter().all(|f| matches!(f, Some(Fate::Hold { then: Then::Record, .. }))), "{:?}", held.fates);
        // The held messages come back marked sent: recorded without a second send, counted once
        // even when two copies come back.
        let back: Vec<Item> = (0..2).map(|i| Item { msg: held.held_message(i, &batch[i], 1.0).unwrap().0, ..batch[i].clone() }).collect();
        let again = pollster::block_on(deliver(&back, &cfg, &out, &iso));
        assert_eq!(again.fates, vec![Some(Fate::Delivered); 2]);
        let twice = pollster::block_on(deliver(&back, &cfg, &out, &iso));
        assert_eq!(twice.fates, vec![Some(Fate::Delivered); 2], "recorded again, idempotently");
        assert_eq!(out.requests.get(), 0);
        let books = get(&store, &cfg, &["HGET", &books_key(&Keys::new("ek", "shop.example")), "delivered"]);
        assert_eq!(books, Value::Str("2".into()));
    }

    #[test]
    fn dead_letters_past_dlq_max_wait_on_the_queue_and_raise_an_alarm() {
        let store = LocalStore::start();
        let cfg = config(&store, &[("DLQ_MAX", "3")]);
        let (out, iso) = (Meta::ok(), Isolate::default());
        let batch: Vec<Item> = (0..5).map(|i| item(&format!("dead-{i}"))).collect();
        let r = pollster::block_on(bury(&batch, "max_retries", &cfg, &out, &iso));
        let stored = r.fates.iter().filter(|f| matches!(f, Some(Fate::DeadLettered { .. }))).count();
        let waiting = r.fates.iter().filter(|f| matches!(f, Some(Fate::Hold { then: Then::Bury(_), .. }))).count();
        assert_eq!((stored, waiting), (3, 2));
        assert_eq!(get(&store, &cfg, &["LLEN", &dlq_key("ek", "shop.example")]), Value::Int(3));
        assert!(matches!(get(&store, &cfg, &["HGET", &alarms_key("ek"), "dlq:shop.example"]), Value::Str(_)));
        let books = get(&store, &cfg, &["HGET", &books_key(&Keys::new("ek", "shop.example")), "dead_lettered"]);
        assert_eq!(books, Value::Str("3".into()), "only what was stored is counted");
        // Room again (the list was replayed): the waiting ones are stored and the alarm clears.
        get(&store, &cfg, &["DEL", &dlq_key("ek", "shop.example")]);
        let back: Vec<Item> = (0..5).filter_map(|i| r.held_message(i, &batch[i], 1.0).map(|(msg, _)| Item { msg, ..batch[i].clone() })).collect();
        let r2 = pollster::block_on(deliver(&back, &cfg, &out, &iso));
        assert!(r2.fates.iter().all(|f| matches!(f, Some(Fate::DeadLettered { .. }))), "{:?}", r2.fates);
        assert_eq!(get(&store, &cfg, &["HGET", &alarms_key("ek"), "dlq:shop.example"]), Value::Nil);
        assert_eq!(out.requests.get(), 0, "a waiting dead letter is never sent to Meta");
    }

    #[test]
    fn a_held_event_backs_off_from_its_last_hold_not_from_its_acceptance() {
        let store = LocalStore::start();
        let cfg = config(&store, &[]);
        let (out, iso) = (Meta::ok(), Isolate::default());
        *out.answer.borrow_mut() = (500, json!({ "error": { "message": "An unknown error occurred", "type": "OAuthException", "code": 1, "is_transient": true } }).to_string());
        // Accepted four minutes ago, held until a moment ago (a revoked token), then a Meta 500.
        let mut it = item("backoff-1");
        it.age_ms = 240_000.0;
        it.msg.held = 18;
        it.msg.held_at_ms = Some(out.now_ms() as i64 - 1_000);
        let r = pollster::block_on(deliver(std::slice::from_ref(&it), &cfg, &out, &iso));
        assert!(matches!(r.fates[0], Some(Fate::Retry { delay_secs: 5, .. })), "{:?}", r.fates);
        // Never held: the delay grows with its age, as before.
        let mut old = item("backoff-2");
        old.age_ms = 240_000.0;
        let r = pollster::block_on(deliver(std::slice::from_ref(&old), &cfg, &out, &iso));
        assert!(matches!(r.fates[0], Some(Fate::Retry { delay_secs: 240, .. })), "{:?}", r.fates);
    }

    #[test]
    fn events_past_the_request_budget_are_held_not_retried() {
        let store = LocalStore::start();
        let cfg = config(&store, &[("CAPI_BATCH_SIZE", "100")]);
        let (out, iso) = (Meta::ok(), Isolate::default());
        // Meta refuses the first event of every request: one request per event.
        *out.answer.borrow_mut() = (400, json!({ "error": { "message": "Invalid parameter", "type": "OAuthException", "code": 100, "error_subcode": 2804019, "error_user_msg": "data[0].event_id: refused" } }).to_string());
        let n = MAX_REQUESTS as usize + 5;
        let batch: Vec<Item> = (0..n).map(|i| item(&format!("budget-{i}"))).collect();
        let r = pollster::block_on(deliver(&batch, &cfg, &out, &iso));
        assert_eq!(out.requests.get(), MAX_REQUESTS);
        assert_eq!(r.fates.iter().filter(|f| matches!(f, Some(Fate::DeadLettered { .. }))).count(), MAX_REQUESTS as usize);
        let held = r.fates.iter().filter(|f| matches!(f, Some(Fate::Hold { delay_secs: 1, then: Then::Deliver, .. }))).count();
        assert_eq!(held, 5, "{:?}", r.fates);
    }

    #[test]
    fn meta_refusing_our_token_holds_the_events_and_raises_an_alarm_until_it_passes() {
        let store = LocalStore::start();
        let cfg = config(&store, &[]);
        let (out, iso) = (Meta::ok(), Isolate::default());
        *out.answer.borrow_mut() = (400, json!({ "error": { "message": "Error validating access token", "type": "OAuthException", "code": 190 } }).to_string());
        let batch = vec![item("tok-1")];
        let r = pollster::block_on(deliver(&batch, &cfg, &out, &iso));
        assert!(matches!(&r.fates[0], Some(Fate::Hold { delay_secs: 600, then: Then::Deliver, .. })), "{:?}", r.fates);
        assert!(matches!(get(&store, &cfg, &["HGET", &alarms_key("ek"), "capi:1"]), Value::Str(s) if s.contains("code 190")));
        *out.answer.borrow_mut() = (200, r#"{"events_received":1}"#.into());
        let back = vec![Item { msg: r.held_message(0, &batch[0], 1.0).unwrap().0, ..batch[0].clone() }];
        assert_eq!(back[0].msg.held, 1);
        assert_eq!(pollster::block_on(deliver(&back, &cfg, &out, &iso)).fates, vec![Some(Fate::Delivered)]);
        assert_eq!(get(&store, &cfg, &["HGET", &alarms_key("ek"), "capi:1"]), Value::Nil);
    }
}
