//! Goals become task graphs that finish, even across crashes. A submitted goal is stored and
//! its planning is a durable queue job; the planner's graph is checked, stored as a plan
//! version and approved (by policy, or by the owner); each step is a queue job run by its
//! agent (model with tools, or a direct tool call), checked by the reviewer, and its output
//! feeds the steps that depend on it. Budgets stop a task with a clear status; every state
//! change is an event on the bus and every decision an audit entry.
//!
//! Crash safety comes from the queue (at-least-once jobs, exactly-once keyed effects) and from
//! making every handler idempotent: a re-run sees what is already stored and only finishes it.

mod budget;
mod executor;
mod hooks;
mod planner;
mod run;
pub mod sentinel;
pub mod triggers;
pub mod workflows;

use std::sync::Arc;

use chrono::Utc;
use kai_core::AgentId;
use kai_core::config::LoadedConfig;
use kai_core::ids::TaskId;
use kai_core::plan::{PlanContext, TaskGraph};
use kai_core::queue::{IdempotencyKey, QueueName};
use kai_store::queue::NewJob;
use kai_store::{PlanRow, QuestionRow, StepRow, Store, StoreError, TaskFilter, TaskRow};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::agents::{Agents, EXECUTOR};
use crate::llm::Llm;
use crate::queue::Queue;
use crate::tools::Toolbox;
use crate::{AuditLog, EventBus};

pub use budget::{TaskBudget, Usage};

/// Queue of planning jobs.
pub const PLAN_QUEUE: &str = "task.plan";
/// Queue of step jobs.
pub const STEP_QUEUE: &str = "task.step";

/// Task statuses. Final ones never change again.
pub mod status {
    pub const PLANNING: &str = "planning";
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    pub const RUNNING: &str = "running";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELLED: &str = "cancelled";
    pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
    pub const REJECTED: &str = "rejected";
    pub const FINAL: [&str; 5] = [SUCCEEDED, FAILED, CANCELLED, BUDGET_EXCEEDED, REJECTED];
}

/// Why a task operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the node is sealed")]
    Sealed,
    #[error(transparent)]
    Agent(#[from] crate::agents::AgentError),
    #[error(transparent)]
    Audit(#[from] crate::AuditError),
    #[error(transparent)]
    Queue(#[from] kai_store::queue::QueueError),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TaskError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::NotFound => Self::NotFound("no such task".into()),
            other => Self::Store(other),
        }
    }
}

impl TaskError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::Conflict(_) => "conflict",
            Self::Sealed => "sealed",
            Self::Agent(e) => e.code(),
            Self::Audit(e) => e.code(),
            Self::Queue(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}

pub type Result<T> = std::result::Result<T, TaskError>;

/// How a plan gets approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Runs at once unless an agent's policy asks for approval of a tool the plan uses.
    #[default]
    Auto,
    /// The owner approves every plan of this task.
    Ask,
}

/// A goal to work on.
#[derive(Debug, Clone, Default)]
pub struct Submit {
    pub goal: String,
    pub owner: String,
    pub budget: TaskBudget,
    pub approval: ApprovalMode,
    /// Accept every step's result without asking kReviewer.
    pub skip_review: bool,
    pub idempotency_key: Option<String>,
    /// A ready-made graph (a saved workflow): no planner call.
    pub graph: Option<TaskGraph>,
    pub workflow: Option<String>,
    /// `api`, `workflow`, `trigger`, `webhook`, `agent`.
    pub source: String,
    pub parent: Option<String>,
}

/// Largest goal accepted, in bytes.
pub const MAX_GOAL_BYTES: usize = 16 * 1024;

fn check_goal(goal: &str) -> Result<()> {
    if goal.trim().is_empty() || goal.len() > MAX_GOAL_BYTES {
        return Err(TaskError::BadRequest(format!("the goal is 1 to {MAX_GOAL_BYTES} bytes")));
    }
    Ok(())
}

/// A task with its plan and steps, as the API shows it.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub task: TaskRow,
    pub plans: Vec<PlanRow>,
    pub steps: Vec<StepRow>,
    pub questions: Vec<QuestionRow>,
}

/// Where the audit log comes from: the node's, while it is unsealed.
pub type AuditSource = Arc<dyn Fn() -> Option<AuditLog> + Send + Sync>;

/// The service.
pub struct Tasks {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: Arc<dyn EventBus>,
    pub(crate) queue: Queue,
    pub(crate) agents: Arc<Agents>,
    pub(crate) llm: Arc<Llm>,
    /// The audit log while the node is unsealed.
    pub(crate) audit_log: AuditSource,
    pub(crate) tools: Arc<Toolbox>,
    pub(crate) config: watch::Receiver<LoadedConfig>,
    pub(crate) sentinel: sentinel::Sentinel,
    /// Parsed plan graphs by (task, version). A stored plan version never changes (an edit is
    /// a new version), so entries never go stale; the map is cleared when it grows past
    /// [`PLAN_CACHE_ENTRIES`].
    plans: std::sync::Mutex<std::collections::HashMap<(String, i64), Arc<TaskGraph>>>,
}

/// Most parsed plans [`Tasks`] keeps (a few hundred bytes to a few KB each).
const PLAN_CACHE_ENTRIES: usize = 4096;

pub(crate) fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn task_id() -> String {
    format!("task_{}", uuid::Uuid::now_v7().simple())
}

/// The queue's parent id for a task's jobs.
pub(crate) fn parent_of(task: &str) -> Option<TaskId> {
    task.strip_prefix("task_").and_then(|u| uuid::Uuid::parse_str(u).ok()).map(TaskId)
}

impl Tasks {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        audit_log: AuditSource,
        queue: Queue,
        agents: Arc<Agents>,
        llm: Arc<Llm>,
        tools: Arc<Toolbox>,
        config: watch::Receiver<LoadedConfig>,
    ) -> Self {
        Self {
            store,
            bus,
            queue,
            agents,
            llm,
            audit_log,
            tools,
            config,
            sentinel: sentinel::Sentinel::default(),
            plans: std::sync::Mutex::default(),
        }
    }

    /// The graph of plan `version` of `task`, parsed once (every step and every advance of a
    /// running task needs it). `None` if there is no such plan.
    pub(crate) async fn graph(&self, task: &str, version: i64) -> Result<Option<Arc<TaskGraph>>> {
        let key = (task.to_owned(), version);
        if let Some(g) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(g.clone()));
        }
        let Some(plan) = self.store.plan(task, version).await? else { return Ok(None) };
        let graph = Arc::new(run::graph_of(&plan)?);
        let mut cache = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= PLAN_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, graph.clone());
        Ok(Some(graph))
    }

    /// The audit log for a node (`None` while sealed).
    pub fn audit_of(node: Arc<crate::node::Node>) -> AuditSource {
        Arc::new(move || node.unsealed().ok().map(|u| u.audit))
    }

    pub(crate) fn audit(&self) -> Result<AuditLog> {
        (self.audit_log)().ok_or(TaskError::Sealed)
    }

    /// The queues the worker pools must serve, for [`Tasks::router`].
    pub fn queues() -> Vec<QueueName> {
        [PLAN_QUEUE, STEP_QUEUE].iter().filter_map(|q| q.parse().ok()).collect()
    }

    /// Stores the task and enqueues its planning (or, for a ready graph, its checked plan), all
    /// before answering: an `Ok` is a durable promise to work on it.
    pub async fn submit(&self, s: Submit) -> Result<TaskRow> {
        check_goal(&s.goal)?;
        s.budget.validate().map_err(TaskError::BadRequest)?;
        let depth = match &s.parent {
            Some(p) => {
                let parent = self
                    .store
                    .task(p)
                    .await?
                    .ok_or_else(|| TaskError::NotFound(format!("no task {p}")))?;
                parent.depth + 1
            }
            None => 0,
        };
        if depth > i64::from(s.budget.max_depth) {
            return Err(TaskError::BadRequest(format!(
                "spawn depth {depth} is over the budget's max_depth {}",
                s.budget.max_depth
            )));
        }
        let audit = self.audit()?;
        let now = now_us();
        let row = TaskRow {
            id: task_id(),
            owner: s.owner.clone(),
            goal: s.goal.clone(),
            status: status::PLANNING.into(),
            source: if s.source.is_empty() { "api".into() } else { s.source.clone() },
            workflow: s.workflow.clone(),
            budget: json!({"budget": s.budget, "approval": s.approval, "review": !s.skip_review})
                .to_string(),
            used_steps: 0,
            used_tool_calls: 0,
            used_tokens: 0,
            used_cost_micros: 0,
            result: None,
            error: None,
            plan_version: 0,
            parent_id: s.parent.clone(),
            depth,
            idempotency_key: s.idempotency_key.clone(),
            created_at_us: now,
            updated_at_us: now,
            finished_at_us: None,
        };
        // The plan it came with (checked now: a plan that cannot run refuses the submit).
        let plan = match s.graph {
            Some(graph) => Some(self.checked_plan(&row, graph, &s.owner, 1).await?),
            None => None,
        };
        let job = NewJob::new(
            PLAN_QUEUE.parse().map_err(|_| TaskError::BadRequest("queue".into()))?,
            json!({"task_id": row.id}),
        )
        .with_idempotency_key(key(&format!("plan:{}", row.id))?)
        .with_priority(10);
        let job = match parent_of(&row.id) {
            Some(p) => job.with_parent(p),
            None => job,
        };
        // The task, its plan and its job in one transaction: a crash can never leave a task
        // that nothing moves forward.
        let stored =
            self.store.create_task(&row, plan.as_ref().map(|(p, _)| p), &job, now_us()).await?;
        if stored.id != row.id {
            return Ok(stored);
        }
        // The audit entry and the events together, so that they share their disk flushes;
        // then the workers are woken, so that on a quiet node the plan job's events come after
        // these (a busy node's workers may claim the job sooner, as before).
        let record = audit.record(
            &s.owner,
            "task.submit",
            &row.id,
            kai_crypto::audit::Outcome::Success,
            json!({"source": row.source, "workflow": row.workflow, "goal_bytes": s.goal.len()}),
        );
        let events = async {
            self.publish(
                &row.id,
                None,
                "TASK_CREATED",
                json!({"goal": row.goal, "source": row.source, "owner": row.owner}),
            )
            .await;
            if let Some((plan, event)) = plan {
                self.publish(&plan.task_id, None, "PLAN_PROPOSED", event).await;
            }
        };
        let (recorded, ()) = tokio::join!(record, events);
        self.queue.wake();
        recorded?;
        Ok(stored)
    }

    /// A plan for `goal` without running anything (`POST /planner/plan`): the planner's graph
    /// and the check's repairs, order and approvals, or its problems.
    pub async fn dry_run(&self, goal: &str, owner: &str) -> Result<Value> {
        check_goal(goal)?;
        let ctx = self.plan_context(&TaskBudget::default()).await?;
        let outcome = planner::plan(self, goal, owner, None, &ctx).await;
        Ok(match outcome {
            Ok((graph, checked, usage)) => {
                json!({"ok": true, "graph": graph, "checked": checked, "usage": usage})
            }
            Err(planner::PlanFailure { problems, message, usage }) => {
                json!({"ok": false, "problems": problems, "message": message, "usage": usage})
            }
        })
    }

    /// What a plan is checked against: the registry's agents, the tools, the step budget.
    pub(crate) async fn plan_context(&self, budget: &TaskBudget) -> Result<PlanContext> {
        Ok(PlanContext {
            agents: self.agents.capabilities().await?.as_ref().clone(),
            tools: self.tools.registry.names().into_iter().map(str::to_owned).collect(),
            default_agent: EXECUTOR.parse::<AgentId>().unwrap_or_else(|e| unreachable!("{e}")),
            max_steps: budget.max_steps as usize,
        })
    }

    pub async fn get(&self, id: &str, viewer: Option<&str>) -> Result<TaskView> {
        let task = self.store.task(id).await?.filter(|t| viewer.is_none_or(|v| v == t.owner));
        let task = task.ok_or_else(|| TaskError::NotFound(format!("no task {id}")))?;
        Ok(TaskView {
            plans: self.store.plans(id).await?,
            steps: self.store.steps(id).await?,
            questions: self.store.questions(id).await?,
            task,
        })
    }

    pub async fn list(&self, filter: &TaskFilter) -> Result<Vec<TaskRow>> {
        Ok(self.store.tasks(filter).await?)
    }

    /// Applies each agent's `permissions.budget.concurrency` as a queue limit on its steps
    /// (call after loading agents and after a definition changes).
    pub async fn apply_agent_limits(&self) -> Result<()> {
        for a in self.agents.list().await? {
            let Ok(key) = format!("agent:{}", a.id()).parse() else { continue };
            let scope = kai_store::queue::LimitScope::Key(key);
            self.queue
                .set_concurrency_limit(&scope, a.definition.permissions.budget.concurrency)
                .await?;
        }
        Ok(())
    }

    /// Steps `(running, queued)` per agent id, for `/agent/status`.
    pub async fn agent_load(&self) -> Result<std::collections::BTreeMap<String, (i64, i64)>> {
        let mut load = std::collections::BTreeMap::<String, (i64, i64)>::new();
        for (agent, state, n) in self.store.agent_step_counts().await? {
            let entry = load.entry(agent).or_default();
            if state == "running" {
                entry.0 += n;
            } else {
                entry.1 += n;
            }
        }
        Ok(load)
    }

    /// Cancels a task: its unfinished jobs, then its status.
    pub async fn cancel(&self, id: &str, actor: &str, viewer: Option<&str>) -> Result<TaskRow> {
        let view = self.get(id, viewer).await?;
        if status::FINAL.contains(&view.task.status.as_str()) {
            return Err(TaskError::Conflict(format!("task {id} is already {}", view.task.status)));
        }
        self.audit()?
            .record(actor, "task.cancel", id, kai_crypto::audit::Outcome::Success, json!({}))
            .await?;
        if let Some(p) = parent_of(id) {
            self.queue.cancel_parent(p).await?;
        }
        self.finish(id, status::CANCELLED, None, Some("cancelled by the owner")).await?;
        self.get(id, None).await.map(|v| v.task)
    }

    /// Runs a failed task's failed and cancelled steps again (a new budget window is not
    /// granted: usage so far still counts).
    pub async fn retry(&self, id: &str, actor: &str, viewer: Option<&str>) -> Result<TaskRow> {
        let view = self.get(id, viewer).await?;
        if !matches!(view.task.status.as_str(), status::FAILED | status::CANCELLED)
            || view.task.plan_version == 0
        {
            return Err(TaskError::Conflict(format!(
                "only a failed or cancelled task with an approved plan can be retried; {id} is {}",
                view.task.status
            )));
        }
        self.audit()?
            .record(actor, "task.retry", id, kai_crypto::audit::Outcome::Success, json!({}))
            .await?;
        // Compare-and-set: of two retries at once, one reopens the task and the other is told.
        if !self.store.reopen_task(id, &view.task.status, status::RUNNING, now_us()).await? {
            return Err(TaskError::Conflict(format!(
                "task {id} changed while it was being retried; look again"
            )));
        }
        let attempt = view.steps.iter().map(|s| s.attempts).max().unwrap_or(0);
        for mut s in view.steps.into_iter().filter(|s| s.status != "succeeded") {
            s.status = "pending".into();
            s.error = None;
            self.store.update_step(&s).await?;
        }
        self.publish(id, None, "TASK_RETRIED", json!({"by": actor})).await;
        run::advance(self, id, attempt + 1).await?;
        self.get(id, None).await.map(|v| v.task)
    }

    /// Answers a question a step asked (`ask_user`).
    pub async fn answer(
        &self,
        question: &str,
        answer: &str,
        actor: &str,
        viewer: Option<&str>,
    ) -> Result<()> {
        let q = self
            .store
            .question(question)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("no question {question}")))?;
        self.get(&q.task_id, viewer).await?;
        if answer.is_empty() || answer.len() > MAX_GOAL_BYTES {
            return Err(TaskError::BadRequest(format!(
                "the answer is 1 to {MAX_GOAL_BYTES} bytes"
            )));
        }
        self.audit()?
            .record(
                actor,
                "task.answer",
                &q.task_id,
                kai_crypto::audit::Outcome::Success,
                json!({"question": q.id}),
            )
            .await?;
        self.store.answer_question(question, answer, actor, now_us()).await?;
        self.publish(
            &q.task_id,
            None,
            "TASK_QUESTION_ANSWERED",
            json!({"question_id": q.id, "step_id": q.step_id}),
        )
        .await;
        // The waiting step runs again (a new job round); it finds the answer.
        if self.store.set_step_status_if(&q.task_id, &q.step_id, "waiting", "pending").await? {
            let attempts = self.store.step(&q.task_id, &q.step_id).await?.map_or(0, |s| s.attempts);
            run::advance(self, &q.task_id, attempts + 1).await?;
        }
        Ok(())
    }

    /// Moves a task to a final state and tells everyone.
    pub(crate) async fn finish(
        &self,
        id: &str,
        state: &str,
        result: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool> {
        let changed =
            self.store.set_task_status(id, state, result, error, &status::FINAL, now_us()).await?;
        if changed {
            let kind = match state {
                status::SUCCEEDED => "TASK_COMPLETED",
                status::CANCELLED => "TASK_CANCELLED",
                _ => "TASK_FAILED",
            };
            self.publish(id, None, kind, json!({"status": state, "error": error})).await;
        }
        Ok(changed)
    }

    pub(crate) async fn publish(
        &self,
        task: &str,
        agent: Option<&AgentId>,
        kind: &str,
        payload: Value,
    ) {
        let Ok(kind) = kind.parse() else { return };
        let mut event = kai_core::Envelope::new(kind, payload, Utc::now()).with_task(task);
        if let Some(a) = agent {
            event = event.with_agent(a.clone());
        }
        if let Err(e) = self.bus.publish(event).await {
            tracing::warn!(error = %e, task, "task event not published");
        }
    }
}

/// Workflow and webhook names: 1 to 64 of `a-z`, `0-9`, `-` and `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

pub(crate) fn key(text: &str) -> Result<IdempotencyKey> {
    text.parse().map_err(|e| TaskError::BadRequest(format!("idempotency key: {e}")))
}

#[cfg(test)]
mod tests;
