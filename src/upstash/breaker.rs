//! A per-isolate circuit breaker: closed → open after N consecutive failed operations → one
//! half-open probe after a cool-down → closed on success, open again on failure. While open, calls
//! fail fast so a dead store costs nothing but the fallback.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum State {
    Closed { failures: u32 },
    Open { until_ms: f64 },
    HalfOpen { probe_in_flight: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    pub opened_total: u64,
    pub last_error: Option<String>,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker { state: State::Closed { failures: 0 }, opened_total: 0, last_error: None }
    }
}

impl Breaker {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn name(&self) -> &'static str {
        match self.state {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half-open",
        }
    }

    /// May a call go out now? Moves open → half-open when the cool-down is over and lets exactly
    /// one probe through.
    pub fn allow(&mut self, now_ms: f64) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until_ms } if now_ms >= until_ms => {
                self.state = State::HalfOpen { probe_in_flight: true };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { probe_in_flight: false } => {
                self.state = State::HalfOpen { probe_in_flight: true };
                true
            }
            State::HalfOpen { probe_in_flight: true } => false,
        }
    }

    pub fn on_success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub fn on_failure(&mut self, now_ms: f64, threshold: u32, cooldown_ms: u32, error: String) {
        self.last_error = Some(error);
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < threshold => State::Closed { failures: failures + 1 },
            State::Open { until_ms } => State::Open { until_ms },
            _ => {
                self.opened_total += 1;
                State::Open { until_ms: now_ms + cooldown_ms as f64 }
            }
        };
    }

    /// Milliseconds until an open breaker lets a probe through.
    pub fn retry_in_ms(&self, now_ms: f64) -> Option<f64> {
        match self.state {
            State::Open { until_ms } => Some((until_ms - now_ms).max(0.0)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_probes_after_cooldown_and_closes() {
        let mut b = Breaker::default();
        for i in 0..3 {
            assert!(b.allow(i as f64));
            b.on_failure(i as f64, 3, 1000, "boom".into());
        }
        assert_eq!(b.name(), "open");
        assert!(!b.allow(500.0), "open fails fast");
        assert!(b.allow(1002.0), "one probe after the cool-down");
        assert!(!b.allow(1003.0), "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(), State::Closed { failures: 0 });
        assert_eq!(b.opened_total, 1);
    }

    #[test]
    fn a_failed_probe_reopens_for_another_cooldown() {
        let mut b = Breaker::default();
        b.on_failure(0.0, 1, 100, "x".into());
        assert!(b.allow(100.0));
        b.on_failure(100.0, 1, 100, "still down".into());
        assert!(!b.allow(150.0));
        assert_eq!(b.retry_in_ms(150.0), Some(50.0));
        assert!(b.allow(200.0));
        assert_eq!(b.opened_total, 2);
    }

    #[test]
    fn success_resets_the_failure_count() {
        let mut b = Breaker::default();
        b.on_failure(0.0, 3, 100, "x".into());
        b.on_failure(0.0, 3, 100, "x".into());
        b.on_success();
        b.on_failure(0.0, 3, 100, "x".into());
        assert_eq!(b.name(), "closed");
    }
}
