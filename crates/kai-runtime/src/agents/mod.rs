//! The agent registry: built-in agents (kCore, kPlanner, kExecutor, kReviewer, kSentinel,
//! kMemory, kPersona, kBridge) and owner-defined ones (definition files the binary hands in,
//! and the API), each with its own Ed25519 identity kept in the vault, and the lifecycle of
//! seed 004 applied with compare-and-set in the store, signed into the audit log and published
//! on the bus. State survives restarts because it lives in the store.
//!
//! This module knows nothing about tasks: the orchestrator asks it who may do what.

mod builtin;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use kai_core::AgentId;
use kai_core::agent::{AgentDefinition, Format, LifecycleAction};
use kai_core::lifecycle::AgentState;
use kai_core::plan::AgentCaps;
use kai_crypto::Identity;
use kai_crypto::audit::Outcome;
use kai_store::{AgentRow, Store, StoreError};
use serde_json::{Value, json};

use crate::vault::{IDENTITY, VaultError};
use crate::{AuditLog, EventBus, Vault};

pub use builtin::{BUILTIN, CORE, EXECUTOR, MEMORY, PLANNER, REVIEWER, SENTINEL};

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("no agent {0}")]
    NotFound(String),
    #[error(transparent)]
    Definition(#[from] kai_core::agent::DefinitionError),
    #[error(transparent)]
    Lifecycle(#[from] kai_core::lifecycle::LifecycleError),
    #[error("{0}")]
    Conflict(String),
    #[error("built-in agent {0} cannot be {1}")]
    Builtin(String, &'static str),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Audit(#[from] crate::AuditError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AgentError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            other => Self::Store(other),
        }
    }
}

impl AgentError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Definition(_) => "invalid_definition",
            Self::Lifecycle(_) => "illegal_transition",
            Self::Conflict(_) => "conflict",
            Self::Builtin(..) => "builtin_agent",
            Self::Vault(e) => e.code(),
            Self::Audit(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}

type Result<T> = std::result::Result<T, AgentError>;

/// An agent as the registry shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub definition: AgentDefinition,
    pub staged: Option<AgentDefinition>,
    pub state: AgentState,
    pub builtin: bool,
    pub did: String,
    pub updated_at_us: i64,
}

impl AgentView {
    pub fn id(&self) -> &AgentId {
        &self.definition.name
    }

    /// The `manifest.json` entry (seed 001 registry).
    pub fn manifest(&self) -> Value {
        let d = &self.definition;
        json!({
            "id": d.name, "class": d.name.class(), "name": d.name.name(), "version": d.version,
            "type": d.kind, "description": d.description, "state": self.state.as_str(),
            "builtin": self.builtin, "did": self.did, "persona": d.persona,
            "capabilities": d.capabilities, "triggers": d.triggers, "hooks": d.hooks,
            "permissions": d.permissions, "metadata": d.metadata, "instructions": d.instructions,
            "staged": self.staged.as_ref().map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
        })
    }
}

fn view(row: &AgentRow) -> Result<AgentView> {
    let parse = |text: &str| {
        serde_json::from_str::<AgentDefinition>(text).map_err(|e| {
            AgentError::Store(StoreError::Corrupt(format!("agent {} definition: {e}", row.id)))
        })
    };
    Ok(AgentView {
        definition: parse(&row.definition)?,
        staged: row.staged.as_deref().map(parse).transpose()?,
        state: AgentState::parse(&row.state).ok_or_else(|| {
            AgentError::Store(StoreError::Corrupt(format!("agent {} state {}", row.id, row.state)))
        })?,
        builtin: row.builtin,
        did: row.did.clone(),
        updated_at_us: row.updated_at_us,
    })
}

/// The registry.
pub struct Agents {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    vault: Arc<Vault>,
    identities: tokio::sync::Mutex<BTreeMap<AgentId, Arc<Identity>>>,
    /// Agents recently read, for [`Agents::get`] (every step of a task asks for its agent).
    views: std::sync::Mutex<BTreeMap<String, (AgentView, std::time::Instant)>>,
    /// [`Agents::capabilities`] as last read (every submitted plan is checked against it).
    caps: std::sync::Mutex<Option<(Caps, std::time::Instant)>>,
}

/// What each agent may do ([`Agents::capabilities`]).
pub type Caps = Arc<BTreeMap<AgentId, AgentCaps>>;

/// How long [`Agents::get`] and [`Agents::capabilities`] trust what they read. Every change made through this node
/// forgets the agent at once; the TTL bounds how long a change made by another node sharing
/// the database (PostgreSQL) takes to be seen.
const VIEW_TTL: std::time::Duration = std::time::Duration::from_secs(1);

fn vault_name(id: &AgentId) -> String {
    format!("agents/{}/{}", id.class(), id.name())
}

impl Agents {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, vault: Arc<Vault>) -> Self {
        Self {
            store,
            bus,
            vault,
            identities: tokio::sync::Mutex::new(BTreeMap::new()),
            views: std::sync::Mutex::new(BTreeMap::new()),
            caps: std::sync::Mutex::new(None),
        }
    }

    /// The agent's signing identity, created in the vault on first use.
    pub async fn identity(&self, id: &AgentId) -> Result<Arc<Identity>> {
        let mut cache = self.identities.lock().await;
        if let Some(i) = cache.get(id) {
            return Ok(i.clone());
        }
        let name = vault_name(id);
        let identity = match self.vault.read_internal(IDENTITY, &name).await {
            Ok(seed) => {
                let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
                    AgentError::Vault(VaultError::Invalid(format!("the key of {id} is malformed")))
                })?;
                Identity::from_seed(&seed)
            }
            Err(VaultError::NotFound(_)) => {
                let identity = Identity::generate();
                self.vault.put(IDENTITY, &name, &identity.seed(), None, None, "node").await?;
                identity
            }
            Err(e) => return Err(e.into()),
        };
        let identity = Arc::new(identity);
        cache.insert(id.clone(), identity.clone());
        Ok(identity)
    }

    /// Registers the built-in agents (active, refreshed to this build's definitions) and the
    /// owner's definition files (`(file name, text)`); a bad file is reported, not fatal.
    pub async fn load(
        &self,
        audit: &AuditLog,
        files: &[(String, String)],
    ) -> Result<Vec<(String, String)>> {
        let now = Utc::now().timestamp_micros();
        for def in builtin::definitions() {
            let identity = self.identity(&def.name).await?;
            let row = AgentRow {
                id: def.name.to_string(),
                definition: serde_json::to_string(&def).unwrap_or_default(),
                staged: None,
                state: AgentState::Active.as_str().into(),
                builtin: true,
                did: identity.did().to_string(),
                created_at_us: now,
                updated_at_us: now,
            };
            self.store.insert_agent(&row).await?;
            self.forget(&row.id);
        }
        let mut problems = Vec::new();
        for (file, text) in files {
            let ext = file.rsplit('.').next().unwrap_or_default();
            let Some(format) = Format::from_extension(ext) else { continue };
            match AgentDefinition::parse(text, format) {
                Ok(def) => match self.store.agent(def.name.as_str()).await? {
                    None => {
                        self.create(def, "node", audit).await?;
                    }
                    Some(existing)
                        if existing.definition
                            != serde_json::to_string(&def).unwrap_or_default() =>
                    {
                        problems.push((file.clone(), format!("{} is already registered with a different definition; modify it through the API (or delete the agent) to apply the file", def.name)));
                    }
                    Some(_) => {}
                },
                Err(e) => problems.push((file.clone(), e.to_string())),
            }
        }
        Ok(problems)
    }

    /// Registers a new agent in state `created`.
    pub async fn create(
        &self,
        def: AgentDefinition,
        actor: &str,
        audit: &AuditLog,
    ) -> Result<AgentView> {
        def.check()?;
        if BUILTIN.iter().any(|b| *b == def.name.as_str()) {
            return Err(AgentError::Builtin(def.name.to_string(), "redefined"));
        }
        let identity = self.identity(&def.name).await?;
        let now = Utc::now().timestamp_micros();
        let row = AgentRow {
            id: def.name.to_string(),
            definition: serde_json::to_string(&def).unwrap_or_default(),
            staged: None,
            state: AgentState::Created.as_str().into(),
            builtin: false,
            did: identity.did().to_string(),
            created_at_us: now,
            updated_at_us: now,
        };
        audit
            .record(
                actor,
                "agent.create",
                def.name.as_str(),
                Outcome::Success,
                json!({"version": def.version, "did": row.did}),
            )
            .await?;
        self.store.insert_agent(&row).await?;
        self.forget(&row.id);
        self.publish(
            &def.name,
            "AGENT_CREATED",
            json!({"state": "created", "version": def.version}),
        )
        .await;
        view(&row)
    }

    /// The agent `id`, read from the store at most [`VIEW_TTL`] ago.
    pub async fn get(&self, id: &str) -> Result<AgentView> {
        if let Some((v, at)) = self.cached().get(id)
            && at.elapsed() < VIEW_TTL
        {
            return Ok(v.clone());
        }
        let v = self.read(id).await?;
        self.cached().insert(id.to_owned(), (v.clone(), std::time::Instant::now()));
        Ok(v)
    }

    /// The agent as stored now (what a transition checks against).
    async fn read(&self, id: &str) -> Result<AgentView> {
        let row = self.store.agent(id).await?.ok_or_else(|| AgentError::NotFound(id.to_owned()))?;
        view(&row)
    }

    fn cached(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, (AgentView, std::time::Instant)>> {
        self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets what [`Agents::get`] cached about `id` (after any change to it).
    fn forget(&self, id: &str) {
        self.cached().remove(id);
        *self.caps.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    pub async fn list(&self) -> Result<Vec<AgentView>> {
        self.store.agents().await?.iter().map(view).collect()
    }

    /// Applies a lifecycle action. `modify` stages `definition` (same agent id); `apply` makes
    /// the staged definition current. Each transition is audited (signed) and published.
    pub async fn transition(
        &self,
        id: &str,
        action: LifecycleAction,
        definition: Option<AgentDefinition>,
        actor: &str,
        reason: &str,
        audit: &AuditLog,
    ) -> Result<AgentView> {
        let current = self.read(id).await?;
        if current.builtin && matches!(action, LifecycleAction::Terminate | LifecycleAction::Modify)
        {
            return Err(AgentError::Builtin(id.to_owned(), "modified or terminated"));
        }
        let next = current.state.apply(action)?;
        let (new_definition, staged): (Option<String>, Option<Option<String>>) = match action {
            LifecycleAction::Modify => {
                let def = definition.ok_or_else(|| {
                    AgentError::Conflict("modify needs the new definition".into())
                })?;
                def.check()?;
                if def.name != *current.id() {
                    return Err(AgentError::Conflict(format!(
                        "the new definition names {}, not {id}",
                        def.name
                    )));
                }
                (None, Some(Some(serde_json::to_string(&def).unwrap_or_default())))
            }
            LifecycleAction::Apply => (
                current.staged.as_ref().map(|d| serde_json::to_string(d).unwrap_or_default()),
                Some(None),
            ),
            _ => (None, None),
        };
        audit
            .record(
                actor,
                &format!("agent.{}", action.as_str()),
                id,
                Outcome::Success,
                json!({"from": current.state.as_str(), "to": next.as_str(), "reason": reason}),
            )
            .await?;
        let done = self
            .store
            .transition_agent(
                id,
                current.state.as_str(),
                next.as_str(),
                new_definition.as_deref(),
                staged.as_ref().map(|s| s.as_deref()),
                Utc::now().timestamp_micros(),
            )
            .await;
        // Forgotten whether or not the write went through: a refused one means another writer
        // changed the agent.
        self.forget(id);
        done?;
        if next.is_runnable() {
            self.deliver(current.id()).await?;
        }
        self.publish(
            current.id(),
            "AGENT_STATE",
            json!({"from": current.state.as_str(), "to": next.as_str(), "action": action.as_str(), "by": actor, "reason": reason}),
        )
        .await;
        self.read(id).await
    }

    /// Sends a message from one agent to another in the seed 001 envelope (`from`, `to`,
    /// `task`, `payload`), signed by the sender's identity. An active recipient gets it at once
    /// (an `AGENT_MESSAGE` event addressed to it); otherwise it stays queued and is delivered
    /// when the recipient is active again. Returns the stored message.
    pub async fn send(
        &self,
        from: &str,
        to: &str,
        task: Option<&str>,
        payload: Value,
    ) -> Result<kai_store::AgentMessageRow> {
        let sender = self.get(from).await?;
        let recipient = self.get(to).await?;
        let body =
            serde_json::to_vec(&json!({"from": from, "to": to, "task": task, "payload": payload}))
                .unwrap_or_default();
        if body.len() > 64 * 1024 {
            return Err(AgentError::Conflict("a message is at most 64 KiB".into()));
        }
        let identity = self.identity(sender.id()).await?;
        let signature = hex::encode(identity.sign(&body));
        let now = Utc::now().timestamp_micros();
        let row = kai_store::AgentMessageRow {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            from_agent: from.to_owned(),
            to_agent: to.to_owned(),
            task_id: task.map(str::to_owned),
            payload: json!({"payload": payload, "signature": signature, "did": identity.did().to_string()}).to_string(),
            status: "queued".into(),
            created_at_us: now,
            delivered_at_us: None,
        };
        self.store.insert_agent_message(&row).await?;
        if recipient.state.is_runnable() {
            self.deliver(recipient.id()).await?;
        }
        Ok(self.store.queued_messages(to, 1).await?.into_iter().find(|m| m.id == row.id).unwrap_or(
            kai_store::AgentMessageRow {
                status: "delivered".into(),
                delivered_at_us: Some(Utc::now().timestamp_micros()),
                ..row
            },
        ))
    }

    /// Delivers `agent`'s queued messages (oldest first); returns how many.
    pub async fn deliver(&self, agent: &AgentId) -> Result<usize> {
        let mut n = 0;
        loop {
            let batch = self.store.queued_messages(agent.as_str(), 100).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for m in batch {
                let payload: Value = serde_json::from_str(&m.payload).unwrap_or(Value::Null);
                let mut event = json!({"message_id": m.id, "from": m.from_agent, "to": m.to_agent, "task": m.task_id});
                event["payload"] = payload["payload"].clone();
                event["signature"] = payload["signature"].clone();
                event["did"] = payload["did"].clone();
                self.publish(agent, "AGENT_MESSAGE", event).await;
                self.store.mark_delivered(&m.id, Utc::now().timestamp_micros()).await?;
                n += 1;
            }
        }
    }

    /// What each agent may do, for plan checks: read from the store at most [`VIEW_TTL`] ago.
    pub async fn capabilities(&self) -> Result<Caps> {
        let cached = || self.caps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((caps, at)) = cached().as_ref()
            && at.elapsed() < VIEW_TTL
        {
            return Ok(caps.clone());
        }
        let caps = Arc::new(self.read_capabilities().await?);
        *cached() = Some((caps.clone(), std::time::Instant::now()));
        Ok(caps)
    }

    async fn read_capabilities(&self) -> Result<BTreeMap<AgentId, AgentCaps>> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|a| {
                let tools = a
                    .definition
                    .permissions
                    .tools
                    .iter()
                    .filter_map(|t| a.definition.tool_policy(t).map(|p| (t.clone(), p)))
                    .collect();
                (a.definition.name.clone(), AgentCaps { runnable: a.state.is_runnable(), tools })
            })
            .collect())
    }

    async fn publish(&self, agent: &AgentId, kind: &str, payload: Value) {
        let Ok(kind) = kind.parse() else { return };
        let event = kai_core::Envelope::new(kind, payload, Utc::now()).with_agent(agent.clone());
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, "agent event not published");
        }
    }
}

#[cfg(test)]
mod tests;
