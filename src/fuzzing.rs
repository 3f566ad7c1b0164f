//! Entry points shared by the fuzz targets (`fuzz/`, run with `cargo fuzz`) and by `make test`,
//! which replays every input kept in `fuzz/corpus/` (see `tests/fuzz_corpus.rs`). Each one runs
//! untrusted input through a parser and must simply return.

use crate::cache_policy::{rules, Policy, RequestFacts, ResponseFacts};
use crate::config::CollectLimits;
use crate::events::catalog::Catalog;
use crate::events::intake::{self, RequestFacts as IntakeFacts};

/// A /collect body through the whole intake, and every accepted event serialised.
pub fn intake(data: &[u8]) {
    let catalog = Catalog::new(vec!["CustomEvent".into()]);
    let limits = CollectLimits { max_events: 50, max_bytes: 65_536 };
    let facts = IntakeFacts {
        now_ms: 1_764_000_000_000.0,
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("fuzz".into()),
        referer: Some("https://shop.example/".into()),
        fbp_cookie: Some("fb.1.1596403881668.1116446470".into()),
        fbc_cookie: std::str::from_utf8(data).ok().map(|s| s.chars().take(64).collect()),
        consent_cookie: None,
    };
    if let Ok(parsed) = intake::parse(data, &catalog, limits, &facts) {
        for event in parsed.events.into_iter().flatten() {
            let _ = serde_json::to_vec(&event.event);
        }
    }
}

/// Text as `CACHE_RULES`; the rules matched against a path made of the same text.
pub fn cache_rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(user) = rules::parse(text) else { return };
    let policy = Policy { user, ..Policy::default() };
    let path = format!("/{}", text.chars().filter(|c| !c.is_control()).take(200).collect::<String>());
    let req = RequestFacts { method: "GET".into(), path, ..RequestFacts::default() };
    let _ = policy.before(&req);
    let _ = policy.decide(&req, &ResponseFacts { status: 200, content_type: "text/html".into(), ..ResponseFacts::default() });
}
