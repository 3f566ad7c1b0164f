//! The Cloudflare Zaraz API client: the calls the sync makes, the v4 envelope, and what an answer
//! means for a write (landed, refused, unknown outcome, a `zarazVersion` complaint, a conflict).
//!
//! Sources: Cloudflare API reference, "Get/Update Zaraz configuration"
//! (https://developers.cloudflare.com/api/resources/zaraz/subresources/config/methods/update/):
//! `GET|PUT /zones/{zone_id}/settings/zaraz/config`, Bearer token with Zaraz Read/Edit/Admin, the
//! envelope `{success, errors: [{code, message}], messages, result}`; the SDK generated from that
//! schema (cloudflare/cloudflare-typescript `src/resources/zaraz/`): `export.ts` ("Exports full
//! current published Zaraz configuration for a zone, secret variables included"; answered without
//! the envelope unwrap), `workflow.ts` (`'realtime' | 'preview'`), `publish.ts` (POST, body: a
//! description string, result: a string), `history/history.ts` (GET lists records; PUT with an
//! integer id "Restores a historical published Zaraz configuration by ID"; list parameters `offset`,
//! `limit` (default 10), `sortField` `id|user_id|description|created_at|updated_at`, `sortOrder`
//! `DESC|ASC`), `history/configs.ts`
//! (`GET .../history/configs?ids=` → `{ "<id>": {id, createdAt, updatedAt, userId, config} }`).

use std::cell::Cell;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::config::CloudflareConfig;
use crate::http::{Method, Outbound, OutboundRequest, TransportError};

use super::ZarazError;

/// What a failed call means to the sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// 401/403: the token, never retried.
    Unauthorized(u16),
    /// A validation error naming `zarazVersion` as required or missing.
    VersionRequired(String),
    /// A validation error saying `zarazVersion` must not be sent.
    VersionRejected(String),
    /// 409/412, or an error saying stale/outdated/conflict: someone else wrote first.
    Stale(String),
    /// 5xx, 429, an edge error page, a timeout or a network error: a write may or may not have
    /// landed; only a read tells.
    Unknown(String),
    /// Any other refusal (validation, not found): nothing was applied.
    Refused { status: u16, message: String },
    /// A 2xx answer that is not the documented envelope.
    Protocol(String),
}

impl CallError {
    pub fn into_zaraz(self) -> ZarazError {
        match self {
            CallError::Unauthorized(status) => ZarazError::Unauthorized { status },
            other => ZarazError::Cloudflare(other.describe()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            CallError::Unauthorized(s) => format!("HTTP {s}: unauthorized"),
            CallError::VersionRequired(m) => format!("zarazVersion required: {m}"),
            CallError::VersionRejected(m) => format!("zarazVersion rejected: {m}"),
            CallError::Stale(m) => format!("conflict: {m}"),
            CallError::Unknown(m) => format!("no definite answer: {m}"),
            CallError::Refused { status, message } => format!("HTTP {status}: {message}"),
            CallError::Protocol(m) => format!("unexpected answer: {m}"),
        }
    }
}

const MAX_MESSAGE: usize = 600;

fn clip(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// `[code] message; …` from an envelope's `errors`, if it has any.
fn envelope_errors(v: &Value) -> Option<String> {
    let errors = v.get("errors")?.as_array()?;
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let code = e.get("code").map(|c| c.to_string()).unwrap_or_default();
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            if code.is_empty() {
                msg.to_string()
            } else {
                format!("[{code}] {msg}")
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn has_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| text.contains(n))
}

const STALE: &[&str] = &["stale", "outdated", "out of date", "conflict", "mismatch", "does not match", "newer version"];
const REJECTED: &[&str] = &[
    "not allowed",
    "not permitted",
    "must not",
    "should not",
    "unexpected",
    "unknown field",
    "unknown property",
    "additional propert",
    "unrecognized",
    "forbidden",
    "read-only",
    "readonly",
    "not supported",
];
const REQUIRED: &[&str] = &["required", "missing", "must be provided", "must be set", "must be present", "mandatory"];

/// Turns one HTTP answer into the envelope's `result` or what went wrong. Answers without an
/// envelope (an edge error page) are classified by status alone.
pub fn classify(status: u16, body: &[u8]) -> Result<Value, CallError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let v = json.ok_or_else(|| CallError::Protocol(format!("HTTP {status} with a body that is not JSON")))?;
        if v.get("success").and_then(Value::as_bool) == Some(false) {
            let message = envelope_errors(&v).unwrap_or_else(|| "success: false".into());
            return Err(CallError::Refused { status, message: clip(message) });
        }
        // Enveloped answers carry `result`; the export answers the configuration itself.
        return Ok(match v.get("result") {
            Some(r) if v.get("success").is_some() => r.clone(),
            _ => v,
        });
    }
    let message = clip(match json.as_ref().and_then(envelope_errors) {
        Some(m) => m,
        None if json.is_none() && !body.is_empty() => format!("HTTP {status} (not a Cloudflare API answer: an edge error page)"),
        None => format!("HTTP {status}"),
    });
    let lower = message.to_lowercase();
    match status {
        401 | 403 => return Err(CallError::Unauthorized(status)),
        409 | 412 => return Err(CallError::Stale(message)),
        _ => {}
    }
    if lower.contains("zarazversion") {
        if has_any(&lower, STALE) {
            return Err(CallError::Stale(message));
        }
        if has_any(&lower, REJECTED) {
            return Err(CallError::VersionRejected(message));
        }
        if has_any(&lower, REQUIRED) {
            return Err(CallError::VersionRequired(message));
        }
    }
    if (400..500).contains(&status) && status != 429 && has_any(&lower, &["stale", "conflict", "outdated"]) {
        return Err(CallError::Stale(message));
    }
    if status >= 500 || status == 429 || status == 408 {
        return Err(CallError::Unknown(message));
    }
    Err(CallError::Refused { status, message })
}

/// Full-jitter exponential backoff, short: the sync runs inside one admin request.
pub fn backoff_ms(attempt: u32, random: f64, base: u32, cap: u32) -> u32 {
    let top = base.saturating_mul(1 << attempt.min(6)).min(cap).max(1);
    let low = top / 2;
    low + (random.clamp(0.0, 1.0) * f64::from(top - low)) as u32
}

/// One history record, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub created_at: String,
    pub updated_at: String,
    pub description: String,
    pub user_id: String,
}

impl Record {
    fn from_json(v: &Value) -> Option<Record> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(Record { id: v.get("id")?.as_u64()?, created_at: s("createdAt"), updated_at: s("updatedAt"), description: s("description"), user_id: s("userId") })
    }

    pub fn to_json(&self) -> Value {
        json!({ "id": self.id, "created_at": self.created_at, "updated_at": self.updated_at, "description": self.description, "user_id": self.user_id })
    }
}

pub struct Api<'a, O: Outbound> {
    out: &'a O,
    base: String,
    token: &'a str,
    pub zone: &'a str,
    calls: Cell<u32>,
    pub read_timeout_ms: u32,
    pub write_timeout_ms: u32,
    /// Reads are retried on an unknown outcome: attempts in all.
    pub read_attempts: u32,
    pub backoff_base_ms: u32,
    pub backoff_cap_ms: u32,
}

impl<'a, O: Outbound> Api<'a, O> {
    /// Fails naming the variable that is missing.
    pub fn new(cf: &'a CloudflareConfig, out: &'a O) -> Result<Self, ZarazError> {
        let token =
            cf.api_token.as_ref().map(|t| t.expose()).filter(|t| !t.is_empty()).ok_or(ZarazError::NotConfigured { variable: "CLOUDFLARE_API_TOKEN" })?;
        let zone = cf.zone_id.as_deref().filter(|z| !z.is_empty()).ok_or(ZarazError::NotConfigured { variable: "CLOUDFLARE_ZONE_ID" })?;
        Ok(Api {
            out,
            base: format!("{}/zones/{zone}/settings/zaraz", cf.api_base.trim_end_matches('/')),
            token,
            zone,
            calls: Cell::new(0),
            read_timeout_ms: 10_000,
            write_timeout_ms: 20_000,
            read_attempts: 3,
            backoff_base_ms: 20,
            backoff_cap_ms: 160,
        })
    }

    /// Cloudflare calls made so far (each one a subrequest of the worker).
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    pub fn out(&self) -> &O {
        self.out
    }

    pub async fn pause(&self, attempt: u32) -> u32 {
        let ms = backoff_ms(attempt, self.out.random(), self.backoff_base_ms, self.backoff_cap_ms);
        self.out.sleep(ms).await;
        ms
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, CallError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| CallError::Protocol(e.to_string()))?),
            None => None,
        };
        let req = OutboundRequest {
            method,
            url: format!("{}{path}", self.base),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.token)),
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body,
            timeout_ms: if method == Method::Get { self.read_timeout_ms } else { self.write_timeout_ms },
            response_headers: false,
        };
        self.calls.set(self.calls.get() + 1);
        match self.out.send(req).await {
            Ok(resp) => classify(resp.status, &resp.body),
            Err(TransportError::Timeout(ms)) => Err(CallError::Unknown(format!("no answer within {ms} ms"))),
            Err(TransportError::Network(m)) => Err(CallError::Unknown(format!("network error: {m}"))),
        }
    }

    /// A GET, retried (bounded, with backoff) when the answer is not definite.
    async fn read(&self, path: &str) -> Result<Value, CallError> {
        let mut attempt = 0;
        loop {
            match self.send(Method::Get, path, None).await {
                Err(CallError::Unknown(_)) if attempt + 1 < self.read_attempts.max(1) => {
                    self.pause(attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The latest configuration (preview or published, whichever was updated last), secret values
    /// left out by Cloudflare.
    pub async fn config(&self) -> Result<Value, ZarazError> {
        let v = self.read("/config").await.map_err(CallError::into_zaraz)?;
        if v.get("triggers").and_then(Value::as_object).is_none() {
            return Err(ZarazError::Cloudflare("GET config answered something without a `triggers` object".into()));
        }
        Ok(v)
    }

    /// Replaces the whole configuration. Never retried here: the caller reads to learn the outcome.
    pub async fn put_config(&self, body: &Value) -> Result<Value, CallError> {
        self.send(Method::Put, "/config", Some(body)).await
    }

    pub async fn workflow(&self) -> Result<String, ZarazError> {
        let v = self.read("/workflow").await.map_err(CallError::into_zaraz)?;
        v.as_str().map(str::to_string).ok_or_else(|| ZarazError::Cloudflare(format!("GET workflow answered {v}")))
    }

    /// The published configuration with secret values, or `None` when this token or zone cannot
    /// export (the sync then falls back, it does not fail).
    pub async fn export(&self) -> Result<Option<Value>, ZarazError> {
        match self.read("/export").await {
            Ok(v) if v.get("variables").is_some_and(Value::is_object) => Ok(Some(v)),
            Ok(_) | Err(CallError::Unauthorized(_) | CallError::Refused { .. } | CallError::Protocol(_)) => Ok(None),
            Err(e) => Err(e.into_zaraz()),
        }
    }

    /// History records, newest (highest id) first.
    pub async fn history(&self, limit: u32) -> Result<Vec<Record>, ZarazError> {
        let v = self.read(&format!("/history?offset=0&limit={limit}&sortField=id&sortOrder=DESC")).await.map_err(CallError::into_zaraz)?;
        let items = v.as_array().ok_or_else(|| ZarazError::Cloudflare("GET history answered something that is not a list".into()))?;
        let mut records: Vec<Record> = items.iter().filter_map(Record::from_json).collect();
        crate::sorting::sort_by(&mut records, |a, b| a.id > b.id);
        Ok(records)
    }

    /// The configurations of some history records, by id.
    pub async fn history_configs(&self, ids: &[u64]) -> Result<BTreeMap<u64, Value>, ZarazError> {
        let list: Vec<String> = ids.iter().map(u64::to_string).collect();
        let v = self.read(&format!("/history/configs?ids={}", list.join(","))).await.map_err(CallError::into_zaraz)?;
        let map = v.as_object().ok_or_else(|| ZarazError::Cloudflare("GET history/configs answered something that is not an object".into()))?;
        Ok(map.iter().filter_map(|(k, rec)| Some((k.parse::<u64>().ok()?, rec.get("config")?.clone()))).collect())
    }

    /// Restores a history record (body: its integer id).
    pub async fn restore(&self, id: u64) -> Result<Value, CallError> {
        self.send(Method::Put, "/history", Some(&json!(id))).await
    }

    pub async fn publish(&self, description: &str) -> Result<Value, ZarazError> {
        self.send(Method::Post, "/publish", Some(&json!(description))).await.map_err(CallError::into_zaraz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(status: u16, errors: Value) -> Result<Value, CallError> {
        classify(status, &serde_json::to_vec(&json!({"success": false, "errors": errors, "messages": [], "result": null})).unwrap())
    }

    #[test]
    fn success_unwraps_the_envelope() {
        let body = json!({"success": true, "errors": [], "messages": [], "result": {"triggers": {}}});
        assert_eq!(classify(200, &serde_json::to_vec(&body).unwrap()), Ok(json!({"triggers": {}})));
        assert_eq!(classify(200, br#"{"success": true, "result": "preview"}"#), Ok(json!("preview")));
        // The export answers the bare configuration.
        assert_eq!(classify(200, br#"{"variables": {}}"#), Ok(json!({"variables": {}})));
        assert!(matches!(classify(200, b"<html>"), Err(CallError::Protocol(_))));
        assert!(matches!(classify(200, br#"{"success": false, "errors": [{"code": 1, "message": "no"}]}"#), Err(CallError::Refused { .. })));
    }

    #[test]
    fn zaraz_version_messages() {
        let m = |msg: &str| json!([{"code": 1000, "message": msg}]);
        assert!(matches!(env(400, m("zarazVersion is required")), Err(CallError::VersionRequired(_))));
        assert!(matches!(env(400, m("body/zarazVersion: missing property")), Err(CallError::VersionRequired(_))));
        assert!(matches!(env(400, m("zarazVersion: property is not allowed in the request body")), Err(CallError::VersionRejected(_))));
        assert!(matches!(env(400, m("zarazVersion must not be set")), Err(CallError::VersionRejected(_))));
        assert!(matches!(env(400, m("additional properties 'zarazVersion' not allowed")), Err(CallError::VersionRejected(_))));
        assert!(matches!(env(409, m("zarazVersion 43 is stale: the stored configuration is at zarazVersion 44 (conflict)")), Err(CallError::Stale(_))));
        assert!(matches!(env(400, m("zarazVersion is outdated")), Err(CallError::Stale(_))));
        assert!(matches!(env(409, json!([])), Err(CallError::Stale(_))));
        assert!(matches!(env(400, m("config was modified concurrently: conflict")), Err(CallError::Stale(_))));
        // Other validation errors are refusals, with the message kept.
        match env(400, m("triggers.x.name must be a non-empty string")) {
            Err(CallError::Refused { status: 400, message }) => assert!(message.contains("[1000] triggers.x.name")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_outcomes_and_auth() {
        assert!(matches!(classify(504, b"<html><title>504 Gateway Timeout</title></html>"), Err(CallError::Unknown(_))));
        assert!(matches!(classify(502, b""), Err(CallError::Unknown(_))));
        assert!(matches!(env(500, json!([{"code": 10001, "message": "Internal Server Error"}])), Err(CallError::Unknown(_))));
        assert!(matches!(env(429, json!([])), Err(CallError::Unknown(_))));
        assert_eq!(env(401, json!([{"code": 10000, "message": "Authentication error"}])), Err(CallError::Unauthorized(401)));
        assert_eq!(env(403, json!([])), Err(CallError::Unauthorized(403)));
        let e = CallError::Unauthorized(403).into_zaraz();
        assert_eq!((e.status(), e.code()), (502, "cloudflare_unauthorized"));
        assert!(e.to_string().contains("CLOUDFLARE_API_TOKEN"));
        assert!(matches!(env(404, json!([{"code": 7003, "message": "Could not route"}])), Err(CallError::Refused { status: 404, .. })));
    }

    #[test]
    fn long_messages_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(1000);
        match env(400, json!([{"code": 1, "message": long}])) {
            Err(CallError::Refused { message, .. }) => assert!(message.len() <= MAX_MESSAGE + 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_is_short_and_bounded() {
        for attempt in 0..10 {
            for r in [0.0, 0.5, 1.0] {
                let ms = backoff_ms(attempt, r, 20, 160);
                assert!((10..=160).contains(&ms), "{attempt} {r} {ms}");
            }
        }
    }

    #[test]
    fn missing_settings_are_named() {
        let out = crate::http::native::NativeOutbound;
        let mut cf = CloudflareConfig { api_base: "https://api.cloudflare.com/client/v4".into(), api_token: None, zone_id: Some("0".repeat(32)), call_budget: 46 };
        let e = Api::new(&cf, &out).err().unwrap();
        assert_eq!((e.status(), e.code()), (503, "not_configured"));
        assert!(e.to_string().contains("CLOUDFLARE_API_TOKEN"));
        cf.api_token = Some(crate::config::Secret::new("t"));
        cf.zone_id = None;
        assert!(Api::new(&cf, &out).err().unwrap().to_string().contains("CLOUDFLARE_ZONE_ID"));
    }
}
