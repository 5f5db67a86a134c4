//! The crate's one error type. Every variant has a stable snake_case [`Error::code`] that the
//! server maps to an HTTP status; messages say what was wrong and what to do about it.
//!
//! Persistence errors never carry file contents, only what was expected and where.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the retrieval engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vector had the wrong number of components.
    #[error("vector has {got} dimensions but the index was built for {expected}")]
    DimensionMismatch { expected: usize, got: usize },

    /// A vector contained NaN or infinity, or was all zeros (it cannot be normalized).
    #[error("vector is not usable: {0}; send finite values with a non-zero norm")]
    InvalidVector(&'static str),

    /// A parameter was out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },

    /// The index is full (more than `u32::MAX - 1` slots).
    #[error("index is full ({0} slots); split the data across several indexes")]
    Capacity(usize),

    /// The index file does not exist.
    #[error("index file {0} is missing; rebuild the index from the source records")]
    FileMissing(PathBuf),

    /// The index file is not one of ours, was written by an unknown format version, is truncated,
    /// or its checksum does not match. The caller should rebuild from the source records.
    #[error("index file {path} is unusable ({reason}); rebuild the index from the source records")]
    Corrupt { path: PathBuf, reason: String },

    /// The file was written by a format version this build does not read.
    #[error(
        "index file {path} has format version {found}, this build reads {supported}; rebuild the index"
    )]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },

    /// A remote vector backend (Qdrant) failed or answered something unexpected.
    #[error("vector backend {backend}: {message}")]
    Remote { backend: &'static str, message: String },

    /// An operating-system I/O error while reading or writing an index file.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Stable machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::InvalidVector(_) => "invalid_vector",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::Capacity(_) => "index_full",
            Self::FileMissing(_) => "index_file_missing",
            Self::Corrupt { .. } => "index_file_corrupt",
            Self::UnsupportedVersion { .. } => "index_version_unsupported",
            Self::Io { .. } => "index_io",
            Self::Remote { .. } => "vector_backend_unavailable",
        }
    }

    /// True when the caller should rebuild the index from its source records
    /// (`rebuild_from`): the file is missing, corrupt or from another format version.
    #[must_use]
    pub fn needs_rebuild(&self) -> bool {
        matches!(
            self,
            Self::FileMissing(_) | Self::Corrupt { .. } | Self::UnsupportedVersion { .. }
        )
    }

    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter { name, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_distinct() {
        let all = [
            Error::DimensionMismatch { expected: 1, got: 2 },
            Error::InvalidVector("x"),
            Error::param("k", "zero"),
            Error::Capacity(1),
            Error::FileMissing(PathBuf::new()),
            Error::Corrupt { path: PathBuf::new(), reason: String::new() },
            Error::UnsupportedVersion { path: PathBuf::new(), found: 9, supported: 1 },
            Error::Io { path: PathBuf::new(), source: std::io::Error::other("x") },
            Error::Remote { backend: "qdrant", message: String::new() },
        ];
        let mut codes: Vec<_> = all.iter().map(Error::code).collect();
        assert!(codes.iter().all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_')));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert!(all[4].needs_rebuild() && all[5].needs_rebuild() && !all[0].needs_rebuild());
    }
}
