use super::*;
use crate::events::normalize::sha256_hex;
use serde_json::json;

const NOW_MS: f64 = 1_764_000_000_000.0;
const LIMITS: CollectLimits = CollectLimits { max_events: 50, max_bytes: 65_536 };

fn facts() -> RequestFacts {
    RequestFacts {
        now_ms: NOW_MS,
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        referer: Some("https://shop.example/p/42".into()),
        ..Default::default()
    }
}

fn catalog() -> Catalog {
    Catalog::new(vec!["QuizDone".into()])
}

fn one(v: Value) -> Result<Accepted, Rejection> {
    let mut p = parse(v.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap();
    assert_eq!(p.events.len(), 1);
    p.events.remove(0)
}

fn purchase() -> Value {
    json!({
        "event_name": "Purchase", "event_id": "ord-1", "event_time": 1_763_999_990,
        "event_source_url": "https://shop.example/checkout/done?fbclid=IwAR2AbC_xyz",
        "user_data": { "em": " John.Doe@Example.COM ", "ph": "+1 (650) 555-1212" },
        "custom_data": { "value": "19.90", "currency": "eur", "content_ids": ["sku-1"] }
    })
}

#[test]
fn a_purchase_is_normalised_hashed_and_enriched_from_the_request() {
    let a = one(purchase()).unwrap();
    let e = &a.event;
    assert_eq!(e.event_time, 1_763_999_990);
    assert_eq!(e.action_source, "website");
    assert_eq!(e.user_data["em"], json!(sha256_hex("john.doe@example.com")));
    assert_eq!(e.user_data["ph"], json!(sha256_hex("16505551212")));
    assert_eq!(e.user_data["client_ip_address"], "203.0.113.7");
    assert_eq!(e.user_data["client_user_agent"], "Mozilla/5.0 (X11; Linux x86_64)");
    // fbc built from the landing URL's fbclid, case untouched.
    assert_eq!(e.user_data["fbc"], json!(format!("fb.1.{}.IwAR2AbC_xyz", NOW_MS as i64)));
    assert_eq!(e.custom_data.as_ref().unwrap()["currency"], "EUR");
    assert_eq!(e.custom_data.as_ref().unwrap()["value"], json!(19.9));
    for k in ["em", "ph", "client_ip_address", "client_user_agent", "fbc"] {
        assert!(a.match_keys.contains(&k), "{k} in {:?}", a.match_keys);
    }
    let wire = serde_json::to_string(e).unwrap();
    assert!(!wire.contains("john") && !wire.contains("650"), "no raw personal data: {wire}");
}

#[test]
fn cookies_supply_fbp_and_fbc_when_the_body_does_not() {
    let mut f = facts();
    f.fbp_cookie = Some("fb.1.1596403881668.1116446470".into());
    f.fbc_cookie = Some("fb.1.1596403881668.AbCdEf".into());
    let body = json!({ "event_name": "PageView", "event_id": "pv-1" });
    let mut p = parse(body.to_string().as_bytes(), &catalog(), LIMITS, &f).unwrap();
    let a = p.events.remove(0).unwrap();
    assert_eq!(a.event.user_data["fbp"], "fb.1.1596403881668.1116446470");
    assert_eq!(a.event.user_data["fbc"], "fb.1.1596403881668.AbCdEf");
    assert_eq!(a.event.event_source_url.as_deref(), Some("https://shop.example/p/42"), "from Referer");
    assert_eq!(a.event.event_time, (NOW_MS / 1000.0) as i64, "defaults to now");
}

#[test]
fn batches_and_limits() {
    let body = json!({ "data": [purchase(), { "event_name": "Nope", "event_id": "x" }] });
    let p = parse(body.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap();
    assert!(p.events[0].is_ok());
    assert_eq!(p.events[1].as_ref().unwrap_err().code, "unknown_event");

    let many = json!({ "data": vec![purchase(); 51] });
    let e = parse(many.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap_err();
    assert_eq!(e.code(), "too_many_events");
    let e = parse(b"{\"data\":[]}", &catalog(), LIMITS, &facts()).unwrap_err();
    assert_eq!(e.code(), "no_events");
    let big = vec![b' '; LIMITS.max_bytes + 1];
    assert_eq!(parse(&big, &catalog(), LIMITS, &facts()).unwrap_err().status(), 413);
    assert_eq!(parse(b"[1,2]", &catalog(), LIMITS, &facts()).unwrap_err().code(), "invalid_body");
    assert_eq!(parse(b"{\"data\":[],\"x\":1}", &catalog(), LIMITS, &facts()).unwrap_err().code(), "unknown_field");
    let deep = "[".repeat(10_000);
    assert_eq!(parse(deep.as_bytes(), &catalog(), LIMITS, &facts()).unwrap_err().code(), "invalid_json");
    assert_eq!(parse(&[0xff, 0xfe, b'{'], &catalog(), LIMITS, &facts()).unwrap_err().code(), "invalid_json");
}

#[test]
fn each_bad_field_is_rejected_with_its_own_code() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "event_name": "PageView" }), "missing_event_id"),
        (json!({ "event_name": "PageView", "event_id": "" }), "invalid_event_id"),
        (json!({ "event_name": "PageView", "event_id": "a b" }), "invalid_event_id"),
        (json!({ "event_name": "PageView", "event_id": "x".repeat(129) }), "invalid_event_id"),
        (json!({ "event_name": "PageView", "event_id": 12 }), "invalid_event_id"),
        (json!({ "event_id": "1" }), "missing_event_name"),
        (json!({ "event_name": 5, "event_id": "1" }), "invalid_event_name"),
        (json!({ "event_name": "PageView", "event_id": "1", "event_time": 1_763_000_000 }), "stale_event"),
        (json!({ "event_name": "PageView", "event_id": "1", "event_time": 1_764_001_000 }), "future_event"),
        (json!({ "event_name": "PageView", "event_id": "1", "event_time": "yesterday" }), "invalid_event_time"),
        (json!({ "event_name": "PageView", "event_id": "1", "action_source": "tv" }), "invalid_action_source"),
        (json!({ "event_name": "PageView", "event_id": "1", "event_source_url": "javascript:alert(1)" }), "invalid_url"),
        (json!({ "event_name": "PageView", "event_id": "1", "event_source_url": "https://x.example/\r\nSet-Cookie: a" }), "invalid_url"),
        (json!({ "event_name": "PageView", "event_id": "1", "user_data": [] }), "invalid_user_data"),
        (json!({ "event_name": "PageView", "event_id": "1", "user_data": { "__proto__": "x" } }), "invalid_user_data"),
        (json!({ "event_name": "PageView", "event_id": "1", "hacker": true }), "unknown_field"),
        (json!({ "event_name": "Purchase", "event_id": "1" }), "missing_value"),
        (json!({ "event_name": "Purchase", "event_id": "1", "custom_data": { "value": 5 } }), "missing_currency"),
        (json!({ "event_name": "Purchase", "event_id": "1", "custom_data": { "value": 5, "currency": "EURO" } }), "invalid_currency"),
        (json!({ "event_name": "Purchase", "event_id": "1", "custom_data": { "value": -5, "currency": "EUR" } }), "invalid_value"),
        (json!({ "event_name": "ViewContent", "event_id": "1", "custom_data": { "constructor": 1 } }), "invalid_custom_data"),
        (json!({ "event_name": "ViewContent", "event_id": "1", "custom_data": { "content_name": "<script>alert(1)</script>" } }), "invalid_custom_data"),
        (json!({ "event_name": "ViewContent", "event_id": "1", "custom_data": { "content_name": "a\r\nb" } }), "invalid_custom_data"),
        (json!({ "event_name": "ViewContent", "event_id": "1", "custom_data": { "a": { "b": { "c": { "d": { "e": 1 } } } } } }), "invalid_custom_data"),
        (json!({ "event_name": "ViewContent", "event_id": "1", "custom_data": "x" }), "invalid_custom_data"),
        (json!({ "event_name": "PageView", "event_id": "1", "data_processing_options": ["XYZ"] }), "invalid_data_processing_options"),
        (json!({ "event_name": "PageView", "event_id": "1", "opt_out": "yes" }), "invalid_opt_out"),
        (json!("just a string"), "invalid_body"),
    ];
    for (body, code) in cases {
        match parse(body.to_string().as_bytes(), &catalog(), LIMITS, &facts()) {
            Ok(mut p) => assert_eq!(p.events.remove(0).unwrap_err().code, code, "{body}"),
            Err(e) => assert_eq!(e.code(), code, "{body}"),
        }
    }
}

#[test]
fn milliseconds_small_skew_and_custom_events_are_accepted() {
    let a = one(json!({ "event_name": "QuizDone", "event_id": "q", "event_time": 1_763_999_999_000i64 })).unwrap();
    assert_eq!(a.event.event_time, 1_763_999_999);
    let a = one(json!({ "event_name": "PageView", "event_id": "s", "event_time": 1_764_000_100 })).unwrap();
    assert_eq!(a.event.event_time, 1_764_000_000, "clamped to now");
    let a = one(json!({ "event_name": "PageView", "event_id": "l", "data_processing_options": ["LDU"], "data_processing_options_country": 1, "data_processing_options_state": 1000 })).unwrap();
    assert_eq!(a.event.data_processing_options, Some(vec!["LDU".into()]));
}

#[test]
fn consent_from_body_or_cookie() {
    let parse_c = |body: Value, cookie: Option<&str>| {
        let mut f = facts();
        f.consent_cookie = cookie.map(str::to_string);
        parse(body.to_string().as_bytes(), &catalog(), LIMITS, &f).map(|p| p.consent)
    };
    let ev = json!({ "event_name": "PageView", "event_id": "c" });
    assert_eq!(parse_c(ev.clone(), None).unwrap(), Consent::Unstated);
    assert_eq!(parse_c(ev.clone(), Some("denied")).unwrap(), Consent::Denied);
    let mut granted = ev.clone();
    granted["consent"] = json!("granted");
    assert_eq!(parse_c(granted, Some("denied")).unwrap(), Consent::Granted, "the body speaks for this request");
    let gcm = json!({ "data": [ev.clone()], "consent": { "ad_storage": "granted", "ad_user_data": "denied" } });
    assert_eq!(parse_c(gcm, None).unwrap(), Consent::Denied);
    let gcm = json!({ "data": [ev.clone()], "consent": { "ad_storage": "granted", "ad_user_data": "granted" } });
    assert_eq!(parse_c(gcm, None).unwrap(), Consent::Granted);
    let bad = json!({ "data": [ev], "consent": "maybe" });
    assert_eq!(parse_c(bad, None).unwrap_err().code(), "invalid_consent");
}

#[test]
fn rejection_messages_never_quote_personal_data() {
    let body = json!({ "event_name": "PageView", "event_id": "1", "user_data": { "em": ["a@b.co", { "x": "secret@mail.example" }] } });
    let r = one(body).unwrap_err();
    assert!(!r.message.contains("secret@mail.example") && !r.message.contains("a@b.co"), "{}", r.message);
}

#[test]
fn test_codes_dry_runs_and_fbc_precedence() {
    let body = json!({ "event_name": "PageView", "event_id": "t", "test_event_code": "TEST42", "dry_run": true });
    let p = parse(body.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap();
    assert_eq!((p.test_event_code.as_deref(), p.dry_run), (Some("TEST42"), true));
    let bad = json!({ "event_name": "PageView", "event_id": "t", "test_event_code": "no spaces!" });
    assert_eq!(parse(bad.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap_err().code(), "invalid_test_event_code");
    let nested = json!({ "data": [{ "event_name": "PageView", "event_id": "t", "dry_run": true }] });
    let mut p = parse(nested.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap();
    assert_eq!(p.events.remove(0).unwrap_err().code, "unknown_field", "request options live at the top");

    let with = |cookie: Option<&str>, event_time: i64| {
        let mut f = facts();
        f.fbc_cookie = cookie.map(str::to_string);
        let body = json!({ "event_name": "PageView", "event_id": "f", "event_time": event_time, "event_source_url": "https://shop.example/?fbclid=AbC123xYz" });
        parse(body.to_string().as_bytes(), &catalog(), LIMITS, &f).unwrap().events.remove(0).unwrap()
    };
    let now_s = (NOW_MS / 1000.0) as i64;
    let fresh = with(None, now_s);
    assert_eq!(fresh.new_fbc.as_deref(), Some(format!("fb.1.{}.AbC123xYz", NOW_MS as i64).as_str()));
    let same = with(Some("fb.1.1700000000000.AbC123xYz"), now_s);
    assert_eq!((same.new_fbc, same.event.user_data["fbc"].as_str()), (None, Some("fb.1.1700000000000.AbC123xYz")), "same click: the cookie stands");
    let older = with(Some("fb.1.1700000000000.OldClick"), now_s);
    assert!(older.new_fbc.is_some(), "an older click is replaced");
    let newer_ms = (NOW_MS as i64) - 1000;
    let newer = with(Some(&format!("fb.1.{newer_ms}.NewerClick")), now_s - 3600);
    assert_eq!(newer.new_fbc, None, "a cookie newer than the event is never overwritten");
    assert_eq!(newer.event.user_data["fbc"], json!(format!("fb.1.{newer_ms}.NewerClick")));
}

#[test]
fn an_event_s_own_denied_consent_keeps_it_out_of_a_granted_batch() {
    let mut denied = purchase();
    denied["event_id"] = json!("ord-denied");
    denied["consent"] = json!("denied");
    let mut bad = purchase();
    bad["event_id"] = json!("ord-bad");
    bad["consent"] = json!("maybe");
    let body = json!({ "data": [denied, purchase(), bad], "consent": "granted" });
    let p = parse(body.to_string().as_bytes(), &catalog(), LIMITS, &facts()).unwrap();
    assert_eq!(p.consent, Consent::Granted);
    assert_eq!(p.denied, vec![Some("ord-denied".to_string())]);
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.events[0].as_ref().unwrap().event.event_id, "ord-1");
    assert_eq!(p.events[1].as_ref().unwrap_err().code, "invalid_consent");
}

#[test]
fn ldu_codes_are_only_those_meta_defines() {
    let ldu = |country: i64, state: i64| {
        one(json!({ "event_name": "PageView", "event_id": "l", "data_processing_options": ["LDU"],
            "data_processing_options_country": country, "data_processing_options_state": state }))
    };
    for (c, s) in [(0, 0), (1, 1000), (1, 0), (0, 1000)] {
        assert!(ldu(c, s).is_ok(), "{c}/{s}");
    }
    for (c, s) in [(2, 0), (1000, 0), (1, 1), (0, 999), (0, -1)] {
        assert_eq!(ldu(c, s).unwrap_err().code, "invalid_data_processing_options", "{c}/{s}");
    }
}

#[test]
fn parameter_builder_appendix_cookies_pass_through_untouched() {
    let mut f = facts();
    f.fbp_cookie = Some("fb.1.1700000000000.1234567890.BQ".into());
    f.fbc_cookie = Some("fb.1.1700000000000.IwAR2xyz-_abc.AQ".into());
    let body = json!({ "event_name": "PageView", "event_id": "pb", "event_source_url": "https://shop.example/?fbclid=IwAR2xyz-_abc" });
    let a = parse(body.to_string().as_bytes(), &catalog(), LIMITS, &f).unwrap().events.remove(0).unwrap();
    assert_eq!(a.event.user_data["fbp"], "fb.1.1700000000000.1234567890.BQ");
    assert_eq!(a.event.user_data["fbc"], "fb.1.1700000000000.IwAR2xyz-_abc.AQ", "the same click with an appendix stands");
    assert_eq!(a.new_fbc, None, "no new _fbc cookie for it");
    assert_eq!(fbc_parts("fb.1.1700000000000.IwAR2xyz-_abc.AQ"), Some((1_700_000_000_000, "IwAR2xyz-_abc")));
}
