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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::native::NativeOutbound;
    use crate::testsupport::LocalStore;

    const ADMIN: &str = "admin-token-0123456789";

    fn req(body: &str) -> Incoming {
        Incoming {
            method: "POST".into(),
            path: "/admin/cache/purge".into(),
            query: None,
            host: "shop.example".into(),
            origin: "https://shop.example".into(),
            headers: vec![("authorization".into(), format!("Bearer {ADMIN}"))],
            body: body.as_bytes().to_vec(),
            secure: true,
            country: None,
            region: None,
        }
    }

    #[test]
    fn records_are_shared_through_the_store_and_collapse_past_the_cap() {
        let store = LocalStore::start();
        let vars = [("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str()), ("ADMIN_TOKEN", ADMIN)];
        let cfg = Config::from_source(&vars[..]).unwrap();
        let out = NativeOutbound;
        let (taker, other) = (Isolate::default(), Isolate::default());
        pollster::block_on(async {
            // Another isolate has read the (empty) records just before the purge.
            assert_eq!(current(&cfg, &out, &other, "shop.example").await, Purges::default());
            let r = purge(&req(r#"{"targets":[{"url":"https://shop.example/p/1?fbclid=x"},{"prefix":"/blog/"}]}"#), &cfg, &out, &taker).await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body_json()["purged"], serde_json::json!(["url:/p/1", "prefix:/blog/"]));
            let now = out.now_ms() as u64;
            // The isolate that took it knows at once; the other one only after REFRESH_MS.
            assert!(current(&cfg, &out, &taker, "shop.example").await.covers("/p/1", now - 1000));
            assert!(!current(&cfg, &out, &other, "shop.example").await.covers("/p/1", now - 1000), "read within REFRESH_MS: kept");
            other.purges.borrow_mut().get_mut("shop.example").unwrap().0 -= REFRESH_MS;
            let seen = current(&cfg, &out, &other, "shop.example").await;
            assert!(seen.covers("/p/1", now - 1000) && seen.covers("/blog/a", now - 1000) && !seen.covers("/p/2", now - 1000));
            assert!(current(&cfg, &out, &other, "another.example").await.records.is_empty(), "per site");
            // Past the cap (2 + 500 records), one record covers everything stored until then.
            for batch in 0..5 {
                let targets: Vec<String> = (0..100).map(|i| format!(r#"{{"url":"/x/{batch}/{i}"}}"#)).collect();
                purge(&req(&format!(r#"{{"targets":[{}]}}"#, targets.join(","))), &cfg, &out, &taker).await.unwrap();
            }
            let all = current(&cfg, &out, &taker, "shop.example").await;
            assert_eq!(all.records.len(), 1, "{:?}", all.records.first());
            assert!(all.covers("/anything", now));
            // Bodies that are not the documented object change nothing.
            for bad in ["[]", "{}", r#"{"targets":[]}"#, r#"{"targets":[{"url":"/a"}],"extra":1}"#, r#"{"targets":[{"url":"/a","colour":1}]}"#, "nope"] {
                let e = purge(&req(bad), &cfg, &out, &taker).await.unwrap_err();
                assert_eq!(e.into_reply().status, 400, "{bad}");
            }
        });
    }
}
