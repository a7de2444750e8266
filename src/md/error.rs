//! Typed errors of the `md` module. Every reader error names the file (its display
//! name), where in it (flag, line, entry) and what was expected.

use thiserror::Error;

/// Everything that can go wrong reading AMBER/PDB input or building a force field.
#[derive(Debug, Error)]
pub enum MdError {
    /// The file could not be read at all.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A `%FLAG` section the reader needs is absent.
    #[error("{file}: missing %FLAG {flag} (required for {needed_for})")]
    MissingFlag {
        file: String,
        flag: String,
        needed_for: &'static str,
    },
    /// A field could not be parsed as the type its `%FORMAT` (or the file format) demands.
    #[error("{file}: line {line}, {context}: expected {expected}, found {found:?}")]
    BadValue {
        file: String,
        line: usize,
        context: String,
        expected: &'static str,
        found: String,
    },
    /// A section holds the wrong number of entries.
    #[error("{file}: {context}: expected {expected} entries, found {found}")]
    WrongCount {
        file: String,
        context: String,
        expected: usize,
        found: usize,
    },
    /// A structural problem (bad `%FORMAT`, data before any flag, index out of range ...).
    #[error("{file}: line {line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    /// Values that parse but are inconsistent (an atom index past NATOM, a zero 1-4 scale).
    #[error("{file}: {context}: {message}")]
    Invalid {
        file: String,
        context: String,
        message: String,
    },
    /// A force field was asked for something its topology does not provide.
    #[error("force field: {0}")]
    ForceField(String),
}

impl MdError {
    /// Shorthand for [`MdError::Invalid`].
    pub fn invalid(file: &str, context: impl Into<String>, message: impl Into<String>) -> Self {
        MdError::Invalid {
            file: file.to_string(),
            context: context.into(),
            message: message.into(),
        }
    }
}
