//! Paths to handlers. The worker owns a few prefixes (`/health`, `/collect`, `/admin`); anything
//! else belongs to the site behind it and is passed through (assets, then the origin).

use crate::admin;
use crate::config::{Config, ConfigError};
use crate::error::AppError;
use crate::health;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::Isolate;

/// Prefixes that belong to the worker: unknown paths under them get a JSON 404, never the origin.
pub const OWN_PREFIXES: &[&str] = &["/health", "/collect", "/admin", "/__edgekeeper"];

/// Bodies larger than this are refused before parsing on admin routes.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    AdminStats,
    AdminPurge,
    /// A worker path that does not exist.
    NotFound,
    MethodNotAllowed(&'static str),
    /// Not ours: the site's assets or origin.
    Site,
}

impl Route {
    /// How much body the route may read (0: none).
    pub fn body_limit(self) -> usize {
        match self {
            Route::AdminPurge => ADMIN_BODY_LIMIT,
            _ => 0,
        }
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// Each worker path with the methods it takes.
const TABLE: &[(&str, &[&str], Route)] = &[
    ("/health", &["GET", "HEAD"], Route::Health),
    ("/admin/stats", &["GET"], Route::AdminStats),
    ("/admin/store/purge", &["POST"], Route::AdminPurge),
];

pub fn route(method: &str, path: &str) -> Route {
    if let Some((_, methods, r)) = TABLE.iter().find(|(p, _, _)| *p == path) {
        return if methods.contains(&method) {
            *r
        } else {
            Route::MethodNotAllowed(match methods.len() {
                2 => "GET, HEAD",
                _ => methods[0],
            })
        };
    }
    if OWN_PREFIXES.iter().any(|p| under(path, p)) {
        Route::NotFound
    } else {
        Route::Site
    }
}

/// What a handler may use: the parsed configuration, outbound I/O, and the isolate's state.
pub struct Ctx<'a, O: Outbound> {
    pub cfg: &'a Result<Config, Vec<ConfigError>>,
    pub out: &'a O,
    pub iso: &'a Isolate,
}

impl<O: Outbound> Ctx<'_, O> {
    fn config(&self) -> Result<&Config, AppError> {
        self.cfg.as_ref().map_err(|e| AppError::ConfigInvalid(e.clone()))
    }
}

/// Runs a worker-owned route; every error becomes its JSON reply here, once.
pub async fn handle<O: Outbound>(route: Route, req: &Incoming, ctx: &Ctx<'_, O>) -> Reply {
    let result: Result<Reply, AppError> = match route {
        Route::Health => Ok(health::report(ctx.cfg, ctx.out, ctx.iso).await),
        Route::AdminStats => match ctx.config() {
            Ok(cfg) => admin::stats(req, cfg, ctx.out, ctx.iso),
            Err(e) => Err(e),
        },
        Route::AdminPurge => match ctx.config() {
            Ok(cfg) => admin::purge(req, cfg, ctx.out, ctx.iso).await,
            Err(e) => Err(e),
        },
        Route::MethodNotAllowed(allow) => Err(AppError::MethodNotAllowed { allow }),
        Route::NotFound | Route::Site => Err(AppError::NotFound(req.path.chars().take(200).collect())),
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
        assert_eq!(route("POST", "/health"), Route::MethodNotAllowed("GET, HEAD"));
        assert_eq!(route("GET", "/admin/stats"), Route::AdminStats);
        assert_eq!(route("DELETE", "/admin/stats"), Route::MethodNotAllowed("GET"));
        assert_eq!(route("POST", "/admin/store/purge"), Route::AdminPurge);
        assert_eq!(route("GET", "/admin/nope"), Route::NotFound);
        assert_eq!(route("GET", "/collect/x"), Route::NotFound);
        assert_eq!(route("GET", "/healthz"), Route::Site);
        assert_eq!(route("GET", "/administrator"), Route::Site);
        assert_eq!(route("GET", "/"), Route::Site);
        assert_eq!(route("GET", "/index.html"), Route::Site);
    }
}
