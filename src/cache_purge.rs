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

/// Records the targets at `now` in one atomic step; past MAX_PURGE_RECORDS the records collapse into
/// one purge of everything stored until now (too many to check on every hit). Returns 1 if so.
const RECORD_SCRIPT: &str = "for i = 4, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], ARGV[1]) end \
local collapsed = 0 \
if redis.call('HLEN', KEYS[1]) > tonumber(ARGV[3]) then redis.call('DEL', KEYS[1]); redis.call('HSET', KEYS[1], 'prefix:/', ARGV[1]); collapsed = 1 end \
redis.call('EXPIRE', KEYS[1], ARGV[2]) return collapsed";

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

/// `POST /admin/cache/purge` with `{"targets": [{"url": "https://shop/p/42"}, {"prefix": "/p/"}]}`.
pub async fn purge<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let upstash = cfg.upstash.as_ref().ok_or(AppError::NotConfigured("UPSTASH_REDIS_REST_URL"))?;
    // Walked by hand rather than derived: two more Deserialize impls would cost module size.
    let body: serde_json::Value = req.json()?;
    let invalid = |message: String| AppError::BadRequest { code: "invalid_targets", message };
    let items = match body.as_object().map(|o| (o.len(), o.get("targets"))) {
        Some((1, Some(serde_json::Value::Array(items)))) if (1..=100).contains(&items.len()) => items,
        _ => return Err(invalid("give {\"targets\": [...]} with 1 to 100 {\"url\"} or {\"prefix\"} objects, nothing else".into())),
    };
    let mut targets = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let field = |name: &str| t.get(name).and_then(|v| v.as_str());
        let known = t.as_object().is_some_and(|o| o.keys().all(|k| k == "url" || k == "prefix"));
        let target = purge_target(&cfg.cache, field("url"), field("prefix"))
            .filter(|_| known)
            .ok_or_else(|| invalid(format!("targets[{i}]: give exactly one of url (a path or an http(s) URL) or prefix (a path starting with /)")))?;
        targets.push(target);
    }
    let site = site_of(req);
    let now = out.now_ms().round() as u64;
    let mut args = vec![now.to_string(), RECORD_TTL_SECS.to_string(), MAX_PURGE_RECORDS.to_string()];
    args.extend(targets.iter().cloned());
    let collapsed = Store::new(upstash, out, iso).eval("cache_purge", RECORD_SCRIPT, &[key(cfg, &site)], &args, Retry::Idempotent).await?.as_int() == Some(1);
    // This isolate reads the records again on its next lookup.
    iso.purges.borrow_mut().remove(&site);
    Ok(Reply::json(
        200,
        &serde_json::json!({ "site": site, "purged": targets, "at_ms": now, "collapsed_to_everything": collapsed, "elsewhere_within_ms": REFRESH_MS }),
    ))
}
