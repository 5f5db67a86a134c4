//! Notes: short texts with tags, optionally about a task, searchable with text artifacts.

use kai_core::library::parse_tags;
use kai_store::NoteRow;

use super::{ArtifactError, Artifacts, Result, Viewer, new_id, now_us};

/// Longest note body, in bytes.
pub const MAX_NOTE_BYTES: usize = 256 * 1024;
/// Longest note title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// The fields of a note a client sets.
#[derive(Debug, Clone, Default)]
pub struct NoteInput {
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub task_id: Option<String>,
}

fn check(input: &NoteInput) -> Result<Vec<String>> {
    let title = input.title.trim();
    if title.is_empty()
        || title.chars().count() > MAX_TITLE_CHARS
        || title.chars().any(char::is_control)
    {
        return Err(ArtifactError::Invalid(format!(
            "a note title is 1 to {MAX_TITLE_CHARS} characters without control characters"
        )));
    }
    if input.body.len() > MAX_NOTE_BYTES || input.body.contains('\0') {
        return Err(ArtifactError::Invalid(format!(
            "a note body is at most {MAX_NOTE_BYTES} bytes, without NUL"
        )));
    }
    if input
        .task_id
        .as_ref()
        .is_some_and(|t| t.len() > super::MAX_TASK_ID_BYTES || t.chars().any(char::is_control))
    {
        return Err(ArtifactError::Invalid(
            "task_id is at most 128 bytes without control characters".into(),
        ));
    }
    parse_tags(&input.tags).map_err(|e| ArtifactError::Invalid(e.0))
}

impl Artifacts {
    pub async fn create_note(&self, viewer: &Viewer, input: NoteInput) -> Result<NoteRow> {
        let tags = check(&input)?;
        let now = now_us();
        let note = NoteRow {
            id: new_id("note"),
            owner: viewer.owner.clone(),
            title: input.title.trim().to_owned(),
            body: input.body,
            tags,
            task_id: input.task_id,
            created_at_us: now,
            updated_at_us: now,
        };
        let doc = self.store().insert_note(&note).await?;
        self.index().upsert(doc, &note.owner, &note.title, &note.body).await;
        Ok(note)
    }

    pub async fn note(&self, viewer: &Viewer, id: &str) -> Result<NoteRow> {
        match self.store().note(id).await? {
            Some(n) if viewer.sees(&n.owner) => Ok(n),
            _ => Err(ArtifactError::NotFound(format!("no note {id}"))),
        }
    }

    pub async fn notes(
        &self,
        viewer: &Viewer,
        all: bool,
        tag: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NoteRow>> {
        let owner = (!(all && viewer.admin)).then_some(viewer.owner.as_str());
        Ok(self.store().notes(owner, tag, limit).await?)
    }

    pub async fn update_note(
        &self,
        viewer: &Viewer,
        id: &str,
        input: NoteInput,
    ) -> Result<NoteRow> {
        let old = self.note(viewer, id).await?;
        let tags = check(&input)?;
        let note = NoteRow {
            title: input.title.trim().to_owned(),
            body: input.body,
            tags,
            task_id: input.task_id,
            updated_at_us: now_us(),
            ..old
        };
        let doc = self.store().update_note(&note).await?;
        self.index().upsert(doc, &note.owner, &note.title, &note.body).await;
        Ok(note)
    }

    pub async fn delete_note(&self, viewer: &Viewer, id: &str) -> Result<NoteRow> {
        let note = self.note(viewer, id).await?;
        let doc = self.store().delete_note(id).await?;
        self.index().remove(doc).await;
        Ok(note)
    }
}
