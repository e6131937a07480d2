//! The error of every parser of names, ids and ARNs: the one type at the bottom of the
//! crate that both the store and the AWS value types use, so neither depends on the other.

/// Why a name, id or ARN was refused; the message says what was wrong and what would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);
