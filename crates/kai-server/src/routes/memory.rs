//! `/memories` and `/memory/search`: add (batch), read, update, forget, hybrid search, vectors
//! (`/memories/embeddings`) and JSONL export/import. A memory belongs to its owner — the user
//! (every session and token of that user), the agent, or a user-less token — and is invisible to
//! everyone else (404). Writes are audited before they run; audit entries name ids, counts and
//! namespaces, never memory text.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kai_core::policy::Role;
use kai_runtime::memory::{
    Caller, MAX_BATCH, MemoryError, MemoryPatch, MemoryView, Namespace, NewMemory, SearchHit,
    SearchQuery, SearchResult, Tier, Via,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::audit;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Most lines one import request may carry.
const MAX_IMPORT_LINES: usize = 10_000;
/// Records per export page.
const EXPORT_PAGE: u32 = 500;

impl From<MemoryError> for ApiError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::BadRequest(m) => Self::BadRequest(m),
            MemoryError::NotFound(m) => Self::NotFound(m),
            MemoryError::NoEmbedder => {
                Self::Unavailable { code: "embedding_unavailable", detail: e.to_string() }
            }
            MemoryError::EmbedderProtocol { .. } => Self::Unavailable {
                code: "provider_unavailable",
                detail: format!("the embedding provider failed: {e}"),
            },
            MemoryError::Model(m) => m.into(),
            MemoryError::Vault(v) => v.into(),
            MemoryError::Store(s) => s.into(),
            MemoryError::Index(i) => match i.code() {
                "dimension_mismatch" | "invalid_vector" | "invalid_parameter" => {
                    Self::BadRequest(i.to_string())
                }
                code => Self::Unavailable {
                    code: "vector_backend_unavailable",
                    detail: format!("the vector index failed ({code}); try again"),
                },
            },
            MemoryError::Internal(m) => Self::Internal(m),
        }
    }
}

/// Whose memories a principal sees.
pub(crate) fn caller(p: &Principal) -> Caller {
    match (p.role, p.user_id()) {
        (Role::Agent, _) => Caller::agent(&p.id),
        (_, Some(user)) => Caller::user(user, &p.actor()),
        (_, None) => Caller::token(&p.id),
    }
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn parse_time(what: &str, s: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.timestamp_micros()).map_err(|_| {
        ApiError::BadRequest(format!("{what} is an RFC 3339 time such as 2026-01-31T12:00:00Z"))
    })
}

/// A memory in the API's JSON shape.
pub(crate) fn memory_json(m: &MemoryView) -> Value {
    json!({
        "id": m.id,
        "namespace": m.namespace.key(),
        "tier": m.tier.as_str(),
        "text": m.text,
        "metadata": m.metadata,
        "private": m.private,
        "embedded": m.embedded,
        "embedding_model": m.embedding_model,
        "created_at": rfc3339(m.created_at_us),
        "updated_at": rfc3339(m.updated_at_us),
        "expires_at": m.expires_at_us.map(rfc3339),
    })
}

fn hit_json(h: &SearchHit) -> Value {
    json!({
        "memory": memory_json(&h.memory),
        "score": h.score,
        "vector": h.vector.map(|(rank, score)| json!({"rank": rank, "score": score})),
        "text": h.text.map(|(rank, score)| json!({"rank": rank, "score": score})),
        "via": match h.via { Via::Search => "search", Via::Graph => "graph" },
    })
}

fn result_json(r: &SearchResult) -> Value {
    json!({
        "results": r.hits.iter().map(hit_json).collect::<Vec<_>>(),
        "vector_search": r.vector_search,
        "notice": r.notice,
    })
}

fn namespace_of(caller: &Caller, text: &str) -> Result<Namespace, ApiError> {
    let (kind, id) = Namespace::parse(text)?;
    Ok(caller.namespace(kind, id)?)
}

/// One memory to add.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMemoryBody {
    pub text: String,
    /// A JSON object (at most 16 KiB); searchable by exact top-level values.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// `user`, `agent`, `session:ID` or `thread:ID`; default your own user (or agent) namespace.
    pub namespace: Option<String>,
    /// `short_term`, `working`, `long_term` (default) or `episodic`.
    pub tier: Option<String>,
    /// Seconds until the memory expires (1 to ten years); expired memories are never returned.
    pub ttl_secs: Option<u64>,
    /// Encrypt at rest with your vault key: the database then holds no plaintext of it.
    #[serde(default)]
    pub private: bool,
    /// A vector to store instead of computing one.
    pub embedding: Option<Vec<f32>>,
}

impl NewMemoryBody {
    fn into_new(self, caller: &Caller) -> Result<NewMemory, ApiError> {
        let mut m = NewMemory::new(self.text);
        m.metadata = self.metadata;
        m.namespace = self.namespace.as_deref().map(|n| namespace_of(caller, n)).transpose()?;
        if let Some(t) = self.tier {
            m.tier = t.parse::<Tier>()?;
        }
        m.ttl_secs = self.ttl_secs;
        m.private = self.private;
        m.embedding = self.embedding;
        Ok(m)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemories {
    /// 1 to 256 memories.
    pub memories: Vec<NewMemoryBody>,
    /// Compute vectors before answering (else the node embeds them in the background, soon).
    #[serde(default)]
    pub wait: bool,
}

/// Adds memories (a batch of 1 to 256).
#[utoipa::path(post, path = "/memories", tag = "memory", security(("bearer" = [])), request_body = AddMemories, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn add(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<AddMemories>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if req.memories.is_empty() || req.memories.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!("send 1 to {MAX_BATCH} memories")));
    }
    let caller = caller(&principal);
    let items =
        req.memories.into_iter().map(|m| m.into_new(&caller)).collect::<Result<Vec<_>, _>>()?;
    let mut namespaces: Vec<String> = items
        .iter()
        .map(|m| m.namespace.clone().unwrap_or_else(|| caller.default_namespace()).key())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    let private = items.iter().filter(|m| m.private).count();
    audit(
        &state,
        &principal.actor(),
        "memory.add",
        &format!("memories:{}", caller.owner),
        json!({"count": items.len(), "private": private, "namespaces": namespaces, "wait": req.wait}),
    )
    .await?;
    let views = state.memory.add(&caller, items, req.wait).await?;
    let pending = views.iter().any(|v| !v.embedded);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "memories": views.iter().map(memory_json).collect::<Vec<_>>(),
            "embedding": if !state.memory.has_embedder() { "unavailable" } else if pending { "pending" } else { "done" },
        })),
    ))
}

/// One of your memories.
#[utoipa::path(get, path = "/memories/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(memory_json(&state.memory.get(&caller(&principal), &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPatchBody {
    pub text: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    pub tier: Option<String>,
    /// New TTL from now in seconds; 0 removes the expiry.
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub wait: bool,
}

/// Changes a memory's text, metadata, tier or expiry (a new text gets a new vector).
#[utoipa::path(patch, path = "/memories/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), request_body = MemoryPatchBody, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<MemoryPatchBody>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    state.memory.get(&caller, &id).await?;
    let patch = MemoryPatch {
        text: req.text,
        metadata: req.metadata,
        tier: req.tier.as_deref().map(str::parse::<Tier>).transpose()?,
        ttl_secs: req.ttl_secs.map(|t| (t > 0).then_some(t)),
    };
    audit(
        &state,
        &principal.actor(),
        "memory.update",
        &format!("memory:{id}"),
        json!({"text": patch.text.is_some(), "metadata": patch.metadata.is_some(), "tier": patch.tier.map(Tier::as_str), "ttl": req.ttl_secs}),
    )
    .await?;
    Ok(Json(memory_json(&state.memory.update(&caller, &id, patch, req.wait).await?)))
}

/// Forgets a memory for good.
#[utoipa::path(delete, path = "/memories/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn forget(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&principal);
    state.memory.get(&caller, &id).await?;
    audit(&state, &principal.actor(), "memory.forget", &format!("memory:{id}"), json!({})).await?;
    state.memory.forget(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// What to look for (full-text, and embedded for the vector search).
    pub q: String,
    /// Results, 1 to 100 (default 10).
    pub k: Option<usize>,
    /// `user`, `agent`, `session:ID` or `thread:ID`; comma-separated for several.
    pub namespace: Option<String>,
    /// `short_term`, `working`, `long_term`, `episodic`; comma-separated for several.
    pub tier: Option<String>,
    /// Only memories created at or after this RFC 3339 time.
    pub after: Option<String>,
    /// Only memories created before this RFC 3339 time.
    pub before: Option<String>,
    /// A JSON object: only memories whose metadata has these top-level values.
    pub metadata: Option<String>,
    /// Also return memories linked through the graph to the hits.
    pub expand: Option<bool>,
}

fn filters(
    caller: &Caller,
    namespace: Option<&str>,
    tier: Option<&str>,
    after: Option<&str>,
    before: Option<&str>,
    metadata: Option<&str>,
    q: &mut SearchQuery,
) -> Result<(), ApiError> {
    for ns in namespace.into_iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
        q.namespaces.push(namespace_of(caller, ns.trim())?);
    }
    for t in tier.into_iter().flat_map(|s| s.split(',')).filter(|s| !s.is_empty()) {
        q.tiers.push(t.trim().parse::<Tier>()?);
    }
    q.created_after_us = after.map(|a| parse_time("after", a)).transpose()?;
    q.created_before_us = before.map(|b| parse_time("before", b)).transpose()?;
    if let Some(m) = metadata {
        if m.len() > 4096 {
            return Err(ApiError::BadRequest("metadata filter is at most 4096 bytes".into()));
        }
        q.metadata = match serde_json::from_str(m) {
            Ok(Value::Object(o)) => o,
            _ => {
                return Err(ApiError::BadRequest(
                    "metadata is a JSON object, e.g. {\"topic\":\"rust\"}".into(),
                ));
            }
        };
    }
    Ok(())
}

/// Hybrid search of your memories: approximate vector search and BM25 full-text, fused by
/// reciprocal rank fusion, filtered by namespace, tier, time and metadata. Says so when no
/// embedding provider is configured (`vector_search: false` and a `notice`).
#[utoipa::path(get, path = "/memory/search", tag = "memory", security(("bearer" = [])), params(SearchParams), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    Query(p): Query<SearchParams>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    let mut q = SearchQuery::text(p.q, p.k.unwrap_or(10));
    q.expand_graph = p.expand.unwrap_or(false);
    filters(
        &caller,
        p.namespace.as_deref(),
        p.tier.as_deref(),
        p.after.as_deref(),
        p.before.as_deref(),
        p.metadata.as_deref(),
        &mut q,
    )?;
    Ok(Json(result_json(&state.memory.search(&caller, q).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsBody {
    /// Texts to embed (1 to 256): the answer carries their vectors.
    pub texts: Option<Vec<String>>,
    /// A vector to search your memories with (nearest first).
    pub vector: Option<Vec<f32>>,
    pub k: Option<usize>,
    pub namespace: Option<String>,
    pub tier: Option<String>,
}

/// Vectors: embeds `texts` with the memory embedding model, or searches your memories by a
/// given `vector`.
#[utoipa::path(post, path = "/memories/embeddings", tag = "memory", security(("bearer" = [])), request_body = EmbeddingsBody, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn embeddings(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<EmbeddingsBody>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    match (req.texts, req.vector) {
        (Some(texts), None) => {
            if texts.is_empty()
                || texts.len() > MAX_BATCH
                || texts
                    .iter()
                    .any(|t| t.is_empty() || t.len() > kai_runtime::memory::MAX_TEXT_BYTES)
            {
                return Err(ApiError::BadRequest(format!(
                    "send 1 to {MAX_BATCH} non-empty texts of at most 32 KiB"
                )));
            }
            let vectors = state.memory.embed_texts(&texts).await?;
            Ok(Json(json!({"model": state.memory.settings().model_label(), "embeddings": vectors})))
        }
        (None, Some(vector)) => {
            let mut q = SearchQuery::text(String::new(), req.k.unwrap_or(10));
            q.text = None;
            q.vector = Some(vector);
            filters(
                &caller,
                req.namespace.as_deref(),
                req.tier.as_deref(),
                None,
                None,
                None,
                &mut q,
            )?;
            Ok(Json(result_json(&state.memory.search(&caller, q).await?)))
        }
        _ => Err(ApiError::BadRequest(
            "give either `texts` (to embed) or `vector` (to search)".into(),
        )),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ExportParams {
    /// Include each memory's vector (default false).
    pub vectors: Option<bool>,
}

/// Every memory of yours as JSON Lines (one memory per line, oldest first; private memories
/// decrypted for you). Feed the file to `POST /memories/import` on any node.
#[utoipa::path(get, path = "/memories/export", tag = "memory", security(("bearer" = [])), params(ExportParams), responses(
    (status = 200, content_type = "application/x-ndjson", body = String),
))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Query(p): Query<ExportParams>,
) -> ApiResult<Response> {
    let caller = caller(&principal);
    let with_vectors = p.vectors.unwrap_or(false);
    // The first page is read here so that a failure is a proper error response.
    let first = state.memory.export_page(&caller, 0, EXPORT_PAGE).await?;
    let memory = state.memory.clone();
    let stream = futures::stream::unfold(Some(first), move |page| {
        let memory = memory.clone();
        let caller = caller.clone();
        async move {
            let (rows, next) = page?;
            let mut chunk = String::new();
            for (view, vector) in &rows {
                let mut line = memory_json(view);
                if with_vectors && let Some(v) = vector {
                    line["embedding"] = json!(v);
                }
                chunk.push_str(&line.to_string());
                chunk.push('\n');
            }
            let following = match next {
                Some(after) => match memory.export_page(&caller, after, EXPORT_PAGE).await {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::error!(code = e.code(), "memory export cut short");
                        None
                    }
                },
                None => None,
            };
            Some((Ok::<_, std::convert::Infallible>(chunk), following))
        }
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream))
        .into_response())
}

/// One line of an import file: the shape export writes.
#[derive(Deserialize)]
struct ImportLine {
    text: String,
    #[serde(default)]
    metadata: Map<String, Value>,
    namespace: Option<String>,
    tier: Option<String>,
    #[serde(default)]
    private: bool,
    expires_at: Option<String>,
    embedding: Option<Vec<f32>>,
    embedding_model: Option<String>,
}

/// Adds the memories of a JSON Lines file (as written by export; other fields of a line are
/// ignored). Lines whose `expires_at` has passed are skipped. Vectors are kept when they were
/// made by this node's embedding model, else recomputed.
#[utoipa::path(post, path = "/memories/import", tag = "memory", security(("bearer" = [])), request_body(content = String, content_type = "application/x-ndjson"), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn import(
    State(state): State<AppState>,
    principal: Principal,
    body: String,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    let now = chrono::Utc::now().timestamp_micros();
    let model = state.memory.settings().model_label();
    let mut items = Vec::new();
    let mut skipped = 0;
    for (n, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if items.len() + skipped >= MAX_IMPORT_LINES {
            return Err(ApiError::BadRequest(format!(
                "at most {MAX_IMPORT_LINES} lines per request"
            )));
        }
        let l: ImportLine = serde_json::from_str(line)
            .map_err(|e| ApiError::BadRequest(format!("line {}: {e}", n + 1)))?;
        let ttl = match l.expires_at.as_deref() {
            Some(t) => {
                let at = parse_time("expires_at", t)?;
                if at <= now {
                    skipped += 1;
                    continue;
                }
                Some(((at - now) / 1_000_000).max(1) as u64)
            }
            None => None,
        };
        let keep_vector = l.embedding_model.is_some() && l.embedding_model == model;
        let body = NewMemoryBody {
            text: l.text,
            metadata: l.metadata,
            namespace: l.namespace,
            tier: l.tier,
            ttl_secs: ttl,
            private: l.private,
            embedding: l.embedding.filter(|_| keep_vector),
        };
        items.push(body.into_new(&caller).map_err(|e| match e {
            ApiError::BadRequest(m) => ApiError::BadRequest(format!("line {}: {m}", n + 1)),
            other => other,
        })?);
    }
    audit(
        &state,
        &principal.actor(),
        "memory.import",
        &format!("memories:{}", caller.owner),
        json!({"count": items.len(), "skipped_expired": skipped}),
    )
    .await?;
    let mut imported = 0;
    for chunk in items.chunks(MAX_BATCH) {
        imported += state.memory.add(&caller, chunk.to_vec(), false).await?.len();
    }
    Ok(Json(json!({"imported": imported, "skipped_expired": skipped})))
}
