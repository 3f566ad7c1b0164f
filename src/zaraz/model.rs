//! The Zaraz configuration document, read and edited as `serde_json::Value` so every field the sync
//! does not own survives a read-merge-write untouched. Owns what a trigger *means* (which
//! `zaraz.track()` event its load rules match), the triggers edgekeeper generates, stable hashes
//! for detecting concurrent edits, and the secret-variable bookkeeping.
//!
//! Shapes follow Cloudflare's schema as generated into the official SDK
//! (cloudflare/cloudflare-typescript `src/resources/zaraz/config.ts`): `triggers` is an object keyed
//! by alpha-numeric trigger id, a trigger is `{name, description?, loadRules, excludeRules,
//! system?: "pageload"}`, a load rule `{id, match, op, value}`; tools reference triggers by id in
//! `blockingTriggers` and in each action's (`neoEvents[]` or `actions{}`) `firingTriggers` /
//! `blockingTriggers`; variables are `{name, type: string|secret|worker, value}` and "values of
//! variables of type secret are not included" in what GET answers.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The variable `zaraz.track("X")` sets to `X`: the dashboard's "Event Name" (Cloudflare docs,
/// "Triggers and rules": match `zaraz.track("purchase")` with Event Name Equals `purchase`).
pub const TRACK_MATCH: &str = "{{ client.__zarazTrack }}";
/// Starts the description of every trigger edgekeeper creates: how a reader (and `orphaned`) tells them apart.
pub const MANAGED_MARK: &str = "Managed by edgekeeper";

/// The trigger map of a configuration, or why the document is not one.
pub fn triggers(config: &Value) -> Result<&Map<String, Value>, String> {
    config.get("triggers").and_then(Value::as_object).ok_or_else(|| "the configuration has no `triggers` object".to_string())
}

pub fn name(trigger: &Value) -> &str {
    trigger.get("name").and_then(Value::as_str).unwrap_or("")
}

/// System triggers (`system: "pageload"`) belong to Zaraz itself: never edited or removed here.
pub fn is_system(trigger: &Value) -> bool {
    trigger.get("system").is_some_and(|s| !s.is_null())
}

/// `{{ client.__zarazTrack }}` and `{{client.__zarazTrack}}` mean the same: compare without spaces.
fn is_track_match(m: &str) -> bool {
    m.chars().filter(|c| !c.is_whitespace()).eq(TRACK_MATCH.chars().filter(|c| !c.is_whitespace()))
}

/// The event a load rule fires on, when it is a `zaraz.track()` rule (`__zarazTrack` EQUALS x).
pub fn tracked_event(rule: &Value) -> Option<&str> {
    let m = rule.get("match").and_then(Value::as_str)?;
    let op = rule.get("op").and_then(Value::as_str)?;
    (is_track_match(m) && op == "EQUALS").then(|| rule.get("value").and_then(Value::as_str)).flatten()
}

/// Every event whose `zaraz.track()` fires this trigger, by meaning; system triggers fire on none.
pub fn tracked_events(trigger: &Value) -> Vec<&str> {
    if is_system(trigger) {
        return Vec::new();
    }
    trigger.get("loadRules").and_then(Value::as_array).map(|rules| rules.iter().filter_map(tracked_event).collect()).unwrap_or_default()
}

pub fn tracks(trigger: &Value, event: &str) -> bool {
    tracked_events(trigger).contains(&event)
}

/// Ids of the triggers that fire on `zaraz.track(event)`, sorted.
pub fn triggers_for<'a>(triggers: &'a Map<String, Value>, event: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = triggers.iter().filter(|(_, t)| tracks(t, event)).map(|(id, _)| id.as_str()).collect();
    crate::sorting::sort(&mut ids);
    ids
}

pub fn track_rule(event: &str, rule_id: &str) -> Value {
    json!({ "id": rule_id, "match": TRACK_MATCH, "op": "EQUALS", "value": event })
}

/// The trigger edgekeeper wants for an event: the Zaraz convention for `zaraz.track("<Event>")`.
pub fn desired_trigger(event: &str) -> Value {
    json!({
        "name": event,
        "description": format!("{MANAGED_MARK} from its event catalog: fires on zaraz.track(\"{event}\")"),
        "loadRules": [track_rule(event, &rule_id(event))],
        "excludeRules": [],
        "clientRules": [],
    })
}

pub fn is_managed(trigger: &Value) -> bool {
    trigger.get("description").and_then(Value::as_str).is_some_and(|d| d.starts_with(MANAGED_MARK))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Deterministic, alpha-numeric (Zaraz ids are) and the same on every run, so a re-run or a retry
/// after a timeout proposes the very same trigger id; a taken id gets the next variant.
pub fn trigger_id(event: &str, taken: impl Fn(&str) -> bool) -> String {
    (0u32..)
        .map(|n| {
            let seed = if n == 0 { format!("trigger:{event}") } else { format!("trigger:{event}:{n}") };
            format!("ek{}", &digest(&seed)[..10])
        })
        .find(|id| !taken(id))
        .unwrap_or_default()
}

pub fn rule_id(event: &str) -> String {
    format!("ek{}", &digest(&format!("rule:{event}"))[..10])
}

/// JSON with object keys sorted at every level: the same document always gives the same text,
/// whatever map order the parser kept.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            crate::sorting::sort(&mut keys);
            let parts: Vec<String> = keys.iter().map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A stable hash of any JSON value (a trigger, a whole configuration).
pub fn hash(v: &Value) -> String {
    digest(&canonical(v))[..32].to_string()
}

/// A configuration as two reads of the same content compare: without the server-assigned
/// `zarazVersion` and without secret values (GET never shows them; a PUT body may carry them).
pub fn comparable(config: &Value) -> Value {
    let mut c = config.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("zarazVersion");
    }
    if let Some(vars) = c.get_mut("variables").and_then(Value::as_object_mut) {
        for var in vars.values_mut() {
            if var.get("type").and_then(Value::as_str) == Some("secret") {
                if let Some(o) = var.as_object_mut() {
                    o.remove("value");
                }
            }
        }
    }
    c
}

pub fn config_hash(config: &Value) -> String {
    hash(&comparable(config))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVar {
    pub id: String,
    pub name: String,
    pub has_value: bool,
}

/// The secret variables of a configuration, by id.
pub fn secret_variables(config: &Value) -> Vec<SecretVar> {
    let Some(vars) = config.get("variables").and_then(Value::as_object) else { return Vec::new() };
    let mut out: Vec<SecretVar> = vars
        .iter()
        .filter(|(_, v)| v.get("type").and_then(Value::as_str) == Some("secret"))
        .map(|(id, v)| SecretVar { id: id.clone(), name: name(v).to_string(), has_value: v.get("value").is_some_and(|x| !x.is_null()) })
        .collect();
    crate::sorting::sort_by(&mut out, |a, b| a.id < b.id);
    out
}

/// Visits every list of trigger ids a tool holds: its `blockingTriggers` and each action's
/// (`neoEvents[]`, deprecated, or `actions{}`) `firingTriggers` / `blockingTriggers`.
fn for_each_ref_list(config: &mut Value, mut f: impl FnMut(&str, &mut Vec<Value>)) {
    let Some(tools) = config.get_mut("tools").and_then(Value::as_object_mut) else { return };
    for (tool_id, tool) in tools.iter_mut() {
        let Some(tool) = tool.as_object_mut() else { continue };
        for (key, field) in tool.iter_mut() {
            match (key.as_str(), field) {
                ("blockingTriggers", Value::Array(list)) => f(tool_id, list),
                ("neoEvents", Value::Array(actions)) => actions.iter_mut().for_each(|a| visit_action(tool_id, a, &mut f)),
                ("actions", Value::Object(actions)) => actions.values_mut().for_each(|a| visit_action(tool_id, a, &mut f)),
                _ => {}
            }
        }
    }
}

fn visit_action(tool_id: &str, action: &mut Value, f: &mut impl FnMut(&str, &mut Vec<Value>)) {
    let Some(action) = action.as_object_mut() else { return };
    for (key, field) in action.iter_mut() {
        if let ("firingTriggers" | "blockingTriggers", Value::Array(list)) = (key.as_str(), field) {
            f(tool_id, list);
        }
    }
}

/// The tools that reference a trigger (fire on it or are blocked by it), sorted, once each.
pub fn trigger_refs(config: &Value, trigger_id: &str) -> Vec<String> {
    let mut c = config.clone();
    let mut tools = Vec::new();
    for_each_ref_list(&mut c, |tool, list| {
        if list.iter().any(|v| v.as_str() == Some(trigger_id)) && !tools.iter().any(|t: &String| t == tool) {
            tools.push(tool.to_string());
        }
    });
    crate::sorting::sort(&mut tools);
    tools
}

/// Removes a trigger and every reference to it: Cloudflare validates that referenced triggers exist.
pub fn remove_trigger(config: &mut Value, trigger_id: &str) {
    if let Some(t) = config.get_mut("triggers").and_then(Value::as_object_mut) {
        t.remove(trigger_id);
    }
    for_each_ref_list(config, |_, list| list.retain(|v| v.as_str() != Some(trigger_id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_rules_are_recognised_by_meaning() {
        let t = json!({"name": "whatever", "loadRules": [{"id": "x", "match": "{{client.__zarazTrack}}", "op": "EQUALS", "value": "Purchase"}]});
        assert!(tracks(&t, "Purchase"));
        assert!(!tracks(&t, "purchase"), "event names are case-sensitive");
        let contains = json!({"name": "Purchase", "loadRules": [{"id": "x", "match": TRACK_MATCH, "op": "CONTAINS", "value": "Purchase"}]});
        assert!(!tracks(&contains, "Purchase"));
        let system = json!({"name": "Pageview", "system": "pageload", "loadRules": [track_rule("PageView", "r")]});
        assert!(!tracks(&system, "PageView"));
        for junk in [json!(null), json!({"loadRules": "x"}), json!({"loadRules": [1, null, {"match": 3}]})] {
            assert!(tracked_events(&junk).is_empty());
        }
    }

    #[test]
    fn desired_trigger_follows_the_convention() {
        let t = desired_trigger("Purchase");
        assert_eq!(t["name"], "Purchase");
        assert_eq!(t["loadRules"][0]["match"], TRACK_MATCH);
        assert_eq!(t["loadRules"][0]["value"], "Purchase");
        assert_eq!(t["excludeRules"], json!([]));
        assert!(is_managed(&t) && tracks(&t, "Purchase"));
    }

    #[test]
    fn generated_ids_are_stable_alphanumeric_and_avoid_taken_ones() {
        let a = trigger_id("Purchase", |_| false);
        assert_eq!(a, trigger_id("Purchase", |_| false));
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()) && a.len() == 12);
        let b = trigger_id("Purchase", |id| id == a);
        assert_ne!(a, b);
        assert_ne!(rule_id("Purchase"), a);
    }

    #[test]
    fn hashes_ignore_key_order_versions_and_secret_values() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"q":2,"p":1}],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1}"#).unwrap();
        assert_eq!(hash(&a), hash(&b));
        let c1 =
            json!({"zarazVersion": 1, "variables": {"s": {"name": "S", "type": "secret", "value": "v"}, "p": {"name": "P", "type": "string", "value": "x"}}});
        let c2 = json!({"zarazVersion": 7, "variables": {"s": {"name": "S", "type": "secret"}, "p": {"name": "P", "type": "string", "value": "x"}}});
        assert_eq!(config_hash(&c1), config_hash(&c2));
        let c3 = json!({"zarazVersion": 7, "variables": {"s": {"name": "S", "type": "secret"}, "p": {"name": "P", "type": "string", "value": "y"}}});
        assert_ne!(config_hash(&c1), config_hash(&c3));
        assert_eq!(secret_variables(&c1), vec![SecretVar { id: "s".into(), name: "S".into(), has_value: true }]);
        assert!(!secret_variables(&c2)[0].has_value);
    }

    #[test]
    fn removing_a_trigger_drops_every_reference() {
        let mut c = json!({
            "triggers": {"t1": {"name": "T1"}, "t2": {"name": "T2"}},
            "tools": {
                "a": {"blockingTriggers": ["t1"], "neoEvents": [{"firingTriggers": ["t1", "t2"], "blockingTriggers": []}]},
                "b": {"blockingTriggers": [], "actions": {"x": {"firingTriggers": ["t2"], "blockingTriggers": ["t1"]}}},
                "c": {"blockingTriggers": [], "neoEvents": [{"firingTriggers": ["t2"]}]}
            }
        });
        assert_eq!(trigger_refs(&c, "t1"), vec!["a".to_string(), "b".to_string()]);
        remove_trigger(&mut c, "t1");
        assert!(c["triggers"].get("t1").is_none());
        assert!(trigger_refs(&c, "t1").is_empty());
        assert_eq!(c["tools"]["a"]["neoEvents"][0]["firingTriggers"], json!(["t2"]));
        assert_eq!(trigger_refs(&c, "t2"), vec!["a".to_string(), "b".to_string(), "c".to_string()]);
    }
}
