//! Identifiers: ULIDs as text, sortable by creation time and portable.

use std::fmt;

/// A fresh ULID, the primary key of every row we create.
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}

/// The tenant a request, job or event belongs to. Made only from an authenticated
/// token, an API key, or a row already read for that tenant.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Wraps an id read from a trusted source (a verified token or a stored row).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
