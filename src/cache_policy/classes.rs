//! The response classes and what each one means for browsers (`Cache-Control`), for CDNs
//! (`CDN-Cache-Control`, `Cloudflare-CDN-Cache-Control`, RFC 9213) and for the zone cache in front of
//! the origin (the `cf` options of the origin fetch: `cacheEverything`, `cacheTtlByStatus`, where
//! -1 means "do not store", per Cloudflare's cache-by-status documentation).

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Fingerprinted assets: the name changes when the content does.
    Immutable,
    /// Assets without a fingerprint.
    Static,
    Html,
    Api,
    /// Personalised: a session, credentials or a cookie being set. Never stored by a shared cache.
    Private,
    /// 5xx: never cached.
    Error,
    /// 404 / 410: cached briefly, so a missing page does not hammer the origin.
    NotFound,
}

pub const ALL: &[Class] = &[Class::Immutable, Class::Static, Class::Html, Class::Api, Class::Private, Class::Error, Class::NotFound];

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Immutable => "immutable",
            Class::Static => "static",
            Class::Html => "html",
            Class::Api => "api",
            Class::Private => "private",
            Class::Error => "error",
            Class::NotFound => "not_found",
        }
    }

    /// The per-isolate counter of responses served in this class (shown by `/admin/stats`).
    pub fn counter(self) -> &'static str {
        match self {
            Class::Immutable => "cache_immutable",
            Class::Static => "cache_static",
            Class::Html => "cache_html",
            Class::Api => "cache_api",
            Class::Private => "cache_private",
            Class::Error => "cache_error",
            Class::NotFound => "cache_not_found",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        ALL.iter().copied().find(|c| c.as_str() == s)
    }

    /// What browsers obey.
    pub fn browser(self) -> &'static str {
        match self {
            Class::Immutable => "public, max-age=31536000, immutable",
            Class::Static => "public, max-age=3600",
            Class::Html => "public, max-age=0, must-revalidate",
            Class::Api | Class::Error => "no-store",
            Class::Private => "private, no-store",
            Class::NotFound => "public, max-age=60",
        }
    }

    /// What CDNs obey (Cloudflare reads `Cloudflare-CDN-Cache-Control` first, then `CDN-Cache-Control`).
    pub fn cdn(self) -> &'static str {
        match self {
            Class::Immutable => "public, max-age=31536000, immutable",
            Class::Static => "public, max-age=86400, stale-while-revalidate=86400",
            Class::Html => "public, max-age=120, stale-while-revalidate=60, stale-if-error=86400",
            Class::Api | Class::Error | Class::Private => "no-store",
            Class::NotFound => "public, max-age=60",
        }
    }

    /// The edge TTL for a 2xx response of this class (None: never stored).
    pub fn edge_ttl(self) -> Option<i32> {
        match self {
            Class::Immutable => Some(31_536_000),
            Class::Static => Some(86_400),
            Class::Html => Some(120),
            Class::NotFound => Some(60),
            Class::Api | Class::Error | Class::Private => None,
        }
    }

    pub fn is_public(self) -> bool {
        self.edge_ttl().is_some()
    }
}

/// The `cf` cache options of the origin fetch. Serialises to the names workerd expects.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CfCache {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_everything: Option<bool>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cache_ttl_by_status: BTreeMap<String, i32>,
}

/// What a class, decided before the response exists, tells the zone cache.
pub fn cf_for(class: Option<Class>) -> CfCache {
    let Some(class) = class else { return CfCache::default() };
    let mut by_status = BTreeMap::new();
    match class.edge_ttl() {
        Some(ttl) => {
            by_status.insert("200-299".to_string(), ttl);
            by_status.insert("404".to_string(), 60);
            by_status.insert("410".to_string(), 60);
            by_status.insert("500-599".to_string(), -1);
            CfCache { cache_everything: Some(true), cache_ttl_by_status: by_status }
        }
        None => {
            by_status.insert("100-599".to_string(), -1);
            CfCache { cache_everything: Some(false), cache_ttl_by_status: by_status }
        }
    }
}
