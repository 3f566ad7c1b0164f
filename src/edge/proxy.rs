//! Site traffic. `/__edgekeeper/*` is the worker's own assets (tracker, dashboard); every other path
//! is the origin's, fetched without `cf` cache options (the zone cache follows the origin's own
//! headers, so nothing the origin marks personal is stored there on our say-so). The policy
//! decides the class on the response; public classes are kept in the Workers Cache API
//! (`caches.default`) with their canonical headers and later answered from it, fresh, stale while
//! a refresh runs, or stale when the origin fails. Bodies stream through untouched (a stored copy
//! is a tee of the same stream). On a Cloudflare route `fetch(request)` reaches the zone's origin;
//! locally `ORIGIN_URL` names it. A bad edgekeeper setting never takes the site down: traffic then
//! passes untouched.

use std::cell::RefCell;

use worker::web_sys;
use worker::{Cache, Context, Env, Fetch, Method as WMethod, Request, Response};

use super::{headers_of, isolate, to_response, EnvVars, WorkerOutbound};
use crate::cache_policy::stored::{not_modified, url_origin, Age};
use crate::cache_policy::{CacheOutcome, Policy, RequestFacts, ResponseFacts, StoredMeta, DEFAULT_EXPLAIN_HEADER};
use crate::config::Config;
use crate::error::AppError;
use crate::http::Outbound;
use crate::request::split_url;

fn is_local(host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
}

pub fn request_facts(req: &Request, policy: &Policy) -> RequestFacts {
    let h = req.headers();
    let get = |n: &str| h.get(n).ok().flatten();
    RequestFacts {
        method: req.method().to_string(),
        path: split_url(&req.inner().url()).path,
        authorization: get("authorization").is_some(),
        session_cookie: get("cookie").is_some_and(|c| policy.has_session_cookie(&c)),
        accepts_html: get("accept").is_some_and(|a| a.contains("text/html")),
        range: get("range").is_some(),
    }
}

/// The same status and (streamed) body with other headers (a fetched response's are immutable).
fn with_headers(resp: Response, pairs: &[(String, String)]) -> worker::Result<Response> {
    let (builder, body) = resp.into_parts();
    Ok(builder.with_headers(headers_of(pairs)?).body(body))
}

/// The policy's headers on an origin or asset response; with a cache `key`, a copy to store when
/// the response may be kept (the client's body and the copy's are one tee'd stream).
fn answer(policy: &Policy, facts: &RequestFacts, mut resp: Response, key: Result<&str, &'static str>, now_ms: u64) -> worker::Result<(Response, Option<Response>)> {
    let status = resp.status_code();
    let origin: Vec<(String, String)> = resp.headers().entries().collect();
    let rf = ResponseFacts::from_headers(status, &origin);
    let d = policy.decide(facts, &rf);
    isolate().count(d.class.counter(), 1);
    let (copy, outcome) = match key.map(|_| policy.storable(facts, &rf, &d)) {
        Ok(Ok(fresh)) => {
            let meta = StoredMeta { at_ms: now_ms, class: d.class, rule: d.rule.clone() };
            let stored = policy.stored_headers(&policy.rewrite(&origin, &d), &meta, fresh);
            (Some(with_headers(resp.cloned()?, &stored)?), CacheOutcome::Miss)
        }
        Ok(Err(why)) => (None, CacheOutcome::Pass(why)),
        Err(why) => (None, CacheOutcome::Bypass(why)),
    };
    Ok((with_headers(resp, &policy.rewrite_with(&origin, &d, Some(&outcome)))?, copy))
}

/// A stored copy as the client gets it: canonical headers, `Age`, 304 for a matching validator,
/// no body for HEAD.
fn serve(policy: &Policy, req: &Request, copy: Response, meta: &StoredMeta, now_ms: u64, outcome: CacheOutcome) -> worker::Result<Response> {
    let stored: Vec<(String, String)> = copy.headers().entries().collect();
    let headers = policy.served_from_store(&stored, meta, now_ms, &outcome);
    isolate().count(meta.class.counter(), 1);
    isolate().count(if matches!(outcome, CacheOutcome::Hit) { "worker_cache_hit" } else { "worker_cache_stale" }, 1);
    let h = req.headers();
    let find = |name: &str| stored.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    if not_modified(h.get("if-none-match").ok().flatten().as_deref(), h.get("if-modified-since").ok().flatten().as_deref(), find("etag"), find("last-modified")) {
        let kept: Vec<(String, String)> = headers.into_iter().filter(|(k, _)| !k.eq_ignore_ascii_case("content-length")).collect();
        return Ok(Response::builder().with_status(304).with_headers(headers_of(&kept)?).empty());
    }
    let resp = with_headers(copy, &headers)?;
    if req.method() == WMethod::Head {
        let (builder, _) = resp.into_parts();
        return Ok(builder.empty());
    }
    Ok(resp)
}

/// The origin request: same method (or GET for a refresh), headers but Host (and, for a refresh,
/// the client's validators: the copy needs a full body), streamed body, redirects handed back to
/// the browser. No `cf` options.
fn origin_request(req: &Request, url: &str, refresh: bool) -> worker::Result<Request> {
    let headers = web_sys::Headers::new()?;
    for (k, v) in req.headers().entries() {
        let validator = matches!(k.to_ascii_lowercase().as_str(), "if-none-match" | "if-modified-since" | "range");
        if !k.eq_ignore_ascii_case("host") && !(refresh && validator) {
            headers.append(&k, &v)?;
        }
    }
    let init = web_sys::RequestInit::new();
    let method = req.method();
    init.set_method(if refresh { "GET" } else { method.as_ref() });
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if !refresh && !matches!(req.method(), WMethod::Get | WMethod::Head) {
        if let Some(body) = req.inner().body() {
            init.set_body(&body);
        }
    }
    Ok(Request::from(web_sys::Request::new_with_str_and_init(url, &init)?))
}

fn not_found(path: &str, head: bool) -> worker::Result<Response> {
    to_response(AppError::NotFound(path.chars().take(200).collect()).into_reply(), head)
}

/// `/__edgekeeper/*`: the worker's own files, with the policy's headers; never the origin.
pub async fn assets(req: Request, env: &Env) -> worker::Result<Response> {
    let head = req.method() == WMethod::Head;
    let path = split_url(&req.inner().url()).path;
    let Ok(assets) = env.assets("ASSETS") else { return not_found(&path, head) };
    let resp = assets.fetch_request(req.clone()?).await?;
    if resp.status_code() == 404 {
        return not_found(&path, head);
    }
    let cfg = super::config(env);
    match (*cfg).as_ref().ok().map(|c| &c.cache).filter(|p| p.enabled) {
        Some(p) => Ok(answer(p, &request_facts(&req, p), resp, Err("worker-asset"), 0)?.0),
        None => Ok(resp),
    }
}

/// Keys being refreshed by this isolate, and since when: one refresh per stale copy at a time. A
/// handful at once at most, so a list (a map type would add its own code to the module).
fn refreshing() -> &'static RefCell<Vec<(String, u64)>> {
    thread_local! {
        static R: &'static RefCell<Vec<(String, u64)>> = Box::leak(Box::default());
    }
    R.with(|r| *r)
}

/// The stored copy for `key` (which starts with `origin`), unless a purge record of `site` covers it.
async fn lookup(cfg: &Config, key: &str, site: &str, origin: &str) -> Option<(Response, StoredMeta)> {
    let copy = Cache::default().get(key, false).await.ok().flatten()?;
    let meta = copy.headers().get(crate::cache_policy::stored::STORED_HEADER).ok().flatten().and_then(|v| StoredMeta::parse(&v))?;
    let purges = crate::cache_purge::current(cfg, &WorkerOutbound, isolate(), site).await;
    // Treated as absent; the next miss's put replaces it (no delete: one Cache API call less).
    if purges.covers(&key[origin.len()..], meta.at_ms) {
        return None;
    }
    Some((copy, meta))
}

/// The copy the worker's cache holds for the URL `/admin/cache/explain` asks about (purges applied).
pub async fn stored_for_explain(cfg: &Config, req: &crate::request::Incoming) -> Option<StoredMeta> {
    let t = crate::admin::explain_target(req, cfg).ok()?;
    let origin = url_origin(&t.key);
    let host = split_url(&t.key).host;
    lookup(cfg, &t.key, &host, &origin).await.map(|(_, meta)| meta)
}

async fn fetch_origin(req: Request) -> worker::Result<Response> {
    Fetch::Request(req).send().await
}

async fn put(key: String, copy: Response) {
    if Cache::default().put(key.as_str(), copy).await.is_err() {
        isolate().count("worker_cache_put_failed", 1);
    }
}

/// The policy as it applies to one site request (absent: no valid policy, invalid configuration or
/// `CACHE_POLICY=off`, and headers pass untouched): the request's facts and the worker-cache key it
/// is looked up under, or why it is not looked up.
struct Applied<'a> {
    cfg: &'a Config,
    facts: RequestFacts,
    key: Result<String, &'static str>,
}

/// One boxed type for every background task, so `wait_until` is instantiated once.
type Background = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
/// An origin fetch not started yet.
type OriginFetch = std::pin::Pin<Box<dyn std::future::Future<Output = worker::Result<Response>>>>;

/// Refreshes a stale copy in the background (at most one refresh per key per isolate at a time).
/// The task re-reads the configuration from `env` (cheap) rather than cloning the policy: a clone
/// of the rules would add its own code to the module for this one use.
fn refresh(env: &Env, facts: &RequestFacts, key: &str, pending: OriginFetch, now: u64) -> Option<Background> {
    let mut running = refreshing().borrow_mut();
    // A refresh that never finished (the isolate was evicted mid-way) stops blocking after 30 s.
    running.retain(|(_, at)| now.saturating_sub(*at) <= 30_000);
    if running.iter().any(|(k, _)| k == key) || running.len() >= 64 {
        return None;
    }
    running.push((key.to_string(), now));
    drop(running);
    let (env, facts, key) = (env.clone(), RequestFacts { method: "GET".into(), ..facts.clone() }, key.to_string());
    Some(Box::pin(async move {
        if let (Ok(resp), Ok(cfg)) = (pending.await, super::config(&env).as_ref()) {
            if let Ok((_, Some(copy))) = answer(&cfg.cache, &facts, resp, Ok(&key), WorkerOutbound.now_ms() as u64) {
                put(key.clone(), copy).await;
            }
        }
        refreshing().borrow_mut().retain(|(k, _)| *k != key);
    }))
}

pub async fn site(req: Request, env: &Env, ctx: &Context) -> worker::Result<Response> {
    let parsed = super::config(env);
    let cfg = &*parsed;
    let head = req.method() == WMethod::Head;
    let raw_url = req.inner().url();
    let url = split_url(&raw_url);
    let origin = match &cfg {
        Ok(c) => c.origin_url.clone(),
        Err(_) => crate::config::origin_url_only(&EnvVars(env)),
    };
    let target = match origin {
        Some(base) => format!("{base}{}{}", url.path, url.query.as_ref().map(|q| format!("?{q}")).unwrap_or_default()),
        None if is_local(&url.host) => return to_response(AppError::NoOrigin.into_reply(), head),
        None => raw_url.clone(),
    };
    let now = WorkerOutbound.now_ms() as u64;
    let site_origin = url_origin(&raw_url);
    let applied = cfg.as_ref().ok().filter(|c| c.cache.enabled).map(|c| {
        let facts = request_facts(&req, &c.cache);
        let key = match c.cache.cache_bypass(&facts) {
            Some(why) => Err(why),
            None => Ok(c.cache.cache_key(&site_origin, &url.path, url.query.as_deref())),
        };
        Applied { cfg: c, facts, key }
    });

    let mut stale_if_error = None;
    if let Some(Applied { cfg: c, facts, key: Ok(key) }) = &applied {
        let policy = &c.cache;
        if let Some((copy, meta)) = lookup(c, key, &url.host, &site_origin).await {
            match policy.freshness(meta.class).map(|f| f.state(meta.age_secs(now))) {
                Some(Age::Fresh) => return serve(policy, &req, copy, &meta, now, CacheOutcome::Hit),
                Some(Age::Stale) => {
                    let pending: OriginFetch = Box::pin(fetch_origin(origin_request(&req, &target, true)?));
                    if let Some(task) = refresh(env, facts, key, pending, now) {
                        ctx.wait_until(task);
                    }
                    return serve(policy, &req, copy, &meta, now, CacheOutcome::Stale);
                }
                Some(Age::StaleIfError) => stale_if_error = Some((copy, meta)),
                _ => {}
            }
        }
    }

    // The one origin fetch of the request.
    let fetched = fetch_origin(origin_request(&req, &target, false)?).await;
    if let (Some((copy, meta)), Some(a)) = (stale_if_error, &applied) {
        if fetched.as_ref().map_or(true, |r| r.status_code() >= 500) {
            isolate().count("worker_cache_stale_if_error", 1);
            return serve(&a.cfg.cache, &req, copy, &meta, now, CacheOutcome::StaleIfError);
        }
    }
    let resp = match fetched {
        Ok(r) => r,
        Err(e) => return to_response(AppError::Unavailable { code: "origin_unreachable", message: format!("origin: {e}"), retry_after_secs: 5 }.into_reply(), head),
    };
    let Some(a) = &applied else {
        // Invalid configuration: untouched, but say why nothing was applied.
        if cfg.is_err() {
            let mut pairs: Vec<(String, String)> = resp.headers().entries().collect();
            pairs.push((DEFAULT_EXPLAIN_HEADER.into(), "bypass; reason=config-invalid".into()));
            return with_headers(resp, &pairs);
        }
        return Ok(resp);
    };
    let key = a.key.as_deref().map_err(|why| *why);
    let (served, copy) = answer(&a.cfg.cache, &a.facts, resp, key, now)?;
    if let (Some(copy), Ok(key)) = (copy, key) {
        isolate().count("worker_cache_miss_stored", 1);
        let task: Background = Box::pin(put(key.to_string(), copy));
        ctx.wait_until(task);
    }
    Ok(served)
}
