//! The Upstash REST surface: `POST /` (a JSON command array), path-style commands (`GET /get/key`),
//! `POST /pipeline`, `POST /multi-exec`, Bearer or `_token` auth, `{"result"}` / `{"error"}` bodies and
//! the optional `Upstash-Encoding: base64` response encoding, plus the `/__control/*` test hooks.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use crate::control::Faults;
use crate::resp::Reply;
use crate::AppState;

type Shared = State<Arc<AppState>>;
type Command = Vec<Vec<u8>>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/__control/log", get(get_log).delete(clear_log))
        .route("/__control/faults", get(get_faults).post(set_faults).delete(clear_faults))
        .route("/pipeline", post(pipeline))
        .route("/multi-exec", post(multi_exec))
        .route("/", post(single_json))
        .fallback(path_command)
        .layer(DefaultBodyLimit::max(10 * 1024 * 1024))
        .with_state(state)
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

fn authorized(state: &AppState, headers: &HeaderMap, uri: &Uri) -> bool {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let query = uri.query().and_then(|q| {
        q.split('&').find_map(|kv| kv.strip_prefix("_token=")).map(|t| percent_decode(t).unwrap_or_default())
    });
    let given = bearer.or(query).unwrap_or_default();
    constant_time_eq(given.as_bytes(), state.token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // The length may leak; the bytes of the token do not.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = percent_decode_bytes(s);
    String::from_utf8(bytes).ok()
}

fn percent_decode_bytes(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

fn base64_wanted(headers: &HeaderMap) -> bool {
    headers
        .get("upstash-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("base64"))
}

/// JSON arguments may be strings, numbers or booleans, as the official clients send them.
fn parse_command(v: &Value) -> Result<Command, String> {
    let arr = v.as_array().ok_or("ERR command must be a JSON array")?;
    if arr.is_empty() {
        return Err("ERR empty command".into());
    }
    let mut out = Vec::with_capacity(arr.len());
    for a in arr {
        out.push(match a {
            Value::String(s) => s.clone().into_bytes(),
            Value::Number(n) => n.to_string().into_bytes(),
            Value::Bool(b) => b.to_string().into_bytes(),
            _ => return Err("ERR command arguments must be strings or numbers".into()),
        });
    }
    check_allowed(&out)?;
    Ok(out)
}

/// Commands that would change the connection's protocol state are refused: each HTTP request borrows
/// a pooled connection and must hand it back clean.
fn check_allowed(cmd: &Command) -> Result<(), String> {
    let name = String::from_utf8_lossy(&cmd[0]).to_ascii_uppercase();
    const REFUSED: &[&str] =
        &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SYNC", "PSYNC", "MULTI", "EXEC", "DISCARD", "WATCH", "QUIT", "RESET", "SELECT", "HELLO", "CLIENT"];
    if REFUSED.contains(&name.as_str()) {
        return Err(format!("ERR Command is not allowed: {}", name.to_lowercase()));
    }
    Ok(())
}

fn parse_body_commands(body: &[u8]) -> Result<Vec<Command>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("ERR failed to parse request body: {e}"))?;
    let arr = v.as_array().ok_or("ERR request body must be an array of commands")?;
    if arr.is_empty() {
        return Err("ERR empty pipeline".into());
    }
    arr.iter().map(parse_command).collect()
}

/// Turns a reply into the JSON Upstash sends. With base64 encoding, bulk strings (at any depth) and
/// status strings other than `OK` are encoded; `@upstash/redis` decodes everything except a bare "OK".
fn to_json(r: &Reply, b64: bool) -> Result<Value, String> {
    let enc = |bytes: &[u8]| {
        if b64 {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
    };
    Ok(match r {
        Reply::Simple(s) if s == "OK" => Value::String(s.clone()),
        Reply::Simple(s) => enc(s.as_bytes()),
        Reply::Bulk(b) => enc(b),
        Reply::Int(i) => json!(i),
        Reply::Nil => Value::Null,
        Reply::Error(e) => return Err(e.clone()),
        Reply::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                out.push(match it {
                    // Errors nested in arrays (EVAL results) surface as text, as Upstash does.
                    Reply::Error(e) => Value::String(e.clone()),
                    other => to_json(other, b64)?,
                });
            }
            Value::Array(out)
        }
    })
}

fn entry(r: &Reply, b64: bool) -> Value {
    match to_json(r, b64) {
        Ok(v) => json!({ "result": v }),
        Err(e) => json!({ "error": e }),
    }
}

enum Kind {
    Single,
    Pipeline,
    MultiExec,
}

impl Kind {
    fn endpoint(&self) -> &'static str {
        match self {
            Kind::Single => "/",
            Kind::Pipeline => "/pipeline",
            Kind::MultiExec => "/multi-exec",
        }
    }
}

async fn execute(state: &AppState, headers: &HeaderMap, uri: &Uri, kind: Kind, commands: Result<Vec<Command>, String>) -> Response {
    if !authorized(state, headers, uri) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let faults = state.control.take_request_faults(commands.as_deref().unwrap_or_default());
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some(status) = faults.status {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let msg = if status == 401 { "Unauthorized".to_string() } else { format!("injected fault: HTTP {status}") };
        state.control.record(kind.endpoint(), &commands.unwrap_or_default(), status);
        return error(code, msg);
    }
    let commands = match commands {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let b64 = base64_wanted(headers);
    let (status, resp) = match kind {
        Kind::Single => run_single(state, &commands[0], b64).await,
        Kind::Pipeline => run_pipeline(state, &commands, b64).await,
        Kind::MultiExec => run_multi(state, &commands, b64).await,
    };
    state.control.record(kind.endpoint(), &commands, status.as_u16());
    if faults.lose_reply {
        return error(StatusCode::BAD_GATEWAY, "injected fault: the reply was lost".to_string());
    }
    resp
}

fn unavailable(e: std::io::Error) -> (StatusCode, Response) {
    (StatusCode::SERVICE_UNAVAILABLE, error(StatusCode::SERVICE_UNAVAILABLE, format!("ERR redis unavailable: {e}")))
}

async fn run_single(state: &AppState, cmd: &Command, b64: bool) -> (StatusCode, Response) {
    match state.pool.run(std::slice::from_ref(cmd)).await {
        Ok(replies) => match to_json(&replies[0], b64) {
            Ok(v) => (StatusCode::OK, Json(json!({ "result": v })).into_response()),
            Err(e) => (StatusCode::BAD_REQUEST, error(StatusCode::BAD_REQUEST, e)),
        },
        Err(e) => unavailable(e),
    }
}

async fn run_pipeline(state: &AppState, cmds: &[Command], b64: bool) -> (StatusCode, Response) {
    match state.pool.run(cmds).await {
        Ok(replies) => {
            let out: Vec<Value> = replies.iter().map(|r| entry(r, b64)).collect();
            (StatusCode::OK, Json(Value::Array(out)).into_response())
        }
        Err(e) => unavailable(e),
    }
}

async fn run_multi(state: &AppState, cmds: &[Command], b64: bool) -> (StatusCode, Response) {
    let mut wrapped = Vec::with_capacity(cmds.len() + 2);
    wrapped.push(vec![b"MULTI".to_vec()]);
    wrapped.extend(cmds.iter().cloned());
    wrapped.push(vec![b"EXEC".to_vec()]);
    match state.pool.run(&wrapped).await {
        Ok(replies) => match replies.last() {
            Some(Reply::Array(items)) => {
                let out: Vec<Value> = items.iter().map(|r| entry(r, b64)).collect();
                (StatusCode::OK, Json(Value::Array(out)).into_response())
            }
            Some(Reply::Error(e)) => (StatusCode::BAD_REQUEST, error(StatusCode::BAD_REQUEST, e.clone())),
            _ => (StatusCode::BAD_REQUEST, error(StatusCode::BAD_REQUEST, "ERR transaction failed")),
        },
        Err(e) => unavailable(e),
    }
}

async fn single_json(State(s): Shared, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let cmd = serde_json::from_slice::<Value>(&body)
        .map_err(|e| format!("ERR failed to parse command: {e}"))
        .and_then(|v| parse_command(&v))
        .map(|c| vec![c]);
    execute(&s, &headers, &uri, Kind::Single, cmd).await
}

async fn pipeline(State(s): Shared, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    execute(&s, &headers, &uri, Kind::Pipeline, parse_body_commands(&body)).await
}

async fn multi_exec(State(s): Shared, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    execute(&s, &headers, &uri, Kind::MultiExec, parse_body_commands(&body)).await
}

/// `GET|POST /set/key/value/EX/100`: segments are URL-decoded; a POST body is the last argument.
async fn path_command(State(s): Shared, method: Method, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let mut cmd: Command = uri.path().split('/').filter(|p| !p.is_empty()).map(percent_decode_bytes).collect();
    if method == Method::POST && !body.is_empty() {
        cmd.push(body.to_vec());
    }
    let parsed = if cmd.is_empty() { Err("ERR empty command".to_string()) } else { check_allowed(&cmd).map(|_| vec![cmd]) };
    execute(&s, &headers, &uri, Kind::Single, parsed).await
}

fn control_guard(s: &AppState, headers: &HeaderMap, uri: &Uri) -> Option<Response> {
    (!authorized(s, headers, uri)).then(|| error(StatusCode::UNAUTHORIZED, "Unauthorized"))
}

#[derive(serde::Deserialize)]
struct LogQuery {
    since: Option<u64>,
}

async fn get_log(State(s): Shared, headers: HeaderMap, uri: Uri, Query(q): Query<LogQuery>) -> Response {
    if let Some(r) = control_guard(&s, &headers, &uri) {
        return r;
    }
    let (last_seq, entries) = s.control.log();
    let since = q.since.unwrap_or(0);
    let entries: Vec<_> = entries.into_iter().filter(|e| e.seq > since).collect();
    Json(json!({ "result": { "last_seq": last_seq, "entries": entries } })).into_response()
}

async fn clear_log(State(s): Shared, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(r) = control_guard(&s, &headers, &uri) {
        return r;
    }
    s.control.clear_log();
    Json(json!({ "result": "OK" })).into_response()
}

async fn get_faults(State(s): Shared, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(r) = control_guard(&s, &headers, &uri) {
        return r;
    }
    Json(json!({ "result": s.control.faults() })).into_response()
}

async fn set_faults(State(s): Shared, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    if let Some(r) = control_guard(&s, &headers, &uri) {
        return r;
    }
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            s.control.set_faults(f.clone());
            Json(json!({ "result": f })).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, format!("bad faults: {e}")),
    }
}

async fn clear_faults(State(s): Shared, headers: HeaderMap, uri: Uri) -> Response {
    if let Some(r) = control_guard(&s, &headers, &uri) {
        return r;
    }
    s.control.set_faults(Faults::default());
    Json(json!({ "result": "OK" })).into_response()
}
