//! Turning stored rows into views (decrypting private ones) and loading the search state:
//! open the saved vector index (or start empty), then page through every record once, adding
//! it to the filter table and the full-text index and reconciling its vector with the index.

use std::collections::HashSet;

use kai_crypto::vault::NamedKey;
use kai_store::MemoryRow;
use serde_json::{Map, Value};

use super::crypt::{Crypt, Field};
use super::index::{EntryFields, Indexes, VectorOp, VectorSettings};
use super::types::{MemoryError, MemoryView, Namespace, Result, Tier};
use super::{Memory, Shelf, VectorBackend, blocking, now_us};
use crate::vault::SECRET;

/// Rows read per page while loading.
const PAGE: u32 = 500;

/// A stored record, decrypted.
pub(crate) struct Decoded {
    pub view: MemoryView,
    pub vector: Option<Vec<f32>>,
}

pub(crate) fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_of(bytes: &[u8], id: &str) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(MemoryError::Internal(format!("the vector of memory {id} is not f32s")));
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

fn corrupt(id: &str, what: &str) -> MemoryError {
    MemoryError::Internal(format!("memory {id}: stored {what} is unreadable"))
}

/// Decodes a row; `key` must be the owner's key when the row is encrypted.
pub(crate) fn decode_with(row: &MemoryRow, key: Option<&NamedKey>) -> Result<Decoded> {
    let (text, metadata, vector) = match (row.encrypted, key) {
        (false, _) => {
            let meta = row.metadata.clone();
            let vector = row.embedding.as_deref().map(|b| vector_of(b, &row.id)).transpose()?;
            (row.text.clone(), meta, vector)
        }
        (true, Some(k)) => {
            let open = |field, text: &str| Crypt::open(k, &row.owner, &row.id, field, text);
            let text = String::from_utf8(open(Field::Text, &row.text)?.to_vec())
                .map_err(|_| corrupt(&row.id, "text"))?;
            let meta = String::from_utf8(open(Field::Metadata, &row.metadata)?.to_vec())
                .map_err(|_| corrupt(&row.id, "metadata"))?;
            let vector = match &row.embedding {
                Some(b) => {
                    let sealed = std::str::from_utf8(b).map_err(|_| corrupt(&row.id, "vector"))?;
                    Some(vector_of(&open(Field::Embedding, sealed)?, &row.id)?)
                }
                None => None,
            };
            (text, meta, vector)
        }
        (true, None) => return Err(MemoryError::Internal(format!("memory {}: no key", row.id))),
    };
    let metadata: Map<String, Value> = match serde_json::from_str(&metadata) {
        Ok(Value::Object(m)) => m,
        _ => return Err(corrupt(&row.id, "metadata")),
    };
    let (kind, id) = Namespace::parse(&format!("{}:{}", row.ns_kind, row.ns_id))?;
    let view = MemoryView {
        id: row.id.clone(),
        namespace: Namespace { kind, id: id.unwrap_or_default() },
        tier: row.tier.parse::<Tier>()?,
        text,
        metadata,
        private: row.encrypted,
        embedded: row.embedding.is_some(),
        embedding_model: row.embedding_model.clone(),
        created_at_us: row.created_at_us,
        updated_at_us: row.updated_at_us,
        expires_at_us: row.expires_at_us,
    };
    Ok(Decoded { view, vector })
}

pub(crate) fn entry_fields(view: &MemoryView) -> EntryFields {
    EntryFields {
        tier: view.tier,
        created_us: view.created_at_us,
        expires_us: view.expires_at_us,
        private: view.private,
        metadata: view.metadata.clone(),
    }
}

impl Memory {
    /// Decodes a row, fetching its owner's key when it is private.
    pub(crate) async fn decode(&self, row: &MemoryRow) -> Result<Decoded> {
        let key =
            if row.encrypted { Some(self.crypt.key(&row.owner, false, "").await?) } else { None };
        decode_with(row, key.as_deref())
    }

    async fn vector_settings(&self) -> Result<VectorSettings> {
        let dir = self.settings.dir.clone();
        match &self.settings.backend {
            VectorBackend::Hnsw(storage) => Ok(VectorSettings::Hnsw { dir, storage: *storage }),
            #[cfg(feature = "qdrant")]
            VectorBackend::Qdrant { url, collection, key_secret } => {
                let api_key = match key_secret {
                    Some(name) => Some(
                        String::from_utf8_lossy(&self.vault.read_internal(SECRET, name).await?)
                            .into_owned(),
                    ),
                    None => None,
                };
                Ok(VectorSettings::Qdrant {
                    config: kai_memory::qdrant::QdrantConfig {
                        url: url.clone(),
                        collection: collection.clone(),
                        api_key,
                        timeout: std::time::Duration::from_secs(30),
                    },
                    runtime: tokio::runtime::Handle::current(),
                    dir,
                })
            }
            #[cfg(not(feature = "qdrant"))]
            VectorBackend::Qdrant { .. } => {
                let _ = SECRET;
                Err(MemoryError::BadRequest(
                    "this build has no Qdrant support (feature `qdrant`)".into(),
                ))
            }
        }
    }

    /// Builds the search state from the saved vector index and the store.
    pub(super) async fn load(&self) -> Result<Shelf> {
        let started = std::time::Instant::now();
        let settings = self.vector_settings().await?;
        let label = self.settings.model_label().unwrap_or_default();
        let (mut indexes, saved) = blocking(move || {
            let indexes = Indexes::open(settings, &label)?;
            let saved: HashSet<u64> = indexes.public_vector_ids()?.into_iter().collect();
            Ok((indexes, saved))
        })
        .await?;
        let watermark = indexes.loaded_watermark;
        let current = self.settings.model_label();
        let mut unseen = saved.clone();
        let mut reembed = Vec::new();
        let (mut after, now) = (0, now_us());
        loop {
            let rows = self.store.memories_after(after, PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = last.num;
            let mut page = Vec::with_capacity(rows.len());
            for row in rows {
                if row.expires_at_us.is_some_and(|e| e <= now) {
                    continue;
                }
                match self.decode(&row).await {
                    Ok(d) => page.push((row, d)),
                    Err(e) => {
                        tracing::error!(id = %row.id, code = e.code(), "memory record unreadable; skipped")
                    }
                }
            }
            let current = current.clone();
            let (ix, unseen_now, stale) = blocking(move || {
                let mut stale = Vec::new();
                let (mut public, mut private) = (Vec::new(), Vec::new());
                for (row, d) in page {
                    let num = row.num as u64;
                    let model_ok = current.is_none() || row.embedding_model == current;
                    let vector = d.vector.filter(|v| {
                        let fits = model_ok && indexes.dim().is_none_or(|dim| dim == v.len());
                        if !fits {
                            stale.push(row.clone());
                        }
                        fits
                    });
                    let in_saved = !d.view.private && unseen.remove(&num);
                    let fresh = watermark.is_some_and(|w| row.updated_at_us <= w);
                    let op = if vector.is_none() && in_saved {
                        VectorOp::Remove
                    } else {
                        VectorOp::Keep
                    };
                    let ns = d.view.namespace.key();
                    indexes.apply(num, &row.owner, &ns, entry_fields(&d.view), &d.view.text, op)?;
                    if let Some(v) = vector
                        && !(in_saved && fresh)
                    {
                        if d.view.private { private.push((num, v)) } else { public.push((num, v)) }
                    }
                }
                indexes.upsert_vectors(false, &public)?;
                indexes.upsert_vectors(true, &private)?;
                Ok(((indexes, unseen), stale))
            })
            .await
            .map(|((i, u), s)| (i, u, s))?;
            indexes = ix;
            unseen = unseen_now;
            reembed.extend(stale);
        }
        let gone: Vec<u64> = unseen.into_iter().collect();
        let removed = gone.len();
        let mut indexes = blocking(move || {
            for num in gone {
                indexes.remove(num)?;
            }
            Ok(indexes)
        })
        .await?;
        for mut row in reembed.iter().cloned() {
            row.embedding = None;
            row.embedding_model = None;
            self.store.update_memory(&row).await?;
        }
        if saved.is_empty() || removed > 0 || indexes.dirty > 0 {
            indexes.dirty = indexes.dirty.max(1);
        }
        tracing::info!(
            records = indexes.len(),
            saved_vectors = saved.len(),
            removed_vectors = removed,
            reembed = reembed.len(),
            ms = started.elapsed().as_millis() as u64,
            "memory indexes loaded"
        );
        Ok(Shelf { indexes: std::sync::RwLock::new(indexes) })
    }
}
