//! Storage of agents and the work they do: agent definitions with their lifecycle state, tasks
//! (goals) with budgets and usage, every plan version, each step's outcome, questions to the
//! owner, agent-to-agent messages, saved workflows, webhooks and trigger bookkeeping.
//!
//! The durable queue (`queue.rs`) carries the work itself; these rows are what the work is
//! about. State changes that race (lifecycle transitions, answering a question, firing a
//! trigger) are compare-and-set: they name the state they expect and fail with `Conflict` if
//! someone else moved first.

use async_trait::async_trait;

use crate::StoreResult;

/// An agent: its current definition (JSON), a staged one while `modified`, its lifecycle state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    /// `kClass:name`.
    pub id: String,
    pub definition: String,
    pub staged: Option<String>,
    pub state: String,
    /// Built-in agents are defined by the node, not by a file or the API.
    pub builtin: bool,
    /// The agent's own `did:key` (its key is in the vault).
    pub did: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// A goal submitted to the node, or a run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    pub id: String,
    /// The audit actor who submitted it.
    pub owner: String,
    pub goal: String,
    pub status: String,
    /// `api`, `workflow`, `trigger`, `webhook`, `agent`.
    pub source: String,
    pub workflow: Option<String>,
    /// JSON of the task's budget.
    pub budget: String,
    pub used_steps: i64,
    pub used_tool_calls: i64,
    pub used_tokens: i64,
    pub used_cost_micros: i64,
    pub result: Option<String>,
    pub error: Option<String>,
    /// The plan version that runs (0: none yet).
    pub plan_version: i64,
    /// The task that spawned this one.
    pub parent_id: Option<String>,
    /// Spawn depth (0 for a goal from outside).
    pub depth: i64,
    /// A client's key: submitting twice with it returns the first task.
    pub idempotency_key: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub finished_at_us: Option<i64>,
}

/// Usage to add to a task's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskUsage {
    pub steps: i64,
    pub tool_calls: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// One version of a task's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub task_id: String,
    pub version: i64,
    /// JSON of the task graph.
    pub graph: String,
    /// `proposed`, `approved`, `rejected`, `superseded`.
    pub status: String,
    /// JSON of the check: repairs, order, steps needing approval, or the problems.
    pub checked: String,
    pub author: String,
    pub created_at_us: i64,
}

/// Which steps a finished one unblocks, with their jobs ([`TaskStore::finish_step`]'s
/// `follow`): owned, because SQLite runs it on its writer thread.
pub type FollowUps =
    std::sync::Arc<dyn Fn(&[StepRow]) -> Vec<(String, crate::queue::NewJob)> + Send + Sync>;

/// One step of a task, as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub task_id: String,
    pub step_id: String,
    pub plan_version: i64,
    pub agent: String,
    /// `pending`, `queued`, `running`, `waiting`, `succeeded`, `failed`, `cancelled`.
    pub status: String,
    pub attempts: i64,
    pub output: Option<String>,
    /// The reviewer's last feedback.
    pub feedback: Option<String>,
    pub error: Option<String>,
    pub tokens: i64,
    pub tool_calls: i64,
    pub started_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
}

/// A question a step asked the owner (`ask_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionRow {
    pub id: String,
    pub task_id: String,
    pub step_id: String,
    pub question: String,
    pub answer: Option<String>,
    pub asked_at_us: i64,
    pub answered_at_us: Option<i64>,
    pub answered_by: Option<String>,
}

/// A message from one agent to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMessageRow {
    pub id: String,
    pub from_agent: String,
    pub to_agent: String,
    pub task_id: Option<String>,
    /// JSON payload, signed by the sender (the signature is in it).
    pub payload: String,
    /// `queued` or `delivered`.
    pub status: String,
    pub created_at_us: i64,
    pub delivered_at_us: Option<i64>,
}

/// A saved workflow version (its YAML text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowRow {
    pub name: String,
    pub version: i64,
    pub definition: String,
    pub author: String,
    pub created_at_us: i64,
}

/// A webhook: its signing secret lives in the vault under `secret_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub name: String,
    pub secret_name: String,
    /// JSON: what a delivery starts (a workflow with parameters, or a goal for an agent).
    pub target: String,
    pub created_at_us: i64,
}

/// Listing filter for tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub owner: Option<String>,
    pub status: Option<String>,
    /// Only tasks created before this (paging, newest first).
    pub before_us: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Inserts an agent, or replaces a built-in one's definition (files and the API may not
    /// overwrite each other silently: a non-built-in id that exists is a `Conflict`).
    async fn insert_agent(&self, agent: &AgentRow) -> StoreResult<()>;
    async fn agent(&self, id: &str) -> StoreResult<Option<AgentRow>>;
    async fn agents(&self) -> StoreResult<Vec<AgentRow>>;
    /// Moves an agent from `expected` to `state`, optionally replacing its definition and its
    /// staged definition; `Conflict` if it is no longer in `expected`.
    async fn transition_agent(
        &self,
        id: &str,
        expected: &str,
        state: &str,
        definition: Option<&str>,
        staged: Option<Option<&str>>,
        at_us: i64,
    ) -> StoreResult<()>;

    /// Inserts a task; with an idempotency key already used, returns the existing task.
    async fn insert_task(&self, task: &TaskRow) -> StoreResult<TaskRow>;
    /// Inserts a new task, its first plan (if it came with one) and the queue job that takes it
    /// on, in one transaction: a task is never stored without the job that moves it. With an
    /// idempotency key already used, writes nothing and returns the existing task; a plan or job
    /// that cannot be stored (`Conflict`) rolls all of it back.
    async fn create_task(
        &self,
        task: &TaskRow,
        plan: Option<&PlanRow>,
        job: &crate::queue::NewJob,
        at_us: i64,
    ) -> StoreResult<TaskRow>;
    async fn task(&self, id: &str) -> StoreResult<Option<TaskRow>>;
    async fn tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<TaskRow>>;
    /// Sets status, result and error (and the finish time for final states) unless the task is
    /// already in one of `final_states`; returns whether it changed.
    async fn set_task_status(
        &self,
        id: &str,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
        final_states: &[&str],
        at_us: i64,
    ) -> StoreResult<bool>;
    /// Reopens a finished task for a retry: `status` again, with its result, error and finish
    /// time cleared, if it is still in status `from` (compare-and-set); returns whether it did.
    async fn reopen_task(
        &self,
        id: &str,
        from: &str,
        status: &str,
        at_us: i64,
    ) -> StoreResult<bool>;
    /// Adds to the task's usage counters and returns the task as it is now.
    async fn add_task_usage(&self, id: &str, usage: TaskUsage, at_us: i64) -> StoreResult<TaskRow>;
    /// Records one model call of task `id`: its usage rows (one per principal it counts
    /// against, see [`crate::UsageStore::record_usage`]) and the task's counters, in one
    /// transaction; returns the task as it is now.
    async fn record_task_call(
        &self,
        id: &str,
        rows: &[crate::UsageRow],
        usage: TaskUsage,
        at_us: i64,
    ) -> StoreResult<TaskRow>;

    /// Stores a new plan version (`Conflict` if that version exists).
    async fn insert_plan(&self, plan: &PlanRow) -> StoreResult<()>;
    async fn plan(&self, task_id: &str, version: i64) -> StoreResult<Option<PlanRow>>;
    async fn plans(&self, task_id: &str) -> StoreResult<Vec<PlanRow>>;
    /// Marks `version` approved (others superseded), points the task at it and inserts its
    /// steps, in one transaction; `Conflict` if the plan is not `proposed`.
    async fn approve_plan(
        &self,
        task_id: &str,
        version: i64,
        steps: &[StepRow],
        at_us: i64,
    ) -> StoreResult<()>;
    async fn set_plan_status(&self, task_id: &str, version: i64, status: &str) -> StoreResult<()>;

    async fn step(&self, task_id: &str, step_id: &str) -> StoreResult<Option<StepRow>>;
    async fn steps(&self, task_id: &str) -> StoreResult<Vec<StepRow>>;
    /// `(step_id, output)` of every step of the task that has an output, by step id: what a
    /// step's prompt and inputs may refer to, without reading whole rows.
    async fn step_outputs(&self, task_id: &str) -> StoreResult<Vec<(String, String)>>;
    /// Writes a step's mutable fields.
    async fn update_step(&self, step: &StepRow) -> StoreResult<()>;
    /// Writes a step's fields and, in the same transaction, starts the steps this unblocked:
    /// `follow` picks them from the task's steps as they are after the write (every step, in
    /// step id order) and gives each one's job; each picked step still `pending` is moved to
    /// `queued` and its job enqueued (as [`crate::QueueStore::enqueue_batch`] would). All of it
    /// commits together, so no step is ever `queued` without its job. Concurrent calls for one
    /// task are serialized, so of two steps finishing at once the later one sees both and no
    /// dependent is missed. Returns the steps after the transaction and the ids it queued.
    async fn finish_step(
        &self,
        step: &StepRow,
        follow: FollowUps,
        now_us: i64,
    ) -> StoreResult<(Vec<StepRow>, Vec<String>)>;
    /// [`TaskStore::update_step`] and [`TaskStore::add_task_usage`] for the step's task in one
    /// transaction (a step starting counts against the task's step budget); returns the task.
    async fn update_step_with_usage(
        &self,
        step: &StepRow,
        usage: TaskUsage,
        at_us: i64,
    ) -> StoreResult<TaskRow>;
    /// Moves a step from `from` to `to` only if it is still in `from`; true if it moved.
    async fn set_step_status_if(
        &self,
        task_id: &str,
        step_id: &str,
        from: &str,
        to: &str,
    ) -> StoreResult<bool>;

    /// `(agent, status, steps)` for steps that are `running` or `queued`.
    async fn agent_step_counts(&self) -> StoreResult<Vec<(String, String, i64)>>;
    async fn insert_question(&self, q: &QuestionRow) -> StoreResult<()>;
    async fn question(&self, id: &str) -> StoreResult<Option<QuestionRow>>;
    async fn questions(&self, task_id: &str) -> StoreResult<Vec<QuestionRow>>;
    /// Records the answer unless one exists (`Conflict`).
    async fn answer_question(
        &self,
        id: &str,
        answer: &str,
        by: &str,
        at_us: i64,
    ) -> StoreResult<()>;

    async fn insert_agent_message(&self, m: &AgentMessageRow) -> StoreResult<()>;
    /// Messages to `agent` still queued, oldest first.
    async fn queued_messages(&self, agent: &str, limit: u32) -> StoreResult<Vec<AgentMessageRow>>;
    async fn mark_delivered(&self, id: &str, at_us: i64) -> StoreResult<()>;

    /// Stores the next version of a workflow and returns its number.
    async fn insert_workflow(
        &self,
        name: &str,
        definition: &str,
        author: &str,
        at_us: i64,
    ) -> StoreResult<i64>;
    /// A version, or the newest when `version` is `None`.
    async fn workflow(&self, name: &str, version: Option<i64>) -> StoreResult<Option<WorkflowRow>>;
    /// The newest version of every workflow.
    async fn workflows(&self) -> StoreResult<Vec<WorkflowRow>>;

    async fn upsert_webhook(&self, w: &WebhookRow) -> StoreResult<()>;
    async fn webhook(&self, name: &str) -> StoreResult<Option<WebhookRow>>;
    async fn webhooks(&self) -> StoreResult<Vec<WebhookRow>>;
    async fn delete_webhook(&self, name: &str) -> StoreResult<()>;

    async fn trigger_last_fired(&self, id: &str) -> StoreResult<Option<i64>>;
    /// Records a firing at `at_us` if the last one is still `expected`; false if another
    /// process fired it first.
    async fn mark_trigger_fired(
        &self,
        id: &str,
        expected: Option<i64>,
        at_us: i64,
    ) -> StoreResult<bool>;
}
