//! Blob storage of the kai node: immutable, content-addressed objects named by the BLAKE3 digest
//! of their bytes.
//!
//! - [`staging`]: an upload is streamed into a temporary file while it is hashed and counted,
//!   never buffered whole; a size limit stops it early. The staged file is what a backend stores.
//! - [`BlobStore`]: the backend trait. [`fs::FsBlobStore`] (default) keeps objects under a
//!   directory with atomic renames and fsync before `put` returns; [`s3::S3BlobStore`] speaks
//!   S3's REST API, signed with SigV4 ([`s3::sigv4`], hand-written over `reqwest`).
//! - `fake_s3` (feature `fake-s3`): a real HTTP server speaking S3's wire format and verifying
//!   every signature, for tests.
//!
//! This crate stores bytes; it knows nothing about artifact names, owners or versions (the
//! artifact service in `kai-runtime` keeps those in the database).

#[cfg(feature = "fake-s3")]
pub mod fake_s3;
pub mod fs;
pub mod s3;
pub mod staging;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
pub use kai_core::library::Digest;

pub use staging::{StageError, Staged, Staging, StagingWriter};

/// A stream of an object's bytes.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// An inclusive byte range of an object, already checked against its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Never true for a checked range; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such blob")]
    NotFound,
    /// The range starts beyond the object's end.
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    #[error("blob storage I/O failed: {0}")]
    Io(String),
    /// The remote store answered with an error (S3 error code and message, no secrets).
    #[error("the object store answered {status} {code}: {message}")]
    Remote { status: u16, code: String, message: String },
    /// The remote store cannot be reached.
    #[error("the object store is unreachable: {0}")]
    Unreachable(String),
    /// Credentials for the remote store are missing (e.g. the vault is sealed).
    #[error("object store credentials unavailable: {0}")]
    Credentials(String),
}

impl BlobError {
    /// Stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "blob_not_found",
            Self::InvalidRange => "range_not_satisfiable",
            Self::Io(_) => "blob_io",
            Self::Remote { .. } => "object_store_error",
            Self::Unreachable(_) => "object_store_unreachable",
            Self::Credentials(_) => "object_store_credentials",
        }
    }
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound
        } else {
            Self::Io(e.to_string())
        }
    }
}

/// Result alias for blob calls.
pub type BlobResult<T> = Result<T, BlobError>;

/// Content-addressed object storage. Objects are immutable: the same digest always names the
/// same bytes, so a second `put` of a stored digest stores nothing.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// `"fs"` or `"s3"`.
    fn backend(&self) -> &'static str;
    /// Stores a staged upload under its digest. `Ok(true)`: stored now; `Ok(false)`: the
    /// object already existed (deduplicated). Either way the staged file is consumed, and an
    /// `Ok` means the object is durable.
    async fn put(&self, staged: Staged) -> BlobResult<bool>;
    /// The object's size, or `None` when it is not stored.
    async fn size(&self, digest: &Digest) -> BlobResult<Option<u64>>;
    /// The object's bytes, or only `range` of them.
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> BlobResult<ByteStream>;
    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, digest: &Digest) -> BlobResult<()>;
    /// Up to `limit` objects in digest order, after `after`.
    async fn list(&self, after: Option<Digest>, limit: usize) -> BlobResult<Vec<BlobInfo>>;
}

/// Parses one `Range: bytes=…` header value against an object of `size` bytes (RFC 9110
/// §14.1.2). `Ok(None)`: serve the whole object (no header, several ranges, or a form we do not
/// honour, which the RFC permits us to ignore). `Err(())`: unsatisfiable (answer 416).
#[allow(clippy::result_unit_err)]
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>, ()> {
    let Some(value) = header else { return Ok(None) };
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) if digits(last) => {
            let n: u64 = last.parse().map_err(|_| ())?;
            if n == 0 || size == 0 {
                return Err(());
            }
            Ok(Some(ByteRange { start: size.saturating_sub(n), end: size - 1 }))
        }
        // bytes=A- and bytes=A-B.
        (false, _) if digits(first) && (last.is_empty() || digits(last)) => {
            let start: u64 = first.parse().map_err(|_| ())?;
            let end = if last.is_empty() { u64::MAX } else { last.parse().unwrap_or(u64::MAX) };
            if end < start {
                return Ok(None);
            }
            if start >= size {
                return Err(());
            }
            Ok(Some(ByteRange { start, end: end.min(size - 1) }))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s: &str, size| parse_range(Some(s), size);
        assert_eq!(r("bytes=0-9", 100), Ok(Some(ByteRange { start: 0, end: 9 })));
        assert_eq!(r("bytes=90-", 100), Ok(Some(ByteRange { start: 90, end: 99 })));
        assert_eq!(r("bytes=90-1000", 100), Ok(Some(ByteRange { start: 90, end: 99 })));
        assert_eq!(r("bytes=-10", 100), Ok(Some(ByteRange { start: 90, end: 99 })));
        assert_eq!(r("bytes=-1000", 100), Ok(Some(ByteRange { start: 0, end: 99 })));
        assert_eq!(r("bytes=100-", 100), Err(()));
        assert_eq!(r("bytes=-0", 100), Err(()));
        assert_eq!(r("bytes=0-0", 0), Err(()));
        assert_eq!(r("bytes=5-1", 100), Ok(None), "invalid: ignored");
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None), "several ranges: whole object");
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=x-1", 100), Ok(None));
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(ByteRange { start: 3, end: 3 }.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn parsed_ranges_lie_inside_the_object(a in 0u64..300, b in 0u64..300, size in 0u64..200) {
            for h in [format!("bytes={a}-{b}"), format!("bytes={a}-"), format!("bytes=-{b}")] {
                if let Ok(Some(r)) = parse_range(Some(&h), size) {
                    proptest::prop_assert!(r.start <= r.end && r.end < size);
                }
            }
        }
    }
}
