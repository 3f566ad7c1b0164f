//! One sync run from start to report: read and plan; stop there for a dry run or an empty plan;
//! otherwise load the checkpoint, decide how secrets travel, note the history record the run starts
//! from, apply the chunks, verify, roll back from history if the verification fails, publish when
//! asked and the workflow is `preview`, and save the checkpoint.

use serde_json::{json, Value};

use crate::config::Config;
use crate::http::Outbound;
use crate::upstash::{Keys, Store};

use super::api::Api;
use super::apply::{End, Engine, Tuning};
use super::checkpoint::{self, Checkpoint, Run, RunState};
use super::history;
use super::model;
use super::plan;
use super::secrets::SecretGuard;
use super::{SyncRequest, ZarazError};

const MAX_REMOVE: usize = 50;

fn check_request(req: &SyncRequest) -> Result<(), ZarazError> {
    if req.remove.len() > MAX_REMOVE {
        return Err(ZarazError::InvalidRequest(format!("remove lists {} triggers; at most {MAX_REMOVE} per request", req.remove.len())));
    }
    if let Some(bad) = req.remove.iter().find(|r| r.trim().is_empty() || r.len() > 200) {
        return Err(ZarazError::InvalidRequest(format!("remove entries are trigger names or ids (1 to 200 characters), got {bad:?}")));
    }
    Ok(())
}

/// The options a run works to. A paused (or interrupted) run keeps the ones it started with: a
/// re-run that gives none continues with them; one that gives others is refused (409) rather than
/// silently changing, or dropping, a half-applied plan.
fn options(req: &SyncRequest, unfinished: Option<&Run>) -> Result<SyncRequest, ZarazError> {
    let Some(run) = unfinished else { return Ok(req.clone()) };
    let kept = SyncRequest { dry_run: req.dry_run, remove: run.remove.clone(), publish: run.publish };
    if (req.remove.is_empty() && !req.publish) || (req.remove == kept.remove && req.publish == kept.publish) {
        return Ok(kept);
    }
    Err(ZarazError::Conflict(format!(
        "an unfinished sync started with remove [{}], publish {}: run again with those options (or none) to finish it, then with the new ones",
        run.remove.join(", "),
        run.publish
    )))
}

/// Events that now have more than one trigger edgekeeper made: a duplicate the sync must not
/// make (a retry that added again what had landed). Duplicates made by hand are only reported.
fn duplicates_made(now: &Value, desired: &[&str]) -> Vec<String> {
    let Ok(triggers) = model::triggers(now) else { return Vec::new() };
    let managed = |e: &str| model::triggers_for(triggers, e).into_iter().filter(|id| triggers.get(*id).is_some_and(model::is_managed)).count();
    desired.iter().filter(|e| managed(e) > 1).map(|e| e.to_string()).collect()
}

pub async fn sync<O: Outbound>(
    cfg: &Config,
    out: &O,
    store: Option<&Store<'_, O>>,
    keys: &Keys,
    req: &SyncRequest,
    tuning: &Tuning,
) -> Result<Value, ZarazError> {
    let started = out.now_ms();
    check_request(req)?;
    let api = Api::new(&cfg.cloudflare, out)?;
    let desired: Vec<&str> = cfg.catalog.names().collect();
    let start = api.config().await?;
    // A dry run reads no checkpoint: it plans with the options it was given.
    let key = checkpoint::key(keys);
    let (cp, store_state) = match store.filter(|_| !req.dry_run) {
        None => (Checkpoint::new(api.zone), "none".to_string()),
        Some(s) => match checkpoint::load(s, &key, api.zone).await {
            Ok(c) => (c, "ok".to_string()),
            Err(e) => (Checkpoint::new(api.zone), format!("unreadable: {e}")),
        },
    };
    let opts = options(req, cp.unfinished())?;
    let req = &opts;
    let plan0 = plan::plan(&start, &desired, &req.remove)?;
    let mut report = json!({ "zone": api.zone, "dry_run": req.dry_run, "plan": plan0.to_json(), "remove": req.remove, "publish": req.publish });
    let finish = |mut report: Value, outcome: &str, api: &Api<'_, O>| {
        report["outcome"] = json!(outcome);
        report["calls"] = json!(api.calls());
        report["duration_ms"] = json!((out.now_ms() - started).max(0.0).round());
        report
    };
    if req.dry_run {
        return Ok(finish(report, "dry_run", &api));
    }
    if plan0.is_empty() {
        // Nothing to write; only an interrupted run's bookkeeping is closed.
        if let (Some(s), Some(run)) = (store, cp.unfinished()) {
            let mut cp = cp.clone();
            cp.run = Some(Run { state: RunState::Done, ..run.clone() });
            if let Err(e) = checkpoint::save(s, &key, &cp).await {
                report["warnings"] = json!([format!("checkpoint not closed: {e}")]);
            }
        }
        if req.publish {
            report["publish"] = json!({ "published": false, "reason": "no changes: nothing of edgekeeper's to publish" });
        }
        return Ok(finish(report, "no_changes", &api));
    }

    // Cloudflare does not document what a PUT does with a secret sent without its value: unless an
    // operator said this zone keeps them (and the checkpoint can be read to know it), assume it
    // wipes them, so secrets are only written with their values carried from the export.
    let zone_drops = !cp.secrets_kept() || store_state.starts_with("unreadable");
    let secrets = SecretGuard::prepare(&api, &start, zone_drops).await?;
    let mut warnings = Vec::new();
    let newest = match api.history(tuning.history_window).await {
        Ok(records) => records.first().map(|r| r.id),
        Err(e @ ZarazError::Unauthorized { .. }) => return Err(e),
        Err(e) => {
            warnings.push(format!("history unreadable ({e}): no rollback possible for this run"));
            None
        }
    };
    let resumed = cp.unfinished().cloned();
    let run = match resumed.clone() {
        Some(r) => Run { state: RunState::Running, known_history: newest.or(r.known_history), ..r },
        None => Run {
            started_at_ms: started,
            start_record: newest,
            start_hash: model::config_hash(&start),
            known_history: newest,
            remove: req.remove.clone(),
            publish: req.publish,
            ..Run::default()
        },
    };
    let remembered_form = cp.version_form;
    let workflow = secrets.workflow().map(str::to_string);
    let mut eng = Engine::new(&api, store, key.clone(), desired.clone(), &req.remove, tuning, cp, run, secrets);
    eng.warnings = warnings;
    eng.save().await;

    let result = eng.apply_all(plan0.changes.clone()).await;
    let end = match result {
        Ok(end) => end,
        Err(e) => {
            // Left `running`: the next run resumes (and can still roll back to the same start).
            eng.save().await;
            return Err(e);
        }
    };
    let (outcome, verification, failure) = match end {
        End::Paused => ("paused", Value::Null, None),
        End::Done(now) => verify(&eng, &now, &desired, None),
        End::Failed(reason) => match api.config().await {
            Ok(now) if plan::plan(&now, &desired, &req.remove).is_ok_and(|p| p.is_empty()) => {
                verify(&eng, &now, &desired, Some(format!("the writes had landed after all: {reason}")))
            }
            Ok(now) => {
                let missing = plan::plan(&now, &desired, &req.remove).map(|p| p.to_json()["changes"].clone()).unwrap_or(Value::Null);
                ("failed", json!({ "ok": false, "remaining_changes": missing }), Some(reason))
            }
            Err(e) => ("failed", json!({ "ok": false, "error": e.to_string() }), Some(reason)),
        },
    };

    report["chunks"] = json!(eng.chunks);
    report["replans"] = json!(eng.replans);
    report["verification"] = verification;
    report["secrets"] = eng.secrets.to_json();
    report["zaraz_version"] = json!({ "form": eng.form.label(), "remembered": remembered_form.map(|f| f.label()) });

    if outcome == "failed" {
        let rollback = history::rollback(&api, &eng.run, tuning.history_window).await;
        let restored = rollback["ok"] == json!(true);
        eng.run.state = if restored { RunState::RolledBack } else { RunState::Failed };
        report["rollback"] = rollback.clone();
        let reason = failure.unwrap_or_default();
        eng.cp.last = Some(json!({ "at_ms": out.now_ms(), "outcome": if restored { "rolled_back" } else { "failed" }, "reason": reason }));
        eng.save().await;
        report["checkpoint"] = checkpoint_json(&eng, &key, resumed.is_some(), &store_state);
        report["warnings"] = json!(eng.warnings);
        let message = if restored {
            format!(
                "Zaraz sync failed ({reason}) and was rolled back: history record {} (the configuration the sync started from) is live again",
                rollback["restored_record"]
            )
        } else {
            format!(
                "Zaraz sync failed ({reason}) and was NOT rolled back: {}",
                rollback["reason"].as_str().or(rollback["answer"].as_str()).unwrap_or("the restore could not be verified")
            )
        };
        let report = finish(report, if restored { "rolled_back" } else { "failed" }, &api);
        return Err(ZarazError::Failed { message, report: Box::new(report) });
    }

    if outcome == "paused" {
        eng.run.state = RunState::Paused;
        report["resume"] = json!("stopped between chunks to stay within the subrequest budget; run the sync again to continue");
    } else {
        eng.run.state = RunState::Done;
        report["rollback"] = Value::Null;
        report["publish"] = publish(&api, req.publish, workflow.as_deref(), eng.run.applied.len()).await;
        eng.cp.last = Some(json!({ "at_ms": out.now_ms(), "outcome": "applied", "chunks": eng.run.chunks }));
    }
    eng.save().await;
    report["checkpoint"] = checkpoint_json(&eng, &key, resumed.is_some(), &store_state);
    report["warnings"] = json!(eng.warnings);
    Ok(finish(report, if outcome == "paused" { "paused" } else { "applied" }, &api))
}

/// The verification of a live read that shows the plan in place: secrets kept, no duplicate made.
fn verify<O: Outbound>(eng: &Engine<'_, O>, now: &Value, desired: &[&str], note: Option<String>) -> (&'static str, Value, Option<String>) {
    let lost = eng.secrets.lost(now);
    let duplicates = duplicates_made(now, desired);
    let ok = lost.is_empty() && duplicates.is_empty();
    let all_duplicates = plan::plan(now, desired, &[]).map(|p| p.to_json()["duplicates"].clone()).unwrap_or(Value::Null);
    let v = json!({ "ok": ok, "plan_in_place": true, "secrets_lost": lost, "duplicates_made": duplicates, "duplicates": all_duplicates, "note": note });
    if ok {
        ("applied", v, None)
    } else {
        ("failed", v, Some(format!("verification failed: secret variables lost {lost:?}, duplicate triggers for {duplicates:?}")))
    }
}

fn checkpoint_json<O: Outbound>(eng: &Engine<'_, O>, key: &str, resumed: bool, store: &str) -> Value {
    json!({
        "key": key,
        "store": store,
        "resumed": resumed,
        "writes": eng.store_calls,
        "errors": eng.store_errors,
        "state": eng.run.state,
    })
}

/// Publishes the preview when asked and the zone's workflow is `preview`; in `realtime` the
/// changes are already live.
async fn publish<O: Outbound>(api: &Api<'_, O>, asked: bool, known: Option<&str>, changes: usize) -> Value {
    if !asked {
        return Value::Null;
    }
    let workflow = match known {
        Some(w) => w.to_string(),
        None => match api.workflow().await {
            Ok(w) => w,
            Err(e) => return json!({ "published": false, "error": e.to_string() }),
        },
    };
    if workflow != "preview" {
        return json!({ "workflow": workflow, "published": false, "reason": "the realtime workflow makes changes live without publishing" });
    }
    match api.publish(&format!("edgekeeper: Zaraz triggers synced from the event catalog ({changes} changes)")).await {
        Ok(answer) => json!({ "workflow": workflow, "published": true, "answer": answer }),
        Err(e) => json!({ "workflow": workflow, "published": false, "error": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_limits() {
        let ok = SyncRequest { remove: vec!["Test".into()], ..SyncRequest::default() };
        assert!(check_request(&ok).is_ok());
        for bad in [vec![" ".to_string()], vec!["x".repeat(201)], vec!["a".to_string(); 51]] {
            let e = check_request(&SyncRequest { remove: bad, ..SyncRequest::default() }).unwrap_err();
            assert_eq!(e.code(), "invalid_request");
        }
    }

    #[test]
    fn a_resumed_run_keeps_its_options_and_refuses_others() {
        let paused = Run { state: RunState::Paused, remove: vec!["Old".into()], publish: true, ..Run::default() };
        let given = |remove: &[&str], publish| SyncRequest { remove: remove.iter().map(|r| r.to_string()).collect(), publish, ..SyncRequest::default() };
        assert_eq!(options(&given(&["New"], false), None).unwrap(), given(&["New"], false), "nothing to resume");
        assert_eq!(options(&given(&[], false), Some(&paused)).unwrap(), given(&["Old"], true), "none given: the run's own");
        assert_eq!(options(&given(&["Old"], true), Some(&paused)).unwrap(), given(&["Old"], true));
        for other in [given(&["New"], true), given(&["Old"], false), given(&[], true)] {
            assert_eq!(options(&other, Some(&paused)).unwrap_err().code(), "conflict", "{other:?}");
        }
    }

    #[test]
    fn duplicates_made_are_found() {
        let t = |e: &str| json!({ "name": e, "loadRules": [model::track_rule(e, "r")], "excludeRules": [] });
        let now = json!({ "triggers": {
            "a": t("Lead"), "b": t("Lead"),
            "c": model::desired_trigger("Purchase"), "d": model::desired_trigger("Purchase"),
            "e": model::desired_trigger("Search"), "f": t("Search"),
        } });
        assert_eq!(duplicates_made(&now, &["Lead", "Purchase", "Search"]), vec!["Purchase".to_string()]);
    }
}
