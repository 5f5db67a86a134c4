//! The queue job handlers that move tasks forward, and [`advance`], which enqueues every step
//! whose dependencies are done (or finishes the task). Every handler is idempotent: a run after
//! a crash reads what is stored and only completes what is missing; step jobs are keyed by
//! task, plan version, step and round, so two racing advances enqueue each step once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kai_core::plan::{PlanStep, TaskGraph};
use kai_store::queue::{Completion, NewJob};
use kai_store::{PlanRow, StepRow, TaskRow};
use serde_json::{Value, json};

use super::executor::{self, StepError, budget_of, elapsed_secs};
use super::{
    ApprovalMode, STEP_QUEUE, TaskError, Tasks, Usage, key, now_us, parent_of, planner, status,
};
use crate::queue::{JobContext, JobError, JobHandler, JobRouter};

/// Largest step output kept (bytes); longer outputs are cut with a marker.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

fn done(result: Value) -> Completion {
    Completion { result, effects: Vec::new(), enqueue: Vec::new() }
}

fn field<'a>(ctx: &'a JobContext, name: &str) -> Result<&'a str, JobError> {
    ctx.payload()[name]
        .as_str()
        .ok_or_else(|| JobError::permanent(format!("the job has no {name}")))
}

impl From<TaskError> for JobError {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::NotFound(_) | TaskError::BadRequest(_) => JobError::permanent(e.to_string()),
            _ => JobError::retryable(format!("{} ({})", e, e.code())),
        }
    }
}

/// Options stored with a task beside its budget.
pub(crate) fn options(task: &TaskRow) -> (ApprovalMode, bool) {
    let v: Value = serde_json::from_str(&task.budget).unwrap_or(Value::Null);
    let approval = serde_json::from_value(v["approval"].clone()).unwrap_or_default();
    (approval, v["review"].as_bool().unwrap_or(true))
}

pub(crate) fn graph_of(plan: &PlanRow) -> Result<TaskGraph, TaskError> {
    serde_json::from_str(&plan.graph)
        .map_err(|e| TaskError::BadRequest(format!("stored plan is unreadable: {e}")))
}

struct PlanJob(Arc<Tasks>);
struct StepJob(Arc<Tasks>);

impl Tasks {
    /// The handlers for [`Tasks::queues`], to give a worker pool.
    pub fn router(self: &Arc<Self>) -> JobRouter {
        let route = |q: &str| q.parse().unwrap_or_else(|e| unreachable!("queue name {q}: {e}"));
        JobRouter::new()
            .route(route(super::PLAN_QUEUE), Arc::new(PlanJob(self.clone())))
            .route(route(STEP_QUEUE), Arc::new(StepJob(self.clone())))
    }

    /// Approves a proposed plan: its steps are created and the first ones queued.
    pub async fn approve(
        &self,
        task: &str,
        version: i64,
        actor: &str,
        viewer: Option<&str>,
    ) -> Result<(), TaskError> {
        let view = self.get(task, viewer).await?;
        if view.task.status != status::AWAITING_APPROVAL && actor != "node" {
            return Err(TaskError::Conflict(format!(
                "task {task} is {}, not awaiting approval",
                view.task.status
            )));
        }
        let plan = self
            .store
            .plan(task, version)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("no plan version {version}")))?;
        let graph = graph_of(&plan)?;
        let steps: Vec<StepRow> = graph
            .steps
            .iter()
            .map(|s| StepRow {
                task_id: task.into(),
                step_id: s.id.clone(),
                plan_version: version,
                agent: s.agent.as_ref().map(ToString::to_string).unwrap_or_default(),
                status: "pending".into(),
                attempts: 0,
                output: None,
                feedback: None,
                error: None,
                tokens: 0,
                tool_calls: 0,
                started_at_us: None,
                finished_at_us: None,
            })
            .collect();
        self.audit()?
            .record(
                actor,
                "plan.approve",
                task,
                kai_crypto::audit::Outcome::Success,
                json!({"version": version}),
            )
            .await?;
        self.store.approve_plan(task, version, &steps, now_us()).await?;
        self.store
            .set_task_status(task, status::RUNNING, None, None, &status::FINAL, now_us())
            .await?;
        self.publish(
            task,
            None,
            "PLAN_APPROVED",
            json!({"version": version, "by": actor, "steps": steps.len()}),
        )
        .await;
        advance(self, task, 0).await
    }

    /// Replaces the proposed plan with an edited graph (a new version, checked again).
    pub async fn edit_plan(
        &self,
        task: &str,
        graph: TaskGraph,
        actor: &str,
        viewer: Option<&str>,
    ) -> Result<PlanRow, TaskError> {
        let view = self.get(task, viewer).await?;
        if view.task.status != status::AWAITING_APPROVAL {
            return Err(TaskError::Conflict(format!(
                "only a plan awaiting approval can be edited; task {task} is {}",
                view.task.status
            )));
        }
        let row = self.propose(&view.task, graph, actor).await?;
        if let Some(prev) =
            view.plans.iter().rfind(|p| p.status == "proposed" && p.version != row.version)
        {
            self.store.set_plan_status(task, prev.version, "superseded").await?;
        }
        Ok(row)
    }

    /// Stores `graph` as the task's next plan version if it passes its checks (else rejects it
    /// with the problems, which the API shows).
    pub(crate) async fn propose(
        &self,
        task: &TaskRow,
        graph: TaskGraph,
        author: &str,
    ) -> Result<PlanRow, TaskError> {
        let version = self.store.plans(&task.id).await?.last().map_or(1, |p| p.version + 1);
        let (row, event) = self.checked_plan(task, graph, author, version).await?;
        self.store.insert_plan(&row).await?;
        self.publish(&row.task_id, None, "PLAN_PROPOSED", event).await;
        Ok(row)
    }

    /// `graph` as plan `version` of `task` if it passes its check (else the problems, which the
    /// API shows), with the payload of its `PLAN_PROPOSED` event: the graph and what the check
    /// found (its repairs, order and the steps that need approval).
    pub(crate) async fn checked_plan(
        &self,
        task: &TaskRow,
        mut graph: TaskGraph,
        author: &str,
        version: i64,
    ) -> Result<(PlanRow, Value), TaskError> {
        let ctx = self.plan_context(&budget_of(task)).await?;
        let checked = graph.check(&ctx).map_err(|problems| {
            TaskError::BadRequest(format!(
                "the plan cannot run: {}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ))
        })?;
        let row = PlanRow {
            task_id: task.id.clone(),
            version,
            graph: serde_json::to_string(&graph).unwrap_or_default(),
            status: "proposed".into(),
            checked: serde_json::to_string(&checked).unwrap_or_default(),
            author: author.into(),
            created_at_us: now_us(),
        };
        let event = json!({"version": version, "graph": graph, "checked": checked});
        Ok((row, event))
    }

    /// Rejects the proposed plan, which ends the task.
    pub async fn reject(
        &self,
        task: &str,
        version: i64,
        actor: &str,
        reason: &str,
        viewer: Option<&str>,
    ) -> Result<(), TaskError> {
        let view = self.get(task, viewer).await?;
        if view.task.status != status::AWAITING_APPROVAL {
            return Err(TaskError::Conflict(format!(
                "task {task} is {}, not awaiting approval",
                view.task.status
            )));
        }
        self.audit()?
            .record(
                actor,
                "plan.reject",
                task,
                kai_crypto::audit::Outcome::Success,
                json!({"version": version}),
            )
            .await?;
        self.store.set_plan_status(task, version, "rejected").await?;
        self.finish(
            task,
            status::REJECTED,
            None,
            Some(&format!("the plan was rejected: {reason}")),
        )
        .await?;
        Ok(())
    }

    /// Runs the approval policy on a proposed plan: wait for the owner, or approve it now.
    async fn decide(&self, task: &TaskRow, plan: &PlanRow) -> Result<(), TaskError> {
        let (mode, _) = options(task);
        let checked: Value = serde_json::from_str(&plan.checked).unwrap_or(Value::Null);
        let asks = checked["needs_approval"].as_array().is_some_and(|a| !a.is_empty());
        if mode == ApprovalMode::Ask || asks {
            if task.status != status::AWAITING_APPROVAL {
                self.store
                    .set_task_status(
                        &task.id,
                        status::AWAITING_APPROVAL,
                        None,
                        None,
                        &status::FINAL,
                        now_us(),
                    )
                    .await?;
                self.publish(
                    &task.id,
                    None,
                    "PLAN_AWAITING_APPROVAL",
                    json!({"version": plan.version, "needs_approval": checked["needs_approval"]}),
                )
                .await;
            }
            return Ok(());
        }
        self.approve(&task.id, plan.version, "node", None).await
    }
}

#[async_trait]
impl JobHandler for PlanJob {
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError> {
        let tasks = &self.0;
        let id = field(&ctx, "task_id")?;
        let Some(task) = tasks.store.task(id).await.map_err(TaskError::from)? else {
            return Ok(done(json!({"skipped": "no such task"})));
        };
        if status::FINAL.contains(&task.status.as_str()) {
            return Ok(done(json!({"skipped": task.status})));
        }
        if task.plan_version > 0 {
            advance(tasks, id, 0).await?;
            return Ok(done(json!({"plan_version": task.plan_version})));
        }
        let plans = tasks.store.plans(id).await.map_err(TaskError::from)?;
        if let Some(plan) = plans.iter().rev().find(|p| p.status == "proposed") {
            tasks.decide(&task, plan).await?;
            return Ok(done(json!({"plan_version": plan.version})));
        }
        let pctx = tasks.plan_context(&budget_of(&task)).await?;
        let span = tracing::info_span!("plan", task_id = %id);
        match tracing::Instrument::instrument(
            planner::plan(tasks, &task.goal, &task.owner, Some(id), &pctx),
            span,
        )
        .await
        {
            Ok((graph, _checked, tokens)) => {
                let plan = tasks.propose(&task, graph, crate::agents::PLANNER).await?;
                tasks.decide(&task, &plan).await?;
                Ok(done(json!({"plan_version": plan.version, "tokens": tokens})))
            }
            Err(failure) => {
                let transient =
                    failure.problems.is_empty() && failure.message.contains("unavailable");
                if transient && ctx.attempt() < ctx.job.retry.max_attempts {
                    return Err(JobError::retryable(failure.message));
                }
                let reasons: Vec<String> =
                    failure.problems.iter().map(ToString::to_string).collect();
                let error = if reasons.is_empty() {
                    failure.message.clone()
                } else {
                    format!("{}: {}", failure.message, reasons.join("; "))
                };
                let state = if failure.message.contains("budget") {
                    status::BUDGET_EXCEEDED
                } else {
                    status::REJECTED
                };
                tasks.finish(id, state, None, Some(&error)).await?;
                Ok(done(json!({"rejected": error})))
            }
        }
    }
}

#[async_trait]
impl JobHandler for StepJob {
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError> {
        let tasks = &self.0;
        let (id, step_id) =
            (field(&ctx, "task_id")?.to_owned(), field(&ctx, "step_id")?.to_owned());
        let version = ctx.payload()["plan_version"].as_i64().unwrap_or(0);
        let Some(task) = tasks.store.task(&id).await.map_err(TaskError::from)? else {
            return Ok(done(json!({"skipped": "no such task"})));
        };
        if status::FINAL.contains(&task.status.as_str()) || task.plan_version != version {
            return Ok(done(json!({"skipped": task.status})));
        }
        let Some(mut row) = tasks.store.step(&id, &step_id).await.map_err(TaskError::from)? else {
            return Ok(done(json!({"skipped": "no such step"})));
        };
        match row.status.as_str() {
            "succeeded" => {
                advance(tasks, &id, 0).await?;
                return Ok(done(json!({"already": "succeeded"})));
            }
            "failed" | "cancelled" | "waiting" => return Ok(done(json!({"skipped": row.status}))),
            _ => {}
        }
        let span = tracing::info_span!("step", task_id = %id, plan_id = %format!("{id}/v{version}"), step_id = %step_id, agent = %row.agent);
        let outcome =
            tracing::Instrument::instrument(run_step(tasks, &task, &mut row, &ctx), span).await;
        match outcome {
            // The steps it unblocked were queued with its result (`finish_step`).
            Ok(()) => Ok(done(json!({"step": step_id, "status": "succeeded"}))),
            Err(Outcome::Retry(m)) => Err(JobError::retryable(m)),
            Err(Outcome::Wait(m, d)) => Err(JobError::retry_after(m, d)),
            Err(Outcome::Ended(state)) => Ok(done(json!({"step": step_id, "task": state}))),
            Err(Outcome::Paused(question)) => {
                Ok(done(json!({"step": step_id, "waiting_for": question})))
            }
        }
    }
}

/// How a step run ended when it did not succeed.
enum Outcome {
    /// Try the job again (by its retry policy).
    Retry(String),
    /// Try again after this delay (the agent is suspended).
    Wait(String, Duration),
    /// The task ended (failed, over budget); the job is done.
    Ended(&'static str),
    /// The step waits for the answer to this question; answering queues it again.
    Paused(String),
}

async fn fail_task(
    tasks: &Tasks,
    task: &TaskRow,
    row: &mut StepRow,
    state: &'static str,
    error: &str,
) -> Outcome {
    row.status = "failed".into();
    row.error = Some(error.to_owned());
    row.finished_at_us = Some(now_us());
    if let Err(e) = tasks.store.update_step(row).await {
        return Outcome::Retry(format!("storage: {e}"));
    }
    tasks
        .publish(&task.id, None, "STEP_FAILED", json!({"step_id": row.step_id, "error": error}))
        .await;
    if let Some(p) = parent_of(&task.id)
        && let Err(e) = tasks.queue.cancel_parent(p).await
    {
        tracing::warn!(error = %e, "could not cancel the task's other jobs");
    }
    let message = format!("step {} failed: {error}", row.step_id);
    match tasks.finish(&task.id, state, None, Some(&message)).await {
        Ok(_) => Outcome::Ended(state),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}

async fn run_step(
    tasks: &Tasks,
    task: &TaskRow,
    row: &mut StepRow,
    job: &JobContext,
) -> Result<(), Outcome> {
    let last_attempt = job.attempt() >= job.job.retry.max_attempts;
    let budget = budget_of(task);
    let graph = match tasks.graph(&task.id, task.plan_version).await {
        Ok(Some(g)) => g,
        Err(TaskError::Store(e)) => return Err(Outcome::Retry(e.to_string())),
        Ok(None) | Err(_) => {
            let why = "the task's plan is missing or unreadable";
            return Err(fail_task(tasks, task, row, status::FAILED, why).await);
        }
    };
    let Some(step) = graph.step(&row.step_id) else {
        return Err(
            fail_task(tasks, task, row, status::FAILED, "the step is not in the plan").await
        );
    };
    let agent = match tasks.agents.get(&row.agent).await {
        Ok(a) => a,
        Err(e) => return Err(fail_task(tasks, task, row, status::FAILED, &e.to_string()).await),
    };
    if !agent.state.is_runnable() {
        return Err(Outcome::Wait(
            format!("{} is {}; the step waits", row.agent, agent.state.as_str()),
            Duration::from_secs(30),
        ));
    }
    row.status = "running".into();
    row.attempts += 1;
    row.started_at_us = Some(now_us());
    // The step starts and counts against the task's step budget in one write.
    let used = tasks
        .store
        .update_step_with_usage(
            row,
            kai_store::TaskUsage { steps: 1, ..Default::default() },
            now_us(),
        )
        .await
        .map_err(|e| Outcome::Retry(e.to_string()))?;
    if let Some(over) = budget.exceeded(&Usage::of(&used), elapsed_secs(&used)) {
        return Err(fail_task(tasks, task, row, status::BUDGET_EXCEEDED, &over).await);
    }
    tasks
        .publish(
            &task.id,
            Some(agent.id()),
            "STEP_STARTED",
            json!({"step_id": row.step_id, "attempt": row.attempts}),
        )
        .await;
    super::hooks::run(
        tasks,
        &agent,
        kai_core::agent::HookWhen::Before,
        &task.id,
        &row.step_id,
        None,
    )
    .await;
    let outputs: BTreeMap<String, String> = tasks
        .store
        .step_outputs(&task.id)
        .await
        .map_err(|e| Outcome::Retry(e.to_string()))?
        .into_iter()
        .collect();
    let (_, review) = options(task);
    let mut feedback: Option<(String, String)> = None;
    let mut reviews = 0;
    let result = loop {
        let env = executor::StepEnv { job: Some(job), plan_version: task.plan_version };
        let result = match executor::execute(
            tasks,
            task,
            &agent,
            step,
            &outputs,
            feedback.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            &env,
        )
        .await
        {
            Ok(r) => r,
            Err(StepError::Waiting(question)) => {
                row.status = "waiting".into();
                tasks.store.update_step(row).await.map_err(|e| Outcome::Retry(e.to_string()))?;
                return Err(Outcome::Paused(question));
            }
            Err(StepError::Budget(m)) => {
                return Err(fail_task(tasks, task, row, status::BUDGET_EXCEEDED, &m).await);
            }
            Err(StepError::Unavailable(m)) if !last_attempt => return Err(Outcome::Retry(m)),
            Err(StepError::Unavailable(m) | StepError::Permanent(m)) => {
                return Err(fail_task(tasks, task, row, status::FAILED, &m).await);
            }
        };
        if !review || step.tool.is_some() || reviews >= budget.max_reviews {
            break result;
        }
        let verdict = match executor::review(tasks, task, step, &result.output).await {
            Ok(v) => v,
            Err(StepError::Budget(m)) => {
                return Err(fail_task(tasks, task, row, status::BUDGET_EXCEEDED, &m).await);
            }
            Err(StepError::Unavailable(m)) if !last_attempt => return Err(Outcome::Retry(m)),
            Err(StepError::Unavailable(m) | StepError::Permanent(m) | StepError::Waiting(m)) => {
                return Err(fail_task(tasks, task, row, status::FAILED, &m).await);
            }
        };
        tasks.publish(&task.id, None, "STEP_REVIEWED", json!({"step_id": row.step_id, "accept": verdict.accept, "feedback": verdict.feedback})).await;
        row.feedback = Some(verdict.feedback.clone());
        if verdict.accept {
            break result;
        }
        reviews += 1;
        let used = tasks
            .store
            .add_task_usage(
                &task.id,
                kai_store::TaskUsage { steps: 1, ..Default::default() },
                now_us(),
            )
            .await
            .map_err(|e| Outcome::Retry(e.to_string()))?;
        if let Some(over) = budget.exceeded(&Usage::of(&used), elapsed_secs(&used)) {
            return Err(fail_task(tasks, task, row, status::BUDGET_EXCEEDED, &over).await);
        }
        feedback = Some((result.output, verdict.feedback));
    };
    let mut output = result.output;
    if output.len() > MAX_OUTPUT_BYTES {
        let cut = (0..=MAX_OUTPUT_BYTES).rev().find(|&i| output.is_char_boundary(i)).unwrap_or(0);
        output.truncate(cut);
        output.push_str("\n[output truncated]");
    }
    let identity =
        tasks.agents.identity(agent.id()).await.map_err(|e| Outcome::Retry(e.to_string()))?;
    let signature = identity.sign(&executor::signed_payload(&task.id, &row.step_id, &output));
    let details = executor::result_details(
        &task.id,
        &row.step_id,
        &output,
        &signature,
        identity.did().as_str(),
    );
    let audit = tasks.audit().map_err(|e| Outcome::Retry(e.to_string()))?;
    audit
        .record(
            &format!("agent:{}", agent.id()),
            "step.result",
            &task.id,
            kai_crypto::audit::Outcome::Success,
            details.clone(),
        )
        .await
        .map_err(|e| Outcome::Retry(e.to_string()))?;
    row.status = "succeeded".into();
    row.output = Some(output.clone());
    row.tool_calls += i64::try_from(result.tool_calls).unwrap_or(0);
    row.finished_at_us = Some(now_us());
    let (steps, promoted) = tasks
        .store
        .finish_step(row, unblocked(&graph, task), now_us())
        .await
        .map_err(|e| Outcome::Retry(e.to_string()))?;
    // The event carries the first 2,000 characters (the whole output is the step's row).
    let preview =
        output.char_indices().nth(2000).map_or(output.as_str(), |(end, _)| &output[..end]);
    let mut payload = details;
    payload["output"] = json!(preview);
    tasks.publish(&task.id, Some(agent.id()), "AGENT_RESULT", payload).await;
    super::hooks::run(
        tasks,
        &agent,
        kai_core::agent::HookWhen::After,
        &task.id,
        &row.step_id,
        Some(&output),
    )
    .await;
    follow_ups(tasks, task, &graph, steps, promoted)
        .await
        .map_err(|e| Outcome::Retry(e.to_string()))
}

/// Finishes the task if every step of `graph` succeeded (its result: the outputs of the steps
/// nothing depends on). Returns whether it did.
async fn finish_if_done(
    tasks: &Tasks,
    id: &str,
    graph: &TaskGraph,
    steps: &BTreeMap<String, StepRow>,
) -> Result<bool, TaskError> {
    if !graph.steps.iter().all(|s| steps.get(&s.id).is_some_and(|r| r.status == "succeeded")) {
        return Ok(false);
    }
    let needed: BTreeSet<&str> =
        graph.steps.iter().flat_map(|s| s.depends_on.iter().map(String::as_str)).collect();
    let result: Vec<String> = graph
        .steps
        .iter()
        .filter(|s| !needed.contains(s.id.as_str()))
        .filter_map(|s| steps.get(&s.id).and_then(|r| r.output.clone()))
        .collect();
    tasks.finish(id, status::SUCCEEDED, Some(&result.join("\n\n")), None).await?;
    Ok(true)
}

/// The steps of `graph` that may start now: every dependency succeeded, still `pending`.
fn ready_steps<'g, 'r>(
    graph: &'g TaskGraph,
    steps: impl IntoIterator<Item = &'r StepRow>,
) -> Vec<&'g PlanStep> {
    let (mut done, mut started) = (BTreeSet::new(), BTreeSet::new());
    for s in steps {
        if s.status == "succeeded" {
            done.insert(s.step_id.as_str());
        }
        if s.status != "pending" {
            started.insert(s.step_id.as_str());
        }
    }
    graph.ready(&done, &started)
}

/// The job that runs `step` of task `id` (plan `version`), keyed by task, version, step and
/// round so that every enqueue of the same run of a step finds the same job.
fn step_job(
    id: &str,
    version: i64,
    step: &PlanStep,
    row: &StepRow,
    round: i64,
) -> Result<NewJob, TaskError> {
    let key = key(&format!("step:{id}:{version}:{}:{}", step.id, row.attempts.max(round)))?;
    let mut job = NewJob::new(
        STEP_QUEUE.parse().map_err(|_| TaskError::BadRequest("queue".into()))?,
        json!({"task_id": id, "step_id": step.id, "plan_version": version}),
    )
    .with_idempotency_key(key);
    if let Some(p) = parent_of(id) {
        job = job.with_parent(p);
    }
    if let Some(agent) = &step.agent
        && let Ok(k) = format!("agent:{agent}").parse()
    {
        job = job.with_concurrency_key(k);
    }
    Ok(job)
}

/// Queues every pending step whose dependencies succeeded, or finishes the task when every
/// step has. `round` is added to the job key so a retried task gets new jobs.
pub(crate) async fn advance(tasks: &Tasks, id: &str, round: i64) -> Result<(), TaskError> {
    let Some(task) = tasks.store.task(id).await? else { return Ok(()) };
    if status::FINAL.contains(&task.status.as_str()) || task.plan_version == 0 {
        return Ok(());
    }
    let graph = tasks
        .graph(id, task.plan_version)
        .await?
        .ok_or_else(|| TaskError::NotFound("plan".into()))?;
    let steps: BTreeMap<String, StepRow> =
        tasks.store.steps(id).await?.into_iter().map(|s| (s.step_id.clone(), s)).collect();
    if finish_if_done(tasks, id, &graph, &steps).await? {
        return Ok(());
    }
    let mut jobs = Vec::new();
    for step in ready_steps(&graph, steps.values()) {
        let Some(row) = steps.get(&step.id) else { continue };
        let job = step_job(id, task.plan_version, step, row, round)?;
        jobs.push((job, step.id.clone(), step.agent.clone()));
    }
    if jobs.is_empty() {
        return Ok(());
    }
    // Jobs first: a crash before the rows say `queued` only means the next advance enqueues
    // the same keys again (no duplicates); the other order could strand a step.
    let batch: Vec<NewJob> = jobs.iter().map(|(j, _, _)| j.clone()).collect();
    tasks.queue.enqueue_batch(&batch).await?;
    for (_, step, agent) in jobs {
        if tasks.store.set_step_status_if(id, &step, "pending", "queued").await? {
            tasks.publish(id, agent.as_ref(), "STEP_QUEUED", json!({"step_id": step})).await;
        }
    }
    Ok(())
}

/// For [`kai_store::TaskStore::finish_step`]: the steps that may start, with their jobs, given
/// the task's steps as they are once a step succeeded.
fn unblocked(graph: &Arc<TaskGraph>, task: &TaskRow) -> kai_store::FollowUps {
    let (graph, id, version) = (graph.clone(), task.id.clone(), task.plan_version);
    Arc::new(move |steps: &[StepRow]| {
        ready_steps(&graph, steps)
            .into_iter()
            .filter_map(|s| {
                let row = steps.iter().find(|r| r.step_id == s.id)?;
                let job = step_job(&id, version, s, row, 0).ok()?;
                Some((s.id.clone(), job))
            })
            .collect()
    })
}

/// After a step succeeded and `finish_step` queued the steps it unblocked: finishes the task
/// if that was the last step, else tells the bus and wakes the workers for the new jobs.
async fn follow_ups(
    tasks: &Tasks,
    task: &TaskRow,
    graph: &TaskGraph,
    steps: Vec<StepRow>,
    queued: Vec<String>,
) -> Result<(), TaskError> {
    let steps: BTreeMap<String, StepRow> =
        steps.into_iter().map(|s| (s.step_id.clone(), s)).collect();
    if finish_if_done(tasks, &task.id, graph, &steps).await? {
        return Ok(());
    }
    if !queued.is_empty() {
        tasks.queue.wake();
    }
    for id in queued {
        let agent = graph.step(&id).and_then(|s| s.agent.clone());
        tasks.publish(&task.id, agent.as_ref(), "STEP_QUEUED", json!({"step_id": id})).await;
    }
    Ok(())
}
