//! The pure part of the sync: compare the triggers a configuration has with the ones the event
//! catalog wants, by meaning (which `zaraz.track()` event a trigger fires on, never its id or
//! name), and turn the difference into a plan of changes; apply a chunk of changes onto a
//! configuration; tell whether a change is in place. No I/O here.
//!
//! Rules: an event is present when any non-system trigger has a load rule `__zarazTrack EQUALS
//! <event>` (duplicates are reported, never removed). An absent event whose name a trigger already
//! carries (and that fires on no other catalog event) is an update: its load rules become the track
//! rule, its id, tools' references and other fields stay. Otherwise a trigger is added. Removal
//! happens only for the triggers the request names (by id or exact name), never for system ones.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::model;
use super::ZarazError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Add {
        event: String,
        trigger_id: String,
    },
    /// `hash` is the trigger as planned on: a different hash later means someone edited it.
    Update {
        event: String,
        trigger_id: String,
        hash: String,
    },
    Remove {
        trigger_id: String,
        name: String,
        hash: String,
    },
}

impl Change {
    /// Identifies a change across re-plans: the same key and hash mean the same change.
    pub fn key(&self) -> String {
        match self {
            Change::Add { event, .. } => format!("add:{event}"),
            Change::Update { trigger_id, .. } => format!("update:{trigger_id}"),
            Change::Remove { trigger_id, .. } => format!("remove:{trigger_id}"),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Catalog events already present: event → the trigger ids that fire on it.
    pub unchanged: Vec<(String, Vec<String>)>,
    pub duplicates: Vec<(String, Vec<String>)>,
    /// Names or ids the request asked to remove that match no trigger (already gone).
    pub not_found: Vec<String>,
    /// Triggers edgekeeper created for events no longer in the catalog: reported, kept.
    pub orphaned: Vec<(String, String)>,
    /// Per change key, what a reader of a dry run should know (rules replaced, tools referencing).
    details: BTreeMap<String, Value>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let mut add = Vec::new();
        let mut update = Vec::new();
        let mut remove = Vec::new();
        for c in &self.changes {
            let extra = self.details.get(&c.key()).cloned().unwrap_or(Value::Null);
            match c {
                Change::Add { event, trigger_id } => add.push(json!({ "event": event, "trigger_id": trigger_id })),
                Change::Update { event, trigger_id, .. } => update.push(json!({ "event": event, "trigger_id": trigger_id, "replaced_load_rules": extra })),
                Change::Remove { trigger_id, name, .. } => remove.push(json!({ "trigger_id": trigger_id, "name": name, "referenced_by": extra })),
            }
        }
        let pairs = |v: &[(String, Vec<String>)]| v.iter().map(|(e, ids)| json!({ "event": e, "trigger_ids": ids })).collect::<Vec<_>>();
        json!({
            "changes": self.changes.len(),
            "add": add,
            "update": update,
            "remove": remove,
            "unchanged": pairs(&self.unchanged),
            "duplicates": pairs(&self.duplicates),
            "not_found": self.not_found,
            "orphaned": self.orphaned.iter().map(|(id, name)| json!({ "trigger_id": id, "name": name })).collect::<Vec<_>>(),
        })
    }
}

/// Computes the plan for `config`. Fails (400) only on what the request asked that must not be done.
pub fn plan(config: &Value, desired: &[&str], remove: &[String]) -> Result<Plan, ZarazError> {
    let triggers = model::triggers(config).map_err(ZarazError::Cloudflare)?;
    let mut p = Plan::default();

    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut removes = Vec::new();
    for wanted in dedup(remove.iter().map(String::as_str)) {
        let targets: Vec<&str> = if triggers.contains_key(wanted) {
            vec![wanted]
        } else {
            let mut ids: Vec<&str> = triggers.iter().filter(|(_, t)| model::name(t) == wanted).map(|(id, _)| id.as_str()).collect();
            crate::sorting::sort(&mut ids);
            ids
        };
        if targets.is_empty() {
            p.not_found.push(wanted.to_string());
        }
        for id in targets {
            let t = &triggers[id];
            if model::is_system(t) {
                return Err(ZarazError::InvalidRequest(format!("trigger '{id}' ('{}') is a Zaraz system trigger and cannot be removed", model::name(t))));
            }
            if removed.insert(id.to_string()) {
                let c = Change::Remove { trigger_id: id.to_string(), name: model::name(t).to_string(), hash: model::hash(t) };
                p.details.insert(c.key(), json!(model::trigger_refs(config, id)));
                removes.push(c);
            }
        }
    }

    let desired: Vec<&str> = dedup(desired.iter().copied()).collect();
    let mut new_ids: BTreeSet<String> = BTreeSet::new();
    for event in &desired {
        let present: Vec<String> = model::triggers_for(triggers, event).into_iter().filter(|id| !removed.contains(*id)).map(str::to_string).collect();
        if !present.is_empty() {
            if present.len() > 1 {
                p.duplicates.push((event.to_string(), present.clone()));
            }
            p.unchanged.push((event.to_string(), present));
            continue;
        }
        if let Some(id) = removed.iter().find(|id| triggers.get(id.as_str()).is_some_and(|t| model::tracks(t, event))) {
            return Err(ZarazError::InvalidRequest(format!(
                "removing trigger '{id}' would leave catalog event '{event}' without a trigger, and the sync would add one straight back; remove the event from the catalog instead"
            )));
        }
        // A trigger already named after the event, firing on no other catalog event: fix its rule.
        let mut same_name: Vec<(&String, &Value)> = triggers
            .iter()
            .filter(|(id, t)| !removed.contains(*id) && !model::is_system(t) && model::name(t) == *event)
            .filter(|(_, t)| model::tracked_events(t).iter().all(|e| !desired.contains(e)))
            .collect();
        crate::sorting::sort_by(&mut same_name, |a, b| a.0 < b.0);
        if let Some((id, t)) = same_name.first() {
            let c = Change::Update { event: event.to_string(), trigger_id: id.to_string(), hash: model::hash(t) };
            p.details.insert(c.key(), t.get("loadRules").cloned().unwrap_or(Value::Null));
            p.changes.push(c);
        } else {
            let id = model::trigger_id(event, |id| triggers.contains_key(id) || new_ids.contains(id));
            new_ids.insert(id.clone());
            p.changes.push(Change::Add { event: event.to_string(), trigger_id: id });
        }
    }
    p.changes.extend(removes);

    let mut orphaned: Vec<(String, String)> = triggers
        .iter()
        .filter(|(id, t)| !removed.contains(*id) && model::is_managed(t))
        .filter(|(_, t)| model::tracked_events(t).iter().all(|e| !desired.contains(e)))
        .map(|(id, t)| (id.clone(), model::name(t).to_string()))
        .collect();
    crate::sorting::sort(&mut orphaned);
    p.orphaned = orphaned;
    Ok(p)
}

fn dedup<'a>(items: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    let mut seen = BTreeSet::new();
    items.filter(move |s| seen.insert(*s))
}

/// `config` with `changes` applied; everything else is kept as read.
pub fn apply(config: &Value, changes: &[Change]) -> Result<Value, ZarazError> {
    let mut out = config.clone();
    for c in changes {
        let triggers = out
            .get_mut("triggers")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ZarazError::Cloudflare("the configuration has no `triggers` object".into()))?;
        match c {
            Change::Add { event, trigger_id } => {
                triggers.insert(trigger_id.clone(), model::desired_trigger(event));
            }
            Change::Update { event, trigger_id, .. } => {
                if let Some(t) = triggers.get_mut(trigger_id).and_then(Value::as_object_mut) {
                    t.insert("loadRules".into(), json!([model::track_rule(event, &model::rule_id(event))]));
                    t.entry("excludeRules").or_insert_with(|| json!([]));
                }
            }
            Change::Remove { trigger_id, .. } => model::remove_trigger(&mut out, trigger_id),
        }
    }
    Ok(out)
}

/// Whether a change is in effect in `config`, by meaning: after a timeout this tells whether the
/// write landed, whatever id the trigger ended up with.
pub fn in_place(config: &Value, change: &Change) -> bool {
    let Ok(triggers) = model::triggers(config) else { return false };
    match change {
        Change::Add { event, .. } | Change::Update { event, .. } => !model::triggers_for(triggers, event).is_empty(),
        Change::Remove { trigger_id, .. } => !triggers.contains_key(trigger_id),
    }
}

/// `before` without the changes that were applied (same key).
pub fn without(before: &[Change], applied: &[Change]) -> Vec<Change> {
    before.iter().filter(|c| !applied.iter().any(|a| a.key() == c.key())).cloned().collect()
}

/// The changes of `now` that differ from what was expected (new, gone, or touched trigger edited).
pub fn differences(expected: &[Change], now: &[Change]) -> Vec<String> {
    let mut out: Vec<String> = expected.iter().filter(|c| !now.contains(c)).map(|c| format!("{} no longer as planned", c.key())).collect();
    out.extend(now.iter().filter(|c| !expected.contains(c)).map(|c| format!("{} newly needed", c.key())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trig(name: &str, event: Option<&str>) -> Value {
        let rules = event.map(|e| vec![model::track_rule(e, &format!("r{e}"))]).unwrap_or_default();
        json!({ "name": name, "description": "", "loadRules": rules, "excludeRules": [] })
    }

    fn cfg(triggers: Value) -> Value {
        json!({
            "zarazVersion": 3, "dataLayer": true, "debugKey": "k", "settings": {"autoInjectScript": true},
            "tools": {"fb": {"name": "FB", "type": "component", "enabled": true, "blockingTriggers": ["test1"],
                "neoEvents": [{"actionType": "event", "firingTriggers": ["lead", "test1"], "blockingTriggers": []}]}},
            "triggers": triggers,
            "variables": {},
        })
    }

    fn base() -> Value {
        cfg(json!({
            "Pageview": {"name": "Pageview", "loadRules": [], "excludeRules": [], "system": "pageload"},
            "lead": trig("Lead", Some("Lead")),
            "test1": trig("Test trigger", Some("DebugThing")),
        }))
    }

    const DESIRED: &[&str] = &["PageView", "Purchase", "Lead", "AddToCart"];

    #[test]
    fn missing_events_are_added_present_ones_kept() {
        let p = plan(&base(), DESIRED, &[]).unwrap();
        let keys: Vec<String> = p.changes.iter().map(Change::key).collect();
        assert_eq!(keys, ["add:PageView", "add:Purchase", "add:AddToCart"], "system Pageview is not zaraz.track(\"PageView\")");
        assert_eq!(p.unchanged, vec![("Lead".to_string(), vec!["lead".to_string()])]);
        assert!(p.not_found.is_empty() && p.duplicates.is_empty());
    }

    #[test]
    fn presence_is_by_meaning_not_id_or_name() {
        let c = cfg(json!({ "zz9": trig("Checkout done", Some("Purchase")), "Purchase": trig("Purchase", Some("Lead")) }));
        let p = plan(&c, &["Purchase", "Lead"], &[]).unwrap();
        assert!(p.is_empty(), "{:?}", p.changes);
        assert_eq!(p.unchanged[0], ("Purchase".to_string(), vec!["zz9".to_string()]));
    }

    #[test]
    fn same_name_with_wrong_rule_is_an_update() {
        let mut wrong = trig("Purchase", None);
        wrong["loadRules"] = json!([{"id": "x", "match": "{{ system.page.url.pathname }}", "op": "CONTAINS", "value": "/thanks"}]);
        let c = cfg(json!({ "p1": wrong.clone(), "lead": trig("Lead", Some("Lead")) }));
        let p = plan(&c, &["Purchase", "Lead"], &[]).unwrap();
        assert_eq!(p.changes, vec![Change::Update { event: "Purchase".into(), trigger_id: "p1".into(), hash: model::hash(&wrong) }]);
        let after = apply(&c, &p.changes).unwrap();
        assert!(model::tracks(&after["triggers"]["p1"], "Purchase"));
        assert_eq!(after["triggers"]["p1"]["name"], "Purchase", "id and other fields kept");
        assert!(plan(&after, &["Purchase", "Lead"], &[]).unwrap().is_empty());
        assert_eq!(p.to_json()["update"][0]["replaced_load_rules"][0]["value"], "/thanks");
    }

    #[test]
    fn a_trigger_for_another_catalog_event_is_never_repurposed() {
        let c = cfg(json!({ "x": trig("Purchase", Some("Lead")) }));
        let p = plan(&c, &["Purchase", "Lead"], &[]).unwrap();
        assert!(matches!(&p.changes[..], [Change::Add { event, .. }] if event == "Purchase"));
    }

    #[test]
    fn duplicates_are_reported_not_removed() {
        let c = cfg(json!({ "a": trig("Lead", Some("Lead")), "b": trig("Lead 2", Some("Lead")) }));
        let p = plan(&c, &["Lead"], &[]).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.duplicates, vec![("Lead".to_string(), vec!["a".to_string(), "b".to_string()])]);
    }

    #[test]
    fn remove_by_name_or_id_only_what_is_asked() {
        for wanted in ["Test trigger", "test1"] {
            let p = plan(&base(), &["Lead"], &[wanted.to_string()]).unwrap();
            assert_eq!(p.changes.len(), 1);
            assert!(matches!(&p.changes[0], Change::Remove { trigger_id, .. } if trigger_id == "test1"));
            assert_eq!(p.to_json()["remove"][0]["referenced_by"], json!(["fb"]));
            let after = apply(&base(), &p.changes).unwrap();
            assert!(after["triggers"].get("test1").is_none() && after["triggers"].get("lead").is_some());
            assert_eq!(after["tools"]["fb"]["blockingTriggers"], json!([]));
            assert_eq!(after["tools"]["fb"]["neoEvents"][0]["firingTriggers"], json!(["lead"]));
        }
        let p = plan(&base(), &["Lead"], &["nope".to_string()]).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.not_found, vec!["nope".to_string()]);
    }

    #[test]
    fn system_triggers_are_protected() {
        // By name and by id (they coincide for the system Pageview trigger), and among others.
        for remove in [vec!["Pageview".to_string()], vec!["test1".to_string(), "Pageview".to_string()]] {
            let e = plan(&base(), &[], &remove).unwrap_err();
            assert_eq!(e.status(), 400, "{e}");
            assert!(e.to_string().contains("system"));
        }
        let mut renamed = base();
        renamed["triggers"]["Pageview"]["name"] = json!("All pages");
        assert_eq!(plan(&renamed, &[], &["All pages".to_string()]).unwrap_err().code(), "invalid_request");
    }

    #[test]
    fn removing_the_only_trigger_of_a_catalog_event_is_refused() {
        let e = plan(&base(), &["Lead"], &["Lead".to_string()]).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        // One of two duplicates may go.
        let c = cfg(json!({ "a": trig("Lead", Some("Lead")), "b": trig("Lead copy", Some("Lead")) }));
        let p = plan(&c, &["Lead"], &["Lead copy".to_string()]).unwrap();
        assert_eq!(p.changes.len(), 1);
    }

    #[test]
    fn orphaned_managed_triggers_are_reported() {
        let c = cfg(json!({ "old": model::desired_trigger("Donate") }));
        let p = plan(&c, &["Lead"], &[]).unwrap();
        assert_eq!(p.orphaned, vec![("old".to_string(), "Donate".to_string())]);
        assert_eq!(p.changes.len(), 1, "orphans are kept");
    }

    #[test]
    fn applying_the_plan_converges_and_keeps_unowned_fields() {
        let c = base();
        let p = plan(&c, DESIRED, &[]).unwrap();
        let after = apply(&c, &p.changes).unwrap();
        assert!(plan(&after, DESIRED, &[]).unwrap().is_empty());
        for k in ["tools", "variables", "settings", "debugKey", "zarazVersion"] {
            assert_eq!(after[k], c[k], "{k}");
        }
        assert!(p.changes.iter().all(|ch| in_place(&after, ch)));
        assert!(p.changes.iter().all(|ch| !in_place(&c, ch)));
    }

    #[test]
    fn chunking_and_replanning() {
        let p = plan(&base(), DESIRED, &["test1".to_string()]).unwrap();
        assert_eq!(p.changes.len(), 4);
        let sizes: Vec<usize> = p.changes.chunks(2).map(<[Change]>::len).collect();
        assert_eq!(sizes, [2, 2]);
        // After the first chunk lands, re-planning on the result gives exactly the rest.
        let after = apply(&base(), &p.changes[..2]).unwrap();
        let again = plan(&after, DESIRED, &["test1".to_string()]).unwrap();
        assert_eq!(again.changes, without(&p.changes, &p.changes[..2]));
        assert!(differences(&without(&p.changes, &p.changes[..2]), &again.changes).is_empty());
        // Someone edits a trigger the plan removes: the difference names it.
        let mut edited = after.clone();
        edited["triggers"]["test1"]["name"] = json!("Test trigger (renamed)");
        let replanned = plan(&edited, DESIRED, &["test1".to_string()]).unwrap();
        let d = differences(&again.changes, &replanned.changes);
        assert_eq!(d.len(), 2, "{d:?}");
        // Someone adds a trigger for an event the plan adds: it drops out, no duplicate.
        let mut added = after.clone();
        added["triggers"]["dash1"] = trig("AddToCart (dashboard)", Some("AddToCart"));
        let replanned = plan(&added, DESIRED, &["test1".to_string()]).unwrap();
        assert!(!replanned.changes.iter().any(|c| c.key() == "add:AddToCart"));
    }

    #[test]
    fn junk_configurations_do_not_panic() {
        for junk in [json!(null), json!([]), json!({"triggers": []}), json!({"triggers": {"a": null, "b": 3, "c": {"loadRules": {}}}})] {
            let _ = plan(&junk, DESIRED, &["a".to_string()]);
            let _ = apply(&junk, &[Change::Add { event: "X".into(), trigger_id: "x".into() }]);
        }
    }
}
