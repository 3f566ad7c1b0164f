//! The worker's error enum and its one mapping to HTTP: `{"error": {"code", "message"}}`.
//! Handlers return `Result<Reply, AppError>`; the router turns the error into a response, once.

use crate::config::ConfigError;
use crate::http::Reply;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no route for {0}")]
    NotFound(String),
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("configuration invalid: {}", list(.0))]
    ConfigInvalid(Vec<ConfigError>),
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error("no origin configured for this host: set ORIGIN_URL")]
    NoOrigin,
}

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound(_) => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::ConfigInvalid(_) | AppError::NotConfigured(_) => 503,
            AppError::NoOrigin => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::ConfigInvalid(_) => "config_invalid",
            AppError::NotConfigured(_) => "not_configured",
            AppError::NoOrigin => "no_origin",
        }
    }

    pub fn into_reply(self) -> Reply {
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let reply = Reply::json(self.status(), &body);
        match self {
            AppError::MethodNotAllowed { allow } => reply.with_header("allow", allow),
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
}
