//! The client against real redis through the real local store: protocol, bounded retries, the
//! breaker, the value codec and SCAN-based deletion.

use super::*;
use crate::http::native::NativeOutbound;
use crate::testsupport::LocalStore;

fn run<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

#[test]
fn commands_pipeline_and_transaction_against_real_redis() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    run(async {
        assert!(db.ping().await.unwrap() >= 0.0);
        assert!(db.set_nx_ex("k", "007", 60).await.unwrap());
        // NX on an existing key: not set, and the numeric-looking value keeps its leading zeros.
        assert!(!db.set_nx_ex("k", "x", 60).await.unwrap());
        assert_eq!(db.get("k").await.unwrap().as_deref(), Some("007"));
        assert_eq!(db.incr_expire("n", 60).await.unwrap(), 1);
        assert_eq!(db.incr_expire("n", 60).await.unwrap(), 2);

        let p = db.pipeline("t", &[cmd(["INCR", "n"]), cmd(["TTL", "n"]), cmd(["INCR", "k"])], Retry::Idempotent).await.unwrap();
        assert_eq!(p[0], Ok(Value::Int(3)));
        assert!(p[1].as_ref().unwrap().as_int().unwrap() > 0, "incr_expire set a TTL");
        assert!(matches!(&p[2], Err(StoreError::Command(m)) if m.contains("not an integer")), "{:?}", p[2]);

        let t = db.multi_exec("t", &[cmd(["INCR", "n"]), cmd(["GET", "n"])], Retry::Once).await.unwrap();
        assert_eq!(t, vec![Ok(Value::Int(4)), Ok(Value::Str("4".into()))]);

        assert_eq!(db.push_capped("list", &["a".into(), "b".into(), "c".into()], 2).await.unwrap(), 3);
        assert_eq!(db.range("list", 0, -1).await.unwrap(), vec!["c".to_string(), "b".to_string()]);
        assert_eq!(db.del(&["list".into(), "k".into()]).await.unwrap(), 2);

        let err = db.command("t", &cmd(["NOSUCHCOMMAND"]), Retry::Once).await.unwrap_err();
        assert!(matches!(err, StoreError::Command(_)), "{err:?}");
    });
    let m = iso.metrics.borrow();
    assert!(m.op("get").unwrap().hits == 1 && m.op("set_nx").unwrap().hits == 1);
}

#[test]
fn large_values_are_stored_compressed_small_ones_plain() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    let big = serde_json::json!({ "events": (0..4500).map(|i| format!("evt-{i:05}")).collect::<Vec<_>>() }).to_string();
    assert!(big.len() > 50_000, "a 50 KB value");
    let small = r#"{"reason":"x","n":1}"#.to_string() + &" ".repeat(80);
    run(async {
        db.set("big", &big, 60).await.unwrap();
        db.set("small", &small, 60).await.unwrap();
        assert_eq!(db.get("big").await.unwrap().as_deref(), Some(big.as_str()));
        assert_eq!(db.get("small").await.unwrap().as_deref(), Some(small.as_str()));
        // What redis holds, read raw (as redis-cli would show it).
        let raw_big = db.command("raw", &cmd(["GET", "big"]), Retry::Idempotent).await.unwrap();
        let raw_small = db.command("raw", &cmd(["GET", "small"]), Retry::Idempotent).await.unwrap();
        let raw_big = raw_big.as_str().unwrap();
        assert!(codec::is_compressed(raw_big) && raw_big.len() < big.len() / 3, "{} bytes", raw_big.len());
        assert_eq!(raw_small.as_str(), Some(small.as_str()));
    });
}

#[test]
fn wrong_token_is_unauthorized_not_an_outage_and_not_retried() {
    let store = LocalStore::start();
    let mut cfg = store.config();
    cfg.token = crate::config::Secret::new("wrong");
    let (out, iso) = (NativeOutbound, Isolate::default());
    let err = run(Store::new(&cfg, &out, &iso).ping()).unwrap_err();
    assert_eq!(err, StoreError::Unauthorized(401));
    assert!(!err.is_outage());
    assert_eq!(iso.breaker.borrow().name(), "closed", "a refusal is not an outage");
    assert_eq!(iso.metrics.borrow().op("ping").unwrap().retries, 0, "a refusal is not retried");
}

#[test]
fn idempotent_calls_retry_through_5xx_within_the_deadline() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    store.set_faults(serde_json::json!({ "status": 500, "times": 2 }));
    assert_eq!(run(db.get("missing")).unwrap(), None, "third attempt succeeds");
    assert_eq!(iso.metrics.borrow().op("get").unwrap().retries, 2);

    // A non-idempotent write is not retried: the 500 comes straight back.
    store.set_faults(serde_json::json!({ "status": 500, "times": 1 }));
    assert!(matches!(run(db.incr_expire("c", 60)), Err(StoreError::Server { status: 500, .. })));
    assert_eq!(run(db.get("c")).unwrap(), None, "nothing was written twice or at all");
}

#[test]
fn a_slow_store_is_cut_off_by_the_deadline() {
    let store = LocalStore::start();
    let mut cfg = store.config();
    cfg.timeout_ms = 100;
    cfg.deadline_ms = 250;
    let (out, iso) = (NativeOutbound, Isolate::default());
    store.set_faults(serde_json::json!({ "latency_ms": 1000 }));
    let t0 = std::time::Instant::now();
    let err = run(Store::new(&cfg, &out, &iso).get("k")).unwrap_err();
    assert!(matches!(err, StoreError::Transport(TransportError::Timeout(_))), "{err:?}");
    assert!(t0.elapsed() < std::time::Duration::from_millis(600), "{:?}", t0.elapsed());
}

#[test]
fn the_breaker_opens_fails_fast_and_recovers_through_a_probe() {
    let store = LocalStore::start();
    let mut cfg = store.config();
    cfg.breaker_threshold = 3;
    cfg.breaker_cooldown_ms = 300;
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    store.set_faults(serde_json::json!({ "status": 503 }));
    for _ in 0..3 {
        assert!(run(db.set_nx_ex("k", "v", 60)).is_err());
    }
    assert_eq!(iso.breaker.borrow().name(), "open");
    let seq = store.log_seq();
    assert!(matches!(run(db.get("k")), Err(StoreError::CircuitOpen { .. })));
    assert_eq!(store.log_seq(), seq, "open breaker: no request reached the store");
    store.set_faults(serde_json::json!({}));
    std::thread::sleep(std::time::Duration::from_millis(350));
    assert!(run(db.ping()).is_ok(), "the half-open probe goes through");
    assert_eq!(iso.breaker.borrow().name(), "closed");
    assert_eq!(iso.metrics.borrow().op("get").unwrap().fast_fails, 1);
}

#[test]
fn pattern_delete_scans_in_pages_and_leaves_other_keys() {
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    let keys = Keys::new("ek", "shop.example");
    run(async {
        for chunk in (0..10_000).collect::<Vec<_>>().chunks(1000) {
            let cmds: Vec<Command> = chunk.iter().map(|i| cmd(["SET".to_string(), keys.key(Module::Evt, &format!("PageView:{i}")), "1".into()])).collect();
            db.pipeline("seed", &cmds, Retry::Idempotent).await.unwrap();
        }
        db.set(&keys.key(Module::Dlq, "keep"), "x", 60).await.unwrap();
        db.set(&Keys::new("ek", "other.example").key(Module::Evt, "PageView:1"), "x", 60).await.unwrap();
        let (deleted, complete) = db.delete_matching(&keys.pattern(Module::Evt), 1000, 100).await.unwrap();
        assert_eq!((deleted, complete), (10_000, true));
        assert!(db.get(&keys.key(Module::Dlq, "keep")).await.unwrap().is_some());
        assert!(db.get(&Keys::new("ek", "other.example").key(Module::Evt, "PageView:1")).await.unwrap().is_some());
    });
    let m = iso.metrics.borrow();
    let scans = m.op("scan").unwrap().calls;
    assert!(scans >= 10, "paged: {scans} SCAN calls");
    assert!(m.op("unlink").unwrap().calls >= 10);
}

/// The EVAL body is written by hand from a cached JSON form of the script: a script or argument
/// with quotes, backslashes, newlines or non-ASCII text must reach redis byte for byte, and two
/// scripts that share their start (one a prefix of the other) must not share a cache entry.
#[test]
fn eval_bodies_carry_scripts_and_arguments_exactly() {
    static LONG: &str = "return {ARGV[1], KEYS[1], 'say \"hi\"\\n', #ARGV}";
    static TWO: &str = "return ARGV[1] --[[ and a longer script after it ]] .. ARGV[1]";
    let short: &'static str = &TWO[..14]; // "return ARGV[1]": TWO's address, a shorter length
    let store = LocalStore::start();
    let cfg = store.config();
    let (out, iso) = (NativeOutbound, Isolate::default());
    let db = Store::new(&cfg, &out, &iso);
    run(async {
        let arg = "Zoë \"quoted\" \\ back\nslash \u{1F600}".to_string();
        for _ in 0..2 {
            // twice: the second call is served from the cache
            let v = db.eval("t", LONG, &["k:ü".into()], &[arg.clone(), "2".into()], Retry::Once).await.unwrap();
            assert_eq!(
                v,
                Value::Array(vec![Value::Str(arg.clone()), Value::Str("k:ü".into()), Value::Str("say \"hi\"\n".into()), Value::Int(2)])
            );
        }
        assert_eq!(db.eval("t", TWO, &[], &["ab".into()], Retry::Once).await.unwrap(), Value::Str("abab".into()));
        assert_eq!(db.eval("t", short, &[], &["ab".into()], Retry::Once).await.unwrap(), Value::Str("ab".into()));
    });
}
