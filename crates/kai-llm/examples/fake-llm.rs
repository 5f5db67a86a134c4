//! `fake-llm [--kind openai|ollama|anthropic|gemini] [--chunk-delay-ms N] [--latency-ms N]`: runs
//! one of the fake provider servers (the real wire format: JSON, SSE or NDJSON streaming) on
//! 127.0.0.1 with an OS-assigned port, for tests outside this crate (the dashboard's browser
//! tests), benchmarks (`bench/orchestration`) and manual trials. It prints
//! `{"listening": ADDR, "base_url": URL}` on its first stdout line.
//!
//! Chat calls answer `echo: <last user message>` unless a reply is scripted: each stdin line is
//! one JSON command, acknowledged with `{"ok": true}` (or `{"ok": false, "error": …}`):
//!   {"text": "…"}                                   next chat reply, streamed word by word
//!   {"chunks": ["…", "…"]}                          next chat reply, streamed as these pieces
//!   {"tool_calls": [{"id", "name", "arguments"}]}   next chat reply is these tool calls
//!   {"error": "server"|"overloaded"|"rate_limited", "message": "…"}   next chat call fails
//!   {"chunk_delay_ms": N}                           pause between streamed frames
//!   {"tasks": {"plan": {"steps": […]}}}            from now on answer as the task agents: the
//!                                                   planner with this plan, the reviewer with an
//!                                                   accept, a step with "done: <instruction>"
//!                                                   (a step "ask: <question>" first calls
//!                                                   ask_user, then answers "answered: <reply>")
//!   {"latency_ms": N}                               wait before every response's headers
//!                                                   (fixed-latency mode, as `--latency-ms`)
//! It exits when stdin closes, so it never outlives the process that started it.

// Benchmarks share the machine's cores with this server: glibc's malloc was a fifth of its CPU.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use kai_llm::ProviderKind;
use kai_llm::fake::{Endpoint, FakeError, FakeErrorKind, FakeServer, FakeToolCall, Reply};
use serde_json::{Value, json};

/// Answers by the system prompts, as `kai/tests/node/tasks.rs` does: the planner gets `plan`, the
/// reviewer an accept, an executor's step `done: <its instruction>`; anything else falls through
/// to the scripted queue's default (echo).
fn task_agents(plan: Value) -> kai_llm::fake::Responder {
    Arc::new(move |endpoint, body| {
        if endpoint != Endpoint::Chat {
            return None;
        }
        // Every system message: a persona's prompt may come before the agent's.
        let messages = body["messages"].as_array()?;
        let system: String = messages
            .iter()
            .filter(|m| m["role"] == "system")
            .filter_map(|m| m["content"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        if system.contains("You plan; you do not execute") {
            return Some(Reply::text(plan.to_string()));
        }
        if system.contains("\"verdict\"") {
            return Some(Reply::text(r#"{"verdict": "accept"}"#));
        }
        let step = messages
            .iter()
            .filter(|m| m["role"] == "user")
            .find_map(|m| m["content"].as_str()?.split("Your step: ").nth(1)?.lines().next())?;
        // A step "ask: <question>" asks the owner first, then answers with what they said.
        if let Some(question) = step.strip_prefix("ask: ") {
            if !messages.iter().any(|m| m["role"] == "assistant") {
                let args = json!({"question": question});
                return Some(Reply::ToolCalls(vec![FakeToolCall::new("ask_1", "ask_user", &args)]));
            }
            let answer = messages.last()?["content"].as_str().unwrap_or_default();
            return Some(Reply::text(format!("answered: {answer}")));
        }
        Some(Reply::text(format!("done: {step}")))
    })
}

fn command(server: &FakeServer, line: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(text) = v.get("text").and_then(Value::as_str) {
        server.push_chat(Reply::text(text));
    } else if let Some(chunks) = v.get("chunks").and_then(Value::as_array) {
        server.push_chat(Reply::chunks(chunks.iter().filter_map(Value::as_str)));
    } else if let Some(calls) = v.get("tool_calls").and_then(Value::as_array) {
        let calls = calls
            .iter()
            .map(|c| {
                let field = |k: &str| {
                    c.get(k).and_then(Value::as_str).ok_or_else(|| format!("a tool call needs {k}"))
                };
                Ok(FakeToolCall::new(
                    field("id")?,
                    field("name")?,
                    c.get("arguments").unwrap_or(&json!({})),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        server.push_chat(Reply::ToolCalls(calls));
    } else if let Some(kind) = v.get("error").and_then(Value::as_str) {
        let kind = match kind {
            "server" => FakeErrorKind::Server,
            "overloaded" => FakeErrorKind::Overloaded,
            "rate_limited" => FakeErrorKind::RateLimited,
            other => return Err(format!("unknown error kind {other:?}")),
        };
        let message = v.get("message").and_then(Value::as_str).unwrap_or("scripted failure");
        server.push_chat(Reply::Error(FakeError::new(kind, message)));
    } else if let Some(plan) = v.get("tasks").and_then(|t| t.get("plan")) {
        server.set_responder(task_agents(plan.clone()));
    } else if let Some(ms) = v.get("chunk_delay_ms").and_then(Value::as_u64) {
        server.set_chunk_delay(Duration::from_millis(ms));
    } else if let Some(ms) = v.get("latency_ms").and_then(Value::as_u64) {
        server.set_latency(Duration::from_millis(ms));
    } else {
        return Err("unknown command; see the doc comment of examples/fake-llm.rs".into());
    }
    Ok(())
}

fn say(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kind = ProviderKind::OpenAi;
    let mut delay = 0;
    let mut latency = 0;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), it.next()) {
            ("--kind", Some(k)) => {
                kind = match k.as_str() {
                    "openai" => ProviderKind::OpenAi,
                    "ollama" => ProviderKind::Ollama,
                    "anthropic" => ProviderKind::Anthropic,
                    "gemini" => ProviderKind::Gemini,
                    other => return Err(format!("unknown --kind {other}")),
                }
            }
            ("--chunk-delay-ms", Some(ms)) => {
                delay = ms.parse().map_err(|e| format!("--chunk-delay-ms: {e}"))?
            }
            ("--latency-ms", Some(ms)) => {
                latency = ms.parse().map_err(|e| format!("--latency-ms: {e}"))?
            }
            _ => {
                return Err(
                    "usage: fake-llm [--kind openai|ollama|anthropic|gemini] [--chunk-delay-ms N] [--latency-ms N]"
                        .into(),
                );
            }
        }
    }
    let server =
        Arc::new(FakeServer::start(kind).await.map_err(|e| format!("cannot listen: {e}"))?);
    server.set_chunk_delay(Duration::from_millis(delay));
    server.set_latency(Duration::from_millis(latency));
    say(&json!({"listening": server.addr().to_string(), "base_url": server.base_url()}));
    // Commands arrive on a plain thread (stdin is blocking); the server keeps serving meanwhile.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let commands = server.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line.trim().is_empty() {
                continue;
            }
            match command(&commands, &line) {
                Ok(()) => say(&json!({"ok": true})),
                Err(e) => say(&json!({"ok": false, "error": e})),
            }
        }
        let _ = closed_tx.send(());
    });
    let _ = closed_rx.await;
    Ok(())
}
