//! The memory service's in-process search state: a compact filter table (owner, namespace,
//! tier, times, metadata of every record), the BM25 index, the public vector index (the
//! persisted HNSW of `kai-memory`, or Qdrant) and a RAM-only HNSW for private records.
//!
//! Everything here is synchronous and may block (Qdrant does network I/O, saves fsync): the
//! service calls it on blocking threads under one `RwLock`. Records are known by their store
//! `num`. Nothing private is ever written by this module: the full-text index lives in RAM and is
//! rebuilt from the store at load, and private vectors are kept out of the persisted index.
//!
//! Persistence of the public HNSW: `<dir>/vectors.hnsw` (the engine's checksummed format) plus
//! `<dir>/vectors.json` (model, dimension and a watermark: every record updated at or before it
//! was applied to the saved index). At load a missing or corrupt file means a rebuild from the
//! store; a good one is reconciled with it (records updated after the watermark are re-applied,
//! ids the store no longer has are removed).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use kai_memory::hnsw::{Hit, SearchParams, VectorIndex};
use kai_memory::hybrid::{DEFAULT_RRF_K, FusedHit, reciprocal_rank_fusion};
use kai_memory::{Bm25Index, Bm25Params, HnswIndex, HnswParams, Storage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::types::{MemoryError, Result, Tier};

/// Namespaces with at most this many records of one owner are searched exactly.
pub(crate) const EXACT_LIMIT: usize = 2048;

/// What the filter needs to know about one record.
pub(crate) struct Entry {
    pub owner: u32,
    pub ns: u32,
    pub tier: Tier,
    pub created_us: i64,
    /// `i64::MAX` when it never expires.
    pub expires_us: i64,
    pub private: bool,
    pub metadata: Option<Box<Map<String, Value>>>,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
    fn intern(&mut self, s: &str) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(s.to_owned()).or_insert(next)
    }
}

/// A resolved search filter.
#[derive(Clone)]
pub(crate) struct Plan {
    pub owner: String,
    /// Namespace keys (`kind:id`); empty: any of the owner's.
    pub namespaces: Vec<String>,
    pub tiers: Vec<Tier>,
    pub created_after_us: Option<i64>,
    pub created_before_us: Option<i64>,
    pub metadata: Map<String, Value>,
    pub now_us: i64,
}

struct Resolved<'p> {
    owner: u32,
    namespaces: Vec<u32>,
    plan: &'p Plan,
}

impl Resolved<'_> {
    fn accepts(&self, e: &Entry) -> bool {
        let p = self.plan;
        e.owner == self.owner
            && e.expires_us > p.now_us
            && (self.namespaces.is_empty() || self.namespaces.contains(&e.ns))
            && (p.tiers.is_empty() || p.tiers.contains(&e.tier))
            && p.created_after_us.is_none_or(|t| e.created_us >= t)
            && p.created_before_us.is_none_or(|t| e.created_us < t)
            && (p.metadata.is_empty()
                || e.metadata.as_ref().is_some_and(|m| {
                    p.metadata.iter().all(|(k, v)| m.get(k).is_some_and(|x| x == v))
                }))
    }
}

/// Where public vectors live (one value per node, so the size difference does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum PublicVectors {
    Hnsw(HnswIndex),
    #[cfg(feature = "qdrant")]
    Qdrant(kai_memory::qdrant::QdrantIndex),
}

impl PublicVectors {
    fn index(&self) -> &dyn VectorIndex {
        match self {
            Self::Hnsw(h) => h,
            #[cfg(feature = "qdrant")]
            Self::Qdrant(q) => q,
        }
    }
    fn index_mut(&mut self) -> &mut dyn VectorIndex {
        match self {
            Self::Hnsw(h) => h,
            #[cfg(feature = "qdrant")]
            Self::Qdrant(q) => q,
        }
    }
}

/// How new public vector indexes are made.
pub(crate) enum VectorSettings {
    Hnsw {
        dir: PathBuf,
        storage: Storage,
    },
    #[cfg(feature = "qdrant")]
    Qdrant {
        config: kai_memory::qdrant::QdrantConfig,
        runtime: tokio::runtime::Handle,
        dir: PathBuf,
    },
}

impl VectorSettings {
    fn dir(&self) -> &Path {
        match self {
            Self::Hnsw { dir, .. } => dir,
            #[cfg(feature = "qdrant")]
            Self::Qdrant { dir, .. } => dir,
        }
    }

    fn create(&self, dim: usize) -> Result<PublicVectors> {
        match self {
            Self::Hnsw { storage, .. } => Ok(PublicVectors::Hnsw(HnswIndex::new(
                dim,
                HnswParams { storage: *storage, ..HnswParams::default() },
            )?)),
            #[cfg(feature = "qdrant")]
            Self::Qdrant { config, runtime, .. } => Ok(PublicVectors::Qdrant(
                kai_memory::qdrant::QdrantIndex::open(config, dim, runtime.clone())?,
            )),
        }
    }
}

/// The sidecar describing the saved public index.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Sidecar {
    pub format: u32,
    pub backend: String,
    pub model: String,
    pub dim: usize,
    pub watermark_us: i64,
}

const SIDECAR_FORMAT: u32 = 1;

/// The search state.
pub(crate) struct Indexes {
    entries: HashMap<u64, Entry>,
    by_owner: HashMap<u32, HashSet<u64>>,
    owners: Interner,
    namespaces: Interner,
    text: Bm25Index,
    public: Option<PublicVectors>,
    private: Option<HnswIndex>,
    dim: Option<usize>,
    /// The embedding model every stored vector comes from.
    pub model: String,
    settings: VectorSettings,
    /// Changes since the last save.
    pub dirty: usize,
    /// The watermark the loaded sidecar had (records updated later must be re-applied).
    pub loaded_watermark: Option<i64>,
}

fn backend_name(s: &VectorSettings) -> &'static str {
    match s {
        VectorSettings::Hnsw { .. } => "hnsw",
        #[cfg(feature = "qdrant")]
        VectorSettings::Qdrant { .. } => "qdrant",
    }
}

impl Indexes {
    /// Empty indexes, or the saved public vector index when its files are sound (a missing,
    /// corrupt or mismatched file is logged and replaced by an empty index to rebuild).
    pub(crate) fn open(settings: VectorSettings, model: &str) -> Result<Self> {
        let mut me = Self {
            entries: HashMap::new(),
            by_owner: HashMap::new(),
            owners: Interner::default(),
            namespaces: Interner::default(),
            text: Bm25Index::new(Bm25Params::default())?,
            public: None,
            private: None,
            dim: None,
            model: model.to_owned(),
            settings,
            dirty: 0,
            loaded_watermark: None,
        };
        match me.load_saved() {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "memory vector index will be rebuilt from the store")
            }
        }
        Ok(me)
    }

    fn sidecar_path(&self) -> PathBuf {
        self.settings.dir().join("vectors.json")
    }

    fn hnsw_path(&self) -> PathBuf {
        self.settings.dir().join("vectors.hnsw")
    }

    fn load_saved(&mut self) -> Result<()> {
        let bytes = match std::fs::read(self.sidecar_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(MemoryError::Internal(format!("reading the index sidecar: {e}"))),
        };
        let side: Sidecar = serde_json::from_slice(&bytes)
            .map_err(|e| MemoryError::Internal(format!("index sidecar is corrupt: {e}")))?;
        if side.format != SIDECAR_FORMAT || side.backend != backend_name(&self.settings) {
            return Err(MemoryError::Internal("index sidecar is for another backend".into()));
        }
        if !self.model.is_empty() && side.model != self.model {
            return Err(MemoryError::Internal(format!(
                "the saved index holds {} vectors; the configured model is {}",
                side.model, self.model
            )));
        }
        let public = match &self.settings {
            VectorSettings::Hnsw { storage, .. } => {
                let index = HnswIndex::load_as(&self.hnsw_path(), Some(*storage))?;
                if index.dim() != side.dim {
                    return Err(MemoryError::Internal("index and sidecar disagree".into()));
                }
                PublicVectors::Hnsw(index)
            }
            #[cfg(feature = "qdrant")]
            VectorSettings::Qdrant { .. } => self.settings.create(side.dim)?,
        };
        self.public = Some(public);
        self.dim = Some(side.dim);
        self.model = side.model;
        self.loaded_watermark = Some(side.watermark_us);
        Ok(())
    }

    /// Writes the public index (HNSW) and the sidecar with `watermark_us`.
    pub(crate) fn save(&mut self, watermark_us: i64) -> Result<()> {
        std::fs::create_dir_all(self.settings.dir())
            .map_err(|e| MemoryError::Internal(format!("creating the index directory: {e}")))?;
        let Some(dim) = self.dim else {
            self.dirty = 0;
            return Ok(());
        };
        let path = self.hnsw_path();
        if let Some(PublicVectors::Hnsw(h)) = &mut self.public {
            h.save(&path)?;
        }
        let side = Sidecar {
            format: SIDECAR_FORMAT,
            backend: backend_name(&self.settings).into(),
            model: self.model.clone(),
            dim,
            watermark_us,
        };
        let tmp = self.sidecar_path().with_extension("json.tmp");
        let body = serde_json::to_vec(&side).map_err(|e| MemoryError::Internal(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.sidecar_path())?;
            std::fs::File::open(self.settings.dir())?.sync_all()
        };
        write().map_err(|e| MemoryError::Internal(format!("writing the index sidecar: {e}")))?;
        self.dirty = 0;
        Ok(())
    }

    pub(crate) fn dim(&self) -> Option<usize> {
        self.dim
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, num: u64) -> bool {
        self.entries.contains_key(&num)
    }

    /// Ids the public vector index holds (for reconciling after a load).
    pub(crate) fn public_vector_ids(&self) -> Result<Vec<u64>> {
        match &self.public {
            Some(p) => Ok(p.index().all_ids()?),
            None => Ok(Vec::new()),
        }
    }

    fn check_dim(&mut self, v: &[f32]) -> Result<()> {
        match self.dim {
            Some(d) if d != v.len() => Err(MemoryError::BadRequest(format!(
                "the vector has {} dimensions; this node's memory vectors have {d}",
                v.len()
            ))),
            Some(_) => Ok(()),
            None => {
                self.dim = Some(v.len());
                Ok(())
            }
        }
    }

    /// Adds or replaces a record: its filter entry, its text, and what happens to its vector.
    pub(crate) fn apply(
        &mut self,
        num: u64,
        owner: &str,
        ns_key: &str,
        entry: EntryFields,
        text: &str,
        vector: VectorOp<'_>,
    ) -> Result<()> {
        if let VectorOp::Set(v) = vector {
            self.check_dim(v)?;
        }
        let owner_id = self.owners.intern(owner);
        let ns = self.namespaces.intern(ns_key);
        let private = entry.private;
        if let Some(old) = self.entries.get(&num)
            && old.private != private
        {
            self.remove_vector(num, old.private)?;
        }
        self.entries.insert(
            num,
            Entry {
                owner: owner_id,
                ns,
                tier: entry.tier,
                created_us: entry.created_us,
                expires_us: entry.expires_us.unwrap_or(i64::MAX),
                private,
                metadata: (!entry.metadata.is_empty()).then(|| Box::new(entry.metadata)),
            },
        );
        self.by_owner.entry(owner_id).or_default().insert(num);
        self.text.insert(num, text)?;
        match vector {
            VectorOp::Keep => {}
            VectorOp::Set(v) => self.upsert_vectors(private, &[(num, v.to_vec())])?,
            VectorOp::Remove => self.remove_vector(num, private)?,
        }
        self.dirty += 1;
        Ok(())
    }

    /// Stores vectors of records already applied.
    pub(crate) fn upsert_vectors(
        &mut self,
        private: bool,
        batch: &[(u64, Vec<f32>)],
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        for (_, v) in batch {
            self.check_dim(v)?;
        }
        let dim = self.dim.unwrap_or(0);
        if private {
            if self.private.is_none() {
                self.private = Some(HnswIndex::new(dim, HnswParams::default())?);
            }
            if let Some(p) = &mut self.private {
                p.insert_batch(batch)?;
            }
        } else {
            if self.public.is_none() {
                self.public = Some(self.settings.create(dim)?);
            }
            if let Some(p) = &mut self.public {
                p.index_mut().upsert_batch(batch)?;
            }
        }
        self.dirty += batch.len();
        Ok(())
    }

    fn remove_vector(&mut self, num: u64, private: bool) -> Result<()> {
        if private {
            if let Some(p) = &mut self.private {
                p.delete(num);
            }
        } else if let Some(p) = &mut self.public
            && (!matches!(p, PublicVectors::Hnsw(h) if !h.contains(num)))
        {
            p.index_mut().remove(num)?;
        }
        Ok(())
    }

    /// Forgets a record everywhere.
    pub(crate) fn remove(&mut self, num: u64) -> Result<()> {
        let Some(e) = self.entries.remove(&num) else {
            // Not applied (yet), but a saved index may still hold a vector.
            return self.remove_vector(num, false);
        };
        if let Some(set) = self.by_owner.get_mut(&e.owner) {
            set.remove(&num);
        }
        self.text.delete(num);
        self.remove_vector(num, e.private)?;
        self.dirty += 1;
        Ok(())
    }

    /// Whether `num` passes the plan (owner, expiry, namespace, tier, time, metadata).
    pub(crate) fn visible(&self, plan: &Plan, num: u64) -> bool {
        let Some(r) = self.resolve(plan) else { return false };
        self.entries.get(&num).is_some_and(|e| r.accepts(e))
    }

    fn resolve<'p>(&self, plan: &'p Plan) -> Option<Resolved<'p>> {
        let owner = self.owners.get(&plan.owner)?;
        let namespaces: Vec<u32> =
            plan.namespaces.iter().filter_map(|n| self.namespaces.get(n)).collect();
        if !plan.namespaces.is_empty() && namespaces.is_empty() {
            return None;
        }
        Some(Resolved { owner, namespaces, plan })
    }

    /// The fused top `k` for a vector and/or a text query under `plan`.
    pub(crate) fn search(
        &self,
        plan: &Plan,
        vector: Option<&[f32]>,
        text: Option<&str>,
        k: usize,
    ) -> Result<Vec<FusedHit>> {
        let Some(r) = self.resolve(plan) else { return Ok(Vec::new()) };
        let n = (k * 4).max(20);
        let accept = |num: u64| self.entries.get(&num).is_some_and(|e| r.accepts(e));
        let vector_hits = match vector {
            Some(v) => {
                if let Some(d) = self.dim
                    && d != v.len()
                {
                    return Err(MemoryError::BadRequest(format!(
                        "the query vector has {} dimensions; this node's memory vectors have {d}",
                        v.len()
                    )));
                }
                self.vector_hits(&r, v, n, &accept)?
            }
            None => Vec::new(),
        };
        let text_hits = match text {
            Some(t) => self.text.search(t, n, Some(&accept)),
            None => Vec::new(),
        };
        Ok(reciprocal_rank_fusion(&vector_hits, &text_hits, DEFAULT_RRF_K, k))
    }

    fn vector_hits(
        &self,
        r: &Resolved<'_>,
        v: &[f32],
        n: usize,
        accept: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Hit>> {
        let owned = self.by_owner.get(&r.owner);
        let small = owned.is_none_or(|s| s.len() <= EXACT_LIMIT);
        let candidates = |private: bool| -> Vec<u64> {
            owned
                .into_iter()
                .flatten()
                .copied()
                .filter(|num| {
                    self.entries.get(num).is_some_and(|e| e.private == private && r.accepts(e))
                })
                .collect()
        };
        let params = SearchParams::new(n, n.max(64));
        let mut hits = Vec::new();
        if let Some(p) = &self.public {
            let ix = p.index();
            hits.extend(if small {
                ix.search_ids(v, n, &candidates(false))?
            } else {
                ix.search(v, &params, Some(accept))?
            });
        }
        if let Some(p) = &self.private {
            hits.extend(if small {
                p.search_exact(v, n, candidates(true))?
            } else {
                p.search(v, &params, Some(accept))?
            });
        }
        hits.retain(|h| accept(h.id));
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.dedup_by_key(|h| h.id);
        hits.truncate(n);
        Ok(hits)
    }
}

/// What [`Indexes::apply`] does with a record's vector.
#[derive(Clone, Copy)]
pub(crate) enum VectorOp<'a> {
    /// Leave whatever the vector index holds.
    Keep,
    Set(&'a [f32]),
    Remove,
}

/// The filter fields of a record being applied.
pub(crate) struct EntryFields {
    pub tier: Tier,
    pub created_us: i64,
    pub expires_us: Option<i64>,
    pub private: bool,
    pub metadata: Map<String, Value>,
}
