//! A hand-written HNSW index (Malkov & Yashunin 2016) over unit vectors with inner-product
//! (= cosine) distance, f32 or int8-quantized storage, tombstone deletes with neighbour repair,
//! id filters and a checksummed file format.
//!
//! **Why hand-written rather than `hnsw_rs` or `instant-distance`.** The issue asks for four things
//! none of them offers together: int8 storage with exact re-ranking (neither quantizes), deletes
//! without rebuilds (instant-distance is build-once; hnsw_rs has no delete), a persistence
//! format we control (checksum, versioning, corruption detected, originals kept on disk) and
//! memory at most 1.1× hnswlib's (instant-distance and hnsw_rs keep per-node `Vec`s and
//! `Arc`s). Their speed is also below target: the project's survey measured hnsw_rs at about
//! half of usearch's queries/s. This module is about 1.3k lines without its tests, and the
//! `unsafe_code = "forbid"` rule holds: concurrency uses `AtomicU32` adjacency words and
//! striped locks, not raw pointers. On 100k × 384 (`bench/ann`, same machine, one core) it
//! reaches 0.93–0.99× hnswlib's queries/s at equal ef with f32 (and a slightly higher recall),
//! and 1.04–1.37× with int8.
//!
//! Layout, per node: an id (`u64`), a level (`u8`), a state (`u8`: live, tombstone, free), a
//! layer-0 list of `2M` bit-packed slot numbers (17 bits each at 100k nodes; see `graph`) and,
//! for the ~1/M nodes above layer 0, upper lists; plus the vector in the chosen [`Storage`].
//! Live ids map to slots through a table of bare `u32` slots keyed by the ids array (`idmap`).
//! With int8 codes and the originals on disk, that is about 480 B per 384-dim vector (hnswlib:
//! about 1 800 B).
//!
//! Deletes mark a tombstone: the node keeps routing searches but is never returned. When
//! tombstones pass 10 % of the live nodes (or on [`HnswIndex::compact`]) every list that points to
//! a tombstone is rebuilt from its live neighbours and the tombstone's neighbours (a graph search
//! tops up lists that end up too short), and tombstoned slots are recycled by later inserts.
//!
//! The neighbour heuristic can prune every edge into a small, tight cluster. After each batch
//! insert and each compaction, a walk over layer 0 finds such unreachable nodes and links them
//! from their nearest reachable node.

mod build;
mod file;
mod graph;
mod idmap;
mod search;
#[cfg(test)]
mod tests;
mod vectors;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::distance::normalize;
use crate::error::{Error, Result};
use graph::Graph;
use idmap::IdMap;
pub(crate) use search::Near;
use search::{Metric, ScratchPool, descend, search_layer};
pub use vectors::Storage;
use vectors::Vectors;

/// Construction parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HnswParams {
    /// Neighbours per node on upper layers; layer 0 keeps `2 * m`. hnswlib's default is 16.
    pub m: usize,
    /// Beam width while inserting; higher builds slower and better graphs.
    pub ef_construction: usize,
    /// Vector storage: f32, or int8 codes with exact re-ranking.
    pub storage: Storage,
    /// Seed of the level generator (the graph still depends on thread scheduling).
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self { m: 16, ef_construction: 128, storage: Storage::F32, seed: 0x6b61_692d_6d65_6d00 }
    }
}

/// Query parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchParams {
    /// Number of results wanted.
    pub k: usize,
    /// Beam width (raised to `k` if lower); the recall/speed knob.
    pub ef: usize,
    /// With int8 storage: how many of the best graph candidates are re-scored exactly against
    /// the f32 originals (at least `k`; 0 means all `ef`). Ignored with f32 storage.
    pub rerank: usize,
}

impl SearchParams {
    /// `k` results with beam `ef`, re-ranking every candidate.
    #[must_use]
    pub fn new(k: usize, ef: usize) -> Self {
        Self { k, ef, rerank: 0 }
    }
}

/// One search result: the caller's id and the cosine similarity to the query (higher is closer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

/// Counters describing the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexStats {
    pub live: usize,
    pub tombstones: usize,
    pub free_slots: usize,
    pub max_level: u8,
    pub memory_bytes: usize,
}

pub(crate) const LIVE: u8 = 0;
pub(crate) const TOMBSTONE: u8 = 1;
pub(crate) const FREE: u8 = 2;

/// The HNSW index. Searches take `&self` and may run on many threads at once; inserts, deletes
/// and saves take `&mut self` (wrap the index in an `RwLock` to share it).
pub struct HnswIndex {
    params: HnswParams,
    ids: Vec<u64>,
    levels: Vec<u8>,
    state: Vec<u8>,
    slot_of: IdMap,
    free: Vec<u32>,
    tombstones: usize,
    entry: Option<u32>,
    max_level: u8,
    graph: Graph,
    vectors: Vectors,
    rng: StdRng,
    pool: ScratchPool,
}

impl HnswIndex {
    /// An empty index for vectors of `dim` components.
    pub fn new(dim: usize, params: HnswParams) -> Result<Self> {
        if !(1..=65_536).contains(&dim) {
            return Err(Error::param("dim", format!("{dim} is outside 1..=65536")));
        }
        if !(2..=256).contains(&params.m) {
            return Err(Error::param("m", format!("{} is outside 2..=256", params.m)));
        }
        if params.ef_construction == 0 {
            return Err(Error::param("ef_construction", "must be at least 1"));
        }
        Ok(Self {
            params,
            ids: Vec::new(),
            levels: Vec::new(),
            state: Vec::new(),
            slot_of: IdMap::default(),
            free: Vec::new(),
            tombstones: 0,
            entry: None,
            max_level: 0,
            graph: Graph::new(params.m),
            vectors: Vectors::new(dim, params.storage),
            rng: StdRng::seed_from_u64(params.seed),
            pool: ScratchPool::default(),
        })
    }

    /// Builds a fresh index from the source records (for example after [`HnswIndex::load`]
    /// reported a missing or corrupt file). Uses all rayon threads.
    pub fn rebuild_from<V: AsRef<[f32]>>(
        dim: usize,
        params: HnswParams,
        records: impl IntoIterator<Item = (u64, V)>,
    ) -> Result<Self> {
        let mut index = Self::new(dim, params)?;
        let records = records.into_iter();
        index.reserve(records.size_hint().0);
        let mut staged = Vec::new();
        let mut buf = Vec::with_capacity(dim);
        for (id, v) in records {
            index.checked_unit(v.as_ref(), &mut buf)?;
            staged.push(index.stage(id, &buf)?);
        }
        index.link_staged(staged);
        Ok(index)
    }

    /// Number of components per vector.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.vectors.dim
    }

    #[must_use]
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Number of live (searchable) vectors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    #[must_use]
    pub fn contains(&self, id: u64) -> bool {
        self.slot_of.get(id, &self.ids).is_some()
    }

    /// The ids of every live vector, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slot_of.slots().map(|s| self.ids[s as usize])
    }

    /// Inserts or replaces the vector of `id`. The vector is normalized to unit length.
    pub fn insert(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        let mut buf = Vec::with_capacity(self.dim());
        self.checked_unit(vector, &mut buf)?;
        let slot = self.stage(id, &buf)?;
        self.link_staged(vec![slot]);
        Ok(())
    }

    /// Inserts or replaces many vectors, linking them on all rayon threads. Either every record
    /// is valid and all are inserted, or none is.
    pub fn insert_batch<V: AsRef<[f32]>>(&mut self, records: &[(u64, V)]) -> Result<()> {
        let mut buf = Vec::with_capacity(self.dim());
        for (_, v) in records {
            self.checked_unit(v.as_ref(), &mut buf)?;
        }
        let needed = self.ids.len() + records.len().saturating_sub(self.free.len());
        if needed >= u32::MAX as usize {
            return Err(Error::Capacity(needed));
        }
        self.reserve(records.len());
        let mut staged = Vec::with_capacity(records.len());
        for (id, v) in records {
            self.checked_unit(v.as_ref(), &mut buf)?;
            staged.push(self.stage(*id, &buf)?);
        }
        self.link_staged(staged);
        Ok(())
    }

    /// Removes `id`; returns whether it was present. The node becomes a tombstone that is never
    /// returned; tombstones are repaired in bulk once they pass 10 % of the live nodes.
    pub fn delete(&mut self, id: u64) -> bool {
        let Some(slot) = self.slot_of.remove(id, &self.ids) else { return false };
        self.state[slot as usize] = TOMBSTONE;
        self.tombstones += 1;
        if self.tombstones >= 64.max(self.len() / 10) {
            self.compact();
        }
        true
    }

    /// The `k` nearest live vectors to `query` whose ids pass `filter`. Filtered-out ids and
    /// deleted ids are never returned; a selective filter makes the search explore further.
    pub fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>> {
        let mut q = Vec::with_capacity(self.dim());
        self.checked_unit(query, &mut q)?;
        let Some(entry) = self.entry else { return Ok(Vec::new()) };
        if params.k == 0 {
            return Ok(Vec::new());
        }
        let ef = params.ef.max(params.k);
        let prepared = self.vectors.prepare(&q);
        let dist = vectors::QueryMetric { vectors: &self.vectors, query: &prepared };
        let accept = |n: u32| {
            let s = n as usize;
            self.state.get(s) == Some(&LIVE)
                && filter.is_none_or(|f| self.ids.get(s).is_some_and(|id| f(*id)))
        };
        let mut scratch = self.pool.take();
        let start = descend(
            &self.graph,
            Near(dist.dist(entry), entry),
            self.max_level,
            0,
            &dist,
            &mut scratch.buf,
        );
        search_layer(&self.graph, 0, start, ef, &dist, &accept, &mut scratch);
        let mut found: Vec<Near> = scratch.results.drain().collect();
        found.sort_unstable();
        let result = if self.params.storage.quantized() {
            let rerank = if params.rerank == 0 { found.len() } else { params.rerank.max(params.k) };
            found.truncate(rerank);
            let mut exact = Vec::with_capacity(found.len());
            for n in &found {
                exact.push(Near(self.vectors.exact_dist(&q, n.1, &mut scratch.floats)?, n.1));
            }
            exact.sort_unstable();
            exact
        } else {
            found
        };
        self.pool.give(scratch);
        Ok(result
            .iter()
            .take(params.k)
            .map(|n| Hit { id: self.ids[n.1 as usize], score: 1.0 - n.0 })
            .collect())
    }

    /// Exact search restricted to `ids` (unknown or deleted ids are skipped): the right call when
    /// a namespace holds only a few vectors, where a filtered graph search would explore most of
    /// the graph to find them. Scores use the f32 originals in every storage mode.
    pub fn search_exact(
        &self,
        query: &[f32],
        k: usize,
        ids: impl IntoIterator<Item = u64>,
    ) -> Result<Vec<Hit>> {
        let mut q = Vec::with_capacity(self.dim());
        self.checked_unit(query, &mut q)?;
        let mut buf = Vec::with_capacity(self.dim());
        let mut found = Vec::new();
        for id in ids {
            if let Some(slot) = self.slot_of.get(id, &self.ids) {
                found.push(Near(self.vectors.exact_dist(&q, slot, &mut buf)?, slot));
            }
        }
        found.sort_unstable();
        found.dedup_by_key(|n| n.1);
        Ok(found
            .iter()
            .take(k)
            .map(|n| Hit { id: self.ids[n.1 as usize], score: 1.0 - n.0 })
            .collect())
    }

    /// Counters and the bytes held in memory.
    #[must_use]
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            live: self.len(),
            tombstones: self.tombstones,
            free_slots: self.free.len(),
            max_level: self.max_level,
            memory_bytes: self.memory_bytes(),
        }
    }

    /// Bytes held in memory by the index (vectors, graph, ids, maps, scratch).
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.vectors.memory_bytes()
            + self.graph.memory_bytes()
            + self.ids.capacity() * 8
            + self.levels.capacity()
            + self.state.capacity()
            + self.free.capacity() * 4
            + self.slot_of.memory_bytes()
            + self.pool.memory_bytes()
    }

    /// Makes room for `additional` more vectors (beyond the free slots) without regrowth.
    fn reserve(&mut self, additional: usize) {
        let n = additional.saturating_sub(self.free.len());
        self.ids.reserve(n);
        self.levels.reserve(n);
        self.state.reserve(n);
        self.slot_of.reserve(additional, &self.ids);
        self.graph.reserve(self.ids.len() + n);
        self.vectors.reserve(n);
    }

    /// Checks the dimension, copies `v` into `out` and normalizes it.
    fn checked_unit(&self, v: &[f32], out: &mut Vec<f32>) -> Result<()> {
        if v.len() != self.dim() {
            return Err(Error::DimensionMismatch { expected: self.dim(), got: v.len() });
        }
        out.clear();
        out.extend_from_slice(v);
        normalize(out)
    }
}

/// The contract a vector backend offers the memory service (the in-process HNSW here; the
/// Qdrant client of the `qdrant` feature too). Scores are cosine similarities. Calls may block
/// (a remote backend does network I/O): async callers run them on a blocking thread.
pub trait VectorIndex: Send + Sync {
    fn dim(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn upsert(&mut self, id: u64, vector: &[f32]) -> Result<()>;
    /// Inserts or replaces many vectors; either all are valid and stored, or none is.
    fn upsert_batch(&mut self, records: &[(u64, Vec<f32>)]) -> Result<()> {
        for (id, v) in records {
            self.upsert(*id, v)?;
        }
        Ok(())
    }
    fn remove(&mut self, id: u64) -> Result<bool>;
    /// Approximate search; ids rejected by `filter` are never returned.
    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>>;
    /// Exact search among `ids` only (unknown ids are skipped): for small namespaces, where a
    /// filtered graph search would have to explore most of the graph.
    fn search_ids(&self, query: &[f32], k: usize, ids: &[u64]) -> Result<Vec<Hit>>;
    /// Every stored id (for reconciling the index with the source records).
    fn all_ids(&self) -> Result<Vec<u64>>;
}

impl VectorIndex for HnswIndex {
    fn dim(&self) -> usize {
        HnswIndex::dim(self)
    }
    fn len(&self) -> usize {
        HnswIndex::len(self)
    }
    fn upsert(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        self.insert(id, vector)
    }
    fn upsert_batch(&mut self, records: &[(u64, Vec<f32>)]) -> Result<()> {
        self.insert_batch(records)
    }
    fn remove(&mut self, id: u64) -> Result<bool> {
        Ok(self.delete(id))
    }
    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>> {
        HnswIndex::search(self, query, params, filter)
    }
    fn search_ids(&self, query: &[f32], k: usize, ids: &[u64]) -> Result<Vec<Hit>> {
        self.search_exact(query, k, ids.iter().copied())
    }
    fn all_ids(&self) -> Result<Vec<u64>> {
        Ok(self.ids().collect())
    }
}
