//! The response classes and what each one means for browsers (`Cache-Control`), for CDNs
//! (`CDN-Cache-Control`, `Cloudflare-CDN-Cache-Control`, RFC 9213) and for the worker's own cache,
//! which keeps a public class's copy as long as its CDN directives say (`stored::Freshness`).

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
            // The policy's own (settable) windows are sent instead: `Policy::cdn`.
            Class::Html => "public, max-age=120, stale-while-revalidate=60, stale-if-error=86400",
            Class::Api | Class::Error | Class::Private => "no-store",
            Class::NotFound => "public, max-age=60",
        }
    }

    /// May a shared cache (the worker's own) keep it?
    pub fn is_public(self) -> bool {
        matches!(self, Class::Immutable | Class::Static | Class::Html | Class::NotFound)
    }
}
