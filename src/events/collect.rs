//! `POST /collect` (and its CORS preflight): origin check → intake → admission (rate limit + dedup
//! claims, one store round trip) → the queue → `202`. An event is only reported accepted once the
//! queue holds it; if the queue refuses, its claims are released and the client is told to retry.

use serde_json::{json, Value};

use super::dedup::{self, claim_key, Admit};
use super::enrich;
use super::intake::{self, Consent, RequestFacts};
use super::outbox::{EventSink, QueuedEvent};
use super::site;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::{Isolate, Keys, PendingBooks, Store};

pub const CONSENT_COOKIE: &str = "ek_consent";

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
    let origin = site::route(req, cfg)?.cors_origin;
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
    // One message (a beacon, the common case) is one batch: no need to serialise it to measure it
    // (the sink serialises it once, to send it).
    if messages.len() <= 1 {
        return if messages.is_empty() { Vec::new() } else { vec![(0, 1)] };
    }
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

/// A queue send that fails is tried twice more after short pauses (50, 150 ms): a busy queue often
/// takes the batch a moment later, and the client is spared a 503. Sending a batch twice is safe:
/// the consumer delivers each event once (delivered markers, in-batch dedup).
async fn send_with_retry<S: EventSink, O: Outbound>(sink: &S, out: &O, batch: &[QueuedEvent]) -> Result<(), String> {
    let mut last = String::new();
    for pause in [0u32, 50, 150] {
        if pause > 0 {
            out.sleep(pause).await;
        }
        match sink.send_batch(batch).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
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
    let route = site::route(req, cfg)?;
    match handle(req, cfg, out, iso, sink, &route).await {
        Ok(reply) => Ok(with_cors(reply, &route.cors_origin)),
        Err(e) => Ok(with_cors(e.into_reply(), &route.cors_origin)),
    }
}

fn forbidden(code: &'static str, message: &str) -> AppError {
    AppError::Forbidden { code, message: message.to_string() }
}

async fn handle<O: Outbound, S: EventSink>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate, sink: &S, route: &site::SiteRoute) -> Result<Reply, AppError> {
    check_content_type(req)?;
    let now = out.now_ms();
    let mut parsed = intake::parse(&req.body, &cfg.catalog, cfg.collect, &facts(req, now))?;
    let test_event_code = match parsed.test_event_code.take() {
        Some(_) if !cfg.matching.allow_test_event_code => return Err(forbidden("test_event_code_not_allowed", "a per-request test_event_code needs ALLOW_TEST_EVENT_CODE=on")),
        Some(code) => Some(code),
        None => cfg.meta.test_event_code.clone(),
    };
    if parsed.dry_run && !cfg.matching.allow_dry_run {
        return Err(forbidden("dry_run_not_allowed", "dry_run needs COLLECT_DRY_RUN=on"));
    }
    let pixel_id = route.pixel_id.clone();
    let keys = Keys::new(&cfg.key_prefix, &route.site);

    // What edgekeeper adds: LDU flags, and on an explicit grant first-party browser ids.
    let mut set_cookies = Vec::new();
    if parsed.consent != Consent::Denied {
        let mut valid: Vec<&mut intake::Accepted> = parsed.events.iter_mut().filter_map(|e| e.as_mut().ok()).collect();
        for a in valid.iter_mut() {
            enrich::apply_ldu(a, &cfg.matching.ldu, req.country.as_deref(), req.region.as_deref());
        }
        if parsed.consent == Consent::Granted && !valid.is_empty() {
            let fbp = req.cookie("_fbp");
            set_cookies = enrich::first_party_ids(&mut valid, fbp.as_deref(), now, out.random(), req.secure, cfg.matching.cookie_domain.as_deref());
        }
    }
    if parsed.dry_run {
        let events: Vec<Value> = parsed.events.iter().filter_map(|e| e.as_ref().ok()).map(enrich::dry_run_view).collect();
        let rejected: Vec<Value> = parsed.events.iter().filter_map(|e| e.as_ref().err()).map(|r| r.to_json()).collect();
        let body = json!({ "dry_run": true, "site": keys.site(), "pixel_id": pixel_id, "consent_denied": parsed.consent == Consent::Denied, "events": events, "rejected": rejected });
        return Ok(Reply::json(200, &body));
    }

    let mut rejected: Vec<Value> = Vec::new();
    let mut skipped: Vec<Value> =
        parsed.denied.iter().map(|id| json!({ "event_id": id, "reason": "consent_denied", "message": "this event's consent was denied: not forwarded" })).collect();
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
        iso.note_books(keys.site(), PendingBooks { duplicates: duplicates.len() as i64, rejected: rejected.len() as i64 });
        let status = if rejected.is_empty() { 202 } else { 400 };
        let body = json!({ "accepted": [], "duplicates": duplicates, "rejected": rejected, "skipped": skipped });
        return Ok(Reply::json(status, &body));
    }

    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    let client_ip = req.header("cf-connecting-ip").unwrap_or("unknown");
    let request_token = token(out);
    let claim_keys: Vec<String> = candidates.iter().map(|(k, _)| k.clone()).collect();
    // Copies repeated inside this request are duplicates the store never sees.
    iso.note_books(keys.site(), PendingBooks { duplicates: duplicates.len() as i64, rejected: 0 });
    let admit = Admit { keys: &keys, rejected: rejected.len() as u64, client_ip, limits: cfg.rate_limits, request_token: &request_token };
    let admission = dedup::admit(store.as_ref(), iso, out, &admit, &claim_keys).await?;

    let mut accepted_ids = Vec::new();
    let mut messages = Vec::new();
    let mut claimed = Vec::new();
    for (((key, a), fresh), busy) in candidates.into_iter().zip(&admission.fresh).zip(&admission.in_progress) {
        if *busy {
            rejected.push(json!({ "event_id": a.event.event_id, "error": { "code": "event_in_progress", "message": "another request is queuing this event; retry it" } }));
            continue;
        }
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
            test_event_code: test_event_code.clone(),
            claim_key: key,
            accepted_at_ms: now as i64,
            event: serde_json::to_value(&a.event).unwrap_or_default(),
            sent_at_ms: None,
            dead: None,
            held: 0,
            held_at_ms: None,
        });
    }
    for (start, end) in chunks(&messages) {
        if send_with_retry(sink, out, &messages[start..end]).await.is_ok() {
            dedup::queued(iso, &keys, &claimed[start..end], &request_token, now, admission.mode, store.is_some());
        } else {
            // Nothing may stay marked as seen that the queue did not take.
            let _ = dedup::release(store.as_ref(), iso, &keys, &claimed[start..], admission.mode, &request_token).await;
            iso.count("queue_failures", 1);
            if start == 0 {
                // "Nothing was accepted, retry": the client sends the whole batch again, so the
                // duplicates and rejections counted for this answer are taken back.
                iso.note_books(keys.site(), PendingBooks { duplicates: -(duplicates.len() as i64), rejected: -(admit.rejected as i64) });
                return Err(AppError::Unavailable {
                    code: "queue_unavailable",
                    message: "events could not be queued; nothing was accepted, retry".into(),
                    retry_after_secs: 2,
                });
            }
            for m in &messages[start..] {
                rejected.push(json!({ "event_id": m.event_id(), "error": { "code": "queue_unavailable", "message": "not queued; retry this event" } }));
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
    let mut reply = Reply::json(202, &body)
        .with_header("ratelimit-limit", admission.rate.limit.to_string())
        .with_header("ratelimit-remaining", admission.rate.remaining.to_string())
        .with_header("ratelimit-reset", admission.rate.reset_secs.to_string());
    // Browser ids only for events that were actually accepted.
    if !accepted_ids.is_empty() {
        for c in set_cookies {
            reply = reply.with_header("set-cookie", c);
        }
    }
    Ok(reply)
}
