//! The incoming request as plain data: what handlers read, built once by the runtime glue (with the
//! body already capped) or by native tests.

use serde::de::DeserializeOwned;

use crate::error::AppError;

/// The request headers a worker route reads; the glue copies only these into [`Incoming`]. A
/// handler that needs another header adds it here (a native test checks every `header()` name a
/// handler asks for is listed).
pub const ROUTE_HEADERS: &[&str] = &["authorization", "cf-connecting-ip", "content-type", "cookie", "origin", "referer", "user-agent"];

#[derive(Debug, Clone, Default)]
pub struct Incoming {
    pub method: String,
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
    /// Lowercased host, without port.
    pub host: String,
    /// `scheme://host[:port]` the request was sent to, as in its URL.
    pub origin: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The request came over https.
    pub secure: bool,
    /// The visitor's country and region code, as Cloudflare geolocates them (`request.cf`).
    pub country: Option<String>,
    pub region: Option<String>,
}

/// Decodes `%XX` and `+` in a query component; invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of an absolute URL the worker needs, without a URL parser (the `url` crate and its
/// IDNA tables would add ~100 KB to the module): lowercased host without port, path (as sent, at
/// least `/`), and the raw query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub host: String,
    pub path: String,
    pub query: Option<String>,
}

pub fn split_url(url: &str) -> UrlParts {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        host_port.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or("").to_string()
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_query, None),
    };
    UrlParts { host: host.to_ascii_lowercase(), path: if path.is_empty() { "/".into() } else { path.to_string() }, query }
}

impl Incoming {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers.iter().filter(|(k, _)| k == "cookie").flat_map(|(_, v)| v.split(';')).find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    }

    /// The body as JSON of type `T`; malformed input is a 400 naming what was wrong. Every body a
    /// handler takes is an object, and serde would read `[]` as a struct of defaults (for the Zaraz
    /// sync: a real run), so anything that does not start as an object is refused first.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if self.body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::BadRequest { code: "invalid_body", message: "request body must be a JSON object".into() });
        }
        serde_json::from_slice(&self.body).map_err(|e| AppError::BadRequest { code: "invalid_json", message: format!("request body: {e}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Incoming {
        Incoming {
            query: Some("site=shop%2Eexample&x=a+b&bad=%zz&trail=%4".into()),
            headers: vec![("cookie".into(), "_fbp=fb.1.1.2; consent=denied".into()), ("user-agent".into(), "UA".into())],
            ..Default::default()
        }
    }

    #[test]
    fn every_header_a_handler_reads_is_copied_by_the_glue() {
        fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    sources(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        let mut files = Vec::new();
        sources(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
        let mut asked = 0;
        for (path, text) in files.iter().filter(|(p, _)| !p.ends_with("tests.rs")) {
            for (i, _) in text.match_indices("req.header(\"") {
                let name: String = text[i + 12..].chars().take_while(|c| *c != '"').collect();
                assert!(ROUTE_HEADERS.contains(&name.to_ascii_lowercase().as_str()), "{path} reads header {name:?}: add it to ROUTE_HEADERS");
                asked += 1;
            }
        }
        assert!(asked >= 8, "the scan found the handlers' header reads ({asked})");
        assert!(ROUTE_HEADERS.contains(&"cookie"), "cookies are read through Incoming::cookie");
    }

    #[test]
    fn query_params_and_cookies() {
        let r = req();
        assert_eq!(r.query_param("site").as_deref(), Some("shop.example"));
        assert_eq!(r.query_param("x").as_deref(), Some("a b"));
        assert_eq!(r.query_param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.query_param("trail").as_deref(), Some("%4"));
        assert_eq!(r.query_param("none"), None);
        assert_eq!(r.cookie("_fbp").as_deref(), Some("fb.1.1.2"));
        assert_eq!(r.cookie("consent").as_deref(), Some("denied"));
        assert_eq!(r.header("User-Agent"), Some("UA"));
    }

    #[test]
    fn urls_split_without_a_parser() {
        let u = split_url("https://Shop.Example:8443/a/b%20c?x=1&y=2#frag");
        assert_eq!(u, UrlParts { host: "shop.example".into(), path: "/a/b%20c".into(), query: Some("x=1&y=2".into()) });
        assert_eq!(split_url("http://127.0.0.1:8787").path, "/");
        assert_eq!(split_url("http://h?q=1"), UrlParts { host: "h".into(), path: "/".into(), query: Some("q=1".into()) });
        assert_eq!(split_url("http://[::1]:8787/x").host, "[::1]");
        assert_eq!(split_url("https://user:pw@h.example/p").host, "h.example");
    }

    #[test]
    fn malformed_json_is_a_400() {
        let r = Incoming { body: b"{nope".to_vec(), ..Default::default() };
        let e = r.json::<serde_json::Value>().unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.code(), "invalid_json");
        // serde reads `[]` as a struct of defaults (a real Zaraz sync): non-objects are refused first.
        for body in ["[]", "\"x\"", "1", "null"] {
            let r = Incoming { body: body.as_bytes().to_vec(), ..Default::default() };
            assert_eq!(r.json::<crate::zaraz::SyncRequest>().unwrap_err().code(), "invalid_body", "{body}");
        }
        assert!(Incoming { body: b"{}".to_vec(), ..Default::default() }.json::<crate::zaraz::SyncRequest>().is_ok());
    }
}
