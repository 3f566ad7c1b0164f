//! The worker's error enum and its one mapping to HTTP: `{"error": {"code", "message"}}`.
//! Handlers return `Result<Reply, AppError>`; the router turns the error into a response, once.

use crate::config::ConfigError;
use crate::http::Reply;
use crate::upstash::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type must be one of {expected}")]
    UnsupportedMediaType { expected: &'static str },
    #[error("origin not allowed: {0}")]
    OriginNotAllowed(String),
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("rate limit exceeded: {limit} requests per {window_secs} s for this {scope}")]
    RateLimited { scope: &'static str, limit: u32, window_secs: u32, reset_secs: u32 },
    #[error("configuration invalid: {}", list(.0))]
    ConfigInvalid(Vec<ConfigError>),
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("the store is unavailable: {0}")]
    Store(#[from] StoreError),
    #[error("{message}")]
    Unavailable { code: &'static str, message: String, retry_after_secs: u32 },
    #[error("no origin configured for this host: set ORIGIN_URL")]
    NoOrigin,
    #[error("{0}")]
    Zaraz(#[from] crate::zaraz::ZarazError),
}

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::BadRequest { .. } => 400,
            AppError::PayloadTooLarge { .. } => 413,
            AppError::UnsupportedMediaType { .. } => 415,
            AppError::OriginNotAllowed(_) | AppError::Forbidden { .. } => 403,
            AppError::Unauthorized => 401,
            AppError::RateLimited { .. } => 429,
            AppError::ConfigInvalid(_) | AppError::NotConfigured(_) | AppError::Store(_) | AppError::Unavailable { .. } => 503,
            AppError::NoOrigin => 502,
            AppError::Zaraz(z) => z.status(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::BadRequest { code, .. } => code,
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UnsupportedMediaType { .. } => "unsupported_media_type",
            AppError::OriginNotAllowed(_) => "origin_not_allowed",
            AppError::Forbidden { code, .. } => code,
            AppError::Unauthorized => "unauthorized",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::ConfigInvalid(_) => "config_invalid",
            AppError::NotConfigured(_) => "not_configured",
            AppError::Store(StoreError::Unauthorized(_)) => "store_misconfigured",
            AppError::Store(_) => "store_unavailable",
            AppError::Unavailable { code, .. } => code,
            AppError::NoOrigin => "no_origin",
            AppError::Zaraz(z) => z.code(),
        }
    }

    pub fn into_reply(self) -> Reply {
        let mut body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        // A failed Zaraz sync carries its report (chunks, verification, rollback) for the operator.
        if let AppError::Zaraz(z) = &self {
            if let Some(report) = z.report() {
                body["report"] = report.clone();
            }
        }
        let reply = Reply::json(self.status(), &body);
        match self {
            AppError::MethodNotAllowed { allow } => reply.with_header("allow", allow),
            AppError::Unauthorized => reply.with_header("www-authenticate", "Bearer"),
            AppError::RateLimited { limit, reset_secs, .. } => reply
                .with_header("retry-after", reset_secs.to_string())
                .with_header("ratelimit-limit", limit.to_string())
                .with_header("ratelimit-remaining", "0")
                .with_header("ratelimit-reset", reset_secs.to_string()),
            AppError::Unavailable { retry_after_secs, .. } => reply.with_header("retry-after", retry_after_secs.to_string()),
            AppError::Store(_) => reply.with_header("retry-after", "5"),
            _ => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_json_with_code_and_message() {
        let r = AppError::MethodNotAllowed { allow: "GET, HEAD" }.into_reply();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("allow".into(), "GET, HEAD".into())));
        assert_eq!(r.body_json()["error"]["code"], "method_not_allowed");

        let r = AppError::ConfigInvalid(vec![ConfigError { variable: "META_PIXEL_ID", message: "expected a numeric pixel id".into() }]).into_reply();
        assert_eq!(r.status, 503);
        assert!(r.body_json()["error"]["message"].as_str().unwrap().contains("META_PIXEL_ID"));
    }

    #[test]
    fn rate_limited_carries_retry_after_and_ratelimit_headers() {
        let r = AppError::RateLimited { scope: "client", limit: 10, window_secs: 60, reset_secs: 17 }.into_reply();
        assert_eq!(r.status, 429);
        for (k, v) in [("retry-after", "17"), ("ratelimit-limit", "10"), ("ratelimit-remaining", "0"), ("ratelimit-reset", "17")] {
            assert!(r.headers.contains(&(k.into(), v.into())), "{k}");
        }
    }

    #[test]
    fn unauthorized_asks_for_a_bearer_token() {
        let r = AppError::Unauthorized.into_reply();
        assert_eq!(r.status, 401);
        assert!(r.headers.contains(&("www-authenticate".into(), "Bearer".into())));
    }
}
