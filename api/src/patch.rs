//! `Patch<T>`: a field of an update, which the client may leave out (keep),
//! set to null (clear), or set.

/// One field of an update.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// Left out: keep the current value.
    #[default]
    Keep,
    /// Explicit null: clear it.
    Clear,
    /// A new value.
    Set(T),
}

impl<T> Patch<T> {
    /// The value after applying the patch to `current`.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }

    /// The new value, if one is set.
    pub fn as_set(&self) -> Option<&T> {
        match self {
            Self::Set(v) => Some(v),
            _ => None,
        }
    }

    /// True when the client left it out.
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

impl<T> From<async_graphql::MaybeUndefined<T>> for Patch<T> {
    fn from(value: async_graphql::MaybeUndefined<T>) -> Self {
        match value {
            async_graphql::MaybeUndefined::Undefined => Self::Keep,
            async_graphql::MaybeUndefined::Null => Self::Clear,
            async_graphql::MaybeUndefined::Value(v) => Self::Set(v),
        }
    }
}
