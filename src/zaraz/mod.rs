//! Zaraz trigger sync: keeps one Zaraz trigger per event of the event catalog (the `zaraz.track`
//! convention: a trigger named after the event whose load rule matches `{{ client.__zarazTrack }}`
//! EQUALS the event), through the Cloudflare API, without ever overwriting what it does not own.
//! This module provides the functions behind `GET /admin/zaraz/diff`, `POST /admin/zaraz/sync`, the
//! history listing for operators and the cron drift check; routing and the worker glue live elsewhere.
//!
//! Files: `model` (the configuration document, trigger meaning, hashes), `plan` (pure diff and
//! apply), `api` (Cloudflare calls, envelope, error classification), `apply` (chunks, retries,
//! `zarazVersion`, concurrent edits), `history` (attribution, rollback), `secrets` (secret
//! variables through a PUT), `checkpoint` (what runs remember), `run` (one sync, start to report).

mod api;
mod apply;
mod checkpoint;
mod error;
mod history;
mod model;
mod plan;
mod run;
mod secrets;

#[cfg(test)]
mod tests;

use serde_json::{json, Value};

use crate::config::Config;
use crate::http::Outbound;
use crate::upstash::{Keys, Store};

pub use error::ZarazError;

/// The body of `POST /admin/zaraz/sync`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncRequest {
    /// Plan only: no write to Cloudflare, no checkpoint write.
    pub dry_run: bool,
    /// Triggers to remove, by id or exact name (never anything else; never a system trigger).
    pub remove: Vec<String>,
    /// Publish afterwards when the zone's workflow is `preview`.
    pub publish: bool,
}

async fn read_plan<O: Outbound>(cfg: &Config, out: &O) -> Result<(String, plan::Plan), ZarazError> {
    let api = api::Api::new(&cfg.cloudflare, out)?;
    let config = api.config().await?;
    let desired: Vec<&str> = cfg.catalog.names().collect();
    Ok((api.zone.to_string(), plan::plan(&config, &desired, &[])?))
}

/// What a sync would change now, as JSON (reads only).
pub async fn diff<O: Outbound>(cfg: &Config, out: &O) -> Result<Value, ZarazError> {
    let (zone, p) = read_plan(cfg, out).await?;
    let mut v = p.to_json();
    v["zone"] = json!(zone);
    v["in_sync"] = json!(p.is_empty());
    Ok(v)
}

/// Applies the plan (see `apply` for how) and returns the report. A failed run that was rolled
/// back (or could not be) is an error whose [`ZarazError::report`] holds the report.
pub async fn sync<O: Outbound>(cfg: &Config, out: &O, store: Option<&Store<'_, O>>, keys: &Keys, req: &SyncRequest) -> Result<Value, ZarazError> {
    run::sync(cfg, out, store, keys, req, &apply::Tuning { call_budget: cfg.cloudflare.call_budget, ..apply::Tuning::default() }).await
}

/// The most recent Zaraz history records (newest first), for an operator choosing what to restore.
pub async fn history<O: Outbound>(cfg: &Config, out: &O, limit: u32) -> Result<Value, ZarazError> {
    let api = api::Api::new(&cfg.cloudflare, out)?;
    let records = api.history(limit.clamp(1, 100)).await?;
    Ok(json!({ "zone": api.zone, "records": records.iter().map(api::Record::to_json).collect::<Vec<_>>() }))
}

/// For the cron: the plan summarised, computed without writing anything.
pub async fn drift<O: Outbound>(cfg: &Config, out: &O) -> Result<Value, ZarazError> {
    let (zone, p) = read_plan(cfg, out).await?;
    let full = p.to_json();
    let events =
        |kind: &str| full[kind].as_array().map(|a| a.iter().filter_map(|x| x["event"].as_str().map(str::to_string)).collect::<Vec<_>>()).unwrap_or_default();
    Ok(json!({
        "drift": !p.is_empty(),
        "zone": zone,
        "add": events("add"),
        "update": events("update"),
        "remove": [],
        "unchanged": p.unchanged.len(),
        "duplicates": full["duplicates"],
        "orphaned": full["orphaned"],
        "checked_at_ms": out.now_ms().round(),
    }))
}

/// Records what an operator knows about how this zone treats a secret variable written without
/// its value: `dropped = true` (or never stated) makes the sync refuse such writes unless it can
/// carry the values from the export; `false` states that the zone keeps them.
pub async fn set_secret_handling<O: Outbound>(cfg: &Config, store: &Store<'_, O>, keys: &Keys, dropped: bool) -> Result<Value, ZarazError> {
    let zone = cfg.cloudflare.zone_id.as_deref().ok_or(ZarazError::NotConfigured { variable: "CLOUDFLARE_ZONE_ID" })?;
    let key = checkpoint::key(keys);
    let mut cp = checkpoint::load(store, &key, zone).await.map_err(|e| ZarazError::Store(e.to_string()))?;
    cp.secret_handling = Some(if dropped { "dropped" } else { "kept" }.to_string());
    checkpoint::save(store, &key, &cp).await.map_err(|e| ZarazError::Store(e.to_string()))?;
    Ok(json!({ "zone": zone, "secret_handling": cp.secret_handling }))
}
