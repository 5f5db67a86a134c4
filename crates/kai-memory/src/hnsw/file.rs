//! The HNSW index file: [`HnswIndex::save`] and [`HnswIndex::load`].
//!
//! Inside the envelope of [`crate::persist`] (magic `KAIHNSW\0`, version, SHA-256 trailer):
//!
//! ```text
//! u8 storage tag (0 f32, 1 int8, 2 int8 + file re-rank) · u32 dim · u32 m · u32 ef_construction
//! u64 seed · u64 slots (n) · u64 ids[n] · u8 levels[n] · u8 states[n] (live/tombstone/free)
//! u32 entry (u32::MAX = none) · u8 max_level · u32 layer-0 words[n × (1 + 2m)]
//! u64 upper count · per entry: u32 slot, u32 words[level × (1 + m)]
//! f32 storage:  f32 vectors[n × dim]
//! int8 storage: i8 codes[n × dim] · f32 scales[n] · f32 originals[n × dim]
//! ```
//!
//! Load checks every structural invariant (ranges, degrees, neighbour slots, unique live ids,
//! finite values) as well as the checksum, so a file that passes cannot make a search panic or
//! return ids that were not in it. With [`Storage::Int8FileRerank`] the originals section is
//! hashed but not kept: re-ranking reads it from the (still open) file.

use std::collections::HashMap;
use std::path::Path;

use super::graph::Graph;
use super::vectors::{Originals, Storage};
use super::{FREE, HnswIndex, HnswParams, LIVE, TOMBSTONE};
use crate::error::{Error, Result};
use crate::persist::{ChecksumReader, write_atomic};

const MAGIC: &[u8; 8] = b"KAIHNSW\0";
/// Format version written and read by this build.
pub const HNSW_FORMAT_VERSION: u32 = 1;
const NO_ENTRY: u32 = u32::MAX;

impl HnswIndex {
    /// Writes the index to `path` atomically (temporary file, fsync, rename). With
    /// [`Storage::Int8FileRerank`] the in-memory originals are released afterwards and re-ranking
    /// reads them from the new file.
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let n = self.ids.len();
        let dim = self.dim();
        let mut originals_at = 0;
        write_atomic(path, MAGIC, HNSW_FORMAT_VERSION, |w| {
            w.u8(self.params.storage.tag())?;
            w.u32(dim as u32)?;
            w.u32(self.params.m as u32)?;
            w.u32(u32::try_from(self.params.ef_construction).unwrap_or(u32::MAX))?;
            w.u64(self.params.seed)?;
            w.len(n)?;
            w.u64s(&self.ids)?;
            w.bytes(&self.levels)?;
            w.bytes(&self.state)?;
            w.u32(self.entry.unwrap_or(NO_ENTRY))?;
            w.u8(self.max_level)?;
            let words: Vec<u32> = self
                .graph
                .links0
                .iter()
                .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            w.u32s(&words)?;
            let mut upper: Vec<u32> = self.graph.upper.keys().copied().collect();
            upper.sort_unstable();
            w.len(upper.len())?;
            for slot in upper {
                w.u32(slot)?;
                let words: Vec<u32> = self.graph.upper.get(&slot).map_or_else(Vec::new, |l| {
                    l.iter().map(|a| a.load(std::sync::atomic::Ordering::Relaxed)).collect()
                });
                w.u32s(&words)?;
            }
            if !self.params.storage.quantized() {
                return w.f32s(&self.vectors.data);
            }
            w.i8s(&self.vectors.codes)?;
            w.f32s(&self.vectors.scales)?;
            originals_at = w.position();
            if let Originals::Memory(o) = &self.vectors.originals {
                return w.f32s(o);
            }
            let mut buf = Vec::with_capacity(dim);
            for slot in 0..n as u32 {
                self.vectors.original(slot, &mut buf).map_err(std::io::Error::other)?;
                buf.resize(dim, 0.0);
                w.f32s(&buf)?;
            }
            Ok(())
        })?;
        if self.params.storage == Storage::Int8FileRerank {
            let file = std::fs::File::open(path)
                .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
            self.vectors.originals = Originals::File {
                path: path.to_path_buf(),
                file,
                offset: originals_at,
                slots: n,
                pending: HashMap::new(),
            };
        }
        Ok(())
    }

    /// Loads an index written by [`HnswIndex::save`]. A missing, truncated, corrupt or
    /// other-version file is an error for which [`Error::needs_rebuild`] is true: rebuild with
    /// [`HnswIndex::rebuild_from`].
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_as(path, None)
    }

    /// Like [`HnswIndex::load`], choosing where a quantized index keeps its f32 originals:
    /// `Some(Storage::Int8)` reads them into memory, `Some(Storage::Int8FileRerank)` leaves them
    /// in the file. An f32 index cannot be opened as a quantized one or the other way round.
    pub fn load_as(path: &Path, storage: Option<Storage>) -> Result<Self> {
        let mut r = ChecksumReader::open(path, MAGIC, HNSW_FORMAT_VERSION)?;
        let tag = r.u8()?;
        let stored = Storage::from_tag(tag)
            .ok_or_else(|| r.corrupt(format!("unknown storage tag {tag}")))?;
        let storage = storage.unwrap_or(stored);
        if storage.quantized() != stored.quantized() {
            return Err(Error::param(
                "storage",
                format!("the file holds a {stored:?} index, not {storage:?}"),
            ));
        }
        let dim = r.u32()? as usize;
        let m = r.u32()? as usize;
        let ef_construction = r.u32()? as usize;
        let seed = r.u64()?;
        let params = HnswParams { m, ef_construction, storage, seed };
        let mut index =
            Self::new(dim, params).map_err(|e| r.corrupt(format!("bad parameters: {e}")))?;
        let n = r.len(8 + 2 + 4 * (1 + 2 * m as u64))?;
        if n >= u32::MAX as usize {
            return Err(r.corrupt(format!("{n} slots")));
        }
        r.u64s(n, &mut index.ids)?;
        index.levels = vec![0; n];
        r.read_exact(&mut index.levels)?;
        index.state = vec![0; n];
        r.read_exact(&mut index.state)?;
        let entry = r.u32()?;
        index.max_level = r.u8()?;
        let stride = 1 + 2 * m;
        let mut words = Vec::new();
        r.u32s(n * stride, &mut words)?;
        index.graph = Graph::new(m);
        index.graph.links0 = words.into_iter().map(std::sync::atomic::AtomicU32::new).collect();
        let upper_count = r.len(4)?;
        for _ in 0..upper_count {
            let slot = r.u32()?;
            let level = index.levels.get(slot as usize).copied().unwrap_or(0);
            if level == 0 || index.graph.upper.contains_key(&slot) {
                return Err(r.corrupt(format!("unexpected upper-layer lists for slot {slot}")));
            }
            let mut words = Vec::new();
            r.u32s(usize::from(level) * (1 + m), &mut words)?;
            index
                .graph
                .upper
                .insert(slot, words.into_iter().map(std::sync::atomic::AtomicU32::new).collect());
        }
        let v = &mut index.vectors;
        if storage.quantized() {
            r.i8s(n * dim, &mut v.codes)?;
            r.f32s(n, &mut v.scales)?;
            if storage == Storage::Int8FileRerank {
                let offset = r.position();
                r.skip((n * dim * 4) as u64)?;
                let file = r.finish()?;
                v.originals = Originals::File {
                    path: path.to_path_buf(),
                    file,
                    offset,
                    slots: n,
                    pending: HashMap::new(),
                };
            } else {
                let mut o = Vec::new();
                r.f32s(n * dim, &mut o)?;
                r.finish()?;
                v.originals = Originals::Memory(o);
            }
        } else {
            r.f32s(n * dim, &mut v.data)?;
            r.finish()?;
        }
        index.entry = (entry != NO_ENTRY).then_some(entry);
        index.validate().map_err(|reason| Error::Corrupt { path: path.to_path_buf(), reason })?;
        Ok(index)
    }

    /// Checks the invariants search relies on and rebuilds the derived maps.
    fn validate(&mut self) -> std::result::Result<(), String> {
        let n = self.ids.len();
        let slot_ok = |s: u32| (s as usize) < n && self.state[s as usize] != FREE;
        for (s, (&level, &state)) in self.levels.iter().zip(&self.state).enumerate() {
            if state > FREE || level > 30 || (state == FREE && level != 0) {
                return Err(format!("slot {s}: state {state}, level {level}"));
            }
            let has_upper = self.graph.upper.contains_key(&(s as u32));
            if has_upper != (level > 0) {
                return Err(format!("slot {s}: level {level} without its upper lists"));
            }
            for lev in 0..=level {
                let list = self.graph.list(s as u32, lev);
                let Some((count, _)) = list.split_first() else {
                    return Err(format!("slot {s}: missing list at level {lev}"));
                };
                let count = count.load(std::sync::atomic::Ordering::Relaxed) as usize;
                if count > self.graph.max_degree(lev) || (state == FREE && count > 0) {
                    return Err(format!("slot {s}: {count} neighbours at level {lev}"));
                }
                let mut bad = None;
                self.graph.for_each_neighbor(s as u32, lev, |nb| {
                    let ok = slot_ok(nb) && self.levels[nb as usize] >= lev;
                    if !ok {
                        bad = Some(nb);
                    }
                });
                if let Some(nb) = bad {
                    return Err(format!("slot {s}: bad neighbour {nb} at level {lev}"));
                }
            }
        }
        match self.entry {
            None if self.state.iter().any(|&s| s != FREE) => return Err("no entry point".into()),
            Some(e) if !slot_ok(e) || self.levels[e as usize] != self.max_level => {
                return Err(format!("bad entry point {e}"));
            }
            _ => {}
        }
        if self.params.storage.quantized() {
            if self.vectors.scales.iter().any(|s| !s.is_finite()) {
                return Err("non-finite scale".into());
            }
        } else if self.vectors.data.iter().any(|x| !x.is_finite()) {
            return Err("non-finite vector component".into());
        }
        if let Originals::Memory(o) = &self.vectors.originals
            && o.iter().any(|x| !x.is_finite())
        {
            return Err("non-finite vector component".into());
        }
        self.slot_of.clear();
        self.free.clear();
        self.tombstones = 0;
        for (s, (&id, &state)) in self.ids.iter().zip(&self.state).enumerate() {
            match state {
                LIVE => {
                    if self.slot_of.insert(id, s as u32).is_some() {
                        return Err(format!("id {id} appears twice"));
                    }
                }
                TOMBSTONE => self.tombstones += 1,
                _ => self.free.push(s as u32),
            }
        }
        self.free.reverse();
        Ok(())
    }
}
