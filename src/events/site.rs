//! Which shop a `/collect` request belongs to, and whether its browser origin may post. One pixel
//! (`META_PIXEL_ID`) serves every site unless `PIXELS` maps hosts to their own pixels; then the
//! browser's origin (or the request's host) picks the site, and an origin that maps to none is
//! refused. Keys, books and the match-key report are kept per site.

use crate::config::{AllowedOrigins, Config};
use crate::error::AppError;
use crate::request::{split_url, Incoming};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRoute {
    pub site: String,
    pub pixel_id: String,
    /// The `Origin` to echo back for an allowed cross-origin browser; None for same-origin callers.
    pub cors_origin: Option<String>,
}

fn refuse(origin: &str, why: &str) -> AppError {
    AppError::OriginNotAllowed(format!("{}{why}", origin.chars().filter(|c| !c.is_control()).take(100).collect::<String>()))
}

/// The `Origin` to echo for a browser origin, given the origins listed for the site.
pub fn cors_origin(req: &Incoming, listed: impl Fn(&str) -> bool) -> Result<Option<String>, AppError> {
    let Some(origin) = req.header("origin") else { return Ok(None) };
    if listed(origin) {
        return Ok(Some(origin.to_string()));
    }
    if split_url(origin).host == req.host {
        return Ok(None);
    }
    Err(refuse(origin, ""))
}

pub fn route(req: &Incoming, cfg: &Config) -> Result<SiteRoute, AppError> {
    if cfg.matching.pixels.is_empty() {
        let cors = cors_origin(req, |o| match &cfg.allowed_origins {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => list.iter().any(|l| l.eq_ignore_ascii_case(o)),
        })?;
        let pixel_id = cfg.meta.pixel_id.clone().ok_or(AppError::NotConfigured("META_PIXEL_ID"))?;
        return Ok(SiteRoute { site: req.host.clone(), pixel_id, cors_origin: cors });
    }
    let origin = req.header("origin");
    let host = origin.map(|o| split_url(o).host).unwrap_or_else(|| req.host.clone());
    let Some(entry) = cfg.matching.pixels.iter().find(|p| p.site == host || (origin.is_some() && p.site == req.host && host == req.host)) else {
        return Err(refuse(origin.unwrap_or(&host), " maps to no site in PIXELS"));
    };
    let cors = cors_origin(req, |o| entry.allowed_origins.iter().any(|l| l.eq_ignore_ascii_case(o)))?;
    Ok(SiteRoute { site: entry.site.clone(), pixel_id: entry.pixel_id.clone(), cors_origin: cors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, origin: Option<&str>) -> Incoming {
        let mut headers = Vec::new();
        if let Some(o) = origin {
            headers.push(("origin".to_string(), o.to_string()));
        }
        Incoming { host: host.into(), headers, ..Default::default() }
    }

    fn cfg(vars: &[(&str, &str)]) -> Config {
        Config::from_source(vars).unwrap()
    }

    #[test]
    fn single_pixel_uses_allowed_origins_and_the_request_host() {
        let c = cfg(&[("META_PIXEL_ID", "1"), ("ALLOWED_ORIGINS", "https://shop.example")]);
        let r = route(&req("edge.example", Some("https://shop.example")), &c).unwrap();
        assert_eq!(r, SiteRoute { site: "edge.example".into(), pixel_id: "1".into(), cors_origin: Some("https://shop.example".into()) });
        assert_eq!(route(&req("edge.example", Some("http://edge.example:8787")), &c).unwrap().cors_origin, None, "same origin");
        assert_eq!(route(&req("edge.example", Some("https://evil.example")), &c).unwrap_err().status(), 403);
        assert_eq!(route(&req("edge.example", None), &c).unwrap().site, "edge.example");
    }

    #[test]
    fn pixels_route_by_origin_and_refuse_unknown_ones() {
        let c = cfg(&[
            ("PIXELS", r#"{"a.example": {"pixel_id": "111", "token_secret": "TA", "allowed_origins": ["https://a.example"]},
                          "b.example": {"pixel_id": "222", "token_secret": "TB", "allowed_origins": ["https://b.example"]}}"#),
            ("TA", "x"),
            ("TB", "y"),
        ]);
        let a = route(&req("collect.example", Some("https://a.example")), &c).unwrap();
        assert_eq!((a.site.as_str(), a.pixel_id.as_str()), ("a.example", "111"));
        let b = route(&req("collect.example", Some("https://b.example")), &c).unwrap();
        assert_eq!(b.pixel_id, "222");
        let e = route(&req("collect.example", Some("https://c.example")), &c).unwrap_err();
        assert!(e.to_string().contains("maps to no site"), "{e}");
        assert_eq!(route(&req("a.example", None), &c).unwrap().pixel_id, "111", "server-side callers: by host");
    }
}
