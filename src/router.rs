//! Paths to handlers. The worker owns a few prefixes (`/health`, `/collect`, `/admin`); anything
//! else belongs to the site behind it and is passed through (assets, then the origin).

use std::future::Future;
use std::pin::Pin;

use crate::admin;
use crate::config::{Config, ConfigError};
use crate::events::collect;
use crate::events::outbox::EventSink;
use crate::error::AppError;
use crate::health;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::Isolate;

/// Prefixes that belong to the worker: unknown paths under them get a JSON 404, never the origin.
pub const OWN_PREFIXES: &[&str] = &["/health", "/collect", "/admin", ASSETS_PREFIX];

/// The worker's own static files (tracker, dashboard), served from its assets and nowhere else;
/// every other path is the site's, so a deployment never shadows a page of the origin.
pub const ASSETS_PREFIX: &str = "/__edgekeeper";

/// Bodies larger than this are refused before parsing on admin routes.
pub const ADMIN_BODY_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Collect,
    CollectPreflight,
    AdminStats,
    AdminPurge,
    AdminDlq,
    AdminDlqReplay,
    AdminCacheExplain,
    AdminCachePurge,
    AdminMatchQuality,
    AdminZarazDiff,
    AdminZarazSync,
    AdminZarazHistory,
    AdminZarazSecrets,
    /// A worker path that does not exist.
    NotFound,
    MethodNotAllowed(&'static str),
    /// `/__edgekeeper/*` read: the worker's own assets.
    Assets,
    /// Not ours: the site's origin.
    Site,
}

impl Route {
    /// How much body the route may read (0: none).
    pub fn body_limit(self, cfg: Option<&Config>) -> usize {
        match self {
            Route::AdminPurge | Route::AdminCachePurge | Route::AdminDlqReplay | Route::AdminZarazSync | Route::AdminZarazSecrets => ADMIN_BODY_LIMIT,
            Route::Collect => cfg.map_or(65_536, |c| c.collect.max_bytes),
            _ => 0,
        }
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'))
}

/// A worker path, the `Allow` it advertises, and its route per method.
type PathRoutes = (&'static str, &'static str, &'static [(&'static str, Route)]);

const TABLE: &[PathRoutes] = &[
    ("/health", "GET, HEAD", &[("GET", Route::Health), ("HEAD", Route::Health)]),
    ("/collect", "POST, OPTIONS", &[("POST", Route::Collect), ("OPTIONS", Route::CollectPreflight)]),
    ("/admin/stats", "GET", &[("GET", Route::AdminStats)]),
    ("/admin/store/purge", "POST", &[("POST", Route::AdminPurge)]),
    ("/admin/dlq", "GET", &[("GET", Route::AdminDlq)]),
    ("/admin/dlq/replay", "POST", &[("POST", Route::AdminDlqReplay)]),
    ("/admin/cache/explain", "GET", &[("GET", Route::AdminCacheExplain)]),
    ("/admin/cache/purge", "POST", &[("POST", Route::AdminCachePurge)]),
    ("/admin/match-quality", "GET", &[("GET", Route::AdminMatchQuality)]),
    ("/admin/zaraz/diff", "GET", &[("GET", Route::AdminZarazDiff)]),
    ("/admin/zaraz/sync", "POST", &[("POST", Route::AdminZarazSync)]),
    ("/admin/zaraz/history", "GET", &[("GET", Route::AdminZarazHistory)]),
    ("/admin/zaraz/secret-handling", "POST", &[("POST", Route::AdminZarazSecrets)]),
];

pub fn route(method: &str, path: &str) -> Route {
    if let Some((_, allow, methods)) = TABLE.iter().find(|(p, _, _)| *p == path) {
        return methods.iter().find(|(m, _)| *m == method).map_or(Route::MethodNotAllowed(allow), |(_, r)| *r);
    }
    if under(path, ASSETS_PREFIX) && matches!(method, "GET" | "HEAD") {
        return Route::Assets;
    }
    if OWN_PREFIXES.iter().any(|p| under(path, p)) {
        Route::NotFound
    } else {
        Route::Site
    }
}

/// What a handler may use: the parsed configuration, outbound I/O, the isolate's state, the queue.
pub struct Ctx<'a, O: Outbound, S: EventSink> {
    pub cfg: &'a Result<Config, Vec<ConfigError>>,
    pub out: &'a O,
    pub iso: &'a Isolate,
    pub sink: &'a S,
    /// For `/admin/cache/explain`: the copy the worker's cache holds for the URL asked about.
    pub stored: Option<crate::cache_policy::StoredMeta>,
}

impl<O: Outbound, S: EventSink> Ctx<'_, O, S> {
    fn config(&self) -> Result<&Config, AppError> {
        self.cfg.as_ref().map_err(|e| AppError::ConfigInvalid(e.clone()))
    }
}

type Handled<'a> = Pin<Box<dyn Future<Output = Result<Reply, AppError>> + 'a>>;

/// The routes that need a valid configuration. Each handler is its own boxed future: one small
/// state machine per route instead of all of them inlined into the fetch handler's (which made the
/// module markedly larger).
fn dispatch<'a, O: Outbound, S: EventSink>(route: Route, req: &'a Incoming, cfg: &'a Config, ctx: &'a Ctx<'a, O, S>) -> Handled<'a> {
    let (out, iso) = (ctx.out, ctx.iso);
    match route {
        Route::Collect => Box::pin(collect::collect(req, cfg, out, iso, ctx.sink)),
        Route::CollectPreflight => Box::pin(async move { collect::preflight(req, cfg) }),
        Route::AdminStats => Box::pin(admin::stats(req, cfg, out, iso)),
        Route::AdminDlq => Box::pin(admin::dlq_list(req, cfg, out, iso)),
        Route::AdminDlqReplay => Box::pin(admin::dlq_replay(req, cfg, out, iso, ctx.sink)),
        Route::AdminPurge => Box::pin(admin::purge(req, cfg, out, iso)),
        Route::AdminCacheExplain => Box::pin(admin::cache_explain(req, cfg, out, ctx.stored.as_ref())),
        Route::AdminCachePurge => Box::pin(crate::cache_purge::purge(req, cfg, out, iso)),
        Route::AdminMatchQuality => Box::pin(admin::match_quality(req, cfg, out, iso)),
        Route::AdminZarazDiff => Box::pin(admin::zaraz_diff(req, cfg, out)),
        Route::AdminZarazSync => Box::pin(admin::zaraz_sync(req, cfg, out, iso)),
        Route::AdminZarazSecrets => Box::pin(admin::zaraz_secret_handling(req, cfg, out, iso)),
        Route::AdminZarazHistory => Box::pin(admin::zaraz_history(req, cfg, out)),
        Route::Health | Route::MethodNotAllowed(_) | Route::NotFound | Route::Assets | Route::Site => {
            Box::pin(async move { Err(AppError::NotFound(req.path.chars().take(200).collect())) })
        }
    }
}

/// Runs a worker-owned route; every error becomes its JSON reply here, once.
pub async fn handle<O: Outbound, S: EventSink>(route: Route, req: &Incoming, ctx: &Ctx<'_, O, S>) -> Reply {
    let result: Result<Reply, AppError> = match route {
        // Health reports a bad configuration instead of refusing to run.
        Route::Health => Ok(health::report(ctx.cfg, ctx.out, ctx.iso).await),
        Route::MethodNotAllowed(allow) => Err(AppError::MethodNotAllowed { allow }),
        Route::NotFound | Route::Assets | Route::Site => Err(AppError::NotFound(req.path.chars().take(200).collect())),
        _ => match ctx.config() {
            Ok(cfg) => dispatch(route, req, cfg, ctx).await,
            Err(e) => Err(e),
        },
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
        assert_eq!(route("POST", "/collect"), Route::Collect);
        assert_eq!(route("OPTIONS", "/collect"), Route::CollectPreflight);
        assert_eq!(route("GET", "/collect"), Route::MethodNotAllowed("POST, OPTIONS"));
        assert_eq!(route("GET", "/healthz"), Route::Site);
        assert_eq!(route("GET", "/administrator"), Route::Site);
        assert_eq!(route("GET", "/"), Route::Site);
        assert_eq!(route("GET", "/index.html"), Route::Site);
        assert_eq!(route("GET", "/cart"), Route::Site);
        assert_eq!(route("GET", "/__edgekeeper/tracker.js"), Route::Assets);
        assert_eq!(route("HEAD", "/__edgekeeper/dashboard"), Route::Assets);
        assert_eq!(route("POST", "/__edgekeeper/x"), Route::NotFound);
        assert_eq!(route("GET", "/__edgekeeperx"), Route::Site);
        assert_eq!(route("POST", "/admin/cache/purge"), Route::AdminCachePurge);
    }
}
