//! `POST /collect` (and its CORS preflight): origin check → intake → admission (rate limit + dedup
//! claims, one store round trip) → the queue → `202`. An event is only reported accepted once the
//! queue holds it; if the queue refuses, its claims are released and the client is told to retry.

use serde_json::{json, Value};

use super::dedup::{self, claim_key, Admit};
use super::intake::{self, Consent, RequestFacts};
use super::outbox::{EventSink, QueuedEvent};
use crate::config::{AllowedOrigins, Config};
use crate::error::AppError;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::{Isolate, Keys, Store};

pub const CONSENT_COOKIE: &str = "ek_consent";

/// The `Origin` to echo back when a cross-origin browser is allowed; `None` for same-origin or
/// non-browser callers. An unlisted origin is refused.
fn allowed_origin(req: &Incoming, cfg: &Config) -> Result<Option<String>, AppError> {
    let Some(origin) = req.header("origin") else { return Ok(None) };
    let host = origin.split_once("://").map(|(_, h)| h.split(':').next().unwrap_or(h)).unwrap_or("");
    let listed = match &cfg.allowed_origins {
        AllowedOrigins::Any => true,
        AllowedOrigins::List(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
    };
    if listed {
        return Ok(Some(origin.to_string()));
    }
    if host.eq_ignore_ascii_case(&req.host) {
        return Ok(None);
    }
    Err(AppError::OriginNotAllowed(origin.chars().filter(|c| !c.is_control()).take(100).collect()))
}

fn with_cors(reply: Reply, origin: &Option<String>) -> Reply {
    match origin {
        Some(o) => reply
            .with_header("access-control-allow-origin", o.clone())
            .with_header("access-control-allow-credentials", "true")
            .with_header("vary", "Origin"),
        None => reply,
    }
}

pub fn preflight(req: &Incoming, cfg: &Config) -> Result<Reply, AppError> {
    let origin = allowed_origin(req, cfg)?;
    let reply = Reply { status: 204, headers: vec![("cache-control".into(), "no-store".into())], body: Vec::new() }
        .with_header("access-control-allow-methods", "POST, OPTIONS")
        .with_header("access-control-allow-headers", "content-type")
        .with_header("access-control-max-age", "86400");
    Ok(with_cors(reply, &origin))
}

fn check_content_type(req: &Incoming) -> Result<(), AppError> {
    let Some(ct) = req.header("content-type") else { return Ok(()) };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if matches!(essence.as_str(), "application/json" | "text/plain") {
        Ok(())
    } else {
        Err(AppError::UnsupportedMediaType { expected: "application/json, text/plain (sendBeacon)" })
    }
}

/// A Queue `sendBatch` takes at most 100 messages and 256 KB: split into chunks that fit.
pub const QUEUE_BATCH_MESSAGES: usize = 100;
pub const QUEUE_BATCH_BYTES: usize = 200 * 1024;

fn chunks(messages: &[QueuedEvent]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        let size = serde_json::to_vec(m).map(|b| b.len()).unwrap_or(0) + 64;
        if i > start && (i - start == QUEUE_BATCH_MESSAGES || bytes + size > QUEUE_BATCH_BYTES) {
            out.push((start, i));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < messages.len() {
        out.push((start, messages.len()));
    }
    out
}

pub fn facts(req: &Incoming, now_ms: f64) -> RequestFacts {
    RequestFacts {
        now_ms,
        client_ip: req.header("cf-connecting-ip").map(str::to_string),
        user_agent: req.header("user-agent").map(str::to_string),
        referer: req.header("referer").map(str::to_string),
        fbp_cookie: req.cookie("_fbp"),
        fbc_cookie: req.cookie("_fbc"),
        consent_cookie: req.cookie(CONSENT_COOKIE),
    }
}

fn token(out: &impl Outbound) -> String {
    let a = (out.random() * 4_294_967_296.0) as u64;
    let b = (out.random() * 4_294_967_296.0) as u64;
    format!("{:x}{:08x}{:08x}", out.now_ms() as u64, a, b)
}

pub async fn collect<O: Outbound, S: EventSink>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate, sink: &S) -> Result<Reply, AppError> {
    let origin = allowed_origin(req, cfg)?;
    match handle(req, cfg, out, iso, sink).await {
        Ok(reply) => Ok(with_cors(reply, &origin)),
        Err(e) => Ok(with_cors(e.into_reply(), &origin)),
    }
}

async fn handle<O: Outbound, S: EventSink>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate, sink: &S) -> Result<Reply, AppError> {
    check_content_type(req)?;
    let now = out.now_ms();
    let parsed = intake::parse(&req.body, &cfg.catalog, cfg.collect, &facts(req, now))?;
    let pixel_id = cfg.meta.pixel_id.clone().ok_or(AppError::NotConfigured("META_PIXEL_ID"))?;
    let keys = Keys::new(&cfg.key_prefix, &req.host);

    let mut rejected: Vec<Value> = Vec::new();
    let mut skipped: Vec<Value> = Vec::new();
    let mut duplicates: Vec<String> = Vec::new();
    let mut candidates = Vec::new();
    for ev in parsed.events {
        match ev {
            Err(r) => rejected.push(r.to_json()),
            Ok(_) if parsed.consent == Consent::Denied => {}
            Ok(a) => {
                let key = claim_key(&keys, &a.event.event_name, &a.event.event_id);
                // The same event twice in one request: the second copy is a duplicate.
                if candidates.iter().any(|(k, _): &(String, _)| *k == key) {
                    duplicates.push(a.event.event_id.clone());
                } else {
                    candidates.push((key, a));
                }
            }
        }
    }
    if parsed.consent == Consent::Denied {
        skipped.push(json!({ "reason": "consent_denied", "message": "consent was denied: nothing is forwarded" }));
    }
    iso.count("rejected", rejected.len() as u64);
    if candidates.is_empty() {
        iso.note_books(keys.site(), duplicates.len() as u64, rejected.len() as u64);
        let status = if rejected.is_empty() { 202 } else { 400 };
        let body = json!({ "accepted": [], "duplicates": duplicates, "rejected": rejected, "skipped": skipped });
        return Ok(Reply::json(status, &body));
    }

    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    let client_ip = req.header("cf-connecting-ip").unwrap_or("unknown");
    let request_token = token(out);
    let claim_keys: Vec<String> = candidates.iter().map(|(k, _)| k.clone()).collect();
    // Copies repeated inside this request are duplicates the store never sees.
    iso.note_books(keys.site(), duplicates.len() as u64, 0);
    let admit = Admit { keys: &keys, rejected: rejected.len() as u64, client_ip, limits: cfg.rate_limits, request_token: &request_token };
    let admission = dedup::admit(store.as_ref(), iso, out, &admit, &claim_keys).await?;

    let mut accepted_ids = Vec::new();
    let mut messages = Vec::new();
    let mut claimed = Vec::new();
    for ((key, a), fresh) in candidates.into_iter().zip(&admission.fresh) {
        if !fresh {
            duplicates.push(a.event.event_id);
            continue;
        }
        accepted_ids.push(a.event.event_id.clone());
        claimed.push(key.clone());
        messages.push(QueuedEvent {
            v: 1,
            site: keys.site().to_string(),
            pixel_id: pixel_id.clone(),
            test_event_code: cfg.meta.test_event_code.clone(),
            claim_key: key,
            accepted_at_ms: now as i64,
            event: a.event,
        });
    }
    for (start, end) in chunks(&messages) {
        if let Err(e) = sink.send_batch(&messages[start..end]).await {
            // Nothing may stay marked as seen that the queue did not take.
            let _ = dedup::release(store.as_ref(), iso, &keys, &claimed[start..]).await;
            iso.count("queue_failures", 1);
            if start == 0 {
                return Err(AppError::Unavailable {
                    code: "queue_unavailable",
                    message: format!("events could not be queued ({e}); nothing was accepted, retry"),
                    retry_after_secs: 2,
                });
            }
            for m in &messages[start..] {
                rejected.push(json!({ "event_id": m.event.event_id, "error": { "code": "queue_unavailable", "message": "not queued; retry this event" } }));
            }
            accepted_ids.truncate(start);
            break;
        }
    }
    iso.count("accepted", accepted_ids.len() as u64);
    iso.count("duplicates", duplicates.len() as u64);
    let body = json!({
        "accepted": accepted_ids,
        "duplicates": duplicates,
        "rejected": rejected,
        "skipped": skipped,
        "dedup": admission.mode.as_str(),
    });
    Ok(Reply::json(202, &body)
        .with_header("ratelimit-limit", admission.rate.limit.to_string())
        .with_header("ratelimit-remaining", admission.rate.remaining.to_string())
        .with_header("ratelimit-reset", admission.rate.reset_secs.to_string()))
}
