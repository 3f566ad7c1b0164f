//! `/admin/*`: Bearer `ADMIN_TOKEN` checked in constant time, and the operator endpoints that only
//! read or reset the worker's own state (stats, store purge by module).

use sha2::{Digest, Sha256};

use crate::capi::deliver::dlq_key;
use crate::config::Config;
use crate::error::AppError;
use crate::events::dedup::books_key;
use crate::events::outbox::{EventSink, QueuedEvent};
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::{cmd, codec, Isolate, Keys, Module, Retry, Store, Value};

/// Compares digests, so neither the token's bytes nor its length leak through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter().zip(db.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn authorize(req: &Incoming, cfg: &Config) -> Result<(), AppError> {
    let Some(expected) = &cfg.admin_token else {
        return Err(AppError::NotConfigured("ADMIN_TOKEN"));
    };
    let given = req.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

/// The tenant an admin call is about: `?site=`, else the host it was sent to.
pub fn site_of(req: &Incoming) -> String {
    req.query_param("site").unwrap_or_else(|| req.host.clone())
}

fn store<'a, O: Outbound>(cfg: &'a Config, out: &'a O, iso: &'a Isolate) -> Result<Store<'a, O>, AppError> {
    let upstash = cfg.upstash.as_ref().ok_or(AppError::NotConfigured("UPSTASH_REDIS_REST_URL"))?;
    Ok(Store::new(upstash, out, iso))
}

/// The site's books from the store (accepted = delivered + in flight + dead-lettered), and this
/// isolate's view of the store (latency percentiles, breaker, fallbacks).
pub async fn stats<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let keys = Keys::new(&cfg.key_prefix, &site_of(req));
    let books = match store(cfg, out, iso) {
        Ok(s) => match read_books(&s, &keys).await {
            Ok(v) => Some(books_json(&v)),
            Err(e) => {
                let mut b = serde_json::json!({});
                b["error"] = serde_json::json!(e.to_string());
                Some(b)
            }
        },
        Err(_) => None,
    };
    let zaraz = match store(cfg, out, iso) {
        Ok(s) => {
            let r = s
                .pipeline(
                    "zaraz_status",
                    &[cmd(["GET".to_string(), zaraz_keys(cfg).key(Module::Zaraz, "drift")]), cmd(["GET".to_string(), zaraz_keys(cfg).key(Module::Zaraz, "last")])],
                    Retry::Idempotent,
                )
                .await
                .unwrap_or_default();
            let parse = |i: usize| {
                r.get(i).and_then(|v| v.as_ref().ok()).and_then(Value::as_str).and_then(|t| codec::decode(t).ok()).and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            };
            serde_json::json!({ "drift": parse(0), "last_sync": parse(1) })
        }
        Err(_) => serde_json::Value::Null,
    };
    let body = serde_json::json!({
        "site": keys.site(),
        "books": books,
        "zaraz": zaraz,
        "isolate": { "upstash": iso.snapshot(out.now_ms()) },
    });
    Ok(Reply::json(200, &body))
}

/// The books, after writing what this isolate still owes them for the site (best effort: what
/// cannot be written now stays owed and is written later, once).
async fn read_books<O: Outbound>(s: &Store<'_, O>, keys: &Keys) -> Result<Value, crate::upstash::StoreError> {
    let token = format!("books-{:x}", (s.now_ms() * 1000.0) as u64);
    let _ = crate::events::dedup::flush(s, keys, &token).await;
    s.command("books", &cmd(["HGETALL".to_string(), books_key(keys)]), Retry::Idempotent).await
}

fn books_json(v: &Value) -> serde_json::Value {
    let mut fields = std::collections::BTreeMap::new();
    if let Value::Array(items) = v {
        for pair in items.chunks(2) {
            if let [Value::Str(k), Value::Str(n)] = pair {
                fields.insert(k.clone(), n.parse::<i64>().unwrap_or(0));
            }
        }
    }
    let get = |k: &str| fields.get(k).copied().unwrap_or(0);
    let in_flight = get("accepted") - get("delivered") - get("dead_lettered");
    serde_json::json!({
        "accepted": get("accepted"), "duplicates": get("duplicates"), "rejected": get("rejected"),
        "delivered": get("delivered"), "retried": get("retried"), "dead_lettered": get("dead_lettered"),
        "in_flight": in_flight,
    })
}

/// `GET /admin/dlq?site=&limit=`: the newest dead letters first, with their reasons.
pub async fn dlq_list<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let limit: i64 = req.query_param("limit").and_then(|l| l.parse().ok()).filter(|l| (1..=1000).contains(l)).unwrap_or(100);
    let site = crate::upstash::keys::sanitize_site(&site_of(req));
    let key = dlq_key(&cfg.key_prefix, &site);
    let s = store(cfg, out, iso)?;
    let r = s.pipeline("dlq_list", &[cmd(["LLEN".to_string(), key.clone()]), cmd(["LRANGE".to_string(), key, "0".into(), (limit - 1).to_string()])], Retry::Idempotent).await?;
    let total = r.first().and_then(|v| v.as_ref().ok()).and_then(Value::as_int).unwrap_or(0);
    let entries: Vec<serde_json::Value> = match r.get(1) {
        Some(Ok(Value::Array(items))) => items.iter().filter_map(|v| v.as_str()).filter_map(|raw| codec::decode(raw).ok()).filter_map(|t| serde_json::from_str(&t).ok()).collect(),
        _ => Vec::new(),
    };
    Ok(Reply::json(200, &serde_json::json!({ "site": site, "total": total, "entries": entries })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    #[serde(default)]
    event_ids: Option<Vec<String>>,
    #[serde(default)]
    all: bool,
}

/// `POST /admin/dlq/replay`: puts dead letters back on the queue (`{"event_ids": [...]}` or
/// `{"all": true}`), then removes exactly those from the list. Queue first: a failure leaves them
/// where they were.
pub async fn dlq_replay<O: Outbound, S: EventSink>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate, sink: &S) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let body: ReplayBody = req.json()?;
    if body.event_ids.is_none() && !body.all {
        return Err(AppError::BadRequest { code: "invalid_replay", message: "give event_ids: [...] or all: true".into() });
    }
    let site = crate::upstash::keys::sanitize_site(&site_of(req));
    let key = dlq_key(&cfg.key_prefix, &site);
    let s = store(cfg, out, iso)?;
    let raw = match s.command("dlq_read", &cmd(["LRANGE".to_string(), key.clone(), "0".into(), "999".into()]), Retry::Idempotent).await? {
        Value::Array(items) => items.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let mut chosen: Vec<(String, QueuedEvent)> = Vec::new();
    for stored in raw {
        let Some(entry) = codec::decode(&stored).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) else { continue };
        let wanted = body.all || body.event_ids.as_ref().is_some_and(|ids| entry["event_id"].as_str().is_some_and(|id| ids.iter().any(|w| w == id)));
        if let (true, Ok(mut msg)) = (wanted, serde_json::from_value::<QueuedEvent>(entry["message"].clone())) {
            msg.accepted_at_ms = out.now_ms() as i64;
            chosen.push((stored, msg));
        }
    }
    for chunk in chosen.chunks(crate::events::collect::QUEUE_BATCH_MESSAGES) {
        let messages: Vec<QueuedEvent> = chunk.iter().map(|(_, m)| m.clone()).collect();
        sink.send_batch(&messages).await.map_err(|e| AppError::Unavailable { code: "queue_unavailable", message: format!("replay not queued: {e}"), retry_after_secs: 2 })?;
    }
    let mut commands: Vec<crate::upstash::Command> = chosen.iter().map(|(stored, _)| cmd(["LREM".to_string(), key.clone(), "1".into(), stored.clone()])).collect();
    if !chosen.is_empty() {
        // Replayed letters are back in flight: take them off the dead-lettered count.
        commands.push(cmd(["HINCRBY".to_string(), books_key(&Keys::new(&cfg.key_prefix, &site)), "dead_lettered".into(), format!("-{}", chosen.len())]));
        // There is room again; dead letters still waiting raise the alarm anew if it is not enough.
        commands.push(cmd(["HDEL".to_string(), crate::capi::deliver::alarms_key(&cfg.key_prefix), format!("dlq:{site}")]));
        s.multi_exec("dlq_remove", &commands, Retry::Once).await?;
    }
    let ids: Vec<&str> = chosen.iter().map(|(_, m)| m.event_id()).collect();
    Ok(Reply::json(200, &serde_json::json!({ "site": site, "replayed": ids })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    module: String,
}

/// Deletes one module's keys for one site (e.g. reset dedup claims), SCAN + UNLINK in pages.
pub async fn purge<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let body: PurgeBody = req.json()?;
    let module = Module::parse(&body.module).ok_or_else(|| AppError::BadRequest {
        code: "unknown_module",
        message: "module must be one of evt, rl, dlq, stats, zaraz, sent, cache".into(),
    })?;
    let keys = Keys::new(&cfg.key_prefix, &site_of(req));
    let s = store(cfg, out, iso)?;
    let (deleted, complete) = s.delete_matching(&keys.pattern(module), 1000, 40).await?;
    if module == Module::Dlq && complete {
        s.command("dlq_alarm_clear", &cmd(["HDEL".to_string(), crate::capi::deliver::alarms_key(&cfg.key_prefix), format!("dlq:{}", keys.site())]), Retry::Idempotent).await?;
    }
    if module == Module::Evt {
        // The L1 would otherwise keep answering "duplicate" for ids that are no longer claimed.
        *iso.claimed.borrow_mut() = crate::upstash::local::TtlSet::new(20_000);
        *iso.claimed_locally.borrow_mut() = crate::upstash::local::TtlSet::new(20_000);
    }
    Ok(Reply::json(200, &serde_json::json!({ "module": module.as_str(), "site": keys.site(), "deleted": deleted, "complete": complete })))
}

/// Zaraz state (checkpoint, last sync, drift) belongs to the zone, whichever host an admin call
/// or the cron came through: keyed by the zone id.
pub fn zaraz_keys(cfg: &Config) -> Keys {
    Keys::new(&cfg.key_prefix, cfg.cloudflare.zone_id.as_deref().unwrap_or("zone"))
}

/// The cron's drift check: the plan, computed without writing to Cloudflare, kept for `/admin/stats`.
pub async fn record_drift<O: Outbound>(cfg: &Config, out: &O, iso: &Isolate) -> Result<serde_json::Value, AppError> {
    let drift = match crate::zaraz::drift(cfg, out).await {
        Ok(d) => d,
        Err(e) => serde_json::json!({ "error": { "code": e.code(), "message": e.to_string() }, "checked_at_ms": out.now_ms().round() }),
    };
    store(cfg, out, iso)?.set(&zaraz_keys(cfg).key(Module::Zaraz, "drift"), &drift.to_string(), 7 * 24 * 3600).await?;
    Ok(drift)
}

/// `GET /admin/zaraz/diff`: what a sync would change now (reads only).
pub async fn zaraz_diff<O: Outbound>(req: &Incoming, cfg: &Config, out: &O) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    Ok(Reply::json(200, &crate::zaraz::diff(cfg, out).await?))
}

/// `POST /admin/zaraz/sync` with `{"dry_run", "remove", "publish"}`.
pub async fn zaraz_sync<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let body: crate::zaraz::SyncRequest = if req.body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { req.json()? };
    let keys = zaraz_keys(cfg);
    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    let report = crate::zaraz::sync(cfg, out, store.as_ref(), &keys, &body).await?;
    if let Some(s) = &store {
        // The last sync, for the dashboard.
        let _ = s.set(&keys.key(Module::Zaraz, "last"), &report.to_string(), 30 * 24 * 3600).await;
    }
    Ok(Reply::json(200, &report))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretHandlingBody {
    keeps_secrets: bool,
}

/// `POST /admin/zaraz/secret-handling {"keeps_secrets": bool}`: what an operator knows about how
/// this zone treats a secret variable written without its value (see `zaraz::secrets`).
pub async fn zaraz_secret_handling<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let body: SecretHandlingBody = req.json()?;
    let s = store(cfg, out, iso)?;
    Ok(Reply::json(200, &crate::zaraz::set_secret_handling(cfg, &s, &zaraz_keys(cfg), !body.keeps_secrets).await?))
}

/// `GET /admin/zaraz/history?limit=`: recent Zaraz configuration records, to pick one to restore.
pub async fn zaraz_history<O: Outbound>(req: &Incoming, cfg: &Config, out: &O) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let limit = req.query_param("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    Ok(Reply::json(200, &crate::zaraz::history(cfg, out, limit).await?))
}

/// `GET /admin/match-quality?site=`: per event name, how many accepted events carried each match key,
/// and the estimated score (see `events::quality` for the weights). Writes this isolate's pending
/// counts first, in the same round trip.
pub async fn match_quality<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let keys = Keys::new(&cfg.key_prefix, &site_of(req));
    let s = store(cfg, out, iso)?;
    // Counted by the queue consumer as each event is delivered.
    let names: Vec<&str> = cfg.catalog.names().collect();
    let commands: Vec<crate::upstash::Command> = names.iter().map(|n| cmd(["HGETALL".to_string(), crate::events::dedup::match_key(&keys, n)])).collect();
    let results = s.pipeline("match_quality", &commands, Retry::Idempotent).await?;
    let mut by_event = serde_json::Map::new();
    let mut total: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for (name, r) in names.iter().zip(results) {
        let mut fields = std::collections::BTreeMap::new();
        if let Ok(Value::Array(items)) = r {
            for pair in items.chunks(2) {
                if let [Value::Str(k), Value::Str(n)] = pair {
                    fields.insert(k.clone(), n.parse::<u64>().unwrap_or(0));
                }
            }
        }
        if fields.get("events").copied().unwrap_or(0) == 0 {
            continue;
        }
        for (k, n) in &fields {
            *total.entry(k.clone()).or_default() += n;
        }
        by_event.insert(name.to_string(), crate::events::quality::report(&fields));
    }
    let weights: serde_json::Map<String, serde_json::Value> = crate::events::quality::WEIGHTS.iter().map(|(k, w)| (k.to_string(), serde_json::json!(w))).collect();
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "site": keys.site(),
            "all_events": crate::events::quality::report(&total),
            "by_event": by_event,
            "weights": weights,
            "note": "estimated_score is edgekeeper's estimate from key coverage and these weights, not Meta's Event Match Quality",
        }),
    ))
}

/// The URL `/admin/cache/explain?url=` asks about: where it is fetched from, and the worker-cache
/// key a site request for it would use.
pub struct ExplainTarget {
    pub url: String,
    pub fetch: String,
    pub path: String,
    pub key: String,
}

/// `host[:port]` of an origin.
fn authority(origin: &str) -> &str {
    origin.split_once("://").map_or(origin, |(_, a)| a)
}

pub fn explain_target(req: &Incoming, cfg: &Config) -> Result<ExplainTarget, AppError> {
    let url = req.query_param("url").filter(|u| crate::events::intake::valid_url(u)).ok_or_else(|| AppError::BadRequest {
        code: "invalid_url",
        message: "give ?url= an absolute http(s) URL".into(),
    })?;
    let origin = crate::cache_policy::stored::url_origin(&url);
    let parts = crate::request::split_url(&url);
    let path_and_query = url[origin.len()..].split('#').next().unwrap_or("");
    let fetch = match &cfg.origin_url {
        Some(base) => format!("{base}{}", if path_and_query.is_empty() { "/" } else { path_and_query }),
        // Fetched as given: only a host of this site's (the request's own, or a `PIXELS` site), so
        // an admin token cannot make the worker fetch anything else on the internet.
        None if authority(&origin).eq_ignore_ascii_case(authority(&req.origin)) || cfg.matching.pixels.iter().any(|p| p.site.eq_ignore_ascii_case(authority(&origin))) => url.clone(),
        None => {
            return Err(AppError::BadRequest {
                code: "host_not_allowed",
                message: format!("explain fetches only this site's own hosts ({} and the PIXELS sites); {} is not one", authority(&req.origin), authority(&origin)),
            })
        }
    };
    let key = cfg.cache.cache_key(&origin, &parts.path, parts.query.as_deref());
    let path = parts.path;
    Ok(ExplainTarget { fetch, path, key, url })
}

/// `GET /admin/cache/explain?url=`: fetches the URL from the origin as an anonymous navigation and
/// reports the policy's decision; `stored` is the copy the worker's cache holds for it (read by the
/// edge, which owns the cache).
pub async fn cache_explain<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, stored: Option<&crate::cache_policy::StoredMeta>) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let t = explain_target(req, cfg)?;
    let facts = crate::cache_policy::RequestFacts { method: "GET".into(), path: t.path.clone(), accepts_html: true, ..Default::default() };
    let resp = out
        .send(crate::http::OutboundRequest {
            method: crate::http::Method::Get,
            url: t.fetch.clone(),
            headers: vec![("accept".into(), "text/html,*/*".into())],
            body: None,
            timeout_ms: 10_000,
            response_headers: true,
        })
        .await
        .map_err(|e| AppError::Unavailable { code: "origin_unreachable", message: format!("origin: {e}"), retry_after_secs: 5 })?;
    let mut report = cfg.cache.explain(&facts, resp.status, &resp.headers, &t.key, stored, out.now_ms().max(0.0) as u64);
    report["url"] = serde_json::json!(t.url);
    report["policy_enabled"] = serde_json::json!(cfg.cache.enabled);
    Ok(Reply::json(200, &report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_fetches_only_the_site_s_own_hosts_without_an_origin_url() {
        let cfg = Config::from_source(&[("PIXELS", r#"{"b.example": {"pixel_id": "1", "token_secret": "T"}}"#), ("T", "t")][..]).unwrap();
        let req = |url: &str| Incoming { host: "shop.example".into(), origin: "https://shop.example".into(), query: Some(format!("url={url}")), ..Default::default() };
        assert_eq!(explain_target(&req("https://shop.example/p/1"), &cfg).map(|t| t.fetch).ok().as_deref(), Some("https://shop.example/p/1"));
        assert!(explain_target(&req("https://b.example/"), &cfg).is_ok(), "a PIXELS site");
        assert!(explain_target(&req("http://SHOP.example/"), &cfg).is_ok(), "the same host by either scheme");
        for other in ["https://evil.example/", "http://169.254.169.254/latest", "https://shop.example.evil.example/", "https://shop.example:8443/"] {
            assert_eq!(explain_target(&req(other), &cfg).err().map(|e| e.code()), Some("host_not_allowed"), "{other}");
        }
        let proxied = Config::from_source(&[("ORIGIN_URL", "http://127.0.0.1:9")][..]).unwrap();
        assert_eq!(explain_target(&req("https://any.example/x"), &proxied).unwrap().fetch, "http://127.0.0.1:9/x", "ORIGIN_URL: always the origin");
    }

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
