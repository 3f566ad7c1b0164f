//! ISO 4217 currency codes: the check behind `custom_data.currency` (Meta needs a currency with every
//! `value`, and requires one for `Purchase`).
//!
//! Source: ISO 4217 List One ("current currency & funds"), maintained by SIX Financial Information
//! for ISO (https://www.six-group.com/en/products-services/financial-information/data-standards.html,
//! `list-one.xls`), the edition in force from 2026-01-01. Recent amendments reflected here, checked
//! against that file and the changelog of the `rust_iso4217` crate (github.com/rust-iso/rust_iso4217,
//! CHANGELOG 0.1.2):
//! - added `ZWG` (Zimbabwe Gold, replaces `ZWL`), `XCG` (Caribbean Guilder, replaces `ANG` from
//!   2025-03-31), `XAD` (Arab Accounting Dinar, amendment 179);
//! - withdrawn: `HRK` (2023, euro), `SLL` (redenominated to `SLE`), `ZWL`, `ANG`, `CUC`, and `BGN`
//!   (Bulgaria joined the euro on 2026-01-01).
//!
//! When ISO publishes an amendment, update `ACTIVE` (kept sorted; a test checks the order).

/// True for an active ISO 4217 alphabetic code, exactly as ISO lists it (uppercase). Case-sensitive:
/// callers uppercase first, so `usd` is false.
///
/// Included: every code of List One — national currencies, the fund codes (`BOV`, `CHE`, `CHW`,
/// `CLF`, `COU`, `MXV`, `USN`, `UYI`, `UYW`, `XAD`), the supranational units (`XDR`, `XSU`, `XUA`,
/// `XBA`..`XBD`) and the precious metals (`XAU`, `XAG`, `XPT`, `XPD`) — except two:
/// - `XXX` ("transactions where no currency is involved") and
/// - `XTS` ("reserved for testing"),
///
/// which are in the ISO list but can never be the currency of a purchase or lead `value`: an event
/// that carries them is a bug or a test we do not want to forward to Meta. (Whether Meta's ads
/// reporting supports a given valid code, e.g. `XAU`, is Meta's decision, not this check's.)
pub fn is_iso4217(code: &str) -> bool {
    code.len() == 3 && ACTIVE.binary_search(&code).is_ok()
}

/// ISO 4217 List One alphabetic codes in force from 2026-01-01, minus `XTS` and `XXX` (see
/// [`is_iso4217`]). 176 codes, sorted.
const ACTIVE: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF", "BMD", "BND",
    "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY",
    "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP",
    "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD",
    "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
    "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
    "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD",
    "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX",
    "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAD", "XAF", "XAG", "XAU", "XBA",
    "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XUA", "YER", "ZAR", "ZMW", "ZWG",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_uppercase_and_complete() {
        assert_eq!(ACTIVE.len(), 176);
        assert!(ACTIVE.windows(2).all(|w| w[0] < w[1]), "ACTIVE must be sorted and unique");
        assert!(ACTIVE.iter().all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
    }

    #[test]
    fn common_codes_are_valid() {
        for code in [
            "USD", "EUR", "GBP", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "RON", "BRL", "INR", "CNY",
            "ZAR", "AED", "SAR", "AUD", "NZD", "CAD", "MXN", "KRW", "TRY", "ILS", "SGD", "HKD", "TWD", "THB", "IDR",
            "KWD", "BHD", "CLP", "UYU", "VES", "VED", "SLE", "ZWG", "XCG", "XAF", "XOF", "XPF", "XCD",
        ] {
            assert!(is_iso4217(code), "{code} should be valid");
        }
    }

    #[test]
    fn funds_metals_and_special_units_are_valid() {
        for code in ["BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "UYI", "UYW", "XAD", "XDR", "XSU", "XUA", "XAU", "XAG"] {
            assert!(is_iso4217(code), "{code} should be valid");
        }
    }

    #[test]
    fn lowercase_and_mixed_case_are_rejected() {
        for code in ["usd", "Usd", "eUR", "gbp"] {
            assert!(!is_iso4217(code), "{code} must be rejected: callers uppercase first");
        }
    }

    #[test]
    fn no_currency_and_testing_codes_are_rejected() {
        assert!(!is_iso4217("XXX"));
        assert!(!is_iso4217("XTS"));
    }

    #[test]
    fn withdrawn_codes_are_rejected() {
        for code in ["HRK", "SLL", "ZWL", "ANG", "CUC", "BGN", "LTL", "LVL", "EEK", "DEM", "FRF", "VEF", "MRO", "STD", "BYR", "ZMK"] {
            assert!(!is_iso4217(code), "{code} is withdrawn");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for code in ["ABC", "", "US", "USDD", " USD", "USD ", "U$D", "123", "ÜSD", "\u{0}US", "BTC", "USDT"] {
            assert!(!is_iso4217(code), "{code:?} must be rejected");
        }
    }
}
