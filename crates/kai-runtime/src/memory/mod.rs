//! The memory service: records in the store (`kai-store`'s `MemoryStore`), searched through
//! the in-process indexes of `kai-memory` (vector ANN + BM25, fused by reciprocal rank fusion),
//! with namespaces, tiers, TTLs, private (encrypted) memories, a graph of entities and relations,
//! episodic memories of chat turns and recall into chat context.
//!
//! - **Isolation.** Every record has one owner ([`Caller::owner`]); every read path filters by
//!   it before anything else, and ids of other owners' records answer `NotFound`.
//! - **Private memories** are encrypted with the owner's vault key ([`crypt`]): the database
//!   holds ciphertext for their text, metadata and vector. They are searchable by vector and by
//!   full text: the full-text index is never written to disk (rebuilt from the store at load,
//!   decrypting private records), and private vectors stay in a RAM-only index. Graph
//!   extraction skips them, so the graph never holds their content.
//! - **Embeddings** come from the `[memory] embedding_provider`. Adds return at once and a
//!   background worker embeds in batches (restart-safe: it picks up every record still without
//!   a vector); `wait` embeds before answering. Without a provider, search is full-text only and
//!   says so.
//! - **TTL.** Expired records are filtered out of every read at once and deleted by the sweeper.
//! - **Loading** happens on first use after the vault is unsealed; sealing drops the state
//!   (and every decrypted byte) at the next worker tick.

mod crypt;
mod episodes;
mod graph;
mod index;
mod load;
mod ops;
#[cfg(test)]
mod tests;
mod types;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kai_store::Store;
use tokio::sync::{Notify, RwLock};

use crate::llm::Llm;
use crate::vault::{Vault, VaultError};
use crypt::Crypt;
use index::Indexes;

pub use graph::{
    EndRef, Entity, EntityInput, Extraction, Graph, Relation, RelationInput, normalize_name,
    parse_extraction,
};
pub use kai_memory::Storage;
use types::Result;
pub use types::{
    Caller, MAX_BATCH, MAX_K, MAX_METADATA_BYTES, MAX_TEXT_BYTES, MAX_TTL_SECS, MemoryError,
    MemoryPatch, MemoryView, Namespace, NamespaceKind, NewMemory, Recalled, SearchHit, SearchQuery,
    SearchResult, Tier, Via,
};

/// Where public vectors are kept.
#[derive(Debug, Clone)]
pub enum VectorBackend {
    /// The in-process HNSW, saved under the data dir.
    Hnsw(kai_memory::Storage),
    /// A Qdrant server (feature `qdrant`).
    Qdrant { url: String, collection: String, key_secret: Option<String> },
}

/// The service's settings (from `[memory]`).
#[derive(Debug, Clone)]
pub struct MemorySettings {
    /// `<data dir>/memory`: the vector index file and its sidecar.
    pub dir: PathBuf,
    /// The `[[providers]]` entry that embeds, and the model to ask it for.
    pub embedding_provider: Option<String>,
    pub embedding_model: Option<String>,
    pub backend: VectorBackend,
    pub sweep_interval: Duration,
    /// Memories chat recalls per reply (0: none).
    pub recall_k: usize,
    /// Store episodic memories of chat turns and summaries.
    pub episodic: bool,
    /// Persona that extracts entities and relations.
    pub extraction_persona: Option<String>,
}

impl MemorySettings {
    /// Defaults for `dir`: no embedder, in-process int8 HNSW, one-minute sweep.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            embedding_provider: None,
            embedding_model: None,
            backend: VectorBackend::Hnsw(kai_memory::Storage::Int8),
            sweep_interval: Duration::from_secs(60),
            recall_k: 5,
            episodic: true,
            extraction_persona: None,
        }
    }

    /// The label stored with every vector: `provider/model`.
    pub fn model_label(&self) -> Option<String> {
        self.embedding_provider
            .as_ref()
            .map(|p| format!("{p}/{}", self.embedding_model.as_deref().unwrap_or("default")))
    }
}

/// The loaded indexes. Their lock is a `std` lock held across blocking work (Qdrant requests,
/// index saves), so it is only ever taken on blocking threads ([`blocking`]), never on an async
/// worker: a worker parked on it could starve the I/O driver those requests wait for.
struct Shelf {
    indexes: std::sync::RwLock<Indexes>,
}

impl Shelf {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indexes> {
        self.indexes.read().unwrap_or_else(PoisonError::into_inner)
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Indexes> {
        self.indexes.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The memory service. Share it as `Arc<Memory>`.
pub struct Memory {
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    llm: Arc<Llm>,
    settings: MemorySettings,
    crypt: Crypt,
    state: RwLock<Option<Arc<Shelf>>>,
    /// Wakes the worker: records wait for an embedding or for graph extraction.
    wake: Notify,
    /// Writes between their store commit and their index update, by ticket, with the
    /// `updated_at_us` they carry (the saved index's watermark stays below them).
    inflight: Mutex<(u64, BTreeMap<u64, i64>)>,
}

/// Marks a write in flight until dropped.
struct InFlight<'a> {
    memory: &'a Memory,
    ticket: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.memory.inflight.lock().unwrap_or_else(PoisonError::into_inner).1.remove(&self.ticket);
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Runs `f` on a blocking thread (index work may block on I/O or take milliseconds of CPU).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MemoryError::Internal(format!("index task failed: {e}")))?
}

impl Memory {
    pub fn new(
        store: Arc<dyn Store>,
        vault: Arc<Vault>,
        llm: Arc<Llm>,
        settings: MemorySettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            crypt: Crypt::new(vault.clone()),
            store,
            vault,
            llm,
            settings,
            state: RwLock::new(None),
            wake: Notify::new(),
            inflight: Mutex::new((0, BTreeMap::new())),
        })
    }

    pub fn settings(&self) -> &MemorySettings {
        &self.settings
    }

    /// Whether vectors can be computed (an embedding provider is configured).
    pub fn has_embedder(&self) -> bool {
        self.settings.embedding_provider.is_some()
    }

    fn begin_write(&self, updated_at_us: i64) -> InFlight<'_> {
        let mut g = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        g.0 += 1;
        let ticket = g.0;
        g.1.insert(ticket, updated_at_us);
        InFlight { memory: self, ticket }
    }

    /// Every record updated at or before this is reflected in the indexes.
    fn watermark(&self) -> i64 {
        let g = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        let oldest = g.1.values().min().copied().unwrap_or(i64::MAX);
        now_us().min(oldest.saturating_sub(1))
    }

    /// The loaded search state, loading it on first use. Fails with `Sealed` while the vault is.
    async fn shelf(&self) -> Result<Arc<Shelf>> {
        if !self.vault.is_unsealed() {
            return Err(VaultError::Sealed.into());
        }
        if let Some(s) = self.state.read().await.as_ref() {
            return Ok(s.clone());
        }
        let mut slot = self.state.write().await;
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let shelf = Arc::new(self.load().await?);
        *slot = Some(shelf.clone());
        drop(slot);
        self.wake.notify_one();
        Ok(shelf)
    }

    /// Drops the loaded state and cached keys (after the vault was sealed).
    async fn unload(&self) {
        let mut slot = self.state.write().await;
        if slot.take().is_some() {
            tracing::info!("vault sealed: memory indexes and keys dropped from memory");
        }
        self.crypt.forget();
    }

    /// Number of records the loaded indexes know (loads them if needed).
    pub async fn indexed(&self) -> Result<usize> {
        let shelf = self.shelf().await?;
        blocking(move || Ok(shelf.read().len())).await
    }

    /// Writes the vector index and its sidecar now (also done by the worker and at shutdown).
    pub async fn save(&self) -> Result<()> {
        self.save_if(false).await
    }

    /// Saves when `only_dirty` is false or something changed since the last save.
    async fn save_if(&self, only_dirty: bool) -> Result<()> {
        let Some(shelf) = self.state.read().await.clone() else { return Ok(()) };
        let watermark = self.watermark();
        blocking(move || {
            let mut ix = shelf.write();
            if only_dirty && ix.dirty == 0 { Ok(()) } else { ix.save(watermark) }
        })
        .await
    }
}
