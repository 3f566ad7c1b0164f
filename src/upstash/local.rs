//! The in-isolate fallback and L1: bounded, TTL-aware maps. `claimed` remembers dedup keys this
//! isolate has claimed (answering repeats with zero round trips, and standing in for Redis when the
//! store is down); `counters` are fixed-window rate-limit counts used only while the store is down.

use std::collections::{HashMap, VecDeque};

/// A bounded map of key → expiry; the oldest insertions are evicted first when full.
#[derive(Debug, Clone)]
pub struct TtlSet {
    expiry: HashMap<String, f64>,
    order: VecDeque<String>,
    capacity: usize,
}

impl TtlSet {
    pub fn new(capacity: usize) -> TtlSet {
        TtlSet { expiry: HashMap::new(), order: VecDeque::new(), capacity }
    }

    pub fn contains(&self, key: &str, now_ms: f64) -> bool {
        self.expiry.get(key).is_some_and(|&t| t > now_ms)
    }

    /// Inserts unless present and live; returns true when inserted (a new claim).
    pub fn insert_new(&mut self, key: &str, now_ms: f64, ttl_ms: f64) -> bool {
        if self.contains(key, now_ms) {
            return false;
        }
        self.insert(key, now_ms, ttl_ms);
        true
    }

    pub fn insert(&mut self, key: &str, now_ms: f64, ttl_ms: f64) {
        if self.expiry.insert(key.to_string(), now_ms + ttl_ms).is_none() {
            self.order.push_back(key.to_string());
        }
        while self.expiry.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            self.expiry.remove(&old);
        }
        if self.order.len() > self.capacity * 2 {
            self.order.retain(|k| self.expiry.contains_key(k));
        }
    }

    pub fn remove(&mut self, key: &str) {
        self.expiry.remove(key);
    }

    pub fn len(&self) -> usize {
        self.expiry.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry.is_empty()
    }
}

/// Fixed-window counters for when the store cannot count.
#[derive(Debug, Clone, Default)]
pub struct LocalCounters {
    windows: HashMap<String, (u64, u32)>,
}

impl LocalCounters {
    /// Counts one hit for `key` in the window starting at `window_start`; returns the window's count.
    pub fn incr(&mut self, key: &str, window_start: u64) -> u32 {
        if self.windows.len() > 10_000 {
            self.windows.retain(|_, (w, _)| *w >= window_start);
        }
        let e = self.windows.entry(key.to_string()).or_insert((window_start, 0));
        if e.0 != window_start {
            *e = (window_start, 0);
        }
        e.1 += 1;
        e.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_expire_and_capacity_is_bounded() {
        let mut s = TtlSet::new(3);
        assert!(s.insert_new("a", 0.0, 100.0));
        assert!(!s.insert_new("a", 50.0, 100.0), "live claim");
        assert!(s.insert_new("a", 150.0, 100.0), "expired claim can be taken again");
        for k in ["b", "c", "d"] {
            s.insert(k, 150.0, 100.0);
        }
        assert_eq!(s.len(), 3);
        assert!(!s.contains("a", 160.0), "oldest evicted");
        assert!(s.contains("d", 160.0));
    }

    #[test]
    fn counters_reset_each_window() {
        let mut c = LocalCounters::default();
        assert_eq!(c.incr("ip", 60), 1);
        assert_eq!(c.incr("ip", 60), 2);
        assert_eq!(c.incr("ip", 120), 1);
    }
}
