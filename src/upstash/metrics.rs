//! Per-isolate store metrics: per-operation counts, errors, retries, fast fails, hits and misses,
//! and latency percentiles over the most recent calls. Isolates come and go, so these describe one
//! isolate's recent past; durable counts (the event books) live in Redis.

use std::collections::BTreeMap;

const SAMPLES: usize = 512;

#[derive(Debug, Clone, Default)]
pub struct OpStats {
    pub calls: u64,
    pub errors: u64,
    pub retries: u64,
    pub fast_fails: u64,
    pub hits: u64,
    pub misses: u64,
    latencies: Vec<f64>,
    next: usize,
}

impl OpStats {
    fn record_latency(&mut self, ms: f64) {
        if self.latencies.len() < SAMPLES {
            self.latencies.push(ms);
        } else {
            self.latencies[self.next] = ms;
        }
        self.next = (self.next + 1) % SAMPLES;
    }
}

/// Nearest-rank percentile of `sorted` (ascending), `p` in (0, 100].
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    ops: BTreeMap<&'static str, OpStats>,
    /// Named counters of fallbacks and shortcuts (e.g. `dedup_local`, `l1_hits`).
    pub counters: BTreeMap<&'static str, u64>,
}

pub enum Outcome {
    Ok,
    Error,
    FastFail,
}

impl Metrics {
    pub fn record(&mut self, op: &'static str, outcome: Outcome, latency_ms: f64, retries: u32) {
        let s = self.ops.entry(op).or_default();
        s.calls += 1;
        s.retries += retries as u64;
        match outcome {
            Outcome::Ok => s.record_latency(latency_ms),
            Outcome::Error => {
                s.errors += 1;
                s.record_latency(latency_ms);
            }
            Outcome::FastFail => s.fast_fails += 1,
        }
    }

    pub fn hit(&mut self, op: &'static str, hit: bool) {
        let s = self.ops.entry(op).or_default();
        if hit {
            s.hits += 1;
        } else {
            s.misses += 1;
        }
    }

    pub fn count(&mut self, name: &'static str, n: u64) {
        *self.counters.entry(name).or_default() += n;
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    pub fn op(&self, name: &str) -> Option<&OpStats> {
        self.ops.get(name)
    }

    pub fn snapshot(&self) -> serde_json::Value {
        let mut all: Vec<f64> = Vec::new();
        let mut ops = serde_json::Map::new();
        for (name, s) in &self.ops {
            let mut sorted = s.latencies.clone();
            crate::sorting::sort_by(&mut sorted, |a, b| a.total_cmp(b).is_lt());
            all.extend_from_slice(&sorted);
            ops.insert(
                name.to_string(),
                serde_json::json!({
                    "calls": s.calls, "errors": s.errors, "retries": s.retries, "fast_fails": s.fast_fails,
                    "hits": s.hits, "misses": s.misses, "latency_ms": latency_json(&sorted),
                }),
            );
        }
        crate::sorting::sort_by(&mut all, |a, b| a.total_cmp(b).is_lt());
        serde_json::json!({ "ops": ops, "latency_ms": latency_json(&all), "counters": self.counters })
    }
}

fn latency_json(sorted: &[f64]) -> serde_json::Value {
    let r = |p| percentile(sorted, p).map(|v| (v * 100.0).round() / 100.0);
    serde_json::json!({ "samples": sorted.len(), "p50": r(50.0), "p95": r(95.0), "p99": r(99.0) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn records_calls_errors_and_a_bounded_latency_window() {
        let mut m = Metrics::default();
        for i in 0..1000 {
            m.record("get", if i % 10 == 0 { Outcome::Error } else { Outcome::Ok }, i as f64, 0);
        }
        m.record("get", Outcome::FastFail, 0.0, 0);
        m.hit("get", true);
        m.hit("get", false);
        let s = m.op("get").unwrap();
        assert_eq!((s.calls, s.errors, s.fast_fails, s.hits, s.misses), (1001, 100, 1, 1, 1));
        let snap = m.snapshot();
        assert_eq!(snap["ops"]["get"]["latency_ms"]["samples"], 512);
        // Only the most recent 512 samples count: the oldest (0..488) are gone.
        assert!(snap["ops"]["get"]["latency_ms"]["p50"].as_f64().unwrap() > 488.0);
    }
}
