//! Storage of the prompt library (prompts, immutable versions, ratings, render history) and of
//! the artifact store's metadata (artifact versions, share links, notes and the text the
//! full-text index is built from). Artifact bytes are not here: they are blobs (`kai-blob`).

use async_trait::async_trait;

use crate::StoreResult;

/// A prompt: its name and counters; the content is in its versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRow {
    pub id: String,
    pub name: String,
    /// The latest version's description.
    pub description: String,
    pub tags: Vec<String>,
    pub latest_version: i64,
    /// Successful renders.
    pub usage_count: i64,
    pub rating_sum: i64,
    pub rating_count: i64,
    pub created_by: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// One immutable version of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptVersionRow {
    pub prompt_id: String,
    pub version: i64,
    pub template: String,
    /// JSON array of declared variables.
    pub variables: String,
    pub description: String,
    /// What changed (the editor's note).
    pub message: String,
    pub author: String,
    pub created_at_us: i64,
}

/// One render of a prompt (the history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRenderRow {
    /// Assigned by the store.
    pub id: i64,
    pub prompt_id: String,
    pub prompt_name: String,
    pub version: i64,
    pub actor: String,
    pub ok: bool,
    /// JSON object: variable name → size in bytes of its JSON value (never the values).
    pub variables: String,
    pub output_bytes: i64,
    pub error: Option<String>,
    pub at_us: i64,
}

/// Which prompts a listing returns.
#[derive(Debug, Clone, Default)]
pub struct PromptQuery<'a> {
    /// Keeps prompts whose name, description, tags or latest template contain this
    /// (case-insensitive); results are then ordered by usage, most used first.
    pub text: Option<&'a str>,
    /// Keeps prompts with this tag.
    pub tag: Option<&'a str>,
    pub limit: u32,
}

/// Prompts, their versions, ratings and render history.
#[async_trait]
pub trait PromptStore: Send + Sync {
    /// Inserts a prompt with its first version, atomically. `Conflict` if the name is taken.
    async fn insert_prompt(&self, prompt: &PromptRow, first: &PromptVersionRow) -> StoreResult<()>;
    async fn prompt(&self, id: &str) -> StoreResult<Option<PromptRow>>;
    async fn prompt_by_name(&self, name: &str) -> StoreResult<Option<PromptRow>>;
    /// Prompts by name (or by usage when `text` is given).
    async fn prompts(&self, query: &PromptQuery<'_>) -> StoreResult<Vec<PromptRow>>;
    /// Adds `version` (whose number must be the prompt's latest + 1) and makes it the latest,
    /// atomically. `Conflict` when another edit got there first; `NotFound` without the prompt.
    async fn add_prompt_version(&self, version: &PromptVersionRow) -> StoreResult<()>;
    async fn prompt_version(
        &self,
        prompt_id: &str,
        version: i64,
    ) -> StoreResult<Option<PromptVersionRow>>;
    /// Every version, oldest first.
    async fn prompt_versions(&self, prompt_id: &str) -> StoreResult<Vec<PromptVersionRow>>;
    /// Replaces the tags; `NotFound` without the prompt.
    async fn set_prompt_tags(&self, id: &str, tags: &[String], at_us: i64) -> StoreResult<()>;
    /// Sets `rater`'s rating (1–5) and recomputes the prompt's totals, atomically.
    async fn rate_prompt(&self, id: &str, rater: &str, stars: i64, at_us: i64) -> StoreResult<()>;
    /// Deletes a prompt with its versions and ratings (its render history stays).
    async fn delete_prompt(&self, id: &str) -> StoreResult<()>;
    /// Logs a render and, when it succeeded, counts a use, atomically. Returns the row id.
    async fn record_render(&self, render: &PromptRenderRow) -> StoreResult<i64>;
    /// Renders newest first, optionally only `actor`'s, only one prompt's, and older than
    /// `before` (a row id).
    async fn renders(
        &self,
        actor: Option<&str>,
        prompt_id: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<PromptRenderRow>>;
}

/// One version of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    pub id: String,
    /// Who it belongs to (`user:…`, `token:…`, `agent:…`).
    pub owner: String,
    pub name: String,
    /// 1, 2, … per (owner, name); set by the store on insert.
    pub version: i64,
    /// BLAKE3 hex digest of the bytes.
    pub digest: String,
    pub size: i64,
    /// Sniffed media type.
    pub content_type: String,
    pub tags: Vec<String>,
    /// The task that produced it.
    pub task_id: Option<String>,
    pub created_at_us: i64,
}

/// Which artifacts a listing returns (newest first).
#[derive(Debug, Clone, Default)]
pub struct ArtifactQuery<'a> {
    /// Only this owner's (`None`: everyone's, for admins).
    pub owner: Option<&'a str>,
    pub name: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub task_id: Option<&'a str>,
    /// Only the latest version of each name.
    pub latest_only: bool,
    /// Only those created before this time (paging).
    pub before_us: Option<i64>,
    pub limit: u32,
}

/// A share link of one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: String,
    pub artifact_id: String,
    /// SHA-256 of the token; the token itself is never stored.
    pub token_hash: [u8; 32],
    pub created_by: String,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub revoked_at_us: Option<i64>,
    pub uses: i64,
    pub last_used_at_us: Option<i64>,
}

/// A note: short text with tags, optionally about a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRow {
    pub id: String,
    pub owner: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub task_id: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// A document of the full-text index: a text artifact's text or a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDocRow {
    /// Dense id assigned by the store (the index's document id).
    pub doc_id: i64,
    /// `artifact` or `note`.
    pub kind: String,
    /// The artifact or note id.
    pub ref_id: String,
    pub owner: String,
    pub title: String,
    pub body: String,
}

/// What deleting an artifact left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedArtifact {
    pub row: ArtifactRow,
    /// Rows still referencing the same digest (0: the blob can go).
    pub remaining_refs: i64,
    /// The search document removed with it.
    pub doc_id: Option<i64>,
}

/// Artifact metadata, share links, notes and search documents.
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Inserts the next version of `(owner, name)` (the row's `version` is ignored) and, when
    /// `text` is given, its search document, atomically. Returns the stored row and the
    /// document id.
    async fn insert_artifact(
        &self,
        row: &ArtifactRow,
        text: Option<&str>,
    ) -> StoreResult<(ArtifactRow, Option<i64>)>;
    async fn artifact(&self, id: &str) -> StoreResult<Option<ArtifactRow>>;
    async fn artifacts(&self, query: &ArtifactQuery<'_>) -> StoreResult<Vec<ArtifactRow>>;
    /// Every version of `(owner, name)`, oldest first.
    async fn artifact_versions(&self, owner: &str, name: &str) -> StoreResult<Vec<ArtifactRow>>;
    async fn set_artifact_tags(&self, id: &str, tags: &[String]) -> StoreResult<()>;
    /// Deletes one version with its share links and search document; `NotFound` if missing.
    async fn delete_artifact(&self, id: &str) -> StoreResult<DeletedArtifact>;
    /// Rows referencing `digest`.
    async fn digest_refs(&self, digest: &str) -> StoreResult<i64>;

    async fn insert_share(&self, share: &ShareRow) -> StoreResult<()>;
    async fn share(&self, id: &str) -> StoreResult<Option<ShareRow>>;
    async fn share_by_hash(&self, token_hash: &[u8; 32]) -> StoreResult<Option<ShareRow>>;
    /// An artifact's share links, newest first.
    async fn shares(&self, artifact_id: &str) -> StoreResult<Vec<ShareRow>>;
    /// Marks a link revoked (idempotent); `NotFound` if there is none.
    async fn revoke_share(&self, id: &str, at_us: i64) -> StoreResult<()>;
    /// Counts one use.
    async fn touch_share(&self, id: &str, at_us: i64) -> StoreResult<()>;

    /// Inserts a note and its search document; returns the document id.
    async fn insert_note(&self, note: &NoteRow) -> StoreResult<i64>;
    async fn note(&self, id: &str) -> StoreResult<Option<NoteRow>>;
    /// Notes newest first (`owner: None`: everyone's).
    async fn notes(
        &self,
        owner: Option<&str>,
        tag: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<NoteRow>>;
    /// Replaces title, body, tags and task of a note and its search document; returns the
    /// document id. `NotFound` if there is no such note.
    async fn update_note(&self, note: &NoteRow) -> StoreResult<i64>;
    /// Deletes a note and its search document; returns the document id.
    async fn delete_note(&self, id: &str) -> StoreResult<i64>;

    /// Up to `limit` search documents with `doc_id > after`, in id order (index rebuilds).
    async fn search_docs(&self, after: i64, limit: u32) -> StoreResult<Vec<SearchDocRow>>;
    /// The search documents with these ids (any order; missing ids are skipped).
    async fn search_docs_by_id(&self, ids: &[i64]) -> StoreResult<Vec<SearchDocRow>>;
}
