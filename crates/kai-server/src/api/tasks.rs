//! JSON shapes of the agent registry and the task API: tasks with their usage, plan versions,
//! steps and questions, converted from the store's rows.

use chrono::{DateTime, Utc};
use kai_store::{PlanRow, QuestionRow, StepRow, TaskRow};
use serde::Serialize;
use serde_json::Value;

use super::library::time;

fn json_or_null(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// What a task has used so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskUsageOut {
    pub steps: i64,
    pub tool_calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

/// A task (a goal being worked on, or a workflow run).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskOut {
    pub id: String,
    pub owner: String,
    pub goal: String,
    /// planning, awaiting_approval, running, succeeded, failed, cancelled, budget_exceeded, rejected.
    pub status: String,
    /// api, workflow, trigger, webhook, agent.
    pub source: String,
    pub workflow: Option<String>,
    /// The budget, approval mode and review flag it was submitted with.
    #[schema(value_type = Object)]
    pub options: Value,
    pub usage: TaskUsageOut,
    pub result: Option<String>,
    pub error: Option<String>,
    /// The approved plan version (0: none yet).
    pub plan_version: i64,
    pub parent_id: Option<String>,
    pub depth: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&TaskRow> for TaskOut {
    fn from(t: &TaskRow) -> Self {
        Self {
            id: t.id.clone(),
            owner: t.owner.clone(),
            goal: t.goal.clone(),
            status: t.status.clone(),
            source: t.source.clone(),
            workflow: t.workflow.clone(),
            options: json_or_null(&t.budget),
            usage: TaskUsageOut {
                steps: t.used_steps,
                tool_calls: t.used_tool_calls,
                tokens: t.used_tokens,
                cost_usd: t.used_cost_micros as f64 / 1e6,
            },
            result: t.result.clone(),
            error: t.error.clone(),
            plan_version: t.plan_version,
            parent_id: t.parent_id.clone(),
            depth: t.depth,
            created_at: time(t.created_at_us),
            updated_at: time(t.updated_at_us),
            finished_at: t.finished_at_us.map(time),
        }
    }
}

/// One version of a task's plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanOut {
    pub version: i64,
    /// proposed, approved, superseded, rejected.
    pub status: String,
    /// The task graph: `{"steps": [{"id", "agent", "tool", "instruction", "inputs", "depends_on"}]}`.
    #[schema(value_type = Object)]
    pub graph: Value,
    /// What the check found: execution order, repairs, steps needing approval.
    #[schema(value_type = Object)]
    pub checked: Value,
    pub author: String,
    pub created_at: DateTime<Utc>,
}

impl From<&PlanRow> for PlanOut {
    fn from(p: &PlanRow) -> Self {
        Self {
            version: p.version,
            status: p.status.clone(),
            graph: json_or_null(&p.graph),
            checked: json_or_null(&p.checked),
            author: p.author.clone(),
            created_at: time(p.created_at_us),
        }
    }
}

/// A step of the approved plan, as it runs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepOut {
    pub step_id: String,
    pub plan_version: i64,
    pub agent: String,
    /// pending, queued, running, succeeded, failed, cancelled.
    pub status: String,
    pub attempts: i64,
    pub output: Option<String>,
    /// The reviewer's last feedback.
    pub feedback: Option<String>,
    pub error: Option<String>,
    pub tokens: i64,
    pub tool_calls: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<&StepRow> for StepOut {
    fn from(s: &StepRow) -> Self {
        Self {
            step_id: s.step_id.clone(),
            plan_version: s.plan_version,
            agent: s.agent.clone(),
            status: s.status.clone(),
            attempts: s.attempts,
            output: s.output.clone(),
            feedback: s.feedback.clone(),
            error: s.error.clone(),
            tokens: s.tokens,
            tool_calls: s.tool_calls,
            started_at: s.started_at_us.map(time),
            finished_at: s.finished_at_us.map(time),
        }
    }
}

/// A question a step asked the owner (`ask_user`); the step waits for the answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuestionOut {
    pub id: String,
    pub task_id: String,
    pub step_id: String,
    pub question: String,
    pub answer: Option<String>,
    pub asked_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answered_by: Option<String>,
}

impl From<&QuestionRow> for QuestionOut {
    fn from(q: &QuestionRow) -> Self {
        Self {
            id: q.id.clone(),
            task_id: q.task_id.clone(),
            step_id: q.step_id.clone(),
            question: q.question.clone(),
            answer: q.answer.clone(),
            asked_at: time(q.asked_at_us),
            answered_at: q.answered_at_us.map(time),
            answered_by: q.answered_by.clone(),
        }
    }
}

/// A task with everything about it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskDetail {
    pub task: TaskOut,
    pub plans: Vec<PlanOut>,
    pub steps: Vec<StepOut>,
    pub questions: Vec<QuestionOut>,
}

impl From<&kai_runtime::tasks::TaskView> for TaskDetail {
    fn from(v: &kai_runtime::tasks::TaskView) -> Self {
        Self {
            task: TaskOut::from(&v.task),
            plans: v.plans.iter().map(PlanOut::from).collect(),
            steps: v.steps.iter().map(StepOut::from).collect(),
            questions: v.questions.iter().map(QuestionOut::from).collect(),
        }
    }
}
