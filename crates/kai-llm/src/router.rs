//! Model aliases with fallback chains: a [`Router`] maps an alias (what a persona or agent names
//! as its model) to an ordered list of provider + model targets, and tries the next target when
//! one is down (`unavailable`, connection failure, timeout, rate limit after its retries) or
//! cannot do the call (`unsupported`). A request the provider rejected (bad request, auth, context
//! length) is returned as is.
//!
//! The router is itself a [`Provider`], so callers do not know whether they hold one provider or
//! a chain. Streams fall back only before their first chunk.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::ProviderKind;
use crate::error::LlmError;
use crate::provider::{ChatStream, Provider};
use crate::types::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, ModelInfo};

/// One link of a fallback chain.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<dyn Provider>,
    /// The model to ask this provider for; `None` uses the provider's default.
    pub model: Option<String>,
}

impl Target {
    pub fn new(provider: Arc<dyn Provider>, model: Option<&str>) -> Self {
        Self { provider, model: model.map(str::to_owned) }
    }
}

/// Aliases → fallback chains. A request's `model` names the alias; `None` picks the default
/// alias (the first one added, unless set).
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: BTreeMap<String, Vec<Target>>,
    default_alias: Option<String>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `alias` with its chain, tried in order.
    pub fn route(mut self, alias: &str, chain: Vec<Target>) -> Self {
        if self.default_alias.is_none() {
            self.default_alias = Some(alias.to_owned());
        }
        self.routes.insert(alias.to_owned(), chain);
        self
    }

    /// The alias used when a request names no model.
    pub fn default_alias(mut self, alias: &str) -> Self {
        self.default_alias = Some(alias.to_owned());
        self
    }

    fn chain(&self, model: Option<&str>) -> Result<(&str, &[Target]), LlmError> {
        let alias = model.or(self.default_alias.as_deref()).unwrap_or_default();
        match self.routes.get_key_value(alias) {
            Some((alias, chain)) if !chain.is_empty() => Ok((alias, chain)),
            Some(_) => Err(LlmError::Config(format!("model alias {alias:?} has no providers"))),
            None => Err(LlmError::bad_request(
                "router",
                format!(
                    "unknown model {alias:?}; configured: {}",
                    self.routes.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    /// Runs `call` on each target in turn until one succeeds or fails in a way that another
    /// provider would not fix. `call` learns whether its target is the chain's last, so the
    /// request can be moved there instead of copied (a one-provider chain copies nothing).
    async fn first_success<T, F, Fut>(
        &self,
        model: Option<&str>,
        mut call: F,
    ) -> Result<T, LlmError>
    where
        F: FnMut(&Target, bool) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let (alias, chain) = self.chain(model)?;
        let mut last = None;
        for (i, target) in chain.iter().enumerate() {
            match call(target, i + 1 == chain.len()).await {
                Ok(value) => return Ok(value),
                Err(e) if worth_trying_next(&e) && i + 1 < chain.len() => {
                    tracing::warn!(
                        alias,
                        provider = target.provider.name(),
                        code = e.code(),
                        "provider failed; falling back to the next in the chain"
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| LlmError::Config(format!("model alias {alias:?} has no providers"))))
    }
}

/// The request for `target`, naming its model: a copy while later targets may still need it,
/// the original for the last. A target is only tried once, so the original is never asked for
/// twice. `model` points at the request's model field.
fn for_target<R: Clone>(
    req: &mut Option<R>,
    target: &Target,
    last: bool,
    model: fn(&mut R) -> &mut Option<String>,
) -> Result<R, LlmError> {
    let taken = if last { req.take() } else { req.clone() };
    let mut r =
        taken.ok_or_else(|| LlmError::Config("the router asked for a request twice".into()))?;
    model(&mut r).clone_from(&target.model);
    Ok(r)
}

/// The provider is down, or cannot do this at all (e.g. embeddings on Anthropic).
fn worth_trying_next(e: &LlmError) -> bool {
    e.should_fall_back() || matches!(e, LlmError::Unsupported { .. })
}

#[async_trait]
impl Provider for Router {
    fn name(&self) -> &str {
        "router"
    }

    /// The kind of the default alias's first provider (a router has no wire format of its own).
    fn kind(&self) -> ProviderKind {
        self.chain(None)
            .ok()
            .and_then(|(_, c)| c.first())
            .map_or(ProviderKind::OpenAi, |t| t.provider.kind())
    }

    async fn chat(&self, req: ChatRequest) -> Result<ChatResponse, LlmError> {
        let alias = req.model.clone();
        let mut req = Some(req);
        self.first_success(alias.as_deref(), |t, last| {
            let req = for_target(&mut req, t, last, |r| &mut r.model);
            let provider = t.provider.clone();
            async move { provider.chat(req?).await }
        })
        .await
    }

    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let alias = req.model.clone();
        let mut req = Some(req);
        self.first_success(alias.as_deref(), |t, last| {
            let req = for_target(&mut req, t, last, |r| &mut r.model);
            let provider = t.provider.clone();
            async move { provider.stream(req?).await }
        })
        .await
    }

    async fn embed(&self, req: EmbedRequest) -> Result<EmbedResponse, LlmError> {
        let alias = req.model.clone();
        let mut req = Some(req);
        self.first_success(alias.as_deref(), |t, last| {
            let req = for_target(&mut req, t, last, |r| &mut r.model);
            let provider = t.provider.clone();
            async move { provider.embed(req?).await }
        })
        .await
    }

    /// The aliases.
    async fn models(&self) -> Result<Vec<ModelInfo>, LlmError> {
        Ok(self
            .routes
            .keys()
            .map(|alias| ModelInfo { owned_by: Some("router".into()), ..ModelInfo::named(alias) })
            .collect())
    }
}
