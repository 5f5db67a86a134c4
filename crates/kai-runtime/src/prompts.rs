//! The prompt library: templates with declared variables, rendered with minijinja
//! ([`render`]); every edit adds an immutable version; versions diff line by line (`similar`);
//! tags, ratings and usage counts; a render history.
//!
//! Agents and personas name prompts as `name@version` (immutable) or `name` (the latest) and
//! get them through [`Prompts::resolve`]. A template may only read variables it declares: saving
//! one that reads an undeclared name is refused, so a render cannot fail on a typo later.

pub mod render;
pub mod vars;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kai_core::library::{PromptName, PromptRef, parse_tags};
use kai_store::{PromptQuery, PromptRenderRow, PromptRow, PromptVersionRow, Store, StoreError};
use serde_json::{Map, Value};

pub use render::TemplateError;
pub use vars::{VarError, VarKind, VariableSpec};

/// Longest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Longest edit message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// Why a prompt operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The variables passed to a render (or declared by a template) are wrong.
    #[error("invalid variables: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Variables(Vec<VarError>),
    #[error("template error: {0}")]
    Template(#[from] TemplateError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

impl PromptError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "prompt_not_found",
            Self::Invalid(_) => "bad_request",
            Self::Variables(_) => "invalid_variables",
            Self::Template(_) => "template_error",
            Self::Conflict(_) => "conflict",
            Self::Store(e) => e.code(),
        }
    }
}

impl From<StoreError> for PromptError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}

type Result<T> = std::result::Result<T, PromptError>;

/// One version of a prompt, ready to render.
#[derive(Debug, Clone)]
pub struct Prompt {
    pub row: PromptRow,
    pub version: PromptVersionRow,
    pub variables: Vec<VariableSpec>,
}

impl Prompt {
    /// `name@version`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.row.name, self.version.version)
    }

    /// Renders this version with `values` (no history, no usage count).
    pub fn render(&self, values: &Map<String, Value>) -> Result<String> {
        let bound = vars::bind(&self.variables, values).map_err(PromptError::Variables)?;
        Ok(render::render(&self.version.template, &bound)?)
    }
}

/// A new prompt.
#[derive(Debug, Clone, Default)]
pub struct NewPrompt {
    pub name: String,
    pub description: String,
    pub template: String,
    pub variables: Vec<VariableSpec>,
    pub tags: Vec<String>,
}

/// An edit: the fields to change (the rest carry over from the base version).
#[derive(Debug, Clone, Default)]
pub struct Edit {
    pub template: Option<String>,
    pub variables: Option<Vec<VariableSpec>>,
    pub description: Option<String>,
    /// What changed and why.
    pub message: String,
    /// The version the edit was made from; a newer latest is a conflict. Default: the latest.
    pub base_version: Option<i64>,
}

/// A line diff between two versions.
#[derive(Debug, Clone)]
pub struct VersionDiff {
    pub from: Prompt,
    pub to: Prompt,
    /// Unified diff of the templates (`---`/`+++` headers name the versions).
    pub unified: String,
    pub insertions: usize,
    pub deletions: usize,
    /// Similarity of the templates, 0 to 1.
    pub ratio: f32,
    /// Variables added, removed and changed (by name).
    pub variables_added: Vec<String>,
    pub variables_removed: Vec<String>,
    pub variables_changed: Vec<String>,
    pub description_changed: bool,
}

/// The outcome of a render.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub prompt: Prompt,
    pub output: String,
}

/// The prompt library service.
pub struct Prompts {
    store: Arc<dyn Store>,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn invalid(m: impl Into<String>) -> PromptError {
    PromptError::Invalid(m.into())
}

fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(invalid(format!("{what} is {} bytes; at most {max} are allowed", s.len())));
    }
    if s.contains('\0') {
        return Err(invalid(format!("{what} contains a NUL character")));
    }
    Ok(())
}

/// Checks a template against its declarations: it compiles, and every variable it reads is
/// declared.
fn check_template(template: &str, specs: &[VariableSpec]) -> Result<()> {
    check_text("the template", template, render::MAX_TEMPLATE_BYTES)?;
    vars::check_specs(specs).map_err(PromptError::Variables)?;
    let used = render::undeclared_variables(template)?;
    let missing: Vec<VarError> = used
        .iter()
        .filter(|u| !specs.iter().any(|s| &s.name == *u))
        .map(|u| VarError {
            variable: u.clone(),
            message: "the template uses it but does not declare it; add it to the variables".into(),
        })
        .collect();
    if missing.is_empty() { Ok(()) } else { Err(PromptError::Variables(missing)) }
}

fn specs_json(specs: &[VariableSpec]) -> String {
    serde_json::to_string(specs).unwrap_or_else(|_| "[]".into())
}

fn parse_specs(json: &str) -> Result<Vec<VariableSpec>> {
    serde_json::from_str(json)
        .map_err(|e| PromptError::Store(StoreError::Corrupt(format!("prompt variables: {e}"))))
}

/// A prompt identified by id (`prm_…`, optionally `@version`) or by reference (`name[@version]`).
enum Key {
    Id(String, Option<i64>),
    Ref(PromptRef),
}

fn key(id_or_ref: &str) -> Result<Key> {
    if id_or_ref.starts_with("prm_") {
        let (id, v) = match id_or_ref.split_once('@') {
            Some((id, v)) => (
                id,
                Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|v| *v >= 1)
                        .ok_or_else(|| invalid("a version is a number from 1"))?,
                ),
            ),
            None => (id_or_ref, None),
        };
        return Ok(Key::Id(id.to_owned(), v));
    }
    PromptRef::parse(id_or_ref).map(Key::Ref).map_err(|e| invalid(e.0))
}

impl Prompts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    async fn load(&self, row: PromptRow, version: Option<i64>) -> Result<Prompt> {
        let v = version.unwrap_or(row.latest_version);
        let version = self.store.prompt_version(&row.id, v).await?.ok_or_else(|| {
            PromptError::NotFound(format!(
                "prompt {} has no version {v} (latest is {})",
                row.name, row.latest_version
            ))
        })?;
        let variables = parse_specs(&version.variables)?;
        Ok(Prompt { row, version, variables })
    }

    async fn row(&self, k: &Key) -> Result<PromptRow> {
        let found = match k {
            Key::Id(id, _) => self.store.prompt(id).await?,
            Key::Ref(r) => self.store.prompt_by_name(r.name.as_str()).await?,
        };
        found.ok_or_else(|| {
            PromptError::NotFound(match k {
                Key::Id(id, _) => format!("no prompt with id {id}"),
                Key::Ref(r) => format!("no prompt named {}; see GET /prompts", r.name),
            })
        })
    }

    /// The prompt a reference names: `name@3` (version 3), `name` or `name@latest` (the newest),
    /// or an id (`prm_…[@3]`). This is how agents and personas use prompts.
    pub async fn resolve(&self, reference: &str) -> Result<Prompt> {
        let k = key(reference)?;
        let row = self.row(&k).await?;
        let version = match &k {
            Key::Id(_, v) => *v,
            Key::Ref(r) => r.version.map(i64::from),
        };
        self.load(row, version).await
    }

    /// Checks a template against its declarations without storing anything: it compiles, the
    /// declarations are sound, and it reads no undeclared variable.
    pub fn validate(template: &str, specs: &[VariableSpec]) -> Result<()> {
        check_template(template, specs)
    }

    /// Creates a prompt at version 1.
    pub async fn create(&self, actor: &str, new: NewPrompt) -> Result<Prompt> {
        let name = PromptName::parse(&new.name).map_err(|e| invalid(e.0))?;
        check_text("the description", &new.description, MAX_DESCRIPTION_BYTES)?;
        check_template(&new.template, &new.variables)?;
        let tags = parse_tags(&new.tags).map_err(|e| invalid(e.0))?;
        let at = now_us();
        let id = format!("prm_{}", uuid::Uuid::now_v7().simple());
        let row = PromptRow {
            id: id.clone(),
            name: name.as_str().to_owned(),
            description: new.description.clone(),
            tags,
            latest_version: 1,
            usage_count: 0,
            rating_sum: 0,
            rating_count: 0,
            created_by: actor.to_owned(),
            created_at_us: at,
            updated_at_us: at,
        };
        let version = PromptVersionRow {
            prompt_id: id,
            version: 1,
            template: new.template,
            variables: specs_json(&new.variables),
            description: new.description,
            message: "created".into(),
            author: actor.to_owned(),
            created_at_us: at,
        };
        self.store.insert_prompt(&row, &version).await.map_err(|e| match e {
            StoreError::Conflict(_) => PromptError::Conflict(format!(
                "a prompt named {name} exists; edit it to add a version"
            )),
            other => other.into(),
        })?;
        Ok(Prompt { row, version, variables: new.variables })
    }

    /// Prompts by name, or matching `text` (most used first).
    pub async fn list(
        &self,
        text: Option<&str>,
        tag: Option<&str>,
        limit: u32,
    ) -> Result<Vec<PromptRow>> {
        Ok(self.store.prompts(&PromptQuery { text, tag, limit }).await?)
    }

    /// Adds a version made by `edit` to the prompt `id_or_ref` names.
    pub async fn edit(&self, id_or_ref: &str, actor: &str, edit: Edit) -> Result<Prompt> {
        let current = self.resolve_latest(id_or_ref).await?;
        if let Some(base) = edit.base_version
            && base != current.version.version
        {
            return Err(PromptError::Conflict(format!(
                "{} is at version {}, not {base}; reload it and edit again",
                current.row.name, current.version.version
            )));
        }
        check_text("the message", &edit.message, MAX_MESSAGE_BYTES)?;
        let template = edit.template.unwrap_or_else(|| current.version.template.clone());
        let variables = edit.variables.unwrap_or_else(|| current.variables.clone());
        let description = edit.description.unwrap_or_else(|| current.version.description.clone());
        check_text("the description", &description, MAX_DESCRIPTION_BYTES)?;
        check_template(&template, &variables)?;
        if template == current.version.template
            && variables == current.variables
            && description == current.version.description
        {
            return Err(invalid("the edit changes nothing; no version was added"));
        }
        let version = PromptVersionRow {
            prompt_id: current.row.id.clone(),
            version: current.version.version + 1,
            template,
            variables: specs_json(&variables),
            description: description.clone(),
            message: edit.message,
            author: actor.to_owned(),
            created_at_us: now_us(),
        };
        self.store.add_prompt_version(&version).await?;
        let row = PromptRow {
            latest_version: version.version,
            description,
            updated_at_us: version.created_at_us,
            ..current.row
        };
        Ok(Prompt { row, version, variables })
    }

    /// The latest version of whatever `id_or_ref` names (a version in it is ignored).
    async fn resolve_latest(&self, id_or_ref: &str) -> Result<Prompt> {
        let row = self.row(&key(id_or_ref)?).await?;
        self.load(row, None).await
    }

    /// Every version, oldest first.
    pub async fn versions(&self, id_or_ref: &str) -> Result<(PromptRow, Vec<PromptVersionRow>)> {
        let row = self.row(&key(id_or_ref)?).await?;
        let versions = self.store.prompt_versions(&row.id).await?;
        Ok((row, versions))
    }

    /// The difference from version `from` to version `to` (default: the one before `to`, and
    /// the latest).
    pub async fn diff(
        &self,
        id_or_ref: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<VersionDiff> {
        let row = self.row(&key(id_or_ref)?).await?;
        let to_v = to.unwrap_or(row.latest_version);
        let from_v = from.unwrap_or((to_v - 1).max(1));
        let a = self.load(row.clone(), Some(from_v)).await?;
        let b = self.load(row, Some(to_v)).await?;
        let diff = similar::TextDiff::configure()
            .timeout(Duration::from_secs(1))
            .diff_lines(a.version.template.as_str(), b.version.template.as_str());
        let unified = diff
            .unified_diff()
            .context_radius(3)
            .header(&a.reference(), &b.reference())
            .to_string();
        let (mut insertions, mut deletions) = (0, 0);
        for change in diff.iter_all_changes() {
            match change.tag() {
                similar::ChangeTag::Insert => insertions += 1,
                similar::ChangeTag::Delete => deletions += 1,
                similar::ChangeTag::Equal => {}
            }
        }
        let ratio = diff.ratio();
        let names = |p: &Prompt| {
            p.variables.iter().map(|v| v.name.clone()).collect::<std::collections::BTreeSet<_>>()
        };
        let (na, nb) = (names(&a), names(&b));
        let variables_changed = na
            .intersection(&nb)
            .filter(|n| {
                a.variables.iter().find(|v| &v.name == *n)
                    != b.variables.iter().find(|v| &v.name == *n)
            })
            .cloned()
            .collect();
        Ok(VersionDiff {
            unified,
            insertions,
            deletions,
            ratio,
            variables_added: nb.difference(&na).cloned().collect(),
            variables_removed: na.difference(&nb).cloned().collect(),
            variables_changed,
            description_changed: a.version.description != b.version.description,
            from: a,
            to: b,
        })
    }

    /// Replaces a prompt's tags (not versioned).
    pub async fn set_tags(&self, id_or_ref: &str, tags: &[String]) -> Result<PromptRow> {
        let row = self.row(&key(id_or_ref)?).await?;
        let tags = parse_tags(tags).map_err(|e| invalid(e.0))?;
        let at = now_us();
        self.store.set_prompt_tags(&row.id, &tags, at).await?;
        Ok(PromptRow { tags, updated_at_us: at, ..row })
    }

    /// Sets `actor`'s rating of a prompt (1–5 stars); each actor has one rating.
    pub async fn rate(&self, id_or_ref: &str, actor: &str, stars: i64) -> Result<PromptRow> {
        if !(1..=5).contains(&stars) {
            return Err(invalid("a rating is 1 to 5 stars"));
        }
        let row = self.row(&key(id_or_ref)?).await?;
        self.store.rate_prompt(&row.id, actor, stars, now_us()).await?;
        self.row(&Key::Id(row.id, None)).await
    }

    /// Deletes a prompt and all its versions (the render history stays).
    pub async fn delete(&self, id_or_ref: &str) -> Result<PromptRow> {
        let row = self.row(&key(id_or_ref)?).await?;
        self.store.delete_prompt(&row.id).await?;
        Ok(row)
    }

    /// Renders what `reference` names with `values`, records it in the history and, when it
    /// succeeds, counts a use. Rendering runs off the async threads.
    pub async fn render(
        &self,
        reference: &str,
        values: &Map<String, Value>,
        actor: &str,
    ) -> Result<Rendered> {
        let prompt = self.resolve(reference).await?;
        let job = prompt.clone();
        let given = values.clone();
        let outcome =
            tokio::task::spawn_blocking(move || job.render(&given)).await.map_err(|e| {
                PromptError::Store(StoreError::Unavailable(format!("render task: {e}")))
            })?;
        let sizes: Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(serde_json::to_vec(v).map_or(0, |b| b.len()))))
            .collect();
        let record = PromptRenderRow {
            id: 0,
            prompt_id: prompt.row.id.clone(),
            prompt_name: prompt.row.name.clone(),
            version: prompt.version.version,
            actor: actor.to_owned(),
            ok: outcome.is_ok(),
            variables: Value::Object(sizes).to_string(),
            output_bytes: outcome.as_ref().map_or(0, |o| o.len() as i64),
            error: outcome.as_ref().err().map(|e| e.to_string().chars().take(500).collect()),
            at_us: now_us(),
        };
        self.store.record_render(&record).await?;
        let output = outcome?;
        let mut prompt = prompt;
        prompt.row.usage_count += 1;
        Ok(Rendered { prompt, output })
    }

    /// Renders an unsaved template against its declarations (the editor's "test" button):
    /// nothing is stored.
    pub async fn test(
        template: String,
        specs: Vec<VariableSpec>,
        values: Map<String, Value>,
    ) -> Result<String> {
        tokio::task::spawn_blocking(move || {
            check_template(&template, &specs)?;
            let bound = vars::bind(&specs, &values).map_err(PromptError::Variables)?;
            Ok(render::render(&template, &bound)?)
        })
        .await
        .map_err(|e| PromptError::Store(StoreError::Unavailable(format!("render task: {e}"))))?
    }

    /// Renders newest first: `actor`'s (or everyone's), of one prompt or all.
    pub async fn history(
        &self,
        actor: Option<&str>,
        prompt: Option<&str>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PromptRenderRow>> {
        let prompt_id = match prompt {
            Some(p) => Some(self.row(&key(p)?).await?.id),
            None => None,
        };
        Ok(self.store.renders(actor, prompt_id.as_deref(), before, limit).await?)
    }
}
