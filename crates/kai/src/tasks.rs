//! `kai task …` and `kai agent …`: submit goals and follow them live (a tree of steps with
//! progress bars), list, show, cancel, retry, approve or reject plans, answer questions; list,
//! show, register and move agents through their lifecycle — all through the running node's
//! API, so ownership, RBAC and audit apply as to any client.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::Ctx;
use crate::cli::{AgentCommand, TaskCommand};
use crate::client::NodeClient;
use crate::output::outln;
use crate::secure::client;

const FINAL: [&str; 5] = ["succeeded", "failed", "cancelled", "budget_exceeded", "rejected"];

/// Model and tool output may carry terminal escapes; they are shown escaped, never obeyed.
pub(crate) fn safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn one_line(text: &str, max: usize) -> String {
    let flat = safe(&text.split_whitespace().collect::<Vec<_>>().join(" "));
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

fn enc(s: &str) -> String {
    kai_blob::s3::sigv4::uri_encode(s, false)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

pub async fn run(ctx: &Ctx, cmd: TaskCommand) -> anyhow::Result<i32> {
    let c = client(ctx)?;
    match cmd {
        TaskCommand::Submit {
            goal,
            follow,
            ask,
            no_review,
            max_steps,
            max_tokens,
            max_cost_usd,
            max_wall_secs,
            graph,
            idempotency_key,
        } => {
            let goal = goal.join(" ");
            let mut budget = serde_json::Map::new();
            for (k, v) in [
                ("max_steps", max_steps.map(Value::from)),
                ("max_tokens", max_tokens.map(Value::from)),
                ("max_cost_usd", max_cost_usd.map(Value::from)),
                ("max_wall_secs", max_wall_secs.map(Value::from)),
            ] {
                if let Some(v) = v {
                    budget.insert(k.into(), v);
                }
            }
            let graph: Option<Value> = match graph {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(serde_yaml_ng::from_str(&text).with_context(|| {
                        format!("{} is not a task graph (YAML or JSON)", path.display())
                    })?)
                }
                None => None,
            };
            let body = json!({
                "goal": goal, "approval": if ask { "ask" } else { "auto" }, "review": !no_review,
                "budget": if budget.is_empty() { Value::Null } else { Value::Object(budget) },
                "graph": graph, "idempotency_key": idempotency_key,
            });
            let task: Value = c.post("/agent/task", &body).await?;
            let id = s(&task, "id").to_owned();
            if !follow {
                if ctx.json {
                    outln!("{}", serde_json::to_string_pretty(&task)?);
                } else {
                    outln!("{id}  {}", s(&task, "status"));
                    eprintln!("follow it with: kai task show {id} --follow");
                }
                return Ok(0);
            }
            follow_task(ctx, &c, &id).await
        }
        TaskCommand::List { status, limit } => {
            let mut path = format!("/tasks?limit={limit}");
            if let Some(st) = status {
                path.push_str(&format!("&status={}", enc(&st)));
            }
            let tasks: Vec<Value> = c.get(&path).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&tasks)?);
            } else if tasks.is_empty() {
                eprintln!("no tasks");
            } else {
                for t in &tasks {
                    outln!(
                        "{}  {:<17} {}  {}",
                        s(t, "id"),
                        s(t, "status"),
                        &s(t, "created_at").get(..19).unwrap_or_default(),
                        one_line(s(t, "goal"), 60)
                    );
                }
            }
            Ok(0)
        }
        TaskCommand::Show { id, follow } => {
            if follow {
                return follow_task(ctx, &c, &id).await;
            }
            let v: Value = c.get(&format!("/tasks/{}", enc(&id))).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_detail(&v);
            }
            Ok(0)
        }
        TaskCommand::Cancel { id } => {
            let t: Value = c.post(&format!("/tasks/{}/cancel", enc(&id)), &json!({})).await?;
            outln!("{}  {}", s(&t, "id"), s(&t, "status"));
            Ok(0)
        }
        TaskCommand::Retry { id, follow } => {
            let t: Value = c.post(&format!("/tasks/{}/retry", enc(&id)), &json!({})).await?;
            if follow {
                return follow_task(ctx, &c, &id).await;
            }
            outln!("{}  {}", s(&t, "id"), s(&t, "status"));
            Ok(0)
        }
        TaskCommand::Approve { id, version } => {
            let version = match version {
                Some(v) => v,
                None => proposed_version(&c, &id).await?,
            };
            let v: Value = c
                .post(&format!("/tasks/{}/plan/approve", enc(&id)), &json!({"version": version}))
                .await?;
            outln!("approved plan v{version}; task {}", s(&v["task"], "status"));
            Ok(0)
        }
        TaskCommand::Reject { id, version, reason } => {
            let version = match version {
                Some(v) => v,
                None => proposed_version(&c, &id).await?,
            };
            let v: Value = c
                .post(
                    &format!("/tasks/{}/plan/reject", enc(&id)),
                    &json!({"version": version, "reason": reason.join(" ")}),
                )
                .await?;
            outln!("rejected plan v{version}; task {}", s(&v["task"], "status"));
            Ok(0)
        }
        TaskCommand::Answer { question, answer } => {
            c.post_empty(
                &format!("/questions/{}/answer", enc(&question)),
                &json!({"answer": answer.join(" ")}),
            )
            .await?;
            outln!("answered {question}");
            Ok(0)
        }
        TaskCommand::Plan { goal } => {
            let v: Value = c.post("/planner/plan", &json!({"goal": goal.join(" ")})).await?;
            if ctx.json || v["ok"] != true {
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(if v["ok"] == true { 0 } else { 1 });
            }
            for step in v["graph"]["steps"].as_array().into_iter().flatten() {
                let deps: Vec<&str> = step["depends_on"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let what = step["tool"]
                    .as_str()
                    .map(|t| format!("tool {t}"))
                    .unwrap_or_else(|| one_line(s(step, "instruction"), 70));
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    format!("  (after {})", deps.join(", "))
                };
                outln!("{:<12} {}{after}", s(step, "id"), what);
            }
            Ok(0)
        }
    }
}

async fn proposed_version(c: &NodeClient, id: &str) -> anyhow::Result<i64> {
    let v: Value = c.get(&format!("/tasks/{}", enc(id))).await?;
    v["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .find(|p| p["status"] == "proposed")
        .and_then(|p| p["version"].as_i64())
        .with_context(|| format!("task {id} has no plan awaiting approval"))
}

fn print_detail(v: &Value) {
    let t = &v["task"];
    outln!("{}  {}", s(t, "id"), s(t, "status"));
    outln!("goal: {}", safe(s(t, "goal")));
    let u = &t["usage"];
    outln!(
        "used: {} steps, {} tool calls, {} tokens, ${:.4}",
        u["steps"],
        u["tool_calls"],
        u["tokens"],
        u["cost_usd"].as_f64().unwrap_or(0.0)
    );
    if let Some(p) = v["plans"].as_array().and_then(|p| p.last()) {
        outln!("plan v{} ({})", p["version"], s(p, "status"));
    }
    for st in v["steps"].as_array().into_iter().flatten() {
        outln!(
            "  {:<12} {:<10} {:<22} {}",
            s(st, "step_id"),
            s(st, "status"),
            s(st, "agent"),
            one_line(st["output"].as_str().or(st["error"].as_str()).unwrap_or_default(), 60)
        );
    }
    for q in v["questions"].as_array().into_iter().flatten().filter(|q| q["answer"].is_null()) {
        outln!(
            "question {} (step {}): {}\n  answer with: kai task answer {} \"…\"",
            s(q, "id"),
            s(q, "step_id"),
            safe(s(q, "question")),
            s(q, "id")
        );
    }
    if let Some(r) = t["result"].as_str() {
        outln!("\nresult:\n{}", safe(r));
    }
    if let Some(e) = t["error"].as_str() {
        outln!("\nerror: {}", safe(e));
    }
}

fn glyph(status: &str) -> &'static str {
    match status {
        "succeeded" => "✔",
        "failed" => "✘",
        "running" => "▶",
        "queued" => "…",
        "cancelled" => "⊘",
        _ => "·",
    }
}

/// Follows a task until it ends: an overall bar and one line per step, redrawn as the node
/// reports progress (the task is polled; the display is hidden when not on a terminal, and
/// the final state is printed either way). Exit code 0 when it succeeded.
async fn follow_task(ctx: &Ctx, c: &NodeClient, id: &str) -> anyhow::Result<i32> {
    let target = if std::io::stderr().is_terminal() && !ctx.json {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let multi = MultiProgress::with_draw_target(target);
    let overall = multi.add(ProgressBar::new(0));
    overall.set_style(
        ProgressStyle::with_template("{spinner} {msg:<24} [{bar:30}] {pos}/{len} steps  {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    overall.enable_steady_tick(Duration::from_millis(120));
    let mut lines: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut asked: Vec<String> = Vec::new();
    let line_style =
        ProgressStyle::with_template("  {msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut failures = 0u32;
    let detail = loop {
        let v: Value = match c.get(&format!("/tasks/{}", enc(id))).await {
            Ok(v) => {
                failures = 0;
                v
            }
            Err(e) if failures < 20 => {
                failures += 1;
                overall.set_message(format!("node unreachable ({e:#}); retrying"));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let task = &v["task"];
        let steps = v["steps"].as_array().cloned().unwrap_or_default();
        overall.set_length(steps.len() as u64);
        overall.set_position(steps.iter().filter(|st| st["status"] == "succeeded").count() as u64);
        overall.set_message(s(task, "status").to_owned());
        for st in &steps {
            let sid = s(st, "step_id").to_owned();
            let line = lines.entry(sid.clone()).or_insert_with(|| {
                let b = multi.add(ProgressBar::new(1));
                b.set_style(line_style.clone());
                b
            });
            let extra = st["error"]
                .as_str()
                .or(st["output"].as_str())
                .map(|o| one_line(o, 50))
                .unwrap_or_default();
            line.set_message(format!(
                "{} {:<12} {:<10} {:<20} {}",
                glyph(s(st, "status")),
                sid,
                s(st, "status"),
                s(st, "agent"),
                extra
            ));
        }
        for q in v["questions"].as_array().into_iter().flatten().filter(|q| q["answer"].is_null()) {
            let qid = s(q, "id").to_owned();
            if !asked.contains(&qid) {
                multi.suspend(|| {
                    eprintln!(
                        "? {} asks: {}\n  answer with: kai task answer {qid} \"…\"",
                        s(q, "step_id"),
                        safe(s(q, "question"))
                    )
                });
                asked.push(qid);
            }
        }
        if s(task, "status") == "awaiting_approval" && !asked.contains(&"plan".to_owned()) {
            multi.suspend(|| eprintln!("the plan awaits your approval: kai task show {id}; kai task approve {id} (or reject)"));
            asked.push("plan".into());
        }
        if FINAL.contains(&s(task, "status")) {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for b in lines.values() {
        b.finish();
    }
    overall.finish();
    multi.clear().ok();
    if ctx.json {
        outln!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print_detail(&detail);
    }
    Ok(if detail["task"]["status"] == "succeeded" { 0 } else { 1 })
}

pub async fn agent(ctx: &Ctx, cmd: AgentCommand) -> anyhow::Result<i32> {
    let c = client(ctx)?;
    match cmd {
        AgentCommand::List => {
            let v: Value = c.get("/agent/status").await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(0);
            }
            for a in v["agents"].as_array().into_iter().flatten() {
                outln!(
                    "{:<24} {:<12} running {:<3} queued {:<3} {}",
                    s(a, "id"),
                    s(a, "state"),
                    a["running_steps"],
                    a["queued_steps"],
                    if a["builtin"] == true { "built-in" } else { "" }
                );
            }
            Ok(0)
        }
        AgentCommand::Show { id } => {
            let v: Value = c.get(&format!("/agents/{}", enc(&id))).await?;
            outln!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        AgentCommand::Create { file } => {
            let (text, format) = definition_file(&file)?;
            let v: Value =
                c.post("/agents", &json!({"definition": text, "format": format})).await?;
            outln!("{}  {}", s(&v, "id"), s(&v, "state"));
            Ok(0)
        }
        AgentCommand::Lifecycle { id, action, file, reason } => {
            let definition = match file {
                Some(f) => {
                    let (text, format) = definition_file(&f)?;
                    json!({"definition": text, "format": format})
                }
                None if action == "modify" => bail!("modify needs the new definition: --file FILE"),
                None => Value::Null,
            };
            let v: Value = c
                .post(&format!("/agents/{}/lifecycle", enc(&id)), &json!({"action": action, "definition": definition, "reason": reason.join(" ")}))
                .await?;
            outln!("{}  {}", s(&v, "id"), s(&v, "state"));
            Ok(0)
        }
    }
}

fn definition_file(path: &std::path::Path) -> anyhow::Result<(String, &'static str)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => "toml",
        Some("json") => "json",
        Some("yaml" | "yml") | None => "yaml",
        Some(other) => {
            bail!("{}: unknown extension .{other}; use .yaml, .toml or .json", path.display())
        }
    };
    Ok((text, format))
}
