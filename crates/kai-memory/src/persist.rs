//! The on-disk envelope shared by the vector and full-text index files, and crash-safe writes.
//!
//! ```text
//! offset 0   magic, 8 bytes ("KAIHNSW\0", "KAIBM25\0")
//!        8   format version, u32 little-endian
//!       12   body (owned by the index module; every integer little-endian)
//!   len-32   SHA-256 of bytes [0, len-32)
//! ```
//!
//! Writes go to a temporary file in the same directory, which is fsynced, renamed over the
//! target, and the directory fsynced: a crash leaves either the old file or the new one.
//! Reads hash while parsing and compare the trailer at the end; every length read from the file
//! is checked against the bytes that remain before anything is allocated, so a corrupt or
//! truncated file yields [`Error::Corrupt`], never a panic or a huge allocation. Callers must
//! not use anything parsed from a reader whose [`ChecksumReader::finish`] failed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const DIGEST_LEN: u64 = 32;
const HEADER_LEN: u64 = 12;

fn io_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Writes `path` atomically: `body` writes the body into a hashing writer; the header and the
/// checksum trailer are added here.
pub(crate) fn write_atomic<F>(path: &Path, magic: &[u8; 8], version: u32, body: F) -> Result<()>
where
    F: FnOnce(&mut ChecksumWriter) -> io::Result<()>,
{
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp =
        dir.join(format!(".{name}.tmp-{}-{:016x}", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut w = ChecksumWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            pos: 0,
        };
        w.bytes(magic)?;
        w.u32(version)?;
        body(&mut w)?;
        let digest = w.hash.finalize();
        w.out.write_all(&digest)?;
        let file = w.out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// A buffered writer that hashes everything it writes.
pub(crate) struct ChecksumWriter {
    out: BufWriter<File>,
    hash: Sha256,
    pos: u64,
}

impl ChecksumWriter {
    /// Byte offset of the next write from the start of the file.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.hash.update(b);
        self.pos += b.len() as u64;
        self.out.write_all(b)
    }
    pub(crate) fn u8(&mut self, v: u8) -> io::Result<()> {
        self.bytes(&[v])
    }
    pub(crate) fn u32(&mut self, v: u32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    pub(crate) fn u64(&mut self, v: u64) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    pub(crate) fn f32(&mut self, v: f32) -> io::Result<()> {
        self.bytes(&v.to_le_bytes())
    }
    /// Writes a length as u64 (lengths are read back with [`ChecksumReader::len`]).
    pub(crate) fn len(&mut self, n: usize) -> io::Result<()> {
        self.u64(n as u64)
    }
    pub(crate) fn u32s(&mut self, v: &[u32]) -> io::Result<()> {
        self.encoded(v, |x, out| out.extend_from_slice(&x.to_le_bytes()))
    }
    pub(crate) fn u64s(&mut self, v: &[u64]) -> io::Result<()> {
        self.encoded(v, |x, out| out.extend_from_slice(&x.to_le_bytes()))
    }
    pub(crate) fn f32s(&mut self, v: &[f32]) -> io::Result<()> {
        self.encoded(v, |x, out| out.extend_from_slice(&x.to_le_bytes()))
    }
    pub(crate) fn i8s(&mut self, v: &[i8]) -> io::Result<()> {
        self.encoded(v, |x, out| out.push(x.to_le_bytes()[0]))
    }
    fn encoded<T: Copy>(&mut self, v: &[T], put: impl Fn(T, &mut Vec<u8>)) -> io::Result<()> {
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in v.chunks(8 * 1024) {
            buf.clear();
            chunk.iter().for_each(|x| put(*x, &mut buf));
            self.bytes(&buf)?;
        }
        Ok(())
    }
}

/// A reader over an index file that hashes what it reads and never reads past the body.
pub(crate) struct ChecksumReader {
    path: PathBuf,
    input: BufReader<File>,
    hash: Sha256,
    pos: u64,
    body_end: u64,
}

impl ChecksumReader {
    /// Opens `path`, checks the magic and the format version.
    pub(crate) fn open(path: &Path, magic: &[u8; 8], version: u32) -> Result<Self> {
        let file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::FileMissing(path.to_path_buf()),
            _ => Error::Io { path: path.to_path_buf(), source: e },
        })?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut r = Self {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            pos: 0,
            body_end: len.saturating_sub(DIGEST_LEN),
        };
        if len < HEADER_LEN + DIGEST_LEN {
            return Err(r.corrupt(format!("{len} bytes is shorter than the smallest valid file")));
        }
        let mut found = [0u8; 8];
        r.read_exact(&mut found)?;
        if &found != magic {
            return Err(r.corrupt("wrong magic bytes: not an index file of this kind".into()));
        }
        let found = r.u32()?;
        if found != version {
            return Err(Error::UnsupportedVersion {
                path: r.path.clone(),
                found,
                supported: version,
            });
        }
        Ok(r)
    }

    /// A corruption error naming this file.
    pub(crate) fn corrupt(&self, reason: String) -> Error {
        Error::Corrupt { path: self.path.clone(), reason }
    }

    /// Byte offset of the next read from the start of the file.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> u64 {
        self.body_end.saturating_sub(self.pos)
    }

    /// Fails unless `n` items of `size` bytes remain in the body.
    pub(crate) fn ensure(&self, n: u64, size: u64) -> Result<()> {
        match n.checked_mul(size) {
            Some(bytes) if bytes <= self.remaining() => Ok(()),
            _ => Err(self.corrupt(format!(
                "truncated: {n} items of {size} bytes announced at offset {}",
                self.pos
            ))),
        }
    }

    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.ensure(buf.len() as u64, 1)?;
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => self.corrupt("truncated while reading".into()),
            _ => Error::Io { path: self.path.clone(), source: e },
        })?;
        self.hash.update(&*buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    pub(crate) fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }

    /// Reads a length written by [`ChecksumWriter::len`], checking that `len * item_size` bytes
    /// remain so the caller can allocate it.
    pub(crate) fn len(&mut self, item_size: u64) -> Result<usize> {
        let n = self.u64()?;
        self.ensure(n, item_size.max(1))?;
        usize::try_from(n).map_err(|_| self.corrupt(format!("length {n} does not fit in memory")))
    }

    fn decoded<T, const N: usize>(
        &mut self,
        n: usize,
        out: &mut Vec<T>,
        f: fn([u8; N]) -> T,
    ) -> Result<()> {
        self.ensure(n as u64, N as u64)?;
        out.reserve(n);
        let mut buf = vec![0u8; N * 8 * 1024];
        let mut left = n;
        while left > 0 {
            let take = left.min(8 * 1024);
            let bytes = &mut buf[..take * N];
            self.read_exact(bytes)?;
            for c in bytes.chunks_exact(N) {
                let mut a = [0u8; N];
                a.copy_from_slice(c);
                out.push(f(a));
            }
            left -= take;
        }
        Ok(())
    }
    pub(crate) fn u32s(&mut self, n: usize, out: &mut Vec<u32>) -> Result<()> {
        self.decoded(n, out, u32::from_le_bytes)
    }
    pub(crate) fn u64s(&mut self, n: usize, out: &mut Vec<u64>) -> Result<()> {
        self.decoded(n, out, u64::from_le_bytes)
    }
    pub(crate) fn f32s(&mut self, n: usize, out: &mut Vec<f32>) -> Result<()> {
        self.decoded(n, out, f32::from_le_bytes)
    }
    pub(crate) fn i8s(&mut self, n: usize, out: &mut Vec<i8>) -> Result<()> {
        self.decoded(n, out, i8::from_le_bytes)
    }

    /// Hashes `n` bytes without keeping them.
    pub(crate) fn skip(&mut self, n: u64) -> Result<()> {
        self.ensure(n, 1)?;
        let mut buf = vec![0u8; 1 << 16];
        let mut left = n;
        while left > 0 {
            let take = usize::try_from(left.min(1 << 16)).unwrap_or(1 << 16);
            self.read_exact(&mut buf[..take])?;
            left -= take as u64;
        }
        Ok(())
    }

    /// Checks that the whole body was consumed and that the checksum matches. Returns the file,
    /// still open, for callers that read sections of it later.
    pub(crate) fn finish(mut self) -> Result<File> {
        if self.pos != self.body_end {
            return Err(
                self.corrupt(format!("{} unexpected bytes after the body", self.remaining()))
            );
        }
        let mut stored = [0u8; DIGEST_LEN as usize];
        self.input
            .read_exact(&mut stored)
            .map_err(|e| Error::Io { path: self.path.clone(), source: e })?;
        let computed = self.hash.finalize_reset();
        if computed.as_slice() != stored {
            return Err(self.corrupt("checksum mismatch".into()));
        }
        Ok(self.input.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"KAITEST\0";

    fn write_sample(path: &Path) {
        write_atomic(path, MAGIC, 3, |w| {
            w.len(3)?;
            w.u32s(&[1, 2, 3])?;
            w.f32s(&[0.5, -1.0])?;
            w.i8s(&[-7, 7])
        })
        .unwrap();
    }

    fn read_sample(path: &Path) -> Result<(Vec<u32>, Vec<f32>, Vec<i8>)> {
        let mut r = ChecksumReader::open(path, MAGIC, 3)?;
        let n = r.len(4)?;
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        r.u32s(n, &mut a)?;
        r.f32s(2, &mut b)?;
        r.i8s(2, &mut c)?;
        r.finish()?;
        Ok((a, b, c))
    }

    #[test]
    fn round_trip_and_every_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        assert_eq!(read_sample(&path).map_err(|e| e.code()), Err("index_file_missing"));
        write_sample(&path);
        assert_eq!(read_sample(&path).unwrap(), (vec![1, 2, 3], vec![0.5, -1.0], vec![-7, 7]));
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);

        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            let err = read_sample(&path).unwrap_err();
            assert!(err.needs_rebuild(), "byte {i}: {err}");
        }
        for cut in 0..good.len() {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(read_sample(&path).unwrap_err().needs_rebuild(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        fs::write(&path, &longer).unwrap();
        assert_eq!(read_sample(&path).map_err(|e| e.code()), Err("index_file_corrupt"));

        write_atomic(&path, MAGIC, 4, |_| Ok(())).unwrap();
        assert_eq!(read_sample(&path).map_err(|e| e.code()), Err("index_version_unsupported"));
    }

    #[test]
    fn huge_announced_length_is_refused_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        write_atomic(&path, MAGIC, 3, |w| w.u64(u64::MAX / 2)).unwrap();
        let mut r = ChecksumReader::open(&path, MAGIC, 3).unwrap();
        assert_eq!(r.len(4).map_err(|e| e.code()), Err("index_file_corrupt"));
    }
}
