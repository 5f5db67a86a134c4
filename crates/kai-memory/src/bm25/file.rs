//! The BM25 index file: [`Bm25Index::save`] and [`Bm25Index::load`].
//!
//! Inside the envelope of [`crate::persist`] (magic `KAIBM25\0`, version, SHA-256 trailer),
//! only live documents and the terms they use are written; postings are rebuilt on load:
//!
//! ```text
//! f32 k1 · f32 b · u8 stop_words
//! u64 term count · per term: u64 byte length, UTF-8 bytes
//! u64 doc count · per doc: u64 id, u32 token count, u64 pair count, pairs (u32 term, u32 tf)
//! ```
//!
//! Load checks every invariant (UTF-8, unique terms and ids, term indexes in range, sorted
//! distinct terms per document, frequencies summing to the length) besides the checksum.

use std::collections::HashMap;
use std::path::Path;

use super::{Bm25Index, Bm25Params, Doc};
use crate::error::{Error, Result};
use crate::persist::{ChecksumReader, write_atomic};

const MAGIC: &[u8; 8] = b"KAIBM25\0";
/// Format version written and read by this build.
pub const BM25_FORMAT_VERSION: u32 = 1;

impl Bm25Index {
    /// Writes the index to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        // Renumber the terms live documents use, in first-use order.
        let mut remap: HashMap<u32, u32> = HashMap::new();
        let mut used: Vec<&str> = Vec::new();
        for doc in self.docs.iter().filter(|d| d.live) {
            for &(term, _) in &doc.terms {
                remap.entry(term).or_insert_with(|| {
                    used.push(self.terms.get(term as usize).map_or("", String::as_str));
                    (used.len() - 1) as u32
                });
            }
        }
        write_atomic(path, MAGIC, BM25_FORMAT_VERSION, |w| {
            w.f32(self.params.k1)?;
            w.f32(self.params.b)?;
            w.u8(u8::from(self.params.stop_words))?;
            w.len(used.len())?;
            for term in &used {
                w.len(term.len())?;
                w.bytes(term.as_bytes())?;
            }
            w.len(self.len())?;
            let mut pairs = Vec::new();
            for doc in self.docs.iter().filter(|d| d.live) {
                w.u64(doc.id)?;
                w.u32(doc.len)?;
                pairs.clear();
                pairs.extend(
                    doc.terms.iter().map(|&(t, tf)| (remap.get(&t).copied().unwrap_or(0), tf)),
                );
                pairs.sort_unstable();
                w.len(pairs.len())?;
                for &(t, tf) in &pairs {
                    w.u32(t)?;
                    w.u32(tf)?;
                }
            }
            Ok(())
        })
    }

    /// Loads an index written by [`Bm25Index::save`]. A missing, truncated, corrupt or
    /// other-version file is an error for which [`Error::needs_rebuild`] is true.
    pub fn load(path: &Path) -> Result<Self> {
        let mut r = ChecksumReader::open(path, MAGIC, BM25_FORMAT_VERSION)?;
        let k1 = r.f32()?;
        let b = r.f32()?;
        let stop_words = match r.u8()? {
            0 => false,
            1 => true,
            other => return Err(r.corrupt(format!("stop-word flag {other}"))),
        };
        let mut index = Self::new(Bm25Params { k1, b, stop_words })
            .map_err(|e| r.corrupt(format!("bad parameters: {e}")))?;
        let term_count = r.len(8)?;
        for i in 0..term_count {
            let n = r.len(1)?;
            let mut bytes = vec![0u8; n];
            r.read_exact(&mut bytes)?;
            let term = String::from_utf8(bytes)
                .map_err(|_| r.corrupt(format!("term {i} is not UTF-8")))?;
            if term.is_empty() || index.term_ids.contains_key(&term) {
                return Err(r.corrupt(format!("term {i} is empty or repeated")));
            }
            index.intern(&term);
        }
        let doc_count = r.len(20)?;
        let mut docs = Vec::with_capacity(doc_count);
        for _ in 0..doc_count {
            let id = r.u64()?;
            let len = r.u32()?;
            let pairs = r.len(8)?;
            let mut terms = Vec::with_capacity(pairs);
            for _ in 0..pairs {
                terms.push((r.u32()?, r.u32()?));
            }
            docs.push(Doc { id, len, terms, live: true });
        }
        r.finish()?;
        let corrupt = |reason: String| Error::Corrupt { path: path.to_path_buf(), reason };
        for doc in docs {
            let sorted = doc.terms.windows(2).all(|w| w[0].0 < w[1].0);
            let in_range = doc.terms.iter().all(|&(t, tf)| (t as usize) < term_count && tf > 0);
            let total: u64 = doc.terms.iter().map(|&(_, tf)| u64::from(tf)).sum();
            if !sorted || !in_range || total != u64::from(doc.len) {
                return Err(corrupt(format!("document {} has inconsistent terms", doc.id)));
            }
            if index.contains(doc.id) {
                return Err(corrupt(format!("document {} appears twice", doc.id)));
            }
            index.add_doc(doc)?;
        }
        Ok(index)
    }
}
