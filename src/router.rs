//! Paths to handlers. The worker owns a few prefixes (`/health`, `/collect`, `/admin`); anything
//! else belongs to the site behind it and is passed through (assets, then the origin).

use crate::config::{Config, ConfigError};
use crate::error::AppError;
use crate::health;
use crate::http::{Outbound, Reply};

/// Prefixes that belong to the worker: unknown paths under them get a JSON 404, never the origin.
pub const OWN_PREFIXES: &[&str] = &["/health", "/collect", "/admin", "/__edgekeeper"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    /// A worker path that does not exist (or a method it does not take).
    Own(AppErrorKind),
    /// Not ours: the site's assets or origin.
    Site,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppErrorKind {
    NotFound,
    MethodNotAllowed(&'static str),
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

pub fn route(method: &str, path: &str) -> Route {
    let is_read = matches!(method, "GET" | "HEAD");
    match path {
        "/health" if is_read => Route::Health,
        "/health" => Route::Own(AppErrorKind::MethodNotAllowed("GET, HEAD")),
        _ if OWN_PREFIXES.iter().any(|p| under(path, p)) => Route::Own(AppErrorKind::NotFound),
        _ => Route::Site,
    }
}

/// Runs a worker-owned route. `cfg` is the per-request parse of the environment.
pub async fn handle<O: Outbound>(route: &Route, path: &str, cfg: &Result<Config, Vec<ConfigError>>, out: &O) -> Reply {
    let result: Result<Reply, AppError> = match route {
        Route::Health => Ok(health::report(cfg, out).await),
        Route::Own(AppErrorKind::NotFound) => Err(AppError::NotFound(path.chars().take(200).collect())),
        Route::Own(AppErrorKind::MethodNotAllowed(allow)) => Err(AppError::MethodNotAllowed { allow }),
        Route::Site => Err(AppError::NotFound(path.chars().take(200).collect())),
    };
    result.unwrap_or_else(AppError::into_reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("GET", "/health"), Route::Health);
        assert_eq!(route("HEAD", "/health"), Route::Health);
        assert_eq!(route("POST", "/health"), Route::Own(AppErrorKind::MethodNotAllowed("GET, HEAD")));
        assert_eq!(route("GET", "/admin/nope"), Route::Own(AppErrorKind::NotFound));
        assert_eq!(route("GET", "/collect/x"), Route::Own(AppErrorKind::NotFound));
        assert_eq!(route("GET", "/healthz"), Route::Site);
        assert_eq!(route("GET", "/administrator"), Route::Site);
        assert_eq!(route("GET", "/"), Route::Site);
        assert_eq!(route("GET", "/index.html"), Route::Site);
    }
}
