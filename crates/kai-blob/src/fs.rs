//! The local filesystem backend (default): objects are files `<root>/<first two hex>/<hex>`.
//! A staged upload is renamed into place (atomic), and the rename and any new directory are
//! fsynced before `put` returns, so an acknowledged object survives a crash or power loss.
//! Paths are built from digests only; no name a client chose ever reaches the filesystem.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures::StreamExt as _;

use crate::{BlobError, BlobInfo, BlobResult, BlobStore, ByteRange, ByteStream, Digest, Staged};

/// Bytes per read when streaming an object out.
const READ_CHUNK: usize = 256 * 1024;

/// Objects under a directory.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> BlobResult<T> + Send + 'static,
) -> BlobResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| BlobError::Io(e.to_string()))?
}

impl FsBlobStore {
    /// Objects under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Where the object with this digest lives.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        let hex = digest.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }
}

/// Moves `staged` to `dest` atomically, copying first when the staging directory is on
/// another filesystem.
fn place(staged: Staged, dest: &Path, dir: &Path) -> std::io::Result<()> {
    match staged.into_file().persist(dest) {
        Ok(_) => Ok(()),
        Err(e) if e.error.kind() == std::io::ErrorKind::CrossesDevices => {
            let mut copy = tempfile::Builder::new().prefix(".incoming-").tempfile_in(dir)?;
            let mut from = e.file.reopen()?;
            std::io::copy(&mut from, copy.as_file_mut())?;
            copy.as_file().sync_all()?;
            copy.persist(dest).map(|_| ()).map_err(|e| e.error)
        }
        Err(e) => Err(e.error),
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn backend(&self) -> &'static str {
        "fs"
    }

    async fn put(&self, staged: Staged) -> BlobResult<bool> {
        let dest = self.path_of(&staged.digest);
        let root = self.root.clone();
        blocking(move || {
            if dest.is_file() {
                return Ok(false);
            }
            let dir = dest.parent().unwrap_or(&root).to_owned();
            if !dir.is_dir() {
                match std::fs::create_dir(&dir) {
                    Ok(()) => fsync_dir(&root)?,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            place(staged, &dest, &dir)?;
            fsync_dir(&dir)?;
            Ok(true)
        })
        .await
    }

    async fn size(&self, digest: &Digest) -> BlobResult<Option<u64>> {
        match tokio::fs::metadata(self.path_of(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> BlobResult<ByteStream> {
        let path = self.path_of(digest);
        let (file, len) = blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let size = file.metadata()?.len();
            let len = match range {
                None => size,
                Some(r) if r.start >= size => return Err(BlobError::InvalidRange),
                Some(r) => {
                    file.seek(SeekFrom::Start(r.start))?;
                    r.end.min(size - 1) - r.start + 1
                }
            };
            Ok((file, len))
        })
        .await?;
        // A blocking reader thread per download would pin a thread; tokio's file wraps the
        // reads in the blocking pool chunk by chunk instead.
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), len);
        Ok(tokio_util::io::ReaderStream::with_capacity(reader, READ_CHUNK).boxed())
    }

    async fn delete(&self, digest: &Digest) -> BlobResult<()> {
        let path = self.path_of(digest);
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(dir) = path.parent() {
                        fsync_dir(dir)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, after: Option<Digest>, limit: usize) -> BlobResult<Vec<BlobInfo>> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            let mut dirs: Vec<_> = std::fs::read_dir(&root)?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            dirs.sort();
            for dir in dirs {
                let mut found: Vec<BlobInfo> = std::fs::read_dir(&dir)?
                    .flatten()
                    .filter_map(|e| {
                        let digest = Digest::parse(&e.file_name().to_string_lossy()).ok()?;
                        let size = e.metadata().ok()?.len();
                        Some(BlobInfo { digest, size })
                    })
                    .filter(|b| after.is_none_or(|a| b.digest > a))
                    .collect();
                found.sort_by_key(|b| b.digest);
                out.extend(found);
                if out.len() >= limit {
                    out.truncate(limit);
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Reads a whole object into memory (tests and small previews only).
pub async fn read_all(store: &dyn BlobStore, digest: &Digest, max: usize) -> BlobResult<Vec<u8>> {
    let mut stream = store.get(digest, None).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// SHA-256 of a file, for backends that sign the payload (read off the async threads).
pub(crate) async fn sha256_file(path: PathBuf) -> BlobResult<String> {
    blocking(move || {
        use sha2::Digest as _;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Staging;

    #[tokio::test]
    async fn put_dedups_ranges_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path().join("tmp")).unwrap();
        let store = FsBlobStore::new(dir.path().join("objects")).unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        let staged = staging.stage_bytes(&data).await.unwrap();
        let digest = staged.digest;
        assert!(store.put(staged).await.unwrap(), "stored");
        assert!(!store.put(staging.stage_bytes(&data).await.unwrap()).await.unwrap(), "dedup");
        assert_eq!(std::fs::read_dir(staging.dir()).unwrap().count(), 0, "staging emptied");
        assert_eq!(store.size(&digest).await.unwrap(), Some(data.len() as u64));
        assert_eq!(read_all(&store, &digest, usize::MAX).await.unwrap(), data);

        let part = |start, end| ByteRange { start, end };
        let mut s = store.get(&digest, Some(part(1000, 300_999))).await.unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, data[1000..301_000]);
        assert!(matches!(
            store.get(&digest, Some(part(700_000, 700_001))).await,
            Err(BlobError::InvalidRange)
        ));

        let listed = store.list(None, 10).await.unwrap();
        assert_eq!(listed, vec![BlobInfo { digest, size: data.len() as u64 }]);
        assert!(store.list(Some(digest), 10).await.unwrap().is_empty());
        store.delete(&digest).await.unwrap();
        store.delete(&digest).await.unwrap();
        assert_eq!(store.size(&digest).await.unwrap(), None);
        assert!(matches!(store.get(&digest, None).await, Err(BlobError::NotFound)));
    }
}
