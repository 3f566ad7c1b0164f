//! Delivery of queued events to Meta, for one queue batch: skip what was already delivered (queue
//! redelivery must never send twice), group by pixel and test code, send in batches, and decide each
//! message's fate. One bad event is dead-lettered with Meta's reason and the rest sent again; a
//! batch rejected without a culprit is split in halves until the culprit is alone. The store sees
//! two round trips per queue batch: marker check, then markers + dead letters + books together.

use std::collections::BTreeMap;

use serde_json::json;

use super::{classify, request, Verdict};
use crate::config::Config;
use crate::events::dedup::books_key;
use crate::events::outbox::QueuedEvent;
use crate::http::Outbound;
use crate::upstash::{cmd, codec, Command, Isolate, Keys, Module, Retry, Store, Value};

/// Delivered markers outlive Meta's 48 h dedup window and the queue's retention.
pub const DELIVERED_TTL_SECS: u64 = 7 * 24 * 3600;
/// Dead letters kept per site.
pub const DLQ_KEEP: u32 = 10_000;
/// Conversions API requests one invocation may make (subrequests are limited per invocation).
pub const MAX_REQUESTS: u32 = 40;

#[derive(Debug, Clone)]
pub struct Item {
    pub msg: QueuedEvent,
    /// Milliseconds since the event was accepted (the queue's attempt count is not exposed to
    /// Rust consumers; age grows the same way and drives the retry delay).
    pub age_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Delivered,
    /// A marker says an earlier attempt delivered it.
    AlreadyDelivered,
    Retry { delay_secs: u32, reason: String },
    DeadLettered { reason: String },
}

impl Fate {
    pub fn acked(&self) -> bool {
        !matches!(self, Fate::Retry { .. })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fates: Vec<Option<Fate>>,
    pub capi_requests: u32,
}

/// Retry delay for the queue: as long as the event has already waited, between 5 s and 10 min, so
/// successive delays roughly double (5, 5, 10, 20, 40 ... 600 s).
pub fn retry_delay(age_ms: f64) -> u32 {
    ((age_ms / 1000.0) as u32).clamp(5, 600)
}

/// Sets each key in KEYS to 1 for ARGV[1] seconds.
const MARK_DELIVERED: &str = "for _, k in ipairs(KEYS) do redis.call('SET', k, '1', 'EX', ARGV[1]) end return #KEYS";

pub fn delivered_key(msg: &QueuedEvent, prefix: &str) -> String {
    Keys::new(prefix, &msg.site).key(Module::Sent, &format!("{}:{}", msg.event_name(), msg.event_id()))
}

pub fn dlq_key(prefix: &str, site: &str) -> String {
    Keys::new(prefix, site).key(Module::Dlq, "events")
}

/// A dead letter as stored: the queued message (hashed data only) and why Meta or we gave up.
pub fn dead_letter(item: &Item, reason: &str, now_ms: f64) -> serde_json::Value {
    json!({
        "event_id": item.msg.event_id(),
        "event_name": item.msg.event_name(),
        "site": item.msg.site,
        "reason": reason,
        "age_ms": item.age_ms as i64,
        "dead_lettered_at_ms": now_ms as i64,
        "message": item.msg,
    })
}

pub async fn deliver<O: Outbound>(items: &[Item], cfg: &Config, out: &O, iso: &Isolate) -> Report {
    let mut report = Report { fates: vec![None; items.len()], capi_requests: 0 };
    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));

    // Already delivered by an earlier attempt? One command for the whole batch (MGET: Upstash
    // bills a command, not a key).
    if let Some(s) = &store {
        let mut check = cmd(["MGET"]);
        check.extend(items.iter().map(|i| delivered_key(&i.msg, &cfg.key_prefix)));
        if let Ok(Value::Array(values)) = s.command("delivered_check", &check, Retry::Idempotent).await {
            for (fate, v) in report.fates.iter_mut().zip(values) {
                if !v.is_nil() {
                    *fate = Some(Fate::AlreadyDelivered);
                }
            }
        }
    }

    // The same event twice in one batch (two messages for one event, e.g. accepted by two isolates
    // while the store was down): only the first copy is sent.
    let mut seen = std::collections::BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if report.fates[i].is_none() && !seen.insert(delivered_key(&item.msg, &cfg.key_prefix)) {
            report.fates[i] = Some(Fate::AlreadyDelivered);
        }
    }

    let mut groups: BTreeMap<(String, Option<String>), Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if report.fates[i].is_none() {
            groups.entry((item.msg.pixel_id.clone(), item.msg.test_event_code.clone())).or_default().push(i);
        }
    }
    let batch = cfg.capi_batch_size.clamp(1, super::MAX_BATCH);
    let mut work: Vec<(String, Option<String>, Vec<usize>)> = Vec::new();
    for ((pixel, code), idx) in groups {
        for chunk in idx.chunks(batch) {
            work.push((pixel.clone(), code.clone(), chunk.to_vec()));
        }
    }
    work.reverse();

    while let Some((pixel, code, idx)) = work.pop() {
        if report.capi_requests >= MAX_REQUESTS {
            for &i in &idx {
                report.fates[i] = Some(Fate::Retry { delay_secs: 1, reason: "request budget of this invocation used".into() });
            }
            continue;
        }
        // Each pixel with its own token (PIXELS), or META_ACCESS_TOKEN.
        let Some(token) = cfg.token_for(&pixel) else {
            for &i in &idx {
                report.fates[i] = Some(Fate::Retry { delay_secs: 300, reason: format!("no access token configured for pixel {pixel}") });
            }
            continue;
        };
        let events: Vec<_> = idx.iter().map(|&i| &items[i].msg.event).collect();
        let req = request(&cfg.meta, &pixel, code.as_deref(), &events, token.expose());
        report.capi_requests += 1;
        let result = out.send(req).await;
        match classify(&result) {
            Verdict::Delivered { .. } => {
                for &i in &idx {
                    report.fates[i] = Some(Fate::Delivered);
                }
            }
            Verdict::Retry { reason } | Verdict::Credentials { reason } => {
                if reason.contains("code 190") || reason.contains("code 102") {
                    iso.count("capi_credentials_errors", 1);
                }
                for &i in &idx {
                    report.fates[i] = Some(Fate::Retry { delay_secs: retry_delay(items[i].age_ms), reason: reason.clone() });
                }
            }
            Verdict::BadEvent { index, reason } if index < idx.len() => {
                report.fates[idx[index]] = Some(Fate::DeadLettered { reason });
                let rest: Vec<usize> = idx.iter().enumerate().filter(|(n, _)| *n != index).map(|(_, &i)| i).collect();
                if !rest.is_empty() {
                    work.push((pixel, code, rest));
                }
            }
            Verdict::BadEvent { reason, .. } | Verdict::BadBatch { reason } => {
                if idx.len() == 1 {
                    report.fates[idx[0]] = Some(Fate::DeadLettered { reason });
                } else {
                    let (a, b) = idx.split_at(idx.len() / 2);
                    work.push((pixel.clone(), code.clone(), b.to_vec()));
                    work.push((pixel, code, a.to_vec()));
                }
            }
        }
    }

    record(items, &mut report, cfg, store.as_ref(), out.now_ms()).await;
    report
}

/// Messages the queue gave up on (its own dead-letter queue, after max_retries): stored as dead
/// letters with `reason`. Returns each message's fate (Retry when it could not be stored yet).
pub async fn bury<O: Outbound>(items: &[Item], reason: &str, cfg: &Config, out: &O, iso: &Isolate) -> Report {
    let mut report = Report { fates: vec![Some(Fate::DeadLettered { reason: reason.to_string() }); items.len()], capi_requests: 0 };
    let store = cfg.upstash.as_ref().map(|u| Store::new(u, out, iso));
    record(items, &mut report, cfg, store.as_ref(), out.now_ms()).await;
    report
}

/// Markers, dead letters and books in one round trip. Dead letters that cannot be stored are not
/// acknowledged: the queue keeps them (nothing is lost).
async fn record<O: Outbound>(items: &[Item], report: &mut Report, cfg: &Config, store: Option<&Store<'_, O>>, now_ms: f64) {
    let mut commands: Vec<Command> = Vec::new();
    let mut books: BTreeMap<&str, [i64; 3]> = BTreeMap::new();
    let mut letters: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    // Every delivered marker in one command (a script), not one SET per event.
    let mut markers = cmd(["EVAL", MARK_DELIVERED, "0"]);
    for (item, fate) in items.iter().zip(&report.fates) {
        let b = books.entry(item.msg.site.as_str()).or_default();
        match fate {
            Some(Fate::Delivered) => {
                b[0] += 1;
                markers.push(delivered_key(&item.msg, &cfg.key_prefix));
            }
            Some(Fate::Retry { .. }) => b[1] += 1,
            Some(Fate::DeadLettered { reason }) => {
                b[2] += 1;
                letters.entry(item.msg.site.as_str()).or_default().push(codec::encode(&dead_letter(item, reason, now_ms).to_string()));
            }
            _ => {}
        }
    }
    if markers.len() > 3 {
        // The keys go in as KEYS (numkeys), with the TTL after them.
        markers[2] = (markers.len() - 3).to_string();
        markers.push(DELIVERED_TTL_SECS.to_string());
        commands.push(markers);
    }
    for (site, values) in &letters {
        let key = dlq_key(&cfg.key_prefix, site);
        let mut push = cmd(["LPUSH".to_string(), key.clone()]);
        push.extend(values.iter().cloned());
        commands.push(push);
        commands.push(cmd(["LTRIM".to_string(), key, "0".into(), (DLQ_KEEP - 1).to_string()]));
    }
    for (site, [delivered, retried, dead]) in &books {
        let key = books_key(&Keys::new(&cfg.key_prefix, site));
        for (field, n) in [("delivered", delivered), ("retried", retried), ("dead_lettered", dead)] {
            if *n > 0 {
                commands.push(cmd(["HINCRBY".to_string(), key.clone(), field.to_string(), n.to_string()]));
            }
        }
    }
    if commands.is_empty() {
        return;
    }
    let stored = match store {
        Some(s) => s.multi_exec("delivery_record", &commands, Retry::Once).await.is_ok(),
        None => false,
    };
    if !stored {
        for (fate, item) in report.fates.iter_mut().zip(items) {
            if let Some(Fate::DeadLettered { reason }) = fate {
                *fate = Some(Fate::Retry { delay_secs: retry_delay(item.age_ms), reason: format!("dead letter not stored yet: {reason}") });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::native::NativeOutbound;
    use crate::http::{OutboundRequest, OutboundResponse, TransportError};
    use crate::testsupport::LocalStore;

    /// The store is the real one; Meta answers every batch with 200.
    struct MetaOk {
        requests: std::cell::Cell<u32>,
    }

    impl Outbound for MetaOk {
        async fn send(&self, req: OutboundRequest) -> Result<OutboundResponse, TransportError> {
            if req.url.contains("/events") {
                self.requests.set(self.requests.get() + 1);
                return Ok(OutboundResponse { status: 200, headers: vec![], body: br#"{"events_received":1,"messages":[]}"#.to_vec() });
            }
            NativeOutbound.send(req).await
        }
        async fn sleep(&self, ms: u32) {
            NativeOutbound.sleep(ms).await
        }
        fn now_ms(&self) -> f64 {
            NativeOutbound.now_ms()
        }
        fn random(&self) -> f64 {
            0.5
        }
    }

    fn item(id: &str) -> Item {
        let event = json!({ "event_name": "Lead", "event_id": id, "event_time": 1, "action_source": "website", "user_data": {} });
        Item {
            msg: QueuedEvent { v: 1, site: "shop.example".into(), pixel_id: "1".into(), test_event_code: None, claim_key: "c".into(), accepted_at_ms: 0, event },
            age_ms: 0.0,
        }
    }

    #[test]
    fn delivered_markers_cost_two_store_commands_per_batch_and_stop_a_second_send() {
        let store = LocalStore::start();
        let vars = [("UPSTASH_REDIS_REST_URL", store.url.as_str()), ("UPSTASH_REDIS_REST_TOKEN", store.token.as_str()), ("META_ACCESS_TOKEN", "t")];
        let cfg = Config::from_source(&vars[..]).unwrap();
        let (out, iso) = (MetaOk { requests: Default::default() }, Isolate::default());
        let batch: Vec<Item> = (0..20).map(|i| item(&format!("e{i}"))).collect();
        let since = store.log_seq();
        let first = pollster::block_on(deliver(&batch, &cfg, &out, &iso));
        assert!(first.fates.iter().all(|f| *f == Some(Fate::Delivered)), "{:?}", first.fates);
        assert_eq!(out.requests.get(), 1);
        // One MGET, then markers and books in one transaction: two store requests for 20 events.
        assert_eq!(store.log_seq() - since, 2);
        // The same messages again (a redelivery after a lost ack): nothing is sent twice.
        let again = pollster::block_on(deliver(&batch[5..], &cfg, &out, &iso));
        assert!(again.fates.iter().all(|f| *f == Some(Fate::AlreadyDelivered)), "{:?}", again.fates);
        assert_eq!(out.requests.get(), 1);
        let mixed: Vec<Item> = vec![item("e1"), item("new-1")];
        let third = pollster::block_on(deliver(&mixed, &cfg, &out, &iso));
        assert_eq!(third.fates, vec![Some(Fate::AlreadyDelivered), Some(Fate::Delivered)]);
    }
}
