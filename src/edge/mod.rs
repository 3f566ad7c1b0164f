//! The Workers glue (wasm32 only): entry points, `Env` as a [`VarSource`], the request as plain
//! data, and the wiring of runtime bindings into the pure modules. No decisions are made here.

mod outbound;
mod proxy;
mod queue;

use worker::{console_log, event, Context, Env, Headers, Method as WMethod, Request, Response, ScheduleContext, ScheduledEvent};

use crate::config::{Config, VarSource};
use crate::error::AppError;
use crate::http::Reply;
use crate::request::{split_url, Incoming};
use crate::router::{self, Ctx, Route};
use crate::upstash::Isolate;
pub use outbound::WorkerOutbound;
use queue::QueueSink;

/// The isolate's state lives as long as the isolate; Workers run one request at a time per thread,
/// so a leaked thread-local is the idiomatic home.
fn isolate() -> &'static Isolate {
    thread_local! {
        static ISOLATE: &'static Isolate = Box::leak(Box::default());
    }
    ISOLATE.with(|i| *i)
}

struct EnvVars<'a>(&'a Env);

impl VarSource for EnvVars<'_> {
    fn get(&self, name: &str) -> Option<String> {
        // Vars and secrets are both plain strings at run time. One property read: `Env::var` would
        // also build an error value (a formatted string) for every variable that is not set.
        js_sys::Reflect::get(self.0, &wasm_bindgen::JsValue::from_str(name)).ok().and_then(|v| v.as_string())
    }
}

type Parsed = std::rc::Rc<Result<Config, Vec<crate::config::ConfigError>>>;

/// The configuration, parsed and validated once per isolate rather than per request, keyed by the
/// `env` object itself: workerd hands an isolate's requests the same `env`, and a new deployment or
/// secret is a new isolate with a new one, so an identity check is the cheapest fingerprint there
/// is. A bad setting stays a clear error on every request.
fn config(env: &Env) -> Parsed {
    thread_local! {
        static CACHED: std::cell::RefCell<Option<(Env, Parsed)>> = const { std::cell::RefCell::new(None) };
    }
    CACHED.with(|cell| {
        let mut cached = cell.borrow_mut();
        if let Some((seen_env, parsed)) = cached.as_ref() {
            if js_sys::Object::is(seen_env, env) {
                return parsed.clone();
            }
        }
        let parsed: Parsed = std::rc::Rc::new(Config::from_source(&EnvVars(env)));
        *cached = Some((env.clone(), parsed.clone()));
        isolate().count("config_parsed", 1);
        parsed
    })
}

/// Header pairs as the runtime's `Headers` (repeated names kept, e.g. `Set-Cookie`).
pub(crate) fn headers_of(pairs: &[(String, String)]) -> worker::Result<Headers> {
    let headers = Headers::new();
    for (k, v) in pairs {
        headers.append(k, v)?;
    }
    Ok(headers)
}

pub(crate) fn to_response(reply: Reply, head: bool) -> worker::Result<Response> {
    let headers = headers_of(&reply.headers)?;
    let builder = Response::builder().with_status(reply.status).with_headers(headers);
    Ok(if head { builder.empty() } else { builder.fixed(reply.body) })
}

/// Reads at most `limit` bytes of body: a declared or streamed length over it is refused; a chunked
/// or lying body is never buffered past the limit. A body nobody asked for (limit 0) is read and
/// dropped, never kept.
async fn read_capped(req: &mut Request, limit: usize) -> Result<Vec<u8>, AppError> {
    // No body at all (a GET, HEAD): nothing to read or drain.
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let declared = req.headers().get("content-length").ok().flatten().map(|len| len.parse::<usize>().ok());
    let declared_too_large = declared.is_some_and(|n| n.is_none_or(|n| n > limit));
    // A declared length within the limit: HTTP framing holds the body to it, so one read of the
    // whole body is safe, and cheaper than a stream of chunks across the JS boundary.
    if matches!(declared, Some(Some(_))) && limit > 0 && !declared_too_large {
        let body = req.bytes().await.map_err(|e| AppError::BadRequest { code: "body_unreadable", message: e.to_string() })?;
        return if body.len() > limit { Err(AppError::PayloadTooLarge { limit }) } else { Ok(body) };
    }
    let mut body = Vec::new();
    let mut seen = 0usize;
    let Ok(mut stream) = req.stream() else { return Ok(body) };
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest { code: "body_unreadable", message: e.to_string() })?;
        seen += chunk.len();
        // Too large: read on and discard (never buffered), so the client, still sending, gets the
        // 413 instead of a reset connection; past DRAIN_LIMIT give up and answer anyway.
        if declared_too_large || seen > limit {
            body = Vec::new();
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    // A route that takes no body (limit 0) has now drained whatever came, so the connection stays
    // usable for the client's next request; it just ignores it.
    if limit > 0 && (declared_too_large || seen > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    Ok(body)
}

/// How much of an oversized body is read (and dropped) before answering 413.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// The request as plain data: only the headers a worker route reads (`ROUTE_HEADERS`, one lookup
/// each instead of copying every header across the JS boundary), and the visitor's geolocation only
/// where a route uses it (`geo`: `/collect`, for LDU).
async fn incoming(req: &mut Request, limit: usize, geo: bool) -> Result<Incoming, AppError> {
    let raw_url = req.inner().url();
    let url = split_url(&raw_url);
    let (country, region) = if geo { req.cf().map(|cf| (cf.country(), cf.region_code())).unwrap_or_default() } else { (None, None) };
    let body = read_capped(req, limit).await?;
    let h = req.headers();
    Ok(Incoming {
        method: req.method().to_string(),
        path: url.path,
        query: url.query,
        host: url.host,
        origin: crate::cache_policy::stored::url_origin(&raw_url),
        headers: crate::request::ROUTE_HEADERS.iter().filter_map(|n| h.get(n).ok().flatten().map(|v| (n.to_string(), v))).collect(),
        body,
        secure: raw_url.starts_with("https://"),
        country,
        region,
    })
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    let method = req.method();
    let route = router::route(method.as_ref(), &split_url(&req.inner().url()).path);
    match route {
        Route::Site => return proxy::site(req, &env, &ctx).await,
        Route::Assets => return proxy::assets(req, &env).await,
        _ => {}
    }
    let head = method == WMethod::Head;
    let cfg = config(&env);
    let cfg = &*cfg;
    let reply = match incoming(&mut req, route.body_limit(cfg.as_ref().ok()), route == Route::Collect).await {
        Ok(inc) => {
            let stored = match (cfg, route) {
                (Ok(c), Route::AdminCacheExplain) => proxy::stored_for_explain(c, &inc).await,
                _ => None,
            };
            let ctx = Ctx { cfg, out: &WorkerOutbound, iso: isolate(), sink: &QueueSink(&env), stored };
            router::handle(route, &inc, &ctx).await
        }
        Err(e) => e.into_reply(),
    };
    to_response(reply, head)
}

/// The cron tick: probes the store (an outage shows in logs even without traffic) and, when the
/// Cloudflare API is configured, records Zaraz drift for `/admin/stats` without writing anything.
#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let cfg = Config::from_source(&EnvVars(&env));
    let reply = crate::health::report(&cfg, &WorkerOutbound, isolate()).await;
    let status = reply.body_json()["status"].as_str().unwrap_or("unknown").to_string();
    let drift = match &cfg {
        Ok(c) if c.cloudflare.api_token.is_some() && c.cloudflare.zone_id.is_some() => match crate::admin::record_drift(c, &WorkerOutbound, isolate()).await {
            Ok(d) => d["drift"].to_string(),
            Err(e) => format!("{:?}", e.code()),
        },
        _ => "\"not configured\"".to_string(),
    };
    console_log!("{{\"level\":\"info\",\"msg\":\"cron\",\"cron\":\"{}\",\"health\":\"{}\",\"zaraz_drift\":{}}}", event.cron(), status, drift);
}
