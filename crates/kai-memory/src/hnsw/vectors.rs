//! Vector storage for the HNSW index: what the graph search compares, and the exact originals
//! used to re-rank.
//!
//! Memory per vector of dimension `d` (graph and ids not included):
//! - [`Storage::F32`]: `4d` bytes; the search is exact on f32, no re-ranking needed.
//! - [`Storage::Int8`]: `d + 4` bytes of codes and scale, plus `4d` bytes of f32 originals kept
//!   in memory for re-ranking (faster search, no memory saved).
//! - [`Storage::Int8FileRerank`]: `d + 4` bytes; the originals stay in the index file and the
//!   few re-ranked candidates are read back with positioned reads. Vectors inserted since the
//!   last save are kept in memory until the next save.
//!
//! Slots are dense `u32`s; this module does not know about ids, tombstones or the graph.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::search::Metric;
use crate::distance::{dot_f32, dot_i8, quantize_i8};
use crate::error::{Error, Result};

/// How the index stores vectors. See the module documentation for the memory of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Storage {
    /// f32 vectors in memory; the graph search is exact.
    #[default]
    F32,
    /// int8 codes for the graph search, f32 originals in memory for exact re-ranking.
    Int8,
    /// int8 codes for the graph search, f32 originals read from the index file for re-ranking.
    Int8FileRerank,
}

impl Storage {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::Int8 => 1,
            Self::Int8FileRerank => 2,
        }
    }
    pub(crate) fn from_tag(tag: u8) -> Option<Self> {
        [Self::F32, Self::Int8, Self::Int8FileRerank].into_iter().find(|s| s.tag() == tag)
    }
    pub(crate) fn quantized(self) -> bool {
        self != Self::F32
    }
}

/// Where the f32 originals of a quantized index live.
pub(crate) enum Originals {
    Memory(Vec<f32>),
    /// Originals in a verified index file, starting at `offset`, for slots `< slots`; newer
    /// vectors (and reused slots) in `pending`.
    File {
        path: PathBuf,
        file: File,
        offset: u64,
        slots: usize,
        pending: HashMap<u32, Box<[f32]>>,
    },
}

pub(crate) struct Vectors {
    pub(crate) dim: usize,
    pub(crate) storage: Storage,
    /// f32 data (F32 storage) — empty otherwise.
    pub(crate) data: Vec<f32>,
    /// int8 codes and per-vector scales (quantized storage) — empty otherwise.
    pub(crate) codes: Vec<i8>,
    pub(crate) scales: Vec<f32>,
    /// Exact originals for re-ranking (quantized storage only).
    pub(crate) originals: Originals,
}

/// Cache lines of an f32 vector loaded ahead by `warm`.
const WARM_LINES: usize = 2;

/// Distances from a prepared query (the search-time metric).
pub(crate) struct QueryMetric<'a> {
    pub(crate) vectors: &'a Vectors,
    pub(crate) query: &'a Prepared<'a>,
}

impl Metric for QueryMetric<'_> {
    #[inline]
    fn dist(&self, slot: u32) -> f32 {
        self.vectors.dist(self.query, slot)
    }
    #[inline]
    fn warm(&self, slots: &[u32]) {
        self.vectors.warm(slots);
    }
}

/// Distances from a stored slot (the build-time metric).
pub(crate) struct SlotMetric<'a> {
    pub(crate) vectors: &'a Vectors,
    pub(crate) slot: u32,
}

impl Metric for SlotMetric<'_> {
    #[inline]
    fn dist(&self, slot: u32) -> f32 {
        self.vectors.pair_dist(self.slot, slot)
    }
    #[inline]
    fn warm(&self, slots: &[u32]) {
        self.vectors.warm(slots);
    }
}

/// A query prepared for one storage kind.
pub(crate) enum Prepared<'q> {
    F32(&'q [f32]),
    Int8 { codes: Vec<i8>, scale: f32 },
}

impl Vectors {
    pub(crate) fn new(dim: usize, storage: Storage) -> Self {
        Self {
            dim,
            storage,
            data: Vec::new(),
            codes: Vec::new(),
            scales: Vec::new(),
            originals: Originals::Memory(Vec::new()),
        }
    }

    pub(crate) fn slots(&self) -> usize {
        if self.storage.quantized() { self.scales.len() } else { self.data.len() / self.dim.max(1) }
    }

    /// Makes room for `n` more vectors.
    pub(crate) fn reserve(&mut self, n: usize) {
        let d = self.dim;
        if self.storage.quantized() {
            self.codes.reserve(n * d);
            self.scales.reserve(n);
            if let Originals::Memory(o) = &mut self.originals {
                o.reserve(n * d);
            }
        } else {
            self.data.reserve(n * d);
        }
    }

    /// Stores a unit vector in `slot` (`slot <= slots()`; equal appends).
    pub(crate) fn put(&mut self, slot: u32, v: &[f32]) {
        let s = slot as usize;
        let d = self.dim;
        let append = s >= self.slots();
        if !self.storage.quantized() {
            if append {
                self.data.extend_from_slice(v);
            } else {
                self.data[s * d..(s + 1) * d].copy_from_slice(v);
            }
            return;
        }
        if append {
            self.codes.resize((s + 1) * d, 0);
            self.scales.push(0.0);
        }
        self.scales[s] = quantize_i8(v, &mut self.codes[s * d..(s + 1) * d]);
        match &mut self.originals {
            Originals::Memory(o) if append => o.extend_from_slice(v),
            Originals::Memory(o) => o[s * d..(s + 1) * d].copy_from_slice(v),
            Originals::File { pending, .. } => {
                pending.insert(slot, v.into());
            }
        }
    }

    pub(crate) fn prepare<'q>(&self, q: &'q [f32]) -> Prepared<'q> {
        if self.storage.quantized() {
            let mut codes = vec![0i8; q.len()];
            let scale = quantize_i8(q, &mut codes);
            Prepared::Int8 { codes, scale }
        } else {
            Prepared::F32(q)
        }
    }

    /// Distance (`1 - dot`) from a prepared query to `slot`, in the storage's own precision.
    #[inline]
    pub(crate) fn dist(&self, q: &Prepared<'_>, slot: u32) -> f32 {
        let s = slot as usize;
        let d = self.dim;
        match q {
            Prepared::F32(q) => 1.0 - dot_f32(q, self.data.get(s * d..(s + 1) * d).unwrap_or(&[])),
            Prepared::Int8 { codes, scale } => {
                let c = self.codes.get(s * d..(s + 1) * d).unwrap_or(&[]);
                let sc = self.scales.get(s).copied().unwrap_or(0.0);
                1.0 - dot_i8(codes, c) as f32 * scale * sc
            }
        }
    }

    /// Loads the first cache lines of the vectors of `slots` so that the misses overlap.
    #[inline]
    pub(crate) fn warm(&self, slots: &[u32]) {
        // Loads whose results are folded into one value; `black_box` on each index keeps them
        // scalar loads (LLVM would otherwise turn the loop into a gather).
        let d = self.dim;
        let mut acc = 0u32;
        if self.storage.quantized() {
            for &s in slots {
                let at = std::hint::black_box(s as usize * d);
                acc ^= u32::from(self.codes.get(at).map_or(0, |c| c.to_le_bytes()[0]));
            }
        } else {
            for &s in slots {
                let at = std::hint::black_box(s as usize * d);
                for line in 0..WARM_LINES {
                    acc ^= self.data.get(at + 16 * line).map_or(0, |x| x.to_bits());
                }
            }
        }
        std::hint::black_box(acc);
    }

    /// Distance between two stored slots, in the storage's own precision.
    #[inline]
    pub(crate) fn pair_dist(&self, a: u32, b: u32) -> f32 {
        let (a, b, d) = (a as usize, b as usize, self.dim);
        if self.storage.quantized() {
            let ca = self.codes.get(a * d..(a + 1) * d).unwrap_or(&[]);
            let cb = self.codes.get(b * d..(b + 1) * d).unwrap_or(&[]);
            let s = self.scales.get(a).copied().unwrap_or(0.0)
                * self.scales.get(b).copied().unwrap_or(0.0);
            1.0 - dot_i8(ca, cb) as f32 * s
        } else {
            let va = self.data.get(a * d..(a + 1) * d).unwrap_or(&[]);
            let vb = self.data.get(b * d..(b + 1) * d).unwrap_or(&[]);
            1.0 - dot_f32(va, vb)
        }
    }

    /// Copies the exact f32 vector of `slot` into `out`.
    pub(crate) fn original(&self, slot: u32, out: &mut Vec<f32>) -> Result<()> {
        let (s, d) = (slot as usize, self.dim);
        out.clear();
        if !self.storage.quantized() {
            out.extend_from_slice(self.data.get(s * d..(s + 1) * d).unwrap_or(&[]));
            return Ok(());
        }
        match &self.originals {
            Originals::Memory(o) => out.extend_from_slice(o.get(s * d..(s + 1) * d).unwrap_or(&[])),
            Originals::File { pending, .. } if pending.contains_key(&slot) => {
                out.extend_from_slice(pending.get(&slot).map(|v| &v[..]).unwrap_or(&[]));
            }
            Originals::File { path, file, offset, slots, .. } => {
                if s >= *slots {
                    return Err(Error::Corrupt {
                        path: path.clone(),
                        reason: format!("slot {s} is not in the file"),
                    });
                }
                let mut bytes = vec![0u8; d * 4];
                let at = offset + (s * d * 4) as u64;
                file.read_exact_at(&mut bytes, at)
                    .map_err(|source| Error::Io { path: path.clone(), source })?;
                out.extend(
                    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
            }
        }
        Ok(())
    }

    /// Exact distance from a unit query to `slot`, using the originals.
    pub(crate) fn exact_dist(&self, q: &[f32], slot: u32, buf: &mut Vec<f32>) -> Result<f32> {
        if !self.storage.quantized() {
            let (s, d) = (slot as usize, self.dim);
            return Ok(1.0 - dot_f32(q, self.data.get(s * d..(s + 1) * d).unwrap_or(&[])));
        }
        self.original(slot, buf)?;
        Ok(1.0 - dot_f32(q, buf))
    }

    /// Bytes held in memory (not counting file-resident originals).
    pub(crate) fn memory_bytes(&self) -> usize {
        let originals = match &self.originals {
            Originals::Memory(o) => o.capacity() * 4,
            Originals::File { pending, .. } => pending.len() * (self.dim * 4 + 40),
        };
        self.data.capacity() * 4 + self.codes.capacity() + self.scales.capacity() * 4 + originals
    }
}
