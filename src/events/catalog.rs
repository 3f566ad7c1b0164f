//! The event catalog: the one list of event names the worker accepts and forwards. `/collect`
//! validates against it and the Zaraz sync derives its triggers from it, so the two cannot drift.

/// Meta's standard events (Conversions API "Standard Events").
pub const STANDARD_EVENTS: &[&str] = &[
    "PageView",
    "ViewContent",
    "Search",
    "AddToCart",
    "AddToWishlist",
    "InitiateCheckout",
    "AddPaymentInfo",
    "Purchase",
    "Lead",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Donate",
    "FindLocation",
    "Schedule",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    custom: Vec<String>,
}

/// A custom event name: letters, digits and `_`, starting with a letter, at most 40 characters.
pub fn valid_custom_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && name.len() <= 40 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Catalog {
    /// `custom` are the configured custom event names (`CUSTOM_EVENTS`), already validated.
    pub fn new(custom: Vec<String>) -> Catalog {
        Catalog { custom: custom.into_iter().filter(|c| !STANDARD_EVENTS.contains(&c.as_str())).collect() }
    }

    pub fn contains(&self, name: &str) -> bool {
        STANDARD_EVENTS.contains(&name) || self.custom.iter().any(|c| c == name)
    }

    pub fn is_standard(name: &str) -> bool {
        STANDARD_EVENTS.contains(&name)
    }

    /// Every event name, standard first, in a stable order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        STANDARD_EVENTS.iter().copied().chain(self.custom.iter().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_custom_names() {
        let c = Catalog::new(vec!["NewsletterOpen".into(), "Purchase".into()]);
        assert!(c.contains("Purchase") && c.contains("NewsletterOpen"));
        assert!(!c.contains("purchase"), "names are case-sensitive, as Meta's are");
        assert!(!c.contains("Unknown"));
        assert_eq!(c.names().filter(|n| *n == "Purchase").count(), 1, "no duplicates");
        assert_eq!(c.names().last(), Some("NewsletterOpen"));
    }

    #[test]
    fn custom_name_rules() {
        assert!(valid_custom_name("Quiz_Done2"));
        for bad in ["", "2fast", "has space", "a-b", &"x".repeat(41), "<script>"] {
            assert!(!valid_custom_name(bad), "{bad}");
        }
    }
}
