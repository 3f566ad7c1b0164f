//! `/admin/*`: Bearer `ADMIN_TOKEN` checked in constant time, and the operator endpoints that only
//! read or reset the worker's own state (stats, store purge by module).

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::AppError;
use crate::http::{Outbound, Reply};
use crate::request::Incoming;
use crate::upstash::{Isolate, Keys, Module, Store};

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

pub fn stats<O: Outbound>(req: &Incoming, cfg: &Config, out: &O, iso: &Isolate) -> Result<Reply, AppError> {
    authorize(req, cfg)?;
    let body = serde_json::json!({
        "site": crate::upstash::keys::sanitize_site(&site_of(req)),
        "isolate": { "upstash": iso.snapshot(out.now_ms()) },
    });
    Ok(Reply::json(200, &body))
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
        message: "module must be one of evt, rl, dlq, stats, zaraz, sent".into(),
    })?;
    let upstash = cfg.upstash.as_ref().ok_or(AppError::NotConfigured("UPSTASH_REDIS_REST_URL"))?;
    let keys = Keys::new(&cfg.key_prefix, &site_of(req));
    let store = Store::new(upstash, out, iso);
    let (deleted, complete) = store.delete_matching(&keys.pattern(module), 1000, 40).await?;
    if module == Module::Evt {
        // The L1 would otherwise keep answering "duplicate" for ids that are no longer claimed.
        *iso.claimed.borrow_mut() = crate::upstash::local::TtlSet::new(20_000);
    }
    Ok(Reply::json(200, &serde_json::json!({ "module": module.as_str(), "site": keys.site(), "deleted": deleted, "complete": complete })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_exactly() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
