//! The service's operations: add (batch), get, update, forget, search, export, embeddings,
//! recall and episodic records. Every operation checks the caller's ownership first.

use kai_llm::EmbedRequest;
use kai_store::MemoryRow;
use serde_json::{Map, Value};

use super::crypt::{Crypt, Field};
use super::index::{Plan, VectorOp};
use super::load::{decode_with, entry_fields, vector_bytes};
use super::types::{
    Caller, MAX_BATCH, MAX_K, MemoryError, MemoryPatch, MemoryView, Namespace, NamespaceKind,
    NewMemory, Recalled, Result, SearchHit, SearchQuery, SearchResult, Tier, Via, check_content,
};
use super::{Memory, blocking, now_us};
use crate::llm::ModelError;

/// Texts per embedding request.
const EMBED_BATCH: usize = 64;
/// Longest search text (bytes).
const MAX_QUERY_BYTES: usize = 2048;

fn bad(msg: impl Into<String>) -> MemoryError {
    MemoryError::BadRequest(msg.into())
}

fn new_id() -> String {
    format!("mem_{}", uuid::Uuid::now_v7().simple())
}

fn check_vector(v: &[f32]) -> Result<()> {
    if v.is_empty() || v.len() > 8192 || v.iter().any(|x| !x.is_finite()) {
        return Err(bad("a vector has 1 to 8192 finite components"));
    }
    if v.iter().all(|x| *x == 0.0) {
        return Err(bad("a vector must not be all zeros"));
    }
    Ok(())
}

fn expiry(now: i64, ttl: Option<u64>) -> Option<i64> {
    ttl.map(|t| now.saturating_add(i64::try_from(t).unwrap_or(i64::MAX).saturating_mul(1_000_000)))
}

impl Memory {
    /// Embeds `texts` with the configured provider, in batches.
    pub async fn embed_texts(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let name = self.settings.embedding_provider.as_deref().ok_or(MemoryError::NoEmbedder)?;
        let provider = self.llm.provider_named(name).await?;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(EMBED_BATCH) {
            let mut req = EmbedRequest::new(chunk.to_vec());
            req.model = self.settings.embedding_model.clone();
            let resp = provider.embed(req).await.map_err(ModelError::from)?;
            if resp.embeddings.len() != chunk.len() {
                return Err(MemoryError::EmbedderProtocol {
                    asked: chunk.len(),
                    got: resp.embeddings.len(),
                });
            }
            for v in &resp.embeddings {
                check_vector(v).map_err(|_| MemoryError::EmbedderProtocol { asked: 1, got: 0 })?;
            }
            out.extend(resp.embeddings);
        }
        Ok(out)
    }

    /// The row for `view`'s fields, sealed with `key` when private.
    fn seal_row(
        caller_owner: &str,
        view: &MemoryView,
        vector: Option<&[f32]>,
        model: Option<String>,
        key: Option<&kai_crypto::vault::NamedKey>,
        needs_extraction: bool,
    ) -> Result<MemoryRow> {
        let meta = Value::Object(view.metadata.clone()).to_string();
        let (text, metadata, embedding) = match key {
            Some(k) if view.private => {
                let seal = |f, d: &[u8]| Crypt::seal(k, caller_owner, &view.id, f, d);
                let emb = match vector {
                    Some(v) => Some(seal(Field::Embedding, &vector_bytes(v))?.into_bytes()),
                    None => None,
                };
                (
                    seal(Field::Text, view.text.as_bytes())?,
                    seal(Field::Metadata, meta.as_bytes())?,
                    emb,
                )
            }
            _ => (view.text.clone(), meta, vector.map(vector_bytes)),
        };
        Ok(MemoryRow {
            id: view.id.clone(),
            num: 0,
            owner: caller_owner.to_owned(),
            ns_kind: view.namespace.kind.as_str().to_owned(),
            ns_id: view.namespace.id.clone(),
            tier: view.tier.as_str().to_owned(),
            text,
            metadata,
            embedding_model: embedding.as_ref().and(model),
            embedding,
            encrypted: view.private,
            needs_extraction,
            created_at_us: view.created_at_us,
            updated_at_us: view.updated_at_us,
            expires_at_us: view.expires_at_us,
        })
    }

    /// Adds memories. With `wait`, vectors are computed before answering (an embedder failure
    /// then fails the request and stores nothing); otherwise the worker embeds them shortly.
    pub async fn add(
        &self,
        caller: &Caller,
        items: Vec<NewMemory>,
        wait: bool,
    ) -> Result<Vec<MemoryView>> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(bad(format!("send 1 to {MAX_BATCH} memories at a time")));
        }
        let now = now_us();
        let mut views = Vec::with_capacity(items.len());
        let mut vectors = Vec::with_capacity(items.len());
        for item in items {
            check_content(&item.text, &item.metadata, item.ttl_secs)?;
            if let Some(v) = &item.embedding {
                check_vector(v)?;
            }
            let namespace = match item.namespace {
                Some(ns) => caller.namespace(ns.kind, Some(ns.id))?,
                None => caller.default_namespace(),
            };
            views.push(MemoryView {
                id: new_id(),
                namespace,
                tier: item.tier,
                text: item.text,
                metadata: item.metadata,
                private: item.private,
                embedded: false,
                embedding_model: None,
                created_at_us: now,
                updated_at_us: now,
                expires_at_us: expiry(now, item.ttl_secs),
            });
            vectors.push(item.embedding);
        }
        let shelf = self.shelf().await?;
        if wait && self.has_embedder() {
            let missing: Vec<usize> = (0..views.len()).filter(|i| vectors[*i].is_none()).collect();
            let texts: Vec<String> = missing.iter().map(|i| views[*i].text.clone()).collect();
            if !texts.is_empty() {
                for (i, v) in missing.into_iter().zip(self.embed_texts(&texts).await?) {
                    vectors[i] = Some(v);
                }
            }
        }
        let key = if views.iter().any(|v| v.private) {
            Some(self.crypt.key(&caller.owner, true, &caller.actor).await?)
        } else {
            None
        };
        let label = self.settings.model_label().unwrap_or_else(|| "external".into());
        let extract = self.settings.extraction_persona.is_some();
        let mut rows = Vec::with_capacity(views.len());
        for (view, vector) in views.iter_mut().zip(&vectors) {
            view.embedded = vector.is_some();
            view.embedding_model = vector.as_ref().map(|_| label.clone());
            let needs = extract && !view.private;
            rows.push(Self::seal_row(
                &caller.owner,
                view,
                vector.as_deref(),
                Some(label.clone()),
                key.as_deref(),
                needs,
            )?);
        }
        let _inflight = self.begin_write(now);
        let nums = self.store.insert_memories(&rows).await?;
        let owner = caller.owner.clone();
        let applied: Vec<_> = nums.into_iter().zip(views.iter().cloned()).zip(vectors).collect();
        let pending = applied.iter().any(|(_, v)| v.is_none()) && self.has_embedder();
        blocking(move || {
            let mut ix = shelf.write();
            let (mut public, mut private) = (Vec::new(), Vec::new());
            for ((num, view), vector) in applied {
                let ns = view.namespace.key();
                ix.apply(num as u64, &owner, &ns, entry_fields(&view), &view.text, VectorOp::Keep)?;
                if let Some(v) = vector {
                    if view.private {
                        private.push((num as u64, v))
                    } else {
                        public.push((num as u64, v))
                    }
                }
            }
            // One batch per index: the HNSW links a batch on all cores.
            ix.upsert_vectors(false, &public)?;
            ix.upsert_vectors(true, &private)
        })
        .await?;
        if pending || extract {
            self.wake.notify_one();
        }
        Ok(views)
    }

    /// The caller's row `id` (expired or foreign rows are `NotFound`).
    async fn own_row(&self, caller: &Caller, id: &str) -> Result<MemoryRow> {
        match self.store.memory(id).await? {
            Some(r) if r.owner == caller.owner && r.expires_at_us.is_none_or(|e| e > now_us()) => {
                Ok(r)
            }
            _ => Err(MemoryError::NotFound(format!("no memory {id:?}"))),
        }
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<MemoryView> {
        let row = self.own_row(caller, id).await?;
        Ok(self.decode(&row).await?.view)
    }

    /// Changes text, metadata, tier or expiry. A new text gets a new vector (now with `wait`).
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        patch: MemoryPatch,
        wait: bool,
    ) -> Result<MemoryView> {
        let shelf = self.shelf().await?;
        let row = self.own_row(caller, id).await?;
        let decoded = self.decode(&row).await?;
        let mut view = decoded.view;
        let now = now_us();
        let text_changed = patch.text.as_ref().is_some_and(|t| *t != view.text);
        if let Some(t) = patch.text {
            view.text = t;
        }
        if let Some(m) = patch.metadata {
            view.metadata = m;
        }
        if let Some(t) = patch.tier {
            view.tier = t;
        }
        let ttl = patch.ttl_secs.flatten();
        check_content(&view.text, &view.metadata, ttl)?;
        if let Some(t) = patch.ttl_secs {
            view.expires_at_us = expiry(now, t);
        }
        view.updated_at_us = now;
        let vector = match (text_changed, wait && self.has_embedder()) {
            (false, _) => decoded.vector,
            (true, true) => self.embed_texts(std::slice::from_ref(&view.text)).await?.pop(),
            (true, false) => None,
        };
        view.embedded = vector.is_some();
        view.embedding_model = if text_changed {
            vector.as_ref().and(self.settings.model_label())
        } else {
            row.embedding_model.clone()
        };
        let key = if view.private {
            Some(self.crypt.key(&caller.owner, false, &caller.actor).await?)
        } else {
            None
        };
        let mut new_row = Self::seal_row(
            &caller.owner,
            &view,
            vector.as_deref(),
            view.embedding_model.clone(),
            key.as_deref(),
            row.needs_extraction
                || (text_changed && self.settings.extraction_persona.is_some() && !view.private),
        )?;
        new_row.num = row.num;
        let _inflight = self.begin_write(now);
        self.store.update_memory(&new_row).await?;
        let owner = caller.owner.clone();
        let v2 = view.clone();
        blocking(move || {
            let op = match (&vector, text_changed) {
                (Some(v), true) => VectorOp::Set(v),
                (None, true) => VectorOp::Remove,
                (_, false) => VectorOp::Keep,
            };
            shelf.write().apply(
                row.num as u64,
                &owner,
                &v2.namespace.key(),
                entry_fields(&v2),
                &v2.text,
                op,
            )
        })
        .await?;
        if text_changed {
            self.wake.notify_one();
        }
        Ok(view)
    }

    /// Deletes the caller's memory `id` for good.
    pub async fn forget(&self, caller: &Caller, id: &str) -> Result<()> {
        let shelf = self.shelf().await?;
        self.own_row(caller, id).await?;
        let _inflight = self.begin_write(now_us());
        let Some(num) = self.store.delete_memory(id).await? else {
            return Err(MemoryError::NotFound(format!("no memory {id:?}")));
        };
        blocking(move || shelf.write().remove(num as u64)).await
    }

    fn plan(&self, caller: &Caller, q: &SearchQuery) -> Result<Plan> {
        let mut namespaces = Vec::with_capacity(q.namespaces.len());
        for ns in &q.namespaces {
            namespaces.push(caller.namespace(ns.kind, Some(ns.id.clone()))?.key());
        }
        Ok(Plan {
            owner: caller.owner.clone(),
            namespaces,
            tiers: q.tiers.clone(),
            created_after_us: q.created_after_us,
            created_before_us: q.created_before_us,
            metadata: q.metadata.clone(),
            now_us: now_us(),
        })
    }

    /// Hybrid search over the caller's memories.
    pub async fn search(&self, caller: &Caller, q: SearchQuery) -> Result<SearchResult> {
        if !(1..=MAX_K).contains(&q.k) {
            return Err(bad(format!("k is 1 to {MAX_K}")));
        }
        let text = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.len() > MAX_QUERY_BYTES) {
            return Err(bad(format!("the query is at most {MAX_QUERY_BYTES} bytes")));
        }
        if text.is_none() && q.vector.is_none() {
            return Err(bad("give a query text (q) or a vector"));
        }
        if let Some(v) = &q.vector {
            check_vector(v)?;
        }
        let plan = self.plan(caller, &q)?;
        let shelf = self.shelf().await?;
        let (vector, notice) = match (&q.vector, &text) {
            (Some(v), _) => (Some(v.clone()), None),
            (None, Some(t)) if self.has_embedder() => {
                match self.embed_texts(std::slice::from_ref(t)).await {
                    Ok(mut v) => (v.pop(), None),
                    Err(e) => {
                        tracing::warn!(
                            code = e.code(),
                            "query embedding failed; full-text search only"
                        );
                        (
                            None,
                            Some(format!(
                                "vector search skipped: the embedding provider failed ({})",
                                e.code()
                            )),
                        )
                    }
                }
            }
            (None, _) => (None, Some(MemoryError::NoEmbedder.to_string())),
        };
        let vector_search = vector.is_some();
        let k = q.k;
        let (shelf2, plan2, text2) = (shelf.clone(), plan.clone(), text.clone());
        let fused =
            blocking(move || shelf2.read().search(&plan2, vector.as_deref(), text2.as_deref(), k))
                .await?;
        let mut hits = Vec::with_capacity(fused.len());
        let nums: Vec<i64> = fused.iter().map(|f| f.id as i64).collect();
        let rows = self.store.memories_by_num(&nums).await?;
        for f in &fused {
            let Some(row) = rows.iter().find(|r| r.num as u64 == f.id) else { continue };
            if row.owner != caller.owner || row.expires_at_us.is_some_and(|e| e <= plan.now_us) {
                continue;
            }
            hits.push(SearchHit {
                memory: self.decode(row).await?.view,
                score: f.score,
                vector: f.vector.map(|c| (c.rank, c.score)),
                text: f.text.map(|c| (c.rank, c.score)),
                via: Via::Search,
            });
        }
        if q.expand_graph && !hits.is_empty() {
            self.expand(&shelf, &plan, &mut hits, k).await?;
        }
        Ok(SearchResult { hits, vector_search, notice })
    }

    /// A page of the caller's memories (for export), oldest first, with their vectors, and the
    /// cursor of the next page.
    pub async fn export_page(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<(MemoryView, Option<Vec<f32>>)>, Option<i64>)> {
        let rows = self.store.owner_memories_after(&caller.owner, after, limit).await?;
        let next = (rows.len() as u32 == limit).then(|| rows.last().map(|r| r.num)).flatten();
        let now = now_us();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.iter().filter(|r| r.expires_at_us.is_none_or(|e| e > now)) {
            let d = self.decode(row).await?;
            out.push((d.view, d.vector));
        }
        Ok((out, next))
    }

    /// Up to `k` of the caller's memories relevant to `query`, leaving out those `skip` rejects
    /// (say, the turns already in the context window).
    pub async fn recall(
        &self,
        caller: &Caller,
        query: &str,
        k: usize,
        skip: &(dyn Fn(&MemoryView) -> bool + Send + Sync),
    ) -> Result<Vec<Recalled>> {
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let text: String = query.chars().take(MAX_QUERY_BYTES / 4).collect();
        let found = self.search(caller, SearchQuery::text(text, (k * 3).min(MAX_K))).await?;
        Ok(found
            .hits
            .into_iter()
            .filter(|h| !skip(&h.memory))
            .take(k)
            .map(|h| Recalled {
                id: h.memory.id,
                tier: h.memory.tier,
                text: h.memory.text,
                score: h.score,
            })
            .collect())
    }

    /// Stores an episodic memory of a chat thread (the vector follows from the worker).
    pub async fn record_episode(
        &self,
        caller: &Caller,
        thread_id: &str,
        text: String,
        metadata: Map<String, Value>,
    ) -> Result<MemoryView> {
        let mut item = NewMemory::new(text);
        item.tier = Tier::Episodic;
        item.metadata = metadata;
        item.namespace = Some(Namespace { kind: NamespaceKind::Thread, id: thread_id.to_owned() });
        let mut views = self.add(caller, vec![item], false).await?;
        views.pop().ok_or_else(|| MemoryError::Internal("episode not stored".into()))
    }

    /// Decodes a row known to belong to `caller` (graph expansion).
    pub(crate) async fn view_of(&self, row: &MemoryRow) -> Result<MemoryView> {
        let key =
            if row.encrypted { Some(self.crypt.key(&row.owner, false, "").await?) } else { None };
        Ok(decode_with(row, key.as_deref())?.view)
    }
}
