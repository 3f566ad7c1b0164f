//! Zaraz history as the sync's safety net: telling which history records after a write are the
//! sync's own and which are someone else's (an edit that landed between the sync's read and its
//! write was overwritten and must be re-applied), and restoring the configuration a failed sync
//! started from.
//!
//! Cloudflare: `GET .../zaraz/history` lists records `{id, createdAt, updatedAt, description,
//! userId}`; `GET .../history/configs?ids=` returns their configurations; `PUT .../history` with an
//! integer id restores one (cloudflare/cloudflare-typescript `src/resources/zaraz/history/`). The
//! SDK describes these as *published* configurations: in the `preview` workflow a PUT may add no
//! record, so attribution then finds nothing to check, and a rollback only runs when the record it
//! would restore provably holds the configuration the sync started from.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::http::Outbound;

use super::api::{Api, CallError};
use super::checkpoint::Run;
use super::model;

/// Who wrote the history records that appeared around one write of the sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    /// The record holding exactly what the sync sent.
    pub ours: Option<u64>,
    pub foreign: Vec<u64>,
    /// The newest foreign record written before ours whose configuration is not what the sync
    /// read: the sync's write replaced it, so its edit must be merged back.
    pub lost: Option<u64>,
}

/// `new_ids`: records newer than the last one known before the write, with their configurations.
pub fn attribute(new_ids: &[u64], configs: &BTreeMap<u64, Value>, sent_hash: &str, base_hash: &str) -> Attribution {
    let hash_of = |id: &u64| configs.get(id).map(model::config_hash);
    let ours = new_ids.iter().filter(|id| hash_of(id).as_deref() == Some(sent_hash)).max().copied();
    let foreign: Vec<u64> = new_ids.iter().copied().filter(|id| Some(*id) != ours).collect();
    let lost = ours.and_then(|o| foreign.iter().copied().filter(|id| *id < o).max()).filter(|id| hash_of(id).as_deref() != Some(base_hash));
    Attribution { ours, foreign, lost }
}

fn skipped(reason: String) -> Value {
    json!({ "attempted": false, "ok": false, "reason": reason })
}

/// Restores the history record the run started from, when that is safe: the record holds the
/// start configuration and nobody else wrote since (restoring would discard their edits).
pub async fn rollback<O: Outbound>(api: &Api<'_, O>, run: &Run, window: u32) -> Value {
    let Some(start) = run.start_record else {
        return skipped("no history record was known before the sync's first write".into());
    };
    let records = match api.history(window).await {
        Ok(r) => r,
        Err(e) => return skipped(format!("history unavailable: {e}")),
    };
    let mut foreign: Vec<u64> = records.iter().map(|r| r.id).filter(|id| *id > start && !run.ours.contains(id)).collect();
    foreign.extend(run.foreign.iter().copied().filter(|id| !run.ours.contains(id)));
    crate::sorting::sort(&mut foreign);
    foreign.dedup();
    if !foreign.is_empty() {
        return skipped(format!(
            "history records {foreign:?} were written by someone else during the sync; restoring record {start} would discard their edits"
        ));
    }
    match api.history_configs(&[start]).await {
        Ok(m) => match m.get(&start) {
            Some(c) if model::config_hash(c) == run.start_hash => {}
            Some(_) => return skipped(format!(
                "history record {start} does not hold the configuration the sync started from (in the preview workflow history keeps published configurations)"
            )),
            None => return skipped(format!("history record {start} is gone")),
        },
        Err(e) => return skipped(format!("history record {start} unreadable: {e}")),
    }
    let answer = match api.restore(start).await {
        Ok(_) => "restored".to_string(),
        Err(CallError::Unauthorized(s)) => format!("HTTP {s}: CLOUDFLARE_API_TOKEN may not restore"),
        Err(e) => e.describe(),
    };
    // Whatever the answer said, a read tells what is live now.
    match api.config().await {
        Ok(now) => json!({ "attempted": true, "restored_record": start, "answer": answer, "ok": model::config_hash(&now) == run.start_hash }),
        Err(e) => json!({ "attempted": true, "restored_record": start, "answer": answer, "ok": false, "verify_error": e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: u64) -> Value {
        json!({ "zarazVersion": n, "triggers": { "t": { "name": format!("T{n}") } } })
    }

    #[test]
    fn our_record_is_the_one_holding_what_we_sent() {
        let base = cfg(1);
        let sent = cfg(3);
        let configs: BTreeMap<u64, Value> = [(5, cfg(2)), (6, cfg(3))].into_iter().collect();
        let a = attribute(&[5, 6], &configs, &model::config_hash(&sent), &model::config_hash(&base));
        assert_eq!(a, Attribution { ours: Some(6), foreign: vec![5], lost: Some(5) });
    }

    #[test]
    fn a_foreign_record_already_in_our_read_was_not_lost() {
        let base = cfg(2);
        let configs: BTreeMap<u64, Value> = [(5, cfg(2)), (6, cfg(3))].into_iter().collect();
        let a = attribute(&[5, 6], &configs, &model::config_hash(&cfg(3)), &model::config_hash(&base));
        assert_eq!(a.lost, None);
        assert_eq!(a.foreign, vec![5]);
    }

    #[test]
    fn foreign_records_after_ours_are_not_lost_and_unknown_writes_attribute_nothing() {
        let configs: BTreeMap<u64, Value> = [(5, cfg(3)), (6, cfg(9))].into_iter().collect();
        let a = attribute(&[5, 6], &configs, &model::config_hash(&cfg(3)), &model::config_hash(&cfg(1)));
        assert_eq!(a, Attribution { ours: Some(5), foreign: vec![6], lost: None });
        let a = attribute(&[5, 6], &configs, &model::config_hash(&cfg(7)), &model::config_hash(&cfg(1)));
        assert_eq!(a, Attribution { ours: None, foreign: vec![5, 6], lost: None });
    }
}
