//! The memory worker: one task on the node's `TaskTracker` that embeds records still without a
//! vector (in batches, restart-safe since it reads them from the store), extracts graph
//! entities when an extraction persona is configured, deletes expired records every
//! `sweep_interval`, saves the vector index when it changed, drops everything decrypted when the
//! vault is sealed, and saves once more when cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::crypt::{Crypt, Field};
use super::load::vector_bytes;
use super::types::{MemoryError, Result};
use super::{Memory, blocking, now_us};

/// Records embedded per provider call.
const EMBED_BATCH: u32 = 64;
/// Records handed to the extractor per round.
const EXTRACT_BATCH: u32 = 8;
/// Expired records deleted per statement.
const SWEEP_BATCH: u32 = 500;
/// Longest pause after a provider failure.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Memory {
    /// Starts the worker; it stops (after a final save) when `cancel` fires.
    pub fn start(self: &Arc<Self>, tracker: &TaskTracker, cancel: CancellationToken) {
        let me = self.clone();
        tracker.spawn(async move { me.run(cancel).await });
    }

    async fn run(&self, cancel: CancellationToken) {
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Duration::ZERO;
        let mut retry_at: Option<Instant> = None;
        loop {
            let mut sweeping = false;
            tokio::select! {
                () = cancel.cancelled() => {
                    if let Err(e) = self.save().await {
                        tracing::error!(code = e.code(), error = %e, "memory index not saved at shutdown; it is rebuilt at the next start");
                    }
                    return;
                }
                () = self.wake.notified() => {}
                _ = sweep.tick() => sweeping = true,
                () = async { match retry_at { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                    retry_at = None;
                }
            }
            if !self.vault.is_unsealed() {
                self.unload().await;
                continue;
            }
            if let Err(e) = self.shelf().await {
                tracing::warn!(code = e.code(), error = %e, "memory indexes could not be loaded");
                continue;
            }
            if retry_at.is_none() {
                match self.background_work().await {
                    Ok(()) => backoff = Duration::ZERO,
                    Err(e) => {
                        backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                        retry_at = Some(Instant::now() + backoff);
                        tracing::warn!(
                            code = e.code(),
                            retry_in_ms = backoff.as_millis() as u64,
                            "memory background work failed; retrying"
                        );
                    }
                }
            }
            if sweeping {
                if let Err(e) = self.sweep().await {
                    tracing::warn!(
                        code = e.code(),
                        "expired memories not swept; retrying next interval"
                    );
                }
                if let Err(e) = self.save_if(true).await {
                    tracing::warn!(code = e.code(), error = %e, "memory index not saved; retrying next interval");
                }
            }
        }
    }

    async fn background_work(&self) -> Result<()> {
        if self.has_embedder() {
            self.embed_pending().await?;
        }
        if self.settings.extraction_persona.is_some() {
            self.extract_pending().await?;
        }
        Ok(())
    }

    /// Embeds every record that has no vector yet.
    pub(crate) async fn embed_pending(&self) -> Result<usize> {
        let shelf = self.shelf().await?;
        let label = self.settings.model_label().unwrap_or_default();
        let (mut after, mut done) = (0, 0);
        loop {
            let rows = self.store.memories_without_embedding(after, EMBED_BATCH).await?;
            let Some(last) = rows.last() else { return Ok(done) };
            after = last.num;
            let now = now_us();
            let mut batch = Vec::new();
            for row in rows.iter().filter(|r| r.expires_at_us.is_none_or(|e| e > now)) {
                match self.decode(row).await {
                    Ok(d) => batch.push((row, d.view.text)),
                    Err(e) => {
                        tracing::error!(id = %row.id, code = e.code(), "memory unreadable; not embedded")
                    }
                }
            }
            let texts: Vec<String> = batch.iter().map(|(_, t)| t.clone()).collect();
            let vectors =
                if texts.is_empty() { Vec::new() } else { self.embed_texts(&texts).await? };
            let (mut public, mut private) = (Vec::new(), Vec::new());
            for ((row, _), v) in batch.into_iter().zip(vectors) {
                let bytes = if row.encrypted {
                    let key = self.crypt.key(&row.owner, false, "").await?;
                    Crypt::seal(&key, &row.owner, &row.id, Field::Embedding, &vector_bytes(&v))?
                        .into_bytes()
                } else {
                    vector_bytes(&v)
                };
                let _inflight = self.begin_write(row.updated_at_us);
                if self
                    .store
                    .set_memory_embedding(&row.id, row.updated_at_us, &bytes, &label)
                    .await?
                {
                    if row.encrypted {
                        private.push((row.num as u64, v))
                    } else {
                        public.push((row.num as u64, v))
                    }
                }
            }
            done += public.len() + private.len();
            let s = shelf.clone();
            blocking(move || {
                let mut ix = s.write();
                public.retain(|(n, _)| ix.contains(*n));
                private.retain(|(n, _)| ix.contains(*n));
                ix.upsert_vectors(false, &public)?;
                ix.upsert_vectors(true, &private)
            })
            .await?;
            if rows.len() < EMBED_BATCH as usize {
                return Ok(done);
            }
        }
    }

    /// Runs the graph extractor over records it has not seen. Private records are never sent
    /// to it (they are only marked).
    pub(crate) async fn extract_pending(&self) -> Result<()> {
        let mut after = 0;
        loop {
            let rows = self.store.memories_needing_extraction(after, EXTRACT_BATCH).await?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.num;
            for row in &rows {
                if !row.encrypted {
                    match self.extract_from(row).await {
                        Ok(n) => tracing::debug!(id = %row.id, entities = n, "graph extracted"),
                        Err(e @ (MemoryError::Model(_) | MemoryError::Store(_))) => return Err(e),
                        Err(e) => {
                            tracing::warn!(id = %row.id, code = e.code(), error = %e, "graph extraction answer refused")
                        }
                    }
                }
                self.store.mark_memory_extracted(&row.id).await?;
            }
            if rows.len() < EXTRACT_BATCH as usize {
                return Ok(());
            }
        }
    }

    /// Deletes expired records from the store and the indexes; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let shelf = self.shelf().await?;
        let mut total = 0;
        loop {
            let nums = self.store.delete_expired_memories(now_us(), SWEEP_BATCH).await?;
            total += nums.len();
            let full = nums.len() == SWEEP_BATCH as usize;
            if !nums.is_empty() {
                let s = shelf.clone();
                blocking(move || {
                    let mut ix = s.write();
                    for n in nums {
                        ix.remove(n as u64)?;
                    }
                    Ok(())
                })
                .await?;
            }
            if !full {
                if total > 0 {
                    tracing::info!(deleted = total, "expired memories swept");
                }
                return Ok(total);
            }
        }
    }
}
