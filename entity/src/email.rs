//! `Email`: the identity of a contact (S1), trimmed and lower-cased.

use std::fmt;

/// Why a string is not an e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but spaces.
    #[error("is empty")]
    Empty,
    /// Longer than 254 characters.
    #[error("is longer than 254 characters")]
    TooLong,
    /// Not `local@domain.tld`.
    #[error("is not an e-mail address (expected name@domain.tld)")]
    Malformed,
}

/// An e-mail address, trimmed and compared case-insensitively: the stored form is lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks the shape `local@domain.tld`: no spaces,
    /// one `@`, a local part of at most 64 characters with no dot at either
    /// end and no two dots in a row, and a domain of at least two labels, each
    /// 1 to 63 characters that neither start nor end with a hyphen. Plus tags,
    /// apostrophes, subdomains and punycode (`xn--`) labels pass, as real
    /// addresses use them.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.len() > 254 {
            return Err(EmailError::TooLong);
        }
        let lower = trimmed.to_lowercase();
        let (local, domain) = lower.split_once('@').ok_or(EmailError::Malformed)?;
        if !local_part_ok(local) || !domain_ok(domain) {
            return Err(EmailError::Malformed);
        }
        Ok(Self(lower))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised address, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A character no part of an address may hold.
fn bad_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | ',' | ';' | '"')
}

/// The local part: 1 to 64 characters; dots only between other characters
/// (RFC 5321's dot-atom), since mail servers refuse `.a@` and `a..b@`.
fn local_part_ok(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.chars().any(bad_char)
        && local.split('.').all(|atom| !atom.is_empty())
}

/// The domain: two labels or more, each 1 to 63 characters, none starting or
/// ending with a hyphen (RFC 1035's host names), so that the address can be
/// resolved at all.
fn domain_ok(domain: &str) -> bool {
    domain.contains('.')
        && !domain.chars().any(bad_char)
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lower_cases() {
        assert_eq!(
            Email::parse("  Jean.Dupont@Example.COM ").unwrap().as_str(),
            "jean.dupont@example.com"
        );
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for bad in [
            "",
            "   ",
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "@b.com",
            "a@.com",
            "a@b..com",
            "a@b.com.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn refuses_dots_at_the_ends_or_doubled_in_the_local_part() {
        for bad in [".a@c.com", "a.@c.com", "a..b@c.com", ".@c.com"] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn refuses_domain_labels_with_edge_hyphens_or_too_long() {
        let long_label = format!("a@{}.com", "b".repeat(64));
        for bad in ["a@-c.com", "a@c-.com", "a@c.-com", "a@c.com-", &long_label] {
            assert_eq!(Email::parse(bad), Err(EmailError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn refuses_an_address_longer_than_254() {
        let long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(long.len() > 254);
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
    }

    #[test]
    fn accepts_what_real_addresses_use() {
        let label63 = format!("a@{}.com", "b".repeat(63));
        for good in [
            "jean+news@example.com",
            "o'brien@example.ie",
            "first.last@mail.sub.example.co.uk",
            "a@xn--bcher-kva.example",
            "a-b_c@my-company.com",
            "x@1.2.3.example",
            &label63,
        ] {
            assert!(Email::parse(good).is_ok(), "{good:?} refused");
        }
    }
}
