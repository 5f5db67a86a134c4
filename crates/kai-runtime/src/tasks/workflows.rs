//! Saved workflows: task graphs written in YAML with declared parameters, stored as versions,
//! run without the planner. `{{params.NAME}}` in a step's instruction or string inputs is
//! replaced by the run's value (checked against the declared type); `{{steps.ID.output}}` still
//! refers to earlier steps. A workflow is checked like a plan when it is saved.
//!
//! ```yaml
//! name: digest
//! description: Summarize a page
//! parameters:
//!   url: {type: string}
//!   words: {type: integer, default: 100}
//! steps:
//!   - id: fetch
//!     tool: http_fetch
//!     inputs: {url: "{{params.url}}"}
//!   - id: summarize
//!     instruction: "Summarize in {{params.words}} words: {{steps.fetch.output}}"
//!     depends_on: [fetch]
//! ```

use std::collections::BTreeMap;

use kai_core::plan::{PlanStep, TaskGraph};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Result, Submit, TaskBudget, TaskError, Tasks, now_us};

/// Largest workflow definition, in bytes.
pub const MAX_WORKFLOW_BYTES: usize = 64 * 1024;

/// A declared parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// `string` (default), `integer`, `number` or `boolean`.
    #[serde(default = "string", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub description: String,
}

fn string() -> String {
    "string".into()
}

/// A workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, Param>,
    pub steps: Vec<PlanStep>,
    /// A cron expression: the node runs it on this schedule with the default parameters.
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub budget: Option<TaskBudget>,
}

fn bad(m: impl Into<String>) -> TaskError {
    TaskError::BadRequest(m.into())
}

impl Workflow {
    /// Parses and checks the YAML (or JSON) text: names, parameter types, schedule.
    pub fn parse(text: &str) -> Result<Self> {
        if text.len() > MAX_WORKFLOW_BYTES {
            return Err(bad(format!("a workflow is at most {MAX_WORKFLOW_BYTES} bytes")));
        }
        let wf: Self = serde_yaml_ng::from_str(text)
            .map_err(|e| bad(format!("the workflow is not valid: {e}")))?;
        if !super::valid_name(&wf.name) {
            return Err(bad(format!("workflow name {:?}: 1 to 64 of a-z, 0-9, - and _", wf.name)));
        }
        for (name, p) in &wf.parameters {
            if !matches!(p.kind.as_str(), "string" | "integer" | "number" | "boolean") {
                return Err(bad(format!(
                    "parameter {name}: type {:?} is not string, integer, number or boolean",
                    p.kind
                )));
            }
            if let Some(d) = &p.default {
                typed(name, p, d)?;
            }
        }
        if let Some(s) = &wf.schedule {
            super::triggers::parse_cron(s).map_err(|e| bad(format!("schedule: {e}")))?;
        }
        if let Some(b) = &wf.budget {
            b.validate().map_err(bad)?;
        }
        Ok(wf)
    }

    /// The run's parameters: given values checked against their types, defaults for the rest.
    pub fn bind(&self, given: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
        if let Some(unknown) = given.keys().find(|k| !self.parameters.contains_key(*k)) {
            return Err(bad(format!("workflow {} has no parameter {unknown:?}", self.name)));
        }
        let mut out = BTreeMap::new();
        for (name, p) in &self.parameters {
            let value = given
                .get(name)
                .or(p.default.as_ref())
                .ok_or_else(|| bad(format!("parameter {name} is required")))?;
            out.insert(name.clone(), typed(name, p, value)?);
        }
        Ok(out)
    }

    /// The graph with the parameters filled in.
    pub fn graph(&self, params: &BTreeMap<String, String>) -> TaskGraph {
        let fill = |text: &str| {
            let mut t = text.to_owned();
            for (k, v) in params {
                t = t.replace(&format!("{{{{params.{k}}}}}"), v);
            }
            t
        };
        fn fill_value(v: &Value, fill: &dyn Fn(&str) -> String) -> Value {
            match v {
                Value::String(s) => Value::String(fill(s)),
                Value::Array(a) => Value::Array(a.iter().map(|i| fill_value(i, fill)).collect()),
                Value::Object(m) => {
                    Value::Object(m.iter().map(|(k, i)| (k.clone(), fill_value(i, fill))).collect())
                }
                other => other.clone(),
            }
        }
        TaskGraph {
            steps: self
                .steps
                .iter()
                .map(|s| PlanStep {
                    instruction: fill(&s.instruction),
                    inputs: s
                        .inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), fill_value(v, &fill)))
                        .collect(),
                    ..s.clone()
                })
                .collect(),
        }
    }
}

fn typed(name: &str, p: &Param, v: &Value) -> Result<String> {
    let ok = match p.kind.as_str() {
        "string" => v.as_str().map(str::to_owned),
        "integer" => v.as_i64().map(|i| i.to_string()),
        "number" => v.as_f64().map(|f| f.to_string()),
        "boolean" => v.as_bool().map(|b| b.to_string()),
        _ => None,
    };
    match ok {
        Some(s) if s.len() <= 8192 => Ok(s),
        Some(_) => Err(bad(format!("parameter {name} is longer than 8192 bytes"))),
        None => Err(bad(format!("parameter {name} must be a {}", p.kind))),
    }
}

impl Tasks {
    /// Saves a workflow as its next version after checking it like a plan.
    pub async fn save_workflow(&self, text: &str, author: &str) -> Result<(Workflow, i64)> {
        let wf = Workflow::parse(text)?;
        let ctx = self.plan_context(&wf.budget.unwrap_or_default()).await?;
        let sample: BTreeMap<String, String> =
            wf.parameters.keys().map(|k| (k.clone(), "x".to_owned())).collect();
        let mut graph = wf.graph(&sample);
        graph.check(&ctx).map_err(|problems| {
            bad(format!(
                "the workflow cannot run: {}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ))
        })?;
        self.audit()?
            .record(
                author,
                "workflow.save",
                &format!("workflow:{}", wf.name),
                kai_crypto::audit::Outcome::Success,
                serde_json::json!({"steps": wf.steps.len()}),
            )
            .await?;
        let version = self.store.insert_workflow(&wf.name, text, author, now_us()).await?;
        Ok((wf, version))
    }

    /// The newest version of every workflow (or of one).
    pub async fn workflow(&self, name: &str) -> Result<(Workflow, kai_store::WorkflowRow)> {
        let row = self
            .store
            .workflow(name, None)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("no workflow {name}")))?;
        Ok((Workflow::parse(&row.definition)?, row))
    }

    pub async fn workflows(&self) -> Result<Vec<kai_store::WorkflowRow>> {
        Ok(self.store.workflows().await?)
    }

    /// Starts a run of a saved workflow (no planner call).
    pub async fn run_workflow(
        &self,
        name: &str,
        params: &Map<String, Value>,
        owner: &str,
        source: &str,
        key: Option<String>,
    ) -> Result<kai_store::TaskRow> {
        let (wf, row) = self.workflow(name).await?;
        let bound = wf.bind(params)?;
        let goal = if wf.description.is_empty() {
            format!("workflow {name}")
        } else {
            format!("workflow {name}: {}", wf.description)
        };
        self.submit(Submit {
            goal,
            owner: owner.to_owned(),
            budget: wf.budget.unwrap_or_default(),
            graph: Some(wf.graph(&bound)),
            workflow: Some(format!("{name}@{}", row.version)),
            source: source.to_owned(),
            idempotency_key: key,
            ..Submit::default()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WF: &str = "name: digest\nparameters:\n  url: {type: string}\n  words: {type: integer, default: 100}\nsteps:\n  - id: fetch\n    tool: http_fetch\n    inputs: {url: \"{{params.url}}\"}\n  - id: sum\n    instruction: \"In {{params.words}} words: {{steps.fetch.output}}\"\n    depends_on: [fetch]\n";

    #[test]
    fn parameters_are_typed_defaulted_and_filled_in() {
        let wf = Workflow::parse(WF).unwrap();
        let mut given = Map::new();
        given.insert("url".into(), Value::from("https://example.com/a"));
        let bound = wf.bind(&given).unwrap();
        let g = wf.graph(&bound);
        assert_eq!(g.steps[0].inputs["url"], "https://example.com/a");
        assert_eq!(g.steps[1].instruction, "In 100 words: {{steps.fetch.output}}");
        given.insert("words".into(), Value::from("many"));
        assert!(wf.bind(&given).unwrap_err().to_string().contains("words must be a integer"));
        assert!(wf.bind(&Map::new()).unwrap_err().to_string().contains("url is required"));
        let mut extra = Map::new();
        extra.insert("nope".into(), Value::from(1));
        assert!(wf.bind(&extra).unwrap_err().to_string().contains("no parameter"));
        assert!(Workflow::parse("name: Bad Name\nsteps: []").is_err());
        assert!(
            Workflow::parse(&format!("{WF}schedule: \"not cron\"\n"))
                .unwrap_err()
                .to_string()
                .contains("schedule")
        );
    }
}
