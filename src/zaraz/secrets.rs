//! Keeping secret variables alive through a whole-document PUT.
//!
//! What Cloudflare documents: GET config "Secret variables values will not be included"; the PUT
//! schema types a secret variable as `{name, type: "secret", value: string}` (value required); GET
//! export "Exports full current published Zaraz configuration for a zone, secret variables
//! included" (cloudflare/cloudflare-typescript `src/resources/zaraz/{config,export}.ts`). What a PUT
//! does with a secret variable sent *without* a value is not documented, and the field has seen a
//! PUT built from a GET wipe them. So, per run:
//!
//! 1. No secret variable → nothing to do.
//! 2. Workflow `realtime` (published = latest) and the export answers: the values of the secrets
//!    are filled into each PUT body in memory ("carried"), so they survive whatever the server does
//!    with a missing value. Never logged, reported or stored. In `preview` the export (published)
//!    may hold an older value than the draft, so it is not used.
//! 3. Otherwise the secret would go out as read (without value). Unless an operator stated that
//!    this zone keeps such secrets (`secret_handling: "kept"` in a readable checkpoint), the sync
//!    refuses before writing anything: never risk a wipe on an undocumented behaviour.
//! 4. After the run the verification checks every secret variable still exists with type secret;
//!    if not, the run counts as failed and is rolled back from history, which restores the stored
//!    configuration, secret values included.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::http::Outbound;

use super::api::Api;
use super::model::{self, SecretVar};
use super::ZarazError;

pub struct SecretGuard {
    vars: Vec<SecretVar>,
    carried: BTreeMap<String, Value>,
    /// Writing a secret without its value is known (or cannot be ruled out) to wipe it.
    zone_drops: bool,
    workflow: Option<String>,
    export: &'static str,
}

impl SecretGuard {
    /// Decides how secrets travel for this run; refuses when one would be wiped.
    pub async fn prepare<O: Outbound>(api: &Api<'_, O>, start: &Value, zone_drops: bool) -> Result<SecretGuard, ZarazError> {
        let vars = model::secret_variables(start);
        let mut g = SecretGuard { vars, carried: BTreeMap::new(), zone_drops, workflow: None, export: "not_needed" };
        if g.vars.iter().all(|v| v.has_value) {
            return Ok(g);
        }
        g.workflow = api.workflow().await.ok();
        if g.workflow.as_deref() != Some("realtime") {
            g.export = "not_used_outside_realtime";
        } else if let Some(export) = api.export().await? {
            g.export = "used";
            g.carried = carried_values(&export, &g.vars);
        } else {
            g.export = "unavailable";
        }
        g.check(g.vars.iter().filter(|v| !v.has_value).map(|v| v.id.as_str()))?;
        Ok(g)
    }

    pub fn workflow(&self) -> Option<&str> {
        self.workflow.as_deref()
    }

    fn check<'a>(&self, without_value: impl Iterator<Item = &'a str>) -> Result<(), ZarazError> {
        if !self.zone_drops {
            return Ok(());
        }
        let exposed: Vec<String> = without_value.filter(|id| !self.carried.contains_key(*id)).map(str::to_string).collect();
        if exposed.is_empty() {
            Ok(())
        } else {
            Err(ZarazError::SecretsAtRisk { variables: exposed })
        }
    }

    /// Fills carried values into a PUT body; refuses if a secret there would still be wiped.
    pub fn fill(&self, body: &mut Value) -> Result<(), ZarazError> {
        let mut missing = Vec::new();
        if let Some(vars) = body.get_mut("variables").and_then(Value::as_object_mut) {
            for (id, var) in vars.iter_mut() {
                let Some(obj) = var.as_object_mut() else { continue };
                if obj.get("type").and_then(Value::as_str) != Some("secret") || obj.get("value").is_some_and(|v| !v.is_null()) {
                    continue;
                }
                match self.carried.get(id) {
                    Some(v) => {
                        obj.insert("value".into(), v.clone());
                    }
                    None => missing.push(id.clone()),
                }
            }
        }
        self.check(missing.iter().map(String::as_str))
    }

    /// Secret variables of the start configuration that are gone or no longer secret in `config`.
    pub fn lost(&self, config: &Value) -> Vec<String> {
        let now = model::secret_variables(config);
        self.vars.iter().filter(|v| !now.iter().any(|n| n.id == v.id)).map(|v| v.id.clone()).collect()
    }

    /// For the report: ids and names only, never a value.
    pub fn to_json(&self) -> Value {
        let handling = if self.vars.is_empty() {
            "none"
        } else if !self.carried.is_empty() {
            "carried_from_export"
        } else {
            "sent_without_value"
        };
        json!({
            "variables": self.vars.iter().map(|v| json!({ "id": v.id, "name": v.name })).collect::<Vec<_>>(),
            "handling": handling,
            "carried": self.carried.keys().collect::<Vec<_>>(),
            "export": self.export,
            "zone_known_to_drop": self.zone_drops,
        })
    }
}

/// The values the export holds for the value-less secrets, matched by id and type.
fn carried_values(export: &Value, vars: &[SecretVar]) -> BTreeMap<String, Value> {
    let Some(exported) = export.get("variables").and_then(Value::as_object) else { return BTreeMap::new() };
    vars.iter()
        .filter(|v| !v.has_value)
        .filter_map(|v| {
            let e = exported.get(&v.id)?;
            let value = e.get("value").filter(|x| x.is_string())?;
            (e.get("type").and_then(Value::as_str) == Some("secret")).then(|| (v.id.clone(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(zone_drops: bool, carried: &[(&str, &str)]) -> SecretGuard {
        let start = json!({"variables": {"s1": {"name": "Token", "type": "secret"}, "s2": {"name": "Other", "type": "secret"}, "p": {"name": "P", "type": "string", "value": "x"}}});
        SecretGuard {
            vars: model::secret_variables(&start),
            carried: carried.iter().map(|(k, v)| (k.to_string(), json!(v))).collect(),
            zone_drops,
            workflow: Some("realtime".into()),
            export: "used",
        }
    }

    #[test]
    fn carried_values_are_filled_and_never_reported() {
        let g = guard(true, &[("s1", "SECRET-ONE"), ("s2", "SECRET-TWO")]);
        let mut body = json!({"variables": {"s1": {"name": "Token", "type": "secret"}, "s2": {"name": "Other", "type": "secret"}}});
        g.fill(&mut body).unwrap();
        assert_eq!(body["variables"]["s1"]["value"], "SECRET-ONE");
        let report = g.to_json().to_string();
        assert!(!report.contains("SECRET-ONE") && report.contains("carried_from_export"));
    }

    #[test]
    fn a_zone_known_to_drop_secrets_is_refused_what_cannot_be_filled() {
        let g = guard(true, &[("s1", "v")]);
        let mut body = json!({"variables": {"s1": {"name": "Token", "type": "secret"}, "s2": {"name": "Other", "type": "secret"}}});
        match g.fill(&mut body) {
            Err(ZarazError::SecretsAtRisk { variables }) => assert_eq!(variables, vec!["s2".to_string()]),
            other => panic!("{other:?}"),
        }
        // Unknown zones send them as read; the verification checks they survived.
        let g = guard(false, &[]);
        g.fill(&mut body).unwrap();
        assert!(body["variables"]["s2"].get("value").is_none());
    }

    #[test]
    fn lost_secrets_are_found() {
        let g = guard(false, &[]);
        let ok = json!({"variables": {"s1": {"name": "Token", "type": "secret"}, "s2": {"name": "Other", "type": "secret"}}});
        assert!(g.lost(&ok).is_empty());
        let retyped = json!({"variables": {"s1": {"name": "Token", "type": "string", "value": ""}, "s2": {"name": "Other", "type": "secret"}}});
        assert_eq!(g.lost(&retyped), vec!["s1".to_string()]);
    }

    #[test]
    fn export_values_match_by_id_and_type() {
        let vars = model::secret_variables(&json!({"variables": {"a": {"name": "A", "type": "secret"}, "b": {"name": "B", "type": "secret"}}}));
        let export = json!({"variables": {"a": {"name": "A", "type": "secret", "value": "va"}, "b": {"name": "B", "type": "string", "value": "vb"}}});
        let c = carried_values(&export, &vars);
        assert_eq!(c.len(), 1);
        assert_eq!(c["a"], "va");
    }
}
