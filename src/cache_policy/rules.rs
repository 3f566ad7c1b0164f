//! Cache rules as data: ordered `match → class` pairs, parsed and validated from `CACHE_RULES` with
//! errors that point at the bad rule (`rules[2].match.status: ...`).
//!
//! `CACHE_RULES` is either a JSON array of rules (added before the built-in rules) or
//! `{"replace": true, "rules": [...]}` (used instead of them). A rule:
//! `{"id": "blog", "match": {"path": "/blog/**", "methods": ["GET"], "status": "200-299",
//!   "content_type": ["text/html"], "set_cookie": false, "authorization": false, "session_cookie": false},
//!   "class": "html"}`; `"path_regex": "^/p/[0-9]+$"` instead of `path` for a regular expression.

use serde_json::{Map, Value};

use super::classes::Class;
use super::{RequestFacts, ResponseFacts};

#[derive(Debug, Clone)]
pub enum PathMatch {
    Glob(String),
    Regex(super::regex::Regex),
}

#[derive(Debug, Clone, Default)]
pub struct Match {
    pub path: Option<PathMatch>,
    pub methods: Option<Vec<String>>,
    pub status: Option<(u16, u16)>,
    /// Prefixes of the media type (`text/html`, `image/`).
    pub content_types: Option<Vec<String>>,
    pub set_cookie: Option<bool>,
    pub authorization: Option<bool>,
    pub session_cookie: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub matcher: Match,
    pub class: Class,
}

/// `*` matches within a path segment, `**` across segments, `?` one character.
pub fn glob(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') if p.get(1) == Some(&b'*') => {
                let rest = &p[2..];
                (0..=s.len()).any(|i| go(rest, &s[i..]))
            }
            Some(b'*') => {
                let rest = &p[1..];
                let seg = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
                (0..=seg).any(|i| go(rest, &s[i..]))
            }
            Some(b'?') => !s.is_empty() && s[0] != b'/' && go(&p[1..], &s[1..]),
            Some(&c) => s.first() == Some(&c) && go(&p[1..], &s[1..]),
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

impl Match {
    /// True when the rule can be decided before the response exists.
    pub fn request_only(&self) -> bool {
        self.status.is_none() && self.content_types.is_none() && self.set_cookie.is_none()
    }

    pub fn matches(&self, req: &RequestFacts, resp: Option<&ResponseFacts>) -> bool {
        let path_ok = match &self.path {
            None => true,
            Some(PathMatch::Glob(g)) => glob(g, &req.path),
            Some(PathMatch::Regex(r)) => r.is_match(&req.path),
        };
        let method_ok = self.methods.as_ref().is_none_or(|m| m.iter().any(|x| x.eq_ignore_ascii_case(&req.method)));
        let auth_ok = self.authorization.is_none_or(|want| want == req.authorization);
        let session_ok = self.session_cookie.is_none_or(|want| want == req.session_cookie);
        if !(path_ok && method_ok && auth_ok && session_ok) {
            return false;
        }
        match resp {
            None => self.request_only(),
            Some(r) => {
                self.status.is_none_or(|(lo, hi)| (lo..=hi).contains(&r.status))
                    && self.content_types.as_ref().is_none_or(|cts| cts.iter().any(|c| r.content_type.starts_with(c.as_str())))
                    && self.set_cookie.is_none_or(|want| want == r.set_cookie)
            }
        }
    }
}

/// The parsed `CACHE_RULES`: the rules and whether they replace the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct UserRules {
    pub rules: Vec<Rule>,
    pub replace: bool,
}

const MATCH_KEYS: &[&str] = &["path", "path_regex", "methods", "status", "content_type", "set_cookie", "authorization", "session_cookie"];

fn status_range(v: &Value) -> Result<(u16, u16), String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err("expected \"200\" or \"200-299\"".into()),
    };
    let (a, b) = text.split_once('-').unwrap_or((&text, &text));
    match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
        (Ok(lo), Ok(hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => Ok((lo, hi)),
        _ => Err("expected a status or range within 100-599, like \"200-299\"".into()),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or_else(|| format!("expected an array of {what}"))?;
    let out: Vec<String> = list.iter().filter_map(|x| x.as_str().map(|s| s.trim().to_ascii_lowercase())).filter(|s| !s.is_empty()).collect();
    if out.len() != list.len() || out.is_empty() {
        return Err(format!("expected a non-empty array of {what}"));
    }
    Ok(out)
}

fn parse_match(m: &Map<String, Value>) -> Result<Match, String> {
    if let Some(k) = m.keys().find(|k| !MATCH_KEYS.contains(&k.as_str())) {
        return Err(format!("match.{k}: unknown condition (use {})", MATCH_KEYS.join(", ")));
    }
    let mut out = Match::default();
    match (m.get("path"), m.get("path_regex")) {
        (Some(_), Some(_)) => return Err("match: give path or path_regex, not both".into()),
        (Some(Value::String(g)), None) if g.starts_with('/') && g.len() <= 512 => out.path = Some(PathMatch::Glob(g.clone())),
        (Some(_), None) => return Err("match.path: expected a glob starting with /".into()),
        (None, Some(Value::String(r))) if r.len() <= 512 => {
            let re = super::regex::Regex::new(r).map_err(|e| format!("match.path_regex: {e}"))?;
            out.path = Some(PathMatch::Regex(re));
        }
        (None, Some(_)) => return Err("match.path_regex: expected a regular expression string".into()),
        (None, None) => {}
    }
    if let Some(v) = m.get("methods") {
        out.methods = Some(strings(v, "methods").map_err(|e| format!("match.methods: {e}"))?.into_iter().map(|s| s.to_ascii_uppercase()).collect());
    }
    if let Some(v) = m.get("status") {
        out.status = Some(status_range(v).map_err(|e| format!("match.status: {e}"))?);
    }
    if let Some(v) = m.get("content_type") {
        out.content_types = Some(strings(v, "media types").map_err(|e| format!("match.content_type: {e}"))?);
    }
    for (key, slot) in [("set_cookie", &mut out.set_cookie), ("authorization", &mut out.authorization), ("session_cookie", &mut out.session_cookie)] {
        if let Some(v) = m.get(key) {
            *slot = Some(v.as_bool().ok_or_else(|| format!("match.{key}: expected true or false"))?);
        }
    }
    Ok(out)
}

fn parse_rule(v: &Value, index: usize) -> Result<Rule, String> {
    let at = |e: String| format!("rules[{index}]{}{e}", if e.starts_with('.') { "" } else { "." });
    let obj = v.as_object().ok_or_else(|| at("expected an object".into()))?;
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "id" | "match" | "class")) {
        return Err(at(format!("{k}: unknown field (use id, match, class)")));
    }
    let id = match obj.get("id") {
        None => format!("rule-{index}"),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b)) => s.clone(),
        Some(_) => return Err(at("id: expected up to 64 letters, digits, - _ : .".into())),
    };
    let class = match obj.get("class") {
        Some(Value::String(c)) => Class::parse(c).ok_or_else(|| at(format!("class: unknown class {c:?} (immutable, static, html, api, private, error, not_found)")))?,
        _ => return Err(at("class: required".into())),
    };
    let matcher = match obj.get("match") {
        Some(Value::Object(m)) => parse_match(m).map_err(at)?,
        None => Match::default(),
        Some(_) => return Err(at("match: expected an object".into())),
    };
    Ok(Rule { id, matcher, class })
}

/// Parses `CACHE_RULES`. Errors are prefixed with the rule they are about.
pub fn parse(json: &str) -> Result<UserRules, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not valid JSON: {e}"))?;
    let (list, replace) = match &v {
        Value::Array(list) => (list.clone(), false),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "rules" | "replace")) {
                return Err(format!("{k}: unknown field (use rules, replace)"));
            }
            let replace = match o.get("replace") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("replace: expected true or false".into()),
            };
            match o.get("rules") {
                Some(Value::Array(list)) => (list.clone(), replace),
                _ => return Err("rules: expected an array".into()),
            }
        }
        _ => return Err("expected an array of rules or {\"rules\": [...], \"replace\": bool}".into()),
    };
    if list.len() > 100 {
        return Err("at most 100 rules".into());
    }
    let rules = list.iter().enumerate().map(|(i, r)| parse_rule(r, i)).collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = rules.iter().find(|r| !seen.insert(r.id.clone())) {
        return Err(format!("rule id {:?} is used twice", dup.id));
    }
    Ok(UserRules { rules, replace })
}
