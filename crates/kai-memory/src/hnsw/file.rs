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
//! Lists are stored as plain `u32` words (a count, then the entries, padded to the list's
//! capacity) whatever the in-memory packing (see `graph`), so the packed layout did not change
//! the format: files of version 1 from before it load as they are.
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
            let mut words = Vec::new();
            let mut list = Vec::new();
            let mut write_list = |slot: u32, level: u8, words: &mut Vec<u32>| {
                self.graph.neighbors_into(slot, level, &mut list);
                words.push(list.len() as u32);
                words.extend_from_slice(&list);
                words.resize(words.len() + self.graph.max_degree(level) - list.len(), 0);
            };
            for slot in 0..n as u32 {
                write_list(slot, 0, &mut words);
                if words.len() >= 1 << 16 {
                    w.u32s(&words)?;
                    words.clear();
                }
            }
            w.u32s(&words)?;
            let upper = self.graph.upper_slots();
            w.len(upper.len())?;
            for slot in upper {
                w.u32(slot)?;
                words.clear();
                for level in 1..=self.graph.upper_levels(slot) {
                    write_list(slot, level, &mut words);
                }
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
        index.graph = Graph::new(m);
        index.graph.grow_to(n);
        // Read in chunks and packed as they come, so that loading needs no second copy.
        let stride = 1 + 2 * m;
        let mut words = Vec::new();
        let mut slot = 0;
        while slot < n {
            let take = (n - slot).min(1024);
            words.clear();
            r.u32s(take * stride, &mut words)?;
            for list in words.chunks_exact(stride) {
                set_list(&index.graph, slot as u32, 0, list, n).map_err(|e| r.corrupt(e))?;
                slot += 1;
            }
        }
        let upper_count = r.len(4)?;
        for _ in 0..upper_count {
            let slot = r.u32()?;
            let level = index.levels.get(slot as usize).copied().unwrap_or(0);
            if level == 0 || index.graph.upper_levels(slot) > 0 {
                return Err(r.corrupt(format!("unexpected upper-layer lists for slot {slot}")));
            }
            index.graph.set_upper_levels(slot, level);
            words.clear();
            r.u32s(usize::from(level) * (1 + m), &mut words)?;
            for (lev, list) in (1..=level).zip(words.chunks_exact(1 + m)) {
                set_list(&index.graph, slot, lev, list, n).map_err(|e| r.corrupt(e))?;
            }
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
        let mut list = Vec::with_capacity(self.graph.m0);
        for (s, (&level, &state)) in self.levels.iter().zip(&self.state).enumerate() {
            if state > FREE || level > 30 || (state == FREE && level != 0) {
                return Err(format!("slot {s}: state {state}, level {level}"));
            }
            if self.graph.upper_levels(s as u32) != level {
                return Err(format!("slot {s}: level {level} without its upper lists"));
            }
            for lev in 0..=level {
                self.graph.neighbors_into(s as u32, lev, &mut list);
                if state == FREE && !list.is_empty() {
                    return Err(format!("slot {s}: {} neighbours at level {lev}", list.len()));
                }
                let bad = list.iter().find(|&&nb| !slot_ok(nb) || self.levels[nb as usize] < lev);
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
        self.slot_of.reserve(self.state.iter().filter(|&&s| s == LIVE).count(), &self.ids);
        self.free.clear();
        self.tombstones = 0;
        for (s, (&id, &state)) in self.ids.iter().zip(&self.state).enumerate() {
            match state {
                LIVE => {
                    if self.slot_of.insert(s as u32, &self.ids).is_some() {
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

/// Stores one list read from the file (`words`: a count, then the entries) as `slot`'s list at
/// `level`, refusing a count above the level's degree or an entry that is not a slot below `n`
/// (which the packed layout could not even represent).
fn set_list(
    graph: &Graph,
    slot: u32,
    level: u8,
    words: &[u32],
    n: usize,
) -> std::result::Result<(), String> {
    let (&count, entries) = words.split_first().ok_or("empty list")?;
    let count = count as usize;
    if count > graph.max_degree(level) || count > entries.len() {
        return Err(format!("slot {slot}: {count} neighbours at level {level}"));
    }
    let entries = &entries[..count];
    if let Some(bad) = entries.iter().find(|&&e| e as usize >= n) {
        return Err(format!("slot {slot}: bad neighbour {bad} at level {level}"));
    }
    graph.set_neighbors(slot, level, entries);
    Ok(())
}
