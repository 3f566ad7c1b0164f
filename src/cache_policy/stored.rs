//! What the worker keeps in its own cache (the Workers Cache API, `caches.default`), decided after
//! the origin answered: which requests may be answered from it, the key a page is stored under
//! (click and campaign parameters left out, query order normalised, so ad traffic shares one
//! copy), which responses may be stored, how long a copy is fresh and how long it may be served
//! stale (stale-while-revalidate, stale-if-error: the Cache API supports neither, so the worker
//! does), conditional requests answered from a stored copy, and purge records. Plain data in and
//! out; `edge::proxy` does the I/O.

use super::{Class, Decision, Policy, RequestFacts, ResponseFacts, REPLACED};

/// Query parameters that identify a click or a campaign, never the page (`*`: a prefix).
pub const DEFAULT_IGNORED_PARAMS: &str = "fbclid,gclid,gbraid,wbraid,dclid,msclkid,ttclid,twclid,li_fat_id,igshid,yclid,mc_cid,mc_eid,_gl,utm_*";

/// Carried by a stored copy only (never sent to a client): when it was stored and what it is.
pub const STORED_HEADER: &str = "x-edgekeeper-stored";

/// HTML's windows unless `CACHE_HTML_TTL`/`_SWR`/`_SIE` say otherwise.
pub const DEFAULT_HTML: Freshness = Freshness { ttl: 120, swr: 60, sie: 86_400 };

/// Seconds a stored copy is fresh, then may be served while it is refreshed, then only when the
/// origin fails: the same windows the class's CDN directives give other CDNs (a native test holds
/// the two together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub ttl: u64,
    pub swr: u64,
    pub sie: u64,
}

impl Freshness {
    /// As CDN directives (what `CDN-Cache-Control` says for HTML).
    pub fn directives(self) -> String {
        let mut out = format!("public, max-age={}", self.ttl);
        if self.swr > 0 {
            out.push_str(&format!(", stale-while-revalidate={}", self.swr));
        }
        if self.sie > 0 {
            out.push_str(&format!(", stale-if-error={}", self.sie));
        }
        out
    }

    /// How long the Cache API must keep the copy for the worker to use all of its windows.
    pub fn lifetime(self) -> u64 {
        self.ttl + self.swr.max(self.sie)
    }

    pub fn state(self, age_secs: u64) -> Age {
        if age_secs < self.ttl {
            Age::Fresh
        } else if age_secs < self.ttl + self.swr {
            Age::Stale
        } else if age_secs < self.ttl + self.sie {
            Age::StaleIfError
        } else {
            Age::Expired
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Serve it.
    Fresh,
    /// Serve it, and refresh it in the background.
    Stale,
    /// Ask the origin; serve it only if the origin fails (network error or 5xx).
    StaleIfError,
    /// Unusable.
    Expired,
}

/// What a stored copy says about itself (the `x-edgekeeper-stored` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeta {
    pub at_ms: u64,
    pub class: Class,
    pub rule: String,
}

impl StoredMeta {
    /// `at_ms class rule` (a rule id is letters, digits and `-_:.`: `rules::parse` allows no spaces).
    pub fn encode(&self) -> String {
        format!("{} {} {}", self.at_ms, self.class.as_str(), self.rule)
    }

    pub fn parse(v: &str) -> Option<StoredMeta> {
        let mut parts = v.splitn(3, ' ');
        let at_ms = parts.next()?.parse().ok()?;
        let class = Class::parse(parts.next()?)?;
        let rule = parts.next().filter(|r| !r.is_empty())?.to_string();
        Some(StoredMeta { at_ms, class, rule })
    }

    pub fn age_secs(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.at_ms) / 1000
    }
}

/// How the worker's cache took part in an answer: the last part of the explanation header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    /// Served stale while a refresh runs.
    Stale,
    /// The origin failed; served the stored copy.
    StaleIfError,
    /// Fetched from the origin and stored.
    Miss,
    /// Fetched from the origin, not stored (why).
    Pass(&'static str),
    /// Not looked up at all (why).
    Bypass(&'static str),
}

impl CacheOutcome {
    pub fn label(&self) -> String {
        match self {
            CacheOutcome::Hit => "hit".into(),
            CacheOutcome::Stale => "stale".into(),
            CacheOutcome::StaleIfError => "stale-if-error".into(),
            CacheOutcome::Miss => "miss".into(),
            CacheOutcome::Pass(why) => format!("pass={why}"),
            CacheOutcome::Bypass(why) => format!("bypass={why}"),
        }
    }
}

/// `scheme://host[:port]` of an absolute URL.
pub fn url_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    format!("{scheme}://{}", &rest[..end])
}

fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix),
        None => name.eq_ignore_ascii_case(pattern),
    }
}

impl Policy {
    /// How long the worker keeps a class (None: never). HTML's windows are settings
    /// (`CACHE_HTML_TTL`, `_SWR`, `_SIE`); the other classes' come from their CDN directives.
    pub fn freshness(&self, class: Class) -> Option<Freshness> {
        let f = |ttl, swr| Some(Freshness { ttl, swr, sie: 0 });
        match class {
            Class::Html => Some(self.html),
            Class::Immutable => f(31_536_000, 0),
            Class::Static => f(86_400, 86_400),
            Class::NotFound => f(60, 0),
            Class::Api | Class::Private | Class::Error => None,
        }
    }

    /// What CDNs are told for a class (HTML: from its settings).
    pub fn cdn(&self, class: Class) -> std::borrow::Cow<'static, str> {
        match class {
            Class::Html => self.html.directives().into(),
            _ => class.cdn().into(),
        }
    }

    /// Why this request must not be answered from (or stored in) the worker's cache; None: it may.
    pub fn cache_bypass(&self, req: &RequestFacts) -> Option<&'static str> {
        if !self.store {
            return Some("store-off");
        }
        if !matches!(req.method.as_str(), "GET" | "HEAD") {
            return Some("method");
        }
        if req.authorization {
            return Some("authorization");
        }
        if req.session_cookie {
            return Some("session-cookie");
        }
        if req.range {
            return Some("range");
        }
        match self.before(req) {
            Some(d) if !d.class.is_public() => Some("rule"),
            _ => None,
        }
    }

    /// The query without click/campaign parameters, sorted by name (values of one name keep their
    /// order, which can matter to the origin); None when nothing is left.
    pub fn cache_query(&self, query: Option<&str>) -> Option<String> {
        let mut pairs: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or("");
                !self.ignored_params.iter().any(|i| name_matches(i, name))
            })
            .collect();
        // Insertion sort: stable (values of one name keep their order), and a query has few pairs.
        fn name(p: &str) -> &str {
            p.split('=').next().unwrap_or("")
        }
        for i in 1..pairs.len() {
            let mut j = i;
            while j > 0 && name(pairs[j - 1]) > name(pairs[j]) {
                pairs.swap(j - 1, j);
                j -= 1;
            }
        }
        (!pairs.is_empty()).then(|| pairs.join("&"))
    }

    /// The URL a page is stored under: `origin` is `scheme://host[:port]` of the request.
    pub fn cache_key(&self, origin: &str, path: &str, query: Option<&str>) -> String {
        match self.cache_query(query) {
            Some(q) => format!("{origin}{path}?{q}"),
            None => format!("{origin}{path}"),
        }
    }

    /// May this response be stored? Ok: for how long; Err: why not.
    pub fn storable(&self, req: &RequestFacts, resp: &ResponseFacts, d: &Decision) -> Result<Freshness, &'static str> {
        let Some(fresh) = self.freshness(d.class) else { return Err(d.class.as_str()) };
        if req.method != "GET" {
            return Err("head");
        }
        let status_ok = match d.class {
            Class::NotFound => matches!(resp.status, 404 | 410),
            _ => resp.status == 200,
        };
        if !status_ok {
            return Err("status");
        }
        // One copy per URL: a response that varies on anything but the encoding (which the Cache
        // API handles) would be served to requests it was not made for.
        if resp.vary.as_deref().is_some_and(|v| v.split(',').map(str::trim).any(|f| !f.is_empty() && !f.eq_ignore_ascii_case("accept-encoding"))) {
            return Err("vary");
        }
        Ok(fresh)
    }

    /// The headers a copy is stored with: the response's own (after the policy), minus the
    /// policy's cache headers (re-derived when it is served), plus a lifetime the Cache API obeys
    /// and the worker's own record.
    pub fn stored_headers(&self, served: &[(String, String)], meta: &StoredMeta, fresh: Freshness) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = served
            .iter()
            .filter(|(k, _)| !REPLACED.iter().any(|r| k.eq_ignore_ascii_case(r)))
            .filter(|(k, _)| self.explain_header.as_deref().is_none_or(|h| !k.eq_ignore_ascii_case(h)))
            .filter(|(k, _)| !k.eq_ignore_ascii_case(STORED_HEADER) && !k.eq_ignore_ascii_case("age"))
            .cloned()
            .collect();
        out.push(("cache-control".into(), format!("public, max-age={}", fresh.lifetime())));
        out.push((STORED_HEADER.into(), meta.encode()));
        out
    }

    /// A stored copy's headers as a client gets them: the class's canonical set again, the age,
    /// and how the cache took part.
    pub fn served_from_store(&self, stored: &[(String, String)], meta: &StoredMeta, now_ms: u64, outcome: &CacheOutcome) -> Vec<(String, String)> {
        let own: Vec<(String, String)> = stored.iter().filter(|(k, _)| !k.eq_ignore_ascii_case(STORED_HEADER) && !k.eq_ignore_ascii_case("age")).cloned().collect();
        let mut out = self.rewrite_with(&own, &Decision { class: meta.class, rule: meta.rule.clone() }, Some(outcome));
        out.push(("age".into(), meta.age_secs(now_ms).to_string()));
        out
    }
}

/// Does a conditional request match the stored copy (answer 304)? If-None-Match wins over
/// If-Modified-Since (RFC 9110 13.2.2); ETags compare weakly, dates by their exact text.
pub fn not_modified(if_none_match: Option<&str>, if_modified_since: Option<&str>, etag: Option<&str>, last_modified: Option<&str>) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if let Some(inm) = if_none_match {
        return inm.trim() == "*" && etag.is_some() || etag.is_some_and(|e| inm.split(',').any(|t| weak(t) == weak(e)));
    }
    matches!((if_modified_since, last_modified), (Some(a), Some(b)) if a.trim() == b.trim())
}

/// Purge records of a site: `url:{path?query}` or `prefix:{path prefix}` → when (ms). A copy stored
/// before a record that covers it is treated as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purges {
    pub records: Vec<(String, u64)>,
}

/// At most this many records per site; past it, the records collapse into one purge of everything.
pub const MAX_PURGE_RECORDS: usize = 500;

impl Purges {
    pub fn covers(&self, path_and_query: &str, stored_at_ms: u64) -> bool {
        let path = path_and_query.split('?').next().unwrap_or("");
        self.records.iter().any(|(target, at)| {
            *at >= stored_at_ms
                && match target.split_once(':') {
                    Some(("url", u)) => u == path_and_query,
                    Some(("prefix", p)) => path.starts_with(p),
                    _ => false,
                }
        })
    }
}

/// A purge target from an admin body: an absolute URL or a path (its cache key's path and query),
/// or a path prefix; None when it is neither, or both.
pub fn purge_target(policy: &Policy, url: Option<&str>, prefix: Option<&str>) -> Option<String> {
    match (url, prefix) {
        (Some(u), None) if u.starts_with('/') || u.starts_with("https://") || u.starts_with("http://") => {
            let parts = crate::request::split_url(u);
            Some(format!("url:{}", policy.cache_key("", &parts.path, parts.query.as_deref())))
        }
        (None, Some(p)) if p.starts_with('/') => Some(format!("prefix:{p}")),
        _ => None,
    }
}
