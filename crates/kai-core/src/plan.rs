//! Task graphs: the steps a plan is made of, their dependencies, and the checks a plan passes
//! before anything runs — ids, dependencies, acyclicity, known agents and tools, the agents'
//! permissions, the task's step budget — with safe repairs (duplicate or self dependencies,
//! missing agent) applied and reported, and everything else rejected with the reason.
//!
//! Pure: the caller says which agents and tools exist ([`PlanContext`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AgentId;
use crate::agent::Approval;

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanStep {
    /// Unique in the plan: 1 to 64 of a-z, 0-9, `-`, `_`.
    pub id: String,
    #[serde(default)]
    pub title: String,
    /// Who runs it; `None`: the default executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// A tool the step calls directly with `inputs` (no model call), or `None` for a model step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// What to do (model steps), or a note (tool steps).
    #[serde(default)]
    pub instruction: String,
    /// Arguments (tool steps) or extra context (model steps). A string `{{steps.ID.output}}`
    /// is replaced by that step's output when this step starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
}

/// A plan's steps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskGraph {
    pub steps: Vec<PlanStep>,
}

/// What an agent may do, as the plan check needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCaps {
    /// Whether it takes work now (lifecycle `active`).
    pub runnable: bool,
    /// Granted tools and their approval policy (`deny` ones are absent).
    pub tools: BTreeMap<String, Approval>,
}

/// The world a plan is checked against.
#[derive(Debug, Clone)]
pub struct PlanContext {
    pub agents: BTreeMap<AgentId, AgentCaps>,
    pub tools: BTreeSet<String>,
    /// The agent a step without one is given.
    pub default_agent: AgentId,
    pub max_steps: usize,
}

/// A reason a plan cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum PlanProblem {
    #[error("the plan has no steps")]
    Empty,
    #[error("the plan has {steps} steps; the task's budget allows {max}")]
    TooManySteps { steps: usize, max: usize },
    #[error("step id {id:?} is not 1 to 64 of a-z, 0-9, `-`, `_`")]
    BadId { id: String },
    #[error("step id {id:?} is used twice")]
    DuplicateId { id: String },
    #[error("step {step:?} depends on {dependency:?}, which is not a step of the plan")]
    UnknownDependency { step: String, dependency: String },
    #[error("steps {} depend on each other in a cycle", .cycle.join(" → "))]
    Cycle { cycle: Vec<String> },
    #[error("step {step:?} is assigned to {agent}, which is not a registered agent")]
    UnknownAgent { step: String, agent: String },
    #[error("step {step:?} is assigned to {agent}, which is not active")]
    AgentNotActive { step: String, agent: String },
    #[error("step {step:?} calls tool {tool:?}, which does not exist")]
    UnknownTool { step: String, tool: String },
    #[error("step {step:?}: {agent} is not permitted to use tool {tool:?}")]
    ToolNotPermitted { step: String, agent: String, tool: String },
    #[error("step {step:?} has neither an instruction nor a tool")]
    NothingToDo { step: String },
}

/// A change the check made on its own, reported with the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub step: String,
    pub what: String,
}

/// A plan that passed: its repairs, its steps in an order that respects dependencies, and the
/// (step, tool) pairs whose policy asks for the owner's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    pub repairs: Vec<Repair>,
    pub order: Vec<String>,
    pub needs_approval: Vec<(String, String)>,
}

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl TaskGraph {
    /// Applies the safe repairs and checks the plan against `ctx`.
    pub fn check(&mut self, ctx: &PlanContext) -> Result<Checked, Vec<PlanProblem>> {
        let mut problems = Vec::new();
        let mut repairs = Vec::new();
        if self.steps.is_empty() {
            return Err(vec![PlanProblem::Empty]);
        }
        if self.steps.len() > ctx.max_steps {
            problems
                .push(PlanProblem::TooManySteps { steps: self.steps.len(), max: ctx.max_steps });
        }
        let mut ids = BTreeSet::new();
        for s in &self.steps {
            if !valid_id(&s.id) {
                problems.push(PlanProblem::BadId { id: s.id.clone() });
            } else if !ids.insert(s.id.clone()) {
                problems.push(PlanProblem::DuplicateId { id: s.id.clone() });
            }
        }
        for s in &mut self.steps {
            let before = s.depends_on.len();
            let mut seen = BTreeSet::new();
            s.depends_on.retain(|d| seen.insert(d.clone()));
            if s.depends_on.len() < before {
                repairs.push(Repair {
                    step: s.id.clone(),
                    what: "removed repeated dependencies".into(),
                });
            }
            if let Some(i) = s.depends_on.iter().position(|d| *d == s.id) {
                s.depends_on.remove(i);
                repairs.push(Repair {
                    step: s.id.clone(),
                    what: "removed its dependency on itself".into(),
                });
            }
            if s.agent.is_none() {
                s.agent = Some(ctx.default_agent.clone());
                repairs.push(Repair {
                    step: s.id.clone(),
                    what: format!("assigned to {}", ctx.default_agent),
                });
            }
            for d in &s.depends_on {
                if !ids.contains(d) {
                    problems.push(PlanProblem::UnknownDependency {
                        step: s.id.clone(),
                        dependency: d.clone(),
                    });
                }
            }
        }
        let mut needs_approval = Vec::new();
        for s in &self.steps {
            let agent = s.agent.as_ref().unwrap_or(&ctx.default_agent);
            let Some(caps) = ctx.agents.get(agent) else {
                problems.push(PlanProblem::UnknownAgent {
                    step: s.id.clone(),
                    agent: agent.to_string(),
                });
                continue;
            };
            if !caps.runnable {
                problems.push(PlanProblem::AgentNotActive {
                    step: s.id.clone(),
                    agent: agent.to_string(),
                });
            }
            match &s.tool {
                Some(tool) if !ctx.tools.contains(tool) => {
                    problems
                        .push(PlanProblem::UnknownTool { step: s.id.clone(), tool: tool.clone() });
                }
                Some(tool) => match caps.tools.get(tool) {
                    None | Some(Approval::Deny) => problems.push(PlanProblem::ToolNotPermitted {
                        step: s.id.clone(),
                        agent: agent.to_string(),
                        tool: tool.clone(),
                    }),
                    Some(Approval::Ask) => needs_approval.push((s.id.clone(), tool.clone())),
                    Some(Approval::Auto) => {}
                },
                None if s.instruction.trim().is_empty() => {
                    problems.push(PlanProblem::NothingToDo { step: s.id.clone() });
                }
                None => {}
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        match self.order() {
            Ok(order) => Ok(Checked { repairs, order, needs_approval }),
            Err(cycle) => Err(vec![PlanProblem::Cycle { cycle }]),
        }
    }

    /// Step ids in dependency order (Kahn's algorithm, ties by plan order), or one cycle.
    pub fn order(&self) -> Result<Vec<String>, Vec<String>> {
        let index: BTreeMap<&str, usize> =
            self.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
        let mut indegree = vec![0usize; self.steps.len()];
        let mut dependents = vec![Vec::new(); self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for d in &s.depends_on {
                if let Some(&j) = index.get(d.as_str()) {
                    indegree[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
        let mut ready: BTreeSet<usize> =
            (0..self.steps.len()).filter(|&i| indegree[i] == 0).collect();
        let mut order = Vec::with_capacity(self.steps.len());
        while let Some(i) = ready.pop_first() {
            order.push(self.steps[i].id.clone());
            for &k in &dependents[i] {
                indegree[k] -= 1;
                if indegree[k] == 0 {
                    ready.insert(k);
                }
            }
        }
        if order.len() == self.steps.len() {
            return Ok(order);
        }
        Err(self.find_cycle(&index, &indegree))
    }

    /// Walks dependencies from a step still blocked until a step repeats.
    fn find_cycle(&self, index: &BTreeMap<&str, usize>, indegree: &[usize]) -> Vec<String> {
        let Some(start) = indegree.iter().position(|&d| d > 0) else { return Vec::new() };
        let mut path = vec![start];
        let mut at = start;
        loop {
            let next = self.steps[at]
                .depends_on
                .iter()
                .filter_map(|d| index.get(d.as_str()).copied())
                .find(|&j| indegree[j] > 0);
            let Some(next) = next else { return Vec::new() };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle: Vec<String> =
                    path[pos..].iter().map(|&i| self.steps[i].id.clone()).collect();
                cycle.push(self.steps[next].id.clone());
                return cycle;
            }
            path.push(next);
            at = next;
        }
    }

    /// Steps not yet `started` whose dependencies are all `done`.
    pub fn ready<'a, S: std::borrow::Borrow<str> + Ord>(
        &'a self,
        done: &BTreeSet<S>,
        started: &BTreeSet<S>,
    ) -> Vec<&'a PlanStep> {
        self.steps
            .iter()
            .filter(|s| {
                !started.contains(s.id.as_str())
                    && s.depends_on.iter().all(|d| done.contains(d.as_str()))
            })
            .collect()
    }

    pub fn step(&self, id: &str) -> Option<&PlanStep> {
        self.steps.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests;
