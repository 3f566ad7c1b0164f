//! Meta `user_data`: normalising and hashing the customer information parameters of an event.
//!
//! This module owns the personal data that browsers send with an event. Every value of a hashed key
//! (`em`, `ph`, `fn`, `ln`, `ge`, `db`, `ct`, `st`, `zp`, `country`, `external_id`) is normalised the
//! way Meta matches it and then SHA-256 hashed: raw personal data never leaves this module except as
//! lowercase SHA-256 hex. The unhashed keys (`client_ip_address`, `client_user_agent`, `fbc`, `fbp`,
//! `subscription_id`, `fb_login_id`, `lead_id`) are validated and passed through as given, never
//! hashed. Errors ([`UserDataError`]) name the key and say what is wrong, never what was sent, so
//! they are safe to log and to return to the browser.
//!
//! # Sources
//! - [Meta-CIP] Meta, Conversions API "Customer Information Parameters",
//!   https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters
//!   (also served as .../documentation/ads-commerce/conversions-api/parameters/customer-information-parameters.md).
//!   Its worked examples are test vectors below (`John_Smith@gmail.com`, `(650)555-1212`, `Mary`,
//!   `Valéry`, `정`, `2/16/1997`, `us`).
//! - [Meta-FBC] Meta, "fbp and fbc Parameters",
//!   https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/fbp-and-fbc
//! - [Meta-PBL] Meta, "Parameter Builder Library",
//!   https://developers.facebook.com/docs/marketing-api/conversions-api/parameter-builder-library
//! - [SDK-node] facebook/facebook-nodejs-business-sdk, `src/objects/serverside/utils.js`
//!   (`ServerSideUtils.normalizeAndHash` and the per-field normalisers) and
//!   `src/objects/serverside/user-data.js` (`normalize()` / `normalizeAndHashMultiValues`, which now
//!   delegate to the Parameter Builder below and de-duplicate the hashed values).
//! - [SDK-php] facebook/facebook-php-business-sdk, `src/FacebookAds/Object/ServerSide/Normalizer.php`.
//! - [PB] facebook/capi-param-builder (Meta's current normaliser, used by the Node SDK above),
//!   `nodejs/capi-param-builder/src/piiUtil/{PIIUtil,commonUtil,emailUtil,phoneUtil,dobUtil,
//!   genderUtil,stringUtil,zipCodeUtil}.js`, read at commit b0b6f0b19e042ff0ae723f684495dde8935a6ff0.
//!
//! # Rules, per key: Meta's Parameter Builder ([PB]), written in Rust
//! Where [Meta-CIP] and [PB] disagree we follow [PB]: it is what Meta's own SDKs send, so it is the hash
//! Meta matches the Pixel's and other servers' events with. Each normaliser below cites its [PB] file.
//! The parity table (`tests/fixtures/param-builder-cases.json`, each case with its reason and [PB]'s
//! output) is checked by `parameter_builder_parity_table` and through workerd.
//! - Already hashed: the trimmed value is 64 or 32 hex digits (either case) → forwarded lower-cased;
//!   or `<digest>.<appendix>` as [PB] emits it → the bare digest. Never hashed twice.
//! - The per-key rule runs on the value as sent; an empty result, or what [PB] returns null for, drops
//!   the key (never the event). "Whitespace" and "trim" are JavaScript's `\s`, as in [PB].
//! - `em` lowercase, trim, [PB]'s RFC 2822 approximation. `ph` ASCII digits only, leading zeros removed.
//!   `fn`/`ln` remove ASCII punctuation and whitespace, lowercase. `ge` one of [PB]'s words. `db` three
//!   digit runs read as a date (US order when ambiguous) or one 8-digit run. `ct` ASCII letters and digits,
//!   starting with a letter. `st`/`country` two-letter code, name look-up, or the first two letters. `zp`
//!   before the first `-`, trimmed, at least 2 characters. `external_id` whitespace removed, lowercase.
//!
//! Values: a string; a non-negative integer for `ph`, `zp`, `db`, `external_id` (and for the numeric
//! plain keys `fb_login_id`, `lead_id`, `subscription_id`); or, for hashed keys, an array of at most
//! 10 of those. Arrays keep their order, drop unusable entries, and are de-duplicated on the final hash
//! (as [SDK-node] `normalizeAndHashMultiValues` does); an array whose entries are all unusable (or an
//! empty array) drops the key. Shape is preserved: an array in gives an array out, even of one value
//! (Meta accepts "string or list<string>" for every hashed key), a scalar gives a string. Plain keys
//! take a single value only. Anything else (object, bool, null, nested array) is an error. Each string
//! may be at most 1024 bytes. Unknown keys are an error: we refuse fields we do not understand rather
//! than forward them unhashed (Meta does not document what it does with unknown `user_data` keys).
//! An empty or all-whitespace string is treated as absent (dropped) for every key.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Keys that are normalised then hashed.
pub const HASHED_KEYS: &[&str] = &["em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"];
/// Keys passed through unhashed (validated).
pub const PLAIN_KEYS: &[&str] =
    &["client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id", "lead_id"];

/// Longest raw string value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Most values one hashed key may carry as an array.
pub const MAX_ARRAY_VALUES: usize = 10;
/// Longest `client_user_agent`, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest `fbc` / `fbp`, in characters.
pub const MAX_FB_COOKIE_CHARS: usize = 500;

/// Hashed keys that also accept a JSON number (converted to its decimal string).
const NUMERIC_HASHED_KEYS: &[&str] = &["ph", "zp", "db", "external_id"];
/// Plain keys that also accept a JSON number. Meta types `fb_login_id` and `lead_id` as integers.
const NUMERIC_PLAIN_KEYS: &[&str] = &["subscription_id", "fb_login_id", "lead_id"];

/// SHA-256 of the UTF-8 bytes of `input`, as 64 lowercase hex digits.
pub fn sha256_hex(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// True when `v` is exactly 64 hex digits (either case): the shape of a SHA-256 digest.
pub fn is_sha256_hex(v: &str) -> bool {
    is_hex_of_len(v, 64)
}

/// A problem with one `user_data` key. `message` says what is wrong, never what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user_data.{key}: {message}")]
pub struct UserDataError {
    pub key: String,
    pub message: String,
}

impl UserDataError {
    fn new(key: &str, message: &str) -> Self {
        UserDataError { key: printable_key(key), message: message.to_string() }
    }
}

/// Meta-ready `user_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct HashedUserData {
    /// Hashed keys hold lowercase SHA-256 hex (a string, or an array when an array was given); plain
    /// keys hold their validated value.
    pub fields: Map<String, Value>,
    /// The match keys present in `fields`, in `HASHED_KEYS` then `PLAIN_KEYS` order.
    pub keys: Vec<&'static str>,
}

/// The normalised plain value of `raw` for the hashed key `key`, i.e. what gets hashed; or, for a
/// value that already is a SHA-256 digest, that digest in lowercase. For a plain key, the trimmed value
/// if it is valid. `None`: the value is unusable (dropped), or `key` is unknown, or `raw` is longer
/// than [`MAX_VALUE_BYTES`].
pub fn normalize(key: &str, raw: &str, current_year: u32) -> Option<String> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    if let Some(hashed_key) = HASHED_KEYS.iter().find(|k| **k == key) {
        return match normalize_hashed(hashed_key, raw, current_year)? {
            Normalized::Digest(d) => Some(d),
            Normalized::Plain(p) => Some(p),
        };
    }
    if PLAIN_KEYS.contains(&key) {
        let v = raw.trim();
        return (!v.is_empty() && validate_plain(key, v).is_ok()).then(|| v.to_string());
    }
    None
}

/// Normalises and hashes the event's `user_data` object as the browser sent it. Returns Meta-ready
/// `user_data`: each hashed key holds lowercase SHA-256 hex (a string, or an array when an array was
/// given), plain keys are validated and kept, unusable values are dropped; `keys` lists the match keys
/// present (in `HASHED_KEYS` then `PLAIN_KEYS` order). An empty result is `Ok`: whether an event has
/// enough match keys is the caller's decision.
pub fn hash_user_data(input: &Map<String, Value>, current_year: u32) -> Result<HashedUserData, UserDataError> {
    if let Some(unknown) = input.keys().find(|k| !HASHED_KEYS.contains(&k.as_str()) && !PLAIN_KEYS.contains(&k.as_str())) {
        return Err(UserDataError::new(unknown, "unknown key: not a customer information parameter edgekeeper accepts"));
    }
    let mut fields = Map::new();
    let mut keys = Vec::new();
    for &key in HASHED_KEYS {
        if let Some(value) = input.get(key) {
            if let Some(hashed) = hash_field(key, value, current_year)? {
                fields.insert(key.to_string(), hashed);
                keys.push(key);
            }
        }
    }
    for &key in PLAIN_KEYS {
        if let Some(value) = input.get(key) {
            if let Some(plain) = plain_field(key, value)? {
                fields.insert(key.to_string(), plain);
                keys.push(key);
            }
        }
    }
    Ok(HashedUserData { fields, keys })
}

/// `fb.<subdomain index>.<creation time>.<random number>[.<appendix>]` ([Meta-FBC], [Meta-PBL]).
pub fn valid_fbp(v: &str) -> bool {
    valid_fb_cookie(v)
}

/// `fb.<subdomain index>.<creation time>.<fbclid>[.<appendix>]` ([Meta-FBC], [Meta-PBL]). The fbclid
/// is case-sensitive and is never altered here.
pub fn valid_fbc(v: &str) -> bool {
    valid_fb_cookie(v)
}

/// Shared shape of `_fbp` / `_fbc`: the literal `fb`, one digit (subdomain index: 0 = `com`,
/// 1 = `example.com`, 2 = `www.example.com`), 1..=15 digits (creation time, Unix ms), then a value of
/// one or two non-empty dot-separated segments (the random number or fbclid, and optionally the
/// Parameter Builder's appendix). At most 500 characters, all visible ASCII: no whitespace, control or
/// non-ASCII characters.
fn valid_fb_cookie(v: &str) -> bool {
    if v.len() > MAX_FB_COOKIE_CHARS || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let mut parts = v.splitn(4, '.');
    let (Some(version), Some(index), Some(created), Some(value)) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let segments = value.split('.').count();
    version == "fb"
        && index.len() == 1
        && digits(index)
        && created.len() <= 15
        && digits(created)
        && (1..=2).contains(&segments)
        && value.split('.').all(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------------------------------
// hash_user_data internals

enum Normalized {
    /// The input already was a SHA-256 digest: this is it, lowercased.
    Digest(String),
    /// The normalised plain value, to be hashed.
    Plain(String),
}

fn hash_field(key: &'static str, value: &Value, current_year: u32) -> Result<Option<Value>, UserDataError> {
    match value {
        Value::Array(items) => {
            if items.len() > MAX_ARRAY_VALUES {
                return Err(UserDataError::new(key, "too many values: an array may hold at most 10"));
            }
            let mut hashes: Vec<String> = Vec::with_capacity(items.len());
            for item in items {
                if item.is_array() {
                    return Err(UserDataError::new(key, "nested arrays are not allowed"));
                }
                if item.is_null() {
                    continue;
                }
                let text = scalar_text(key, item)?;
                if let Some(h) = hash_one(key, &text, current_year) {
                    if !hashes.contains(&h) {
                        hashes.push(h);
                    }
                }
            }
            Ok((!hashes.is_empty()).then(|| Value::Array(hashes.into_iter().map(Value::String).collect())))
        }
        // The builder drops a null value ([PB] `getNormalizedAndHashedPII`); so do we, the event stays.
        Value::Null => Ok(None),
        other => {
            let text = scalar_text(key, other)?;
            Ok(hash_one(key, &text, current_year).map(Value::String))
        }
    }
}

fn hash_one(key: &str, text: &str, current_year: u32) -> Option<String> {
    match normalize_hashed(key, text, current_year)? {
        Normalized::Digest(d) => Some(d),
        Normalized::Plain(p) => Some(sha256_hex(&p)),
    }
}

/// The text of one scalar value of a hashed key, or the error for a value of the wrong type or size.
fn scalar_text(key: &str, value: &Value) -> Result<String, UserDataError> {
    match value {
        Value::String(s) if s.len() > MAX_VALUE_BYTES => Err(UserDataError::new(key, "value longer than 1024 bytes")),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if NUMERIC_HASHED_KEYS.contains(&key) => match n.as_u64() {
            Some(u) => Ok(u.to_string()),
            None => Err(UserDataError::new(key, "a number must be a non-negative integer; send decimals as a string")),
        },
        Value::Number(_) => Err(UserDataError::new(key, "must be a string, not a number")),
        Value::Null => Err(UserDataError::new(key, "null is not allowed; omit the key instead")),
        Value::Bool(_) => Err(UserDataError::new(key, "must be a string, not a boolean")),
        Value::Object(_) => Err(UserDataError::new(key, "must be a string, not an object")),
        Value::Array(_) => Err(UserDataError::new(key, "nested arrays are not allowed")),
    }
}

fn plain_field(key: &str, value: &Value) -> Result<Option<Value>, UserDataError> {
    match value {
        Value::String(s) if s.len() > MAX_VALUE_BYTES => Err(UserDataError::new(key, "value longer than 1024 bytes")),
        Value::String(s) => {
            let v = s.trim();
            if v.is_empty() {
                return Ok(None);
            }
            validate_plain(key, v).map_err(|message| UserDataError::new(key, message))?;
            Ok(Some(Value::String(v.to_string())))
        }
        Value::Number(n) if NUMERIC_PLAIN_KEYS.contains(&key) => match n.as_u64() {
            Some(_) => Ok(Some(Value::Number(n.clone()))),
            None => Err(UserDataError::new(key, "a number must be a non-negative integer")),
        },
        Value::Number(_) => Err(UserDataError::new(key, "must be a string, not a number")),
        Value::Array(_) => Err(UserDataError::new(key, "must be a single value, not an array")),
        Value::Null => Ok(None),
        Value::Bool(_) => Err(UserDataError::new(key, "must be a string, not a boolean")),
        Value::Object(_) => Err(UserDataError::new(key, "must be a string, not an object")),
    }
}

/// Validates a trimmed, non-empty value of a plain key. The error is a fixed message.
fn validate_plain(key: &str, v: &str) -> Result<(), &'static str> {
    if is_sha256_hex(v) {
        return Err("looks like a SHA-256 hash, but this key is sent to Meta unhashed");
    }
    match key {
        "client_ip_address" => match v.parse::<IpAddr>() {
            Ok(_) => Ok(()),
            Err(_) => Err("must be an IPv4 or IPv6 address, without port, brackets or zone"),
        },
        "client_user_agent" => {
            if v.chars().any(char::is_control) {
                Err("contains control characters")
            } else if v.chars().count() > MAX_USER_AGENT_CHARS {
                Err("longer than 512 characters")
            } else {
                Ok(())
            }
        }
        "fbp" if !valid_fbp(v) => Err("not in the fb.<subdomain index>.<creation time>.<random number> format"),
        "fbc" if !valid_fbc(v) => Err("not in the fb.<subdomain index>.<creation time>.<fbclid> format"),
        "fb_login_id" | "lead_id" if !(v.len() <= 32 && v.bytes().all(|b| b.is_ascii_digit())) => {
            Err("must be a numeric ID (digits only)")
        }
        "subscription_id" if v.chars().any(char::is_control) => Err("contains control characters"),
        _ => Ok(()),
    }
}

/// The key as it may appear in an error: at most 40 characters of `[A-Za-z0-9_.-]`, anything else
/// shown as `?`. Unknown keys come from the browser; this keeps odd bytes out of logs.
fn printable_key(key: &str) -> String {
    let mut shown: String = key
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '?' })
        .collect();
    if key.chars().count() > 40 {
        shown.push('…');
    }
    shown
}

// ---------------------------------------------------------------------------------------------------
// Per-key normalisers, each the Parameter Builder's rule for that key ([PB] file named per function).
// They take the raw text as the browser sent it (the builder normalises the untrimmed value) and
// return None where the builder returns null or an empty string: the key is then dropped.

fn normalize_hashed(key: &str, raw: &str, current_year: u32) -> Option<Normalized> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    let trimmed = js_trim(raw);
    if trimmed.is_empty() {
        return None;
    }
    if let Some(digest) = already_hashed(trimmed) {
        return Some(Normalized::Digest(digest));
    }
    let plain = match key {
        "em" => normalize_email(raw),
        "ph" => normalize_phone(raw),
        "fn" | "ln" => normalize_name(raw),
        "ge" => normalize_gender(raw),
        "db" => normalize_birth_date(raw, current_year),
        "ct" => normalize_city(raw),
        "st" => two_letter_code(raw, STATE_NAMES),
        "zp" => normalize_zip(raw),
        "country" => two_letter_code(raw, COUNTRY_NAMES),
        "external_id" => normalize_external_id(raw),
        _ => None,
    }?;
    (!plain.is_empty()).then_some(Normalized::Plain(plain))
}

/// ECMAScript's `\s` (WhiteSpace and LineTerminator), which the builder's `trim` and its whitespace
/// regexes use. Unlike Rust's `char::is_whitespace` it includes U+FEFF and excludes U+0085.
fn js_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}'
        | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}')
}

fn js_trim(s: &str) -> &str {
    s.trim_matches(js_space)
}

/// Length as JavaScript counts it (UTF-16 code units): the builder's length checks count this way.
fn js_len(s: &str) -> usize {
    s.encode_utf16().count()
}

fn is_hex_of_len(v: &str, len: usize) -> bool {
    v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Legacy 2-character appendices of the Parameter Builder: the SDK language token ([PB] `Constants.js`
/// `SUPPORTED_PARAM_BUILDER_LANGUAGES_TOKEN`).
const PB_LANGUAGE_TOKENS: &[&str] = &["AQ", "Ag", "Aw", "BA", "BQ", "Bg"];

/// The lowercase digest when the trimmed value already is one ([PB] `PIIUtil.js`
/// `SHA_256_OR_MD5_REGEX`: 64 or 32 hex digits, either case, lowercased), or a digest the builder
/// produced itself: `<digest>.<appendix>` where the appendix is a language token or any 8 UTF-16
/// units ([PB] `isAlreadyNormalizedAndHashedByParamBuilder`, `APPENDIX_LENGTH_V2`). We forward the bare
/// digest; the appendix only tells Meta which library hashed it.
fn already_hashed(v: &str) -> Option<String> {
    let hex = |s: &str| is_sha256_hex(s) || is_hex_of_len(s, 32);
    if hex(v) {
        return Some(v.to_ascii_lowercase());
    }
    let (digest, appendix) = v.rsplit_once('.')?;
    let appendix_ok = PB_LANGUAGE_TOKENS.contains(&appendix) || js_len(appendix) == 8;
    (appendix_ok && hex(digest)).then(|| digest.to_ascii_lowercase())
}

/// [PB] `emailUtil.js`: lowercase, trim, then its "approximation of RFC 2822": dot-separated atoms of
/// `[a-z0-9_!#$%&'*+/=?^`{|}~-]` (its separator is written `(:?\.)`, so `:.` separates atoms too), `@`,
/// two or more DNS labels of `[a-z0-9-]` that start and end with a letter or digit. No length limit.
fn normalize_email(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    let email = js_trim(&lower);
    let (local, domain) = email.split_once('@')?;
    let atext = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_!#$%&'*+/=?^`{|}~-".contains(&b);
    let segments: Vec<&str> = local.split('.').collect();
    let local_ok = segments.iter().enumerate().all(|(i, seg)| {
        let atom = if i + 1 < segments.len() { seg.strip_suffix(':').unwrap_or(seg) } else { seg };
        !atom.is_empty() && atom.bytes().all(atext)
    });
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2 && labels.iter().all(|l| label_ok(l));
    (local_ok && domain_ok).then(|| email.to_string())
}

/// [PB] `phoneUtil.js`: every character but ASCII digits removed, then the leading zeros. No length
/// check (Meta's older page says "remove leading zeros" and nothing of length either).
fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    Some(digits.trim_start_matches('0').to_string())
}

/// [PB] `stringUtil.js` `getNormalizedName` (strip `whitespace_and_punctuation`, then lowercase): the
/// 32 ASCII punctuation characters and `\s` are removed; letters of every script, accents, digits and
/// other symbols stay as sent (no Unicode normalisation: a decomposed `e`+U+0301 stays decomposed).
fn normalize_name(raw: &str) -> Option<String> {
    let kept: String = raw.chars().filter(|&c| !c.is_ascii_punctuation() && !js_space(c)).collect();
    Some(kept.to_lowercase())
}

/// [PB] `stringUtil.js` `getNormalizedCity` (strip `all_non_latin_alpha_numeric`, lowercase, test
/// `^[a-z]+`): only ASCII letters and digits survive, so `São Paulo` → `sopaulo`, a city in another
/// script has nothing left and is dropped, and the result must start with a letter.
fn normalize_city(raw: &str) -> Option<String> {
    let city: String = raw.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    city.starts_with(|c: char| c.is_ascii_lowercase()).then_some(city)
}

/// [PB] `stringUtil.js` `normalizeTwoLetterAbbreviations` + `getFromMap`, for `st` and `country`:
/// lowercase, keep `a-z` only; two letters are taken as a code; otherwise an exact name, else the first
/// name (in the table's order) contained in the value, gives its code; else the first two letters.
fn two_letter_code(raw: &str, names: &[(&str, &str)]) -> Option<String> {
    let letters: String = raw.to_lowercase().chars().filter(char::is_ascii_lowercase).collect();
    if letters.len() == 2 {
        return Some(letters);
    }
    if let Some((_, code)) = names.iter().find(|(name, _)| *name == letters) {
        return Some((*code).to_string());
    }
    if let Some((_, code)) = names.iter().find(|(name, _)| letters.contains(name)) {
        return Some((*code).to_string());
    }
    letters.get(..2.min(letters.len())).filter(|s| !s.is_empty()).map(str::to_string)
}

/// [PB] `zipCodeUtil.js`: lowercase, the part before the first `-`, trimmed; at least 2 (UTF-16)
/// characters. Inner spaces stay (`SW1A 1AA` → `sw1a 1aa`).
fn normalize_zip(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    let zip = js_trim(lower.split('-').next().unwrap_or(""));
    (js_len(zip) >= 2).then(|| zip.to_string())
}

/// [PB] `stringUtil.js` `getNormalizedExternalID`: every `\s` removed, then lowercase.
fn normalize_external_id(raw: &str) -> Option<String> {
    let kept: String = raw.chars().filter(|&c| !js_space(c)).collect();
    Some(kept.to_lowercase())
}

/// [PB] `genderUtil.js`: lowercase, trim, then exactly one of its words; anything else is dropped.
fn normalize_gender(raw: &str) -> Option<String> {
    let lower = raw.to_lowercase();
    let word = js_trim(&lower);
    if FEMALE_WORDS.contains(&word) {
        Some("f".to_string())
    } else if MALE_WORDS.contains(&word) {
        Some("m".to_string())
    } else {
        None
    }
}

/// [PB] `dobUtil.js`: the first three runs of ASCII digits are read as numbers; a number above 31 in
/// the first or second place is the year (else the third is); of the other two, one above 12 is the
/// day, else month comes first (US order). Valid when 1800 ≤ year ≤ this year + 1, month 1–12 and day
/// 1–31 (the builder does not check days per month). Failing that, a value that is one run of 8
/// digits is taken as `YYYYMMDD` as it is.
fn normalize_birth_date(raw: &str, current_year: u32) -> Option<String> {
    let groups: Vec<&str> = raw.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()).collect();
    if groups.len() >= 3 {
        let n = |g: &str| g.bytes().fold(0u64, |acc, b| acc.saturating_mul(10).saturating_add(u64::from(b - b'0')));
        let (n1, n2, n3) = (n(groups[0]), n(groups[1]), n(groups[2]));
        // (month, day) from the two numbers beside the year, in [PB]'s order: the first is the month
        // unless it is above 12.
        let month_day = |a: u64, b: u64| if a > 12 { (b, a) } else { (a, b) };
        let (year, (month, day)) = if n1 > 31 {
            (n1, month_day(n2, n3))
        } else if n2 > 31 {
            (n2, month_day(n3, n1))
        } else {
            (n3, month_day(n1, n2))
        };
        let valid = (1800..=u64::from(current_year) + 1).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day);
        if valid {
            return Some(format!("{year:04}{month:02}{day:02}"));
        }
    }
    (groups.len() == 1 && groups[0].len() == 8).then(|| groups[0].to_string())
}

/// The UTC calendar year of a Unix time in milliseconds (the builder's "current year" for `db`).
pub fn year_of_unix_ms(ms: f64) -> u32 {
    let days = (ms / 86_400_000.0).floor() as i64;
    // Civil-from-days (Howard Hinnant's algorithm), year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year.clamp(0, 9999) as u32
}

// ---------------------------------------------------------------------------------------------------
// Tables (facts, in the builder's order where the order decides: `two_letter_code` takes the first
// name contained in the value).

/// [PB] `genderUtil.js` word lists.
const FEMALE_WORDS: &[&str] = &[
    "woman", "female", "girl", "lady", "miss", "ms", "mrs", "madam", "ma'am", "daughter", "mother", "mom", "mama",
    "mommy", "aunt", "niece", "sister", "wife", "girlfriend", "bride", "widow", "queen", "princess", "duchess",
    "countess", "empress", "goddess", "maiden", "lass", "gal", "chick", "dame", "belle", "she", "her", "hers", "herself",
    "f",
];
const MALE_WORDS: &[&str] = &[
    "man", "male", "boy", "gentleman", "guy", "sir", "mister", "mr", "son", "father", "dad", "daddy", "papa",
    "uncle", "nephew", "brother", "husband", "boyfriend", "groom", "widower", "king", "prince", "duke", "count",
    "emperor", "god", "lord", "lad", "fellow", "chap", "bloke", "dude", "he", "him", "his", "himself", "m",
];

/// US state and Canadian province names with their codes, Canadian first as the builder searches them
/// ([PB] `stringUtil.js` `STATE_MAPPINGS` = `CA_PROVINCES` then `US_STATES`; DC and the territories are
/// not in it, so `District of Columbia` becomes `di`, as the builder hashes it).
const STATE_NAMES: &[(&str, &str)] = &[
    ("ontario", "on"), ("quebec", "qc"), ("britishcolumbia", "bc"), ("alberta", "ab"), ("saskatchewan", "sk"),
    ("manitoba", "mb"), ("novascotia", "ns"), ("newbrunswick", "nb"), ("princeedwardisland", "pe"),
    ("newfoundlandandlabrador", "nl"), ("yukon", "yt"), ("northwestterritories", "nt"), ("nunavut", "nu"),
    ("alabama", "al"), ("alaska", "ak"), ("arizona", "az"), ("arkansas", "ar"), ("california", "ca"),
    ("colorado", "co"), ("connecticut", "ct"), ("delaware", "de"), ("florida", "fl"), ("georgia", "ga"),
    ("hawaii", "hi"), ("idaho", "id"), ("illinois", "il"), ("indiana", "in"), ("iowa", "ia"), ("kansas", "ks"),
    ("kentucky", "ky"), ("louisiana", "la"), ("maine", "me"), ("maryland", "md"), ("massachusetts", "ma"),
    ("michigan", "mi"), ("minnesota", "mn"), ("mississippi", "ms"), ("missouri", "mo"), ("montana", "mt"),
    ("nebraska", "ne"), ("nevada", "nv"), ("newhampshire", "nh"), ("newjersey", "nj"), ("newmexico", "nm"),
    ("newyork", "ny"), ("northcarolina", "nc"), ("northdakota", "nd"), ("ohio", "oh"), ("oklahoma", "ok"),
    ("oregon", "or"), ("pennsylvania", "pa"), ("rhodeisland", "ri"), ("southcarolina", "sc"), ("southdakota", "sd"),
    ("tennessee", "tn"), ("texas", "tx"), ("utah", "ut"), ("vermont", "vt"), ("virginia", "va"), ("washington", "wa"),
    ("westvirginia", "wv"), ("wisconsin", "wi"), ("wyoming", "wy"),
];

/// Country names and aliases with their ISO 3166-1 alpha-2 codes, in the builder's search order
/// ([PB] `stringUtil.js` `COUNTRY_MAPPINGS`; e.g. `ind` → `in`, `unitedkingdom` → `gb`; `uk` is two
/// letters and so stays `uk`).
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("unitedstates", "us"), ("usa", "us"), ("ind", "in"), ("afghanistan", "af"), ("alandislands", "ax"),
    ("albania", "al"), ("algeria", "dz"), ("americansamoa", "as"), ("andorra", "ad"), ("angola", "ao"),
    ("anguilla", "ai"), ("antarctica", "aq"), ("antiguaandbarbuda", "ag"), ("argentina", "ar"), ("armenia", "am"),
    ("aruba", "aw"), ("australia", "au"), ("austria", "at"), ("azerbaijan", "az"), ("bahamas", "bs"),
    ("bahrain", "bh"), ("bangladesh", "bd"), ("barbados", "bb"), ("belarus", "by"), ("belgium", "be"),
    ("belize", "bz"), ("benin", "bj"), ("bermuda", "bm"), ("bhutan", "bt"), ("boliviaplurinationalstateof", "bo"),
    ("bolivia", "bo"), ("bonairesinteustatinsandsaba", "bq"), ("bosniaandherzegovina", "ba"), ("botswana", "bw"),
    ("bouvetisland", "bv"), ("brazil", "br"), ("britishindianoceanterritory", "io"), ("bruneidarussalam", "bn"),
    ("brunei", "bn"), ("bulgaria", "bg"), ("burkinafaso", "bf"), ("burundi", "bi"), ("cambodia", "kh"),
    ("cameroon", "cm"), ("canada", "ca"), ("capeverde", "cv"), ("caymanislands", "ky"),
    ("centralafricanrepublic", "cf"), ("chad", "td"), ("chile", "cl"), ("china", "cn"), ("christmasisland", "cx"),
    ("cocoskeelingislands", "cc"), ("colombia", "co"), ("comoros", "km"), ("congo", "cg"),
    ("congothedemocraticrepublicofthe", "cd"), ("democraticrepublicofthecongo", "cd"), ("cookislands", "ck"),
    ("costarica", "cr"), ("cotedivoire", "ci"), ("ivorycoast", "ci"), ("croatia", "hr"), ("cuba", "cu"),
    ("curacao", "cw"), ("cyprus", "cy"), ("czechrepublic", "cz"), ("denmark", "dk"), ("djibouti", "dj"),
    ("dominica", "dm"), ("dominicanrepublic", "do"), ("ecuador", "ec"), ("egypt", "eg"), ("elsalvador", "sv"),
    ("equatorialguinea", "gq"), ("eritrea", "er"), ("estonia", "ee"), ("ethiopia", "et"),
    ("falklandislandsmalvinas", "fk"), ("faroeislands", "fo"), ("fiji", "fj"), ("finland", "fi"), ("france", "fr"),
    ("frenchguiana", "gf"), ("frenchpolynesia", "pf"), ("frenchsouthernterritories", "tf"), ("gabon", "ga"),
    ("gambia", "gm"), ("georgia", "ge"), ("germany", "de"), ("ghana", "gh"), ("gibraltar", "gi"), ("greece", "gr"),
    ("greenland", "gl"), ("grenada", "gd"), ("guadeloupe", "gp"), ("guam", "gu"), ("guatemala", "gt"),
    ("guernsey", "gg"), ("guinea", "gn"), ("guineabissau", "gw"), ("guyana", "gy"), ("haiti", "ht"),
    ("heardislandandmcdonaldislands", "hm"), ("holyseevaticancitystate", "va"), ("vatican", "va"), ("honduras", "hn"),
    ("hongkong", "hk"), ("hungary", "hu"), ("iceland", "is"), ("india", "in"), ("indonesia", "id"),
    ("iranislamicrepublicof", "ir"), ("iran", "ir"), ("iraq", "iq"), ("ireland", "ie"), ("isleofman", "im"),
    ("israel", "il"), ("italy", "it"), ("jamaica", "jm"), ("japan", "jp"), ("jersey", "je"), ("jordan", "jo"),
    ("kazakhstan", "kz"), ("kenya", "ke"), ("kiribati", "ki"), ("koreademocraticpeoplesrepublicof", "kp"),
    ("northkorea", "kp"), ("korearepublicof", "kr"), ("southkorea", "kr"), ("kuwait", "kw"), ("kyrgyzstan", "kg"),
    ("laopeoplesdemocraticrepublic", "la"), ("laos", "la"), ("latvia", "lv"), ("lebanon", "lb"), ("lesotho", "ls"),
    ("liberia", "lr"), ("libya", "ly"), ("liechtenstein", "li"), ("lithuania", "lt"), ("luxembourg", "lu"),
    ("macao", "mo"), ("macedoniatheformeryugoslavrepublicof", "mk"), ("macedonia", "mk"), ("madagascar", "mg"),
    ("malawi", "mw"), ("malaysia", "my"), ("maldives", "mv"), ("mali", "ml"), ("malta", "mt"),
    ("marshallislands", "mh"), ("martinique", "mq"), ("mauritania", "mr"), ("mauritius", "mu"), ("mayotte", "yt"),
    ("mexico", "mx"), ("micronesiafederatedstatesof", "fm"), ("micronesia", "fm"), ("moldovarepublicof", "md"),
    ("moldova", "md"), ("monaco", "mc"), ("mongolia", "mn"), ("montenegro", "me"), ("montserrat", "ms"),
    ("morocco", "ma"), ("mozambique", "mz"), ("myanmar", "mm"), ("namibia", "na"), ("nauru", "nr"), ("nepal", "np"),
    ("netherlands", "nl"), ("newcaledonia", "nc"), ("newzealand", "nz"), ("nicaragua", "ni"), ("niger", "ne"),
    ("nigeria", "ng"), ("niue", "nu"), ("norfolkisland", "nf"), ("northernmarianaislands", "mp"), ("norway", "no"),
    ("oman", "om"), ("pakistan", "pk"), ("palau", "pw"), ("palestinestateof", "ps"), ("palestine", "ps"),
    ("panama", "pa"), ("papuanewguinea", "pg"), ("paraguay", "py"), ("peru", "pe"), ("philippines", "ph"),
    ("pitcairn", "pn"), ("poland", "pl"), ("portugal", "pt"), ("puertorico", "pr"), ("qatar", "qa"),
    ("reunion", "re"), ("romania", "ro"), ("russianfederation", "ru"), ("russia", "ru"), ("rwanda", "rw"),
    ("saintbarthelemy", "bl"), ("sainthelenaascensionandtristandacunha", "sh"), ("saintkittsandnevis", "kn"),
    ("saintlucia", "lc"), ("saintmartinfrenchpart", "mf"), ("saintpierreandmiquelon", "pm"),
    ("saintvincentandthegrenadines", "vc"), ("samoa", "ws"), ("sanmarino", "sm"), ("saotomeandprincipe", "st"),
    ("saudiarabia", "sa"), ("senegal", "sn"), ("serbia", "rs"), ("seychelles", "sc"), ("sierraleone", "sl"),
    ("singapore", "sg"), ("sintmaartenductchpart", "sx"), ("slovakia", "sk"), ("slovenia", "si"),
    ("solomonislands", "sb"), ("somalia", "so"), ("southafrica", "za"),
    ("southgeorgiaandthesouthsandwichislands", "gs"), ("southsudan", "ss"), ("spain", "es"), ("srilanka", "lk"),
    ("sudan", "sd"), ("suriname", "sr"), ("svalbardandjanmayen", "sj"), ("eswatini", "sz"), ("swaziland", "sz"),
    ("sweden", "se"), ("switzerland", "ch"), ("syrianarabrepublic", "sy"), ("syria", "sy"),
    ("taiwanprovinceofchina", "tw"), ("taiwan", "tw"), ("tajikistan", "tj"), ("tanzaniaunitedrepublicof", "tz"),
    ("tanzania", "tz"), ("thailand", "th"), ("timorleste", "tl"), ("easttimor", "tl"), ("togo", "tg"),
    ("tokelau", "tk"), ("tonga", "to"), ("trinidadandtobago", "tt"), ("tunisia", "tn"), ("turkey", "tr"),
    ("turkmenistan", "tm"), ("turksandcaicosislands", "tc"), ("tuvalu", "tv"), ("uganda", "ug"), ("ukraine", "ua"),
    ("unitedarabemirates", "ae"), ("unitedkingdom", "gb"), ("unitedstatesofamerica", "us"),
    ("unitedstatesminoroutlyingislands", "um"), ("uruguay", "uy"), ("uzbekistan", "uz"), ("vanuatu", "vu"),
    ("venezuelabolivarianrepublicof", "ve"), ("venezuela", "ve"), ("vietnam", "vn"), ("virginislandsbritish", "vg"),
    ("virginislandsus", "vi"), ("wallisandfutuna", "wf"), ("westernsahara", "eh"), ("yemen", "ye"), ("zambia", "zm"),
    ("zimbabwe", "zw"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Meta's Parameter Builder parity table (tests/fixtures/param-builder-cases.json): each case's
    /// expected value is what the builder returns for that input ([PB], commit in the file), with the
    /// reason for the case beside it. `normalize` must give the same normalised string (or digest), and
    /// drop exactly what the builder drops.
    #[test]
    fn parameter_builder_parity_table() {
        let table: Value = serde_json::from_str(include_str!("../../tests/fixtures/param-builder-cases.json")).unwrap();
        let cases = table["cases"].as_array().unwrap();
        let mut per_key: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut wrong = Vec::new();
        for case in cases {
            let key = case["key"].as_str().unwrap();
            let input = case["input"].as_str().unwrap();
            *per_key.entry(key).or_default() += 1;
            let expected = match &case["expected"] {
                Value::Null => None,
                e => Some(e.get("digest").or_else(|| e.get("normalized")).and_then(Value::as_str).unwrap().to_string()),
            };
            let got = normalize(key, input, 2026);
            if got != expected {
                wrong.push(format!("{key} {input:?} ({}): expected {expected:?}, got {got:?}", case["why"].as_str().unwrap()));
            }
        }
        assert!(wrong.is_empty(), "{} of {} cases differ from the Parameter Builder:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
        let names = per_key.get("fn").copied().unwrap_or(0) + per_key.get("ln").copied().unwrap_or(0);
        for key in ["em", "ph", "ge", "db", "ct", "st", "zp", "country", "external_id"] {
            assert!(per_key.get(key).copied().unwrap_or(0) >= 40, "{key}: fewer than 40 cases");
        }
        assert!(names >= 40, "fn/ln: fewer than 40 cases");
    }

    #[test]
    fn year_of_unix_ms_is_the_utc_year() {
        assert_eq!(year_of_unix_ms(0.0), 1970);
        assert_eq!(year_of_unix_ms(951_782_400_000.0), 2000); // 2000-02-29
        assert_eq!(year_of_unix_ms(1_798_761_599_000.0), 2026); // 2026-12-31T23:59:59Z
        assert_eq!(year_of_unix_ms(1_798_761_600_000.0), 2027);
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("test input must be an object"),
        }
    }

    const H_JOHN_DOE: &str = "836f82db99121b3481011f16b49dfa5fbc714a0d1b1b9f784a1ebbbf5b39577f";
    const H_PHONE_US: &str = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176";

    /// (key, raw input, normalised value, SHA-256 of the normalised value). The hashes were computed
    /// independently with Python's hashlib (`hashlib.sha256(v.encode()).hexdigest()`); those marked
    /// [Meta-CIP] are also the worked examples of Meta's Customer Information Parameters page.
    const TABLE: &[(&str, &str, &str, &str)] = &[
        // em
        ("em", " John.Doe@Example.COM ", "john.doe@example.com", H_JOHN_DOE),
        ("em", "John_Smith@gmail.com", "john_smith@gmail.com", "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"), // [Meta-CIP]
        ("em", "\tA@B.COM\n", "a@b.com", "fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf"),
        // ph
        ("ph", "+1 (650) 555-1212", "16505551212", H_PHONE_US), // [Meta-CIP]
        ("ph", "1-650-555-1212 ", "16505551212", H_PHONE_US),
        ("ph", "tel: +1.650.555.1212", "16505551212", H_PHONE_US),
        ("ph", "0044 20 7946 0958", "442079460958", "35e206e5dec4c89b9e8b71b8c32724a5bb518483ac5a20c6617d738375b3b823"),
        ("ph", "+44 844 412 4653", "448444124653", "dc008fda46e2e64002cf2f82a4906236282d431c4f75e5b60bfe79fc48546383"),
        // fn / ln
        ("fn", "  Élodie ", "élodie", "36bac2631d17463d569eaf1b869e7bf8d40e4636fd8b2b778ee93f504baf6691"),
        ("fn", "Mary", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"), // [Meta-CIP]
        ("fn", "Valéry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"), // [Meta-CIP]
        ("fn", "정", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"), // [Meta-CIP]
        ("fn", "Jean-Luc", "jeanluc", "7fef38066db9900f992fa9926eea8cc648f44c2af50c4d511c415422196c8ef5"),
        ("fn", "Anna\u{00A0}Maria", "annamaria", "fec6939d9150326486c4f459b966d7a4effccb4e125ead017da8ecde375379f0"),
        ("ln", "O'Brien", "obrien", "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba"),
        ("ln", "Müller-Lüdenscheidt", "müllerlüdenscheidt", "5d111567d02391abb8602b6a6498465eb1edf98eb6ba46fa5bd2f2d69351a514"),
        // ge
        ("ge", "Female", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
        ("ge", "Woman", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
        ("ge", " M ", "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"),
        ("ge", "male", "m", "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"),
        // db
        ("db", "19900115", "19900115", "4747c382bedef489a190a6797e6f4451907b86511bdd49cfa8f9d4c1a78d8bac"),
        ("db", "1990-01-15", "19900115", "4747c382bedef489a190a6797e6f4451907b86511bdd49cfa8f9d4c1a78d8bac"),
        ("db", "1990/01/15", "19900115", "4747c382bedef489a190a6797e6f4451907b86511bdd49cfa8f9d4c1a78d8bac"),
        ("db", "1990.1.15", "19900115", "4747c382bedef489a190a6797e6f4451907b86511bdd49cfa8f9d4c1a78d8bac"),
        ("db", "01/25/1990", "19900125", "6e15d24595d54256b2d9e8656a437b2266524a3fd08f3b8d812e64f31d733154"),
        ("db", "25/01/1990", "19900125", "6e15d24595d54256b2d9e8656a437b2266524a3fd08f3b8d812e64f31d733154"),
        ("db", "25.1.1990", "19900125", "6e15d24595d54256b2d9e8656a437b2266524a3fd08f3b8d812e64f31d733154"),
        ("db", "01-25-1990", "19900125", "6e15d24595d54256b2d9e8656a437b2266524a3fd08f3b8d812e64f31d733154"),
        ("db", "2/16/1997", "19970216", "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c"), // [Meta-CIP]
        ("db", "2000-02-29", "20000229", "78958c155b420adeffb55186f1ff24a0cd544a1d9577e114e7793cc45f90ae01"),
        // ct
        ("ct", "New York", "newyork", "350c754ba4d38897693aa077ef43072a859d23f613443133fecbbd90a3512ca5"),
        ("ct", "St. Louis", "stlouis", "8ba24bdf99947996f3000259be455de791b06fcc0e802ce05031030df1ee8ea3"),
        // st
        ("st", "CA", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
        ("st", " california ", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
        ("st", "New York", "ny", "1b06e2003f8420d6fa42badd8f77ec0f706b976b7a48b13c567dc5a559681683"),
        ("st", "N.Y.", "ny", "1b06e2003f8420d6fa42badd8f77ec0f706b976b7a48b13c567dc5a559681683"),
        // zp
        ("zp", "94025-1234", "94025", "b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"),
        ("zp", " 94025 ", "94025", "b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"),
        ("zp", "75018", "75018", "8dc3075ea745609c169d1c120d3fcd1c42673d16f18b423f4374e894d34a098a"),
        // country
        ("country", "US", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"), // [Meta-CIP]
        ("country", "U.S.", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
        ("country", "USA", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
        ("country", " gb ", "gb", "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677"),
        // external_id: case kept
    ];

    #[test]
    fn normalisation_table() {
        for &(key, raw, normalised, hash) in TABLE {
            assert_eq!(normalize(key, raw, 2026).as_deref(), Some(normalised), "normalize({key:?}, {raw:?}, 2026)");
            assert_eq!(sha256_hex(normalised), hash, "sha256 of {normalised:?}");
            let out = hash_user_data(&obj(json!({ key: raw })), 2026).expect("valid input");
            assert_eq!(out.fields.get(key), Some(&json!(hash)), "hash_user_data {key:?} {raw:?}");
            assert_eq!(out.keys, vec![key]);
        }
    }

    #[test]
    fn sha256_hex_is_lowercase_hex() {
        assert_eq!(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(sha256_hex("john.doe@example.com"), H_JOHN_DOE);
        assert!(is_sha256_hex(&sha256_hex("x")));
        assert!(is_sha256_hex(&H_JOHN_DOE.to_uppercase()));
        assert!(!is_sha256_hex(&H_JOHN_DOE[..63]));
        assert!(!is_sha256_hex(&format!("{H_JOHN_DOE}0")));
        assert!(!is_sha256_hex(&format!("{}g", &H_JOHN_DOE[..63])));
        assert!(!is_sha256_hex(&format!(" {}", &H_JOHN_DOE[..63])));
    }

    #[test]
    fn already_hashed_values_pass_through_lowercased() {
        let upper = H_JOHN_DOE.to_uppercase();
        for key in HASHED_KEYS {
            assert_eq!(normalize(key, H_JOHN_DOE, 2026).as_deref(), Some(H_JOHN_DOE), "{key} lower");
            assert_eq!(normalize(key, &upper, 2026).as_deref(), Some(H_JOHN_DOE), "{key} upper");
            assert_eq!(normalize(key, &format!("  {upper}\n"), 2026).as_deref(), Some(H_JOHN_DOE), "{key} padded");
            let out = hash_user_data(&obj(json!({ *key: upper })), 2026).unwrap();
            assert_eq!(out.fields.get(*key), Some(&json!(H_JOHN_DOE)), "{key}: never hashed twice");
        }
        // Meta's Parameter Builder output: digest + '.' + appendix (legacy token or 8-char appendix).
        for v in [format!("{H_JOHN_DOE}.AQ"), format!("{upper}.BA"), format!("{H_JOHN_DOE}.ABcDEFGh"), format!("{H_JOHN_DOE}.AQQC-_01")] {
            assert_eq!(normalize("em", &v, 2026).as_deref(), Some(H_JOHN_DOE), "{v}");
            assert_eq!(normalize("external_id", &v, 2026).as_deref(), Some(H_JOHN_DOE), "{v}");
        }
        // Not an appendix: normalised (lowercased) and hashed as a raw external_id.
        let odd = format!("{H_JOHN_DOE}.XYZ");
        let odd_lower = odd.to_lowercase();
        assert_eq!(normalize("external_id", &odd, 2026).as_deref(), Some(odd_lower.as_str()));
        assert_eq!(hash_user_data(&obj(json!({ "external_id": odd.clone() })), 2026).unwrap().fields["external_id"], json!(sha256_hex(&odd_lower)));
        // A 32-hex (MD5) value is passed through lower-cased, as the builder does ([PB] SHA_256_OR_MD5_REGEX).
        let md5 = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(hash_user_data(&obj(json!({ "external_id": md5 })), 2026).unwrap().fields["external_id"], json!(md5.to_lowercase()));
    }

    #[test]
    fn normalised_value_that_looks_like_hex_is_still_hashed() {
        // 64 hex characters only after normalisation (spaces removed): a name, not a digest.
        let spaced = format!("{} {}", &H_JOHN_DOE[..32], &H_JOHN_DOE[32..]);
        let out = hash_user_data(&obj(json!({ "fn": spaced })), 2026).unwrap();
        assert_eq!(out.fields["fn"], json!(sha256_hex(H_JOHN_DOE)));
    }

    #[test]
    fn unusable_values_are_dropped() {
        let cases: &[(&str, &str)] = &[
            ("em", "not-an-email"),
            ("em", "john doe@example.com"),
            ("em", "john@@example.com"),
            ("em", "john@example"),
            ("em", "john@-example.com"),
            ("em", "john..doe@example.com"),
            ("em", ".john@example.com"),
            ("em", "@example.com"),
            ("em", "josé@example.com"),
            ("em", "   "),
            ("em", ""),
            ("ph", "000000"),
            ("ph", "call me"),
            ("fn", "!!!"),
            ("ln", " - "),
            ("ge", "x"),
            ("ge", "unknown"),
            ("ge", "fem"),
            ("ge", ""),
            ("db", "2101-01-01"),
            ("db", "1990-00-10"),
            ("db", "13/13/1990"),
            ("db", "1990-01"),
            ("db", "90-01-15"),
            ("db", "yesterday"),
            ("ct", "12345"),
            ("ct", "..."),
            ("st", "12"),
            ("zp", "1"),
            ("country", "1"),
            ("external_id", "  "),
        ];
        for &(key, raw) in cases {
            assert_eq!(normalize(key, raw, 2026), None, "normalize({key:?}, {raw:?}, 2026) should be dropped");
            let out = hash_user_data(&obj(json!({ key: raw })), 2026).expect("drops are not errors");
            assert!(out.fields.is_empty() && out.keys.is_empty(), "{key:?} {raw:?} should be dropped");
        }
        assert_eq!(normalize("nope", "x", 2026), None);
        assert_eq!(normalize("em", &format!("{}@example.com", "a".repeat(1100)), 2026), None);
    }

    #[test]
    fn numbers_are_accepted_for_numeric_keys() {
        let out = hash_user_data(&obj(json!({ "ph": 16505551212u64, "db": 19900115, "zp": 94025, "external_id": 42 })), 2026).unwrap();
        assert_eq!(out.fields["ph"], json!(H_PHONE_US));
        assert_eq!(out.fields["db"], json!("4747c382bedef489a190a6797e6f4451907b86511bdd49cfa8f9d4c1a78d8bac"));
        assert_eq!(out.fields["zp"], json!("b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"));
        assert_eq!(out.fields["external_id"], json!(sha256_hex("42")));
        assert_eq!(out.keys, vec!["ph", "db", "zp", "external_id"]);
    }

    #[test]
    fn arrays_keep_order_drop_unusable_and_deduplicate() {
        let out = hash_user_data(&obj(json!({
            "em": [" John.Doe@Example.COM ", "bad", "c@d.org", "john.doe@example.com", H_JOHN_DOE.to_uppercase()],
            "ph": [16505551212u64, "+1 (650) 555-1212"],
            "fn": ["!!!"],
            "ln": [],
        })), 2026)
        .unwrap();
        assert_eq!(out.fields["em"], json!([H_JOHN_DOE, "83aa898cbf94b456c10acf04370334c908af135b3cbd608c8b8e4eb7026e8da0"]));
        // A single surviving value stays an array: the shape follows the input.
        assert_eq!(out.fields["ph"], json!([H_PHONE_US]));
        assert!(!out.fields.contains_key("fn"), "all entries unusable: key dropped");
        assert!(!out.fields.contains_key("ln"), "empty array: key dropped");
        assert_eq!(out.keys, vec!["em", "ph"]);
        let ten: Vec<String> = (0..10).map(|i| format!("u{i}@example.com")).collect();
        let out = hash_user_data(&obj(json!({ "em": ten })), 2026).unwrap();
        assert_eq!(out.fields["em"].as_array().map(Vec::len), Some(10));
    }

    #[test]
    fn full_object_in_match_key_order() {
        let out = hash_user_data(&obj(json!({
            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
            "fbc": "fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk",
            "fbp": "fb.1.1596403881668.1116446470",
            "client_ip_address": "2001:db8::1",
            "country": "US",
            "em": " John.Doe@Example.COM ",
            "ph": "",
            "lead_id": 1234567890123456u64,
            "fb_login_id": "100002345678901",
            "subscription_id": "sub_8F3k",
        })), 2026)
        .unwrap();
        assert_eq!(
            out.keys,
            vec!["em", "country", "client_ip_address", "client_user_agent", "fbc", "fbp", "subscription_id", "fb_login_id", "lead_id"]
        );
        assert_eq!(out.fields["em"], json!(H_JOHN_DOE));
        assert_eq!(out.fields["country"], json!("79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"));
        // Plain keys pass through unhashed and unaltered (fbclid case kept).
        assert_eq!(out.fields["fbc"], json!("fb.1.1554763741205.IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk"));
        assert_eq!(out.fields["client_ip_address"], json!("2001:db8::1"));
        assert_eq!(out.fields["lead_id"], json!(1234567890123456u64));
        assert_eq!(out.fields["fb_login_id"], json!("100002345678901"));
        assert!(!out.fields.contains_key("ph"), "empty string is treated as absent");
        // Every hashed key holds lowercase SHA-256 hex.
        for key in HASHED_KEYS {
            if let Some(Value::String(h)) = out.fields.get(*key) {
                assert!(is_sha256_hex(h) && h.bytes().all(|b| !b.is_ascii_uppercase()));
            }
        }
        assert!(hash_user_data(&Map::new(), 2026).unwrap().keys.is_empty());
    }

    #[test]
    fn fbp_and_fbc_shapes() {
        for v in [
            "fb.1.1596403881668.1116446470",
            "fb.0.1596403881668.1116446470",
            "fb.2.1596403881668.1116446470.ABcDEFGh",
            "fb.1.1554763741205.AbCdEfGhIjKlMnOpQrStUvWxYz1234567890",
            "fb.1.1554763741205.IwZXh0bgNhZW0BMABhZGlkAasb_aem_AbC-dEf",
            "fb.1.1554763741205.AbC.AQ",
        ] {
            assert!(valid_fbp(v) && valid_fbc(v), "{v} should be valid");
        }
        let long = format!("fb.1.1554763741205.{}", "a".repeat(481));
        assert_eq!(long.len(), 500);
        assert!(valid_fbc(&long));
        for v in [
            "",
            "fb",
            "fb.1.1554763741205",
            "fb.1.1554763741205.",
            "FB.1.1554763741205.abc",
            "fb.12.1554763741205.abc",
            "fb.x.1554763741205.abc",
            "fb.1.abc.def",
            "fb.1..abc",
            "fb.1.1554763741205.a b",
            "fb.1.1554763741205.abc\n",
            "fb.1.1554763741205.abcé",
            "fb.1.1554763741205.a..b",
            "fb.1.1554763741205.a.b.c",
            "fb.1.1554763741205.abc.",
            "fb.1.1234567890123456.abc",
        ] {
            assert!(!valid_fbp(v) && !valid_fbc(v), "{v:?} should be invalid");
        }
        assert!(!valid_fbc(&format!("{long}b")), "over 500 characters");
    }

    /// A marker carried in raw values: no error may echo it.
    const SECRET: &str = "S3cr3tVal";

    #[test]
    fn null_values_are_dropped_not_rejected() {
        // The builder drops a null ([PB] getNormalizedAndHashedPII); the event keeps its other keys.
        let out = hash_user_data(&obj(json!({ "em": null, "ph": [null, "+1 650 555 1212"], "fbp": null })), 2026).unwrap();
        assert_eq!(out.keys, vec!["ph"]);
        assert_eq!(out.fields["ph"], json!([H_PHONE_US]));
    }

    #[test]
    fn every_error_case() {
        let big = format!("{SECRET}{}", "x".repeat(1100));
        let eleven: Vec<String> = (0..11).map(|i| format!("{SECRET}{i}@example.com")).collect();
        let ua_long = format!("Mozilla/5.0 {SECRET} {}", "x".repeat(520));
        let hashed_secret = sha256_hex(SECRET);
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({ "email": format!("{SECRET}@example.com") }), "email", "unknown key"),
            (json!({ "__proto__": SECRET }), "__proto__", "unknown key"),
            (json!({ "constructor": SECRET }), "constructor", "unknown key"),
            (json!({ "EM": SECRET }), "EM", "unknown key"),
            (json!({ "em": true }), "em", "boolean"),
            (json!({ "em": { "v": SECRET } }), "em", "object"),
            (json!({ "em": [[SECRET]] }), "em", "nested arrays"),
            (json!({ "em": [{ "v": SECRET }] }), "em", "object"),
            (json!({ "em": 123 }), "em", "number"),
            (json!({ "fn": 7 }), "fn", "number"),
            (json!({ "ph": -5 }), "ph", "non-negative integer"),
            (json!({ "ph": 1.5 }), "ph", "non-negative integer"),
            (json!({ "em": eleven }), "em", "at most 10"),
            (json!({ "em": big.clone() }), "em", "1024 bytes"),
            (json!({ "fn": [big.clone()] }), "fn", "1024 bytes"),
            (json!({ "client_user_agent": big.clone() }), "client_user_agent", "1024 bytes"),
            (json!({ "client_ip_address": "203.0.113.7:443" }), "client_ip_address", "IPv4 or IPv6"),
            (json!({ "client_ip_address": "[2001:db8::1]" }), "client_ip_address", "IPv4 or IPv6"),
            (json!({ "client_ip_address": "fe80::1%eth0" }), "client_ip_address", "IPv4 or IPv6"),
            (json!({ "client_ip_address": format!("{SECRET}.example") }), "client_ip_address", "IPv4 or IPv6"),
            (json!({ "client_ip_address": "203.0.113.7.AQ" }), "client_ip_address", "IPv4 or IPv6"),
            (json!({ "client_ip_address": hashed_secret.clone() }), "client_ip_address", "unhashed"),
            (json!({ "client_ip_address": ["203.0.113.7"] }), "client_ip_address", "single value"),
            (json!({ "client_ip_address": 3405803783u64 }), "client_ip_address", "number"),
            (json!({ "client_user_agent": ua_long }), "client_user_agent", "512"),
            (json!({ "client_user_agent": format!("Mozilla/5.0 {SECRET}\u{7}") }), "client_user_agent", "control"),
            (json!({ "client_user_agent": hashed_secret.to_uppercase() }), "client_user_agent", "unhashed"),
            (json!({ "fbp": format!("fb.1.abc.{SECRET}") }), "fbp", "format"),
            (json!({ "fbc": format!("FB.1.1554763741205.{SECRET}") }), "fbc", "format"),
            (json!({ "fbc": format!("fb.1.1554763741205.{SECRET} x") }), "fbc", "format"),
            (json!({ "fbc": format!("fb.1.1554763741205.{SECRET}{}", "a".repeat(500)) }), "fbc", "format"),
            (json!({ "fbc": hashed_secret.clone() }), "fbc", "unhashed"),
            (json!({ "fbp": hashed_secret.clone() }), "fbp", "unhashed"),
            (json!({ "fbp": false }), "fbp", "boolean"),
            (json!({ "lead_id": SECRET }), "lead_id", "numeric ID"),
            (json!({ "fb_login_id": -1 }), "fb_login_id", "non-negative integer"),
            (json!({ "subscription_id": hashed_secret.clone() }), "subscription_id", "unhashed"),
            (json!({ "subscription_id": format!("{SECRET}\u{0}") }), "subscription_id", "control"),
            (json!({ "em": "a@b.com", "fbc": { "v": SECRET } }), "fbc", "object"),
        ];
        for (input, key, fragment) in cases {
            let err = hash_user_data(&obj(input.clone()), 2026).expect_err(&format!("{input} should fail"));
            assert_eq!(err.key, key, "{input}");
            let shown = err.to_string();
            let debug = format!("{err:?}");
            assert!(shown.starts_with(&format!("user_data.{key}: ")), "{shown}");
            assert!(err.message.contains(fragment), "{input}: {shown}");
            // Personal data must not reach logs: no raw value (nor any piece of one) in the error.
            for leak in [SECRET, "203.0.113.7", "2001:db8", "eth0", &hashed_secret[..16], &hashed_secret.to_uppercase()[..16], "x".repeat(30).as_str()] {
                assert!(!shown.contains(leak) && !debug.contains(leak), "{input}: error leaks {leak:?}: {debug}");
            }
        }
    }

    #[test]
    fn unknown_key_is_sanitised_in_errors() {
        let err = hash_user_data(&obj(json!({ "bad key\n\u{1b}[31m": 1 })), 2026).unwrap_err();
        assert_eq!(err.key, "bad?key???31m");
        let long = "k".repeat(100);
        let err = hash_user_data(&obj(json!({ long: 1 })), 2026).unwrap_err();
        assert_eq!(err.key.chars().count(), 41);
    }

    #[test]
    fn normalize_validates_plain_keys_without_hashing() {
        assert_eq!(normalize("client_ip_address", " 203.0.113.7 ", 2026).as_deref(), Some("203.0.113.7"));
        assert_eq!(normalize("client_ip_address", "203.0.113.7:443", 2026), None);
        assert_eq!(normalize("fbc", "fb.1.1554763741205.AbC", 2026).as_deref(), Some("fb.1.1554763741205.AbC"));
        assert_eq!(normalize("fbp", H_JOHN_DOE, 2026), None);
        assert_eq!(normalize("lead_id", "12345", 2026).as_deref(), Some("12345"));
        assert_eq!(normalize("client_user_agent", "", 2026).as_deref(), None);
    }

    #[test]
    fn tables_are_consistent() {
        // Every name maps to its own code through the substring search, i.e. no earlier name in the
        // table is contained in a later one with a different code (else the table order would be wrong).
        for table in [STATE_NAMES, COUNTRY_NAMES] {
            for (name, code) in table {
                assert_eq!(code.len(), 2);
                assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
                assert_eq!(two_letter_code(name, table).as_deref(), Some(*code), "{name}");
            }
        }
        for w in FEMALE_WORDS {
            assert!(!MALE_WORDS.contains(w), "{w} in both lists");
        }
    }

    #[test]
    fn no_panic_on_hostile_input() {
        let odd = [
            "", " ", "\u{0}", "\u{301}", "\u{301}\u{301}e\u{301}", "İSTANBUL", "ΣΊΣΥΦΟΣ", "ß", "🙂", "👨\u{200D}👩\u{200D}👧",
            "\u{202E}evil", "@", "@@", ".", "..", "-", "/", "//", "1/", "/1/", "1//1990", "99/99/9999", "4294967296-01-01",
            "99999999999999999999", "0000", "fb.", "fb..", "fb...", "fb.1.1.", "::", ":::", "1.2.3.4.5", "\u{FFFF}", "a\u{10FFFF}",
        ];
        let all_keys: Vec<&str> = HASHED_KEYS.iter().chain(PLAIN_KEYS).copied().collect();
        for key in &all_keys {
            for v in odd {
                let _ = normalize(key, v, 2026);
                let _ = hash_user_data(&obj(json!({ *key: v })), 2026);
            }
        }
        // A deterministic pseudo-random sweep over a nasty alphabet.
        let alphabet: Vec<char> = "aZ09 .-/@+()'’\u{301}\u{200B}\u{0}é정ß🙂:%[]_\t".chars().collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let len = (seed >> 59) as usize;
            let s: String = (0..len)
                .map(|i| {
                    let r = seed.rotate_left(i as u32 * 7) >> 32;
                    alphabet[(r as usize) % alphabet.len()]
                })
                .collect();
            for key in &all_keys {
                let _ = normalize(key, &s, 2026);
            }
            let _ = hash_user_data(&obj(json!({ "em": s, "ph": [s], "db": s, "fbc": s, "client_ip_address": s })), 2026);
        }
    }
}
