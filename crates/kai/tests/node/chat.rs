//! Chat threads on a real node in front of the in-repo fake OpenAI server: create, stream a
//! reply over SSE and follow it over the WebSocket, regenerate and branch, switch branches,
//! search, rename, export, survive a restart, stay private to their owner, tool calls and
//! results as messages, and long threads summarized with the originals kept.

use futures::{SinkExt as _, StreamExt as _};
use kai_llm::ProviderKind;
use kai_llm::fake::{FakeServer, FakeToolCall, Reply};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::harness::{Node, NodeDir};

async fn chat_node(context_tokens: u32) -> (NodeDir, Node, FakeServer) {
    let upstream = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    let dir = NodeDir::new().await;
    dir.write_config(&format!(
        r#"
[[providers]]
name = "upstream"
kind = "openai"
base_url = "{}"
chat_model = "gpt-test"
max_retries = 0

[[personas]]
name = "assistant"
system_prompt = "You are kai."
providers = ["upstream"]
context_tokens = {context_tokens}

[[personas]]
name = "poet"
system_prompt = "Answer in verse."
providers = ["upstream"]
"#,
        upstream.base_url()
    ));
    let node = Node::start(&dir);
    (dir, node, upstream)
}

/// Sends a message with `Accept: text/event-stream`; returns the (event, data) pairs.
async fn send_sse(node: &Node, thread: &str, body: Value) -> Vec<(String, Value)> {
    let resp = node
        .http
        .post(node.url(&format!("/chat/threads/{thread}/messages")))
        .bearer_auth(&node.token)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    parse_sse(&resp.text().await.unwrap())
}

fn parse_sse(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut event = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e.to_owned();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !data.is_empty() {
            out.push((event, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

async fn send_json(node: &Node, thread: &str, body: Value) -> Value {
    let resp = node.post_json(&format!("/chat/threads/{thread}/messages"), body).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn new_thread(node: &Node, body: Value) -> String {
    let resp = node.post_json("/chat/threads", body).await;
    assert_eq!(resp.status(), 201);
    let t: Value = resp.json().await.unwrap();
    t["id"].as_str().unwrap().to_owned()
}

fn ids(messages: &Value) -> Vec<String> {
    messages.as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_stream_branch_search_export_and_survive_restart() {
    let (dir, node, upstream) = chat_node(8192).await;
    let thread = new_thread(&node, json!({"title": "Trip planning"})).await;

    // Follow the thread live over the WebSocket while the reply streams over SSE.
    let mut request = format!("ws://{}/ws", node.addr).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", node.token).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(WsMessage::text(
        json!({"op": "subscribe", "id": "t", "filter": {"threads": [thread]}}).to_string(),
    ))
    .await
    .unwrap();
    let ack: Value =
        serde_json::from_str(ws.next().await.unwrap().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(ack["op"], "subscribed");

    upstream.push_chat(Reply::chunks(["Lisbon ", "in ", "May."]));
    let events = send_sse(&node, &thread, json!({"content": "Where should I go?"})).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"message"));
    assert_eq!(kinds.last(), Some(&"done"));
    let streamed: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    let (_, user) = &events[0];
    let (_, reply) = events.last().unwrap();
    assert_eq!(streamed, "Lisbon in May.");
    assert_eq!(reply["content"], "Lisbon in May.");
    assert_eq!(
        (reply["role"].as_str(), reply["persona"].as_str()),
        (Some("assistant"), Some("assistant"))
    );
    assert_eq!(reply["parent_id"], user["id"]);
    assert!(reply["meta"]["usage"]["completion_tokens"].is_u64());
    let sent = upstream.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"][0]["content"], "You are kai.");
    assert_eq!(sent["messages"][1]["content"], "Where should I go?");

    // The WebSocket saw the stored messages of this thread (and only this thread's events).
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("thread events over the WebSocket");
        let frame: Value = serde_json::from_str(next.unwrap().unwrap().to_text().unwrap()).unwrap();
        let event = &frame["event"];
        assert_eq!(event["payload"]["thread_id"], thread.as_str());
        if event["type"] == "CHAT_MESSAGE" {
            seen.push(event["payload"]["message"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, [user["id"].as_str().unwrap(), reply["id"].as_str().unwrap()]);

    // Regenerate: a sibling reply becomes the head; both stay stored.
    upstream.push_chat(Reply::text("Porto in June."));
    let resp = node
        .http
        .post(node.url(&format!(
            "/chat/threads/{thread}/messages/{}/regenerate",
            reply["id"].as_str().unwrap()
        )))
        .bearer_auth(&node.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let regen: Value = resp.json().await.unwrap();
    assert_eq!(regen["reply"]["content"], "Porto in June.");
    assert_eq!(regen["reply"]["parent_id"], user["id"]);
    assert_eq!(regen["reply"]["meta"]["regenerates"], reply["id"]);
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    assert_eq!(
        ids(&view["messages"]),
        [user["id"].as_str().unwrap(), regen["reply"]["id"].as_str().unwrap()]
    );

    // Branch from the first reply, then switch the thread back to the regenerated branch.
    let branched = send_json(
        &node,
        &thread,
        json!({"content": "And after Lisbon?", "parent_id": reply["id"]}),
    )
    .await;
    assert_eq!(branched["message"]["parent_id"], reply["id"]);
    assert_eq!(branched["reply"]["content"], "echo: And after Lisbon?");
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 4);
    let all = node.get_json(&format!("/chat/threads/{thread}/messages")).await;
    assert_eq!(
        all["messages"].as_array().unwrap().len(),
        5,
        "question, two replies, a branch and its reply"
    );
    let resp = node
        .http
        .patch(node.url(&format!("/chat/threads/{thread}")))
        .bearer_auth(&node.token)
        .json(&json!({"head_id": regen["reply"]["id"], "title": "Spring trip", "persona": "poet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    assert_eq!(view["thread"]["title"], "Spring trip");
    assert_eq!(view["messages"].as_array().unwrap().len(), 2);

    // The persona is per thread: the next reply uses the poet's system prompt.
    send_json(&node, &thread, json!({"content": "A line about it"})).await;
    let sent = upstream.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"][0]["content"], "Answer in verse.");

    // Search by title and by message text; another thread does not match.
    new_thread(&node, json!({"title": "Groceries"})).await;
    let found = node.get_json("/chat/threads?q=porto").await;
    assert_eq!(found["threads"].as_array().unwrap().len(), 1);
    assert_eq!(found["threads"][0]["id"], thread.as_str());
    assert_eq!(node.get_json("/chat/threads").await["threads"].as_array().unwrap().len(), 2);

    // Export.
    let md = node.get(&format!("/chat/threads/{thread}/export?format=markdown")).await;
    assert!(md.headers()["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let md = md.text().await.unwrap();
    assert!(
        md.starts_with("# Spring trip") && md.contains("Porto in June.") && md.contains("## User"),
        "{md}"
    );
    let exported: Value =
        node.get(&format!("/chat/threads/{thread}/export?format=json")).await.json().await.unwrap();
    assert_eq!(exported["thread"]["id"], thread.as_str());

    // Another principal cannot see it, even by id, nor follow it.
    let other: Value = node
        .post_json("/tokens", json!({"name": "other", "role": "member"}))
        .await
        .json()
        .await
        .unwrap();
    let other = other["token"].as_str().unwrap();
    let get = |path: String| node.http.get(node.url(&path)).bearer_auth(other).send();
    assert_eq!(get(format!("/chat/threads/{thread}")).await.unwrap().status(), 404);
    let theirs: Value = get("/chat/threads".into()).await.unwrap().json().await.unwrap();
    assert!(theirs["threads"].as_array().unwrap().is_empty());
    let events: Value =
        get("/events?after=0&limit=1000".into()).await.unwrap().json().await.unwrap();
    assert!(!events.to_string().contains(&thread), "chat events reach their owner only");

    // A restart keeps everything.
    let before = node.get_json(&format!("/chat/threads/{thread}/messages")).await;
    node.stop();
    let node = Node::start(&dir);
    let after = node.get_json(&format!("/chat/threads/{thread}/messages")).await;
    assert_eq!(before, after);
    assert_eq!(after["messages"].as_array().unwrap().len(), 7);

    // Delete.
    let resp = node.delete(&format!("/chat/threads/{thread}")).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(node.get(&format!("/chat/threads/{thread}")).await.status(), 404);
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    for action in [
        "chat.thread.create",
        "chat.message",
        "chat.regenerate",
        "chat.thread.update",
        "chat.thread.delete",
    ] {
        assert!(audit.contains(action), "{action} audited");
    }
    assert!(!audit.contains("Where should I go?"), "message text stays out of the audit log");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_problem_json() {
    let (_dir, node, upstream) = chat_node(8192).await;
    let resp = node.post_json("/chat/threads", json!({"persona": "nobody"})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = node.post_json("/chat/threads", json!({"title": "x\u{7}y"})).await;
    assert_eq!(resp.status(), 400);
    let resp = node.post_json("/chat/threads", json!({"colour": "red"})).await;
    assert!(resp.status().is_client_error());
    let thread = new_thread(&node, json!({})).await;
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    assert_eq!(
        (view["thread"]["title"].as_str(), view["thread"]["persona"].as_str()),
        (Some("New chat"), Some("assistant"))
    );

    for body in [
        json!({"content": "   "}),
        json!({"content": "x".repeat(300 * 1024)}),
        json!({"content": "hi", "parent_id": "msg_nope"}),
        json!({"content": "hi", "temperature": 9}),
        json!({"content": "result", "tool_call_id": "call_never_made"}),
    ] {
        let resp = node.post_json(&format!("/chat/threads/{thread}/messages"), body).await;
        assert!(resp.status() == 400 || resp.status() == 413, "{}", resp.status());
    }
    assert_eq!(node.get(&format!("/chat/threads/{thread}/export?format=pdf")).await.status(), 400);
    assert_eq!(node.get("/chat/threads?limit=0").await.status(), 400);
    assert_eq!(
        node.post_json("/chat/threads/thr_missing/messages", json!({"content": "x"}))
            .await
            .status(),
        404
    );
    assert_eq!(upstream.requests().len(), 0, "no model call for refused input");

    // A provider failure: the question is kept, the error is a problem, and regenerating the
    // unanswered question answers it.
    upstream.fail_times(kai_llm::fake::Endpoint::Chat, 1, &kai_llm::fake::FakeError::server(500));
    let resp = node
        .post_json(&format!("/chat/threads/{thread}/messages"), json!({"content": "still there?"}))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    let question = view["messages"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(view["messages"].as_array().unwrap().len(), 1);
    let resp = node
        .post_json(&format!("/chat/threads/{thread}/messages/{question}/regenerate"), json!({}))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["reply"]["content"], "echo: still there?");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_and_results_are_messages_of_the_thread() {
    let (_dir, node, upstream) = chat_node(8192).await;
    let thread = new_thread(&node, json!({})).await;
    upstream.push_chat(Reply::ToolCalls(vec![FakeToolCall::new(
        "call_1",
        "get_weather",
        &json!({"city": "Lisbon"}),
    )]));
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let events =
        send_sse(&node, &thread, json!({"content": "Weather in Lisbon?", "tools": tools})).await;
    let (_, reply) = events.last().unwrap();
    assert_eq!(reply["tool_calls"][0]["name"], "get_weather");
    assert_eq!(reply["tool_calls"][0]["arguments"]["city"], "Lisbon");
    assert_eq!(reply["meta"]["finish_reason"], "tool_calls");
    assert_eq!(
        upstream.requests().last().unwrap().body["tools"][0]["function"]["name"],
        "get_weather"
    );

    upstream.push_chat(Reply::text("It is 21 °C in Lisbon."));
    let answered =
        send_json(&node, &thread, json!({"tool_call_id": "call_1", "content": "{\"temp_c\": 21}"}))
            .await;
    assert_eq!(answered["message"]["role"], "tool");
    assert_eq!(answered["reply"]["content"], "It is 21 °C in Lisbon.");
    let sent = upstream.requests().last().unwrap().body.clone();
    let roles: Vec<&str> =
        sent["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
    assert_eq!(sent["messages"][2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(sent["messages"][3]["tool_call_id"], "call_1");

    let md = node.get(&format!("/chat/threads/{thread}/export")).await.text().await.unwrap();
    assert!(md.contains("Tool calls:") && md.contains("Tool result (call_1)"), "{md}");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_threads_are_summarized_and_the_originals_kept() {
    // A 256-token window: old turns are summarized once the history passes 192 tokens.
    let (_dir, node, upstream) = chat_node(256).await;
    let thread = new_thread(&node, json!({})).await;
    let long =
        |n: u32| format!("Turn {n}: {}", "the cat sat on the mat and looked around. ".repeat(7));
    for n in 1..=3 {
        let body = send_json(&node, &thread, json!({"content": long(n)})).await;
        assert!(body.get("summary").is_none(), "turn {n} fits");
    }
    upstream.push_chat(Reply::text("SUMMARY: the user described a cat on a mat, twice."));
    let events = send_sse(&node, &thread, json!({"content": long(4)})).await;
    let (_, summary) = events.iter().find(|(e, _)| e == "summary").expect("a summary event");
    assert_eq!(summary["content"], "SUMMARY: the user described a cat on a mat, twice.");
    assert_eq!(summary["covered"].as_array().unwrap().len(), 2, "the first exchange");

    // The reply's request: system prompt, the summary, then only the recent turns.
    let sent = upstream.requests().last().unwrap().body.clone();
    let contents: Vec<&str> = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents[0], "You are kai.");
    assert!(contents[1].contains("SUMMARY: the user described a cat"));
    assert!(!contents.iter().any(|c| c.starts_with("Turn 1:")), "summarized turns are not resent");
    assert!(contents.last().unwrap().starts_with("Turn 4:"));

    // The thread still holds every original message, and shows the summary.
    let view = node.get_json(&format!("/chat/threads/{thread}")).await;
    assert_eq!(view["messages"].as_array().unwrap().len(), 8);
    assert!(view["messages"][0]["content"].as_str().unwrap().starts_with("Turn 1:"));
    assert_eq!(view["summaries"].as_array().unwrap().len(), 1);
    let md = node.get(&format!("/chat/threads/{thread}/export")).await.text().await.unwrap();
    assert!(md.contains("Summary of the conversation so far"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kai_chat_streams_one_message_and_runs_a_piped_session() {
    let (dir, node, upstream) = chat_node(8192).await;
    upstream.push_chat(Reply::chunks(["Hello ", "from ", "kai."]));
    let out = dir.run(&["chat", "--title", "CLI", "hi there"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello from kai.");

    // A session from a pipe: commands and messages, one per line.
    let mut child = dir
        .kai()
        .args(["chat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = "/new Poems\n/persona poet\nwrite one line\n/title Short poems\n/threads\n/persona\n/bogus\n/regen\n/export md\n/quit\nnever sent\n";
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("echo: write one line"), "{stdout}");
    assert!(
        stdout.contains("Short poems") && stdout.contains("CLI"),
        "both threads listed: {stdout}"
    );
    assert!(stdout.contains("* poet"), "the thread's persona is marked: {stdout}");
    assert!(stderr.contains("unknown command /bogus"), "{stderr}");
    assert!(stdout.contains("# Short poems") && stdout.contains("## Assistant (poet)"), "{stdout}");
    assert!(!stdout.contains("never sent"));
    let sent = upstream.requests();
    assert_eq!(sent.len(), 3, "one-shot, the message, the regeneration");
    assert_eq!(sent[1].body["messages"][0]["content"], "Answer in verse.");
    let threads = node.get_json("/chat/threads").await;
    assert_eq!(threads["threads"].as_array().unwrap().len(), 2);

    // Errors are clear and the exit code says so.
    let out = dir.run(&["chat", "--thread", "thr_missing", "hello"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    node.stop();
}
