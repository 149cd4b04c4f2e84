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
    /// Trims, lower-cases and checks the shape `local@domain.tld` (no spaces, one `@`,
    /// a dot in the domain, no empty labels).
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
        let bad_char = |c: char| {
            c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | ',' | ';' | '"')
        };
        if local.is_empty()
            || local.len() > 64
            || local.chars().any(bad_char)
            || domain.chars().any(bad_char)
            || !domain.contains('.')
            || domain.split('.').any(str::is_empty)
        {
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
}
