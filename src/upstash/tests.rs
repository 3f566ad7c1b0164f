//! The client against real redis through the real local store.

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
    let out = NativeOutbound;
    let db = Upstash::new(&cfg, &out);
    run(async {
        assert!(db.ping().await.unwrap() >= 0.0);
        assert_eq!(db.command(&cmd(["SET", "k", "007", "NX", "EX", "60"])).await.unwrap(), Value::Str("OK".into()));
        // NX on an existing key: nil, and the numeric-looking value keeps its leading zeros.
        assert_eq!(db.command(&cmd(["SET", "k", "x", "NX", "EX", "60"])).await.unwrap(), Value::Nil);
        assert_eq!(db.command(&cmd(["GET", "k"])).await.unwrap(), Value::Str("007".into()));

        let p = db.pipeline(&[cmd(["INCR", "n"]), cmd(["EXPIRE", "n", "60"]), cmd(["INCR", "k"]), cmd(["TTL", "n"])]).await.unwrap();
        assert_eq!(p[0], Ok(Value::Int(1)));
        assert_eq!(p[1], Ok(Value::Int(1)));
        assert!(matches!(&p[2], Err(StoreError::Command(m)) if m.contains("not an integer")), "{:?}", p[2]);
        assert!(p[3].as_ref().unwrap().as_int().unwrap() > 0);

        let t = db.multi_exec(&[cmd(["INCR", "n"]), cmd(["GET", "n"])]).await.unwrap();
        assert_eq!(t, vec![Ok(Value::Int(2)), Ok(Value::Str("2".into()))]);

        let err = db.command(&cmd(["NOSUCHCOMMAND"])).await.unwrap_err();
        assert!(matches!(err, StoreError::Command(_)), "{err:?}");
    });
}

#[test]
fn wrong_token_is_unauthorized_not_an_outage() {
    let store = LocalStore::start();
    let mut cfg = store.config();
    cfg.token = crate::config::Secret::new("wrong");
    let out = NativeOutbound;
    let err = run(Upstash::new(&cfg, &out).ping()).unwrap_err();
    assert_eq!(err, StoreError::Unauthorized(401));
    assert!(!err.is_outage());
}

#[test]
fn dead_store_is_an_outage() {
    let store = LocalStore::start();
    let mut cfg = store.config();
    drop(store);
    cfg.timeout_ms = 300;
    let out = NativeOutbound;
    let err = run(Upstash::new(&cfg, &out).ping()).unwrap_err();
    assert!(err.is_outage(), "{err:?}");
}
