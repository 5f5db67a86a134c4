//! The full-text index of text artifacts and notes: the project's BM25 index (`kai-memory`) in
//! memory, its documents kept in the store (`search_docs`) as the source of truth. Why BM25 here
//! rather than SQL full-text: one ranking on SQLite and PostgreSQL alike (FTS5 and `tsvector`
//! rank differently), and the same tokenizer the memory search uses. The index is built from the
//! store on first use and kept current by every write; a restart rebuilds it (it is small: text
//! is capped per document by `artifacts.index_text_bytes`).

use std::collections::HashMap;
use std::sync::Arc;

use kai_memory::{Bm25Index, Bm25Params};
use kai_store::{SearchDocRow, Store, StoreResult};
use tokio::sync::RwLock;

/// Rows read per page while rebuilding.
const PAGE: u32 = 500;

struct Built {
    bm25: Bm25Index,
    /// Document id → owner, for the visibility filter.
    owners: HashMap<u64, Arc<str>>,
}

/// The index; `None` until first used.
#[derive(Default)]
pub struct TextIndex {
    inner: RwLock<Option<Built>>,
}

fn indexed_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}")
}

/// One hit, best first.
#[derive(Debug, Clone)]
pub struct TextHit {
    pub doc: SearchDocRow,
    pub score: f32,
}

impl TextIndex {
    async fn ensure(&self, store: &dyn Store) -> StoreResult<()> {
        if self.inner.read().await.is_some() {
            return Ok(());
        }
        let mut slot = self.inner.write().await;
        if slot.is_some() {
            return Ok(());
        }
        let params = Bm25Params::default();
        let mut bm25 =
            Bm25Index::new(params).map_err(|e| kai_store::StoreError::Corrupt(e.to_string()))?;
        let mut owners = HashMap::new();
        let mut after = 0;
        loop {
            let page = store.search_docs(after, PAGE).await?;
            for d in &page {
                let id = d.doc_id as u64;
                bm25.insert(id, &indexed_text(&d.title, &d.body))
                    .map_err(|e| kai_store::StoreError::Corrupt(e.to_string()))?;
                owners.insert(id, Arc::from(d.owner.as_str()));
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => after = last.doc_id,
                _ => break,
            }
        }
        tracing::debug!(documents = bm25.len(), "full-text index built");
        *slot = Some(Built { bm25, owners });
        Ok(())
    }

    /// Adds or replaces a document (after its row committed). Before the first search the index
    /// does not exist yet and will read the row when it is built.
    pub async fn upsert(&self, doc_id: i64, owner: &str, title: &str, body: &str) {
        if let Some(built) = self.inner.write().await.as_mut() {
            let id = doc_id as u64;
            if built.bm25.insert(id, &indexed_text(title, body)).is_ok() {
                built.owners.insert(id, Arc::from(owner));
            }
        }
    }

    /// Removes a document (after its row was deleted).
    pub async fn remove(&self, doc_id: i64) {
        if let Some(built) = self.inner.write().await.as_mut() {
            built.bm25.delete(doc_id as u64);
            built.owners.remove(&(doc_id as u64));
        }
    }

    /// The `k` best documents for `query` that `owner` may see (`None`: everyone's).
    pub async fn search(
        &self,
        store: &dyn Store,
        query: &str,
        owner: Option<&str>,
        kind: Option<&str>,
        k: usize,
    ) -> StoreResult<Vec<TextHit>> {
        self.ensure(store).await?;
        let hits = {
            let guard = self.inner.read().await;
            let Some(built) = guard.as_ref() else { return Ok(Vec::new()) };
            let visible =
                |id: u64| owner.is_none_or(|o| built.owners.get(&id).is_some_and(|w| &**w == o));
            // Over-fetch when filtering by kind, which the index does not know.
            let want = if kind.is_some() { k * 4 } else { k };
            built.bm25.search(query, want, Some(&visible))
        };
        let ids: Vec<i64> = hits.iter().map(|h| h.id as i64).collect();
        let mut docs: HashMap<i64, SearchDocRow> =
            store.search_docs_by_id(&ids).await?.into_iter().map(|d| (d.doc_id, d)).collect();
        Ok(hits
            .into_iter()
            .filter_map(|h| docs.remove(&(h.id as i64)).map(|doc| TextHit { doc, score: h.score }))
            .filter(|h| kind.is_none_or(|k| h.doc.kind == k))
            .take(k)
            .collect())
    }
}
