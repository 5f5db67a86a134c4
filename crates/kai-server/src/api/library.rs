//! Wire types of the prompt library and the artifact store, and the explicit conversions from
//! their domain rows.

use chrono::{DateTime, TimeZone as _, Utc};
use kai_runtime::prompts::{Prompt, VariableSpec, VersionDiff};
use kai_store::{ArtifactRow, NoteRow, PromptRenderRow, PromptRow, PromptVersionRow, ShareRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

pub(super) fn time(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// A declared template variable.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// An identifier: a letter or `_`, then letters, digits or `_`.
    pub name: String,
    /// `string`, `number`, `bool`, `list` or `object`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: bool,
    /// Used when a render passes no value (must have the declared type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl Variable {
    /// The domain declaration (the type name is checked here).
    pub fn into_spec(self) -> Result<VariableSpec, String> {
        let kind = serde_json::from_value(Value::String(self.kind.clone())).map_err(|_| {
            format!(
                "variable {:?}: type {:?} is not one of string, number, bool, list, object",
                self.name, self.kind
            )
        })?;
        Ok(VariableSpec {
            name: self.name,
            kind,
            required: self.required,
            default: self.default,
            description: self.description,
        })
    }
}

impl From<&VariableSpec> for Variable {
    fn from(s: &VariableSpec) -> Self {
        Self {
            name: s.name.clone(),
            kind: s.kind.as_str().to_owned(),
            required: s.required,
            default: s.default.clone(),
            description: s.description.clone(),
        }
    }
}

/// A prompt without its content (lists).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptSummary {
    pub id: String,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub latest_version: i64,
    /// `name@latest_version`.
    pub reference: String,
    pub usage_count: i64,
    /// Mean stars (1–5), absent when unrated.
    pub rating: Option<f64>,
    pub rating_count: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&PromptRow> for PromptSummary {
    fn from(p: &PromptRow) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            tags: p.tags.clone(),
            latest_version: p.latest_version,
            reference: format!("{}@{}", p.name, p.latest_version),
            usage_count: p.usage_count,
            rating: (p.rating_count > 0).then(|| p.rating_sum as f64 / p.rating_count as f64),
            rating_count: p.rating_count,
            created_by: p.created_by.clone(),
            created_at: time(p.created_at_us),
            updated_at: time(p.updated_at_us),
        }
    }
}

/// One version of a prompt with its content.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptView {
    #[serde(flatten)]
    pub prompt: PromptSummary,
    /// The version shown.
    pub version: i64,
    /// `name@version`: how agents and personas refer to exactly this.
    pub version_reference: String,
    pub template: String,
    pub variables: Vec<Variable>,
    /// The edit note of this version.
    pub message: String,
    pub author: String,
    pub version_created_at: DateTime<Utc>,
}

impl From<&Prompt> for PromptView {
    fn from(p: &Prompt) -> Self {
        Self {
            prompt: PromptSummary::from(&p.row),
            version: p.version.version,
            version_reference: p.reference(),
            template: p.version.template.clone(),
            variables: p.variables.iter().map(Variable::from).collect(),
            message: p.version.message.clone(),
            author: p.version.author.clone(),
            version_created_at: time(p.version.created_at_us),
        }
    }
}

/// A version in a prompt's history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptVersionView {
    pub version: i64,
    pub description: String,
    pub message: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub template_bytes: usize,
}

impl From<&PromptVersionRow> for PromptVersionView {
    fn from(v: &PromptVersionRow) -> Self {
        Self {
            version: v.version,
            description: v.description.clone(),
            message: v.message.clone(),
            author: v.author.clone(),
            created_at: time(v.created_at_us),
            template_bytes: v.template.len(),
        }
    }
}

/// The difference between two versions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptDiff {
    pub from: i64,
    pub to: i64,
    /// Unified diff of the templates.
    pub unified: String,
    pub insertions: usize,
    pub deletions: usize,
    /// 0 (nothing alike) to 1 (identical).
    pub similarity: f32,
    pub variables_added: Vec<String>,
    pub variables_removed: Vec<String>,
    pub variables_changed: Vec<String>,
    pub description_changed: bool,
}

impl From<&VersionDiff> for PromptDiff {
    fn from(d: &VersionDiff) -> Self {
        Self {
            from: d.from.version.version,
            to: d.to.version.version,
            unified: d.unified.clone(),
            insertions: d.insertions,
            deletions: d.deletions,
            similarity: d.ratio,
            variables_added: d.variables_added.clone(),
            variables_removed: d.variables_removed.clone(),
            variables_changed: d.variables_changed.clone(),
            description_changed: d.description_changed,
        }
    }
}

/// One render in the history (variable sizes, never their values).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RenderEntry {
    pub id: i64,
    pub prompt_id: String,
    /// `name@version` rendered.
    pub reference: String,
    pub actor: String,
    pub ok: bool,
    /// Variable name → bytes of its JSON value.
    #[schema(value_type = Object)]
    pub variables: Value,
    pub output_bytes: i64,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<&PromptRenderRow> for RenderEntry {
    fn from(r: &PromptRenderRow) -> Self {
        Self {
            id: r.id,
            prompt_id: r.prompt_id.clone(),
            reference: format!("{}@{}", r.prompt_name, r.version),
            actor: r.actor.clone(),
            ok: r.ok,
            variables: serde_json::from_str(&r.variables).unwrap_or(Value::Null),
            output_bytes: r.output_bytes,
            error: r.error.clone(),
            at: time(r.at_us),
        }
    }
}

/// An artifact version's metadata.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ArtifactView {
    pub id: String,
    pub name: String,
    pub version: i64,
    /// BLAKE3 of the contents, hex.
    pub digest: String,
    pub size: i64,
    /// Sniffed from the bytes.
    pub content_type: String,
    pub tags: Vec<String>,
    pub owner: String,
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Where to download it (Range requests supported).
    pub download: String,
}

impl From<&ArtifactRow> for ArtifactView {
    fn from(a: &ArtifactRow) -> Self {
        Self {
            id: a.id.clone(),
            name: a.name.clone(),
            version: a.version,
            digest: a.digest.clone(),
            size: a.size,
            content_type: a.content_type.clone(),
            tags: a.tags.clone(),
            owner: a.owner.clone(),
            task_id: a.task_id.clone(),
            created_at: time(a.created_at_us),
            download: format!("/artifact/{}", a.id),
        }
    }
}

/// A share link (the token itself only in the answer that created it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ShareView {
    pub id: String,
    pub artifact_id: String,
    /// Shown once, when the link is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `/share/<token>`, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub uses: i64,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&ShareRow> for ShareView {
    fn from(s: &ShareRow) -> Self {
        Self {
            id: s.id.clone(),
            artifact_id: s.artifact_id.clone(),
            token: None,
            url: None,
            created_by: s.created_by.clone(),
            created_at: time(s.created_at_us),
            expires_at: time(s.expires_at_us),
            revoked_at: s.revoked_at_us.map(time),
            uses: s.uses,
            last_used_at: s.last_used_at_us.map(time),
        }
    }
}

/// A note.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NoteView {
    pub id: String,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    pub task_id: Option<String>,
    pub owner: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<&NoteRow> for NoteView {
    fn from(n: &NoteRow) -> Self {
        Self {
            id: n.id.clone(),
            title: n.title.clone(),
            body: n.body.clone(),
            tags: n.tags.clone(),
            task_id: n.task_id.clone(),
            owner: n.owner.clone(),
            created_at: time(n.created_at_us),
            updated_at: time(n.updated_at_us),
        }
    }
}

/// A full-text search hit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SearchHit {
    /// `artifact` or `note`.
    pub kind: String,
    pub id: String,
    pub title: String,
    pub score: f32,
    /// The start of the text around the first match.
    pub snippet: String,
}

/// Up to ~160 characters of `body` around the first query term found.
pub fn snippet(body: &str, query: &str) -> String {
    let lower = body.to_lowercase();
    let at =
        query.split_whitespace().filter_map(|t| lower.find(&t.to_lowercase())).min().unwrap_or(0);
    let mut start = at.saturating_sub(60);
    while start > 0 && !body.is_char_boundary(start) {
        start -= 1;
    }
    let text: String = body[start.min(body.len())..].chars().take(160).collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if start > 0 { format!("…{text}") } else { text }
}

#[cfg(test)]
mod tests {
    #[test]
    fn snippets_center_on_the_match() {
        let body = format!("{} needle here {}", "hay ".repeat(50), "more ".repeat(50));
        let s = super::snippet(&body, "Needle");
        assert!(s.starts_with('…') && s.contains("needle here"), "{s}");
        assert_eq!(super::snippet("short", "zz"), "short");
        assert!(super::snippet("ééééé needle", "needle").contains("needle"));
    }
}
