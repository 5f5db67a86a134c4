//! [`LocalProvider`]: the embedded models behind the same [`Provider`] trait as the remote
//! adapters, so personas, the router, budgets and `/v1` treat them alike.
//!
//! Models load on first use (or on [`LocalProvider::preload`]) on a blocking thread. Generation
//! and embedding run on blocking threads under their own concurrency limits (one at a time by
//! default: on a small machine parallel inference only makes every request slower). A streamed
//! answer stops generating as soon as its receiver is dropped or its cancellation token fires.

use std::sync::Arc;

use async_trait::async_trait;
use kai_llm::{
    ChatChunk, ChatDone, ChatRequest, ChatResponse, ChatStream, EmbedRequest, EmbedResponse,
    LlmError, ModelInfo, Provider, ProviderKind, ToolChoice, Usage, collect_stream,
};
use tokio::sync::{OnceCell, Semaphore, mpsc};

use crate::catalog::{MINILM, ModelDir, ModelSpec, SMOLLM2};
use crate::embed::Embedder;
use crate::generate::{GenerateError, Generator};
use crate::{LoadError, catalog};

/// How the local provider runs.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Where `kai models install` put the weights.
    pub dir: ModelDir,
    /// Generations at once.
    pub chat_concurrency: usize,
    /// Embedding batches at once.
    pub embed_concurrency: usize,
}

impl LocalSettings {
    pub fn new(dir: ModelDir) -> Self {
        Self { dir, chat_concurrency: 1, embed_concurrency: 1 }
    }
}

/// The embedded chat and embedding models as a provider named `local`.
pub struct LocalProvider {
    name: String,
    dir: ModelDir,
    chat: OnceCell<Arc<Generator>>,
    embedder: OnceCell<Arc<Embedder>>,
    chat_slots: Arc<Semaphore>,
    embed_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// The provider name of the embedded models.
pub const NAME: &str = "local";

impl LocalProvider {
    pub fn new(settings: LocalSettings) -> Self {
        Self {
            name: NAME.to_owned(),
            dir: settings.dir,
            chat: OnceCell::new(),
            embedder: OnceCell::new(),
            chat_slots: Arc::new(Semaphore::new(settings.chat_concurrency.max(1))),
            embed_slots: Arc::new(Semaphore::new(settings.embed_concurrency.max(1))),
        }
    }

    /// Loads whichever models are installed, so the first request does not wait for it.
    pub async fn preload(&self) {
        if self.dir.is_installed(&SMOLLM2)
            && let Err(e) = self.generator().await
        {
            tracing::warn!(error = %e, "the embedded chat model failed to load");
        }
        if self.dir.is_installed(&MINILM)
            && let Err(e) = self.embedder().await
        {
            tracing::warn!(error = %e, "the embedded embedding model failed to load");
        }
    }

    fn not_installed(&self, spec: &ModelSpec) -> LlmError {
        LlmError::NotInstalled {
            provider: self.name.clone(),
            message: format!(
                "the embedded {} model ({}) is not installed in {}: run `kai models install`",
                match spec.role {
                    catalog::ModelRole::Chat => "chat",
                    catalog::ModelRole::Embedding => "embedding",
                },
                spec.name,
                self.dir.path().display()
            ),
        }
    }

    fn load_failed(&self, e: &LoadError) -> LlmError {
        LlmError::Unavailable {
            provider: self.name.clone(),
            status: None,
            message: format!("{e}; reinstall with `kai models install --force`"),
        }
    }

    async fn generator(&self) -> Result<Arc<Generator>, LlmError> {
        self.chat
            .get_or_try_init(|| async {
                if !self.dir.is_installed(&SMOLLM2) {
                    return Err(self.not_installed(&SMOLLM2));
                }
                let dir = self.dir.model(&SMOLLM2);
                let loaded = tokio::task::spawn_blocking(move || Generator::load(&dir))
                    .await
                    .map_err(|e| LlmError::Config(format!("model loader: {e}")))?;
                loaded.map(Arc::new).map_err(|e| self.load_failed(&e))
            })
            .await
            .cloned()
    }

    async fn embedder(&self) -> Result<Arc<Embedder>, LlmError> {
        self.embedder
            .get_or_try_init(|| async {
                if !self.dir.is_installed(&MINILM) {
                    return Err(self.not_installed(&MINILM));
                }
                let dir = self.dir.model(&MINILM);
                let loaded = tokio::task::spawn_blocking(move || Embedder::load(&dir))
                    .await
                    .map_err(|e| LlmError::Config(format!("model loader: {e}")))?;
                loaded.map(Arc::new).map_err(|e| self.load_failed(&e))
            })
            .await
            .cloned()
    }

    fn check_model(&self, asked: Option<&str>, spec: &ModelSpec) -> Result<(), LlmError> {
        match asked {
            None => Ok(()),
            Some(m) if m == spec.name || m == self.name => Ok(()),
            Some(m) => Err(LlmError::BadRequest {
                provider: self.name.clone(),
                message: format!("unknown local model {m:?}; this one is {:?}", spec.name),
            }),
        }
    }

    /// Waits for a slot, or for the request's cancellation.
    async fn slot(
        &self,
        slots: &Arc<Semaphore>,
        cancel: Option<&tokio_util::sync::CancellationToken>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, LlmError> {
        let acquire = slots.clone().acquire_owned();
        let permit = match cancel {
            Some(token) => tokio::select! {
                p = acquire => p,
                () = token.cancelled() => return Err(LlmError::Cancelled),
            },
            None => acquire.await,
        };
        permit.map_err(|_| LlmError::Cancelled)
    }
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        collect_stream(self.stream(request).await?).await
    }

    async fn stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        self.check_model(request.model.as_deref(), &SMOLLM2)?;
        if matches!(request.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool { .. })) {
            return Err(LlmError::Unsupported {
                provider: self.name.clone(),
                what: "tool calls (the embedded model answers in text only)".into(),
            });
        }
        let cancel = request.options.cancel.clone();
        let permit = self.slot(&self.chat_slots, cancel.as_ref()).await?;
        let generator = self.generator().await?;
        let (tx, rx) = mpsc::channel::<Result<ChatChunk, LlmError>>(64);
        let provider = self.name.clone();
        let seed: u64 = rand::random();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let result = generator.generate(&request.messages, &request.params, seed, |piece| {
                !cancel.as_ref().is_some_and(|c| c.is_cancelled())
                    && tx.blocking_send(Ok(ChatChunk::Text(piece.to_owned()))).is_ok()
            });
            let last = match result {
                Ok(done) if cancel.as_ref().is_some_and(|c| c.is_cancelled()) => {
                    let _ = done;
                    Err(LlmError::Cancelled)
                }
                Ok(done) => Ok(ChatChunk::Done(ChatDone {
                    model: SMOLLM2.name.to_owned(),
                    finish_reason: done.finish,
                    usage: Usage {
                        prompt_tokens: done.prompt_tokens,
                        completion_tokens: done.completion_tokens,
                    },
                    tool_calls: Vec::new(),
                })),
                Err(GenerateError::TooLong { prompt, limit }) => {
                    Err(LlmError::ContextLengthExceeded {
                        provider: provider.clone(),
                        message: format!("the prompt has {prompt} tokens; the model reads {limit}"),
                    })
                }
                Err(GenerateError::Model(m)) => Err(LlmError::Unavailable {
                    provider: provider.clone(),
                    status: None,
                    message: m,
                }),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn embed(&self, request: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        self.check_model(request.model.as_deref(), &MINILM)?;
        let permit = self.slot(&self.embed_slots, request.options.cancel.as_ref()).await?;
        let embedder = self.embedder().await?;
        let inputs = request.inputs;
        let provider = self.name.clone();
        let (embeddings, tokens) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            embedder.embed(&inputs)
        })
        .await
        .map_err(|e| LlmError::Config(format!("embedding task: {e}")))?
        .map_err(|e| LlmError::Unavailable {
            provider,
            status: None,
            message: e.to_string(),
        })?;
        Ok(EmbedResponse {
            model: MINILM.name.to_owned(),
            embeddings,
            usage: Usage { prompt_tokens: tokens, completion_tokens: 0 },
        })
    }

    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(catalog::ALL
            .iter()
            .filter(|m| self.dir.is_installed(m))
            .map(|m| ModelInfo {
                id: m.name.to_owned(),
                display_name: Some(m.description.to_owned()),
                owned_by: Some("local".to_owned()),
                context_window: Some(match m.role {
                    catalog::ModelRole::Chat => {
                        candle_transformers::models::quantized_llama::MAX_SEQ_LEN as u64
                    }
                    catalog::ModelRole::Embedding => crate::embed::MAX_TOKENS as u64,
                }),
            })
            .collect())
    }
}
