use super::*;

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
fn the_zone_cache_is_told_the_same_class_before_the_response() {
    let p = Policy::default();
    let cf = cf_for(p.before(&get("/_next/static/chunks/main.js")).map(|d| d.class));
    assert_eq!(cf.cache_everything, Some(true));
    assert_eq!(cf.cache_ttl_by_status.get("200-299"), Some(&31_536_000));
    assert_eq!(cf.cache_ttl_by_status.get("500-599"), Some(&-1));
    let nav = RequestFacts { accepts_html: true, ..get("/products/42") };
    assert_eq!(cf_for(p.before(&nav).map(|d| d.class)).cache_ttl_by_status.get("200-299"), Some(&120));
    let private = cf_for(p.before(&RequestFacts { authorization: true, ..nav.clone() }).map(|d| d.class));
    assert_eq!((private.cache_everything, private.cache_ttl_by_status.get("100-599")), (Some(false), Some(&-1)));
    assert_eq!(cf_for(p.before(&get("/api/x")).map(|d| d.class)).cache_ttl_by_status.get("100-599"), Some(&-1));
    // A JSON fetch to an extensionless path: undecided, the zone cache keeps its defaults.
    assert_eq!(p.before(&get("/products/42")), None);
    assert_eq!(cf_for(None), CfCache::default());
    let json = serde_json::to_value(cf_for(Some(Class::Static))).unwrap();
    assert_eq!(json["cacheEverything"], true);
    assert_eq!(json["cacheTtlByStatus"]["200-299"], 86400);
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
    let e = p.explain(&RequestFacts { accepts_html: true, ..get("/p/1") }, 200, &origin);
    assert_eq!(e["decision"]["class"], "private");
    assert_eq!(e["decision"]["rule"], "builtin:set-cookie");
    assert_eq!(e["origin"]["headers"]["cache-control"], "public, max-age=3600");
    assert_eq!(e["set"]["cache-control"], "private, no-store");
    assert_eq!(e["zone_cache"]["cacheEverything"], true);
    let conflicts: Vec<&str> = e["conflicts"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert!(conflicts.iter().any(|c| c.contains("Set-Cookie made a html response private")), "{conflicts:?}");
    assert!(conflicts.iter().any(|c| c.starts_with("origin sent surrogate-control")), "{conflicts:?}");
    assert!(conflicts.iter().any(|c| c.contains("zone cache was told html")), "{conflicts:?}");
}
