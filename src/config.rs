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
    /// `/health` pings the store at most this often per isolate (`HEALTH_PROBE_MS`; 0: every call)
    /// and otherwise shows the last probe with its age: a health check must not cost a round trip.
    pub health_probe_ms: u32,
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
            health_probe_ms: DEFAULT_HEALTH_PROBE_MS,
        }
    }
}

pub const DEFAULT_HEALTH_PROBE_MS: u32 = 5_000;

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
    /// Timeout of one Conversions API request (`CAPI_TIMEOUT_MS`).
    pub timeout_ms: u32,
    pub pixel_id: Option<String>,
    pub access_token: Option<Secret>,
    pub api_version: String,
    pub test_event_code: Option<String>,
    pub capi_base_url: String,
}

/// One shop in a multi-pixel deployment (`PIXELS`): its host, its pixel and token, and the browser
/// origins allowed to post its events.
#[derive(Debug, Clone)]
pub struct PixelSite {
    pub site: String,
    pub pixel_id: String,
    pub token: Secret,
    pub allowed_origins: Vec<String>,
}

/// Limited Data Use (`LDU_MODE`): never, always, or by the visitor's US state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LduMode {
    Off,
    Always,
    /// US states (two-letter region codes) where Meta applies LDU.
    Geo(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct MatchQuality {
    /// Where first-party `_fbp`/`_fbc` cookies are set (`COOKIE_DOMAIN`); None: the request's host.
    pub cookie_domain: Option<String>,
    /// `"dry_run": true` on /collect is allowed (`COLLECT_DRY_RUN=on`).
    pub allow_dry_run: bool,
    /// A per-request `test_event_code` is allowed (`ALLOW_TEST_EVENT_CODE=on`).
    pub allow_test_event_code: bool,
    pub ldu: LduMode,
    /// `PIXELS`; empty: the single pixel of `META_PIXEL_ID` for every site.
    pub pixels: Vec<PixelSite>,
}

pub const DEFAULT_LDU_STATES: &str = "CA,CO,CT,FL,TX,OR,MT";

#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    pub api_base: String,
    pub api_token: Option<Secret>,
    pub zone_id: Option<String>,
    /// Subrequests one Zaraz sync run may use before it pauses (`ZARAZ_CALL_BUDGET`): the Workers
    /// plan's per-request limit (50 on the free plan) minus the request's own store calls.
    pub call_budget: u32,
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
    pub matching: MatchQuality,
    pub delivery: Delivery,
}

/// How delivery holds what it cannot finish.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Dead letters kept per site (`DLQ_MAX`); past it new ones wait on the queue, never trimmed.
    pub dlq_max: u32,
    /// Seconds events wait on the queue when our own configuration stops delivery (Meta refused the
    /// token or pixel, a setting is invalid) or the store cannot record a fate (`QUEUE_HOLD_SECS`).
    pub hold_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

pub const DEFAULT_CAPI_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_CLOUDFLARE_API_BASE: &str = "https://api.cloudflare.com/client/v4";
/// The newest Graph API version, with no announced expiry (see `capi::versions`).
pub const DEFAULT_META_API_VERSION: &str = "v27.0";
pub const DEFAULT_UPSTASH_TIMEOUT_MS: u32 = 400;
pub const DEFAULT_UPSTASH_DEADLINE_MS: u32 = 900;
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
pub const DEFAULT_BREAKER_COOLDOWN_MS: u32 = 10_000;
pub const DEFAULT_RATE_LIMIT_IP: u32 = 120;
/// Site-wide `/collect` requests per window: a ceiling for a runaway client, far above a busy
/// shop's traffic (10,000 a second); `RATE_LIMIT_PER_IP` is the abuse guard.
pub const DEFAULT_RATE_LIMIT_SITE: u32 = 600_000;
pub const DEFAULT_ZARAZ_CALL_BUDGET: u32 = 46;
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
        let health_probe_ms = r.number("HEALTH_PROBE_MS", DEFAULT_HEALTH_PROBE_MS, 0, 300_000);
        let upstash = match (upstash_url, upstash_token) {
            (Some(url), Some(token)) => Some(UpstashConfig { url, token, timeout_ms, deadline_ms, breaker_threshold, breaker_cooldown_ms, health_probe_ms }),
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
            timeout_ms: r.number("CAPI_TIMEOUT_MS", 10_000, 100, 60_000),
            pixel_id: r.checked("META_PIXEL_ID", |v| v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit()), "a numeric pixel id"),
            access_token: r.opt("META_ACCESS_TOKEN").map(Secret::new),
            api_version: r
                .checked("META_API_VERSION", is_graph_version, "a Graph API version such as v27.0")
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
            call_budget: r.number("ZARAZ_CALL_BUDGET", DEFAULT_ZARAZ_CALL_BUDGET, 10, 1000),
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
        let matching = match_settings(&mut r);
        let delivery = Delivery { dlq_max: r.number("DLQ_MAX", 10_000, 1, 1_000_000), hold_secs: r.number("QUEUE_HOLD_SECS", 600, 1, 43_200) };

        if !r.errors.is_empty() {
            return Err(r.errors);
        }
        Ok(Config { upstash, meta, cloudflare, admin_token, origin_url, allowed_origins, key_prefix, rate_limits, collect, catalog, capi_batch_size, cache, matching, delivery })
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
    p.enabled = on_off(r, "CACHE_POLICY", true);
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
    let d = cache_policy::stored::DEFAULT_HTML;
    p.html = cache_policy::Freshness {
        ttl: r.number("CACHE_HTML_TTL", d.ttl as u32, 0, 31_536_000).into(),
        swr: r.number("CACHE_HTML_SWR", d.swr as u32, 0, 31_536_000).into(),
        sie: r.number("CACHE_HTML_SIE", d.sie as u32, 0, 31_536_000).into(),
    };
    p.store = on_off(r, "CACHE_STORE", true);
    if let Some(v) = r.opt("CACHE_IGNORE_PARAMS") {
        p.ignored_params = list(&v);
        if let Some(bad) = p.ignored_params.iter().find(|x| x.trim_end_matches('*').is_empty() || !x.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.*".contains(&b))) {
            r.fail("CACHE_IGNORE_PARAMS", format!("'{bad}' is not a parameter name"));
        }
    }
    match r.opt("CACHE_EXPLAIN_HEADER").as_deref() {
        None => {}
        Some("off") => p.explain_header = None,
        Some(h) if !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => p.explain_header = Some(h.to_ascii_lowercase()),
        Some(_) => r.fail("CACHE_EXPLAIN_HEADER", "expected a header name (letters, digits, -) or off"),
    }
    p
}

/// An `on`/`off` setting; unset (or invalid, which is also reported) means `default`.
fn on_off<S: VarSource + ?Sized>(r: &mut Reader<'_, S>, name: &'static str, default: bool) -> bool {
    match r.opt(name).as_deref() {
        None => default,
        Some("off") => false,
        Some("on") => true,
        Some(_) => {
            r.fail(name, "expected on or off");
            default
        }
    }
}

fn match_settings<S: VarSource + ?Sized>(r: &mut Reader<'_, S>) -> MatchQuality {
    let cookie_domain = r.checked(
        "COOKIE_DOMAIN",
        |v| v.len() <= 253 && v.trim_start_matches('.').split('.').all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')),
        "a domain such as .shop.example",
    );
    let allow_dry_run = on_off(r, "COLLECT_DRY_RUN", false);
    let allow_test_event_code = on_off(r, "ALLOW_TEST_EVENT_CODE", false);
    let ldu = match r.opt("LDU_MODE").as_deref() {
        None | Some("off") => LduMode::Off,
        Some("always") => LduMode::Always,
        Some("geo") => {
            let states: Vec<String> = list(&r.opt("LDU_STATES").unwrap_or_else(|| DEFAULT_LDU_STATES.into())).into_iter().map(|s| s.to_ascii_uppercase()).collect();
            if states.iter().any(|s| s.len() != 2 || !s.bytes().all(|b| b.is_ascii_alphabetic())) {
                r.fail("LDU_STATES", "expected two-letter US state codes, comma-separated");
            }
            LduMode::Geo(states)
        }
        Some(_) => {
            r.fail("LDU_MODE", "expected off, always or geo");
            LduMode::Off
        }
    };
    let pixels = match r.opt("PIXELS") {
        None => Vec::new(),
        Some(json) => parse_pixels(r, &json),
    };
    MatchQuality { cookie_domain, allow_dry_run, allow_test_event_code, ldu, pixels }
}

/// `PIXELS`: `{"shop.example": {"pixel_id": "123", "token_secret": "META_TOKEN_SHOP",
/// "allowed_origins": ["https://shop.example"]}, ...}`; each token is read from the named secret.
fn parse_pixels<S: VarSource + ?Sized>(r: &mut Reader<'_, S>, json: &str) -> Vec<PixelSite> {
    let v: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => {
            r.fail("PIXELS", format!("not valid JSON: {e}"));
            return Vec::new();
        }
    };
    let Some(map) = v.as_object().filter(|m| !m.is_empty()) else {
        r.fail("PIXELS", "expected an object of site host → {pixel_id, token_secret, allowed_origins}");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (site, entry) in map {
        let fail = |r: &mut Reader<'_, S>, m: String| r.fail("PIXELS", format!("{site}: {m}"));
        if site.is_empty() || site.len() > 253 || !site.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
            fail(r, "the key must be a host name".into());
            continue;
        }
        let Some(e) = entry.as_object() else {
            fail(r, "expected an object".into());
            continue;
        };
        if let Some(k) = e.keys().find(|k| !matches!(k.as_str(), "pixel_id" | "token_secret" | "allowed_origins")) {
            fail(r, format!("unknown field {k}"));
            continue;
        }
        let pixel_id = e.get("pixel_id").and_then(|p| p.as_str()).filter(|p| !p.is_empty() && p.len() <= 32 && p.bytes().all(|b| b.is_ascii_digit()));
        let secret_name = e.get("token_secret").and_then(|t| t.as_str()).filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let origins: Option<Vec<String>> = match e.get("allowed_origins") {
            None => Some(Vec::new()),
            Some(serde_json::Value::Array(list)) => list.iter().map(|o| o.as_str().map(|s| s.trim_end_matches('/').to_string())).collect(),
            Some(_) => None,
        };
        match (pixel_id, secret_name, origins) {
            (None, _, _) => fail(r, "pixel_id must be a numeric pixel id".into()),
            (_, None, _) => fail(r, "token_secret must name the secret holding this pixel's token".into()),
            (_, _, None) => fail(r, "allowed_origins must be an array of origins".into()),
            (Some(pixel_id), Some(secret), Some(origins)) => {
                if let Some(bad) = origins.iter().find(|o| !is_origin(o)) {
                    fail(r, format!("'{bad}' is not an origin like https://shop.example"));
                    continue;
                }
                match r.opt(secret) {
                    Some(token) => out.push(PixelSite { site: site.to_ascii_lowercase(), pixel_id: pixel_id.to_string(), token: Secret::new(token), allowed_origins: origins }),
                    None => fail(r, format!("the secret {secret} is not set (wrangler secret put {secret})")),
                }
            }
        }
    }
    out
}

impl Config {
    /// The access token for a pixel: its `PIXELS` entry's secret, else `META_ACCESS_TOKEN` for
    /// `META_PIXEL_ID`.
    pub fn token_for(&self, pixel_id: &str) -> Option<&Secret> {
        match self.matching.pixels.iter().find(|p| p.pixel_id == pixel_id) {
            Some(p) => Some(&p.token),
            None if self.matching.pixels.is_empty() || self.meta.pixel_id.as_deref() == Some(pixel_id) => self.meta.access_token.as_ref(),
            None => None,
        }
    }
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
        assert_eq!(c.rate_limits.per_site, 600_000, "a busy shop is not throttled site-wide");
        assert_eq!(c.rate_limits.per_ip, 120);
        assert_eq!(c.cloudflare.call_budget, 46);
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
        assert_eq!(parse(&[("ZARAZ_CALL_BUDGET", "1000")]).unwrap().cloudflare.call_budget, 1000);
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
            ("ZARAZ_CALL_BUDGET", "9"),
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
            "ZARAZ_CALL_BUDGET",
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
    fn pixels_route_sites_to_their_own_pixel_and_token() {
        let c = parse(&[
            ("PIXELS", r#"{"a.example": {"pixel_id": "111", "token_secret": "TOKEN_A", "allowed_origins": ["https://a.example"]},
                          "b.example": {"pixel_id": "222", "token_secret": "TOKEN_B"}}"#),
            ("TOKEN_A", "tok-a"),
            ("TOKEN_B", "tok-b"),
            ("LDU_MODE", "geo"),
        ])
        .unwrap();
        assert_eq!(c.matching.pixels.len(), 2);
        assert_eq!(c.token_for("111").unwrap().expose(), "tok-a");
        assert_eq!(c.token_for("222").unwrap().expose(), "tok-b");
        assert!(c.token_for("333").is_none());
        assert_eq!(c.matching.ldu, LduMode::Geo(DEFAULT_LDU_STATES.split(',').map(str::to_string).collect()));
        assert!(!format!("{c:?}").contains("tok-a"));

        let errs = parse(&[("PIXELS", r#"{"a.example": {"pixel_id": "x1", "token_secret": "T"}}"#)]).unwrap_err();
        assert!(errs[0].message.contains("a.example: pixel_id"), "{errs:?}");
        let errs = parse(&[("PIXELS", r#"{"a.example": {"pixel_id": "1", "token_secret": "MISSING"}}"#)]).unwrap_err();
        assert!(errs[0].message.contains("MISSING is not set"), "{errs:?}");
        let errs = parse(&[("LDU_MODE", "sometimes"), ("COLLECT_DRY_RUN", "yes")]).unwrap_err();
        let names: Vec<_> = errs.iter().map(|e| e.variable).collect();
        assert_eq!(names, vec!["COLLECT_DRY_RUN", "LDU_MODE"]);
    }

    #[test]
    fn wildcard_origins() {
        assert_eq!(parse(&[("ALLOWED_ORIGINS", "*")]).unwrap().allowed_origins, AllowedOrigins::Any);
    }
}
