//! `GET /health`: one line per dependency (configuration, Upstash) and an overall status, the worst
//! of them. Names settings, never their values. The store is pinged at most every
//! `HEALTH_PROBE_MS` per isolate (and by the cron); in between the last probe is shown with its age,
//! so a monitoring system polling `/health` costs neither a round trip nor an Upstash command.

use serde_json::{json, Value as Json};

use crate::config::{Config, ConfigError};
use crate::http::{Outbound, Reply};
use crate::capi::deliver::alarms_key;
use crate::capi::versions::{self, Currency};
use crate::upstash::{cmd, Isolate, Retry, Store, StoreError, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Degraded,
    Down,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Down => "down",
        }
    }
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn config_check(cfg: &Result<Config, Vec<ConfigError>>) -> (Status, Json) {
    match cfg {
        Err(errors) => (Status::Down, json!({ "status": "down", "errors": errors })),
        Ok(c) => {
            let missing = c.missing();
            let mut by_job = serde_json::Map::new();
            for (job, var) in &missing {
                if let Some(list) = by_job.entry(job.to_string()).or_insert_with(|| json!([])).as_array_mut() {
                    list.push(json!(var));
                }
            }
            let status = if missing.is_empty() { Status::Ok } else { Status::Degraded };
            (status, json!({ "status": status.as_str(), "missing": by_job }))
        }
    }
}

async fn upstash_check<O: Outbound>(cfg: &Result<Config, Vec<ConfigError>>, out: &O, iso: &Isolate) -> (Status, Json) {
    let Ok(c) = cfg else {
        return (Status::Down, json!({ "status": "down", "reason": "configuration invalid" }));
    };
    let Some(u) = &c.upstash else {
        return (
            Status::Degraded,
            json!({ "status": "degraded", "reason": "not configured (UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN): dedup is local to each isolate" }),
        );
    };
    let now = out.now_ms();
    let breaker = json!(iso.breaker.borrow().name());
    if let Some((at, status, report)) = iso.health_probe.borrow().as_ref() {
        // A breaker that changed state since (a store call failed or recovered) means probe again.
        if now - at < f64::from(u.health_probe_ms) && report.get("breaker").is_none_or(|b| *b == breaker) {
            let mut report = report.clone();
            report["age_ms"] = json!((now - at).round());
            return (*status, report);
        }
    }
    let (status, report) = probe(u, &c.key_prefix, out, iso).await;
    *iso.health_probe.borrow_mut() = Some((now, status, report.clone()));
    (status, report)
}

/// PING and the worker's alarms in one round trip.
async fn probe<O: Outbound>(u: &crate::config::UpstashConfig, prefix: &str, out: &O, iso: &Isolate) -> (Status, Json) {
    let start = out.now_ms();
    let calls = [cmd(["PING"]), cmd(["HGETALL".to_string(), alarms_key(prefix)])];
    let result = Store::new(u, out, iso).pipeline("ping", &calls, Retry::Idempotent).await;
    let breaker = iso.breaker.borrow().name();
    match result {
        Ok(r) if matches!(r.first(), Some(Ok(Value::Str(p))) if p == "PONG") => {
            let alarms = match r.get(1) {
                Some(Ok(Value::Array(kv))) => kv.chunks(2).filter_map(|p| Some((p[0].as_str()?.to_string(), serde_json::from_str::<Json>(p.get(1)?.as_str()?).ok()?))).collect(),
                _ => serde_json::Map::new(),
            };
            (Status::Ok, json!({ "status": "ok", "latency_ms": round(out.now_ms() - start), "breaker": breaker, "alarms": alarms }))
        }
        Err(StoreError::Unauthorized(code)) => (
            Status::Down,
            json!({ "status": "down", "reason": format!("Upstash rejected the token (HTTP {code}): check UPSTASH_REDIS_REST_TOKEN") }),
        ),
        Ok(_) => (Status::Degraded, json!({ "status": "degraded", "breaker": breaker, "reason": "Upstash answered PING unexpectedly" })),
        Err(e) => (
            Status::Degraded,
            json!({ "status": "degraded", "breaker": breaker, "reason": format!("Upstash unreachable: {e}; dedup and rate limits fall back to this isolate") }),
        ),
    }
}

/// Meta and the dead-letter store, from the alarms delivery keeps in the store: Meta refusing our
/// token or pixel is `down` (events are held on the queue until it is fixed); a full dead-letter
/// store is `degraded` (new dead letters wait on the queue).
fn alarm_checks(upstash: &mut Json) -> [(Status, Json); 2] {
    let alarms = upstash.as_object_mut().and_then(|o| o.remove("alarms")).unwrap_or_default();
    let (mut capi, mut dlq) = (serde_json::Map::new(), serde_json::Map::new());
    for (field, v) in alarms.as_object().into_iter().flatten() {
        if let Some(pixel) = field.strip_prefix("capi:") {
            capi.insert(pixel.to_string(), v.clone());
        } else if let Some(site) = field.strip_prefix("dlq:") {
            dlq.insert(site.to_string(), v.clone());
        }
    }
    let check = |bad: Status, map: serde_json::Map<String, Json>, why: &str| {
        if map.is_empty() {
            (Status::Ok, json!({ "status": "ok" }))
        } else {
            (bad, json!({ "status": bad.as_str(), "reason": why, "alarms": map }))
        }
    };
    [
        check(Status::Down, capi, "Meta refused the access token or pixel (see each pixel's reason): events are held on the queue, not dead-lettered, until it is fixed"),
        check(Status::Degraded, dlq, "the dead-letter store is full (DLQ_MAX): new dead letters wait on the queue; replay or clear /admin/dlq"),
    ]
}

/// The configured Graph API version against Meta's expiry dates: `degraded` within
/// [`versions::WARN_DAYS`] of its date, `down` once past it (Meta refuses calls to it, so nothing
/// is delivered until the setting changes).
fn api_version_check(cfg: &Result<Config, Vec<ConfigError>>, now_ms: f64) -> (Status, Json) {
    let Ok(c) = cfg else { return (Status::Ok, json!({ "status": "ok" })) };
    let v = &c.meta.api_version;
    let newest = crate::config::DEFAULT_META_API_VERSION;
    let (status, message) = match versions::currency(v, now_ms) {
        Currency::Current => (Status::Ok, None),
        Currency::Expiring { date, days_left } => {
            (Status::Degraded, Some(format!("META_API_VERSION {v} expires on {date} (in {days_left} days): move to {newest}")))
        }
        Currency::Expired { date } => (Status::Down, Some(format!("META_API_VERSION {v} expired on {date}: Meta refuses calls to it; set {newest}"))),
    };
    (status, json!({ "status": status.as_str(), "version": v, "message": message }))
}

fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

pub async fn report<O: Outbound>(cfg: &Result<Config, Vec<ConfigError>>, out: &O, iso: &Isolate) -> Reply {
    let (cs, config) = config_check(cfg);
    let (us, mut upstash) = upstash_check(cfg, out, iso).await;
    let [(ms, capi), (ds, dlq)] = alarm_checks(&mut upstash);
    let (vs, api_version) = api_version_check(cfg, out.now_ms());
    let status = cs.max(us).max(ms).max(ds).max(vs);
    let body = json!({
        "status": status.as_str(),
        "version": VERSION,
        "checks": { "config": config, "upstash": upstash, "capi": capi, "dlq": dlq, "meta_api_version": api_version },
    });
    Reply::json(if status == Status::Down { 503 } else { 200 }, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::native::NativeOutbound;
    use crate::testsupport::LocalStore;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
        Config::from_source(vars)
    }

    #[test]
    fn store_up_store_down_and_wrong_token() {
        let store = LocalStore::start();
        let base = [
            ("META_PIXEL_ID", "1"),
            ("META_ACCESS_TOKEN", "t"),
            ("CLOUDFLARE_API_TOKEN", "t"),
            ("CLOUDFLARE_ZONE_ID", "0123456789abcdef0123456789abcdef"),
            ("ADMIN_TOKEN", "0123456789abcdef"),
        ];
        let good: Vec<(&str, &str)> =
            base.iter().copied().chain([("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str())]).collect();
        let r = pollster::block_on(report(&cfg(&good), &NativeOutbound, &Isolate::default()));
        assert_eq!(r.status, 200);
        let b = r.body_json();
        assert_eq!(b["status"], "ok", "{b}");
        assert!(b["checks"]["upstash"]["latency_ms"].as_f64().is_some());

        let wrong: Vec<(&str, &str)> =
            base.iter().copied().chain([("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", "nope")]).collect();
        let r = pollster::block_on(report(&cfg(&wrong), &NativeOutbound, &Isolate::default()));
        assert_eq!(r.status, 503);
        assert_eq!(r.body_json()["checks"]["upstash"]["status"], "down");
        assert!(!String::from_utf8_lossy(&r.body).contains(&store.token));

        let url = store.url.clone();
        drop(store);
        let down: Vec<(&str, &str)> = base.iter().copied().chain([("UPSTASH_REDIS_REST_URL", url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", "x")]).collect();
        let r = pollster::block_on(report(&cfg(&down), &NativeOutbound, &Isolate::default()));
        assert_eq!(r.status, 200);
        assert_eq!(r.body_json()["status"], "degraded");
    }

    #[test]
    fn the_store_is_probed_at_most_every_health_probe_ms() {
        let store = LocalStore::start();
        let vars = [("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str())];
        let (c, iso) = (cfg(&vars), Isolate::default());
        let first = pollster::block_on(report(&c, &NativeOutbound, &iso)).body_json();
        assert_eq!(first["checks"]["upstash"]["status"], "ok");
        assert!(first["checks"]["upstash"].get("age_ms").is_none(), "a fresh probe");
        let since = store.log_seq();
        let again = pollster::block_on(report(&c, &NativeOutbound, &iso)).body_json();
        assert!(again["checks"]["upstash"]["age_ms"].as_f64().is_some(), "{again}");
        assert_eq!(store.log_seq(), since, "no store request for a probe younger than HEALTH_PROBE_MS");
        // HEALTH_PROBE_MS=0: every call probes.
        let every: Vec<(&str, &str)> = vars.iter().copied().chain([("HEALTH_PROBE_MS", "0")]).collect();
        let c0 = cfg(&every);
        pollster::block_on(report(&c0, &NativeOutbound, &iso));
        assert!(store.log_seq() > since);
    }

    #[test]
    fn invalid_config_is_down_and_names_the_variable() {
        let r = pollster::block_on(report(&cfg(&[("META_PIXEL_ID", "abc")]), &NativeOutbound, &Isolate::default()));
        assert_eq!(r.status, 503);
        let b = r.body_json();
        assert_eq!(b["checks"]["config"]["errors"][0]["variable"], "META_PIXEL_ID");
    }

    #[test]
    fn an_expiring_api_version_degrades_and_an_expired_one_is_down() {
        let dec3 = 20_790.0 * 86_400_000.0; // 2026-12-03
        let check = |v: &str| api_version_check(&cfg(&[("META_API_VERSION", v)]), dec3);
        let (s, b) = check("v25.0");
        assert_eq!(s, Status::Degraded);
        assert!(b["message"].as_str().unwrap().contains("v25.0 expires on 2027-02-23"), "{b}");
        let (s, b) = check("v21.0");
        assert_eq!(s, Status::Down);
        assert!(b["message"].as_str().unwrap().contains("v21.0 expired on 2025-09-09"), "{b}");
        assert_eq!(check("v27.0").0, Status::Ok);
        assert_eq!(api_version_check(&cfg(&[]), dec3).0, Status::Ok, "the default");
    }

    #[test]
    fn missing_settings_degrade_and_are_named_by_job() {
        let r = pollster::block_on(report(&cfg(&[]), &NativeOutbound, &Isolate::default()));
        let b = r.body_json();
        assert_eq!(b["status"], "degraded");
        assert_eq!(b["checks"]["config"]["missing"]["admin"][0], "ADMIN_TOKEN");
    }
}
