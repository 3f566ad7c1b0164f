//! The one cache policy in front of the origin. For every site response it decides a class, once,
//! with the response in hand, and that decision drives both what the worker's own cache stores
//! (`stored`) and the headers browsers and downstream CDNs obey: upstream cache headers are
//! replaced, never merged, and every response says which rule made it what it is and how the
//! cache took part. Nothing is decided from the request alone for the zone cache: the origin
//! fetch carries no `cf` cache options, so the zone cache follows the origin's own headers. Safety
//! rules come first, whatever the other rules say: a credentialed request, a response setting a
//! cookie, varying on cookies or marked private/no-store by the origin is private; a 5xx is never
//! cached.

pub mod classes;
pub mod regex;
pub mod rules;
pub mod stored;

use serde_json::{json, Value};

pub use classes::Class;
pub use stored::{CacheOutcome, Freshness, Purges, StoredMeta};
use rules::{glob, Rule, UserRules};

/// Upstream headers that would compete with the policy: removed from every site response.
pub const REPLACED: &[&str] =
    &["cache-control", "cdn-cache-control", "cloudflare-cdn-cache-control", "vercel-cdn-cache-control", "surrogate-control", "expires", "pragma"];

const STATIC_EXTENSIONS: &[&str] = &[
    "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "woff", "woff2", "ttf", "otf", "eot", "mp4",
    "webm", "mp3", "ogg", "wav", "pdf", "txt", "xml", "wasm", "zip", "gz",
];

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestFacts {
    pub method: String,
    pub path: String,
    pub authorization: bool,
    /// A cookie named like a session cookie (`CACHE_SESSION_COOKIES`).
    pub session_cookie: bool,
    /// `Accept` includes text/html: a browser navigation.
    pub accepts_html: bool,
    /// A `Range` request: answered by the origin, never from or into the worker's cache.
    pub range: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseFacts {
    pub status: u16,
    /// Media type, lowercase, without parameters.
    pub content_type: String,
    pub set_cookie: bool,
    pub vary: Option<String>,
    /// The origin's own `Cache-Control` says `private` or `no-store`: personal, whatever else.
    pub origin_private: bool,
}

impl ResponseFacts {
    pub fn from_headers(status: u16, headers: &[(String, String)]) -> ResponseFacts {
        let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        ResponseFacts {
            status,
            content_type: get("content-type").map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).unwrap_or_default(),
            set_cookie: headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("set-cookie")),
            vary: get("vary"),
            origin_private: get("cache-control").is_some_and(|cc| {
                cc.split(',').map(|d| d.trim().split('=').next().unwrap_or("").to_ascii_lowercase()).any(|d| d == "private" || d == "no-store")
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub class: Class,
    pub rule: String,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub user: UserRules,
    pub immutable_prefixes: Vec<String>,
    /// Cookie names that mean "this visitor has a session"; a trailing `*` matches a prefix.
    pub session_cookies: Vec<String>,
    /// Name of the explanation header (None: not sent).
    pub explain_header: Option<String>,
    /// `CACHE_POLICY=off`: headers pass through untouched (for comparison and emergencies).
    pub enabled: bool,
    /// `CACHE_STORE=off`: headers only, nothing kept in the worker's cache.
    pub store: bool,
    /// Query parameters left out of the cache key (`CACHE_IGNORE_PARAMS`; `*`: a prefix).
    pub ignored_params: Vec<String>,
    /// HTML's edge windows (`CACHE_HTML_TTL`, `CACHE_HTML_SWR`, `CACHE_HTML_SIE`).
    pub html: Freshness,
}

pub const DEFAULT_SESSION_COOKIES: &str = "session,sessionid,sid,connect.sid,PHPSESSID,JSESSIONID,laravel_session,_session_id,wordpress_logged_in_*";
pub const DEFAULT_IMMUTABLE_PREFIXES: &str = "/_next/static/,/_nuxt/,/_app/immutable/";
pub const DEFAULT_EXPLAIN_HEADER: &str = "x-edgekeeper-cache";

impl Default for Policy {
    fn default() -> Self {
        Policy {
            user: UserRules::default(),
            immutable_prefixes: DEFAULT_IMMUTABLE_PREFIXES.split(',').map(str::to_string).collect(),
            session_cookies: DEFAULT_SESSION_COOKIES.split(',').map(str::to_string).collect(),
            explain_header: Some(DEFAULT_EXPLAIN_HEADER.into()),
            enabled: true,
            store: true,
            ignored_params: stored::DEFAULT_IGNORED_PARAMS.split(',').map(str::to_string).collect(),
            html: stored::DEFAULT_HTML,
        }
    }
}

/// A file name carrying a content hash: a `.`/`-`-separated part of 8+ letters/digits that is all
/// hex, or mixes letters and digits (`app.3f9a1c2b.js`, `index-BfR1q7cZ.js`, `chunk-ABCD1234.css`).
pub fn is_fingerprinted(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let Some((stem, _ext)) = name.rsplit_once('.') else { return false };
    stem.split(['.', '-', '_']).any(|part| {
        part.len() >= 8
            && part.len() <= 64
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
            && (part.bytes().all(|b| b.is_ascii_hexdigit()) && part.bytes().any(|b| b.is_ascii_digit())
                || (part.bytes().any(|b| b.is_ascii_digit()) && part.bytes().any(|b| b.is_ascii_alphabetic())))
    })
}

fn extension(path: &str) -> Option<String> {
    let name = path.rsplit('/').next()?;
    name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
}

impl Policy {
    /// Does this cookie header carry a session cookie?
    pub fn has_session_cookie(&self, cookie_header: &str) -> bool {
        cookie_header.split(';').filter_map(|c| c.split_once('=')).map(|(k, _)| k.trim()).any(|name| {
            self.session_cookies.iter().any(|s| match s.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name.eq_ignore_ascii_case(s),
            })
        })
    }

    fn user_rule(&self, req: &RequestFacts, resp: Option<&ResponseFacts>) -> Option<&Rule> {
        self.user.rules.iter().find(|r| r.matcher.matches(req, resp))
    }

    fn by_path(&self, req: &RequestFacts) -> Option<Decision> {
        let d = |class, rule: &str| Some(Decision { class, rule: rule.to_string() });
        if self.immutable_prefixes.iter().any(|p| !p.is_empty() && req.path.starts_with(p.as_str())) {
            return d(Class::Immutable, "builtin:immutable-prefix");
        }
        if is_fingerprinted(&req.path) {
            return d(Class::Immutable, "builtin:fingerprint");
        }
        if extension(&req.path).is_some_and(|e| STATIC_EXTENSIONS.contains(&e.as_str())) {
            return d(Class::Static, "builtin:static-extension");
        }
        if glob("/api/**", &req.path) || req.path == "/api" {
            return d(Class::Api, "builtin:api-path");
        }
        None
    }

    fn safety_request(req: &RequestFacts) -> Option<Decision> {
        let d = |class, rule: &str| Some(Decision { class, rule: rule.to_string() });
        if req.authorization {
            return d(Class::Private, "builtin:authorization");
        }
        if req.session_cookie {
            return d(Class::Private, "builtin:session-cookie");
        }
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return d(Class::Api, "builtin:unsafe-method");
        }
        None
    }

    /// Before the origin answers: the class the request alone implies (None: undecided). Used only to
    /// skip the worker's cache for requests that can never be public; nothing is stored on it.
    pub fn before(&self, req: &RequestFacts) -> Option<Decision> {
        if let Some(d) = Self::safety_request(req) {
            return Some(d);
        }
        if let Some(r) = self.user.rules.iter().find(|r| r.matcher.request_only() && r.matcher.matches(req, None)) {
            return Some(Decision { class: r.class, rule: r.id.clone() });
        }
        if self.user.replace {
            return None;
        }
        self.by_path(req).or_else(|| req.accepts_html.then(|| Decision { class: Class::Html, rule: "builtin:navigation".into() }))
    }

    /// With the response in hand: the class whose headers leave the edge.
    pub fn decide(&self, req: &RequestFacts, resp: &ResponseFacts) -> Decision {
        let d = |class, rule: &str| Decision { class, rule: rule.to_string() };
        if let Some(x) = Self::safety_request(req) {
            return x;
        }
        if resp.set_cookie {
            return d(Class::Private, "builtin:set-cookie");
        }
        if resp.vary.as_deref().is_some_and(|v| v.split(',').any(|f| matches!(f.trim().to_ascii_lowercase().as_str(), "*" | "cookie" | "authorization"))) {
            return d(Class::Private, "builtin:vary");
        }
        if resp.origin_private {
            return d(Class::Private, "builtin:origin-private");
        }
        if resp.status >= 500 {
            return d(Class::Error, "builtin:server-error");
        }
        if matches!(resp.status, 404 | 410) {
            return d(Class::NotFound, "builtin:not-found");
        }
        if let Some(r) = self.user_rule(req, Some(resp)) {
            return Decision { class: r.class, rule: r.id.clone() };
        }
        if self.user.replace {
            return d(Class::Html, "builtin:default");
        }
        if let Some(x) = self.by_path(req) {
            return x;
        }
        let ct = resp.content_type.as_str();
        if ct == "application/json" || ct.ends_with("+json") {
            return d(Class::Api, "builtin:json");
        }
        if ["image/", "font/", "video/", "audio/", "text/css", "application/javascript", "text/javascript", "application/wasm"].iter().any(|p| ct.starts_with(p)) {
            return d(Class::Static, "builtin:media-type");
        }
        if ct == "text/html" {
            return d(Class::Html, "builtin:html");
        }
        d(Class::Html, "builtin:default")
    }

    /// The response headers after the policy: upstream cache headers replaced, the class's set, the
    /// explanation added; everything else (ETag, Last-Modified, Vary, Set-Cookie...) untouched.
    pub fn rewrite(&self, origin: &[(String, String)], d: &Decision) -> Vec<(String, String)> {
        self.rewrite_with(origin, d, None)
    }

    /// [`Policy::rewrite`], with how the worker's cache took part added to the explanation.
    pub fn rewrite_with(&self, origin: &[(String, String)], d: &Decision, outcome: Option<&CacheOutcome>) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = origin
            .iter()
            .filter(|(k, _)| !REPLACED.iter().any(|r| k.eq_ignore_ascii_case(r)))
            .filter(|(k, _)| self.explain_header.as_deref().is_none_or(|h| !k.eq_ignore_ascii_case(h)))
            .cloned()
            .collect();
        out.push(("cache-control".into(), d.class.browser().into()));
        let cdn = self.cdn(d.class);
        out.push(("cdn-cache-control".into(), cdn.to_string()));
        out.push(("cloudflare-cdn-cache-control".into(), cdn.into_owned()));
        if let Some(h) = &self.explain_header {
            let how = outcome.map(|o| format!("; {}", o.label())).unwrap_or_default();
            out.push((h.clone(), format!("{}; rule={}{how}", d.class.as_str(), d.rule)));
        }
        out
    }

    /// Everything about one response's headers an operator may ask: what the origin said, what was
    /// decided and by which rule, what was set, every conflict, and what the worker's cache does
    /// with this URL (`stored`: the copy it holds now, if any) — a predicted hit, stale, miss or
    /// bypass, and why.
    pub fn explain(&self, req: &RequestFacts, status: u16, origin: &[(String, String)], key: &str, stored: Option<&StoredMeta>, now_ms: u64) -> Value {
        let resp = ResponseFacts::from_headers(status, origin);
        let decision = self.decide(req, &resp);
        let set = self.rewrite(origin, &decision);
        let mut conflicts = Vec::new();
        for (k, v) in origin.iter().filter(|(k, _)| REPLACED.iter().any(|r| k.eq_ignore_ascii_case(r))) {
            let ours = set.iter().find(|(s, _)| s.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str());
            if ours != Some(v.as_str()) {
                conflicts.push(match ours {
                    Some(o) => format!("origin sent {k}: {v}; replaced by {o}"),
                    None => format!("origin sent {k}: {v}; removed"),
                });
            }
        }
        if resp.set_cookie && decision.rule == "builtin:set-cookie" {
            let without = self.decide(req, &ResponseFacts { set_cookie: false, ..resp.clone() });
            if without.class.is_public() {
                conflicts.push(format!("Set-Cookie made a {} response private (rule {} would have made it public)", without.class.as_str(), without.rule));
            }
        }
        if decision.rule == "builtin:vary" {
            conflicts.push(format!("Vary: {} cannot be cached by a shared cache: made private", resp.vary.clone().unwrap_or_default()));
        }
        let cache_headers = |hs: &[(String, String)]| -> Value {
            let m: serde_json::Map<String, Value> = hs
                .iter()
                .filter(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    REPLACED.contains(&k.as_str()) || matches!(k.as_str(), "etag" | "last-modified" | "vary" | "content-type" | "age")
                        || self.explain_header.as_deref() == Some(k.as_str())
                })
                .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
                .collect();
            Value::Object(m)
        };
        let worker_cache = self.predict(req, &resp, &decision, stored, now_ms);
        json!({
            "status": status,
            "origin": { "headers": cache_headers(origin), "set_cookie": resp.set_cookie },
            "decision": { "class": decision.class.as_str(), "rule": decision.rule },
            "set": cache_headers(&set),
            "zone_cache": { "forced": false, "why": "no cf options: the origin's headers and your Cache Rules decide" },
            "worker_cache": {
                "key": key,
                "prediction": worker_cache.0,
                "why": worker_cache.1,
                "stored": stored.map(|m| json!({ "age": m.age_secs(now_ms), "class": m.class.as_str() })),
                "fresh_for": self.freshness(decision.class).map(|f| f.ttl),
            },
            "conflicts": conflicts,
        })
    }

    /// What the next request for this URL would get from the worker's cache, and why.
    fn predict(&self, req: &RequestFacts, resp: &ResponseFacts, d: &Decision, stored: Option<&StoredMeta>, now_ms: u64) -> (&'static str, &'static str) {
        if let Some(why) = self.cache_bypass(req) {
            return ("bypass", why);
        }
        let state = stored.and_then(|m| self.freshness(m.class).map(|f| f.state(m.age_secs(now_ms))));
        match state {
            Some(stored::Age::Fresh) => ("hit", "a fresh copy is stored"),
            Some(stored::Age::Stale) => ("stale", "served stale while refreshed"),
            Some(stored::Age::StaleIfError) => ("miss", "the stored copy serves only if the origin fails"),
            _ => match self.storable(req, resp, d) {
                Ok(_) => ("miss", "not stored yet; this response would be"),
                Err(why) => ("pass", why),
            },
        }
    }
}

#[cfg(test)]
mod tests;
