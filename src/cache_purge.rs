//! Purging the worker's cache. The Cache API keeps copies per data center and cannot list them, so
//! a purge is a record in the store (`{prefix}:{site}:cache:purges`, a hash of target → when),
//! and a stored copy older than a record that covers it is treated as absent wherever it is. Each
//! isolate reads the records at most every [`REFRESH_MS`]; the isolate that took the purge knows
//! at once. A store that cannot be read keeps the last records (purges are never forgotten early).

use crate::admin::{authorize, site_of};
use crate::cache_policy::stored::{purge_target, MAX_PURGE_RECORDS};
use crate::cache_policy::Purges;
use crate::config::Config;
use crate::error::AppError;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::{cmd, Isolate, Keys, Module, Retry, Store, Value};

/// How stale an isolate's copy of the purge records may be.
pub const REFRESH_MS: f64 = 5_000.0;
/// Records outlive the longest-lived stored copy (a year, immutable) and a bit.
const RECORD_TTL_SECS: u64 = 400 * 24 * 3600;

fn key(cfg: &Config, site: &str) -> String {
    Keys::new(&cfg.key_prefix, site).key(Module::Cache, "purges")
}

fn parse(v: &Value) -> Purges {
    let mut records = Vec::new();
    if let Value::Array(items) = v {
        for pair in items.chunks(2) {
            if let [Value::Str(target), at] = pair {
                let at = at.as_int().or_else(|| at.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
                records.push((target.clone(), at.max(0) as u64));
            }
        }
    }
    Purges { records }
}

/// The site's purge records as this isolate knows them, read again when older than REFRESH_MS.
pub async fn current<O: Outbound>(cfg: &Config, out: &O, iso: &Isolate, site: &str) -> Purges {
    let now = out.now_ms();
    let known = iso.purges.borrow().get(site).cloned();
    if let Some((at, p)) = &known {
        if now - at < REFRESH_MS {
            return p.clone();
        }
    }
    let Some(upstash) = cfg.upstash.as_ref() else { return known.map(|k| k.1).unwrap_or_default() };
    let fresh = match Store::new(upstash, out, iso).command("cache_purges", &cmd(["HGETALL".to_string(), key(cfg, site)]), Retry::Idempotent).await {
        Ok(v) => parse(&v),
        // Keep what we knew; try again after REFRESH_MS rather than on every request.
        Err(_) => known.map(|k| k.1).unwrap_or_default(),
    };
    iso.purges.borrow_mut().insert(site.to_string(), (now, fresh.clone()));
    fresh
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    url: Option<String>,
    prefix: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    targets: Vec<Target>,
}

/// `POST /admin/cache/purge` with `{"targets": [{"url": "https://shop/p/42"}, {"prefix": "/p/"}]}`.
pub async fn purge<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let upstash = cfg.upstash.as_ref().ok_or(AppError::NotConfigured("UPSTASH_REDIS_REST_URL"))?;
    let body: PurgeBody = req.json()?;
    if body.targets.is_empty() || body.targets.len() > 100 {
        return Err(AppError::BadRequest { code: "invalid_targets", message: "targets: give 1 to 100 {url} or {prefix} objects".into() });
    }
    let mut targets = Vec::new();
    for (i, t) in body.targets.iter().enumerate() {
        let target = purge_target(&cfg.cache, t.url.as_deref(), t.prefix.as_deref())
            .map_err(|m| AppError::BadRequest { code: "invalid_target", message: format!("targets[{i}]: {m}") })?;
        targets.push(target);
    }
    let site = site_of(req);
    let (key, now) = (key(cfg, &site), out.now_ms().round() as u64);
    let mut hset = vec!["HSET".to_string(), key.clone()];
    for t in &targets {
        hset.extend([t.clone(), now.to_string()]);
    }
    let store = Store::new(upstash, out, iso);
    let results = store
        .multi_exec("cache_purge", &[hset, cmd(["EXPIRE".to_string(), key.clone(), RECORD_TTL_SECS.to_string()]), cmd(["HLEN".to_string(), key.clone()])], Retry::Idempotent)
        .await?;
    let count = results.last().and_then(|r| r.as_ref().ok()).and_then(Value::as_int).unwrap_or(0);
    let collapsed = count as usize > MAX_PURGE_RECORDS;
    if collapsed {
        // Too many to check on every hit: one record that covers everything stored until now.
        let everything = vec!["HSET".to_string(), key.clone(), "prefix:/".into(), now.to_string()];
        store.multi_exec("cache_purge", &[cmd(["DEL".to_string(), key.clone()]), everything, cmd(["EXPIRE".to_string(), key, RECORD_TTL_SECS.to_string()])], Retry::Idempotent).await?;
    }
    // This isolate reads the records again on its next lookup.
    iso.purges.borrow_mut().remove(&site);
    Ok(Reply::json(
        200,
        &serde_json::json!({ "site": site, "purged": targets, "at_ms": now, "collapsed_to_everything": collapsed, "elsewhere_within_ms": REFRESH_MS }),
    ))
}
