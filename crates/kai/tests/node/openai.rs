//! The OpenAI-compatible surface on a real node, in front of the in-repo fake OpenAI server:
//! personas as models, a chat completion (the persona's system prompt first, the provider key
//! injected from the vault), the same as an SSE stream, embeddings, and the errors around them
//! (a failed audit fails the call: nothing of a non-streamed reply is sent, and a streamed one
//! never finishes).

use kai_llm::ProviderKind;
use kai_llm::fake::{FakeServer, FakeToolCall, Reply};
use serde_json::{Value, json};

use super::harness::{Node, NodeDir, exec_sql};

async fn node_with_persona() -> (NodeDir, Node, FakeServer) {
    node_with("").await
}

async fn node_with(extra: &str) -> (NodeDir, Node, FakeServer) {
    let upstream = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    upstream.require_key(Some("sk-upstream-test"));
    let dir = NodeDir::new().await;
    dir.write_config(&format!(
        r#"
[[providers]]
name = "upstream"
kind = "openai"
base_url = "{}"
key_secret = "upstream/api-key"
chat_model = "gpt-test"
embedding_model = "embed-test"
max_retries = 0

[[personas]]
name = "assistant"
description = "Answers briefly"
system_prompt = "You are kai. Be brief."
providers = ["upstream"]
{extra}
"#,
        upstream.base_url()
    ));
    let node = Node::start(&dir);
    (dir, node, upstream)
}

/// Stores the upstream provider's key in the node's vault (the persona's calls need it).
async fn store_upstream_key(node: &Node) {
    let put = node
        .http
        .put(node.url("/vault/secrets/upstream%2Fapi-key"))
        .bearer_auth(&node.token)
        .json(&json!({"value": "sk-upstream-test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_models_and_embeddings() {
    let (_dir, node, upstream) = node_with_persona().await;
    let models = node.get_json("/v1/models").await;
    assert_eq!(models["data"][0]["id"], "assistant");

    // Before the key is in the vault: a clear 503 naming the secret to store.
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("kai vault set upstream/api-key"), "{body}");

    store_upstream_key(&node).await;
    let resp = node
        .post_json("/v1/chat/completions", json!({"model": "assistant", "messages": [{"role": "user", "content": "hello"}], "user": "ignored-extra-field"}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "assistant");
    assert!(!body["choices"][0]["message"]["content"].as_str().unwrap().is_empty(), "{body}");
    assert!(body["usage"]["total_tokens"].is_u64());
    let sent = upstream.requests();
    let last = sent.last().unwrap();
    assert_eq!(
        last.headers["authorization"], "Bearer sk-upstream-test",
        "key injected from the vault"
    );
    assert_eq!(last.body["messages"][0]["role"], "system");
    assert_eq!(last.body["messages"][0]["content"], "You are kai. Be brief.");
    assert_eq!(last.body["model"], "gpt-test");

    // Streaming: SSE chunks in OpenAI's shape, ending with [DONE].
    let resp = node
        .post_json("/v1/chat/completions", json!({"model": "assistant", "stream": true, "messages": [{"role": "user", "content": "hello"}]}))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(*data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> =
        data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String =
        chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(
        content,
        body["choices"][0]["message"]["content"].as_str().unwrap(),
        "streamed text equals the complete answer"
    );
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "stop");

    let emb =
        node.post_json("/v1/embeddings", json!({"model": "assistant", "input": ["a", "b"]})).await;
    assert_eq!(emb.status(), 200);
    let emb: Value = emb.json().await.unwrap();
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);
    assert!(emb["data"][0]["embedding"].as_array().unwrap().len() > 1);

    // Errors: unknown persona, bad role, empty messages; all audited calls are in the log.
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "nobody", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 404);
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let resp =
        node.post_json("/v1/chat/completions", json!({"model": "assistant", "messages": []})).await;
    assert_eq!(resp.status(), 400);
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    assert!(audit.contains("llm.chat") && audit.contains("llm.embed"));
    node.stop();
}

/// The `llm.chat` entry is written while the upstream call opens; if it cannot be made
/// durable the request fails: a non-streamed one with 503 `audit_unavailable` and no part of the
/// reply, a streamed one never finishes (503 if the entry failed before the upstream opened, else
/// the stream ends with the audit error instead of a finish and `[DONE]`); once the audit works
/// again, calls succeed without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_audit_fails_the_call_and_no_reply_finishes() {
    let (dir, node, _upstream) = node_with_persona().await;
    store_upstream_key(&node).await;
    let (break_audit, mend_audit): (&[&str], &[&str]) = if dir.pg_schema.is_some() {
        (
            &[
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit disk gone'; END $$",
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries FOR EACH ROW EXECUTE FUNCTION audit_down()",
            ],
            &["DROP TRIGGER audit_down ON audit_entries", "DROP FUNCTION audit_down()"],
        )
    } else {
        (
            &[
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'audit disk gone'); END",
            ],
            &["DROP TRIGGER audit_down"],
        )
    };
    exec_sql(&dir, break_audit).await;
    // The fake answers "echo: <message>": none of that may arrive without a stream.
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "user", "content": "canary-reply"}]}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let text = resp.text().await.unwrap();
    assert!(!text.contains("canary-reply") && !text.contains("echo"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "audit_unavailable", "{body}");
    // Streamed: whichever finishes first — the failed entry (503, nothing sent) or the upstream
    // opening (tokens flow) — the reply never finishes: no finish_reason, no [DONE], and the
    // stream's last event is the audit error.
    let mut seen = [0, 0];
    for _ in 0..5 {
        let resp = node
            .post_json(
                "/v1/chat/completions",
                json!({"model": "assistant", "stream": true, "messages": [{"role": "user", "content": "canary-reply"}]}),
            )
            .await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if status == 503 {
            seen[0] += 1;
            assert!(!text.contains("echo"), "{text}");
            let body: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(body["code"], "audit_unavailable", "{body}");
            continue;
        }
        seen[1] += 1;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains("[DONE]") && !text.contains("\"finish_reason\":\"stop\""), "{text}");
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        assert_eq!(
            last, "event: error\ndata: {\"error\":{\"code\":\"audit_unavailable\"}}",
            "{text}"
        );
    }
    eprintln!(
        "streamed with a failed audit: {} refused before, {} stopped at the end",
        seen[0], seen[1]
    );
    exec_sql(&dir, mend_audit).await;
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "user", "content": "again"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: again", "{body}");
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    assert!(audit.contains("llm.chat"), "the successful call is audited");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_may_list_models_but_not_spend_tokens() {
    let (_dir, node, _upstream) = node_with_persona().await;
    let resp = node.post_json("/tokens", json!({"name": "v", "role": "viewer"})).await;
    let viewer = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let models = node.http.get(node.url("/v1/models")).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(models.status(), 200);
    let chat = node
        .http
        .post(node.url("/v1/chat/completions"))
        .bearer_auth(&viewer)
        .json(&json!({"model": "assistant", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 403);
    node.stop();
}

/// The official `openai` Python package against the node. `scripts/test.sh` installs it and
/// sets `KAI_TEST_REQUIRE_OPENAI=1`, so CI fails rather than skips when it is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client() {
    let has_openai = std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_openai {
        assert!(
            std::env::var("KAI_TEST_REQUIRE_OPENAI").is_err(),
            "the openai package is missing: pip install openai"
        );
        eprintln!("python3 `openai` not installed: run scripts/test.sh, which installs it");
        return;
    }
    let (_dir, node, upstream) = node_with_persona().await;
    store_upstream_key(&node).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(node.url("/v1"))
        .arg(&node.token)
        .arg("assistant")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Tool calling the way OpenAI's client does it: a call, a streamed call, then the result.
    let call = || {
        Reply::ToolCalls(vec![FakeToolCall::new(
            "call_w1",
            "get_weather",
            &json!({"city": "Lisbon"}),
        )])
    };
    upstream.push_chat(call());
    upstream.push_chat(call());
    upstream.push_chat(Reply::text("Sunny, 21 °C."));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_tools.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(node.url("/v1"))
        .arg(&node.token)
        .arg("assistant")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = upstream.requests().last().unwrap().body.clone();
    assert_eq!(last["tools"][0]["function"]["name"], "get_weather", "{last}");
    let sent = last["messages"].as_array().unwrap();
    let assistant = sent.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(assistant["tool_calls"][0]["id"], "call_w1", "{last}");
    let tool = sent.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_w1");
    assert!(tool["content"].as_str().unwrap().contains("sunny"));
    node.stop();
}

/// Malformed tool definitions, tool messages and stop lists are refused before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tool_requests_are_refused_with_problems() {
    let (_dir, node, upstream) = node_with_persona().await;
    let user = json!({"role": "user", "content": "x"});
    for (body, needle) in [
        (
            json!({"model": "assistant", "messages": [user], "tools": [{"type": "function", "function": {"name": "bad name!"}}]}),
            "tool name",
        ),
        (
            json!({"model": "assistant", "messages": [user], "tools": [{"type": "retrieval", "function": {"name": "f"}}]}),
            "function",
        ),
        (
            json!({"model": "assistant", "messages": [user], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "assistant", "messages": [user, {"role": "tool", "content": "r"}]}),
            "tool_call_id",
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
            "not JSON",
        ),
        (
            json!({"model": "assistant", "messages": [user], "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        ),
        (
            json!({"model": "assistant", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
            "text content",
        ),
    ] {
        let resp = node.post_json("/v1/chat/completions", body).await;
        assert_eq!(resp.status(), 400);
        let problem: Value = resp.json().await.unwrap();
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{needle}: {problem}");
    }
    assert!(upstream.requests().is_empty(), "nothing reached the provider");
}

/// A spent budget stops calls before they reach the provider, with a clear error; nothing calls
/// the provider while the node is idle; usage is reported per principal and persona.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_stop_calls_and_usage_is_reported() {
    let (_dir, node, upstream) = node_with("[spend]\ntokens_per_day = 1\n").await;
    assert!(upstream.requests().is_empty(), "an idle node calls no model");
    store_upstream_key(&node).await;
    let ask = || {
        node.post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "user", "content": "hello there"}]}),
        )
    };
    assert_eq!(ask().await.status(), 200, "under budget");
    let calls = upstream.requests().len();
    let resp = ask().await;
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "budget_exhausted");
    assert!(body["detail"].as_str().unwrap().contains("[[budgets]]"), "{body}");
    assert_eq!(upstream.requests().len(), calls, "no call was made over budget");
    let usage = node.get_json("/telemetry/usage?hours=1").await;
    let row = &usage["totals"][0];
    assert_eq!(row["persona"], "assistant");
    assert_eq!(row["calls"], 1);
    assert!(
        row["prompt_tokens"].as_i64().unwrap() + row["completion_tokens"].as_i64().unwrap() >= 1,
        "{usage}"
    );
    node.stop();
}

/// Cost budgets: provider prices turn tokens into dollars per call; once a principal's rolling
/// 24-hour dollars are spent, chat threads and `/v1` calls stop before reaching the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_budgets_stop_calls_and_costs_are_reported() {
    let upstream = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    let dir = NodeDir::new().await;
    dir.write_config(&format!(
        r#"
[spend]
cost_per_day = 0.5

[[providers]]
name = "priced"
kind = "openai"
base_url = "{}"
chat_model = "gpt-test"
max_retries = 0
prompt_price = 1000000.0
completion_price = 1000000.0

[[personas]]
name = "assistant"
providers = ["priced"]
"#,
        upstream.base_url()
    ));
    let node = Node::start(&dir);
    // Idle: no task, no chat, no call, however long the node runs.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(upstream.requests().is_empty(), "an idle node calls no model");

    let thread: Value = node.post_json("/chat/threads", json!({})).await.json().await.unwrap();
    let path = format!("/chat/threads/{}/messages", thread["id"].as_str().unwrap());
    let first = node.post_json(&path, json!({"content": "hello"})).await;
    assert_eq!(first.status(), 200);
    let usage = node.get_json("/telemetry/usage?hours=1").await;
    let row = &usage["totals"][0];
    let expected = row["prompt_tokens"].as_f64().unwrap() * 1.0
        + row["completion_tokens"].as_f64().unwrap() * 1.0;
    assert!(expected >= 1.0, "{usage}");
    assert!((row["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-6, "{usage}");

    let calls = upstream.requests().len();
    let resp = node.post_json(&path, json!({"content": "again"})).await;
    assert_eq!(resp.status(), 429);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "budget_exhausted");
    assert!(body["detail"].as_str().unwrap().contains("cost budget"), "{body}");
    let resp = node
        .post_json(
            "/v1/chat/completions",
            json!({"model": "assistant", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(upstream.requests().len(), calls, "no call over budget");

    // The CLI shows the cost too.
    let out = dir.run(&["usage", "--hours", "1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cost $") && text.contains(&format!("{expected:.4}")), "{text}");
    node.stop();
}

#[test]
fn budgets_and_prices_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[spend]\ncost_per_day = -1.0\n[[budgets]]\nname = \"user:x\"\n[[providers]]\nname = \"p\"\nkind = \"openai\"\nprompt_price = -3.0\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kai"))
        .args(["config", "check", file.to_str().unwrap()])
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in
        ["spend.cost_per_day", "sets neither tokens_per_day nor cost_per_day", "prompt_price"]
    {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
