//! The one Upstash Redis REST client every module uses. It owns the wire protocol (single commands,
//! `/pipeline`, `/multi-exec`), the per-call timeout, and the mapping of what Upstash answers into
//! [`StoreError`]. Results keep their Redis types ([`Value`]): a numeric-looking string stays a string.

mod value;

pub use value::Value;

use crate::config::UpstashConfig;
use crate::http::{Method, Outbound, OutboundRequest, TransportError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("store not configured")]
    NotConfigured,
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
}

impl StoreError {
    /// True when the store is unreachable or failing, as opposed to refusing us.
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Transport(_) | StoreError::Server { .. } | StoreError::Protocol(_))
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

pub struct Upstash<'a, O: Outbound> {
    cfg: &'a UpstashConfig,
    out: &'a O,
}

impl<'a, O: Outbound> Upstash<'a, O> {
    pub fn new(cfg: &'a UpstashConfig, out: &'a O) -> Self {
        Upstash { cfg, out }
    }

    async fn post(&self, path: &str, body: &serde_json::Value) -> Result<serde_json::Value, StoreError> {
        let req = OutboundRequest {
            method: Method::Post,
            url: format!("{}{}", self.cfg.url, path),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.cfg.token.expose())),
                ("content-type".into(), "application/json".into()),
            ],
            body: Some(serde_json::to_vec(body).map_err(|e| StoreError::Protocol(e.to_string()))?),
            timeout_ms: self.cfg.timeout_ms,
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

    /// One command, one round trip.
    pub async fn command(&self, command: &[String]) -> Result<Value, StoreError> {
        let body = self.post("/", &serde_json::json!(command)).await?;
        entry(&body)
    }

    /// Several commands in one round trip, not atomic; each has its own outcome.
    pub async fn pipeline(&self, commands: &[Command]) -> Result<Vec<Result<Value, StoreError>>, StoreError> {
        self.batch("/pipeline", commands).await
    }

    /// Several commands in one round trip, as one MULTI/EXEC transaction.
    pub async fn multi_exec(&self, commands: &[Command]) -> Result<Vec<Result<Value, StoreError>>, StoreError> {
        self.batch("/multi-exec", commands).await
    }

    async fn batch(&self, path: &str, commands: &[Command]) -> Result<Vec<Result<Value, StoreError>>, StoreError> {
        let body = self.post(path, &serde_json::json!(commands)).await?;
        let items = body.as_array().ok_or_else(|| StoreError::Protocol(format!("{path} answer is not an array")))?;
        if items.len() != commands.len() {
            return Err(StoreError::Protocol(format!("{path}: {} answers for {} commands", items.len(), commands.len())));
        }
        Ok(items.iter().map(entry).collect())
    }

    /// PING, timed: the health probe.
    pub async fn ping(&self) -> Result<f64, StoreError> {
        let start = self.out.now_ms();
        let v = self.command(&cmd(["PING"])).await?;
        let elapsed = self.out.now_ms() - start;
        match v {
            Value::Str(s) if s == "PONG" => Ok(elapsed),
            other => Err(StoreError::Protocol(format!("PING answered {other:?}"))),
        }
    }
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
