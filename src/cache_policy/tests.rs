use super::*;
use stored::Age;

fn get(path: &str) -> RequestFacts {
    RequestFacts { method: "GET".into(), path: path.into(), ..Default::default() }
}

fn resp(status: u16, ct: &str) -> ResponseFacts {
    ResponseFacts { status, content_type: ct.into(), ..Default::default() }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn header<'a>(hs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    hs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn the_layer_fight_ends_with_one_canonical_set_per_class() {
    let p = Policy::default();
    // Hashed asset: middleware said 30 days.
    let asset = h(&[("content-type", "application/javascript"), ("cache-control", "public, max-age=2592000"), ("etag", "\"a1\"")]);
    let d = p.decide(&get("/assets/app.3f9a1c2b.js"), &ResponseFacts::from_headers(200, &asset));
    assert_eq!(d, Decision { class: Class::Immutable, rule: "builtin:fingerprint".into() });
    let out = p.rewrite(&asset, &d);
    assert_eq!(header(&out, "cache-control"), vec!["public, max-age=31536000, immutable"]);
    assert_eq!(header(&out, "etag"), vec!["\"a1\""]);
    // Page: page code said an hour, a Surrogate-Control and Expires from another layer.
    let page = h(&[
        ("content-type", "text/html; charset=utf-8"),
        ("cache-control", "public, max-age=3600"),
        ("surrogate-control", "max-age=86400"),
        ("expires", "Thu, 01 Jan 2037 00:00:00 GMT"),
        ("pragma", "no-cache"),
        ("cdn-cache-control", "max-age=600"),
        ("last-modified", "Wed, 25 Nov 2026 10:00:00 GMT"),
        ("vary", "Accept-Encoding"),
    ]);
    let d = p.decide(&get("/products/42"), &ResponseFacts::from_headers(200, &page));
    assert_eq!(d.class, Class::Html);
    let out = p.rewrite(&page, &d);
    assert_eq!(header(&out, "cache-control"), vec!["public, max-age=0, must-revalidate"]);
    assert_eq!(header(&out, "cdn-cache-control"), vec!["public, max-age=120, stale-while-revalidate=60, stale-if-error=86400"]);
    assert_eq!(header(&out, "cloudflare-cdn-cache-control"), header(&out, "cdn-cache-control"));
    for gone in ["surrogate-control", "expires", "pragma"] {
        assert!(header(&out, gone).is_empty(), "{gone} left");
    }
    assert_eq!(header(&out, "last-modified").len(), 1);
    assert_eq!(header(&out, "vary"), vec!["Accept-Encoding"]);
    assert_eq!(header(&out, "x-edgekeeper-cache"), vec!["html; rule=builtin:html"]);
    // A fallback layer's five minutes on an unhashed asset.
    let logo = h(&[("content-type", "image/png"), ("cache-control", "max-age=300")]);
    let d = p.decide(&get("/img/logo.png"), &ResponseFacts::from_headers(200, &logo));
    assert_eq!(header(&p.rewrite(&logo, &d), "cache-control"), vec!["public, max-age=3600"]);
}

#[test]
fn set_cookie_and_credentials_are_private_whatever_the_rules_say() {
    let p = Policy { user: rules::parse(r#"[{"id": "all-immutable", "match": {"path": "/**"}, "class": "immutable"}]"#).unwrap(), ..Default::default() };
    let with_cookie = ResponseFacts { set_cookie: true, ..resp(200, "text/html") };
    assert_eq!(p.decide(&get("/x.3f9a1c2b.js"), &with_cookie).class, Class::Private);
    let auth = RequestFacts { authorization: true, ..get("/a") };
    assert_eq!(p.decide(&auth, &resp(200, "text/html")).class, Class::Private);
    assert_eq!(p.before(&auth).unwrap().class, Class::Private);
    let session = RequestFacts { session_cookie: true, ..get("/a") };
    assert_eq!(p.decide(&session, &resp(200, "text/html")).rule, "builtin:session-cookie");
    let vary = ResponseFacts { vary: Some("Accept-Encoding, Cookie".into()), ..resp(200, "text/html") };
    assert_eq!(p.decide(&get("/a"), &vary).class, Class::Private);
    assert!(p.has_session_cookie("theme=dark; PHPSESSID=abc"));
    assert!(p.has_session_cookie("wordpress_logged_in_123=x"));
    assert!(!p.has_session_cookie("theme=dark; _fbp=fb.1.1.1"));
}

#[test]
fn errors_not_found_api_and_methods() {
    let p = Policy::default();
    assert_eq!(p.decide(&get("/x.3f9a1c2b.js"), &resp(503, "text/html")).class, Class::Error);
    assert_eq!(p.decide(&get("/gone"), &resp(404, "text/html")).class, Class::NotFound);
    assert_eq!(p.decide(&get("/api/cart"), &resp(200, "application/json")).class, Class::Api);
    assert_eq!(p.decide(&get("/cart.json"), &resp(200, "application/json")).rule, "builtin:json");
    let post = RequestFacts { method: "POST".into(), ..get("/checkout") };
    assert_eq!(p.decide(&post, &resp(200, "text/html")).class, Class::Api);
    assert_eq!(p.decide(&get("/feed"), &resp(304, "")).class, Class::Html, "304 keeps its resource's class");
    assert_eq!(p.decide(&get("/img"), &resp(200, "image/webp")).class, Class::Static);
}

#[test]
fn personal_responses_are_decided_on_the_response_and_never_stored() {
    let p = Policy::default();
    // An unlisted session cookie (`_myshop_sess`): the request alone looks anonymous...
    let alice = RequestFacts { accepts_html: true, ..get("/account") };
    assert_eq!(p.cache_bypass(&alice), None, "nothing in the request says personal");
    // ...so the origin's answer decides: private + Vary: Cookie, a fresh Set-Cookie, or a bare
    // `Cache-Control: private` / `no-store` are private and never stored.
    let cases = [
        (vec![("content-type", "text/html"), ("cache-control", "private"), ("vary", "Cookie")], "builtin:vary"),
        (vec![("content-type", "text/html"), ("set-cookie", "csrf=1; HttpOnly")], "builtin:set-cookie"),
        (vec![("content-type", "text/html"), ("cache-control", "private, max-age=0")], "builtin:origin-private"),
        (vec![("content-type", "text/html"), ("cache-control", "no-store")], "builtin:origin-private"),
        (vec![("content-type", "text/html"), ("cache-control", "public, max-age=600"), ("vary", "Authorization")], "builtin:vary"),
    ];
    for (headers, rule) in cases {
        let origin = h(&headers);
        let rf = ResponseFacts::from_headers(200, &origin);
        let d = p.decide(&alice, &rf);
        assert_eq!((d.class, d.rule.as_str()), (Class::Private, rule), "{headers:?}");
        assert_eq!(p.storable(&alice, &rf, &d), Err("private"), "{headers:?}");
        // A user rule cannot make it public.
        let ruled = Policy { user: rules::parse(r#"[{"id":"all","match":{"path":"/**"},"class":"html"}]"#).unwrap(), ..Default::default() };
        assert_eq!(ruled.decide(&alice, &rf).class, Class::Private, "{headers:?}");
    }
    // The explanation says nothing was forced on the zone cache (it used to be told `html`
    // before the response, with cacheEverything), and that the worker will not store it.
    let e = p.explain(&alice, 200, &h(&[("content-type", "text/html"), ("set-cookie", "csrf=1")]), "https://shop.example/account", None, 0);
    assert_eq!(e["zone_cache"]["forced"], false);
    assert!(e.get("before_response").is_none());
    assert_eq!(e["worker_cache"]["prediction"], "pass");
    assert_eq!(e["worker_cache"]["why"], "private");
    // Credentials and listed session cookies skip the worker's cache entirely.
    assert_eq!(p.cache_bypass(&RequestFacts { authorization: true, ..get("/p") }), Some("authorization"));
    assert_eq!(p.cache_bypass(&RequestFacts { session_cookie: true, ..get("/p") }), Some("session-cookie"));
    assert_eq!(p.cache_bypass(&RequestFacts { method: "POST".into(), ..get("/p") }), Some("method"));
    assert_eq!(p.cache_bypass(&RequestFacts { range: true, ..get("/v.mp4") }), Some("range"));
    assert_eq!(p.cache_bypass(&get("/api/cart")), Some("rule"), "api is never public");
    assert_eq!(Policy { store: false, ..Default::default() }.cache_bypass(&get("/p")), Some("store-off"));
}

#[test]
fn storable_responses() {
    let p = Policy::default();
    let page = resp(200, "text/html");
    let html = Decision { class: Class::Html, rule: "builtin:html".into() };
    assert_eq!(p.storable(&get("/p/1"), &page, &html), Ok(Freshness { ttl: 120, swr: 60, sie: 86_400 }));
    assert_eq!(p.storable(&RequestFacts { method: "HEAD".into(), ..get("/p/1") }, &page, &html), Err("head"));
    assert_eq!(p.storable(&get("/p/1"), &resp(206, "text/html"), &html), Err("status"));
    assert_eq!(p.storable(&get("/p/1"), &resp(304, ""), &html), Err("status"));
    assert_eq!(p.storable(&get("/p/1"), &ResponseFacts { vary: Some("Accept-Language".into()), ..page.clone() }, &html), Err("vary"));
    assert!(p.storable(&get("/p/1"), &ResponseFacts { vary: Some("accept-encoding".into()), ..page.clone() }, &html).is_ok());
    let nf = Decision { class: Class::NotFound, rule: "builtin:not-found".into() };
    assert_eq!(p.storable(&get("/gone"), &resp(404, "text/html"), &nf).map(|f| f.ttl), Ok(60));
    let err = p.decide(&get("/x"), &resp(503, "text/html"));
    assert_eq!(p.storable(&get("/x"), &resp(503, "text/html"), &err), Err("error"));
    assert_eq!(p.freshness(Class::Immutable).unwrap().lifetime(), 31_536_000);
    // The worker keeps each class exactly as long as its CDN directives tell other CDNs.
    for class in classes::ALL.iter().copied() {
        let want = p.freshness(class).map(|f| f.directives());
        let cdn = p.cdn(class);
        match want {
            Some(d) => assert_eq!(cdn.replace(", immutable", ""), d, "{class:?}"),
            None => assert_eq!(cdn, "no-store", "{class:?}"),
        }
    }
    assert_eq!(Class::Html.cdn(), p.cdn(Class::Html), "the default HTML windows are the class's");
    let f = p.freshness(Class::Html).unwrap();
    assert_eq!(p.freshness(Class::Api), None);
    assert_eq!([0, 119, 120, 179, 180, 86_519, 86_520].map(|a| f.state(a)), [Age::Fresh, Age::Fresh, Age::Stale, Age::Stale, Age::StaleIfError, Age::StaleIfError, Age::Expired]);
    assert_eq!(f.lifetime(), 120 + 86_400);
}

#[test]
fn the_cache_key_leaves_out_click_and_campaign_parameters() {
    let p = Policy::default();
    let k = |q: Option<&str>| p.cache_key("https://shop.example", "/p/42", q);
    assert_eq!(k(None), "https://shop.example/p/42");
    for q in ["fbclid=A", "fbclid=B&utm_source=fb", "utm_campaign=x&UTM_MEDIUM=y&gclid=1&msclkid=2&ttclid=3", ""] {
        assert_eq!(k(Some(q)), "https://shop.example/p/42", "{q}");
    }
    assert_eq!(k(Some("b=2&fbclid=A&a=1")), "https://shop.example/p/42?a=1&b=2", "order normalised, click id gone");
    assert_eq!(k(Some("a=1&b=2")), k(Some("b=2&a=1")));
    assert_eq!(k(Some("c=2&c=1")), "https://shop.example/p/42?c=2&c=1", "repeated names keep their order");
    assert_ne!(k(Some("id=1")), k(Some("id=2")));
    let custom = Policy { ignored_params: vec!["ref".into(), "aff_*".into()], ..Default::default() };
    assert_eq!(custom.cache_key("https://s", "/p", Some("ref=x&aff_id=3&fbclid=A")), "https://s/p?fbclid=A", "the list is configurable");
    let errs = crate::config::Config::from_source(&[("CACHE_IGNORE_PARAMS", "fbclid,a=b")][..]).unwrap_err();
    assert_eq!(errs[0].variable, "CACHE_IGNORE_PARAMS");
    assert_eq!(stored::url_origin("http://127.0.0.1:8787/p?x=1"), "http://127.0.0.1:8787");
}

#[test]
fn a_stored_copy_keeps_its_canonical_headers_and_says_how_it_was_served() {
    let p = Policy::default();
    let origin = h(&[("content-type", "text/html"), ("cache-control", "public, max-age=3600"), ("surrogate-control", "max-age=1"), ("etag", "\"p42\"")]);
    let d = p.decide(&get("/p/42"), &ResponseFacts::from_headers(200, &origin));
    let meta = StoredMeta { at_ms: 1_000_000, class: d.class, rule: d.rule.clone() };
    let stored = p.stored_headers(&p.rewrite(&origin, &d), &meta, p.freshness(d.class).unwrap());
    assert_eq!(header(&stored, "cache-control"), vec!["public, max-age=86520"], "the Cache API keeps it for every window");
    assert!(header(&stored, "cdn-cache-control").is_empty() && header(&stored, "x-edgekeeper-cache").is_empty());
    assert_eq!(StoredMeta::parse(header(&stored, stored::STORED_HEADER)[0]), Some(meta.clone()));
    let served = p.served_from_store(&stored, &meta, 1_030_500, &CacheOutcome::Hit);
    assert_eq!(header(&served, "cache-control"), vec!["public, max-age=0, must-revalidate"]);
    assert_eq!(header(&served, "cdn-cache-control"), vec!["public, max-age=120, stale-while-revalidate=60, stale-if-error=86400"]);
    assert_eq!(header(&served, "x-edgekeeper-cache"), vec!["html; rule=builtin:html; hit"]);
    assert_eq!(header(&served, "age"), vec!["30"]);
    assert_eq!(header(&served, "etag"), vec!["\"p42\""]);
    assert!(header(&served, stored::STORED_HEADER).is_empty(), "the record never reaches a client");
    assert_eq!(StoredMeta::parse("at=x; class=html; rule=r"), None);
    assert_eq!(StoredMeta::parse("garbage"), None);
}

#[test]
fn conditional_requests_against_a_stored_copy() {
    let lm = "Wed, 25 Nov 2026 10:00:00 GMT";
    assert!(stored::not_modified(Some("\"p42\""), None, Some("\"p42\""), None));
    assert!(stored::not_modified(Some("W/\"p42\", \"x\""), None, Some("\"p42\""), None));
    assert!(stored::not_modified(Some("*"), None, Some("\"p42\""), None));
    assert!(!stored::not_modified(Some("\"old\""), Some(lm), Some("\"p42\""), Some(lm)), "If-None-Match wins");
    assert!(stored::not_modified(None, Some(lm), None, Some(lm)));
    assert!(!stored::not_modified(None, None, Some("\"p42\""), Some(lm)));
}

#[test]
fn purge_records_cover_urls_and_prefixes_stored_before_them() {
    let p = Policy::default();
    assert_eq!(stored::purge_target(&p, Some("https://shop.example/p/42?utm_source=x&b=1&a=2"), None), Some("url:/p/42?a=2&b=1".into()));
    assert_eq!(stored::purge_target(&p, Some("/p/42"), None), Some("url:/p/42".into()));
    assert_eq!(stored::purge_target(&p, None, Some("/p/")), Some("prefix:/p/".into()));
    assert!(stored::purge_target(&p, None, Some("p/")).is_none());
    assert!(stored::purge_target(&p, Some("ftp://x/y"), None).is_none());
    assert!(stored::purge_target(&p, Some("/a"), Some("/b")).is_none());
    assert!(stored::purge_target(&p, None, None).is_none());
    let purges = Purges { records: vec![("url:/p/42".into(), 2_000), ("prefix:/blog/".into(), 5_000)] };
    assert!(purges.covers("/p/42", 1_000));
    assert!(!purges.covers("/p/42", 3_000), "stored after the purge");
    assert!(!purges.covers("/p/42?a=1", 1_000));
    assert!(purges.covers("/blog/x?y=1", 4_999));
    assert!(!purges.covers("/blo", 1));
}

#[test]
fn user_rules_extend_or_replace() {
    let mut p = Policy {
        user: rules::parse(
            r#"[{"id":"blog","match":{"path":"/blog/**","content_type":["text/html"]},"class":"static"},
            {"id":"feeds","match":{"path_regex":"^/feed/[0-9]+$"},"class":"api"}]"#,
        )
        .unwrap(),
        ..Default::default()
    };
    assert_eq!(p.decide(&get("/blog/2026/hello"), &resp(200, "text/html")).rule, "blog");
    assert_eq!(p.decide(&get("/blog/2026/hello"), &resp(200, "application/json")).rule, "builtin:json");
    assert_eq!(p.decide(&get("/feed/12"), &resp(200, "text/html")).rule, "feeds");
    assert_eq!(p.before(&get("/feed/12")).unwrap().rule, "feeds", "request-only rules decide early");
    assert_eq!(p.before(&get("/blog/x")), None, "a content-type rule cannot decide before the response");
    p.user = rules::parse(r#"{"replace": true, "rules": [{"id":"only","match":{"path":"/x"},"class":"static"}]}"#).unwrap();
    assert_eq!(p.decide(&get("/y.3f9a1c2b.js"), &resp(200, "application/javascript")).rule, "builtin:default");
    assert_eq!(p.decide(&get("/y"), &resp(500, "text/html")).class, Class::Error, "safety rules stay");
}

#[test]
fn bad_rules_are_reported_with_their_position() {
    let cases = [
        ("{", "not valid JSON"),
        ("5", "expected an array"),
        (r#"[{"class":"html","match":{"status":"700"}}]"#, "rules[0].match.status"),
        (r#"[{"class":"html"},{"class":"fast"}]"#, "rules[1].class: unknown class"),
        (r#"[{"match":{"path":"/a"}}]"#, "rules[0].class: required"),
        (r#"[{"class":"html","match":{"path":"a"}}]"#, "rules[0].match.path"),
        (r#"[{"class":"html","match":{"path_regex":"("}}]"#, "rules[0].match.path_regex"),
        (r#"[{"class":"html","match":{"colour":"red"}}]"#, "rules[0].match.colour: unknown condition"),
        (r#"[{"class":"html","extra":1}]"#, "rules[0].extra: unknown field"),
        (r#"[{"id":"a","class":"html"},{"id":"a","class":"api"}]"#, "used twice"),
        (r#"{"rules":[],"replace":"yes"}"#, "replace: expected"),
    ];
    for (json, want) in cases {
        let e = rules::parse(json).unwrap_err();
        assert!(e.contains(want), "{json}: {e}");
    }
    let errs = crate::config::Config::from_source(&[("CACHE_RULES", r#"[{"class":"fast"}]"#)][..]).unwrap_err();
    assert_eq!(errs[0].variable, "CACHE_RULES");
    assert!(errs[0].message.contains("rules[0].class"));
}

#[test]
fn globs_and_fingerprints() {
    assert!(rules::glob("/blog/*", "/blog/a"));
    assert!(!rules::glob("/blog/*", "/blog/a/b"));
    assert!(rules::glob("/blog/**", "/blog/a/b"));
    assert!(rules::glob("/*.css", "/site.css"));
    assert!(rules::glob("/p?ge", "/page"));
    for yes in ["/a/app.3f9a1c2b.js", "/index-BfR1q7cZ.js", "/chunk-ABCD1234.css", "/x/logo.5d41402abc4b2a76b9719d911017c592.png"] {
        assert!(is_fingerprinted(yes), "{yes}");
    }
    for no in ["/app.js", "/prototype.js", "/img/photo-2024.jpg", "/products/42", "/deadbeefcafe"] {
        assert!(!is_fingerprinted(no), "{no}");
    }
}

#[test]
fn explain_lists_origin_headers_decision_and_conflicts() {
    let p = Policy::default();
    let origin = h(&[("content-type", "text/html"), ("cache-control", "public, max-age=3600"), ("set-cookie", "cart=1"), ("surrogate-control", "max-age=60")]);
    let e = p.explain(&RequestFacts { accepts_html: true, ..get("/p/1") }, 200, &origin, "https://shop.example/p/1", None, 0);
    assert_eq!(e["decision"]["class"], "private");
    assert_eq!(e["decision"]["rule"], "builtin:set-cookie");
    assert_eq!(e["origin"]["headers"]["cache-control"], "public, max-age=3600");
    assert_eq!(e["set"]["cache-control"], "private, no-store");
    assert_eq!(e["zone_cache"]["forced"], false, "nothing is forced on the zone cache, least of all for a Set-Cookie response");
    let conflicts: Vec<&str> = e["conflicts"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(conflicts.iter().any(|c| c.contains("Set-Cookie made a html response private")), "{conflicts:?}");
    assert!(conflicts.iter().any(|c| c.starts_with("origin sent surrogate-control")), "{conflicts:?}");
    assert!(!conflicts.iter().any(|c| c.contains("zone cache was told")), "{conflicts:?}");
    // The worker cache's prediction follows the copy it holds.
    let page = h(&[("content-type", "text/html")]);
    let nav = RequestFacts { accepts_html: true, ..get("/p/2") };
    let predict = |stored: Option<&StoredMeta>, now: u64| p.explain(&nav, 200, &page, "k", stored, now)["worker_cache"]["prediction"].as_str().unwrap().to_string();
    let meta = StoredMeta { at_ms: 0, class: Class::Html, rule: "builtin:html".into() };
    assert_eq!(predict(None, 0), "miss");
    assert_eq!(predict(Some(&meta), 10_000), "hit");
    assert_eq!(predict(Some(&meta), 150_000), "stale");
    assert_eq!(predict(Some(&meta), 1_000_000), "miss");
    assert_eq!(p.explain(&RequestFacts { authorization: true, ..nav.clone() }, 200, &page, "k", Some(&meta), 0)["worker_cache"]["prediction"], "bypass");
}
