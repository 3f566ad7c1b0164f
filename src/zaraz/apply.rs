//! Applying a plan in chunks. Each chunk re-reads the configuration, re-plans on it (a plan that
//! differs from what was expected means someone edited what the sync touches: counted, reported,
//! bounded), applies at most K changes onto that fresh document (read-merge-write: every field the
//! sync does not own is sent back as read) and PUTs the whole document.
//!
//! A write whose outcome is unknown (504, timeout) is followed by a read that tells, by meaning,
//! whether it landed; if not, K halves (min 1) and the next attempt starts from that read, after a
//! short backoff (`Outbound::sleep`). `zarazVersion` is left out unless Cloudflare says it is
//! required; then the version of the read the chunk was built on is sent, and dropped again if
//! Cloudflare says it must not be sent (each switch at most once per chunk). A 409 or a stale /
//! conflict answer is a concurrent edit: re-read, re-plan. After each landed write the history
//! tells whether someone else's edit landed between the read and the write (then the chunk is
//! re-applied on top of that edit, so it is not lost).

use serde_json::{json, Value};

use crate::http::Outbound;
use crate::upstash::Store;

use super::api::{Api, CallError};
use super::checkpoint::{self, Checkpoint, Run, VersionForm};
use super::history;
use super::model;
use super::plan::{self, Change};
use super::secrets::SecretGuard;
use super::ZarazError;

/// Bounds of one sync run.
pub struct Tuning {
    /// K: changes per PUT at the start.
    pub chunk_size: usize,
    /// Re-plans (concurrent edits seen) before giving up with a conflict.
    pub max_replans: u32,
    /// Writes with an unknown outcome that did not land, per run, before the run fails.
    pub max_unknown: u32,
    /// Subrequests (Cloudflare calls and checkpoint writes) a run may use; a run close to it
    /// pauses between chunks and the next run resumes (`ZARAZ_CALL_BUDGET`).
    pub call_budget: u32,
    /// History records listed per check.
    pub history_window: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            chunk_size: 2,
            max_replans: 4,
            max_unknown: 4,
            call_budget: crate::config::DEFAULT_ZARAZ_CALL_BUDGET,
            history_window: 20,
        }
    }
}

/// How a run's chunk loop ended (errors aside).
pub enum End {
    /// A live read shows the whole plan in place.
    Done(Value),
    /// Stopped between chunks to stay inside the subrequest budget.
    Paused,
    Failed(String),
}

enum Source {
    Live,
    /// A configuration from history that a write of ours replaced: built upon to merge it back.
    Repair,
}

enum ChunkEnd {
    Landed { sent: Value, read: Option<Value> },
    NotLanded { read: Value },
    Stale(String),
    Refused(String),
}

pub struct Engine<'a, O: Outbound> {
    pub api: &'a Api<'a, O>,
    pub store: Option<&'a Store<'a, O>>,
    pub key: String,
    pub desired: Vec<&'a str>,
    pub remove: &'a [String],
    pub tuning: &'a Tuning,
    pub cp: Checkpoint,
    pub run: Run,
    pub form: VersionForm,
    /// The form of the last write Cloudflare accepted: what the checkpoint remembers.
    accepted: Option<VersionForm>,
    pub secrets: SecretGuard,
    pub chunks: Vec<Value>,
    pub replans: Vec<Value>,
    pub warnings: Vec<String>,
    pub store_calls: u32,
    pub store_errors: Vec<String>,
    puts: u32,
    unknown_seen: u32,
    stored_version: Option<Value>,
}

impl<'a, O: Outbound> Engine<'a, O> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: &'a Api<'a, O>,
        store: Option<&'a Store<'a, O>>,
        key: String,
        desired: Vec<&'a str>,
        remove: &'a [String],
        tuning: &'a Tuning,
        cp: Checkpoint,
        run: Run,
        secrets: SecretGuard,
    ) -> Self {
        let form = cp.version_form.unwrap_or_default();
        Engine {
            api,
            store,
            key,
            desired,
            remove,
            tuning,
            cp,
            run,
            form,
            accepted: None,
            secrets,
            chunks: Vec::new(),
            replans: Vec::new(),
            warnings: Vec::new(),
            store_calls: 0,
            store_errors: Vec::new(),
            puts: 0,
            unknown_seen: 0,
            stored_version: None,
        }
    }

    /// Writes the checkpoint; a failure is reported, never fatal (Cloudflare stays the truth).
    pub async fn save(&mut self) {
        let Some(store) = self.store else { return };
        self.cp.run = Some(self.run.clone());
        if let Some(form) = self.accepted {
            self.cp.version_form = Some(form);
        }
        self.store_calls += 1;
        if let Err(e) = checkpoint::save(store, &self.key, &self.cp).await {
            self.store_errors.push(e.to_string());
        }
    }

    fn over_budget(&self) -> bool {
        // One more chunk (read, write, history, checkpoint) plus the closing read and checkpoint.
        const RESERVE: u32 = 8;
        self.api.calls() + self.store_calls + RESERVE > self.tuning.call_budget
    }

    fn conflict(&self, replans: u32) -> Result<(), ZarazError> {
        if replans <= self.tuning.max_replans {
            return Ok(());
        }
        let last = self.replans.last().cloned().unwrap_or(Value::Null);
        Err(ZarazError::Conflict(format!(
            "gave up after {replans} re-plans: the triggers this sync touches keep changing (last: {last}); nothing was overwritten, the {} chunk(s) applied stay, run again later",
            self.run.chunks
        )))
    }

    /// Runs chunks until a live read shows the plan in place, the budget says pause, or it fails.
    /// `planned`: the plan the run reported, which each chunk's fresh read is checked against.
    pub async fn apply_all(&mut self, planned: Vec<Change>) -> Result<End, ZarazError> {
        let mut next: Option<(Value, Source)> = None;
        let mut expected: Option<Vec<Change>> = Some(planned);
        let mut k = self.tuning.chunk_size.max(1);
        let (mut unknown, mut replans, mut landed) = (0u32, 0u32, 0u32);
        loop {
            let (base, source) = match next.take() {
                Some(x) => x,
                None => {
                    let c = self.api.config().await?;
                    self.stored_version = c.get("zarazVersion").cloned();
                    (c, Source::Live)
                }
            };
            let p = plan::plan(&base, &self.desired, self.remove)?;
            if p.is_empty() {
                match source {
                    Source::Live => return Ok(End::Done(base)),
                    Source::Repair => continue,
                }
            }
            if let Some(exp) = expected.take() {
                let differences = plan::differences(&exp, &p.changes);
                if !differences.is_empty() {
                    replans += 1;
                    self.replans
                        .push(json!({ "after_chunk": self.chunks.len(), "reason": "the configuration changed since planning", "differences": differences }));
                    self.conflict(replans)?;
                }
            }
            if landed > 0 && self.over_budget() {
                return Ok(End::Paused);
            }
            let chunk = p.changes[..k.min(p.changes.len())].to_vec();
            let version = match source {
                Source::Live => base.get("zarazVersion").cloned(),
                Source::Repair => self.stored_version.clone(),
            };
            match self.put_chunk(&base, version.as_ref(), &chunk, k).await? {
                ChunkEnd::Landed { sent, read } => {
                    landed += 1;
                    self.run.chunks += 1;
                    chunk.iter().for_each(|c| self.run.note_applied(c.key()));
                    expected = Some(plan::without(&p.changes, &chunk));
                    let lost = self.attribute_write(&base, &sent).await?;
                    self.save().await;
                    if let Some((id, config)) = lost {
                        replans += 1;
                        self.replans.push(json!({ "after_chunk": self.chunks.len(), "reason": format!("history record {id} was written by someone else between this chunk's read and its write; re-applying the chunk on top of it so that edit is kept") }));
                        self.conflict(replans)?;
                        expected = None;
                        next = Some((config, Source::Repair));
                    } else if let Some(r) = read {
                        // It landed, but only a read could tell: smaller writes from now on.
                        k = (k / 2).max(1);
                        next = Some((r, Source::Live));
                    }
                }
                ChunkEnd::NotLanded { read } => {
                    unknown += 1;
                    k = (k / 2).max(1);
                    if unknown >= self.tuning.max_unknown {
                        return Ok(End::Failed(format!("{unknown} writes got no definite answer and did not land")));
                    }
                    expected = Some(p.changes.clone());
                    next = Some((read, Source::Live));
                }
                ChunkEnd::Stale(m) => {
                    replans += 1;
                    self.replans.push(json!({ "after_chunk": self.chunks.len(), "reason": format!("Cloudflare answered a conflict: {m}") }));
                    self.conflict(replans)?;
                }
                ChunkEnd::Refused(m) => return Ok(End::Failed(m)),
            }
        }
    }

    /// The body as sent: `zarazVersion` left out or set from the read the chunk was built on.
    fn versioned(&self, body: &Value, version: Option<&Value>) -> Result<Value, String> {
        let mut b = body.clone();
        let o = b.as_object_mut().ok_or_else(|| "the configuration is not a JSON object".to_string())?;
        match self.form {
            VersionForm::Omit => {
                o.remove("zarazVersion");
            }
            VersionForm::Include => {
                let v =
                    version.filter(|v| v.is_number()).ok_or_else(|| "Cloudflare asks for zarazVersion but the configuration read carries none".to_string())?;
                o.insert("zarazVersion".into(), v.clone());
            }
        }
        Ok(b)
    }

    async fn put_chunk(&mut self, base: &Value, version: Option<&Value>, chunk: &[Change], k: usize) -> Result<ChunkEnd, ZarazError> {
        let started = self.api.out().now_ms();
        let mut body = plan::apply(base, chunk)?;
        self.secrets.fill(&mut body)?;
        let mut answers: Vec<String> = Vec::new();
        let (mut switched_in, mut switched_out) = (false, false);
        let mut form_used = self.form;
        let (end, status) = loop {
            let sent = match self.versioned(&body, version) {
                Ok(b) => b,
                Err(m) => break (ChunkEnd::Refused(m), "refused"),
            };
            form_used = self.form;
            self.puts += 1;
            match self.api.put_config(&sent).await {
                Ok(result) => {
                    answers.push("200".into());
                    self.accepted = Some(form_used);
                    if let Some(v) = result.get("zarazVersion") {
                        self.stored_version = Some(v.clone());
                    }
                    break (ChunkEnd::Landed { sent, read: None }, "applied");
                }
                Err(CallError::VersionRequired(m)) if self.form == VersionForm::Omit && !switched_in => {
                    answers.push(format!("zarazVersion required: {m}"));
                    switched_in = true;
                    self.form = VersionForm::Include;
                }
                Err(CallError::VersionRejected(m)) if self.form == VersionForm::Include && !switched_out => {
                    answers.push(format!("zarazVersion rejected: {m}"));
                    switched_out = true;
                    self.form = VersionForm::Omit;
                }
                Err(e @ (CallError::VersionRequired(_) | CallError::VersionRejected(_))) => {
                    answers.push(e.describe());
                    break (ChunkEnd::Refused(format!("Cloudflare refused the body with and without zarazVersion: {}", e.describe())), "refused");
                }
                Err(CallError::Stale(m)) => {
                    answers.push(format!("conflict: {m}"));
                    break (ChunkEnd::Stale(m), "conflict");
                }
                Err(CallError::Unknown(m)) => {
                    answers.push(format!("unknown outcome: {m}"));
                    self.api.pause(self.unknown_seen).await;
                    self.unknown_seen += 1;
                    let read = self.api.config().await?;
                    self.stored_version = read.get("zarazVersion").cloned();
                    if chunk.iter().all(|c| plan::in_place(&read, c)) {
                        self.accepted = Some(form_used);
                        break (ChunkEnd::Landed { sent, read: Some(read) }, "landed_after_unknown_outcome");
                    }
                    break (ChunkEnd::NotLanded { read }, "not_landed");
                }
                Err(CallError::Unauthorized(status)) => return Err(ZarazError::Unauthorized { status }),
                Err(e) => {
                    answers.push(e.describe());
                    break (ChunkEnd::Refused(e.describe()), "refused");
                }
            }
        };
        self.chunks.push(json!({
            "n": self.chunks.len() + 1,
            "changes": chunk.iter().map(Change::key).collect::<Vec<_>>(),
            "k": k,
            "status": status,
            "attempts": answers.len(),
            "answers": answers,
            "duration_ms": (self.api.out().now_ms() - started).max(0.0).round(),
            "zaraz_version": form_used.label(),
        }));
        Ok(end)
    }

    /// Reads the history after a landed write: notes our record and anyone else's, and returns the
    /// configuration of a foreign edit our write replaced, if one did.
    async fn attribute_write(&mut self, base: &Value, sent: &Value) -> Result<Option<(u64, Value)>, ZarazError> {
        let records = match self.api.history(self.tuning.history_window).await {
            Ok(r) => r,
            Err(e @ ZarazError::Unauthorized { .. }) => return Err(e),
            Err(e) => {
                self.warnings.push(format!("chunk {}: history unreadable ({e}); an edit made during this write cannot be checked", self.chunks.len()));
                return Ok(None);
            }
        };
        let Some(known) = self.run.known_history else {
            // No baseline (history was unreadable or empty at the start): every record would look
            // new, so only take the newest as the baseline for the next write.
            self.run.known_history = records.first().map(|r| r.id);
            if let Some(c) = self.chunks.last_mut() {
                c["history_record"] = json!(self.run.known_history);
            }
            if let Some(id) = self.run.known_history {
                self.run.note_ours(id);
            }
            return Ok(None);
        };
        let mut new_ids: Vec<u64> = records.iter().map(|r| r.id).filter(|id| *id > known).collect();
        crate::sorting::sort(&mut new_ids);
        if let Some(max) = new_ids.last() {
            self.run.known_history = Some(*max);
        }
        let mut note = |field: &str, v: Value| {
            if let Some(c) = self.chunks.last_mut() {
                c[field] = v;
            }
        };
        match new_ids[..] {
            [] => {
                note("history_record", Value::Null);
                Ok(None)
            }
            [id] => {
                note("history_record", json!(id));
                self.run.note_ours(id);
                Ok(None)
            }
            _ => {
                let configs = match self.api.history_configs(&new_ids).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.warnings.push(format!("chunk {}: history records {new_ids:?} unreadable ({e})", self.chunks.len()));
                        new_ids.iter().for_each(|id| self.run.note_foreign(*id));
                        return Ok(None);
                    }
                };
                let a = history::attribute(&new_ids, &configs, &model::config_hash(sent), &model::config_hash(base));
                note("history_record", json!(a.ours));
                note("other_records", json!(a.foreign));
                match a.ours {
                    Some(id) => self.run.note_ours(id),
                    None => self.warnings.push(format!("chunk {}: none of history records {new_ids:?} holds what was written", self.chunks.len())),
                }
                a.foreign.iter().for_each(|id| self.run.note_foreign(*id));
                Ok(a.lost.and_then(|id| configs.get(&id).map(|c| (id, c.clone()))))
            }
        }
    }
}
