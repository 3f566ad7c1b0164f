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
//! # Rules, per key (and where they come from)
//! Common to every hashed key: the value is trimmed (Unicode whitespace); empty → dropped. A value that
//! already is 64 hex digits is taken as a SHA-256 digest, lowercased and passed through, never hashed
//! twice ([SDK-node] `SHA256_REGEX`, [SDK-php] `Util::isHashed`, [PB] `SHA_256_OR_MD5_REGEX`). A digest
//! with the Parameter Builder's appendix (`<64 hex>.<2-char language token | 8-char appendix>`, [PB]
//! `isAlreadyNormalizedAndHashedByParamBuilder`, [Meta-PBL]) is recognised too, and its bare digest is
//! passed through, so a browser that pre-hashes with Meta's client library is not hashed twice. (MD5
//! digests, which the SDKs also pass through, are not: a 32-hex value is hashed like any other.)
//!
//! - `em`: lowercase; must match Meta's RFC 2822 approximation ([PB] `emailUtil.js` `EMAIL_RE`, same as
//!   [SDK-node] `normalizeEmail`): dot-atoms of `[a-z0-9_!#$%&'*+/=?^`{|}~-]` @ two or more DNS labels
//!   of `[a-z0-9-]` not starting or ending with `-`; plus RFC 5321 lengths (local ≤ 64, total ≤ 254).
//!   ASCII only, as in Meta's regex: internationalised addresses are dropped. [Meta-CIP]: "Trim any
//!   leading and trailing spaces. Convert all characters to lowercase."
//! - `ph`: keep ASCII digits only, then strip every leading zero ([PB] `phoneUtil.js`; [Meta-CIP]:
//!   "Remove symbols, letters, and any leading zeros"); keep 7..=15 digits, else dropped ([SDK-node]
//!   `normalizePhone` length check; E.164 allows at most 15). The country code cannot be invented:
//!   a national number without it (`020 7946 0958`) is hashed as given and will simply not match.
//! - `fn`, `ln`: Unicode lowercase, then remove whitespace and punctuation; letters of every script,
//!   accents and digits are kept ([PB] `getNormalizedName`: lowercase + strip whitespace and ASCII
//!   punctuation; [Meta-CIP]: "Lowercase only with no punctuation. If using special characters, the
//!   text must be encoded in UTF-8", examples `Valéry` → `valéry`, `정` → `정`). Where the SDK differs
//!   from a plain "letters only" rule we follow it: digits stay. Beyond the SDK we also remove the
//!   typographic forms of the same punctuation (’ ‘ “ ” ‐ – — ʼ · « » ¿ ¡ ・ and the General
//!   Punctuation block), invisible format characters (ZWSP, BOM, soft hyphen, bidi marks) and control
//!   characters, so that `O’Brien` typed on a phone hashes like `O'Brien`; and we compose the common
//!   Latin decomposed accents (`e` + U+0301 → `é`), because `é` and `e`+◌́ hash differently and
//!   Meta's examples are precomposed. A value with no letter left is dropped.
//! - `ge`: lowercase, letters only, then Meta's word lists ([PB] `genderUtil.js`: `f`, `female`,
//!   `woman`, `mrs`, ... → `f`; `m`, `male`, `man`, `mr`, ... → `m`); anything else is dropped.
//!   Deliberately NOT "first letter": `mrs`, `miss`, `mother`, `mujer` start with `m` but are female.
//! - `db`: → `YYYYMMDD`, a real calendar date (leap years checked) with 1900 ≤ year ≤ 2100. Accepted:
//!   `YYYYMMDD`; year first `YYYY-MM-DD` (HTML `<input type=date>` value, ISO 8601), `YYYY/MM/DD`,
//!   `YYYY.MM.DD`; year last `MM/DD/YYYY`, `DD/MM/YYYY`, `DD.MM.YYYY`, `MM-DD-YYYY` (one or two digits
//!   for month and day; one separator kind per value). [Meta-CIP] accepts "a range of month, day and
//!   year combinations, with or without punctuation" (example `2/16/1997` → `19970216`), and [PB]
//!   `dobUtil.js` guesses month-first when both leading numbers are ≤ 12. We never guess: a year-last
//!   date is accepted only when it is unambiguous (one of the two leading numbers is > 12, or both are
//!   equal); `03/04/1990` is dropped rather than risk hashing the wrong date.
//! - `ct`: Unicode lowercase; remove whitespace, punctuation (as for names) and digits of any script;
//!   letters of every script kept (`São Paulo` → `sãopaulo`). [Meta-CIP]: "Lowercase only with no
//!   punctuation, no special characters, and no spaces. If using special characters, the text must be
//!   encoded in UTF-8"; [SDK-node] `normalizeCity` and [SDK-php] `normalizeCity` remove digits,
//!   whitespace and `.()-` and keep other letters. ([PB] `getNormalizedCity` now strips every
//!   non-ASCII letter, which would turn `São Paulo` into `sopaulo`; we keep UTF-8 as [Meta-CIP] allows.)
//! - `st`: cleaned like `ct`; then a full US state / DC / US territory / Canadian province name maps to
//!   its 2-letter code (`New York` → `ny`, `Québec` → `qc`), as [Meta-CIP] asks ("Use the 2-character
//!   ANSI abbreviation code in lowercase") and [PB] `getNormalizedState` does (exact names only, not
//!   [PB]'s substring search). Other states are kept whole ([Meta-CIP]: "Normalize states outside the
//!   U.S. in lowercase with no punctuation, no special characters, and no spaces"; [PB] truncates them
//!   to two characters, which we do not).
//! - `zp`: lowercase; remove whitespace and dashes; a 9-digit numeric code is a US ZIP+4 (no other
//!   country uses 9 digits) and keeps its first 5 digits (`94025-1234` → `94025`). The result must be
//!   2..=10 ASCII letters/digits, else dropped. [Meta-CIP]: "Use lowercase with no spaces and no dash.
//!   Use only the first 5 digits for U.S. zip codes. Use the area, district, and sector format for the
//!   UK" (example `m11ae`, so `SW1A 1AA` → `sw1a1aa`). ([SDK-node]/[SDK-php]/[PB] keep only the part
//!   before the first `-`, which would cut `100-0001` (Japan) to `100`; [Meta-CIP] says remove dashes.)
//! - `country`: lowercase, ASCII letters only, must be an assigned ISO 3166-1 alpha-2 code
//!   ([SDK-node] checks the code list; [SDK-php] checks for 2 letters). Two aliases are mapped as [PB]
//!   does for `usa`: `usa` → `us`, and `uk` (ISO's exceptionally reserved code) → `gb`.
//! - `external_id`: trimmed, otherwise kept exactly as given, case included, then hashed ([Meta-CIP]:
//!   "Hashing recommended"; "If an External ID is being sent via other channels, it should be in the
//!   same format as when sent via the Conversions API"). Advertisers' IDs are often case-sensitive
//!   (base64, mixed-case tokens), and lowercasing could merge two users. NOTE: Meta's SDKs lowercase it
//!   ([SDK-node] `normalizeAndHash` lowercases every field; [PB] `getNormalizedExternalID` lowercases
//!   and removes all whitespace), and so does the Pixel when it hashes `external_id`: a site whose IDs
//!   contain capitals and that also sends them through the Pixel gets different hashes on the two
//!   channels. Sites that need parity should send lowercase IDs, or pre-hash them.
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
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
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
pub fn normalize(key: &str, raw: &str) -> Option<String> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    if let Some(hashed_key) = HASHED_KEYS.iter().find(|k| **k == key) {
        return match normalize_hashed(hashed_key, raw)? {
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
pub fn hash_user_data(input: &Map<String, Value>) -> Result<HashedUserData, UserDataError> {
    if let Some(unknown) = input.keys().find(|k| !HASHED_KEYS.contains(&k.as_str()) && !PLAIN_KEYS.contains(&k.as_str())) {
        return Err(UserDataError::new(unknown, "unknown key: not a customer information parameter edgekeeper accepts"));
    }
    let mut fields = Map::new();
    let mut keys = Vec::new();
    for &key in HASHED_KEYS {
        if let Some(value) = input.get(key) {
            if let Some(hashed) = hash_field(key, value)? {
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

fn hash_field(key: &'static str, value: &Value) -> Result<Option<Value>, UserDataError> {
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
                let text = scalar_text(key, item)?;
                if let Some(h) = hash_one(key, &text) {
                    if !hashes.contains(&h) {
                        hashes.push(h);
                    }
                }
            }
            Ok((!hashes.is_empty()).then(|| Value::Array(hashes.into_iter().map(Value::String).collect())))
        }
        other => {
            let text = scalar_text(key, other)?;
            Ok(hash_one(key, &text).map(Value::String))
        }
    }
}

fn hash_one(key: &str, text: &str) -> Option<String> {
    match normalize_hashed(key, text)? {
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
        Value::Null => Err(UserDataError::new(key, "null is not allowed; omit the key instead")),
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
// Per-key normalisers. Each takes the raw text and returns None for an unusable value.

fn normalize_hashed(key: &str, raw: &str) -> Option<Normalized> {
    if raw.len() > MAX_VALUE_BYTES {
        return None;
    }
    let v = raw.trim();
    if v.is_empty() {
        return None;
    }
    if let Some(digest) = already_hashed(v) {
        return Some(Normalized::Digest(digest));
    }
    let plain = match key {
        "em" => normalize_email(v),
        "ph" => normalize_phone(v),
        "fn" | "ln" => normalize_name(v),
        "ge" => normalize_gender(v),
        "db" => normalize_birth_date(v),
        "ct" => normalize_city(v),
        "st" => normalize_state(v),
        "zp" => normalize_zip(v),
        "country" => normalize_country(v),
        "external_id" => Some(v.to_string()),
        _ => None,
    }?;
    Some(Normalized::Plain(plain))
}

/// Legacy 2-character appendices of the Parameter Builder: the SDK language token ([PB] `Constants.js`
/// `SUPPORTED_PARAM_BUILDER_LANGUAGES_TOKEN`).
const PB_LANGUAGE_TOKENS: &[&str] = &["AQ", "Ag", "Aw", "BA", "BQ", "Bg"];

/// The lowercase digest when `v` already is a SHA-256 digest, bare or with a Parameter Builder
/// appendix (8 base64url characters, or a legacy 2-character language token).
fn already_hashed(v: &str) -> Option<String> {
    if is_sha256_hex(v) {
        return Some(v.to_ascii_lowercase());
    }
    let (digest, appendix) = v.rsplit_once('.')?;
    let appendix_ok = match appendix.len() {
        2 => PB_LANGUAGE_TOKENS.contains(&appendix),
        8 => appendix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        _ => false,
    };
    (appendix_ok && is_sha256_hex(digest)).then(|| digest.to_ascii_lowercase())
}

fn normalize_email(v: &str) -> Option<String> {
    let email = v.to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"_!#$%&'*+/=?^`{|}~-".contains(&b);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let domain_ok = labels.len() >= 2 && labels.iter().all(label_ok);
    (local_ok && domain_ok && email.len() <= 254).then_some(email)
}

fn normalize_phone(v: &str) -> Option<String> {
    let digits: String = v.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0');
    (7..=15).contains(&significant.len()).then(|| significant.to_string())
}

fn normalize_name(v: &str) -> Option<String> {
    let lower = compose_latin(&v.to_lowercase());
    let name: String = lower.chars().filter(|&c| !is_separator_or_punctuation(c)).collect();
    name.chars().any(char::is_alphabetic).then_some(name)
}

fn normalize_city(v: &str) -> Option<String> {
    let lower = compose_latin(&v.to_lowercase());
    let city: String = lower.chars().filter(|&c| !is_separator_or_punctuation(c) && !c.is_numeric()).collect();
    city.chars().any(char::is_alphabetic).then_some(city)
}

fn normalize_state(v: &str) -> Option<String> {
    let cleaned = normalize_city(v)?;
    match STATE_CODES.iter().find(|(name, _)| *name == cleaned) {
        Some((_, code)) => Some((*code).to_string()),
        None => Some(cleaned),
    }
}

fn normalize_zip(v: &str) -> Option<String> {
    let zip: String = v.to_lowercase().chars().filter(|&c| !c.is_whitespace() && !is_dash(c)).collect();
    if !zip.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let zip = if zip.len() == 9 && zip.bytes().all(|b| b.is_ascii_digit()) { zip.get(..5)?.to_string() } else { zip };
    (2..=10).contains(&zip.len()).then_some(zip)
}

fn normalize_country(v: &str) -> Option<String> {
    let letters: String = v.to_lowercase().chars().filter(char::is_ascii_lowercase).collect();
    let code = match letters.as_str() {
        "usa" => "us".to_string(),
        "uk" => "gb".to_string(),
        _ => letters,
    };
    ISO_3166_ALPHA2.binary_search(&code.as_str()).is_ok().then_some(code)
}

fn normalize_gender(v: &str) -> Option<String> {
    let word: String = v.to_lowercase().chars().filter(|c| c.is_alphabetic()).collect();
    if FEMALE_WORDS.contains(&word.as_str()) {
        Some("f".to_string())
    } else if MALE_WORDS.contains(&word.as_str()) {
        Some("m".to_string())
    } else {
        None
    }
}

fn normalize_birth_date(v: &str) -> Option<String> {
    let (year, month, day) = parse_birth_date(v)?;
    let valid = (1900..=2100).contains(&year) && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
    valid.then(|| format!("{year:04}{month:02}{day:02}"))
}

/// (year, month, day) from one of the accepted layouts, before range checks.
fn parse_birth_date(v: &str) -> Option<(u32, u32, u32)> {
    let number = |s: &str, lens: std::ops::RangeInclusive<usize>| -> Option<u32> {
        (lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
    };
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some((number(v.get(0..4)?, 4..=4)?, number(v.get(4..6)?, 2..=2)?, number(v.get(6..8)?, 2..=2)?));
    }
    let separator = v.chars().find(|c| !c.is_ascii_digit())?;
    if !matches!(separator, '-' | '/' | '.') {
        return None;
    }
    let parts: Vec<&str> = v.split(separator).collect();
    let [first, second, third] = parts.as_slice() else {
        return None;
    };
    if first.len() == 4 {
        // Year first: always year-month-day.
        return Some((number(first, 4..=4)?, number(second, 1..=2)?, number(third, 1..=2)?));
    }
    // Year last: month-day (US) or day-month; only when the order is evident.
    let a = number(first, 1..=2)?;
    let b = number(second, 1..=2)?;
    let year = number(third, 4..=4)?;
    if a == b || (a <= 12 && b > 12) {
        Some((year, a, b))
    } else if a > 12 && b <= 12 {
        Some((year, b, a))
    } else {
        None
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------------
// Character classes

/// Whitespace, punctuation and invisible characters removed from names, cities and states.
fn is_separator_or_punctuation(c: char) -> bool {
    c.is_whitespace() || c.is_control() || c.is_ascii_punctuation() || is_unicode_punctuation(c) || is_invisible_format(c)
}

/// Non-ASCII punctuation common in names and places: typographic apostrophes, quotes and dashes.
fn is_unicode_punctuation(c: char) -> bool {
    matches!(c,
        '\u{00A1}' | '\u{00A7}' | '\u{00AB}' | '\u{00B6}' | '\u{00B7}' | '\u{00BB}' | '\u{00BF}' // ¡ § « ¶ · » ¿
        | '\u{02BC}' // ʼ modifier letter apostrophe
        | '\u{2010}'..='\u{2027}' // hyphens, dashes, quotes, bullets, ellipsis
        | '\u{2030}'..='\u{205E}' // per mille, primes, angle quotes, other general punctuation
        | '\u{3001}'..='\u{3003}' | '\u{3008}'..='\u{3011}' | '\u{30FB}' // CJK comma/stop, brackets, katakana middle dot
        | '\u{FF01}'..='\u{FF0F}' | '\u{FF1A}'..='\u{FF20}' | '\u{FF3B}'..='\u{FF40}' | '\u{FF5B}'..='\u{FF65}' // full-width ASCII punctuation
    )
}

/// Invisible format characters: soft hyphen, zero-width space, LRM/RLM, bidi embeddings and
/// isolates, word joiner, BOM. (ZWNJ/ZWJ are kept: they are part of the spelling in several scripts.)
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

fn is_dash(c: char) -> bool {
    matches!(c, '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' | '\u{FF0D}')
}

/// Composes the common decomposed Latin letters (lowercase base + combining accent) into their
/// precomposed form, i.e. a small NFC for the accents of European names and places. Other sequences
/// are left as they are (a full NFC needs the Unicode tables; no dependency for that here).
fn compose_latin(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if let Some(composed) = out.chars().next_back().and_then(|base| compose_pair(base, c)) {
            out.pop();
            out.push(composed);
        } else {
            out.push(c);
        }
    }
    out
}

fn compose_pair(base: char, mark: char) -> Option<char> {
    Some(match (base, mark) {
        ('a', '\u{300}') => 'à',
        ('e', '\u{300}') => 'è',
        ('i', '\u{300}') => 'ì',
        ('o', '\u{300}') => 'ò',
        ('u', '\u{300}') => 'ù',
        ('a', '\u{301}') => 'á',
        ('e', '\u{301}') => 'é',
        ('i', '\u{301}') => 'í',
        ('o', '\u{301}') => 'ó',
        ('u', '\u{301}') => 'ú',
        ('y', '\u{301}') => 'ý',
        ('c', '\u{301}') => 'ć',
        ('n', '\u{301}') => 'ń',
        ('s', '\u{301}') => 'ś',
        ('z', '\u{301}') => 'ź',
        ('a', '\u{302}') => 'â',
        ('e', '\u{302}') => 'ê',
        ('i', '\u{302}') => 'î',
        ('o', '\u{302}') => 'ô',
        ('u', '\u{302}') => 'û',
        ('a', '\u{303}') => 'ã',
        ('o', '\u{303}') => 'õ',
        ('n', '\u{303}') => 'ñ',
        ('a', '\u{308}') => 'ä',
        ('e', '\u{308}') => 'ë',
        ('i', '\u{308}') => 'ï',
        ('o', '\u{308}') => 'ö',
        ('u', '\u{308}') => 'ü',
        ('y', '\u{308}') => 'ÿ',
        ('a', '\u{30A}') => 'å',
        ('u', '\u{30A}') => 'ů',
        ('c', '\u{30C}') => 'č',
        ('d', '\u{30C}') => 'ď',
        ('e', '\u{30C}') => 'ě',
        ('n', '\u{30C}') => 'ň',
        ('r', '\u{30C}') => 'ř',
        ('s', '\u{30C}') => 'š',
        ('t', '\u{30C}') => 'ť',
        ('z', '\u{30C}') => 'ž',
        ('c', '\u{327}') => 'ç',
        ('s', '\u{327}') => 'ş',
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------------
// Tables

/// [PB] `genderUtil.js` word lists (`ma'am` appears as `maam`: punctuation is removed first).
const FEMALE_WORDS: &[&str] = &[
    "f", "female", "woman", "girl", "lady", "miss", "ms", "mrs", "madam", "maam", "daughter", "mother", "mom", "mama",
    "mommy", "aunt", "niece", "sister", "wife", "girlfriend", "bride", "widow", "queen", "princess", "duchess",
    "countess", "empress", "goddess", "maiden", "lass", "gal", "chick", "dame", "belle", "she", "her", "hers", "herself",
];
const MALE_WORDS: &[&str] = &[
    "m", "male", "man", "boy", "gentleman", "guy", "sir", "mister", "mr", "son", "father", "dad", "daddy", "papa",
    "uncle", "nephew", "brother", "husband", "boyfriend", "groom", "widower", "king", "prince", "duke", "count",
    "emperor", "god", "lord", "lad", "fellow", "chap", "bloke", "dude", "he", "him", "his", "himself",
];

/// Full names (normalised like `st`) of US states, DC, US territories and Canadian provinces and
/// territories → their 2-letter ANSI / Canada Post code ([PB] `stringUtil.js` `STATE_MAPPINGS`, plus
/// DC, the five inhabited US territories and the accented `québec`).
const STATE_CODES: &[(&str, &str)] = &[
    ("alabama", "al"), ("alaska", "ak"), ("arizona", "az"), ("arkansas", "ar"), ("california", "ca"),
    ("colorado", "co"), ("connecticut", "ct"), ("delaware", "de"), ("florida", "fl"), ("georgia", "ga"),
    ("hawaii", "hi"), ("idaho", "id"), ("illinois", "il"), ("indiana", "in"), ("iowa", "ia"), ("kansas", "ks"),
    ("kentucky", "ky"), ("louisiana", "la"), ("maine", "me"), ("maryland", "md"), ("massachusetts", "ma"),
    ("michigan", "mi"), ("minnesota", "mn"), ("mississippi", "ms"), ("missouri", "mo"), ("montana", "mt"),
    ("nebraska", "ne"), ("nevada", "nv"), ("newhampshire", "nh"), ("newjersey", "nj"), ("newmexico", "nm"),
    ("newyork", "ny"), ("northcarolina", "nc"), ("northdakota", "nd"), ("ohio", "oh"), ("oklahoma", "ok"),
    ("oregon", "or"), ("pennsylvania", "pa"), ("rhodeisland", "ri"), ("southcarolina", "sc"),
    ("southdakota", "sd"), ("tennessee", "tn"), ("texas", "tx"), ("utah", "ut"), ("vermont", "vt"),
    ("virginia", "va"), ("washington", "wa"), ("westvirginia", "wv"), ("wisconsin", "wi"), ("wyoming", "wy"),
    ("districtofcolumbia", "dc"), ("washingtondc", "dc"), ("puertorico", "pr"), ("guam", "gu"),
    ("americansamoa", "as"), ("northernmarianaislands", "mp"), ("usvirginislands", "vi"),
    ("ontario", "on"), ("quebec", "qc"), ("québec", "qc"), ("britishcolumbia", "bc"), ("alberta", "ab"),
    ("saskatchewan", "sk"), ("manitoba", "mb"), ("novascotia", "ns"), ("newbrunswick", "nb"),
    ("princeedwardisland", "pe"), ("newfoundlandandlabrador", "nl"), ("yukon", "yt"),
    ("northwestterritories", "nt"), ("nunavut", "nu"),
];

/// ISO 3166-1 alpha-2 codes officially assigned (249), lowercase, sorted (Debian `iso-codes` 4.15,
/// `iso_3166-1.json`; unchanged by ISO since 2014).
const ISO_3166_ALPHA2: &[&str] = &[
    "ad", "ae", "af", "ag", "ai", "al", "am", "ao", "aq", "ar", "as", "at", "au", "aw", "ax", "az", "ba", "bb", "bd", "be",
    "bf", "bg", "bh", "bi", "bj", "bl", "bm", "bn", "bo", "bq", "br", "bs", "bt", "bv", "bw", "by", "bz", "ca", "cc", "cd",
    "cf", "cg", "ch", "ci", "ck", "cl", "cm", "cn", "co", "cr", "cu", "cv", "cw", "cx", "cy", "cz", "de", "dj", "dk", "dm",
    "do", "dz", "ec", "ee", "eg", "eh", "er", "es", "et", "fi", "fj", "fk", "fm", "fo", "fr", "ga", "gb", "gd", "ge", "gf",
    "gg", "gh", "gi", "gl", "gm", "gn", "gp", "gq", "gr", "gs", "gt", "gu", "gw", "gy", "hk", "hm", "hn", "hr", "ht", "hu",
    "id", "ie", "il", "im", "in", "io", "iq", "ir", "is", "it", "je", "jm", "jo", "jp", "ke", "kg", "kh", "ki", "km", "kn",
    "kp", "kr", "kw", "ky", "kz", "la", "lb", "lc", "li", "lk", "lr", "ls", "lt", "lu", "lv", "ly", "ma", "mc", "md", "me",
    "mf", "mg", "mh", "mk", "ml", "mm", "mn", "mo", "mp", "mq", "mr", "ms", "mt", "mu", "mv", "mw", "mx", "my", "mz", "na",
    "nc", "ne", "nf", "ng", "ni", "nl", "no", "np", "nr", "nu", "nz", "om", "pa", "pe", "pf", "pg", "ph", "pk", "pl", "pm",
    "pn", "pr", "ps", "pt", "pw", "py", "qa", "re", "ro", "rs", "ru", "rw", "sa", "sb", "sc", "sd", "se", "sg", "sh", "si",
    "sj", "sk", "sl", "sm", "sn", "so", "sr", "ss", "st", "sv", "sx", "sy", "sz", "tc", "td", "tf", "tg", "th", "tj", "tk",
    "tl", "tm", "tn", "to", "tr", "tt", "tv", "tw", "tz", "ua", "ug", "um", "us", "uy", "uz", "va", "vc", "ve", "vg", "vi",
    "vn", "vu", "wf", "ws", "ye", "yt", "za", "zm", "zw",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        ("fn", "E\u{301}lodie", "élodie", "36bac2631d17463d569eaf1b869e7bf8d40e4636fd8b2b778ee93f504baf6691"),
        ("fn", "Mary", "mary", "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec"), // [Meta-CIP]
        ("fn", "Valéry", "valéry", "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"), // [Meta-CIP]
        ("fn", "정", "정", "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14"), // [Meta-CIP]
        ("fn", "Jean-Luc", "jeanluc", "7fef38066db9900f992fa9926eea8cc648f44c2af50c4d511c415422196c8ef5"),
        ("fn", "Anna\u{00A0}Maria", "annamaria", "fec6939d9150326486c4f459b966d7a4effccb4e125ead017da8ecde375379f0"),
        ("ln", "O'Brien", "obrien", "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba"),
        ("ln", "O\u{2019}Brien", "obrien", "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba"),
        ("ln", "Müller-Lüdenscheidt", "müllerlüdenscheidt", "5d111567d02391abb8602b6a6498465eb1edf98eb6ba46fa5bd2f2d69351a514"),
        ("ln", "\u{200B}Mu\u{308}ller\u{FEFF}\u{2013}Lüdenscheidt", "müllerlüdenscheidt", "5d111567d02391abb8602b6a6498465eb1edf98eb6ba46fa5bd2f2d69351a514"),
        // ge
        ("ge", "Female", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
        ("ge", "Woman", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
        ("ge", "Mrs.", "f", "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"),
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
        ("ct", "São Paulo", "sãopaulo", "3eda1428ae1aece064071f8d40f08fe2bc59ffa66c171a163caf15122ec4d7f0"),
        ("ct", "Sa\u{303}o Paulo", "sãopaulo", "3eda1428ae1aece064071f8d40f08fe2bc59ffa66c171a163caf15122ec4d7f0"),
        ("ct", "St. Louis", "stlouis", "8ba24bdf99947996f3000259be455de791b06fcc0e802ce05031030df1ee8ea3"),
        ("ct", "Zürich 8001", "zürich", "201f10d5d64518d86d2d3a47d28675d1c788762c5345df643dadec71d4e0a91e"),
        // st
        ("st", "CA", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
        ("st", " california ", "ca", "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"),
        ("st", "New York", "ny", "1b06e2003f8420d6fa42badd8f77ec0f706b976b7a48b13c567dc5a559681683"),
        ("st", "N.Y.", "ny", "1b06e2003f8420d6fa42badd8f77ec0f706b976b7a48b13c567dc5a559681683"),
        ("st", "District of Columbia", "dc", "abecdf3503635c0be9eca61cddf5b25c7f8380d5aae7d73d0f62e9a38c87b70d"),
        ("st", "Québec", "qc", "997164d13810adf6cab52541447d083c4472e5ca6052cc6ddd9501318ac5730c"),
        ("st", "Bavaria", "bavaria", "542e2cb66b44892896ac725b78dca7bb155db1280f9974b5cf07db1d483ba327"),
        // zp
        ("zp", "94025-1234", "94025", "b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"),
        ("zp", "940251234", "94025", "b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"),
        ("zp", " 94025 ", "94025", "b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7"),
        ("zp", "SW1A 1AA", "sw1a1aa", "830e1d4b9838bab1f5c2acdb23e0b502ff13a9832c4632e8d67a1d43d3b7f614"),
        ("zp", "M1 1AE", "m11ae", "1dc694c2070e697769fb959b50671d76cafd430d8ca191fbdd0affcaea344ac5"), // [Meta-CIP] m11ae
        ("zp", "75018", "75018", "8dc3075ea745609c169d1c120d3fcd1c42673d16f18b423f4374e894d34a098a"),
        // country
        ("country", "US", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"), // [Meta-CIP]
        ("country", "U.S.", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
        ("country", "USA", "us", "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"),
        ("country", " gb ", "gb", "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677"),
        ("country", "UK", "gb", "0b407281768f0e833afef47ed464b6571d01ca4d53c12ce5c51d1462f4ad6677"),
        // external_id: case kept
        ("external_id", " User-123 ", "User-123", "9fd04ee71c44e21cddbd6c9eab81e2d21324f0ace8ec10cbb929b3390625fc9e"),
    ];

    #[test]
    fn normalisation_table() {
        for &(key, raw, normalised, hash) in TABLE {
            assert_eq!(normalize(key, raw).as_deref(), Some(normalised), "normalize({key:?}, {raw:?})");
            assert_eq!(sha256_hex(normalised), hash, "sha256 of {normalised:?}");
            let out = hash_user_data(&obj(json!({ key: raw }))).expect("valid input");
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
            assert_eq!(normalize(key, H_JOHN_DOE).as_deref(), Some(H_JOHN_DOE), "{key} lower");
            assert_eq!(normalize(key, &upper).as_deref(), Some(H_JOHN_DOE), "{key} upper");
            assert_eq!(normalize(key, &format!("  {upper}\n")).as_deref(), Some(H_JOHN_DOE), "{key} padded");
            let out = hash_user_data(&obj(json!({ *key: upper }))).unwrap();
            assert_eq!(out.fields.get(*key), Some(&json!(H_JOHN_DOE)), "{key}: never hashed twice");
        }
        // Meta's Parameter Builder output: digest + '.' + appendix (legacy token or 8-char appendix).
        for v in [format!("{H_JOHN_DOE}.AQ"), format!("{upper}.BA"), format!("{H_JOHN_DOE}.ABcDEFGh"), format!("{H_JOHN_DOE}.AQQC-_01")] {
            assert_eq!(normalize("em", &v).as_deref(), Some(H_JOHN_DOE), "{v}");
            assert_eq!(normalize("external_id", &v).as_deref(), Some(H_JOHN_DOE), "{v}");
        }
        // Not an appendix: hashed as a raw external_id.
        let odd = format!("{H_JOHN_DOE}.XYZ");
        assert_eq!(normalize("external_id", &odd).as_deref(), Some(odd.as_str()));
        assert_eq!(hash_user_data(&obj(json!({ "external_id": odd.clone() }))).unwrap().fields["external_id"], json!(sha256_hex(&odd)));
        // A 32-hex (MD5-shaped) value is not passed through: it is hashed.
        let md5ish = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(hash_user_data(&obj(json!({ "external_id": md5ish }))).unwrap().fields["external_id"], json!(sha256_hex(md5ish)));
    }

    #[test]
    fn normalised_value_that_looks_like_hex_is_still_hashed() {
        // 64 hex characters only after normalisation (spaces removed): a name, not a digest.
        let spaced = format!("{} {}", &H_JOHN_DOE[..32], &H_JOHN_DOE[32..]);
        let out = hash_user_data(&obj(json!({ "fn": spaced }))).unwrap();
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
            ("ph", "12345"),
            ("ph", "1234567890123456"),
            ("ph", "000000"),
            ("ph", "call me"),
            ("fn", "!!!"),
            ("fn", "123"),
            ("fn", "\u{200B}\u{FEFF}"),
            ("ln", " - "),
            ("ge", "x"),
            ("ge", "unknown"),
            ("ge", "fem"),
            ("ge", ""),
            ("db", "1899-12-31"),
            ("db", "2101-01-01"),
            ("db", "1990-02-30"),
            ("db", "1900-02-29"),
            ("db", "1990-13-01"),
            ("db", "1990-00-10"),
            ("db", "19900230"),
            ("db", "03/04/1990"),
            ("db", "13/13/1990"),
            ("db", "1990-01"),
            ("db", "1990-01/15"),
            ("db", "1990 01 15"),
            ("db", "90-01-15"),
            ("db", "01251990"),
            ("db", "yesterday"),
            ("ct", "12345"),
            ("ct", "..."),
            ("st", "12"),
            ("zp", "1"),
            ("zp", "!!"),
            ("zp", "12345678901"),
            ("zp", "75 018 é"),
            ("country", "xx"),
            ("country", "deu"),
            ("country", "Germany"),
            ("country", "1"),
            ("external_id", "  "),
        ];
        for &(key, raw) in cases {
            assert_eq!(normalize(key, raw), None, "normalize({key:?}, {raw:?}) should be dropped");
            let out = hash_user_data(&obj(json!({ key: raw }))).expect("drops are not errors");
            assert!(out.fields.is_empty() && out.keys.is_empty(), "{key:?} {raw:?} should be dropped");
        }
        assert_eq!(normalize("nope", "x"), None);
        assert_eq!(normalize("em", &format!("{}@example.com", "a".repeat(1100))), None);
    }

    #[test]
    fn numbers_are_accepted_for_numeric_keys() {
        let out = hash_user_data(&obj(json!({ "ph": 16505551212u64, "db": 19900115, "zp": 94025, "external_id": 42 }))).unwrap();
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
        })))
        .unwrap();
        assert_eq!(out.fields["em"], json!([H_JOHN_DOE, "83aa898cbf94b456c10acf04370334c908af135b3cbd608c8b8e4eb7026e8da0"]));
        // A single surviving value stays an array: the shape follows the input.
        assert_eq!(out.fields["ph"], json!([H_PHONE_US]));
        assert!(!out.fields.contains_key("fn"), "all entries unusable: key dropped");
        assert!(!out.fields.contains_key("ln"), "empty array: key dropped");
        assert_eq!(out.keys, vec!["em", "ph"]);
        let ten: Vec<String> = (0..10).map(|i| format!("u{i}@example.com")).collect();
        let out = hash_user_data(&obj(json!({ "em": ten }))).unwrap();
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
        })))
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
        assert!(hash_user_data(&Map::new()).unwrap().keys.is_empty());
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
            (json!({ "em": null }), "em", "null"),
            (json!({ "em": [[SECRET]] }), "em", "nested arrays"),
            (json!({ "em": [format!("{SECRET}@example.com"), null] }), "em", "null"),
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
            (json!({ "subscription_id": null }), "subscription_id", "null"),
            (json!({ "em": "a@b.com", "fbc": { "v": SECRET } }), "fbc", "object"),
        ];
        for (input, key, fragment) in cases {
            let err = hash_user_data(&obj(input.clone())).expect_err(&format!("{input} should fail"));
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
        let err = hash_user_data(&obj(json!({ "bad key\n\u{1b}[31m": 1 }))).unwrap_err();
        assert_eq!(err.key, "bad?key???31m");
        let long = "k".repeat(100);
        let err = hash_user_data(&obj(json!({ long: 1 }))).unwrap_err();
        assert_eq!(err.key.chars().count(), 41);
    }

    #[test]
    fn normalize_validates_plain_keys_without_hashing() {
        assert_eq!(normalize("client_ip_address", " 203.0.113.7 ").as_deref(), Some("203.0.113.7"));
        assert_eq!(normalize("client_ip_address", "203.0.113.7:443"), None);
        assert_eq!(normalize("fbc", "fb.1.1554763741205.AbC").as_deref(), Some("fb.1.1554763741205.AbC"));
        assert_eq!(normalize("fbp", H_JOHN_DOE), None);
        assert_eq!(normalize("lead_id", "12345").as_deref(), Some("12345"));
        assert_eq!(normalize("client_user_agent", "").as_deref(), None);
    }

    #[test]
    fn tables_are_consistent() {
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]), "ISO_3166_ALPHA2 must be sorted");
        assert_eq!(ISO_3166_ALPHA2.len(), 249);
        for (name, code) in STATE_CODES {
            assert_eq!(normalize("st", name).as_deref(), Some(*code), "{name}");
            assert_eq!(code.len(), 2);
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
                let _ = normalize(key, v);
                let _ = hash_user_data(&obj(json!({ *key: v })));
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
                let _ = normalize(key, &s);
            }
            let _ = hash_user_data(&obj(json!({ "em": s, "ph": [s], "db": s, "fbc": s, "client_ip_address": s })));
        }
    }
}
