//! Configuration: the worker's environment (vars and secrets) parsed once per request into a typed
//! `Config`. Every problem names the variable it came from; secret values are wrapped in [`Secret`] so
//! they cannot reach a log or a response through `Debug` or serialisation.

use std::fmt;

use crate::cache_policy::{self, Policy};
use crate::events::catalog::{valid_custom_name, Catalog};

/// Where settings come from: `worker::Env` in the worker, a map in native tests.
pub trait VarSource {
    fn get(&self, name: &str) -> Option<String>;
}

impl VarSource for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        std::collections::HashMap::get(self, name).cloned()
    }
}

impl VarSource for [(&str, &str)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }
}

/// A secret value. Its `Debug`/`Display` never show it; use [`Secret::expose`] where it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Secret {
        Secret(v.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One bad or missing setting, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct UpstashConfig {
    pub url: String,
    pub token: Secret,
    /// Per-attempt timeout; an edge request cannot wait long for its store.
    pub timeout_ms: u32,
    /// Total budget for one store operation, retries and backoff included.
    pub deadline_ms: u32,
    /// Consecutive failed operations that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker fails fast before letting one probe through.
    pub breaker_cooldown_ms: u32,
}

impl UpstashConfig {
    pub fn new(url: impl Into<String>, token: Secret) -> UpstashConfig {
        UpstashConfig {
            url: url.into(),
            token,
            timeout_ms: DEFAULT_UPSTASH_TIMEOUT_MS,
            deadline_ms: DEFAULT_UPSTASH_DEADLINE_MS,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cooldown_ms: DEFAULT_BREAKER_COOLDOWN_MS,
        }
    }
}

/// Bounds on one `/collect` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// Public-endpoint rate limits, per fixed window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    pub per_ip: u32,
    pub per_site: u32,
    pub window_secs: u32,
}

#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub pixel_id: Option<String>,
    pub access_token: Option<Secret>,
    pub api_version: String,
    pub test_event_code: Option<String>,
    pub capi_base_url: String,
}

#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    pub api_base: String,
    pub api_token: Option<Secret>,
    pub zone_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub upstash: Option<UpstashConfig>,
    pub meta: MetaConfig,
    pub cloudflare: CloudflareConfig,
    pub admin_token: Option<Secret>,
    pub origin_url: Option<String>,
    pub allowed_origins: AllowedOrigins,
    pub key_prefix: String,
    pub rate_limits: RateLimits,
    pub collect: CollectLimits,
    pub catalog: Catalog,
    /// Events per Conversions API request (Meta accepts up to 1000).
    pub capi_batch_size: usize,
    pub cache: Policy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

pub const DEFAULT_CAPI_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_CLOUDFLARE_API_BASE: &str = "https://api.cloudflare.com/client/v4";
pub const DEFAULT_META_API_VERSION: &str = "v21.0";
pub const DEFAULT_UPSTASH_TIMEOUT_MS: u32 = 400;
pub const DEFAULT_UPSTASH_DEADLINE_MS: u32 = 900;
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
pub const DEFAULT_BREAKER_COOLDOWN_MS: u32 = 10_000;
pub const DEFAULT_RATE_LIMIT_IP: u32 = 120;
pub const DEFAULT_RATE_LIMIT_SITE: u32 = 6_000;
pub const DEFAULT_RATE_LIMIT_WINDOW_SECS: u32 = 60;
pub const DEFAULT_KEY_PREFIX: &str = "ek";

/// Settings a job needs: named by `/health` when absent (names only, never values).
const JOBS: &[(&str, &[&str])] = &[
    ("store", &["UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN"]),
    ("capi", &["META_PIXEL_ID", "META_ACCESS_TOKEN"]),
    ("zaraz", &["CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ZONE_ID"]),
    ("admin", &["ADMIN_TOKEN"]),
];

struct Reader<'a, S: VarSource + ?Sized> {
    src: &'a S,
    errors: Vec<ConfigError>,
}

impl<S: VarSource + ?Sized> Reader<'_, S> {
    /// A set, non-blank value, trimmed.
    fn opt(&self, name: &str) -> Option<String> {
        self.src.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn fail(&mut self, variable: &'static str, message: impl Into<String>) {
        self.errors.push(ConfigError { variable, message: message.into() });
    }

    fn url(&mut self, name: &'static str) -> Option<String> {
        let v = self.opt(name)?;
        match check_url(&v) {
            Ok(()) => Some(v.trim_end_matches('/').to_string()),
            Err(m) => {
                self.fail(name, m);
                None
            }
        }
    }

    fn checked(&mut self, name: &'static str, ok: impl Fn(&str) -> bool, expected: &str) -> Option<String> {
        let v = self.opt(name)?;
        if ok(&v) {
            Some(v)
        } else {
            self.fail(name, format!("expected {expected}"));
            None
        }
    }

    fn number(&mut self, name: &'static str, default: u32, min: u32, max: u32) -> u32 {
        match self.opt(name) {
            None => default,
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    self.fail(name, format!("expected an integer from {min} to {max}"));
                    default
                }
            },
        }
    }
}

fn check_url(v: &str) -> Result<(), String> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| "expected an absolute http(s) URL".to_string())?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("expected an absolute http(s) URL with a host".into());
    }
    if rest.contains(['?', '#']) {
        return Err("a base URL cannot carry a query or fragment".into());
    }
    Ok(())
}

fn is_origin(v: &str) -> bool {
    check_url(v).is_ok() && {
        let rest = v.split_once("://").map(|x| x.1).unwrap_or("");
        !rest.trim_end_matches('/').contains('/')
    }
}

/// `ORIGIN_URL` alone, for passing site traffic through when the rest of the configuration is
/// invalid (a bad edgekeeper setting must not take the site down).
pub fn origin_url_only<S: VarSource + ?Sized>(src: &S) -> Option<String> {
    let v = src.get("ORIGIN_URL")?.trim().to_string();
    check_url(&v).ok().map(|_| v.trim_end_matches('/').to_string())
}

impl Config {
    /// Parses every setting; returns all problems at once so one deploy fixes them all.
    pub fn from_source<S: VarSource + ?Sized>(src: &S) -> Result<Config, Vec<ConfigError>> {
        let mut r = Reader { src, errors: Vec::new() };

        let upstash_url = r.url("UPSTASH_REDIS_REST_URL");
        let upstash_token = r.opt("UPSTASH_REDIS_REST_TOKEN").map(Secret::new);
        let timeout_ms = r.number("UPSTASH_TIMEOUT_MS", DEFAULT_UPSTASH_TIMEOUT_MS, 20, 10_000);
        let deadline_ms = r.number("UPSTASH_DEADLINE_MS", DEFAULT_UPSTASH_DEADLINE_MS.max(timeout_ms), 20, 30_000);
        if deadline_ms < timeout_ms {
            r.fail("UPSTASH_DEADLINE_MS", "must be at least UPSTASH_TIMEOUT_MS");
        }
        let breaker_threshold = r.number("UPSTASH_BREAKER_THRESHOLD", DEFAULT_BREAKER_THRESHOLD, 1, 1000);
        let breaker_cooldown_ms = r.number("UPSTASH_BREAKER_COOLDOWN_MS", DEFAULT_BREAKER_COOLDOWN_MS, 100, 600_000);
        let upstash = match (upstash_url, upstash_token) {
            (Some(url), Some(token)) => Some(UpstashConfig { url, token, timeout_ms, deadline_ms, breaker_threshold, breaker_cooldown_ms }),
            (Some(_), None) => {
                r.fail("UPSTASH_REDIS_REST_TOKEN", "required when UPSTASH_REDIS_REST_URL is set");
                None
            }
            (None, Some(_)) if r.errors.iter().all(|e| e.variable != "UPSTASH_REDIS_REST_URL") => {
                r.fail("UPSTASH_REDIS_REST_URL", "required when UPSTASH_REDIS_REST_TOKEN is set");
                None
            }
            _ => None,
        };

        let meta = MetaConfig {
            pixel_id: r.checked("META_PIXEL_ID", |v| v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit()), "a numeric pixel id"),
            access_token: r.opt("META_ACCESS_TOKEN").map(Secret::new),
            api_version: r
                .checked("META_API_VERSION", is_graph_version, "a Graph API version such as v21.0")
                .unwrap_or_else(|| DEFAULT_META_API_VERSION.to_string()),
            test_event_code: r.checked(
                "META_TEST_EVENT_CODE",
                |v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric()),
                "letters and digits (e.g. TEST12345)",
            ),
            capi_base_url: r.url("CAPI_BASE_URL").unwrap_or_else(|| DEFAULT_CAPI_BASE_URL.to_string()),
        };

        let cloudflare = CloudflareConfig {
            api_base: r.url("CLOUDFLARE_API_BASE").unwrap_or_else(|| DEFAULT_CLOUDFLARE_API_BASE.to_string()),
            api_token: r.opt("CLOUDFLARE_API_TOKEN").map(Secret::new),
            zone_id: r.checked(
                "CLOUDFLARE_ZONE_ID",
                |v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()),
                "a 32-character hex zone id",
            ),
        };

        let admin_token = match r.opt("ADMIN_TOKEN") {
            Some(t) if t.len() < 16 => {
                r.fail("ADMIN_TOKEN", "must be at least 16 characters");
                None
            }
            t => t.map(Secret::new),
        };

        let origin_url = r.url("ORIGIN_URL");
        let allowed_origins = match r.opt("ALLOWED_ORIGINS") {
            None => AllowedOrigins::List(Vec::new()),
            Some(v) if v == "*" => AllowedOrigins::Any,
            Some(v) => {
                let list: Vec<String> = v.split(',').map(|s| s.trim().trim_end_matches('/').to_string()).filter(|s| !s.is_empty()).collect();
                if let Some(bad) = list.iter().find(|o| !is_origin(o)) {
                    r.fail("ALLOWED_ORIGINS", format!("'{bad}' is not an origin like https://shop.example (comma-separated, or *)"));
                }
                AllowedOrigins::List(list)
            }
        };
        let key_prefix = r
            .checked(
                "KEY_PREFIX",
                |v| v.len() <= 32 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "up to 32 letters, digits, '-' or '_'",
            )
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());

        let rate_limits = RateLimits {
            per_ip: r.number("RATE_LIMIT_PER_IP", DEFAULT_RATE_LIMIT_IP, 1, 1_000_000),
            per_site: r.number("RATE_LIMIT_PER_SITE", DEFAULT_RATE_LIMIT_SITE, 1, 100_000_000),
            window_secs: r.number("RATE_LIMIT_WINDOW_SECS", DEFAULT_RATE_LIMIT_WINDOW_SECS, 1, 3600),
        };

        let collect = CollectLimits {
            max_events: r.number("COLLECT_MAX_EVENTS", 50, 1, 100) as usize,
            max_bytes: r.number("COLLECT_MAX_BYTES", 65_536, 1024, 1_048_576) as usize,
        };
        let custom: Vec<String> = r.opt("CUSTOM_EVENTS").map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
        if let Some(bad) = custom.iter().find(|c| !valid_custom_name(c)) {
            r.fail("CUSTOM_EVENTS", format!("'{bad}' is not a valid event name (letters, digits, _; starts with a letter; ≤ 40)"));
        }
        let catalog = Catalog::new(custom);
        let capi_batch_size = r.number("CAPI_BATCH_SIZE", 100, 1, 1000) as usize;
        let cache = cache_settings(&mut r);

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        Ok(Config { upstash, meta, cloudflare, admin_token, origin_url, allowed_origins, key_prefix, rate_limits, collect, catalog, capi_batch_size, cache })
    }

    /// The settings that are absent, by job: names only.
    pub fn missing(&self) -> Vec<(&'static str, &'static str)> {
        let present = |name: &str| match name {
            "UPSTASH_REDIS_REST_URL" | "UPSTASH_REDIS_REST_TOKEN" => self.upstash.is_some(),
            "META_PIXEL_ID" => self.meta.pixel_id.is_some(),
            "META_ACCESS_TOKEN" => self.meta.access_token.is_some(),
            "CLOUDFLARE_API_TOKEN" => self.cloudflare.api_token.is_some(),
            "CLOUDFLARE_ZONE_ID" => self.cloudflare.zone_id.is_some(),
            "ADMIN_TOKEN" => self.admin_token.is_some(),
            _ => true,
        };
        JOBS.iter().flat_map(|(job, vars)| vars.iter().filter(|v| !present(v)).map(move |v| (*job, *v))).collect()
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn cache_settings<S: VarSource + ?Sized>(r: &mut Reader<'_, S>) -> Policy {
    let mut p = Policy::default();
    match r.opt("CACHE_POLICY").as_deref() {
        None | Some("on") => {}
        Some("off") => p.enabled = false,
        Some(_) => r.fail("CACHE_POLICY", "expected on or off"),
    }
    if let Some(json) = r.opt("CACHE_RULES") {
        match cache_policy::rules::parse(&json) {
            Ok(rules) => p.user = rules,
            Err(e) => r.fail("CACHE_RULES", e),
        }
    }
    if let Some(v) = r.opt("CACHE_IMMUTABLE_PREFIXES") {
        p.immutable_prefixes = list(&v);
        if let Some(bad) = p.immutable_prefixes.iter().find(|x| !x.starts_with('/')) {
            r.fail("CACHE_IMMUTABLE_PREFIXES", format!("'{bad}' must start with /"));
        }
    }
    if let Some(v) = r.opt("CACHE_SESSION_COOKIES") {
        p.session_cookies = list(&v);
    }
    match r.opt("CACHE_EXPLAIN_HEADER").as_deref() {
        None => {}
        Some("off") => p.explain_header = None,
        Some(h) if !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => p.explain_header = Some(h.to_ascii_lowercase()),
        Some(_) => r.fail("CACHE_EXPLAIN_HEADER", "expected a header name (letters, digits, -) or off"),
    }
    p
}

fn is_graph_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else { return false };
    let mut parts = rest.split('.');
    let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else { return false };
    !a.is_empty() && !b.is_empty() && a.len() <= 3 && b.len() <= 2 && (a.bytes().chain(b.bytes())).all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
        Config::from_source(vars)
    }

    #[test]
    fn defaults_apply_when_optional_settings_are_absent() {
        let c = parse(&[]).unwrap();
        assert!(c.upstash.is_none());
        assert_eq!(c.meta.capi_base_url, DEFAULT_CAPI_BASE_URL);
        assert_eq!(c.meta.api_version, DEFAULT_META_API_VERSION);
        assert_eq!(c.cloudflare.api_base, DEFAULT_CLOUDFLARE_API_BASE);
        assert_eq!(c.key_prefix, "ek");
        assert_eq!(c.allowed_origins, AllowedOrigins::List(vec![]));
        let missing: Vec<_> = c.missing().into_iter().map(|(_, v)| v).collect();
        assert!(missing.contains(&"UPSTASH_REDIS_REST_URL") && missing.contains(&"ADMIN_TOKEN"), "{missing:?}");
    }

    #[test]
    fn full_config_parses_and_trims() {
        let c = parse(&[
            ("UPSTASH_REDIS_REST_URL", " http://127.0.0.1:8079/ "),
            ("UPSTASH_REDIS_REST_TOKEN", "tok"),
            ("UPSTASH_TIMEOUT_MS", "250"),
            ("META_PIXEL_ID", "123456789"),
            ("META_ACCESS_TOKEN", "EAAB"),
            ("META_API_VERSION", "v22.0"),
            ("CLOUDFLARE_ZONE_ID", "0123456789abcdef0123456789abcdef"),
            ("CLOUDFLARE_API_TOKEN", "cf"),
            ("ADMIN_TOKEN", "0123456789abcdef"),
            ("ALLOWED_ORIGINS", "https://shop.example, http://127.0.0.1:8787"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
        ])
        .unwrap();
        let u = c.upstash.as_ref().unwrap();
        assert_eq!(u.url, "http://127.0.0.1:8079");
        assert_eq!(u.timeout_ms, 250);
        assert_eq!(c.allowed_origins, AllowedOrigins::List(vec!["https://shop.example".into(), "http://127.0.0.1:8787".into()]));
        assert!(c.missing().is_empty(), "{:?}", c.missing());
    }

    #[test]
    fn every_bad_value_is_reported_by_name() {
        let errs = parse(&[
            ("UPSTASH_REDIS_REST_URL", "redis://localhost"),
            ("UPSTASH_REDIS_REST_TOKEN", "x"),
            ("META_PIXEL_ID", "12ab"),
            ("META_API_VERSION", "21"),
            ("CAPI_BASE_URL", "graph.facebook.com"),
            ("CLOUDFLARE_ZONE_ID", "nothex"),
            ("ADMIN_TOKEN", "short"),
            ("ALLOWED_ORIGINS", "https://ok.example,https://bad.example/path"),
            ("UPSTASH_TIMEOUT_MS", "0"),
            ("KEY_PREFIX", "a:b"),
        ])
        .unwrap_err();
        let names: Vec<_> = errs.iter().map(|e| e.variable).collect();
        for v in [
            "UPSTASH_REDIS_REST_URL",
            "META_PIXEL_ID",
            "META_API_VERSION",
            "CAPI_BASE_URL",
            "CLOUDFLARE_ZONE_ID",
            "ADMIN_TOKEN",
            "ALLOWED_ORIGINS",
            "UPSTASH_TIMEOUT_MS",
            "KEY_PREFIX",
        ] {
            assert!(names.contains(&v), "{v} not reported in {names:?}");
        }
        assert!(errs.iter().all(|e| e.to_string().starts_with(e.variable)));
    }

    #[test]
    fn half_configured_upstash_names_the_missing_half() {
        let errs = parse(&[("UPSTASH_REDIS_REST_URL", "https://x.upstash.io")]).unwrap_err();
        assert_eq!(errs[0].variable, "UPSTASH_REDIS_REST_TOKEN");
        let errs = parse(&[("UPSTASH_REDIS_REST_TOKEN", "t")]).unwrap_err();
        assert_eq!(errs[0].variable, "UPSTASH_REDIS_REST_URL");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = parse(&[
            ("UPSTASH_REDIS_REST_URL", "https://x.upstash.io"),
            ("UPSTASH_REDIS_REST_TOKEN", "super-secret-token"),
            ("ADMIN_TOKEN", "admin-secret-value-123"),
            ("META_ACCESS_TOKEN", "EAAsecret"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        for s in ["super-secret-token", "admin-secret-value-123", "EAAsecret"] {
            assert!(!dbg.contains(s), "{s} leaked");
        }
    }

    #[test]
    fn wildcard_origins() {
        assert_eq!(parse(&[("ALLOWED_ORIGINS", "*")]).unwrap().allowed_origins, AllowedOrigins::Any);
    }
}
