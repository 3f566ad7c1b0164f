//! What edgekeeper adds to accepted events beyond the browser's own data: first-party `_fbp` /
//! `_fbc` browser ids on an explicit consent grant (set as cookies on the shop's own domain, the
//! same values put into the events), and Limited Data Use flags by configuration or by the
//! visitor's US state.

use serde_json::{json, Value};

use super::intake::Accepted;
use super::normalize;
use crate::config::LduMode;

/// Meta's browser ids live 90 days (the Pixel's own cookie lifetime).
pub const COOKIE_MAX_AGE_SECS: u32 = 90 * 24 * 3600;

/// `fb.1.<ms>.<10 random digits>`, the Pixel's `_fbp` format.
pub fn new_fbp(now_ms: f64, random: f64) -> String {
    let digits = 1_000_000_000 + (random.clamp(0.0, 0.999_999_999) * 9_000_000_000.0) as u64;
    format!("fb.1.{}.{digits}", now_ms as i64)
}

/// A first-party cookie the Pixel can read: not HttpOnly, `SameSite=Lax`, 90 days, `Secure` on
/// https, on the configured domain (else the request's host).
pub fn cookie(name: &str, value: &str, secure: bool, domain: Option<&str>) -> String {
    let mut c = format!("{name}={value}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; SameSite=Lax");
    if let Some(d) = domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// On an explicit grant: the `_fbp` to set (when the browser has none) and the `_fbc` to set (when an
/// event carries a newer click), each written into the events that lack them. Returns Set-Cookie values.
pub fn first_party_ids(events: &mut [&mut Accepted], fbp_cookie: Option<&str>, now_ms: f64, random: f64, secure: bool, domain: Option<&str>) -> Vec<String> {
    let mut cookies = Vec::new();
    let fbp = match fbp_cookie.filter(|v| normalize::valid_fbp(v)) {
        Some(existing) => existing.to_string(),
        None => {
            let fresh = new_fbp(now_ms, random);
            cookies.push(cookie("_fbp", &fresh, secure, domain));
            fresh
        }
    };
    for a in events.iter_mut() {
        if !a.event.user_data.contains_key("fbp") {
            a.event.user_data.insert("fbp".into(), Value::String(fbp.clone()));
            if !a.match_keys.contains(&"fbp") {
                a.match_keys.push("fbp");
            }
        }
    }
    if let Some(fbc) = events.iter().rev().find_map(|a| a.new_fbc.clone()) {
        cookies.push(cookie("_fbc", &fbc, secure, domain));
    }
    cookies
}

/// Limited Data Use, unless the event says otherwise: `always`, or in `geo` mode for visitors in a
/// listed US state (California: country 1, state 1000; elsewhere 0/0, so Meta geolocates).
pub fn apply_ldu(a: &mut Accepted, mode: &LduMode, country: Option<&str>, region: Option<&str>) {
    if a.event.data_processing_options.is_some() {
        return;
    }
    let (country_code, state_code) = match mode {
        LduMode::Off => return,
        LduMode::Always => (0, 0),
        LduMode::Geo(states) => {
            let in_us = country.is_some_and(|c| c.eq_ignore_ascii_case("US"));
            let region = region.unwrap_or("").to_ascii_uppercase();
            if !in_us || !states.contains(&region) {
                return;
            }
            if region == "CA" {
                (1, 1000)
            } else {
                (0, 0)
            }
        }
    };
    a.event.data_processing_options = Some(vec!["LDU".into()]);
    a.event.data_processing_options_country = Some(country_code);
    a.event.data_processing_options_state = Some(state_code);
}

/// What a dry run answers for one event: its hashed `user_data` and the keys present.
pub fn dry_run_view(a: &Accepted) -> Value {
    json!({ "event_id": a.event.event_id, "event_name": a.event.event_name, "user_data": a.event.user_data, "match_keys": a.match_keys, "data_processing_options": a.event.data_processing_options })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::intake::ServerEvent;

    fn accepted(new_fbc: Option<&str>) -> Accepted {
        Accepted {
            event: ServerEvent {
                event_name: "PageView".into(),
                event_id: "1".into(),
                event_time: 1,
                event_source_url: None,
                action_source: "website".into(),
                user_data: Default::default(),
                custom_data: None,
                data_processing_options: None,
                data_processing_options_country: None,
                data_processing_options_state: None,
                opt_out: None,
                referrer_url: None,
            },
            match_keys: vec![],
            new_fbc: new_fbc.map(str::to_string),
        }
    }

    #[test]
    fn fbp_has_the_pixel_format() {
        let v = new_fbp(1_764_000_000_123.0, 0.5);
        assert_eq!(v, "fb.1.1764000000123.5500000000");
        assert!(normalize::valid_fbp(&v));
        assert_eq!(new_fbp(1.0, 0.0).rsplit('.').next().unwrap().len(), 10);
        assert_eq!(new_fbp(1.0, 0.999_999_999_9).rsplit('.').next().unwrap().len(), 10);
    }

    #[test]
    fn cookies_carry_the_pixel_attributes() {
        assert_eq!(cookie("_fbp", "v", true, Some(".shop.example")), "_fbp=v; Path=/; Max-Age=7776000; SameSite=Lax; Domain=.shop.example; Secure");
        let plain = cookie("_fbp", "v", false, None);
        assert!(!plain.contains("Secure") && !plain.contains("HttpOnly") && !plain.contains("Domain"));
    }

    #[test]
    fn first_party_ids_fill_the_events_and_keep_an_existing_fbp() {
        let mut evs = [accepted(Some("fb.1.5.AbC")), accepted(None)];
        let set = first_party_ids(&mut evs.iter_mut().collect::<Vec<_>>(), None, 10.0, 0.25, false, None);
        assert_eq!(set.len(), 2);
        assert!(set[0].starts_with("_fbp=fb.1.10.") && set[1].starts_with("_fbc=fb.1.5.AbC;"));
        assert_eq!(evs[0].event.user_data["fbp"], evs[1].event.user_data["fbp"]);
        assert!(evs[1].match_keys.contains(&"fbp"));
        let mut evs = [accepted(None)];
        let set = first_party_ids(&mut evs.iter_mut().collect::<Vec<_>>(), Some("fb.1.1596403881668.1116446470"), 10.0, 0.25, false, None);
        assert!(set.is_empty(), "nothing to set");
        assert_eq!(evs[0].event.user_data["fbp"], "fb.1.1596403881668.1116446470");
        // The Parameter Builder's appendix is part of the browser's id: kept, never re-minted.
        let mut evs = [accepted(None)];
        let set = first_party_ids(&mut evs.iter_mut().collect::<Vec<_>>(), Some("fb.1.1700000000000.1234567890.BQ"), 10.0, 0.25, false, None);
        assert!(set.is_empty(), "{set:?}");
        assert_eq!(evs[0].event.user_data["fbp"], "fb.1.1700000000000.1234567890.BQ");
    }

    #[test]
    fn ldu_by_mode_and_state_and_explicit_values_win() {
        let geo = LduMode::Geo(vec!["CA".into(), "TX".into()]);
        let mut ca = accepted(None);
        apply_ldu(&mut ca, &geo, Some("US"), Some("CA"));
        assert_eq!((ca.event.data_processing_options.clone(), ca.event.data_processing_options_country, ca.event.data_processing_options_state), (Some(vec!["LDU".into()]), Some(1), Some(1000)));
        let mut tx = accepted(None);
        apply_ldu(&mut tx, &geo, Some("US"), Some("tx"));
        assert_eq!((tx.event.data_processing_options_country, tx.event.data_processing_options_state), (Some(0), Some(0)));
        let mut de = accepted(None);
        apply_ldu(&mut de, &geo, Some("DE"), Some("BE"));
        assert_eq!(de.event.data_processing_options, None);
        let mut explicit = accepted(None);
        explicit.event.data_processing_options = Some(vec![]);
        apply_ldu(&mut explicit, &LduMode::Always, None, None);
        assert_eq!(explicit.event.data_processing_options, Some(vec![]));
        let mut always = accepted(None);
        apply_ldu(&mut always, &LduMode::Always, None, None);
        assert_eq!(always.event.data_processing_options_state, Some(0));
    }
}
