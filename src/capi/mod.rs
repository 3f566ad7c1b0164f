//! The Meta Conversions API client: the request for a batch of server events, and what Meta's
//! answer means for them (delivered, retry later, one bad event, a bad batch, our credentials).
//! Delivery orchestration (grouping, markers, dead letters, books) lives in `deliver`.

pub mod deliver;
pub mod versions;

use serde_json::{json, Value};

use crate::config::MetaConfig;
use crate::http::{Method, OutboundRequest, OutboundResponse, TransportError};

/// Meta accepts at most 1000 events per request.
pub const MAX_BATCH: usize = 1000;

/// Throttling codes Meta sends (also as HTTP 400/403): application, user, page, custom, ads account.
const THROTTLE_CODES: &[i64] = &[4, 17, 32, 613, 80004];

pub fn endpoint(meta: &MetaConfig, pixel_id: &str) -> String {
    format!("{}/{}/{}/events", meta.capi_base_url, meta.api_version, pixel_id)
}

/// The token travels in the body, not the URL, so it cannot end up in an access log.
pub fn request(meta: &MetaConfig, pixel_id: &str, test_event_code: Option<&str>, events: &[&Value], token: &str) -> OutboundRequest {
    let mut body = json!({ "data": events, "access_token": token });
    if let Some(code) = test_event_code {
        body["test_event_code"] = json!(code);
    }
    OutboundRequest {
        method: Method::Post,
        url: endpoint(meta, pixel_id),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(serde_json::to_vec(&body).unwrap_or_default()),
        timeout_ms: meta.timeout_ms,
        response_headers: false,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Delivered { events_received: u64 },
    /// Transient (5xx, 429, throttling, timeouts, network): send the same events again later.
    Retry { reason: String },
    /// Meta named one event as invalid: dead-letter it, send the others again.
    BadEvent { index: usize, reason: String },
    /// Rejected without naming an event: split the batch to find the culprit.
    BadBatch { reason: String },
    /// Our credentials or pixel are wrong (code 190, 102, 10, 200..299): no event is at fault; keep
    /// them queued and make `/health` say so.
    Credentials { reason: String },
}

#[derive(Debug, Clone, Default)]
struct GraphError {
    message: String,
    user_msg: String,
    code: i64,
    subcode: i64,
    transient: bool,
}

fn graph_error(body: &[u8]) -> Option<GraphError> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    Some(GraphError {
        message: e.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
        user_msg: e.get("error_user_msg").and_then(Value::as_str).unwrap_or("").to_string(),
        code: e.get("code").and_then(Value::as_i64).unwrap_or(0),
        subcode: e.get("error_subcode").and_then(Value::as_i64).unwrap_or(0),
        transient: e.get("is_transient").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The `data[i]` index Meta names in a validation error, if any.
pub fn named_index(text: &str) -> Option<usize> {
    let start = text.find("data[")? + 5;
    let rest = &text[start..];
    let end = rest.find(']')?;
    rest[..end].parse().ok()
}

fn describe(e: &GraphError, status: u16) -> String {
    let detail = if e.user_msg.is_empty() { &e.message } else { &e.user_msg };
    let detail: String = detail.chars().filter(|c| !c.is_control()).take(300).collect();
    format!("HTTP {status}, code {}{}: {detail}", e.code, if e.subcode != 0 { format!("/{}", e.subcode) } else { String::new() })
}

pub fn classify(result: &Result<OutboundResponse, TransportError>) -> Verdict {
    let resp = match result {
        Err(e) => return Verdict::Retry { reason: format!("Conversions API {e}") },
        Ok(r) => r,
    };
    if resp.status == 200 {
        let received = serde_json::from_slice::<Value>(&resp.body).ok().and_then(|v| v.get("events_received").and_then(Value::as_u64)).unwrap_or(0);
        return Verdict::Delivered { events_received: received };
    }
    let err = graph_error(&resp.body).unwrap_or_default();
    let reason = describe(&err, resp.status);
    if resp.status == 429 || resp.status >= 500 || err.transient || THROTTLE_CODES.contains(&err.code) {
        return Verdict::Retry { reason };
    }
    // Token, permission, or a pixel id Meta does not know (100/33, "Object with ID ... does not
    // exist"): our configuration, wrong for every event alike, so no event is to blame.
    if matches!(err.code, 190 | 102 | 10) || (200..300).contains(&err.code) || (err.code, err.subcode) == (100, 33) || resp.status == 401 {
        return Verdict::Credentials { reason };
    }
    if let Some(index) = named_index(&err.user_msg).or_else(|| named_index(&err.message)) {
        return Verdict::BadEvent { index, reason };
    }
    if resp.status == 400 || resp.status == 413 {
        return Verdict::BadBatch { reason };
    }
    Verdict::Retry { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: Value) -> Result<OutboundResponse, TransportError> {
        Ok(OutboundResponse { status, headers: vec![], body: serde_json::to_vec(&body).unwrap() })
    }

    fn err(code: i64, transient: bool, user_msg: &str) -> Value {
        json!({ "error": { "message": "Invalid parameter", "type": "OAuthException", "code": code, "error_subcode": 2804019, "is_transient": transient, "error_user_msg": user_msg, "fbtrace_id": "x" } })
    }

    #[test]
    fn meta_answers_map_to_verdicts() {
        assert_eq!(classify(&resp(200, json!({ "events_received": 3, "messages": [] }))), Verdict::Delivered { events_received: 3 });
        assert!(matches!(classify(&resp(500, err(1, true, ""))), Verdict::Retry { .. }));
        assert!(matches!(classify(&resp(503, json!("<html>"))), Verdict::Retry { .. }));
        assert!(matches!(classify(&resp(429, err(17, true, ""))), Verdict::Retry { .. }));
        assert!(matches!(classify(&resp(400, err(613, false, ""))), Verdict::Retry { .. }), "throttling as a 400");
        assert!(matches!(classify(&resp(403, err(4, false, ""))), Verdict::Retry { .. }));
        assert!(matches!(classify(&Err(TransportError::Timeout(10_000))), Verdict::Retry { .. }));
        assert!(matches!(classify(&resp(400, err(190, false, "token expired"))), Verdict::Credentials { .. }));
        let unknown_pixel = json!({ "error": { "message": "Unsupported post request. Object with ID '1' does not exist", "type": "GraphMethodException", "code": 100, "error_subcode": 33 } });
        assert!(matches!(classify(&resp(400, unknown_pixel)), Verdict::Credentials { .. }), "a wrong pixel id is not the events' fault");
        match classify(&resp(400, err(100, false, "data[7].user_data.em: must be hashed"))) {
            Verdict::BadEvent { index, reason } => {
                assert_eq!(index, 7);
                assert!(reason.contains("code 100/2804019"), "{reason}");
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(classify(&resp(400, err(100, false, "Invalid parameter"))), Verdict::BadBatch { .. }));
        assert!(matches!(classify(&resp(413, err(100, false, "too large"))), Verdict::BadBatch { .. }));
    }

    #[test]
    fn indexes_are_read_from_messages() {
        assert_eq!(named_index("bad data[12].event_time"), Some(12));
        assert_eq!(named_index("data[x]"), None);
        assert_eq!(named_index("nothing"), None);
    }

    #[test]
    fn the_request_carries_the_token_in_the_body_not_the_url() {
        let meta = MetaConfig {
            timeout_ms: 10_000,
            pixel_id: Some("123".into()),
            access_token: None,
            api_version: crate::config::DEFAULT_META_API_VERSION.into(),
            test_event_code: None,
            capi_base_url: "http://127.0.0.1:8081".into(),
        };
        let r = request(&meta, "123", Some("TEST1"), &[], "tok");
        assert_eq!(r.url, format!("http://127.0.0.1:8081/{}/123/events", crate::config::DEFAULT_META_API_VERSION));
        let body: Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!((body["access_token"].as_str(), body["test_event_code"].as_str()), (Some("tok"), Some("TEST1")));
    }
}
