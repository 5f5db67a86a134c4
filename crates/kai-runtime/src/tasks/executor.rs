//! Running one step: every model call of a task goes through [`call_model`] (agent and task
//! budgets checked before the call, usage recorded after it); [`execute`] runs a step as a model
//! call with the agent's tools, or as a direct tool call; [`review`] asks kReviewer whether the
//! result does what the step asked.

use std::collections::BTreeMap;

use kai_core::plan::PlanStep;
use kai_crypto::audit::Outcome;
use kai_llm::{ChatRequest, ChatResponse, Message, ToolDefinition};
use serde_json::{Value, json};

use super::{TaskBudget, Tasks, Usage, now_us};
use crate::agents::{AgentView, REVIEWER};
use crate::llm::ModelError;
use crate::spend;
use crate::tools::policy::{self, Decision};
use crate::tools::{ASK_USER, ToolContext};

/// Why a step did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A budget of the task, the agent or the owner is spent: the task stops.
    #[error("{0}")]
    Budget(String),
    /// The provider is down or rate limiting: worth another attempt later.
    #[error("{0}")]
    Unavailable(String),
    /// Retrying will not help (bad request, forbidden tool, unknown agent).
    #[error("{0}")]
    Permanent(String),
    /// The step asked the owner a question (this id) and waits for the answer.
    #[error("waiting for the answer to question {0}")]
    Waiting(String),
}

impl From<ModelError> for StepError {
    fn from(e: ModelError) -> Self {
        match &e {
            ModelError::Llm(l) if l.should_fall_back() => {
                Self::Unavailable(format!("{}: {l}", l.code()))
            }
            ModelError::Vault(v) if v.code() == "sealed" => Self::Unavailable(e.to_string()),
            _ => Self::Permanent(e.to_string()),
        }
    }
}

impl From<super::TaskError> for StepError {
    fn from(e: super::TaskError) -> Self {
        match e {
            super::TaskError::Sealed | super::TaskError::Store(_) | super::TaskError::Queue(_) => {
                Self::Unavailable(e.to_string())
            }
            other => Self::Permanent(other.to_string()),
        }
    }
}

impl From<kai_store::StoreError> for StepError {
    fn from(e: kai_store::StoreError) -> Self {
        Self::Unavailable(format!("storage: {e}"))
    }
}

/// One model call on behalf of an agent (and a task).
pub struct ModelCall<'a> {
    pub tasks: &'a Tasks,
    pub task: Option<&'a str>,
    pub owner: &'a str,
    pub agent: &'a AgentView,
    pub request: ChatRequest,
}

/// The persona an agent thinks with: its own, else the node's first.
pub fn persona_of(tasks: &Tasks, agent: &AgentView) -> Result<String, StepError> {
    if !agent.definition.persona.is_empty() {
        return Ok(agent.definition.persona.clone());
    }
    tasks
        .llm
        .personas()
        .next()
        .map(|p| p.name.clone())
        .ok_or_else(|| StepError::Permanent("no persona is configured".into()))
}

/// Checks the agent's and the task's budgets, calls the agent's persona, records the usage.
pub async fn call_model(call: ModelCall<'_>) -> Result<ChatResponse, StepError> {
    let ModelCall { tasks, task, owner, agent, mut request } = call;
    let principal = format!("agent:{}", agent.id());
    // The owner's daily budget and the agent's, before the call (the owner's counts their
    // own calls; task calls are recorded under the agent and count against the task).
    for who in [owner, principal.as_str()] {
        let mut limits = spend::limit_for(&tasks.config.borrow().config, who);
        if who == principal {
            let own = &agent.definition.permissions.budget;
            limits.tokens = own.tokens_per_day.or(limits.tokens);
            limits.cost = own.cost_per_day.or(limits.cost);
        }
        spend::check_budget(tasks.store.as_ref(), who, limits).await.map_err(|e| match e {
            spend::BudgetError::Exhausted(m) => StepError::Budget(m),
            spend::BudgetError::Store(s) => s.into(),
        })?;
    }
    if let Some(id) = task
        && let Some(row) = tasks.store.task(id).await?
        && let Some(over) = budget_of(&row).exceeded(&Usage::of(&row), elapsed_secs(&row))
    {
        return Err(StepError::Budget(over));
    }
    let persona = persona_of(tasks, agent)?;
    let (entry, provider) = tasks.llm.persona(&persona).await?;
    if !entry.system_prompt.is_empty() {
        request.messages.insert(0, Message::system(entry.system_prompt.clone()));
    }
    request.model = Some(entry.name.clone());
    if request.params.temperature.is_none() {
        request.params.temperature = entry.temperature;
    }
    let response = provider.chat(request).await.map_err(ModelError::from)?;
    let prices = tasks.llm.prices(&entry.name, &response.model);
    // One call, two views: the acting agent's usage (its own budget) and the owner's (whose
    // daily budget pays for the tasks they submit). `/telemetry/usage` lists both rows.
    let mut rows = vec![spend::usage_row(&principal, &entry.name, &response.usage, prices)];
    if owner != principal && !owner.is_empty() {
        let persona = format!("{} via {}", entry.name, agent.id());
        rows.push(spend::usage_row(owner, &persona, &response.usage, prices));
    }
    if let Some(id) = task {
        let usage = kai_store::TaskUsage {
            tokens: i64::try_from(response.usage.total_tokens()).unwrap_or(i64::MAX),
            cost_micros: spend::cost_micros(&response.usage, prices),
            ..kai_store::TaskUsage::default()
        };
        // With the task's counters, in one write.
        tasks.store.record_task_call(id, &rows, usage, now_us()).await?;
    } else {
        for row in &rows {
            if let Err(e) = tasks.store.record_usage(row).await {
                tracing::error!(error = %e, "could not record LLM usage");
            }
        }
    }
    Ok(response)
}

/// The task's budget (the `budget` key of its options), the default if it has none or an
/// unreadable one. Read straight into the type: it is read on every step and model call.
pub(crate) fn budget_of(task: &kai_store::TaskRow) -> TaskBudget {
    #[derive(serde::Deserialize)]
    struct Options {
        budget: TaskBudget,
    }
    serde_json::from_str::<Options>(&task.budget).map(|o| o.budget).unwrap_or_default()
}

pub(crate) fn elapsed_secs(task: &kai_store::TaskRow) -> u64 {
    u64::try_from((now_us() - task.created_at_us) / 1_000_000).unwrap_or(0)
}

/// Replaces `{{steps.ID.output}}` in string inputs by that step's output.
pub fn resolve_inputs(
    inputs: &BTreeMap<String, Value>,
    outputs: &BTreeMap<String, String>,
) -> Value {
    fn fill(v: &Value, outputs: &BTreeMap<String, String>) -> Value {
        match v {
            Value::String(s) => {
                let mut text = s.clone();
                for (id, out) in outputs {
                    text = text.replace(&format!("{{{{steps.{id}.output}}}}"), out);
                }
                Value::String(text)
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| fill(i, outputs)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, i)| (k.clone(), fill(i, outputs))).collect())
            }
            other => other.clone(),
        }
    }
    Value::Object(inputs.iter().map(|(k, v)| (k.clone(), fill(v, outputs))).collect())
}

/// What a step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub output: String,
    pub tool_calls: u64,
}

/// The prompt of a model step.
fn step_messages(
    goal: &str,
    agent: &AgentView,
    step: &PlanStep,
    inputs: &Value,
    outputs: &BTreeMap<String, String>,
    feedback: Option<(&str, &str)>,
) -> Vec<Message> {
    let mut system = agent.definition.instructions.clone();
    if system.is_empty() {
        system = "Do what the step asks.".into();
    }
    let mut user = format!("The overall goal: {goal}\n\nYour step: {}\n", step.instruction);
    if inputs.as_object().is_some_and(|o| !o.is_empty()) {
        user.push_str(&format!("\nInputs: {inputs}\n"));
    }
    for dep in &step.depends_on {
        if let Some(out) = outputs.get(dep) {
            user.push_str(&format!("\nOutput of step {dep}:\n{out}\n"));
        }
    }
    if let Some((previous, note)) = feedback {
        user.push_str(&format!(
            "\nA reviewer sent your previous answer back.\nPrevious answer:\n{previous}\nFeedback: {note}\nAnswer again, addressing the feedback.\n"
        ));
    }
    vec![Message::system(system), Message::user(user)]
}

/// Most model rounds of one step's tool loop.
pub const MAX_TOOL_ROUNDS: usize = 16;
/// Longest tool result handed back to the model (bytes).
pub const MAX_TOOL_RESULT_BYTES: usize = 32 * 1024;

/// What a step runs with besides the task: its queue job (for once-only side effects).
pub struct StepEnv<'a> {
    pub job: Option<&'a crate::queue::JobContext>,
    pub plan_version: i64,
}

/// Runs `step` for `task` as `agent`: a direct tool call (a tool step of the approved plan),
/// or the model with the agent's tools in a bounded loop.
pub async fn execute(
    tasks: &Tasks,
    task: &kai_store::TaskRow,
    agent: &AgentView,
    step: &PlanStep,
    outputs: &BTreeMap<String, String>,
    feedback: Option<(&str, &str)>,
    env: &StepEnv<'_>,
) -> Result<StepResult, StepError> {
    let inputs = resolve_inputs(&step.inputs, outputs);
    let call = ToolInvocation { tasks, task, agent, step, env };
    if let Some(tool) = &step.tool {
        let key = format!("effect:{}:{}:{}", task.id, env.plan_version, step.id);
        return match call.run(tool, inputs, true, &key).await? {
            Ok(value) => Ok(StepResult { output: tool_text(&value), tool_calls: 1 }),
            Err(refusal) => Err(StepError::Permanent(format!("{tool}: {refusal}"))),
        };
    }
    let definitions: Vec<ToolDefinition> = tasks
        .tools
        .registry
        .specs()
        .filter(|s| agent.definition.tool_policy(&s.name) == Some(kai_core::agent::Approval::Auto))
        .map(|s| ToolDefinition {
            name: s.name.clone(),
            description: s.description.clone(),
            parameters: s.parameters.clone(),
        })
        .collect();
    let mut messages = step_messages(&task.goal, agent, step, &inputs, outputs, feedback);
    let mut calls = 0u64;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..MAX_TOOL_ROUNDS {
        let mut request = ChatRequest::new(messages.clone());
        request.tools = definitions.clone();
        let model = ModelCall { tasks, task: Some(&task.id), owner: &task.owner, agent, request };
        let response = call_model(model).await?;
        if response.message.tool_calls.is_empty() {
            return Ok(StepResult { output: response.message.content, tool_calls: calls });
        }
        messages.push(Message::assistant_tool_calls(
            response.message.content.clone(),
            response.message.tool_calls.clone(),
        ));
        for (i, tc) in response.message.tool_calls.iter().enumerate() {
            calls += 1;
            let repeats =
                seen.entry(format!("{}:{}", tc.name, args_hash(&tc.arguments))).or_default();
            *repeats += 1;
            if *repeats >= super::sentinel::LOOP_REPEATS {
                let detail = format!(
                    "{} called {} times with the same arguments in step {}",
                    tc.name, repeats, step.id
                );
                tasks.incident(agent.id(), &task.id, "loop", &detail).await;
                return Err(StepError::Permanent(format!("kSentinel stopped a loop: {detail}")));
            }
            let key = format!(
                "effect:{}:{}:{}:r{round}c{i}:{}",
                task.id,
                env.plan_version,
                step.id,
                args_hash(&tc.arguments)
            );
            let content = match call.run(&tc.name, tc.arguments.clone(), false, &key).await? {
                Ok(value) => tool_text(&value),
                Err(refusal) => json!({"error": refusal}).to_string(),
            };
            messages.push(Message::tool_result(tc.id.clone(), cut(content, MAX_TOOL_RESULT_BYTES)));
        }
    }
    Err(StepError::Permanent(format!(
        "the model was still calling tools after {MAX_TOOL_ROUNDS} rounds"
    )))
}

fn tool_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(" …[cut]");
    }
    text
}

fn args_hash(args: &Value) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(args.to_string().as_bytes())[..8])
}

/// One tool call on behalf of a step, through the policy layer.
struct ToolInvocation<'a> {
    tasks: &'a Tasks,
    task: &'a kai_store::TaskRow,
    agent: &'a AgentView,
    step: &'a PlanStep,
    env: &'a StepEnv<'a>,
}

impl ToolInvocation<'_> {
    async fn audit(&self, action: &str, outcome: Outcome, details: Value) -> Result<(), StepError> {
        let audit = self.tasks.audit()?;
        audit
            .record(&format!("agent:{}", self.agent.id()), action, &self.task.id, outcome, details)
            .await
            .map_err(|e| StepError::Unavailable(e.to_string()))?;
        Ok(())
    }

    /// Runs `tool`. `Ok(Err(reason))` is a refusal or tool failure the model may read and
    /// work around (audited); `Err` stops the step (budget, storage, a question to wait for).
    async fn run(
        &self,
        tool: &str,
        args: Value,
        approved: bool,
        key: &str,
    ) -> Result<Result<Value, String>, StepError> {
        let tasks = self.tasks;
        let used = tasks
            .store
            .add_task_usage(
                &self.task.id,
                kai_store::TaskUsage { tool_calls: 1, ..Default::default() },
                now_us(),
            )
            .await?;
        if let Some(over) = budget_of(self.task).exceeded(&Usage::of(&used), elapsed_secs(&used)) {
            return Err(StepError::Budget(over));
        }
        let base = json!({"tool": tool, "step_id": self.step.id, "args_sha256": args_hash(&args)});
        let deny = |reason: String| {
            let mut d = base.clone();
            d["reason"] = json!(reason);
            d
        };
        if let Decision::Deny(reason) =
            policy::check(self.agent, tool, &tasks.tools.registry, approved)
        {
            self.audit("tool.denied", Outcome::Denied, deny(reason.clone())).await?;
            tasks.incident(self.agent.id(), &self.task.id, "denied", &reason).await;
            return Ok(Err(reason));
        }
        if policy::EGRESS.contains(&tool)
            && let Some(secret) = policy::tainted(&tasks.tools.vault, &args)
                .await
                .map_err(|e| StepError::Unavailable(e.to_string()))?
        {
            let reason = format!(
                "the arguments carry the vault secret {secret:?}; secrets never leave the node through {tool}"
            );
            self.audit("tool.denied", Outcome::Denied, deny(reason.clone())).await?;
            tasks.incident(self.agent.id(), &self.task.id, "exfiltration", &reason).await;
            return Ok(Err(reason));
        }
        if tool == ASK_USER {
            return self.ask(&args).await;
        }
        let Some(implementation) = tasks.tools.registry.get(tool) else {
            return Ok(Err(format!("there is no tool {tool:?}")));
        };
        let ctx = ToolContext {
            task_id: Some(self.task.id.clone()),
            step_id: Some(self.step.id.clone()),
            agent: self.agent.id().to_string(),
            workspace: tasks.tools.settings.workspace_of(self.agent.id()),
            allowed_hosts: self.agent.definition.permissions.hosts.clone(),
        };
        let risky = implementation.spec().risky;
        let mut args = args;
        // A repeated send (after a crash mid-call) carries the same key, so an API that
        // de-duplicates on `Idempotency-Key` performs it once.
        if risky && tool == "http_fetch" && args.is_object() {
            if !args["headers"].is_object() {
                args["headers"] = json!({});
            }
            if args["headers"].get("Idempotency-Key").is_none() {
                args["headers"]["Idempotency-Key"] = json!(key);
            }
        }
        let result = match (self.env.job, risky, key.parse::<kai_core::queue::EffectKey>()) {
            (Some(job), true, Ok(effect)) => {
                let outcome = job
                    .effect_once(&effect, |_| async {
                        Ok(match implementation.call(&ctx, args.clone()).await {
                            Ok(v) => json!({"ok": v}),
                            Err(e) => json!({"err": e.to_string(), "code": e.code()}),
                        })
                    })
                    .await
                    .map_err(|e| StepError::Unavailable(e.message))?;
                match outcome.get("ok") {
                    Some(v) => Ok(v.clone()),
                    None => Err((
                        outcome["code"].as_str().unwrap_or("failed").to_owned(),
                        outcome["err"].as_str().unwrap_or_default().to_owned(),
                    )),
                }
            }
            _ => implementation
                .call(&ctx, args)
                .await
                .map_err(|e| (e.code().to_owned(), e.to_string())),
        };
        match result {
            Ok(value) => {
                self.audit("tool.call", Outcome::Success, base).await?;
                Ok(Ok(value))
            }
            Err((code, message)) => {
                let outcome = if code == "denied" { Outcome::Denied } else { Outcome::Failure };
                let mut d = deny(message.clone());
                d["code"] = json!(code);
                self.audit(if code == "denied" { "tool.denied" } else { "tool.call" }, outcome, d)
                    .await?;
                if code == "denied" {
                    tasks.incident(self.agent.id(), &self.task.id, "denied", &message).await;
                }
                Ok(Err(message))
            }
        }
    }

    /// `ask_user`: the answer if the owner gave one, else the question is stored (once) and
    /// the step waits.
    async fn ask(&self, args: &Value) -> Result<Result<Value, String>, StepError> {
        let question = match crate::tools::ask::question_of(args) {
            Ok(q) => q,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let store = &self.tasks.store;
        let id = {
            use sha2::Digest as _;
            let d = sha2::Sha256::digest(
                format!("{}\n{}\n{question}", self.task.id, self.step.id).as_bytes(),
            );
            format!("q_{}", hex::encode(&d[..12]))
        };
        if let Some(q) = store.question(&id).await? {
            return match q.answer {
                Some(a) => Ok(Ok(json!({"answer": a}))),
                None => Err(StepError::Waiting(id)),
            };
        }
        let row = kai_store::QuestionRow {
            id: id.clone(),
            task_id: self.task.id.clone(),
            step_id: self.step.id.clone(),
            question: question.clone(),
            answer: None,
            asked_at_us: now_us(),
            answered_at_us: None,
            answered_by: None,
        };
        store.insert_question(&row).await?;
        self.tasks
            .publish(
                &self.task.id,
                Some(self.agent.id()),
                "TASK_QUESTION",
                json!({"question_id": id, "step_id": self.step.id, "question": question}),
            )
            .await;
        Err(StepError::Waiting(id))
    }
}

/// The reviewer's judgement of one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub accept: bool,
    pub feedback: String,
}

/// Asks kReviewer whether `output` does what `step` asked. A reply that is not a verdict is
/// taken as acceptance (noted in the feedback): a confused reviewer must not wedge a task.
pub async fn review(
    tasks: &Tasks,
    task: &kai_store::TaskRow,
    step: &PlanStep,
    output: &str,
) -> Result<Verdict, StepError> {
    let reviewer =
        tasks.agents.get(REVIEWER).await.map_err(|e| StepError::Permanent(e.to_string()))?;
    if !reviewer.state.is_runnable() {
        return Ok(Verdict {
            accept: true,
            feedback: format!("not reviewed: {REVIEWER} is {}", reviewer.state.as_str()),
        });
    }
    let system = format!(
        "{}\nReply with ONLY a JSON object: {{\"verdict\": \"accept\" or \"revise\", \"feedback\": \"what is wrong and how to fix it\"}}.",
        reviewer.definition.instructions
    );
    let user =
        format!("The goal: {}\nThe step: {}\nThe result:\n{output}", task.goal, step.instruction);
    let mut request = ChatRequest::new(vec![Message::system(system), Message::user(user)]);
    request.params.temperature = Some(0.0);
    let call =
        ModelCall { tasks, task: Some(&task.id), owner: &task.owner, agent: &reviewer, request };
    let reply = call_model(call).await?.message.content;
    Ok(parse_verdict(&reply))
}

fn parse_verdict(reply: &str) -> Verdict {
    let value = reply
        .find('{')
        .zip(reply.rfind('}'))
        .and_then(|(a, b)| reply.get(a..=b))
        .and_then(|t| serde_json::from_str::<Value>(t).ok());
    match value {
        Some(v) => Verdict {
            accept: v["verdict"].as_str().is_none_or(|s| !s.eq_ignore_ascii_case("revise")),
            feedback: v["feedback"].as_str().unwrap_or_default().to_owned(),
        },
        None => Verdict {
            accept: true,
            feedback: "the reviewer's reply was not a verdict; accepted".into(),
        },
    }
}

/// The signature an agent puts on a step's output: Ed25519 over task, step and output hash.
pub fn signed_payload(task: &str, step: &str, output: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(output.as_bytes());
    let mut m = format!("kai.step.result\n{task}\n{step}\n").into_bytes();
    m.extend_from_slice(&digest);
    m
}

pub fn result_details(
    task: &str,
    step: &str,
    output: &str,
    signature: &[u8; 64],
    did: &str,
) -> Value {
    use sha2::Digest as _;
    json!({
        "task_id": task, "step_id": step, "output_sha256": hex::encode(sha2::Sha256::digest(output.as_bytes())),
        "agent_did": did, "signature": hex::encode(signature),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_take_earlier_outputs_and_verdicts_parse_leniently() {
        let outputs: BTreeMap<String, String> =
            [("fetch".to_owned(), "page text".to_owned())].into();
        let inputs: BTreeMap<String, Value> =
            [("doc".to_owned(), json!({"body": ["{{steps.fetch.output}}!"]}))].into();
        assert_eq!(resolve_inputs(&inputs, &outputs), json!({"doc": {"body": ["page text!"]}}));
        assert!(
            !parse_verdict("```json\n{\"verdict\": \"revise\", \"feedback\": \"too short\"}\n```")
                .accept
        );
        assert!(parse_verdict("{\"verdict\":\"accept\"}").accept);
        let confused = parse_verdict("looks fine to me");
        assert!(confused.accept && confused.feedback.contains("not a verdict"));
    }
}
