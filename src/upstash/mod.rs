//! The one Upstash Redis REST client every module uses. It owns the wire protocol (single commands,
//! `/pipeline`, `/multi-exec`), bounded calls (per-attempt timeout, jittered retries of idempotent
//! work inside a total deadline), the per-isolate circuit breaker and metrics, the value codec and
//! the key scheme. Results keep their Redis types ([`Value`]): a numeric-looking string stays a string.

pub mod breaker;
pub mod codec;
pub mod keys;
pub mod local;
pub mod metrics;
mod value;

use std::cell::RefCell;

pub use keys::{Keys, Module};
pub use value::Value;

use crate::config::UpstashConfig;
use crate::http::{Method, Outbound, OutboundRequest, TransportError};
use breaker::Breaker;
use local::{LocalCounters, TtlSet};
use metrics::{Metrics, Outcome};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store call {0}")]
    Transport(#[from] TransportError),
    /// 401/403: the token is wrong or read-only. A configuration error, never retried.
    #[error("store rejected the credentials (HTTP {0})")]
    Unauthorized(u16),
    #[error("store answered HTTP {status}: {message}")]
    Server { status: u16, message: String },
    /// Redis refused the command (wrong type, syntax): the caller's bug, not an outage.
    #[error("redis error: {0}")]
    Command(String),
    #[error("unexpected store response: {0}")]
    Protocol(String),
    #[error("circuit open after repeated store failures; next probe in {retry_in_ms} ms")]
    CircuitOpen { retry_in_ms: u64 },
}

impl StoreError {
    /// True when the store is unreachable or failing (fall back), as opposed to refusing us.
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Transport(_) | StoreError::Server { .. } | StoreError::Protocol(_) | StoreError::CircuitOpen { .. })
    }
}

/// One command: its arguments as Redis sees them.
pub type Command = Vec<String>;

/// Builds a command from anything string-like: `cmd(["SET", &key, "1", "NX"])`.
pub fn cmd<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    args.into_iter().map(Into::into).collect()
}

/// State that outlives a request but not the isolate: best-effort accelerators, never the truth.
pub struct Isolate {
    pub breaker: RefCell<Breaker>,
    pub metrics: RefCell<Metrics>,
    /// Dedup keys this isolate claimed (L1) or stood in for while the store was down.
    pub claimed: RefCell<TtlSet>,
    /// The subset of `claimed` this isolate decided alone (store down): the store knows nothing of
    /// them, so a later "new" from the store for one of these keys is a duplicate.
    pub claimed_locally: RefCell<TtlSet>,
    pub counters: RefCell<LocalCounters>,
    /// What each site's books still owe the store, carried by its next round trip (see [`Ride`]).
    rides: RefCell<std::collections::BTreeMap<String, Ride>>,
    /// The last `/health` store probe: when (ms), its status and report.
    pub health_probe: RefCell<Option<(f64, crate::health::Status, serde_json::Value)>>,
    /// Purge records of the worker's cache per site, and when they were read from the store.
    pub purges: RefCell<std::collections::BTreeMap<String, (f64, crate::cache_policy::Purges)>>,
}

/// Book entries not yet written to the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PendingBooks {
    /// Signed: a request answered 503 takes back the counts its admission already made (the client
    /// sends the whole batch again and is counted then).
    pub duplicates: i64,
    pub rejected: i64,
}

impl PendingBooks {
    pub fn is_empty(&self) -> bool {
        *self == PendingBooks::default()
    }

    pub fn add(&mut self, other: PendingBooks) {
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
    }
}

/// Most sealed bundles kept per site; past it the oldest are dropped (counted as `books_dropped`).
pub const MAX_SEALED: usize = 256;

/// What a site's books owe the store, written by the next script that reaches it, each part so
/// that writing it twice counts it once:
/// - `open`: counts decided here (L1 duplicates, rejections), guarded by the carrying request;
/// - `sealed`: counts a call carried whose reply was lost (it may or may not have run), each under
///   the guard key of that call, so the store applies it only if the call never ran;
/// - `local`: claims this isolate accepted alone (store down): counted if the store never saw them;
///   another request's pending claim found there is confirmed (that request counted the event; its
///   late release must not uncount one this isolate queued);
/// - `releases`: claims (key, token) to give back, deleted and uncounted only if still ours;
/// - `confirms`: claims (key, token) whose events the queue took, confirmed if still ours (the
///   queue consumer confirms them too; this only makes it sooner, for free). Not counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ride {
    pub open: PendingBooks,
    pub sealed: Vec<(String, PendingBooks)>,
    pub local: Vec<String>,
    pub releases: Vec<(String, String)>,
    pub confirms: Vec<(String, String)>,
}

/// Most confirmations carried per site (they are an accelerator: the consumer confirms as well).
const MAX_CONFIRMS: usize = 1000;

impl Ride {
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.sealed.is_empty() && self.local.is_empty() && self.releases.is_empty() && self.confirms.is_empty()
    }
}

impl Default for Isolate {
    fn default() -> Self {
        Isolate {
            breaker: RefCell::default(),
            metrics: RefCell::default(),
            claimed: RefCell::new(TtlSet::new(20_000)),
            claimed_locally: RefCell::new(TtlSet::new(20_000)),
            counters: RefCell::default(),
            rides: RefCell::default(),
            purges: RefCell::default(),
            health_probe: RefCell::default(),
        }
    }
}

impl Isolate {
    pub fn count(&self, name: &'static str, n: u64) {
        self.metrics.borrow_mut().count(name, n);
    }

    pub fn note_books(&self, site: &str, add: PendingBooks) {
        if !add.is_empty() {
            self.rides.borrow_mut().entry(site.to_string()).or_default().open.add(add);
        }
    }

    /// Claims this isolate accepted alone and the queue took: the store is told with the next call.
    pub fn note_local(&self, site: &str, keys: &[String]) {
        self.rides.borrow_mut().entry(site.to_string()).or_default().local.extend(keys.iter().cloned());
    }

    pub fn note_releases(&self, site: &str, releases: Vec<(String, String)>) {
        self.rides.borrow_mut().entry(site.to_string()).or_default().releases.extend(releases);
    }

    pub fn note_confirms(&self, site: &str, confirms: impl Iterator<Item = (String, String)>) {
        let mut rides = self.rides.borrow_mut();
        let c = &mut rides.entry(site.to_string()).or_default().confirms;
        c.extend(confirms);
        let extra = c.len().saturating_sub(MAX_CONFIRMS);
        c.drain(..extra);
    }

    /// What is waiting for `site`, without taking it.
    pub fn ride(&self, site: &str) -> Ride {
        self.rides.borrow().get(site).cloned().unwrap_or_default()
    }

    /// Takes what is waiting for `site`: the caller writes it, or gives it back with `put_back`.
    /// Taking (not peeking) keeps two concurrent requests from carrying the same entries.
    pub fn take_ride(&self, site: &str) -> Ride {
        self.rides.borrow_mut().remove(site).unwrap_or_default()
    }

    /// A carried ride whose call failed: `guard` is the carrying call's guard key, under which its
    /// open counts are sealed (the call may have run).
    pub fn put_back(&self, site: &str, mut ride: Ride, guard: Option<String>) {
        if let Some(g) = guard.filter(|_| !ride.open.is_empty()) {
            ride.sealed.push((g, std::mem::take(&mut ride.open)));
        }
        let mut rides = self.rides.borrow_mut();
        let r = rides.entry(site.to_string()).or_default();
        r.open.add(ride.open);
        r.sealed.extend(ride.sealed);
        r.local.extend(ride.local);
        r.releases.extend(ride.releases);
        r.confirms.extend(ride.confirms);
        let extra = r.confirms.len().saturating_sub(MAX_CONFIRMS);
        r.confirms.drain(..extra);
        if r.sealed.len() > MAX_SEALED {
            let extra = r.sealed.len() - MAX_SEALED;
            r.sealed.drain(..extra);
            drop(rides);
            self.count("books_dropped", extra as u64);
        }
    }

    pub fn snapshot(&self, now_ms: f64) -> serde_json::Value {
        let b = self.breaker.borrow();
        let mut snap = self.metrics.borrow().snapshot();
        snap["breaker"] = serde_json::json!({
            "state": b.name(),
            "opened_total": b.opened_total,
            "retry_in_ms": b.retry_in_ms(now_ms).map(|v| v.round()),
            "last_error": b.last_error,
        });
        snap["l1_entries"] = serde_json::json!(self.claimed.borrow().len());
        snap
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Single,
    Pipeline,
    MultiExec,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Single => "/",
            Endpoint::Pipeline => "/pipeline",
            Endpoint::MultiExec => "/multi-exec",
        }
    }
}

/// Whether a call may be sent again after an outage-type failure: only if running it twice has the
/// same effect as once (reads, `SET` of a fixed value, `DEL`, a claim carrying its own token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Idempotent,
    Once,
}

const MAX_RETRIES: u32 = 2;
/// No attempt starts with less than this left in the budget: it could not finish anyway.
const MIN_ATTEMPT_MS: f64 = 20.0;

/// Full-jitter exponential backoff: uniform in [5, min(200, 25·2^attempt)] ms.
pub fn backoff_ms(attempt: u32, random: f64) -> f64 {
    let cap = (25.0 * f64::from(1u32 << attempt.min(4))).min(200.0);
    5.0 + random.clamp(0.0, 1.0) * (cap - 5.0)
}

pub struct Store<'a, O: Outbound> {
    cfg: &'a UpstashConfig,
    out: &'a O,
    iso: &'a Isolate,
}

pub type Results = Vec<Result<Value, StoreError>>;

impl<'a, O: Outbound> Store<'a, O> {
    pub fn new(cfg: &'a UpstashConfig, out: &'a O, iso: &'a Isolate) -> Self {
        Store { cfg, out, iso }
    }

    pub fn isolate(&self) -> &Isolate {
        self.iso
    }

    pub fn now_ms(&self) -> f64 {
        self.out.now_ms()
    }

    async fn send(&self, endpoint: Endpoint, body: &[u8], timeout_ms: u32) -> Result<serde_json::Value, StoreError> {
        let req = OutboundRequest {
            method: Method::Post,
            url: format!("{}{}", self.cfg.url, endpoint.path()),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.cfg.token.expose())),
                ("content-type".into(), "application/json".into()),
            ],
            body: Some(body.to_vec()),
            timeout_ms,
            response_headers: false,
        };
        let resp = self.out.send(req).await?;
        let json: Option<serde_json::Value> = serde_json::from_slice(&resp.body).ok();
        let err_text = || json.as_ref().and_then(|j| j.get("error")).and_then(|e| e.as_str()).map(str::to_string);
        match resp.status {
            200 => json.ok_or_else(|| StoreError::Protocol("body is not JSON".into())),
            401 | 403 => Err(StoreError::Unauthorized(resp.status)),
            400 => Err(StoreError::Command(err_text().unwrap_or_else(|| "bad request".into()))),
            s => Err(StoreError::Server { status: s, message: err_text().unwrap_or_else(|| format!("HTTP {s}")) }),
        }
    }

    /// One bounded operation: breaker check, attempts with backoff inside the deadline, metrics.
    async fn call(&self, op: &'static str, endpoint: Endpoint, body: Vec<u8>, retry: Retry) -> Result<serde_json::Value, StoreError> {
        let start = self.out.now_ms();
        let allowed = self.iso.breaker.borrow_mut().allow(start);
        if !allowed {
            self.iso.metrics.borrow_mut().record(op, Outcome::FastFail, 0.0, 0);
            let retry_in_ms = self.iso.breaker.borrow().retry_in_ms(start).unwrap_or(0.0) as u64;
            return Err(StoreError::CircuitOpen { retry_in_ms });
        }
        let deadline = start + f64::from(self.cfg.deadline_ms);
        let mut attempt = 0;
        let result = loop {
            let left = deadline - self.out.now_ms();
            let timeout = (self.cfg.timeout_ms as f64).min(left).max(MIN_ATTEMPT_MS) as u32;
            let r = self.send(endpoint, &body, timeout).await;
            match r {
                Err(e) if e.is_outage() && retry == Retry::Idempotent && attempt < MAX_RETRIES => {
                    let pause = backoff_ms(attempt, self.out.random());
                    if self.out.now_ms() + pause + MIN_ATTEMPT_MS > deadline {
                        break Err(e);
                    }
                    self.out.sleep(pause as u32).await;
                    attempt += 1;
                }
                other => break other,
            }
        };
        let now = self.out.now_ms();
        let mut b = self.iso.breaker.borrow_mut();
        let mut m = self.iso.metrics.borrow_mut();
        match &result {
            Err(e) if e.is_outage() => {
                b.on_failure(now, self.cfg.breaker_threshold, self.cfg.breaker_cooldown_ms, e.to_string());
                m.record(op, Outcome::Error, now - start, attempt);
            }
            // The store answered (even if it refused us): it is reachable.
            Err(_) => {
                b.on_success();
                m.record(op, Outcome::Error, now - start, attempt);
            }
            Ok(_) => {
                b.on_success();
                m.record(op, Outcome::Ok, now - start, attempt);
            }
        }
        result
    }

    /// One command, one round trip.
    pub async fn command(&self, op: &'static str, command: &[String], retry: Retry) -> Result<Value, StoreError> {
        let body = self.call(op, Endpoint::Single, to_json(command)?, retry).await?;
        entry(&body)
    }

    /// Several commands in one round trip, not atomic; each has its own outcome.
    pub async fn pipeline(&self, op: &'static str, commands: &[Command], retry: Retry) -> Result<Results, StoreError> {
        self.batch(op, Endpoint::Pipeline, commands, retry).await
    }

    /// Several commands in one round trip, as one MULTI/EXEC transaction.
    pub async fn multi_exec(&self, op: &'static str, commands: &[Command], retry: Retry) -> Result<Results, StoreError> {
        self.batch(op, Endpoint::MultiExec, commands, retry).await
    }

    async fn batch(&self, op: &'static str, endpoint: Endpoint, commands: &[Command], retry: Retry) -> Result<Results, StoreError> {
        let body = self.call(op, endpoint, to_json(commands)?, retry).await?;
        let items = body.as_array().ok_or_else(|| StoreError::Protocol(format!("{op}: answer is not an array")))?;
        if items.len() != commands.len() {
            return Err(StoreError::Protocol(format!("{op}: {} answers for {} commands", items.len(), commands.len())));
        }
        Ok(items.iter().map(entry).collect())
    }

    /// PING, timed: the health probe. Goes through the breaker, so it is also the half-open probe.
    pub async fn ping(&self) -> Result<f64, StoreError> {
        let start = self.out.now_ms();
        let v = self.command("ping", &cmd(["PING"]), Retry::Idempotent).await?;
        match v {
            Value::Str(s) if s == "PONG" => Ok(self.out.now_ms() - start),
            other => Err(StoreError::Protocol(format!("PING answered {other:?}"))),
        }
    }

    /// GET, decoded by the value codec.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let v = self.command("get", &cmd(["GET", key]), Retry::Idempotent).await?;
        self.iso.metrics.borrow_mut().hit("get", !v.is_nil());
        match v {
            Value::Nil => Ok(None),
            Value::Str(s) => codec::decode(&s).map(Some).map_err(StoreError::Protocol),
            other => Err(StoreError::Protocol(format!("GET answered {other:?}"))),
        }
    }

    /// SET with a TTL, encoded by the value codec (over 2 KB: compressed).
    pub async fn set(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        let stored = codec::encode(value);
        self.command("set", &cmd(["SET", key, &stored, "EX", &ttl_secs.to_string()]), Retry::Idempotent).await.map(|_| ())
    }

    /// SET NX EX: true when this call created the key. Not retried (a retry could not tell its own
    /// earlier success from another writer's); use a claim token where that matters.
    pub async fn set_nx_ex(&self, key: &str, value: &str, ttl_secs: u64) -> Result<bool, StoreError> {
        let v = self.command("set_nx", &cmd(["SET", key, value, "NX", "EX", &ttl_secs.to_string()]), Retry::Once).await?;
        self.iso.metrics.borrow_mut().hit("set_nx", v.is_nil());
        Ok(!v.is_nil())
    }

    pub async fn del(&self, keys: &[String]) -> Result<i64, StoreError> {
        let mut c = cmd(["DEL"]);
        c.extend(keys.iter().cloned());
        self.command("del", &c, Retry::Idempotent).await?.as_int().ok_or_else(|| StoreError::Protocol("DEL answered a non-integer".into()))
    }

    /// INCR and set the TTL if the key has none, atomically, in one round trip. Not retried.
    pub async fn incr_expire(&self, key: &str, ttl_secs: u64) -> Result<i64, StoreError> {
        let r = self.multi_exec("incr_expire", &[cmd(["INCR", key]), cmd(["EXPIRE", key, &ttl_secs.to_string(), "NX"])], Retry::Once).await?;
        r.into_iter().next().unwrap_or(Err(StoreError::Protocol("empty answer".into())))?.as_int().ok_or_else(|| StoreError::Protocol("INCR answered a non-integer".into()))
    }

    /// LPUSH then LTRIM to `keep` entries, in one round trip; values go through the codec.
    pub async fn push_capped(&self, key: &str, values: &[String], keep: u32) -> Result<i64, StoreError> {
        let mut push = cmd(["LPUSH", key]);
        push.extend(values.iter().map(|v| codec::encode(v)));
        let r = self.multi_exec("push_capped", &[push, cmd(["LTRIM", key, "0", &(keep.saturating_sub(1)).to_string()])], Retry::Once).await?;
        r.into_iter().next().unwrap_or(Err(StoreError::Protocol("empty answer".into())))?.as_int().ok_or_else(|| StoreError::Protocol("LPUSH answered a non-integer".into()))
    }

    /// LRANGE, values decoded.
    pub async fn range(&self, key: &str, start: i64, stop: i64) -> Result<Vec<String>, StoreError> {
        match self.command("range", &cmd(["LRANGE", key, &start.to_string(), &stop.to_string()]), Retry::Idempotent).await? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| StoreError::Protocol("LRANGE item is not a string".into())).and_then(|s| codec::decode(s).map_err(StoreError::Protocol)))
                .collect(),
            other => Err(StoreError::Protocol(format!("LRANGE answered {other:?}"))),
        }
    }

    /// Deletes every key matching `pattern` with SCAN + UNLINK, a page at a time, so no single
    /// command blocks redis (never KEYS). Stops after `max_pages` pages (subrequests are counted):
    /// returns the number deleted and whether the scan finished.
    pub async fn delete_matching(&self, pattern: &str, page: u32, max_pages: u32) -> Result<(u64, bool), StoreError> {
        let mut cursor = "0".to_string();
        let mut deleted = 0u64;
        for _ in 0..max_pages {
            let r = self.command("scan", &cmd(["SCAN", &cursor, "MATCH", pattern, "COUNT", &page.to_string()]), Retry::Idempotent).await?;
            let (next, keys) = match r {
                Value::Array(mut parts) if parts.len() == 2 => {
                    let keys = parts.pop().unwrap_or(Value::Nil);
                    let next = parts.pop().unwrap_or(Value::Nil);
                    match (next, keys) {
                        (Value::Str(c), Value::Array(k)) => (c, k),
                        _ => return Err(StoreError::Protocol("SCAN answer malformed".into())),
                    }
                }
                other => return Err(StoreError::Protocol(format!("SCAN answered {other:?}"))),
            };
            let keys: Vec<String> = keys.into_iter().filter_map(|k| k.as_str().map(str::to_string)).collect();
            if !keys.is_empty() {
                let mut c = cmd(["UNLINK"]);
                c.extend(keys);
                deleted += self.command("unlink", &c, Retry::Idempotent).await?.as_int().unwrap_or(0) as u64;
            }
            cursor = next;
            if cursor == "0" {
                return Ok((deleted, true));
            }
        }
        Ok((deleted, false))
    }

    /// EVAL a Lua script: one round trip for logic that must be atomic.
    /// Runs a script (EVAL). Not EVALSHA: loading a script after the store lost it (a restart) adds
    /// round trips exactly when replies get lost, and `make soak` then found the books off by a
    /// batch of ride-along counts (see RELIABILITY.md).
    pub async fn eval(&self, op: &'static str, script: &'static str, keys: &[String], args: &[String], retry: Retry) -> Result<Value, StoreError> {
        // The body is written directly, the script's JSON form taken from a per-isolate cache:
        // escaping a kilobyte of Lua on every call was the largest single item of the isolate's
        // own code in a /collect (benches/profile.mjs).
        let mut body = Vec::with_capacity(script.len() + 32 + keys.iter().chain(args).map(|a| a.len() + 3).sum::<usize>());
        body.extend_from_slice(b"[\"EVAL\",");
        with_script_json(script, |json| body.extend_from_slice(json.as_bytes()));
        body.extend_from_slice(format!(",\"{}\"", keys.len()).as_bytes());
        for a in keys.iter().chain(args) {
            body.push(b',');
            serde_json::to_writer(&mut body, a).map_err(|e| StoreError::Protocol(e.to_string()))?;
        }
        body.push(b']');
        let answer = self.call(op, Endpoint::Single, body, retry).await?;
        entry(&answer)
    }
}

fn to_json(v: &(impl serde::Serialize + ?Sized)) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Protocol(e.to_string()))
}

/// A script's text as a JSON string, escaped once per isolate (scripts are `'static` constants, so
/// their address and length name them).
fn with_script_json(script: &'static str, f: impl FnOnce(&str)) {
    thread_local! {
        static ESCAPED: std::cell::RefCell<Vec<((usize, usize), String)>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ESCAPED.with(|cache| {
        let mut cache = cache.borrow_mut();
        let key = (script.as_ptr() as usize, script.len());
        if let Some((_, json)) = cache.iter().find(|(k, _)| *k == key) {
            return f(json);
        }
        let json = serde_json::Value::from(script).to_string();
        f(&json);
        cache.push((key, json));
    })
}

fn entry(v: &serde_json::Value) -> Result<Value, StoreError> {
    if let Some(e) = v.get("error") {
        return Err(StoreError::Command(e.as_str().unwrap_or("unknown error").to_string()));
    }
    match v.get("result") {
        Some(r) => Value::from_json(r).map_err(StoreError::Protocol),
        None => Err(StoreError::Protocol("neither result nor error".into())),
    }
}

#[cfg(test)]
mod tests;
