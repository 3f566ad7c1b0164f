//! What the sync remembers between runs, in Upstash under `{prefix}:{site}:zaraz:sync`: the
//! `zarazVersion` form Cloudflare last accepted, whether this zone is known to wipe secret variables
//! sent without a value, and the progress of the current run (the history record it started from,
//! the records it wrote, the changes applied) so an interrupted or paused run resumes and can still
//! be rolled back. Cloudflare stays the truth: a lost checkpoint only costs memory, never correctness
//! of the plan, which is always recomputed from a fresh read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::Outbound;
use crate::upstash::{Keys, Module, Store, StoreError};

/// Long enough to remember a zone's quirks between monthly syncs.
pub const TTL_SECS: u64 = 90 * 24 * 3600;
/// Bounded lists keep the document small (under the codec's compression threshold).
const MAX_LIST: usize = 64;

pub fn key(keys: &Keys) -> String {
    keys.key(Module::Zaraz, "sync")
}

/// How `zarazVersion` travels in a PUT body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionForm {
    /// Left out: the default (a body carrying it once failed validation in the field).
    #[default]
    Omit,
    /// The `zarazVersion` of the read the body was built on (Cloudflare's schema marks it required).
    Include,
}

impl VersionForm {
    pub fn label(self) -> &'static str {
        match self {
            VersionForm::Omit => "omitted",
            VersionForm::Include => "included",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    #[default]
    Running,
    /// Stopped before the subrequest budget ran out; the next run continues.
    Paused,
    Done,
    RolledBack,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Run {
    pub state: RunState,
    pub started_at_ms: f64,
    /// The newest history record before the run's first write: what a rollback restores.
    pub start_record: Option<u64>,
    /// `model::config_hash` of the configuration the run started from.
    pub start_hash: String,
    /// The newest history record id seen so far.
    pub known_history: Option<u64>,
    /// History records this run wrote.
    pub ours: Vec<u64>,
    /// History records someone else wrote while the run was going: a rollback would undo them.
    pub foreign: Vec<u64>,
    /// Keys of the changes applied so far.
    pub applied: Vec<String>,
    pub chunks: u32,
    /// The options the run was started with (`remove`, `publish`): a resumed run keeps them, so a
    /// re-run without repeating them finishes the plan that was asked for.
    pub remove: Vec<String>,
    pub publish: bool,
}

impl Run {
    pub fn is_unfinished(&self) -> bool {
        matches!(self.state, RunState::Running | RunState::Paused)
    }

    pub fn note_ours(&mut self, id: u64) {
        push_bounded(&mut self.ours, id);
    }

    pub fn note_foreign(&mut self, id: u64) {
        push_bounded(&mut self.foreign, id);
    }

    pub fn note_applied(&mut self, key: String) {
        if !self.applied.contains(&key) {
            push_bounded(&mut self.applied, key);
        }
    }
}

fn push_bounded<T: PartialEq>(list: &mut Vec<T>, item: T) {
    if !list.contains(&item) {
        list.push(item);
    }
    if list.len() > MAX_LIST {
        let extra = list.len() - MAX_LIST;
        list.drain(..extra);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checkpoint {
    pub v: u32,
    pub zone: String,
    pub version_form: Option<VersionForm>,
    /// How this zone treats a secret variable written without its value, as an operator stated it
    /// ([`super::set_secret_handling`]): `"kept"` or `"dropped"`. Unknown counts as dropped: the
    /// sync then writes secrets only with their values carried from the export.
    pub secret_handling: Option<String>,
    pub run: Option<Run>,
    /// A summary of the last finished run.
    pub last: Option<Value>,
}

impl Checkpoint {
    pub fn new(zone: &str) -> Checkpoint {
        Checkpoint { v: 1, zone: zone.to_string(), ..Checkpoint::default() }
    }

    pub fn secrets_kept(&self) -> bool {
        self.secret_handling.as_deref() == Some("kept")
    }

    /// The unfinished run of this zone, if any.
    pub fn unfinished(&self) -> Option<&Run> {
        self.run.as_ref().filter(|r| r.is_unfinished())
    }
}

/// The checkpoint of `zone`; a document for another zone (the zone id changed) or one that no
/// longer parses starts afresh.
pub async fn load<O: Outbound>(store: &Store<'_, O>, key: &str, zone: &str) -> Result<Checkpoint, StoreError> {
    let raw = store.get(key).await?;
    Ok(raw.and_then(|t| serde_json::from_str::<Checkpoint>(&t).ok()).filter(|c| c.zone == zone).unwrap_or_else(|| Checkpoint::new(zone)))
}

pub async fn save<O: Outbound>(store: &Store<'_, O>, key: &str, cp: &Checkpoint) -> Result<(), StoreError> {
    let text = serde_json::to_string(cp).map_err(|e| StoreError::Protocol(e.to_string()))?;
    store.set(key, &text, TTL_SECS).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_unknown_or_missing_fields() {
        let mut cp = Checkpoint::new("z");
        cp.version_form = Some(VersionForm::Include);
        let mut run = Run::default();
        for i in 0..100 {
            run.note_ours(i);
            run.note_ours(i);
        }
        assert_eq!(run.ours.len(), MAX_LIST);
        assert_eq!(run.ours.last(), Some(&99));
        cp.run = Some(run);
        let text = serde_json::to_string(&cp).unwrap();
        assert!(text.contains("\"version_form\":\"include\""));
        assert_eq!(serde_json::from_str::<Checkpoint>(&text).unwrap(), cp);
        let old: Checkpoint = serde_json::from_str(r#"{"zone":"z","future_field":1,"run":{"state":"paused"}}"#).unwrap();
        assert!(old.unfinished().is_some() && old.version_form.is_none() && !old.secrets_kept());
    }
}
