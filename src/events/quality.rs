//! The match-key report: per event name and site, how many accepted events carried each match key,
//! and an estimated match score. Only counts are stored, never values. The score is edgekeeper's
//! estimate from coverage and the weights below, NOT Meta's Event Match Quality: Meta does not
//! publish its formula. The weights follow Meta's guidance on which keys matter most (email and
//! phone first, then click and browser ids, then IP and user agent, then the rest).

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// Match keys and their weights in the estimate (sum 20).
pub const WEIGHTS: &[(&str, f64)] = &[
    ("em", 4.0),
    ("ph", 3.0),
    ("external_id", 2.0),
    ("fbc", 2.0),
    ("fbp", 1.5),
    ("client_ip_address", 1.25),
    ("client_user_agent", 1.25),
    ("fn", 0.75),
    ("ln", 0.75),
    ("zp", 0.75),
    ("ct", 0.5),
    ("st", 0.5),
    ("country", 0.5),
    ("db", 0.5),
    ("ge", 0.5),
];

/// Estimated score from 0 to 10: the weighted share of keys present, averaged over events.
pub fn score(events: u64, counts: &BTreeMap<String, u64>) -> f64 {
    if events == 0 {
        return 0.0;
    }
    let total: f64 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let got: f64 = WEIGHTS.iter().map(|(k, w)| w * (counts.get(*k).copied().unwrap_or(0).min(events) as f64 / events as f64)).sum();
    (got / total * 100.0).round() / 10.0
}

/// One event name's report from its stored hash fields (`events` and per-key counts).
pub fn report(fields: &BTreeMap<String, u64>) -> Value {
    let events = fields.get("events").copied().unwrap_or(0);
    let coverage: serde_json::Map<String, Value> = WEIGHTS
        .iter()
        .map(|(k, _)| {
            let n = fields.get(*k).copied().unwrap_or(0);
            let pct = if events == 0 { 0.0 } else { (n as f64 / events as f64 * 1000.0).round() / 10.0 };
            (k.to_string(), json!({ "events": n, "percent": pct }))
        })
        .collect();
    json!({ "events": events, "coverage": coverage, "estimated_score": score(events, fields) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn scores_are_weighted_coverage_out_of_ten() {
        assert_eq!(score(0, &counts(&[])), 0.0);
        let all: Vec<(&str, u64)> = WEIGHTS.iter().map(|(k, _)| (*k, 4)).collect();
        assert_eq!(score(4, &counts(&all)), 10.0);
        // Email on half the events, IP and UA on all: (4*0.5 + 1.25 + 1.25) / 20 = 0.225.
        assert_eq!(score(2, &counts(&[("em", 1), ("client_ip_address", 2), ("client_user_agent", 2)])), 2.3);
        assert_eq!(score(1, &counts(&[("em", 5)])), 2.0, "counts above the event total are capped");
    }

    #[test]
    fn report_lists_every_key_with_percentages() {
        let r = report(&counts(&[("events", 4), ("em", 3), ("fbp", 4)]));
        assert_eq!(r["events"], 4);
        assert_eq!(r["coverage"]["em"], json!({ "events": 3, "percent": 75.0 }));
        assert_eq!(r["coverage"]["ph"]["events"], 0);
        assert_eq!(r["coverage"].as_object().unwrap().len(), WEIGHTS.len());
    }
}
