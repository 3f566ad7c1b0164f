//! Test controls: the request log (what the worker sent, one entry per HTTP request) and injected
//! faults (latency, a forced status, a hang, dropped connections, a lost reply), each optionally for
//! N requests, after M, or only for requests carrying some text (one script's calls).

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

const LOG_CAPACITY: usize = 10_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request before it is handled.
    pub latency_ms: u64,
    /// Answer with this status (e.g. 500, 401) instead of running the commands.
    pub status: Option<u16>,
    /// Never answer (the client's timeout fires).
    pub hang: bool,
    /// Close connections as soon as they are accepted.
    pub drop: bool,
    /// Run the commands, then answer 502 instead of their results: the reply is lost on the way
    /// back, as when a proxy times out after redis did the work.
    pub lose_reply: bool,
    /// Let this many requests through untouched first (e.g. fail the call after an admission).
    pub skip: u64,
    /// Only requests whose commands contain this text (any argument, e.g. a piece of one script)
    /// meet the faults, and count against `skip`/`times`; the others pass. Not for `drop`, which
    /// cuts connections before a command is read.
    pub matching: Option<String>,
    /// Apply the faults to this many requests, then clear them; `None` = until cleared.
    pub times: Option<u64>,
}

impl Faults {
    fn active(&self) -> bool {
        self.latency_ms > 0 || self.status.is_some() || self.hang || self.drop || self.lose_reply
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub endpoint: String,
    pub commands: Vec<Vec<String>>,
    pub status: u16,
}

#[derive(Default)]
pub struct Control {
    faults: Mutex<Faults>,
    log: Mutex<(u64, VecDeque<LogEntry>)>,
}

impl Control {
    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The faults that apply to the request now arriving (its commands), counting it against `times`.
    pub fn take_request_faults(&self, commands: &[Vec<Vec<u8>>]) -> Faults {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.drop || !f.active() {
            return Faults::default();
        }
        if let Some(text) = f.matching.as_deref() {
            let needle = text.as_bytes();
            let hit = commands.iter().flatten().any(|arg| !needle.is_empty() && arg.windows(needle.len()).any(|w| w == needle));
            if !hit {
                return Faults::default();
            }
        }
        if f.skip > 0 {
            f.skip -= 1;
            return Faults::default();
        }
        let now = f.clone();
        consume(&mut f);
        now
    }

    pub fn take_drop(&self) -> bool {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if !f.drop {
            return false;
        }
        consume(&mut f);
        true
    }

    pub fn record(&self, endpoint: &str, commands: &[Vec<Vec<u8>>], status: u16) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.0 += 1;
        let entry = LogEntry {
            seq: log.0,
            endpoint: endpoint.to_string(),
            commands: commands.iter().map(|c| c.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect()).collect(),
            status,
        };
        if log.1.len() == LOG_CAPACITY {
            log.1.pop_front();
        }
        log.1.push_back(entry);
    }

    pub fn log(&self) -> (u64, Vec<LogEntry>) {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        (log.0, log.1.iter().cloned().collect())
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).1.clear();
    }
}

fn consume(f: &mut Faults) {
    if let Some(n) = f.times.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            *f = Faults::default();
        }
    }
}
