//! The one outbound-HTTP seam. Pure modules (the store client, CAPI delivery, Zaraz sync) are written
//! against [`Outbound`]; the worker implements it with `fetch`, native tests with a blocking client.
//! Also the plain response type handlers return, converted to a runtime response once, in the glue.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The call is abandoned (and reported as [`TransportError::Timeout`]) after this long.
    pub timeout_ms: u32,
    /// Whether the caller reads the response's headers: copying them costs a call into JS each,
    /// and only the explain fetch of an origin needs them.
    pub response_headers: bool,
}

// Requests carry bearer tokens: never print headers.
impl fmt::Debug for OutboundRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundRequest").field("method", &self.method).field("url", &redact_url(&self.url)).finish_non_exhaustive()
    }
}

/// Drops the query string, where tokens (`access_token`, `_token`) travel.
pub fn redact_url(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[derive(Debug, Clone)]
pub struct OutboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl OutboundResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0} ms")]
    Timeout(u32),
    #[error("network error: {0}")]
    Network(String),
}

/// Outbound I/O and the clock: everything a pure module needs from the runtime.
#[allow(async_fn_in_trait)] // single-threaded wasm: no Send bound wanted
pub trait Outbound {
    async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError>;
    async fn sleep(&self, ms: u32);
    /// Milliseconds since the Unix epoch (fractional where the runtime allows).
    fn now_ms(&self) -> f64;
    /// Uniform in [0, 1): for backoff jitter.
    fn random(&self) -> f64;
}

/// A response built by a handler, before the runtime turns it into its own type.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![
                ("content-type".into(), "application/json; charset=utf-8".into()),
                // The worker's own answers are never stored by a cache.
                ("cache-control".into(), "no-store".into()),
            ],
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
pub mod native {
    //! A blocking `Outbound` over `ureq` for native tests against real local servers.
    use super::*;
    use std::io::Read;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    #[derive(Default)]
    pub struct NativeOutbound;

    impl Outbound for NativeOutbound {
        async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError> {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_millis(req.timeout_ms as u64)).build();
            let mut r = agent.request(req.method.as_str(), &req.url);
            for (k, v) in &req.headers {
                r = r.set(k, v);
            }
            let result = match &req.body {
                Some(b) => r.send_bytes(b),
                None => r.call(),
            };
            let resp = match result {
                Ok(resp) | Err(ureq::Error::Status(_, resp)) => resp,
                Err(ureq::Error::Transport(t)) => {
                    let msg = t.to_string();
                    return Err(if msg.contains("timed out") || msg.contains("WouldBlock") {
                        TransportError::Timeout(req.timeout_ms)
                    } else {
                        TransportError::Network(msg)
                    });
                }
            };
            let status = resp.status();
            let headers = resp.headers_names().iter().filter_map(|n| resp.header(n).map(|v| (n.clone(), v.to_string()))).collect();
            let mut body = Vec::new();
            resp.into_reader().read_to_end(&mut body).map_err(|e| TransportError::Network(e.to_string()))?;
            Ok(OutboundResponse { status, headers, body })
        }

        async fn sleep(&self, ms: u32) {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }

        fn now_ms(&self) -> f64 {
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0)
        }

        fn random(&self) -> f64 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            (nanos % 1000) as f64 / 1000.0
        }
    }
}
