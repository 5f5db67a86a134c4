//! Agents and tasks on a real node in front of the in-repo fake OpenAI server: goals submitted
//! over HTTP are planned, run and completed; the registry and agent lifecycle over HTTP; plan
//! approval; workflows and signed webhooks; `kai task` and `kai agent` on the command line;
//! and `kill -9` during 500 concurrent tasks loses none and repeats no side effect.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kai_llm::ProviderKind;
use kai_llm::fake::{Endpoint, FakeServer, Reply};
use serde_json::{Value, json};

use super::harness::{Node, NodeDir, eventually};

/// Plans `plan`, accepts reviews, answers a step with "done: <instruction>".
fn responder(plan: Value) -> kai_llm::fake::Responder {
    Arc::new(move |endpoint, body| {
        if endpoint != Endpoint::Chat {
            return None;
        }
        let system = body["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
        if system.contains("You plan; you do not execute") {
            return Some(Reply::text(plan.to_string()));
        }
        if system.contains("\"verdict\"") {
            return Some(Reply::text(r#"{"verdict": "accept"}"#));
        }
        let user = body["messages"].as_array()?.last()?["content"].as_str()?.to_owned();
        let step = user.split("Your step: ").nth(1)?.lines().next()?.to_owned();
        Some(Reply::text(format!("done: {step}")))
    })
}

async fn task_node(extra: &str) -> (NodeDir, Node, FakeServer) {
    let upstream = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    let plan = json!({"steps": [
        {"id": "gather", "instruction": "gather the facts"},
        {"id": "write", "instruction": "write the summary", "depends_on": ["gather"]},
    ]});
    upstream.set_responder(responder(plan));
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
providers = ["upstream"]
{extra}
"#,
        upstream.base_url()
    ));
    let node = Node::start(&dir);
    (dir, node, upstream)
}

async fn wait_status(node: &Node, id: &str, want: &[&str]) -> Value {
    eventually(Duration::from_secs(60), &format!("task {id} to reach {want:?}"), || async {
        let v = node.get_json(&format!("/tasks/{id}")).await;
        want.contains(&v["task"]["status"].as_str().unwrap_or_default()).then_some(v)
    })
    .await
}

async fn problem(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    resp.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goals_run_over_http_and_the_cli_with_registry_lifecycle_and_approval() {
    let (dir, node, upstream) = task_node("").await;
    // The registry lists the eight built-in agents with their DIDs.
    let agents = eventually(Duration::from_secs(20), "agents registered", || async {
        let v = node.get_json("/agents").await;
        (v["agents"].as_array().is_some_and(|a| a.len() == 8)).then_some(v)
    })
    .await;
    for a in agents["agents"].as_array().unwrap() {
        assert!(a["did"].as_str().unwrap().starts_with("did:key:"), "{a}");
        assert_eq!(a["state"], "active");
    }

    // Submit: 202 with the stored task; it is planned, run and completed.
    let resp = node.post_json("/agent/task", json!({"goal": "summarize the news"})).await;
    assert_eq!(resp.status(), 202);
    let task: Value = resp.json().await.unwrap();
    let id = task["id"].as_str().unwrap().to_owned();
    let done = wait_status(&node, &id, &["succeeded", "failed"]).await;
    assert_eq!(done["task"]["status"], "succeeded", "{done}");
    assert_eq!(done["task"]["result"], "done: write the summary");
    assert_eq!(done["steps"].as_array().unwrap().len(), 2);
    assert_eq!(done["plans"][0]["status"], "approved");
    let listed: Value = node.get_json("/tasks?status=succeeded").await;
    assert!(listed.as_array().unwrap().iter().any(|t| t["id"] == id.as_str()));

    // Dry run, bad input and unknown ids.
    let plan: Value =
        node.post_json("/planner/plan", json!({"goal": "anything"})).await.json().await.unwrap();
    assert_eq!(plan["ok"], true, "{plan}");
    assert_eq!(plan["graph"]["steps"][1]["depends_on"][0], "gather");
    let p = problem(node.post_json("/agent/task", json!({"goal": ""})).await, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("goal"), "{p}");
    problem(
        node.post_json("/agent/task", json!({"goal": "x", "budget": {"max_steps": 0}})).await,
        400,
    )
    .await;
    problem(node.post_json("/agent/task", json!({"goal": "x", "surprise": 1})).await, 400).await;
    problem(node.get("/tasks/task_nope").await, 404).await;

    // Approval: nothing runs until the owner approves.
    let resp = node
        .post_json(
            "/agent/task",
            json!({"goal": "careful now", "approval": "ask", "review": false}),
        )
        .await;
    let t: Value = resp.json().await.unwrap();
    let tid = t["task"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| t["id"].as_str().unwrap().to_owned());
    let waiting = wait_status(&node, &tid, &["awaiting_approval"]).await;
    let calls = upstream.requests().len();
    assert_eq!(waiting["plans"][0]["status"], "proposed");
    let resp = node.post_json(&format!("/tasks/{tid}/plan/approve"), json!({"version": 1})).await;
    assert_eq!(resp.status(), 200);
    let done = wait_status(&node, &tid, &["succeeded"]).await;
    assert_eq!(done["task"]["usage"]["steps"], 2);
    assert_eq!(upstream.requests().len(), calls + 2, "two steps, no reviews");
    problem(node.post_json(&format!("/tasks/{tid}/cancel"), json!({})).await, 409).await;

    // An owner-defined agent: register from YAML, walk the lifecycle, illegal moves are 409.
    let yaml = "name: kExecutor:researcher\nversion: 1.0.0\ntype: specialist\ndescription: Looks things up\ninstructions: Find facts.\npermissions:\n  tools: [http_fetch]\n";
    let resp = node.post_json("/agents", json!({"definition": yaml, "format": "yaml"})).await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["state"], "created");
    let p = problem(
        node.post_json("/agents/kExecutor:researcher/lifecycle", json!({"action": "suspend"}))
            .await,
        409,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("created"), "{p}");
    for (action, state) in [
        ("initialize", "initialized"),
        ("activate", "active"),
        ("suspend", "suspended"),
        ("resume", "active"),
    ] {
        let v: Value = node
            .post_json("/agents/kExecutor:researcher/lifecycle", json!({"action": action}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["state"], state, "{action}: {v}");
    }
    let bad = node
        .post_json("/agents", json!({"definition": "name: nope\nversion: 1\n", "format": "yaml"}))
        .await;
    let p = problem(bad, 422).await;
    assert!(p["detail"].as_str().unwrap().contains("name"), "{p}");
    problem(
        node.post_json("/agents/kPlanner:planner/lifecycle", json!({"action": "terminate"})).await,
        409,
    )
    .await;
    let status: Value = node.get_json("/agent/status").await;
    assert!(
        status["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "kExecutor:researcher" && a["state"] == "active")
    );

    // A saved workflow and a signed webhook.
    let wf = "name: hello\nparameters:\n  who: {type: string}\nsteps:\n  - id: greet\n    instruction: \"greet {{params.who}}\"\n";
    assert_eq!(node.post_json("/workflows", json!({"definition": wf})).await.status(), 201);
    let resp = node.post_json("/workflows/hello/run", json!({"params": {"who": "Ana"}})).await;
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    let done = wait_status(&node, run["id"].as_str().unwrap(), &["succeeded"]).await;
    assert_eq!(done["task"]["result"], "done: greet Ana");
    let hook: Value = node
        .post_json("/webhooks", json!({"name": "ci", "target": {"workflow": "hello"}}))
        .await
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let body = r#"{"params": {"who": "Bo"}}"#;
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = {
        use hmac::Mac as _;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(format!("{ts}.{body}").as_bytes());
        format!("sha256={}", hex::encode(m.finalize().into_bytes()))
    };
    let deliver = |sig: String| {
        node.http
            .post(node.url("/webhooks/ci"))
            .header("x-kai-timestamp", &ts)
            .header("x-kai-signature", sig)
            .body(body)
            .send()
    };
    let resp = deliver("sha256=00".into()).await.unwrap();
    problem(resp, 404).await;
    let resp = deliver(sig.clone()).await.unwrap();
    assert_eq!(resp.status(), 202, "no bearer token needed: the signature is the credential");
    let t: Value = resp.json().await.unwrap();
    wait_status(&node, t["id"].as_str().unwrap(), &["succeeded"]).await;
    problem(deliver(sig).await.unwrap(), 409).await;
    let hooks: Value = node.get_json("/webhooks").await;
    assert!(!hooks.to_string().contains(&secret), "secrets are never listed");
    let resp = node.delete("/webhooks/ci").await;
    assert_eq!(resp.status(), 204);
    let secrets: Value = node.get_json("/vault/secrets").await;
    assert!(!secrets.to_string().contains("webhook-ci"), "its secret went with it: {secrets}");

    // The CLI: submit and follow (exit 0 on success), list, show, agent list.
    let d = dir.data();
    let out = tokio::task::spawn_blocking({
        let d = d.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_kai"))
                .args([
                    "--data-dir",
                    d.to_str().unwrap(),
                    "task",
                    "submit",
                    "--follow",
                    "--no-review",
                    "write",
                    "a",
                    "haiku",
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("succeeded") && stdout.contains("done: write the summary"), "{stdout}");
    let out = dir.run(&["task", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("write a haiku"));
    let out = dir.run(&["agent", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("kSentinel:sentinel") && text.contains("kExecutor:researcher"), "{text}");
    node.stop();
}

/// Stands in for an external API with Stripe-style idempotency: a repeated `Idempotency-Key`
/// is answered from its first result, so the effect happens once per key. It also counts raw
/// requests, to show how many were repeats.
async fn effect_sink() -> (String, Arc<Mutex<(BTreeMap<String, String>, usize)>>) {
    let state = Arc::new(Mutex::new((BTreeMap::<String, String>::new(), 0usize)));
    let s = state.clone();
    let app = axum::Router::new().route(
        "/effect",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                let mut g = s.lock().unwrap();
                g.1 += 1;
                g.0.entry(key).or_insert(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/effect"), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_500_concurrent_tasks_loses_none_and_repeats_no_side_effect() {
    const TASKS: usize = 500;
    let (sink, effects) = effect_sink().await;
    let (dir, node, upstream) =
        // 500 submissions from 16 clients as fast as the node answers: past the default
        // per-principal rate limit (50/s, burst 200), which is not what this test is about.
        task_node("[limits]\nrequests_per_second = 0\n[tasks]\nworkers = 16\nfetch_allow_cidrs = [\"127.0.0.1/32\"]\n").await;
    upstream.set_latency(Duration::from_millis(20));
    eventually(Duration::from_secs(20), "agents registered", || async {
        node.get_json("/agents").await["agents"]
            .as_array()
            .is_some_and(|a| a.len() == 8)
            .then_some(())
    })
    .await;
    let graph = move |i: usize| {
        json!({"steps": [
            {"id": "draft", "instruction": format!("draft item {i}")},
            {"id": "send", "tool": "http_fetch", "depends_on": ["draft"],
             "inputs": {"url": sink, "method": "POST", "body": "{{steps.draft.output}}"}},
        ]})
    };
    let acked = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let base = node.url("");
    let token = node.token.clone();
    let mut clients = Vec::new();
    for c in 0..16 {
        let (acked, kill_rx, base, token, graph) =
            (acked.clone(), kill_rx.clone(), base.clone(), token.clone(), graph.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
            for i in (c..TASKS).step_by(16) {
                let body = json!({"goal": format!("item {i}"), "review": false, "graph": graph(i), "idempotency_key": format!("item-{i}")});
                match http.post(format!("{base}/agent/task")).bearer_auth(&token).json(&body).send().await {
                    Ok(r) if r.status() == 202 => match r.json::<Value>().await {
                        Ok(v) => {
                            acked.lock().unwrap().insert(v["id"].as_str().unwrap().to_owned(), i);
                        }
                        Err(_) if *kill_rx.borrow() => return,
                        Err(e) => panic!("submit {i}: unreadable answer: {e}"),
                    },
                    _ if *kill_rx.borrow() => return,
                    Ok(r) => panic!("submit {i}: {}", r.status()),
                    Err(e) => panic!("submit {i} failed before the kill: {e}"),
                }
            }
        }));
    }
    // Kill once about half are acknowledged and some have run.
    eventually(Duration::from_secs(120), "half the tasks acknowledged", || async {
        (acked.lock().unwrap().len() >= TASKS / 2).then_some(())
    })
    .await;
    kill_tx.send(true).unwrap();
    node.kill9();
    for c in clients {
        c.await.unwrap();
    }
    let before_restart = effects.lock().unwrap().0.len();
    let acked: BTreeMap<String, usize> = acked.lock().unwrap().clone();
    assert!(acked.len() >= TASKS / 2);

    // After a restart every acknowledged task completes.
    let node = Node::start(&dir);
    let ids: Vec<String> = acked.keys().cloned().collect();
    eventually(Duration::from_secs(300), "every acknowledged task to finish", || async {
        let v: Value = node.get_json("/tasks?limit=500&status=succeeded").await;
        let done: BTreeSet<&str> =
            v.as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
        ids.iter().all(|id| done.contains(id.as_str())).then_some(())
    })
    .await;
    let (performed, raw) = {
        let g = effects.lock().unwrap();
        (g.0.clone(), g.1)
    };
    // Each task's side effect happened exactly once, under its own key, with its own output.
    let mut bodies = BTreeSet::new();
    for (key, body) in &performed {
        assert!(key.starts_with("effect:task_"), "every effect carries its idempotency key: {key}");
        bodies.insert(body.clone());
    }
    for (id, i) in &acked {
        assert!(
            performed.keys().any(|k| k.contains(id.as_str())),
            "task {id} (item {i}) performed its effect"
        );
        assert!(bodies.contains(&format!("done: draft item {i}")), "item {i}'s output was sent");
    }
    assert!(performed.len() >= acked.len());
    // Raw repeats happen only for effects in flight at the kill (at most the worker count),
    // and the key made the target ignore them.
    assert!(
        raw - performed.len() <= 16,
        "raw {raw}, performed {}, before restart {before_restart}",
        performed.len()
    );
    node.stop();
}
