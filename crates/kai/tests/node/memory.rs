//! Memory on a real node (SQLite, or PostgreSQL with `KAI_TEST_DATABASE=postgres`) with the
//! in-repo fake OpenAI server as the embedding provider: the HTTP API and its errors, audit,
//! namespace isolation across agents, TTL expiry and sweep, private memories with no plaintext
//! on disk, recall@10 of the ANN index against exact search (and again after kill -9 with the
//! index file deleted), chat recall and episodic memories, the graph, the CLI, and Qdrant.

use std::time::Duration;

use kai_llm::ProviderKind;
use kai_llm::fake::{FakeServer, Reply};
use kai_memory::qdrant::fake::FakeQdrant;
use serde_json::{Value, json};

use super::harness::{Node, NodeDir, eventually, postgres_url};

const DIMS: usize = 32;

async fn memory_node(extra: &str) -> (NodeDir, Node, FakeServer) {
    let upstream = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    upstream.set_embedding_dims(DIMS);
    let dir = NodeDir::new().await;
    dir.write_config(&format!(
        r#"
[limits]
requests_per_second = 0

[[providers]]
name = "upstream"
kind = "openai"
base_url = "{}"
chat_model = "gpt-test"
embedding_model = "embed-test"
max_retries = 0

[[personas]]
name = "assistant"
system_prompt = "You are kai."
providers = ["upstream"]

[memory]
embedding_provider = "upstream"
{extra}
"#,
        upstream.base_url()
    ));
    let node = Node::start(&dir);
    (dir, node, upstream)
}

async fn send(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = node.http.request(method, node.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    if status != 204 {
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if status >= 400 {
            assert!(ct.starts_with("application/problem+json"), "{status}: {ct}");
        }
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn add(node: &Node, token: &str, memories: Value) -> Vec<Value> {
    let (status, body) = send(
        node,
        reqwest::Method::POST,
        "/memories",
        token,
        Some(json!({"memories": memories, "wait": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["memories"].as_array().unwrap().clone()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}

async fn search(node: &Node, token: &str, query: &str) -> Value {
    let (status, body) =
        send(node, reqwest::Method::GET, &format!("/memory/search?{query}"), token, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn result_ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["memory"]["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn agent_token(node: &Node, agent: &str) -> String {
    let resp = node
        .post_json(
            "/tokens",
            json!({"name": format!("t-{agent}"), "role": "agent", "agent": agent}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_api_search_filters_errors_and_audit() {
    let (_dir, node, _up) = memory_node("").await;
    let t = node.token.clone();
    let added = add(&node, &t, json!([
        {"text": "the spare key is under the blue flower pot", "tier": "long_term", "metadata": {"room": "garden"}},
        {"text": "meeting notes: ship the memory feature", "tier": "working", "namespace": "thread:t-42"},
        {"text": "buy oat milk", "tier": "short_term", "ttl_secs": 3600},
    ]))
    .await;
    assert_eq!(added.len(), 3);
    assert!(added.iter().all(|m| m["embedded"] == true));
    assert_eq!(added[0]["namespace"].as_str().unwrap(), format!("user:{}", owner_id(&node).await));
    assert_eq!(added[1]["namespace"], "thread:t-42");
    assert!(added[2]["expires_at"].is_string());

    let r = search(&node, &t, &format!("q={}&k=5", enc("spare key flower"))).await;
    assert_eq!(r["vector_search"], true);
    assert_eq!(result_ids(&r)[0], added[0]["id"].as_str().unwrap());
    let top = &r["results"][0];
    assert!(top["text"]["rank"] == 1 && top["score"].as_f64().unwrap() > 0.0, "{top}");
    // The exact text's vector is nearest (the fake hashes whole texts).
    let r = search(&node, &t, &format!("q={}", enc("buy oat milk"))).await;
    assert_eq!(r["results"][0]["vector"]["rank"], 1);
    // Filters.
    let r = search(&node, &t, &format!("q={}&tier=working", enc("notes key milk"))).await;
    assert_eq!(result_ids(&r), [added[1]["id"].as_str().unwrap()]);
    let r =
        search(&node, &t, &format!("q={}&namespace=thread:t-42,user", enc("notes key milk"))).await;
    assert_eq!(result_ids(&r).len(), 3);
    let r = search(
        &node,
        &t,
        &format!("q={}&metadata={}", enc("key notes milk"), enc(r#"{"room":"garden"}"#)),
    )
    .await;
    assert_eq!(result_ids(&r), [added[0]["id"].as_str().unwrap()]);
    let r = search(&node, &t, &format!("q=milk&after={}", enc("2999-01-01T00:00:00Z"))).await;
    assert!(result_ids(&r).is_empty());

    let id = added[0]["id"].as_str().unwrap();
    let (status, got) =
        send(&node, reqwest::Method::GET, &format!("/memories/{id}"), &t, None).await;
    assert_eq!(
        (status, got["text"].as_str()),
        (200, Some("the spare key is under the blue flower pot"))
    );
    let (status, patched) = send(
        &node,
        reqwest::Method::PATCH,
        &format!("/memories/{id}"),
        &t,
        Some(json!({"text": "the spare key is with the neighbour", "wait": true})),
    )
    .await;
    assert_eq!((status, patched["embedded"].as_bool()), (200, Some(true)), "{patched}");
    let (status, _) =
        send(&node, reqwest::Method::DELETE, &format!("/memories/{id}"), &t, None).await;
    assert_eq!(status, 204);
    let (status, body) =
        send(&node, reqwest::Method::GET, &format!("/memories/{id}"), &t, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Errors are problems with stable codes.
    for (method, path, body, code) in [
        (
            reqwest::Method::POST,
            "/memories",
            json!({"memories": [{"text": "x", "tier": "forever"}]}),
            400,
        ),
        (reqwest::Method::POST, "/memories", json!({"memories": []}), 400),
        (
            reqwest::Method::POST,
            "/memories",
            json!({"memories": [{"text": "x", "namespace": "user:someone-else"}]}),
            400,
        ),
        (
            reqwest::Method::POST,
            "/memories",
            json!({"memories": [{"text": "x".repeat(40_000)}]}),
            400,
        ),
        (reqwest::Method::POST, "/memories/embeddings", json!({}), 400),
        (reqwest::Method::POST, "/memories/embeddings", json!({"vector": [1.0, 2.0]}), 400),
    ] {
        let (status, problem) = send(&node, method, path, &t, Some(body)).await;
        assert_eq!(status, code, "{path}: {problem}");
        assert_eq!(problem["code"], "bad_request", "{problem}");
    }
    let (status, _) = send(&node, reqwest::Method::GET, "/memory/search?q=x&k=500", &t, None).await;
    assert_eq!(status, 400);

    // Embeddings: texts in, vectors out; a vector in, nearest memories out.
    let (status, e) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &t,
        Some(json!({"texts": ["buy oat milk"]})),
    )
    .await;
    assert_eq!(status, 200, "{e}");
    let v = e["embeddings"][0].clone();
    assert_eq!(v.as_array().unwrap().len(), DIMS);
    let (status, r) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &t,
        Some(json!({"vector": v, "k": 1})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(result_ids(&r), [added[2]["id"].as_str().unwrap()]);

    // Writes are audited, without the memory text.
    let entries = node.get_json("/audit/entries?limit=1000").await;
    let entries = entries["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries.iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["memory.add", "memory.update", "memory.forget"] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    let text = serde_json::to_string(entries).unwrap();
    assert!(
        !text.contains("flower pot") && !text.contains("oat milk"),
        "memory text in the audit log"
    );
    node.stop();
}

async fn owner_id(node: &Node) -> String {
    node.get_json("/auth/me").await["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_never_see_each_others_memory() {
    let (_dir, node, _up) = memory_node("").await;
    let a = agent_token(&node, "kBridge:alpha").await;
    let b = agent_token(&node, "kBridge:beta").await;
    let mine = add(
        &node,
        &a,
        json!([
            {"text": "alpha private plan: rendezvous at pier 9", "private": true},
            {"text": "alpha note: the pier is closed on mondays"},
        ]),
    )
    .await;
    assert!(mine.iter().all(|m| m["namespace"] == "agent:kBridge:alpha"));
    add(&node, &b, json!([{"text": "beta note about the pier"}])).await;
    let r =
        search(&node, &b, &format!("q={}&k=10", enc("alpha private plan rendezvous pier"))).await;
    assert_eq!(r["results"].as_array().unwrap().len(), 1);
    assert!(r.to_string().contains("beta note") && !r.to_string().contains("alpha"));
    for m in &mine {
        let id = m["id"].as_str().unwrap();
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (status, body) = send(&node, method, &format!("/memories/{id}"), &b, None).await;
            assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        }
    }
    // By vector: the exact vector of alpha's private text finds nothing of alpha's for beta.
    let (_, e) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &b,
        Some(json!({"texts": ["alpha private plan: rendezvous at pier 9"]})),
    )
    .await;
    let (_, r) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &b,
        Some(json!({"vector": e["embeddings"][0], "k": 10})),
    )
    .await;
    assert!(!r.to_string().contains("alpha"), "{r}");
    let (_, r) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &a,
        Some(json!({"vector": e["embeddings"][0], "k": 1})),
    )
    .await;
    assert_eq!(result_ids(&r), [mine[0]["id"].as_str().unwrap()]);
    // Naming the other's namespace is refused; so is exporting anything but one's own.
    let (status, _) = send(
        &node,
        reqwest::Method::GET,
        "/memory/search?q=pier&namespace=agent:kBridge:alpha",
        &b,
        None,
    )
    .await;
    assert_eq!(status, 400);
    let export = node
        .http
        .get(node.url("/memories/export"))
        .bearer_auth(&b)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(export.lines().count(), 1);
    assert!(!export.contains("alpha"));
    // The owner (another principal) sees neither agent's memories.
    let r = search(&node, &node.token, "q=pier").await;
    assert!(result_ids(&r).is_empty());
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_memories_vanish_at_once_and_are_swept() {
    let (dir, node, _up) = memory_node("sweep_interval_secs = 1").await;
    let t = node.token.clone();
    let m = add(&node, &t, json!([{"text": "a fleeting thought about tea", "ttl_secs": 1}, {"text": "a lasting thought about tea"}])).await;
    let id = m[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(result_ids(&search(&node, &t, "q=tea").await).len(), 2);
    eventually(Duration::from_secs(15), "the TTL to hide the memory", || async {
        (result_ids(&search(&node, &t, "q=tea").await).len() == 1).then_some(())
    })
    .await;
    let (status, _) = send(&node, reqwest::Method::GET, &format!("/memories/{id}"), &t, None).await;
    assert_eq!(status, 404);
    let store = open_store(&dir).await;
    eventually(Duration::from_secs(15), "the sweeper to delete the row", || async {
        store.memory(&id).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(store.memory(m[1]["id"].as_str().unwrap()).await.unwrap().is_some());
    store.close().await;
    node.stop();
}

async fn open_store(dir: &NodeDir) -> std::sync::Arc<dyn kai_store::Store> {
    match (&dir.pg_schema, postgres_url()) {
        (Some(schema), Some(url)) => {
            kai_store::open_postgres_schema(&url, schema, 1).await.unwrap()
        }
        _ => kai_store::open(&format!("sqlite://{}", dir.data().join("kai.db").display()), 1)
            .await
            .unwrap(),
    }
}

fn scan(path: &std::path::Path, needles: &[Vec<u8>], hits: &mut Vec<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            scan(&entry.unwrap().path(), needles, hits);
        }
    } else if let Ok(bytes) = std::fs::read(path) {
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_slice()) {
                hits.push(path.display().to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_memories_leave_no_plaintext_on_disk() {
    use base64::Engine as _;
    let (dir, node, _up) = memory_node("").await;
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let meta_canary = format!("METACANARY{}", uuid::Uuid::new_v4().simple());
    let t = node.token.clone();
    let m = add(&node, &t, json!([{"text": format!("my diary: {canary} was here"), "private": true, "metadata": {"tag": meta_canary}}])).await;
    let id = m[0]["id"].as_str().unwrap();
    // Searchable by full text and by vector; readable by its owner.
    let r = search(&node, &t, &format!("q={canary}")).await;
    assert_eq!(result_ids(&r), [id]);
    assert!(r["results"][0]["text"].is_object() && r["results"][0]["vector"].is_object(), "{r}");
    let (_, got) = send(&node, reqwest::Method::GET, &format!("/memories/{id}"), &t, None).await;
    assert_eq!(got["metadata"]["tag"], meta_canary.as_str());
    assert_eq!(got["private"], true);
    // Also through a restart (decrypted at load, never written in the clear).
    let node = restart(node, &dir);
    let r = search(&node, &t, &format!("q={canary}")).await;
    assert_eq!(result_ids(&r), [id]);
    node.stop();
    let needles: Vec<Vec<u8>> = [&canary, &meta_canary]
        .iter()
        .flat_map(|c| {
            [
                c.as_bytes().to_vec(),
                base64::engine::general_purpose::STANDARD.encode(c.as_bytes()).into_bytes(),
            ]
        })
        .collect();
    let mut hits = Vec::new();
    scan(dir.tmp.path(), &needles, &mut hits);
    assert!(hits.is_empty(), "canary found in {hits:?}");
    if let (Some(schema), Some(url)) = (&dir.pg_schema, postgres_url()) {
        let dump = std::process::Command::new("pg_dump")
            .arg("--schema")
            .arg(schema)
            .arg(url)
            .output()
            .unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        let text = String::from_utf8_lossy(&dump.stdout);
        assert!(text.contains("memories"), "the dump has the memories table");
        assert!(
            !text.contains(&canary) && !text.contains(&meta_canary),
            "canary in the PostgreSQL dump"
        );
    }
}

fn restart(node: Node, dir: &NodeDir) -> Node {
    node.stop();
    Node::start(dir)
}

/// Recall@10 of the node's ANN search (int8 HNSW with exact re-ranking) against exact search on
/// generated clustered vectors, over the HTTP API; then again after kill -9 with the index file
/// deleted (rebuilt from storage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ann_recall_at_10_against_exact_search_and_after_rebuild() {
    let (dir, node, _up) = memory_node("").await;
    let t = node.token.clone();
    let n = 4000;
    let data = kai_memory::synthetic::Clustered::new(DIMS, 40, 0.35, 11).sample(n, 5);
    let rows: Vec<&[f32]> = data.chunks_exact(DIMS).collect();
    let mut ids = Vec::with_capacity(n);
    for (b, chunk) in rows.chunks(250).enumerate() {
        let batch: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"text": format!("point {}", b * 250 + i), "embedding": v}))
            .collect();
        for m in add(&node, &t, Value::Array(batch)).await {
            ids.push(m["id"].as_str().unwrap().to_owned());
        }
    }
    let queries = kai_memory::synthetic::Clustered::new(DIMS, 40, 0.35, 11).sample(50, 99);
    let measure = |node: &Node| {
        let (queries, data, ids, t) = (queries.clone(), data.clone(), ids.clone(), t.clone());
        let http = node.http.clone();
        let url = node.url("/memories/embeddings");
        async move {
            let mut found = 0;
            for q in queries.chunks_exact(DIMS) {
                let truth: Vec<&str> = kai_memory::exact::top_k(&data, DIMS, q, 10, |_| true)
                    .into_iter()
                    .map(|(row, _)| ids[row].as_str())
                    .collect();
                let r: Value = http
                    .post(&url)
                    .bearer_auth(&t)
                    .json(&json!({"vector": q, "k": 10}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let got = result_ids(&r);
                assert_eq!(got.len(), 10, "{r}");
                found += got.iter().filter(|g| truth.contains(&g.as_str())).count();
            }
            found as f64 / (50.0 * 10.0)
        }
    };
    let recall = measure(&node).await;
    assert!(recall >= 0.95, "recall@10 {recall}");
    // kill -9, delete the index file: the node rebuilds it from storage.
    node.kill9();
    let index = dir.data().join("memory").join("vectors.hnsw");
    let _ = std::fs::remove_file(&index);
    let node = Node::start(&dir);
    let again = measure(&node).await;
    assert!(again >= 0.95, "recall@10 after rebuild {again}");
    node.stop();
    assert!(index.exists(), "saved at shutdown");
    // A corrupt file is detected and rebuilt too.
    let mut bytes = std::fs::read(&index).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&index, bytes).unwrap();
    let node = Node::start(&dir);
    let third = measure(&node).await;
    assert!(third >= 0.95, "recall@10 after a corrupt file {third}");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_recalls_memories_and_keeps_episodes() {
    let (_dir, node, upstream) = memory_node("").await;
    let t = node.token.clone();
    let fact =
        add(&node, &t, json!([{"text": "my cat is called Mochi and she likes sardines"}])).await;
    let thread: Value =
        node.post_json("/chat/threads", json!({"title": "pets"})).await.json().await.unwrap();
    let tid = thread["id"].as_str().unwrap();
    upstream.push_chat(Reply::text("Your cat is Mochi."));
    let resp: Value = node
        .post_json(
            &format!("/chat/threads/{tid}/messages"),
            json!({"content": "what is my cat called?"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let recalled =
        resp["reply"]["meta"]["recalled"].as_array().unwrap_or_else(|| panic!("{resp}")).clone();
    assert!(recalled.iter().any(|r| r["id"] == fact[0]["id"]), "{recalled:?}");
    let sent = upstream.requests().into_iter().rev().find(|r| r.path.contains("chat")).unwrap();
    assert!(
        sent.body.to_string().contains("Mochi and she likes sardines"),
        "recalled into the prompt"
    );
    // The turn is stored as an episodic memory of the thread.
    let q = format!("q={}&tier=episodic&namespace=thread:{tid}", enc("cat Mochi"));
    let episode = eventually(Duration::from_secs(15), "the episode", || async {
        let r = search(&node, &t, &q).await;
        r["results"].as_array().unwrap().first().cloned()
    })
    .await;
    let text = episode["memory"]["text"].as_str().unwrap();
    assert!(
        text.contains("what is my cat called?") && text.contains("Your cat is Mochi."),
        "{text}"
    );
    assert_eq!(episode["memory"]["metadata"]["kind"], "chat_turn");
    // The next turn does not recall the episode that is already in its context.
    upstream.push_chat(Reply::text("Sardines."));
    let resp: Value = node
        .post_json(
            &format!("/chat/threads/{tid}/messages"),
            json!({"content": "and what does my cat like?"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let recalled = resp["reply"]["meta"]["recalled"].as_array().unwrap().clone();
    assert!(recalled.iter().all(|r| r["id"] != episode["memory"]["id"]), "{recalled:?}");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_api_traversal_merge_and_llm_extraction() {
    let (_dir, node, upstream) = memory_node("extraction_persona = \"assistant\"").await;
    let t = node.token.clone();
    upstream.push_chat(Reply::text(r#"{"entities":[{"name":"Linus","kind":"person"},{"name":"Linux","kind":"project"}],"relations":[{"source":"Linus","target":"Linux","type":"created"}]}"#));
    let m = add(&node, &t, json!([{"text": "Linus created Linux in 1991"}])).await;
    let g = eventually(Duration::from_secs(15), "extraction", || async {
        let (_, g) =
            send(&node, reqwest::Method::GET, "/memory/graph?entity=Linus&depth=1", &t, None).await;
        (g["entities"].as_array().is_some_and(|e| e.len() == 2)).then_some(g)
    })
    .await;
    assert_eq!(g["relations"][0]["type"], "created");
    assert_eq!(g["relations"][0]["memory_id"], m[0]["id"]);
    // Entities and relations through the API; a second spelling merged into the first.
    let (status, finland) = send(
        &node,
        reqwest::Method::POST,
        "/memory/entities",
        &t,
        Some(json!({"name": "Finland", "kind": "place"})),
    )
    .await;
    assert_eq!(status, 201, "{finland}");
    let (status, _) = send(&node, reqwest::Method::POST, "/memory/relations", &t, Some(json!({"source": {"name": "Linus", "kind": "person"}, "target": {"id": finland["id"]}, "type": "born_in"}))).await;
    assert_eq!(status, 201);
    let (_, dup) = send(
        &node,
        reqwest::Method::POST,
        "/memory/entities",
        &t,
        Some(json!({"name": "Suomi", "kind": "place", "properties": {"lang": "fi"}})),
    )
    .await;
    let (_, _) = send(&node, reqwest::Method::POST, "/memory/relations", &t, Some(json!({"source": {"id": dup["id"]}, "target": {"name": "Helsinki", "kind": "place"}, "type": "capital_is"}))).await;
    let (status, merged) = send(
        &node,
        reqwest::Method::POST,
        &format!("/memory/entities/{}/merge", finland["id"].as_str().unwrap()),
        &t,
        Some(json!({"from": [dup["id"]]})),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["properties"]["lang"], "fi");
    let (_, g) =
        send(&node, reqwest::Method::GET, "/memory/graph?entity=linus&depth=2", &t, None).await;
    let mut names: Vec<&str> =
        g["entities"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Finland", "Helsinki", "Linus", "Linux"]);
    let (_, g) = send(
        &node,
        reqwest::Method::GET,
        "/memory/graph?entity=linus&depth=2&relation=created",
        &t,
        None,
    )
    .await;
    assert_eq!(g["entities"].as_array().unwrap().len(), 2);
    let (status, _) = send(&node, reqwest::Method::GET, "/memory/graph?depth=9", &t, None).await;
    assert_eq!(status, 400);
    let (status, _) = send(
        &node,
        reqwest::Method::GET,
        &format!("/memory/entities/{}", dup["id"].as_str().unwrap()),
        &t,
        None,
    )
    .await;
    assert_eq!(status, 404, "merged away");
    // Expansion: searching Linux finds the memory, and the graph links nothing else here.
    let r = search(&node, &t, "q=Linux&expand=true").await;
    assert_eq!(result_ids(&r), [m[0]["id"].as_str().unwrap()]);
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    assert!(audit.contains("memory.entity.merge") && audit.contains("memory.relation.add"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_add_search_forget_export_import() {
    let (dir, node, _up) = memory_node("").await;
    let out = dir.run(&[
        "memory",
        "add",
        "--wait",
        "--meta",
        "source=cli",
        "the",
        "boiler",
        "code",
        "is",
        "4417",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(id.starts_with("mem_"), "{id}");
    let out =
        dir.run(&["memory", "add", "--private", "--tier", "working", "private", "boiler", "note"]);
    assert!(out.status.success());
    let out = dir.run(&["memory", "search", "boiler", "code"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().next().unwrap().starts_with(&id), "{text}");
    let out = dir.run(&["--json", "memory", "search", "-k", "1", "boiler"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    let file = dir.tmp.path().join("export.jsonl");
    let out = dir.run(&["memory", "export", "--vectors", "--output", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 2);
    assert!(exported.contains("\"embedding\":["));
    let out = dir.run(&["memory", "forget", &id]);
    assert!(out.status.success());
    let out = dir.run(&["memory", "get", &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    let out = dir.run(&["memory", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 2"));
    let r = search(&node, &node.token, &format!("q={}", enc("boiler code 4417"))).await;
    let first = &r["results"][0]["memory"];
    assert_eq!(first["text"], "the boiler code is 4417");
    assert_eq!(first["metadata"]["source"], "cli");
    assert_eq!(first["embedded"], true, "imported with its vector");
    let all = search(&node, &node.token, "q=boiler&k=10").await;
    assert!(
        all["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["memory"]["private"] == true && h["memory"]["tier"] == "working")
    );
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_embedding_provider_is_said_clearly() {
    let dir = NodeDir::new().await;
    // The default is the embedded MiniLM (`local`); empty turns vector search off.
    dir.write_config("[memory]\nembedding_provider = \"\"\n");
    let node = Node::start(&dir);
    let t = node.token.clone();
    let (status, body) = send(
        &node,
        reqwest::Method::POST,
        "/memories",
        &t,
        Some(json!({"memories": [{"text": "plain words only"}], "wait": true})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(body["embedding"], "unavailable");
    let r = search(&node, &t, "q=words").await;
    assert_eq!(r["vector_search"], false);
    assert!(r["notice"].as_str().unwrap().contains("[memory] embedding_provider"), "{r}");
    assert_eq!(result_ids(&r).len(), 1);
    let (status, body) = send(
        &node,
        reqwest::Method::POST,
        "/memories/embeddings",
        &t,
        Some(json!({"texts": ["x"]})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (503, Some("embedding_unavailable")));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_backend_through_the_node() {
    let qdrant = FakeQdrant::start().await.unwrap();
    let (_dir, node, _up) = memory_node(&format!(
        "vector_backend = \"qdrant\"\nqdrant_url = \"{}\"\nqdrant_collection = \"node_test\"",
        qdrant.url()
    ))
    .await;
    let t = node.token.clone();
    let m = add(
        &node,
        &t,
        json!([{"text": "stored in qdrant"}, {"text": "kept on the node", "private": true}]),
    )
    .await;
    assert_eq!(qdrant.point_ids("node_test").len(), 1, "private vectors stay in the node");
    let r = search(&node, &t, &format!("q={}", enc("stored in qdrant"))).await;
    assert_eq!(result_ids(&r)[0], m[0]["id"].as_str().unwrap());
    assert_eq!(r["results"][0]["vector"]["rank"], 1);
    node.stop();
}
