//! Intake: a `/collect` body → Meta server events, validated against the catalog, with `user_data`
//! normalised and hashed, or a per-event rejection saying why. Raw personal data does not leave this
//! module: what comes out is hashed, and error messages never quote what was sent.

use serde::Serialize;
use serde_json::{Map, Value};

use super::catalog::Catalog;
use super::currency::is_iso4217;
use super::normalize::{self, UserDataError};
use crate::config::CollectLimits;
use crate::error::AppError;

/// Meta rejects events older than seven days (one stale event fails a whole batch).
pub const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
/// Clock skew tolerated (and clamped to now) for `event_time` in the future.
pub const MAX_SKEW_SECS: i64 = 300;
const MAX_URL_LEN: usize = 2048;
const MAX_CUSTOM_DATA_BYTES: usize = 8 * 1024;
const MAX_CUSTOM_DEPTH: usize = 5;

/// `action_source` values Meta accepts.
pub const ACTION_SOURCES: &[&str] =
    &["website", "app", "email", "phone_call", "chat", "physical_store", "system_generated", "business_messaging", "other"];

const EVENT_FIELDS: &[&str] = &[
    "event_name",
    "event_id",
    "event_time",
    "event_source_url",
    "action_source",
    "user_data",
    "custom_data",
    "data_processing_options",
    "data_processing_options_country",
    "data_processing_options_state",
    "opt_out",
    "referrer_url",
    "consent",
];
const BATCH_FIELDS: &[&str] = &["data", "consent", "test_event_code", "dry_run"];

/// What the request itself tells us, beyond its body.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub now_ms: f64,
    /// `CF-Connecting-IP`.
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub fbp_cookie: Option<String>,
    pub fbc_cookie: Option<String>,
    /// The `ek_consent` cookie.
    pub consent_cookie: Option<String>,
}

/// A Meta server event, ready to send (`user_data` hashed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerEvent {
    pub event_name: String,
    pub event_id: String,
    pub event_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_source_url: Option<String>,
    pub action_source: String,
    pub user_data: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_processing_options: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_processing_options_country: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_processing_options_state: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub event_id: Option<String>,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "event_id": self.event_id, "error": { "code": self.code, "message": self.message } })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Granted,
    Denied,
    /// Nothing said either way.
    Unstated,
}

#[derive(Debug, Clone)]
pub struct Accepted {
    pub event: ServerEvent,
    /// Which match keys the event carries (names only).
    pub match_keys: Vec<&'static str>,
    /// An `fbc` built from this event's `fbclid` that is newer than the `_fbc` cookie (or there was
    /// none): what a first-party `_fbc` cookie should now hold.
    pub new_fbc: Option<String>,
}

#[derive(Debug)]
pub struct Parsed {
    pub events: Vec<Result<Accepted, Rejection>>,
    pub consent: Consent,
    /// A per-request `test_event_code` (allowed only when configured; checked by the caller).
    pub test_event_code: Option<String>,
    /// `"dry_run": true`: answer with what would be sent, send nothing.
    pub dry_run: bool,
    /// The ids of events whose own `consent` was denied: neither validated nor forwarded.
    pub denied: Vec<Option<String>>,
}

/// The `(creation ms, click id)` of an `fbc` value `fb.1.<ms>.<fbclid>[.<appendix>]`. The Parameter
/// Builder's appendix is not part of the click: a cookie holding the same click with an appendix
/// must not be replaced by one built from the URL.
pub fn fbc_parts(fbc: &str) -> Option<(i64, &str)> {
    let mut parts = fbc.splitn(4, '.');
    let (_fb, _sub, ms, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((ms.parse().ok()?, rest.split('.').next()?))
}

fn bad(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::BadRequest { code, message: message.into() }
}

/// A short, printable rendering of something the client sent, for messages about names (never
/// for personal data).
fn shown(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    format!("{clean:?}")
}

fn parse_consent(v: &Value) -> Result<Consent, AppError> {
    let word = |s: &str| match s {
        "granted" => Ok(Consent::Granted),
        "denied" => Ok(Consent::Denied),
        _ => Err(bad("invalid_consent", "consent must be \"granted\" or \"denied\", or an object of Consent Mode signals")),
    };
    match v {
        Value::String(s) => word(s),
        // Google Consent Mode: ad_storage and ad_user_data govern advertising use.
        Value::Object(m) => {
            let mut any = false;
            for key in ["ad_storage", "ad_user_data"] {
                if let Some(v) = m.get(key) {
                    any = true;
                    if word(v.as_str().unwrap_or(""))? == Consent::Denied {
                        return Ok(Consent::Denied);
                    }
                }
            }
            if m.keys().any(|k| !matches!(k.as_str(), "ad_storage" | "ad_user_data" | "ad_personalization" | "analytics_storage")) {
                return Err(bad("invalid_consent", "consent object takes ad_storage, ad_user_data, ad_personalization, analytics_storage"));
            }
            Ok(if any { Consent::Granted } else { Consent::Unstated })
        }
        _ => Err(bad("invalid_consent", "consent must be a string or an object")),
    }
}

/// Parses a /collect body: one event object, or `{"data": [...]}`. Body-level problems are errors;
/// problems with one event reject that event only.
pub fn parse(body: &[u8], catalog: &Catalog, limits: CollectLimits, facts: &RequestFacts) -> Result<Parsed, AppError> {
    if body.len() > limits.max_bytes {
        return Err(AppError::PayloadTooLarge { limit: limits.max_bytes });
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| bad("invalid_json", format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut root) = root else {
        return Err(bad("invalid_body", "body must be an event object or {\"data\": [events]}"));
    };
    let body_consent = root.remove("consent").map(|c| parse_consent(&c)).transpose()?;
    let test_event_code = match root.remove("test_event_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()) => Some(c),
        Some(_) => return Err(bad("invalid_test_event_code", "test_event_code must be letters and digits (e.g. TEST12345)")),
    };
    let dry_run = match root.remove("dry_run") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("invalid_dry_run", "dry_run must be true or false")),
    };
    let raw_events: Vec<Value> = match root.remove("data") {
        Some(Value::Array(list)) => {
            if let Some(k) = root.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
                return Err(bad("unknown_field", format!("unknown top-level field {}", shown(k))));
            }
            list
        }
        Some(_) => return Err(bad("invalid_body", "data must be an array of events")),
        None => vec![Value::Object(root)],
    };
    if raw_events.is_empty() {
        return Err(bad("no_events", "data holds no events"));
    }
    if raw_events.len() > limits.max_events {
        return Err(bad("too_many_events", format!("{} events in one request; the limit is {}", raw_events.len(), limits.max_events)));
    }
    let cookie_consent = match facts.consent_cookie.as_deref() {
        Some("denied") => Consent::Denied,
        Some("granted") => Consent::Granted,
        _ => Consent::Unstated,
    };
    let consent = body_consent.filter(|c| *c != Consent::Unstated).unwrap_or(cookie_consent);
    let mut denied = Vec::new();
    let mut events = Vec::new();
    for e in raw_events {
        // An event's own denial holds even in a batch that grants: its data is not even hashed.
        let id = e.get("event_id").and_then(Value::as_str).map(str::to_string);
        match e.get("consent").map(parse_consent) {
            Some(Ok(Consent::Denied)) => denied.push(id),
            Some(Err(err)) => events.push(Err(reject(&id, "invalid_consent", err.to_string()))),
            _ => events.push(validate_event(e, catalog, facts)),
        }
    }
    Ok(Parsed { events, consent, test_event_code, dry_run, denied })
}

fn reject(event_id: &Option<String>, code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection { event_id: event_id.clone(), code, message: message.into() }
}

fn valid_event_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// An absolute http(s) URL with nothing that does not belong in one (controls, spaces, quotes,
/// angle brackets), at most 2 KB.
pub fn valid_url(u: &str) -> bool {
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
    u.len() <= MAX_URL_LEN
        && rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && u.chars().all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}'))
}

/// The `fbclid` query parameter of a URL, case untouched.
pub fn fbclid_of(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1.split('#').next()?;
    query.split('&').find_map(|kv| kv.strip_prefix("fbclid=")).filter(|v| !v.is_empty() && v.len() <= 500)
}

/// Strings forwarded to Meta: no control characters, nothing that reads as markup or script.
fn safe_text(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    !s.chars().any(char::is_control) && !lower.contains("<script") && !lower.contains("javascript:") && !lower.contains("<iframe")
}

fn check_custom(v: &Value, depth: usize, path: &str) -> Result<(), String> {
    if depth > MAX_CUSTOM_DEPTH {
        return Err(format!("custom_data nests deeper than {MAX_CUSTOM_DEPTH} levels"));
    }
    match v {
        Value::String(s) if !safe_text(s) => Err(format!("{path} holds control characters or markup")),
        Value::Number(n) if n.as_f64().is_none_or(|f| !f.is_finite()) => Err(format!("{path} is not a finite number")),
        Value::Array(items) => items.iter().try_for_each(|i| check_custom(i, depth + 1, path)),
        Value::Object(m) => m.iter().try_for_each(|(k, v)| {
            if matches!(k.as_str(), "__proto__" | "constructor" | "prototype") || k.is_empty() || k.len() > 64 || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("custom_data key {} is not allowed (letters, digits, _)", shown(k)));
            }
            check_custom(v, depth + 1, &format!("{path}.{k}"))
        }),
        _ => Ok(()),
    }
}

fn validate_custom(event_name: &str, v: Option<Value>) -> Result<Option<Value>, (&'static str, String)> {
    let Some(v) = v else {
        return if event_name == "Purchase" { Err(("missing_value", "Purchase needs custom_data.value and custom_data.currency".into())) } else { Ok(None) };
    };
    let Value::Object(mut m) = v else { return Err(("invalid_custom_data", "custom_data must be an object".into())) };
    check_custom(&Value::Object(m.clone()), 1, "custom_data").map_err(|e| ("invalid_custom_data", e))?;
    if serde_json::to_vec(&m).map(|b| b.len()).unwrap_or(usize::MAX) > MAX_CUSTOM_DATA_BYTES {
        return Err(("invalid_custom_data", format!("custom_data is larger than {MAX_CUSTOM_DATA_BYTES} bytes")));
    }
    let value = match m.get("value") {
        None => None,
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e12),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e12),
        Some(_) => None,
    };
    if m.contains_key("value") && value.is_none() {
        return Err(("invalid_value", "custom_data.value must be a non-negative number".into()));
    }
    if let Some(f) = value {
        m.insert("value".into(), serde_json::json!(f));
    }
    let currency = match m.get("currency") {
        None => None,
        Some(Value::String(c)) if is_iso4217(&c.trim().to_ascii_uppercase()) => Some(c.trim().to_ascii_uppercase()),
        Some(_) => return Err(("invalid_currency", "custom_data.currency must be an ISO 4217 code such as EUR".into())),
    };
    if let Some(c) = &currency {
        m.insert("currency".into(), Value::String(c.clone()));
    }
    if value.is_some() && currency.is_none() {
        return Err(("missing_currency", "custom_data.value needs custom_data.currency".into()));
    }
    if event_name == "Purchase" && (value.is_none() || currency.is_none()) {
        return Err(("missing_value", "Purchase needs custom_data.value and custom_data.currency".into()));
    }
    Ok(Some(Value::Object(m)))
}

fn user_data_error(e: UserDataError) -> (&'static str, String) {
    ("invalid_user_data", e.to_string())
}

fn validate_event(raw: Value, catalog: &Catalog, facts: &RequestFacts) -> Result<Accepted, Rejection> {
    let Value::Object(mut m) = raw else {
        return Err(reject(&None, "invalid_event", "each event must be a JSON object"));
    };
    let event_id = match m.remove("event_id") {
        Some(Value::String(id)) if valid_event_id(&id) => Some(id),
        Some(Value::String(_)) | Some(Value::Number(_)) => {
            return Err(reject(&None, "invalid_event_id", "event_id must be a string of 1-128 printable ASCII characters"))
        }
        Some(_) => return Err(reject(&None, "invalid_event_id", "event_id must be a string")),
        None => return Err(reject(&None, "missing_event_id", "event_id is required: deduplication depends on it")),
    };
    let id = &event_id;
    m.remove("consent");
    if let Some(k) = m.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(reject(id, "unknown_field", format!("unknown event field {}", shown(k))));
    }
    let event_name = match m.remove("event_name") {
        Some(Value::String(n)) if catalog.contains(&n) => n,
        Some(Value::String(n)) => return Err(reject(id, "unknown_event", format!("event_name {} is not in the catalog", shown(&n)))),
        Some(_) => return Err(reject(id, "invalid_event_name", "event_name must be a string")),
        None => return Err(reject(id, "missing_event_name", "event_name is required")),
    };

    let now = (facts.now_ms / 1000.0) as i64;
    let event_time = match m.remove("event_time") {
        None => now,
        Some(Value::Number(n)) => match n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f as i64)) {
            // Milliseconds are a common client mistake: accept them, as seconds.
            Some(t) if t > 100_000_000_000 => t / 1000,
            Some(t) => t,
            None => return Err(reject(id, "invalid_event_time", "event_time must be Unix seconds")),
        },
        Some(_) => return Err(reject(id, "invalid_event_time", "event_time must be Unix seconds (a number)")),
    };
    if now - event_time > MAX_AGE_SECS {
        return Err(reject(id, "stale_event", "event_time is more than 7 days old; Meta would reject it"));
    }
    if event_time - now > MAX_SKEW_SECS {
        return Err(reject(id, "future_event", "event_time is in the future"));
    }
    let event_time = event_time.min(now);

    let action_source = match m.remove("action_source") {
        None => "website".to_string(),
        Some(Value::String(s)) if ACTION_SOURCES.contains(&s.as_str()) => s,
        Some(_) => return Err(reject(id, "invalid_action_source", format!("action_source must be one of {}", ACTION_SOURCES.join(", ")))),
    };
    let url_field = |m: &mut Map<String, Value>, key: &str| -> Result<Option<String>, Rejection> {
        match m.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(u)) if valid_url(&u) => Ok(Some(u)),
            Some(_) => Err(reject(id, "invalid_url", format!("{key} must be an absolute http(s) URL without spaces, quotes or markup"))),
        }
    };
    let event_source_url = url_field(&mut m, "event_source_url")?.or_else(|| facts.referer.clone().filter(|r| valid_url(r)));
    let referrer_url = url_field(&mut m, "referrer_url")?;
    if action_source == "website" && event_source_url.is_none() {
        return Err(reject(id, "missing_event_source_url", "website events need event_source_url (or a Referer header)"));
    }

    let user_input = match m.remove("user_data") {
        None => Map::new(),
        Some(Value::Object(u)) => u,
        Some(_) => return Err(reject(id, "invalid_user_data", "user_data must be an object")),
    };
    let hashed = normalize::hash_user_data(&user_input, normalize::year_of_unix_ms(facts.now_ms as f64)).map_err(|e| {
        let (code, msg) = user_data_error(e);
        reject(id, code, msg)
    })?;
    let mut user_data = hashed.fields;
    // The connection's own address and agent, never the body's: they are what Meta matches on.
    if let Some(ip) = &facts.client_ip {
        user_data.insert("client_ip_address".into(), Value::String(ip.clone()));
    }
    if let Some(ua) = facts.user_agent.as_ref().filter(|ua| ua.len() <= 512 && !ua.chars().any(char::is_control)) {
        user_data.insert("client_user_agent".into(), Value::String(ua.clone()));
    }
    if !user_data.contains_key("fbp") {
        if let Some(fbp) = facts.fbp_cookie.as_ref().filter(|v| normalize::valid_fbp(v)) {
            user_data.insert("fbp".into(), Value::String(fbp.clone()));
        }
    }
    let mut new_fbc = None;
    if !user_data.contains_key("fbc") {
        let cookie = facts.fbc_cookie.clone().filter(|v| normalize::valid_fbc(v));
        let click = event_source_url.as_deref().and_then(fbclid_of).map(|c| (c.to_string(), format!("fb.1.{}.{c}", facts.now_ms as i64))).filter(|(_, v)| normalize::valid_fbc(v));
        // The cookie stands when it holds this same click, or a click newer than this event.
        let keep_cookie = |cookie: &str, click_id: &str| {
            fbc_parts(cookie).is_some_and(|(ms, id)| id == click_id || ms > event_time.saturating_mul(1000))
        };
        let chosen = match (cookie, click) {
            (Some(c), Some((id, _))) if keep_cookie(&c, &id) => Some(c),
            (_, Some((_, fresh))) => {
                new_fbc = Some(fresh.clone());
                Some(fresh)
            }
            (Some(c), None) => Some(c),
            (None, None) => None,
        };
        if let Some(fbc) = chosen {
            user_data.insert("fbc".into(), Value::String(fbc));
        }
    }
    if action_source == "website" && !user_data.contains_key("client_user_agent") {
        return Err(reject(id, "missing_user_agent", "website events need a User-Agent"));
    }
    if user_data.is_empty() {
        return Err(reject(id, "missing_user_data", "user_data needs at least one match key"));
    }

    let custom_data = validate_custom(&event_name, m.remove("custom_data")).map_err(|(code, msg)| reject(id, code, msg))?;
    let data_processing_options = match m.remove("data_processing_options") {
        None => None,
        Some(Value::Array(opts)) if opts.iter().all(|o| o.as_str() == Some("LDU")) && opts.len() <= 1 => {
            Some(opts.iter().filter_map(|o| o.as_str().map(str::to_string)).collect())
        }
        Some(_) => return Err(reject(id, "invalid_data_processing_options", "data_processing_options must be [] or [\"LDU\"]")),
    };
    // Meta's only codes: country 1 (USA) or 0 (geolocate); state 1000 (California) or 0.
    let int_field = |m: &mut Map<String, Value>, key: &str, other: i64| -> Result<Option<i64>, Rejection> {
        match m.remove(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some_and(|v| v == 0 || v == other) => Ok(n.as_i64()),
            Some(_) => Err(reject(id, "invalid_data_processing_options", format!("{key} must be 0 or {other}"))),
        }
    };
    let data_processing_options_country = int_field(&mut m, "data_processing_options_country", 1)?;
    let data_processing_options_state = int_field(&mut m, "data_processing_options_state", 1000)?;
    let opt_out = match m.remove("opt_out") {
        None => None,
        Some(Value::Bool(b)) => Some(b),
        Some(_) => return Err(reject(id, "invalid_opt_out", "opt_out must be true or false")),
    };

    let mut match_keys = hashed.keys;
    for k in ["client_ip_address", "client_user_agent", "fbp", "fbc"] {
        if user_data.contains_key(k) && !match_keys.contains(&k) {
            match_keys.push(k);
        }
    }
    Ok(Accepted {
        event: ServerEvent {
            event_name,
            event_id: event_id.unwrap_or_default(),
            event_time,
            event_source_url,
            action_source,
            user_data,
            custom_data,
            data_processing_options,
            data_processing_options_country,
            data_processing_options_state,
            opt_out,
            referrer_url,
        },
        match_keys,
        new_fbc,
    })
}

#[cfg(test)]
mod tests;
