//! Site traffic: the site's static assets first (GET/HEAD), then the origin, with the cache policy
//! applied to both. The policy's class for the request goes on the origin fetch as `cf` options (what
//! the zone cache stores); the class for the response decides the headers. Bodies stream through
//! untouched. On a Cloudflare route `fetch(request)` reaches the zone's origin; locally `ORIGIN_URL`
//! names it. A bad edgekeeper setting never takes the site down: traffic then passes untouched.

use wasm_bindgen::JsValue;
use worker::web_sys;
use worker::{Env, Fetch, Headers, Method as WMethod, Request, Response};

use super::{to_response, EnvVars};
use crate::cache_policy::{cf_for, Policy, RequestFacts, ResponseFacts, DEFAULT_EXPLAIN_HEADER};
use crate::config::Config;
use crate::error::AppError;
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
    }
}

/// Rebuilds the response with the policy's headers around the same (streamed) body.
fn apply(policy: &Policy, facts: &RequestFacts, resp: Response) -> worker::Result<Response> {
    let status = resp.status_code();
    let origin: Vec<(String, String)> = resp.headers().entries().collect();
    let decision = policy.decide(facts, &ResponseFacts::from_headers(status, &origin));
    super::isolate().count(decision.class.counter(), 1);
    let headers = Headers::new();
    for (k, v) in policy.rewrite(&origin, &decision) {
        headers.append(&k, &v)?;
    }
    let (builder, body) = resp.into_parts();
    Ok(builder.with_headers(headers).body(body))
}

/// The origin request: same method, headers (but Host) and streamed body, redirects handed back to
/// the browser, and the zone-cache options of the class decided before the response.
fn origin_request(req: &Request, url: &str, cf: Option<&crate::cache_policy::CfCache>) -> worker::Result<Request> {
    let headers = web_sys::Headers::new()?;
    for (k, v) in req.headers().entries() {
        if !k.eq_ignore_ascii_case("host") {
            headers.append(&k, &v)?;
        }
    }
    let init = web_sys::RequestInit::new();
    init.set_method(req.method().as_ref());
    init.set_headers(&headers);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    if !matches!(req.method(), WMethod::Get | WMethod::Head) {
        if let Some(body) = req.inner().body() {
            init.set_body(&body);
        }
    }
    if let Some(cf) = cf.filter(|c| **c != Default::default()) {
        // Only the options we decide (workers-rs' CfProperties would also send cacheTtl: 0 etc.).
        let obj = js_sys::JSON::parse(&serde_json::to_string(cf).unwrap_or_else(|_| "{}".into()))?;
        js_sys::Reflect::set(&init, &JsValue::from_str("cf"), &obj)?;
    }
    Ok(Request::from(web_sys::Request::new_with_str_and_init(url, &init)?))
}

pub async fn site(req: Request, env: &Env) -> worker::Result<Response> {
    let cfg = Config::from_source(&EnvVars(env));
    let policy = cfg.as_ref().ok().map(|c| &c.cache).filter(|p| p.enabled);
    let facts = policy.map(|p| request_facts(&req, p));
    let method = req.method();
    let raw_url = req.inner().url();
    let url = split_url(&raw_url);

    if matches!(method, WMethod::Get | WMethod::Head) {
        if let Ok(assets) = env.assets("ASSETS") {
            let resp = assets.fetch_request(req.clone()?).await?;
            if resp.status_code() != 404 {
                return match (policy, &facts) {
                    (Some(p), Some(f)) => apply(p, f, resp),
                    _ => Ok(resp),
                };
            }
        }
    }

    let origin = match &cfg {
        Ok(c) => c.origin_url.clone(),
        Err(_) => crate::config::origin_url_only(&EnvVars(env)),
    };
    let target = match origin {
        Some(base) => format!("{base}{}{}", url.path, url.query.map(|q| format!("?{q}")).unwrap_or_default()),
        None if is_local(&url.host) => return to_response(AppError::NoOrigin.into_reply(), method == WMethod::Head),
        None => raw_url,
    };
    let before = match (policy, &facts) {
        (Some(p), Some(f)) => p.before(f),
        _ => None,
    };
    let cf = cf_for(before.map(|d| d.class));
    let resp = Fetch::Request(origin_request(&req, &target, policy.map(|_| &cf))?).send().await?;
    match (policy, &facts, &cfg) {
        (Some(p), Some(f), _) => apply(p, f, resp),
        // Invalid configuration: untouched, but say why nothing was applied.
        (None, _, Err(_)) => {
            // A fetched response's headers are immutable: rebuild them around the same body.
            let headers = Headers::new();
            for (k, v) in resp.headers().entries() {
                headers.append(&k, &v)?;
            }
            headers.set(DEFAULT_EXPLAIN_HEADER, "bypass; reason=config-invalid")?;
            let (builder, body) = resp.into_parts();
            Ok(builder.with_headers(headers).body(body))
        }
        _ => Ok(resp),
    }
}
