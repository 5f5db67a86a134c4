//! The planner (kPlanner): asks the model for a task graph as JSON, parses it leniently (code
//! fences, prose around the object, unknown fields), checks it, and when the check finds
//! problems gives the model one chance to repair its plan with the problems listed. A plan that
//! still fails is rejected with every reason.

use kai_core::plan::{Checked, PlanContext, PlanProblem, PlanStep, TaskGraph};
use kai_llm::{ChatRequest, Message};
use serde_json::Value;

use super::executor::{ModelCall, call_model};
use super::{TaskError, Tasks};
use crate::agents::PLANNER;

/// Model rounds: the first plan and one repair.
const ROUNDS: usize = 2;

/// Why planning produced no usable plan.
#[derive(Debug)]
pub struct PlanFailure {
    pub problems: Vec<PlanProblem>,
    pub message: String,
    pub usage: u64,
}

fn system_prompt(instructions: &str, ctx: &PlanContext) -> String {
    let mut agents = String::new();
    for (id, caps) in ctx.agents.iter().filter(|(_, c)| c.runnable) {
        let tools: Vec<&str> = caps.tools.keys().map(String::as_str).collect();
        agents.push_str(&format!("- {id}: tools {tools:?}\n"));
    }
    format!(
        "{instructions}\n\nYou plan; you do not execute. Reply with ONLY a JSON object, no prose:\n\
         {{\"steps\": [{{\"id\": \"short-id\", \"title\": \"…\", \"agent\": \"kExecutor:executor\", \
         \"tool\": null, \"instruction\": \"what to do\", \"inputs\": {{}}, \"depends_on\": []}}]}}\n\
         Rules: ids are lowercase letters, digits, - or _; depends_on lists ids of earlier steps \
         whose output the step needs; refer to an earlier output in inputs as \
         \"{{{{steps.ID.output}}}}\"; use \"tool\" only for a direct tool call whose inputs are its \
         arguments; at most {} steps; steps without dependencies between them run in parallel.\n\
         Agents you may assign:\n{agents}Tools that exist: {:?}",
        ctx.max_steps, ctx.tools
    )
}

/// The JSON object in a model's reply, as a task graph (unknown fields ignored).
pub fn parse_graph(text: &str) -> Result<TaskGraph, String> {
    let start = text.find('{').ok_or("the reply holds no JSON object")?;
    let end = text.rfind('}').ok_or("the reply holds no JSON object")?;
    let value: Value = serde_json::from_str(text.get(start..=end).ok_or("no JSON object")?)
        .map_err(|e| format!("the JSON does not parse: {e}"))?;
    let steps = value
        .get("steps")
        .or_else(|| value.get("plan"))
        .and_then(Value::as_array)
        .ok_or("the JSON has no \"steps\" list")?;
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let text = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_owned);
            let agent = match text("agent").filter(|a| !a.is_empty()) {
                Some(a) => Some(a.parse().map_err(|e| format!("step {i}: {e}"))?),
                None => None,
            };
            Ok(PlanStep {
                id: text("id").unwrap_or_else(|| format!("s{}", i + 1)),
                title: text("title").unwrap_or_default(),
                agent,
                tool: text("tool").filter(|t| !t.is_empty()),
                instruction: text("instruction")
                    .or_else(|| text("description"))
                    .unwrap_or_default(),
                inputs: s
                    .get("inputs")
                    .and_then(Value::as_object)
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                depends_on: s
                    .get("depends_on")
                    .and_then(Value::as_array)
                    .map(|d| d.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TaskGraph { steps })
}

/// Plans `goal`. `task` is the task being planned (for usage and budgets), if any.
pub async fn plan(
    tasks: &Tasks,
    goal: &str,
    owner: &str,
    task: Option<&str>,
    ctx: &PlanContext,
) -> Result<(TaskGraph, Checked, u64), PlanFailure> {
    let fail = |message: String, usage| PlanFailure { problems: Vec::new(), message, usage };
    let agent = tasks.agents.get(PLANNER).await.map_err(|e| fail(e.to_string(), 0))?;
    if !agent.state.is_runnable() {
        return Err(fail(format!("{PLANNER} is {}; resume it to plan", agent.state.as_str()), 0));
    }
    let mut messages = vec![
        Message::system(system_prompt(&agent.definition.instructions, ctx)),
        Message::user(format!("Goal: {goal}")),
    ];
    let mut usage = 0;
    let mut last_problems = Vec::new();
    let mut last_message = String::new();
    for _ in 0..ROUNDS {
        let mut request = ChatRequest::new(messages.clone());
        request.params.temperature = Some(0.0);
        let call = ModelCall { tasks, task, owner, agent: &agent, request };
        let response = match call_model(call).await {
            Ok(r) => r,
            Err(e) => return Err(fail(e.to_string(), usage)),
        };
        usage += response.usage.total_tokens();
        let reply = response.message.content.clone();
        messages.push(Message::assistant(reply.clone()));
        let complaint = match parse_graph(&reply) {
            Ok(mut graph) => match graph.check(ctx) {
                Ok(checked) => return Ok((graph, checked, usage)),
                Err(problems) => {
                    let text: Vec<String> = problems.iter().map(|p| format!("- {p}")).collect();
                    last_problems = problems;
                    last_message = "the plan failed its checks".into();
                    format!(
                        "The plan has these problems:\n{}\nReply with the corrected JSON plan only.",
                        text.join("\n")
                    )
                }
            },
            Err(e) => {
                last_problems.clear();
                last_message = format!("the planner's reply is not a plan: {e}");
                format!("That is not a valid plan ({e}). Reply with the JSON plan only.")
            }
        };
        messages.push(Message::user(complaint));
    }
    Err(PlanFailure { problems: last_problems, message: last_message, usage })
}

impl From<PlanFailure> for TaskError {
    fn from(f: PlanFailure) -> Self {
        TaskError::BadRequest(f.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_found_in_fenced_or_chatty_replies() {
        let reply = "Sure! Here is the plan:\n```json\n{\"steps\": [{\"id\": \"fetch\", \"instruction\": \"get it\", \"extra\": 1}, {\"title\": \"sum\", \"description\": \"summarize\", \"depends_on\": [\"fetch\"]}]}\n```\nDone.";
        let g = parse_graph(reply).unwrap();
        assert_eq!(g.steps.len(), 2);
        assert_eq!(g.steps[1].id, "s2");
        assert_eq!(g.steps[1].instruction, "summarize");
        assert_eq!(g.steps[1].depends_on, vec!["fetch"]);
        assert!(parse_graph("no plan here").unwrap_err().contains("no JSON"));
        assert!(parse_graph("{\"nope\": 1}").unwrap_err().contains("steps"));
        assert!(
            parse_graph("{\"steps\": [{\"agent\": \"bad id\"}]}").unwrap_err().contains("step 0")
        );
    }
}
