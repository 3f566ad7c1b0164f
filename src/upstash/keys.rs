//! The one key scheme: `{KEY_PREFIX}:{site}:{module}:{rest}`. Every module builds its keys here, so
//! one module's data is visible to another (dedup is `evt` everywhere) and a site can be purged by
//! pattern without touching another tenant.

/// What a key belongs to. Adding a module means adding it here, nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// Dedup claims: `evt:{event_name}:{event_id}`.
    Evt,
    /// Rate-limit counters and their per-request guards.
    Rl,
    /// Dead-lettered events.
    Dlq,
    /// Counters and books.
    Stats,
    /// Zaraz sync checkpoints.
    Zaraz,
    /// Delivered markers (idempotent queue consumer).
    Sent,
    /// Purge records of the worker's cache.
    Cache,
}

impl Module {
    pub fn as_str(self) -> &'static str {
        match self {
            Module::Evt => "evt",
            Module::Rl => "rl",
            Module::Dlq => "dlq",
            Module::Stats => "stats",
            Module::Zaraz => "zaraz",
            Module::Sent => "sent",
            Module::Cache => "cache",
        }
    }

    pub fn parse(s: &str) -> Option<Module> {
        [Module::Evt, Module::Rl, Module::Dlq, Module::Stats, Module::Zaraz, Module::Sent, Module::Cache].into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    site: String,
}

/// A site id safe inside a key and inside a SCAN pattern: lowercase, `[a-z0-9._-]`, others → `_`.
pub fn sanitize_site(site: &str) -> String {
    let s: String = site
        .chars()
        .take(100)
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

impl Keys {
    /// `prefix` is validated by the config (`[A-Za-z0-9_-]`); `site` is sanitised here.
    pub fn new(prefix: &str, site: &str) -> Keys {
        Keys { prefix: prefix.to_string(), site: sanitize_site(site) }
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    pub fn key(&self, module: Module, rest: &str) -> String {
        format!("{}:{}:{}:{}", self.prefix, self.site, module.as_str(), rest)
    }

    /// Every key of one module of this site, for `SCAN MATCH`.
    pub fn pattern(&self, module: Module) -> String {
        format!("{}:{}:{}:*", self.prefix, self.site, module.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_scheme() {
        let k = Keys::new("ek", "Shop.Example:8443");
        assert_eq!(k.key(Module::Evt, "Purchase:abc"), "ek:shop.example_8443:evt:Purchase:abc");
        assert_eq!(k.pattern(Module::Dlq), "ek:shop.example_8443:dlq:*");
    }

    #[test]
    fn hostile_sites_cannot_escape_their_namespace() {
        let k = Keys::new("ek", "a:*:evt\r\n?[x]");
        assert!(!k.site().contains([':', '*', '?', '[', ']', '\r', '\n']));
        assert_eq!(Keys::new("ek", "").site(), "_");
        assert_eq!(Keys::new("ek", &"x".repeat(500)).site().len(), 100);
    }

    #[test]
    fn modules_round_trip() {
        for m in [Module::Evt, Module::Rl, Module::Dlq, Module::Stats, Module::Zaraz, Module::Sent, Module::Cache] {
            assert_eq!(Module::parse(m.as_str()), Some(m));
        }
        assert_eq!(Module::parse("nope"), None);
    }
}
