//! Admission against real redis through the real local store.

use super::*;
use crate::upstash::PendingBooks;
use crate::http::native::NativeOutbound;
use crate::testsupport::LocalStore;

fn run<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

const LIMITS: RateLimits = RateLimits { per_ip: 1000, per_site: 100_000, window_secs: 60 };

/// A store with short timeouts, for the tests that make it fail.
fn impatient_store() -> (LocalStore, crate::config::UpstashConfig) {
    let store = LocalStore::start();
    let mut cfg = store.config();
    cfg.timeout_ms = 200;
    cfg.deadline_ms = 300;
    (store, cfg)
}

/// Makes a claim look PENDING_SECS old (its TTL is what tells its age).
fn age_claim(s: &Store<'_, NativeOutbound>, claim: &str) {
    let ttl = (CLAIM_TTL_SECS - PENDING_SECS - 1).to_string();
    run(s.command("t", &cmd(["EXPIRE", claim, &ttl]), Retry::Idempotent)).unwrap();
}

fn keys() -> Keys {
    Keys::new("ek", "shop.example")
}

#[test]
fn one_round_trip_claims_and_counts_then_l1_answers_repeats_for_free() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Purchase", "o-1"), claim_key(&k, "AddToCart", "o-1")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.7", limits: LIMITS, request_token: "tok-1" };

    let seq0 = store.log_seq();
    let first = run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap();
    assert_eq!(first.fresh, vec![true, true]);
    assert_eq!(first.mode, DedupMode::Store);
    assert_eq!(first.round_trips, 1);
    assert_eq!(store.log_seq() - seq0, 1, "claims and counters in one HTTP request");

    // Not remembered before the queue took the events.
    assert!(!iso.claimed.borrow().contains(&claims[0], out.now_ms()));
    queued(&iso, &k, &claims, "tok-1", out.now_ms(), DedupMode::Store, true);
    let a2 = Admit { request_token: "tok-2", ..a };
    let again = run(admit(Some(&s), &iso, &out, &a2, &claims)).unwrap();
    assert_eq!(again.fresh, vec![false, false]);
    assert_eq!(again.round_trips, 0, "the L1 knew");
    assert_eq!(store.log_seq() - seq0, 1);

    // The claims are confirmed by this isolate's next round trip (another event's admission).
    let next = vec![claim_key(&k, "Lead", "o-2")];
    run(admit(Some(&s), &iso, &out, &Admit { request_token: "tok-4", ..a }, &next)).unwrap();
    assert_eq!(run(s.command("t", &cmd(["GET", &claims[0]]), Retry::Idempotent)).unwrap(), Value::Str("c".into()));
    // Another isolate (empty L1) learns it from the store.
    let iso2 = Isolate::default();
    let s2 = Store::new(&cfg, &out, &iso2);
    let other = run(admit(Some(&s2), &iso2, &out, &Admit { request_token: "tok-3", ..a }, &claims)).unwrap();
    assert_eq!(other.fresh, vec![false, false]);
    assert_eq!(other.round_trips, 1);
}

#[test]
fn a_claim_whose_release_was_lost_lets_the_retry_through_and_the_books_count_it_once() {
    let (store, cfg) = impatient_store();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Purchase", "rel-1")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.20", limits: LIMITS, request_token: "rel-a" };
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap().fresh, vec![true]);
    // The queue refused the event and the release fails: the claim stays, pending.
    store.set_faults(serde_json::json!({ "status": 500 }));
    assert!(run(release(Some(&s), &iso, &k, &claims, DedupMode::Store, "rel-a")).is_err());
    store.set_faults(serde_json::json!({}));
    // The client's retry reaches another isolate while the claim is young: in progress, to retry.
    let iso2 = Isolate::default();
    let early = run(admit(Some(&Store::new(&cfg, &out, &iso2)), &iso2, &out, &Admit { request_token: "rel-early", ..a }, &claims)).unwrap();
    assert_eq!((early.fresh.clone(), early.in_progress.clone()), (vec![false], vec![true]), "neither new nor a duplicate");
    age_claim(&s, &claims[0]);
    // Once the claim is older than any request's queue send: accepted, not a duplicate.
    let retry = run(admit(Some(&Store::new(&cfg, &out, &iso2)), &iso2, &out, &Admit { request_token: "rel-b", ..a }, &claims)).unwrap();
    assert_eq!(retry.fresh, vec![true], "a pending claim is taken over");
    // The lost release, carried by the first isolate's next round trip, no longer owns the claim.
    let s1 = Store::new(&cfg, &out, &iso);
    run(flush(&s1, &k, "later")).unwrap();
    assert!(iso.ride(k.site()).is_empty());
    assert_eq!(books(&s, &k)["accepted"], 1, "one event accepted, counted once");
    assert_eq!(run(s.command("t", &cmd(["GET", &claims[0]]), Retry::Idempotent)).unwrap(), Value::Str("t:rel-b".into()));
}

#[test]
fn counts_carried_by_a_call_whose_reply_was_lost_are_applied_once() {
    let (store, cfg) = impatient_store();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    // Counts decided here (two rejections) ride with the next call, whose reply is lost every time
    // (the script ran each time).
    iso.note_books(k.site(), PendingBooks { duplicates: 0, rejected: 2 });
    store.set_faults(serde_json::json!({ "lose_reply": true }));
    let a = Admit { keys: &k, rejected: 1, client_ip: "203.0.113.21", limits: LIMITS, request_token: "lost-1" };
    let claims = vec![claim_key(&k, "Lead", "lost-a")];
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap().mode, DedupMode::Local);
    assert_eq!(iso.ride(k.site()).sealed.len(), 1, "sealed under the lost call's guard");
    store.set_faults(serde_json::json!({}));
    // The next call carries them again; the store knows the sealed call ran.
    run(admit(Some(&s), &iso, &out, &Admit { request_token: "lost-2", rejected: 0, ..a }, &[claim_key(&k, "Lead", "lost-b")])).unwrap();
    assert!(iso.ride(k.site()).is_empty(), "{:?}", iso.ride(k.site()));
    let b = books(&s, &k);
    assert_eq!(b["rejected"], 3, "2 carried + 1 own, once although the script ran three times");
    // lost-a: counted by the lost call, not again for the local acceptance; lost-b counted.
    assert_eq!(b["accepted"], 2);
}

#[test]
fn a_rate_limited_request_still_writes_the_counts_it_carries() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let limits = RateLimits { per_ip: 1, per_site: 100, window_secs: 60 };
    let a = Admit { keys: &k, rejected: 0, client_ip: "192.0.2.30", limits, request_token: "rl-1" };
    run(admit(Some(&s), &iso, &out, &a, &[claim_key(&k, "Lead", "rl-a")])).unwrap();
    iso.note_books(k.site(), PendingBooks { duplicates: 4, rejected: 0 });
    let err = run(admit(Some(&s), &iso, &out, &Admit { request_token: "rl-2", rejected: 2, ..a }, &[claim_key(&k, "Lead", "rl-b")])).unwrap_err();
    assert_eq!(err.status(), 429);
    assert!(iso.ride(k.site()).is_empty());
    let b = books(&s, &k);
    assert_eq!((b["duplicates"], b["rejected"]), (4, 2));
}

#[test]
fn a_retried_admission_still_sees_its_own_claims_as_new_and_counts_once() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Lead", "l-1")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "198.51.100.1", limits: LIMITS, request_token: "same-token" };
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap().fresh, vec![true]);
    // The retry comes from a fresh isolate (no L1), as after a lost response.
    let iso2 = Isolate::default();
    let s2 = Store::new(&cfg, &out, &iso2);
    let retry = run(admit(Some(&s2), &iso2, &out, &a, &claims)).unwrap();
    assert_eq!(retry.fresh, vec![true]);
    assert_eq!(retry.rate.remaining, LIMITS.per_ip - 1, "the retry did not count twice");
}

#[test]
fn over_the_limit_is_rate_limited_and_claims_nothing() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let limits = RateLimits { per_ip: 2, per_site: 100, window_secs: 60 };
    for i in 0..2 {
        let c = vec![claim_key(&k, "PageView", &format!("p-{i}"))];
        let t = format!("t-{i}");
        run(admit(Some(&s), &iso, &out, &Admit { keys: &k, rejected: 0, client_ip: "192.0.2.9", limits, request_token: &t }, &c)).unwrap();
    }
    let c = vec![claim_key(&k, "PageView", "p-limited")];
    let err = run(admit(Some(&s), &iso, &out, &Admit { keys: &k, rejected: 0, client_ip: "192.0.2.9", limits, request_token: "t-x" }, &c)).unwrap_err();
    assert_eq!(err.status(), 429);
    // Not claimed: the client can send it again once the window resets.
    assert_eq!(run(s.get(&c[0])).unwrap(), None);
    // Another client is not affected.
    let ok = run(admit(Some(&s), &iso, &out, &Admit { keys: &k, rejected: 0, client_ip: "192.0.2.10", limits, request_token: "t-y" }, &c)).unwrap();
    assert_eq!(ok.fresh, vec![true]);
}

#[test]
fn store_down_falls_back_to_local_dedup() {
    let (store, cfg) = impatient_store();
    drop(store);
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Purchase", "down-1")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.1", limits: LIMITS, request_token: "d1" };
    let first = run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap();
    assert_eq!((first.fresh.clone(), first.mode), (vec![true], DedupMode::Local));
    let second = run(admit(Some(&s), &iso, &out, &Admit { request_token: "d2", ..a }, &claims)).unwrap();
    assert_eq!(second.fresh, vec![false]);
    assert!(iso.metrics.borrow().counter("dedup_local") >= 1);
}

#[test]
fn released_claims_can_be_claimed_again() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Purchase", "r-1")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.2", limits: LIMITS, request_token: "r1" };
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap().fresh, vec![true]);
    run(release(Some(&s), &iso, &k, &claims, DedupMode::Store, "r1")).unwrap();
    assert_eq!(run(s.get(&claims[0])).unwrap(), None, "deleted");
    let again = run(admit(Some(&s), &iso, &out, &Admit { request_token: "r2", ..a }, &claims)).unwrap();
    assert_eq!(again.fresh, vec![true]);
}

fn books(s: &Store<'_, NativeOutbound>, k: &Keys) -> std::collections::HashMap<String, i64> {
    let v = run(s.command("t", &crate::upstash::cmd(["HGETALL".to_string(), books_key(k)]), Retry::Idempotent)).unwrap();
    let Value::Array(items) = v else { panic!("{v:?}") };
    // A field the script never had to add (a zero) is absent: read it as 0.
    let mut b: std::collections::HashMap<String, i64> = ["accepted", "duplicates", "rejected"].iter().map(|f| (f.to_string(), 0)).collect();
    b.extend(items.chunks(2).map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().parse().unwrap())));
    b
}

#[test]
fn the_books_count_each_request_once_and_a_release_uncounts() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let claims = vec![claim_key(&k, "Purchase", "b-1"), claim_key(&k, "Purchase", "b-2")];
    let a = Admit { keys: &k, rejected: 3, client_ip: "203.0.113.3", limits: LIMITS, request_token: "b" };
    run(admit(Some(&s), &iso, &out, &a, &claims)).unwrap();
    // The same request retried from another isolate: counted once.
    let iso2 = Isolate::default();
    run(admit(Some(&Store::new(&cfg, &out, &iso2)), &iso2, &out, &a, &claims)).unwrap();
    let b = books(&s, &k);
    assert_eq!((b["accepted"], b["duplicates"], b["rejected"]), (2, 0, 3));
    // Queued, and confirmed (here by the next round trip): a later duplicate is counted as one.
    queued(&iso, &k, &claims[..1], "b", out.now_ms(), DedupMode::Store, true);
    run(flush(&s, &k, "confirm")).unwrap();
    let iso3 = Isolate::default();
    run(admit(Some(&Store::new(&cfg, &out, &iso3)), &iso3, &out, &Admit { request_token: "b2", rejected: 0, ..a }, &claims[..1])).unwrap();
    run(release(Some(&s), &iso, &k, &claims[1..], DedupMode::Store, "b")).unwrap();
    let b = books(&s, &k);
    assert_eq!((b["accepted"], b["duplicates"]), (1, 1));
}

#[test]
fn duplicates_the_l1_decided_ride_along_with_the_next_round_trip() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    let first = vec![claim_key(&k, "PageView", "l1-a")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.4", limits: LIMITS, request_token: "l1-1" };
    run(admit(Some(&s), &iso, &out, &a, &first)).unwrap();
    queued(&iso, &k, &first, "l1-1", out.now_ms(), DedupMode::Store, true);
    let again = run(admit(Some(&s), &iso, &out, &Admit { request_token: "l1-2", ..a }, &first)).unwrap();
    assert_eq!(again.round_trips, 0);
    assert_eq!(iso.ride(k.site()).open, PendingBooks { duplicates: 1, rejected: 0 });
    let next = vec![claim_key(&k, "PageView", "l1-b")];
    run(admit(Some(&s), &iso, &out, &Admit { request_token: "l1-3", rejected: 2, ..a }, &next)).unwrap();
    assert!(iso.ride(k.site()).is_empty());
    let b = books(&s, &k);
    assert_eq!((b["accepted"], b["duplicates"], b["rejected"]), (2, 1, 2));
}

#[test]
fn events_accepted_while_the_store_was_down_reach_the_books_later() {
    let (store, cfg) = impatient_store();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    store.set_faults(serde_json::json!({ "status": 500 }));
    let down = vec![claim_key(&k, "Lead", "down-a"), claim_key(&k, "Lead", "down-b")];
    let a = Admit { keys: &k, rejected: 1, client_ip: "203.0.113.9", limits: LIMITS, request_token: "dn-1" };
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &down)).unwrap().mode, DedupMode::Local);
    let ride = iso.ride(k.site());
    // Its own rejection is sealed under its guard: the failed call may have run. The claims are not
    // owed to the store before the queue took them.
    assert_eq!((ride.local.len(), ride.sealed.iter().map(|(_, b)| b.rejected).sum::<i64>()), (0, 1));
    // The queue took one; the other is given back (refused): only the first is counted.
    queued(&iso, &k, &down[..1], "dn-1", out.now_ms(), DedupMode::Local, true);
    assert_eq!(iso.ride(k.site()).local, down[..1].to_vec());
    run(release(Some(&s), &iso, &k, &down[1..], DedupMode::Local, "dn-1")).unwrap();
    store.set_faults(serde_json::json!({}));
    let up = vec![claim_key(&k, "Lead", "up-a")];
    let r = run(admit(Some(&s), &iso, &out, &Admit { request_token: "dn-2", rejected: 0, ..a }, &up)).unwrap();
    assert_eq!(r.mode, DedupMode::Store);
    assert!(iso.ride(k.site()).is_empty());
    let b = books(&s, &k);
    assert_eq!((b["accepted"], b["rejected"]), (2, 1));
}

#[test]
fn a_local_claim_over_another_request_s_pending_one_survives_that_request_s_release() {
    let (store, cfg) = impatient_store();
    let out = NativeOutbound;
    let k = keys();
    let claims = vec![claim_key(&k, "Lead", "lr-1")];
    // R claims the event; its queue refuses and its release is lost.
    let r = Isolate::default();
    let sr = Store::new(&cfg, &out, &r);
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.30", limits: LIMITS, request_token: "lr-r" };
    assert_eq!(run(admit(Some(&sr), &r, &out, &a, &claims)).unwrap().fresh, vec![true]);
    store.set_faults(serde_json::json!({ "status": 500 }));
    assert!(run(release(Some(&sr), &r, &k, &claims, DedupMode::Store, "lr-r")).is_err());
    // The client's resend reaches an isolate that cannot reach the store either: accepted alone.
    let l = Isolate::default();
    let sl = Store::new(&cfg, &out, &l);
    let local = run(admit(Some(&sl), &l, &out, &Admit { request_token: "lr-l", ..a }, &claims)).unwrap();
    assert_eq!((local.mode, local.fresh.clone()), (DedupMode::Local, vec![true]));
    queued(&l, &k, &claims, "lr-l", out.now_ms(), DedupMode::Local, true);
    store.set_faults(serde_json::json!({}));
    // The local claim reaches the store first, R's lost release after it: the event that was
    // queued stays accepted, counted once (R's count stands for it).
    run(flush(&sl, &k, "lr-l-later")).unwrap();
    run(flush(&sr, &k, "lr-r-later")).unwrap();
    assert_eq!(books(&sr, &k)["accepted"], 1);
    assert_eq!(run(sr.command("t", &cmd(["GET", &claims[0]]), Retry::Idempotent)).unwrap(), Value::Str("c".into()));
}

#[test]
fn a_local_claim_the_queue_refused_never_reaches_the_store() {
    let (store, cfg) = impatient_store();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let s = Store::new(&cfg, &out, &iso);
    let k = keys();
    store.set_faults(serde_json::json!({ "status": 500 }));
    let e = vec![claim_key(&k, "Lead", "race-e")];
    let a = Admit { keys: &k, rejected: 0, client_ip: "203.0.113.31", limits: LIMITS, request_token: "race-1" };
    assert_eq!(run(admit(Some(&s), &iso, &out, &a, &e)).unwrap().mode, DedupMode::Local);
    store.set_faults(serde_json::json!({}));
    // A concurrent request's call goes out while the first is still queuing its event, which the
    // queue then refuses.
    run(admit(Some(&s), &iso, &out, &Admit { request_token: "race-2", ..a }, &[claim_key(&k, "Lead", "race-other")])).unwrap();
    run(release(Some(&s), &iso, &k, &e, DedupMode::Local, "race-1")).unwrap();
    // The client's resend, at another isolate: new (it was: a duplicate, and dropped).
    let iso2 = Isolate::default();
    let again = run(admit(Some(&Store::new(&cfg, &out, &iso2)), &iso2, &out, &Admit { request_token: "race-3", ..a }, &e)).unwrap();
    assert_eq!((again.fresh, again.in_progress), (vec![true], vec![false]));
}
