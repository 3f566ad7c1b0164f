//! Graph API versions and when Meta retires them. A Conversions API call to an expired version
//! fails, so `/health` warns ahead of the date: `META_API_VERSION` is a setting nobody revisits.
//! Pure date arithmetic, no clock: the caller passes now.

/// Expiry dates (UTC) of the Marketing API versions, from Meta's Marketing API changelog,
/// "Versions": https://developers.facebook.com/docs/marketing-api/marketing-api-changelog/versions
/// v26.0 and v27.0 had no announced expiry when this table was written: unknown counts as not
/// expiring. Add a row when Meta announces one: (major version, date, days since 1970-01-01; a
/// native test checks the days against the date, so the worker carries no calendar code).
const EXPIRY: &[(u32, &str, i64)] =
    &[(21, "2025-09-09", 20_340), (22, "2026-02-19", 20_503), (23, "2026-06-09", 20_613), (24, "2026-11-10", 20_767), (25, "2027-02-23", 20_872)];

/// How far ahead `/health` warns.
pub const WARN_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Currency {
    /// No announced expiry, or more than [`WARN_DAYS`] away.
    Current,
    Expiring { date: &'static str, days_left: i64 },
    Expired { date: &'static str },
}

/// Where `version` (`vNN.N`) stands at `now_ms`. A version older than the table's first row
/// expired no later than that row did, so it is reported expired with that date.
pub fn currency(version: &str, now_ms: f64) -> Currency {
    let major = version.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(u32::MAX);
    let Some(&(_, date, day)) = EXPIRY.iter().find(|(v, ..)| *v >= major) else { return Currency::Current };
    let left = day - (now_ms / 86_400_000.0).floor() as i64;
    match left {
        l if l <= 0 => Currency::Expired { date },
        l if l <= WARN_DAYS => Currency::Expiring { date, days_left: l },
        _ => Currency::Current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
    fn days(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
    }

    /// Unix ms of a UTC date at noon.
    fn at(y: i64, m: i64, d: i64) -> f64 {
        (days(y, m, d) * 86_400_000 + 43_200_000) as f64
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days(1970, 1, 1), 0);
        assert_eq!(days(2000, 3, 1), 11_017);
        assert_eq!(days(2026, 12, 3), 20_790);
        for (_, date, day) in EXPIRY {
            let p: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
            assert_eq!(days(p[0], p[1], p[2]), *day, "{date}");
        }
    }

    #[test]
    fn versions_warn_within_90_days_and_expire_on_their_date() {
        let now = at(2026, 12, 3);
        assert_eq!(currency("v25.0", now), Currency::Expiring { date: "2027-02-23", days_left: 82 });
        assert_eq!(currency("v21.0", now), Currency::Expired { date: "2025-09-09" });
        assert_eq!(currency("v24.0", now), Currency::Expired { date: "2026-11-10" });
        assert_eq!(currency("v19.0", now), Currency::Expired { date: "2025-09-09" }, "older than the table");
        for v in ["v26.0", "v27.0", "v99.0"] {
            assert_eq!(currency(v, now), Currency::Current, "{v}");
        }
        assert_eq!(currency("v25.0", at(2026, 11, 24)), Currency::Current, "91 days ahead");
        assert_eq!(currency("v25.0", at(2026, 11, 25)), Currency::Expiring { date: "2027-02-23", days_left: 90 });
        assert_eq!(currency("v25.0", at(2027, 2, 23)), Currency::Expired { date: "2027-02-23" });
    }

    #[test]
    fn the_default_version_is_current() {
        assert_eq!(currency(crate::config::DEFAULT_META_API_VERSION, at(2026, 12, 3)), Currency::Current);
    }
}
