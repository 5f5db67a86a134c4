//! Staging uploads: bytes are written to a temporary file in the staging directory while they
//! are hashed (BLAKE3) and counted, so an upload of any size needs a bounded amount of memory
//! (one 1 MiB buffer). Writing past the limit fails at once; the caller stops reading. A staged
//! file is fsynced before it is handed to a backend, and deleted when dropped unless a backend
//! took it.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use kai_core::library::Digest;
use tempfile::NamedTempFile;

/// Bytes buffered before one write to the temporary file.
const FLUSH_AT: usize = 1024 * 1024;
/// Bytes of the start of an upload kept in memory for type sniffing.
pub const HEAD_BYTES: usize = 8192;
/// Prefix of staging files (leftovers of a crash are removed by [`Staging::new`]).
const PREFIX: &str = "upload-";

/// Why staging failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The upload passed `limit` bytes; nothing was kept.
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot write the staging file: {0}")]
    Io(#[from] std::io::Error),
}

/// The staging directory.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// Uses (and creates) `dir`, removing staging files a crash left behind.
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(PREFIX) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A writer for one upload of at most `limit` bytes.
    pub fn writer(&self, limit: u64) -> std::io::Result<StagingWriter> {
        let file = tempfile::Builder::new().prefix(PREFIX).tempfile_in(&self.dir)?;
        Ok(StagingWriter {
            inner: Some((file, blake3::Hasher::new(), Vec::with_capacity(FLUSH_AT))),
            len: 0,
            limit,
            head: Vec::new(),
        })
    }

    /// Stages `bytes` in one call (small contents, tests).
    pub async fn stage_bytes(&self, bytes: &[u8]) -> Result<Staged, StageError> {
        let mut w = self.writer(bytes.len() as u64)?;
        w.write(bytes).await?;
        w.finish().await
    }
}

/// Writes one upload to its staging file.
pub struct StagingWriter {
    /// The file, the running hash and the write buffer; `None` only while a flush runs.
    inner: Option<(NamedTempFile, blake3::Hasher, Vec<u8>)>,
    len: u64,
    limit: u64,
    head: Vec<u8>,
}

fn lost() -> StageError {
    StageError::Io(std::io::Error::other("staging writer used after a failed flush"))
}

impl StagingWriter {
    /// Bytes accepted so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `chunk`; `TooLarge` (and nothing written) when it would pass the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), StageError> {
        if self.len.saturating_add(chunk.len() as u64) > self.limit {
            return Err(StageError::TooLarge { limit: self.limit });
        }
        if self.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.len += chunk.len() as u64;
        let buf = &mut self.inner.as_mut().ok_or_else(lost)?.2;
        buf.extend_from_slice(chunk);
        if buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes and hashes the buffer off the async threads.
    async fn flush(&mut self) -> Result<(), StageError> {
        let (mut file, mut hasher, mut buf) = self.inner.take().ok_or_else(lost)?;
        let done = tokio::task::spawn_blocking(move || {
            file.write_all(&buf)?;
            hasher.update(&buf);
            buf.clear();
            Ok::<_, std::io::Error>((file, hasher, buf))
        })
        .await
        .map_err(|e| StageError::Io(std::io::Error::other(e.to_string())))??;
        self.inner = Some(done);
        Ok(())
    }

    /// Flushes, fsyncs and returns the staged upload with its digest.
    pub async fn finish(mut self) -> Result<Staged, StageError> {
        self.flush().await?;
        let (file, hasher, _) = self.inner.take().ok_or_else(lost)?;
        let file = tokio::task::spawn_blocking(move || {
            file.as_file().sync_all()?;
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(|e| StageError::Io(std::io::Error::other(e.to_string())))??;
        Ok(Staged {
            digest: Digest(*hasher.finalize().as_bytes()),
            size: self.len,
            head: std::mem::take(&mut self.head),
            file,
        })
    }
}

/// A complete, fsynced upload waiting to be stored. Dropping it deletes the file.
#[derive(Debug)]
pub struct Staged {
    pub digest: Digest,
    pub size: u64,
    /// The first [`HEAD_BYTES`] bytes (for type sniffing and previews).
    pub head: Vec<u8>,
    file: NamedTempFile,
}

impl Staged {
    /// Where the bytes are.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The temporary file (for a backend that moves it into place).
    pub fn into_file(self) -> NamedTempFile {
        self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_while_writing_and_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path().join("tmp")).unwrap();
        let data: Vec<u8> = (0..3 * FLUSH_AT + 17).map(|i| (i % 251) as u8).collect();
        let mut w = staging.writer(data.len() as u64).unwrap();
        for chunk in data.chunks(10_000) {
            w.write(chunk).await.unwrap();
        }
        let staged = w.finish().await.unwrap();
        assert_eq!(staged.digest.0, *blake3::hash(&data).as_bytes());
        assert_eq!(staged.size, data.len() as u64);
        assert_eq!(staged.head, data[..HEAD_BYTES]);
        assert_eq!(std::fs::read(staged.path()).unwrap(), data);
        let path = staged.path().to_owned();
        drop(staged);
        assert!(!path.exists(), "a dropped staged upload leaves no file");

        let mut w = staging.writer(100).unwrap();
        w.write(&[0; 60]).await.unwrap();
        assert!(matches!(w.write(&[0; 41]).await, Err(StageError::TooLarge { limit: 100 })));
        assert_eq!(w.len(), 60);
        drop(w);
        assert_eq!(std::fs::read_dir(staging.dir()).unwrap().count(), 0);
    }

    #[test]
    fn leftovers_of_a_crash_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("upload-abc"), b"half").unwrap();
        std::fs::write(dir.path().join("keep.txt"), b"x").unwrap();
        Staging::new(dir.path()).unwrap();
        assert!(!dir.path().join("upload-abc").exists());
        assert!(dir.path().join("keep.txt").exists());
    }
}
