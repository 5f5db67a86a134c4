//! The artifact store: files produced or uploaded, stored by content (BLAKE3, deduplicated) in a
//! [`BlobStore`], with metadata in the database: a name (checked, never a path), versions per
//! owner and name, the sniffed type, tags, owner and producing task. Also share links, notes, and
//! the full-text index over text artifacts and notes ([`index`]).
//!
//! An upload is streamed into a staging file while hashed ([`kai_blob::Staging`]), then stored
//! and recorded. Objects are reference-counted through the rows that name them: deleting the last
//! version that uses a digest deletes the blob. A striped lock per digest orders a store and a
//! delete of the same contents, so a dedup never points at a blob being removed.
//!
//! Visibility: an artifact or note is seen by its owner, and by admins; anyone else gets "not
//! found".

pub mod backend;
pub mod index;
pub mod notes;
pub mod preview;
pub mod shares;
pub mod sniff;

use std::sync::Arc;

use chrono::Utc;
use kai_blob::{
    BlobError, BlobStore, ByteRange, ByteStream, Digest, Staged, Staging, StagingWriter,
};
use kai_core::library::{ArtifactName, parse_tags};
use kai_store::{ArtifactQuery, ArtifactRow, Store, StoreError};
use tokio::sync::{Mutex, MutexGuard};

pub use index::{TextHit, TextIndex};
pub use preview::PreviewKind;

/// Lock stripes over digests.
const STRIPES: usize = 64;
/// Longest task id accepted, in bytes.
pub const MAX_TASK_ID_BYTES: usize = 128;

/// Why an artifact operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the requested range is not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    NoPreview(String),
    #[error(transparent)]
    Share(#[from] shares::ShareError),
    #[error(transparent)]
    Blob(BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArtifactError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Invalid(_) => "bad_request",
            Self::TooLarge(_) => "payload_too_large",
            Self::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Self::NoPreview(_) => "no_preview",
            Self::Share(e) => e.code(),
            Self::Blob(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}

impl From<BlobError> for ArtifactError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => {
                Self::NotFound("the artifact's contents are missing from storage".into())
            }
            other => Self::Blob(other),
        }
    }
}

impl From<kai_blob::StageError> for ArtifactError {
    fn from(e: kai_blob::StageError) -> Self {
        match e {
            kai_blob::StageError::TooLarge { limit } => Self::TooLarge(limit),
            kai_blob::StageError::Io(io) => Self::Blob(BlobError::Io(io.to_string())),
        }
    }
}

pub type Result<T> = std::result::Result<T, ArtifactError>;

/// Who is asking: the owner key their artifacts are stored under, and whether they may see
/// everyone's.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub owner: String,
    pub admin: bool,
}

impl Viewer {
    pub fn sees(&self, owner: &str) -> bool {
        self.admin || self.owner == owner
    }
}

/// Limits the service applies (from `[artifacts]`).
#[derive(Debug, Clone)]
pub struct ArtifactSettings {
    pub share_default_secs: u64,
    pub share_max_secs: u64,
    /// Bytes of a text artifact put into the full-text index.
    pub index_text_bytes: u64,
}

/// What an upload carries besides its bytes.
#[derive(Debug, Clone)]
pub struct UploadMeta {
    pub name: ArtifactName,
    pub tags: Vec<String>,
    pub task_id: Option<String>,
}

impl UploadMeta {
    /// Checks and normalizes what a client sent.
    pub fn parse(name: &str, tags: &[String], task_id: Option<&str>) -> Result<Self> {
        let name = ArtifactName::parse(name).map_err(|e| ArtifactError::Invalid(e.0))?;
        let tags = parse_tags(tags).map_err(|e| ArtifactError::Invalid(e.0))?;
        let task_id = task_id.map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if let Some(t) = &task_id
            && (t.len() > MAX_TASK_ID_BYTES || t.chars().any(char::is_control))
        {
            return Err(ArtifactError::Invalid(format!(
                "task_id is at most {MAX_TASK_ID_BYTES} bytes without control characters"
            )));
        }
        Ok(Self { name, tags, task_id })
    }
}

/// A stored upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub row: ArtifactRow,
    /// The contents were already stored (by this or another artifact).
    pub deduplicated: bool,
}

/// The artifact service.
pub struct Artifacts {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    staging: Staging,
    index: TextIndex,
    settings: ArtifactSettings,
    stripes: Vec<Mutex<()>>,
}

pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

impl Artifacts {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        staging: Staging,
        settings: ArtifactSettings,
    ) -> Self {
        Self {
            store,
            blobs,
            staging,
            index: TextIndex::default(),
            settings,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// `"fs"` or `"s3"`.
    pub fn backend(&self) -> &'static str {
        self.blobs.backend()
    }

    pub fn settings(&self) -> &ArtifactSettings {
        &self.settings
    }

    async fn lock(&self, digest: &Digest) -> MutexGuard<'_, ()> {
        self.stripes[digest.0[0] as usize % STRIPES].lock().await
    }

    /// A writer to stream an upload of at most `limit` bytes into.
    pub fn begin_upload(&self, limit: u64) -> Result<StagingWriter> {
        self.staging.writer(limit).map_err(|e| ArtifactError::Blob(BlobError::Io(e.to_string())))
    }

    /// The sniffed content type of a staged upload.
    pub fn content_type_of(staged: &Staged, name: &ArtifactName) -> String {
        sniff::content_type(&staged.head, name.extension().as_deref())
    }

    /// Stores a staged upload as the next version of `meta.name` for `owner`; an `Ok` means
    /// the bytes are durable and the row committed.
    pub async fn commit_upload(
        &self,
        owner: &str,
        meta: UploadMeta,
        staged: Staged,
    ) -> Result<Uploaded> {
        let content_type = Self::content_type_of(&staged, &meta.name);
        let text = if sniff::is_indexable_text(&content_type) {
            Some(
                read_prefix(staged.path().to_owned(), self.settings.index_text_bytes as usize)
                    .await?,
            )
        } else {
            None
        };
        let digest = staged.digest;
        let row = ArtifactRow {
            id: new_id("art"),
            owner: owner.to_owned(),
            name: meta.name.as_str().to_owned(),
            version: 0,
            digest: digest.to_hex(),
            size: i64::try_from(staged.size)
                .map_err(|_| ArtifactError::TooLarge(i64::MAX as u64))?,
            content_type,
            tags: meta.tags,
            task_id: meta.task_id,
            created_at_us: now_us(),
        };
        let _guard = self.lock(&digest).await;
        let stored_now = self.blobs.put(staged).await?;
        let mut attempt = 0;
        let inserted = loop {
            match self.store.insert_artifact(&row, text.as_deref()).await {
                // Two uploads of one name raced for the same version number (PostgreSQL).
                Err(StoreError::Conflict(_)) if attempt < 3 => attempt += 1,
                other => break other,
            }
        };
        let (row, doc) = match inserted {
            Ok(done) => done,
            Err(e) => {
                if stored_now && self.store.digest_refs(&row.digest).await.unwrap_or(1) == 0 {
                    let _ = self.blobs.delete(&digest).await;
                }
                return Err(e.into());
            }
        };
        if let (Some(doc), Some(text)) = (doc, &text) {
            self.index.upsert(doc, &row.owner, &row.name, text).await;
        }
        Ok(Uploaded { row, deduplicated: !stored_now })
    }

    /// The artifact `id`, if `viewer` may see it.
    pub async fn get(&self, viewer: &Viewer, id: &str) -> Result<ArtifactRow> {
        match self.store.artifact(id).await? {
            Some(row) if viewer.sees(&row.owner) => Ok(row),
            _ => Err(ArtifactError::NotFound(format!("no artifact {id}"))),
        }
    }

    /// Artifacts `viewer` may see (only their own unless `all` and admin), newest first.
    pub async fn list(
        &self,
        viewer: &Viewer,
        all: bool,
        query: ArtifactQuery<'_>,
    ) -> Result<Vec<ArtifactRow>> {
        let owner = (!(all && viewer.admin)).then_some(viewer.owner.as_str());
        Ok(self.store.artifacts(&ArtifactQuery { owner, ..query }).await?)
    }

    /// Every version of the name `id` has, oldest first.
    pub async fn versions(&self, viewer: &Viewer, id: &str) -> Result<Vec<ArtifactRow>> {
        let row = self.get(viewer, id).await?;
        Ok(self.store.artifact_versions(&row.owner, &row.name).await?)
    }

    pub async fn set_tags(
        &self,
        viewer: &Viewer,
        id: &str,
        tags: &[String],
    ) -> Result<ArtifactRow> {
        let row = self.get(viewer, id).await?;
        let tags = parse_tags(tags).map_err(|e| ArtifactError::Invalid(e.0))?;
        self.store.set_artifact_tags(id, &tags).await?;
        Ok(ArtifactRow { tags, ..row })
    }

    /// Deletes one version; its blob goes when no other row uses it. Returns the row and
    /// whether the blob was deleted.
    pub async fn delete(&self, viewer: &Viewer, id: &str) -> Result<(ArtifactRow, bool)> {
        let row = self.get(viewer, id).await?;
        let digest = Digest::parse(&row.digest)
            .map_err(|e| ArtifactError::Store(StoreError::Corrupt(e.0)))?;
        let _guard = self.lock(&digest).await;
        let gone = self.store.delete_artifact(id).await?;
        if let Some(doc) = gone.doc_id {
            self.index.remove(doc).await;
        }
        let blob_deleted = gone.remaining_refs == 0;
        if blob_deleted {
            self.blobs.delete(&digest).await?;
        }
        Ok((gone.row, blob_deleted))
    }

    /// The bytes of `row`, or of `range` of them (checked against the size).
    pub async fn open(&self, row: &ArtifactRow, range: Option<ByteRange>) -> Result<ByteStream> {
        let size = row.size as u64;
        if let Some(r) = range
            && (r.start >= size || r.end >= size)
        {
            return Err(ArtifactError::RangeNotSatisfiable { size });
        }
        let digest = Digest::parse(&row.digest)
            .map_err(|e| ArtifactError::Store(StoreError::Corrupt(e.0)))?;
        self.blobs.get(&digest, range).await.map_err(|e| match e {
            BlobError::InvalidRange => ArtifactError::RangeNotSatisfiable { size },
            other => other.into(),
        })
    }

    /// Up to `max` bytes from the start of `row`.
    pub async fn read_head(&self, row: &ArtifactRow, max: usize) -> Result<Vec<u8>> {
        if row.size == 0 {
            return Ok(Vec::new());
        }
        let digest = Digest::parse(&row.digest)
            .map_err(|e| ArtifactError::Store(StoreError::Corrupt(e.0)))?;
        Ok(kai_blob::fs::read_all(self.blobs.as_ref(), &digest, max).await?)
    }

    /// The preview of `row`: its kind, media type and body.
    pub async fn preview(&self, row: &ArtifactRow) -> Result<(PreviewKind, String, Vec<u8>)> {
        let Some(kind) = PreviewKind::of(&row.content_type) else {
            return Err(ArtifactError::NoPreview(format!(
                "there is no preview for {}; download it instead",
                row.content_type
            )));
        };
        match kind {
            PreviewKind::Markdown => {
                let md = preview::text_of(&self.read_head(row, preview::TEXT_PREVIEW_BYTES).await?);
                let html = tokio::task::spawn_blocking(move || preview::markdown_html(&md))
                    .await
                    .map_err(|e| {
                    ArtifactError::NoPreview(format!("the preview failed: {e}"))
                })?;
                Ok((kind, "text/html; charset=utf-8".into(), html.into_bytes()))
            }
            PreviewKind::Text => {
                let text =
                    preview::text_of(&self.read_head(row, preview::TEXT_PREVIEW_BYTES).await?);
                Ok((kind, "text/plain; charset=utf-8".into(), text.into_bytes()))
            }
            PreviewKind::Image => {
                if row.size as u64 > preview::IMAGE_PREVIEW_BYTES {
                    return Err(ArtifactError::NoPreview(
                        "the image is too large to preview; download it".into(),
                    ));
                }
                Ok((kind, row.content_type.clone(), self.read_head(row, row.size as usize).await?))
            }
            PreviewKind::Pdf => {
                self.pdf_preview(row).await.map(|png| (kind, "image/png".into(), png))
            }
        }
    }

    #[cfg(feature = "pdf-preview")]
    async fn pdf_preview(&self, row: &ArtifactRow) -> Result<Vec<u8>> {
        if row.size as u64 > preview::PDF_PREVIEW_BYTES {
            return Err(ArtifactError::NoPreview(
                "the PDF is too large to preview; download it".into(),
            ));
        }
        let bytes = self.read_head(row, row.size as usize).await?;
        match tokio::task::spawn_blocking(move || preview::pdf_first_page_png(bytes)).await {
            Ok(Ok(png)) => Ok(png),
            Ok(Err(why)) => Err(ArtifactError::NoPreview(format!("no preview: {why}"))),
            Err(_) => {
                Err(ArtifactError::NoPreview("no preview: the PDF could not be rendered".into()))
            }
        }
    }

    #[cfg(not(feature = "pdf-preview"))]
    async fn pdf_preview(&self, _row: &ArtifactRow) -> Result<Vec<u8>> {
        Err(ArtifactError::NoPreview("this build has no PDF previews (feature pdf-preview)".into()))
    }

    /// Full-text search over the text artifacts and notes `viewer` may see.
    pub async fn search(
        &self,
        viewer: &Viewer,
        all: bool,
        query: &str,
        kind: Option<&str>,
        k: usize,
    ) -> Result<Vec<TextHit>> {
        let owner = (!(all && viewer.admin)).then_some(viewer.owner.as_str());
        Ok(self.index.search(self.store.as_ref(), query, owner, kind, k).await?)
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub(crate) fn index(&self) -> &TextIndex {
        &self.index
    }
}

/// Up to `max` bytes of a file as text (lossy UTF-8, NULs dropped), read off the async threads.
async fn read_prefix(path: std::path::PathBuf, max: usize) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut buf = Vec::new();
        std::fs::File::open(path)?.take(max as u64).read_to_end(&mut buf)?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).replace('\0', ""))
    })
    .await
    .map_err(|e| ArtifactError::Blob(BlobError::Io(e.to_string())))?
    .map_err(|e| ArtifactError::Blob(BlobError::Io(e.to_string())))
}
