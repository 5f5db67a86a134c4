//! The prompt library on a real node: versions are immutable and addressable as `name@N`,
//! diffs between them, variables validated with clear errors, templates that read undeclared
//! variables refused, tags, ratings, usage counts, search, the catalogue, the render history,
//! audit entries, and the `kai prompt` commands.

use serde_json::{Value, json};

use super::harness::{Node, NodeDir};

async fn send(node: &Node, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let resp = node
        .http
        .request(method, node.url(path))
        .bearer_auth(&node.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn summarize() -> Value {
    json!({
        "name": "summarize",
        "description": "Summaries of any text",
        "template": "Summarize in {{ words }} words:\n{{ text }}",
        "variables": [
            {"name": "text", "type": "string", "required": true, "description": "what to summarize"},
            {"name": "words", "type": "number", "default": 50}
        ],
        "tags": ["writing"]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_diffs_renders_and_history() {
    use reqwest::Method as M;
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let (status, created) = send(&node, M::POST, "/prompts", summarize()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["version"].as_i64(), created["version_reference"].as_str()),
        (Some(1), Some("summarize@1"))
    );
    let (status, dup) = send(&node, M::POST, "/prompts", summarize()).await;
    assert_eq!((status, dup["code"].as_str()), (409, Some("conflict")));

    // A template that reads a variable it does not declare is refused, with the name.
    let mut typo = summarize();
    typo["name"] = json!("typo");
    typo["template"] = json!("Summarize {{ txet }}");
    let (status, body) = send(&node, M::POST, "/prompts", typo).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_variables")));
    assert!(body["detail"].as_str().unwrap().contains("`txet`"), "{body}");
    let (status, body) =
        send(&node, M::POST, "/prompts", json!({"name": "bad", "template": "{% if %}"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("template_error")));
    let (status, _) =
        send(&node, M::POST, "/prompts", json!({"name": "../x", "template": "x"})).await;
    assert_eq!(status, 400);

    // Edit: a new version; the old one stays as it was.
    let edit = json!({
        "template": "Summarize in at most {{ words }} words, in a {{ tone }} tone:\n{{ text }}",
        "variables": [
            {"name": "text", "type": "string", "required": true},
            {"name": "words", "type": "number", "default": 50},
            {"name": "tone", "type": "string", "default": "neutral"}
        ],
        "message": "add tone",
        "base_version": 1
    });
    let (status, v2) = send(&node, M::PUT, "/prompts/summarize", edit.clone()).await;
    assert_eq!((status, v2["version"].as_i64()), (200, Some(2)), "{v2}");
    let (status, stale) = send(&node, M::PUT, "/prompts/summarize", edit).await;
    assert_eq!(status, 409, "an edit from version 1 after version 2 exists: {stale}");
    let v1 = node.get_json("/prompts/summarize@1").await;
    assert_eq!(v1["template"], "Summarize in {{ words }} words:\n{{ text }}");
    assert_eq!(node.get_json("/prompts/summarize?version=1").await["template"], v1["template"]);
    assert_eq!(node.get_json("/prompts/summarize").await["version"], 2);
    let id = created["id"].as_str().unwrap();
    assert_eq!(node.get_json(&format!("/prompts/{id}@1")).await["version"], 1);
    let versions = node.get_json("/prompts/summarize/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["versions"][1]["message"], "add tone");

    let diff = node.get_json("/prompts/summarize/diff?from=1&to=2").await;
    assert_eq!(
        (diff["insertions"].as_i64(), diff["deletions"].as_i64()),
        (Some(1), Some(1)),
        "{diff}"
    );
    assert_eq!(diff["variables_added"], json!(["tone"]));
    let unified = diff["unified"].as_str().unwrap();
    assert!(
        unified.contains("--- summarize@1") && unified.contains("+++ summarize@2"),
        "{unified}"
    );
    assert!(
        unified.contains("-Summarize in {{ words }} words:")
            && unified.contains("+Summarize in at most"),
        "{unified}"
    );

    // Render: defaults fill in; each problem is named.
    let (status, out) = send(
        &node,
        M::POST,
        "/prompts/summarize/render",
        json!({"variables": {"text": "A long story."}}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["output"], "Summarize in at most 50 words, in a neutral tone:\nA long story.");
    assert_eq!(out["reference"], "summarize@2");
    let (status, out) = send(
        &node,
        M::POST,
        "/prompts/summarize@1/render",
        json!({"variables": {"text": "x", "words": 10}}),
    )
    .await;
    assert_eq!((status, out["output"].as_str()), (200, Some("Summarize in 10 words:\nx")));
    let (status, bad) = send(
        &node,
        M::POST,
        "/prompts/summarize/render",
        json!({"variables": {"words": "ten", "colour": "red"}}),
    )
    .await;
    assert_eq!((status, bad["code"].as_str()), (422, Some("invalid_variables")));
    let detail = bad["detail"].as_str().unwrap();
    for part in
        ["`colour`: not declared", "`text`: is required", "`words`: must be a number, got a string"]
    {
        assert!(detail.contains(part), "{part} in {detail}");
    }
    let (status, tested) = send(&node, M::POST, "/prompts/test", json!({"template": "Hi {{ who|upper }}", "declare": [{"name": "who", "type": "string"}], "variables": {"who": "ana"}})).await;
    assert_eq!((status, tested["output"].as_str()), (200, Some("Hi ANA")));
    let (status, _) =
        send(&node, M::POST, "/prompts/test", json!({"template": "{% include '/etc/passwd' %}"}))
            .await;
    assert_eq!(status, 422, "no filesystem access");

    // Tags, ratings, usage, search, catalogue.
    let (status, _) =
        send(&node, M::PATCH, "/prompts/summarize", json!({"tags": ["writing", "daily"]})).await;
    assert_eq!(status, 200);
    let (status, rated) =
        send(&node, M::POST, "/prompts/summarize/rating", json!({"stars": 4})).await;
    assert_eq!((status, rated["rating"].as_f64()), (200, Some(4.0)));
    let (status, _) = send(&node, M::POST, "/prompts/summarize/rating", json!({"stars": 6})).await;
    assert_eq!(status, 400);
    let (_, other) =
        send(&node, M::POST, "/prompts", json!({"name": "greet", "template": "Hello"})).await;
    assert_eq!(other["version"], 1);
    let found = node.get_json("/prompts/search?q=tone").await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["usage_count"], 2, "two successful renders");
    assert_eq!(node.get_json("/prompts?tag=daily").await.as_array().unwrap().len(), 1);
    let catalogue = node.get_json("/templates").await;
    let entry = catalogue["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "summarize")
        .unwrap()
        .clone();
    assert_eq!(entry["reference"], "summarize@2");
    assert_eq!(entry["variables"].as_array().unwrap().len(), 3);

    // History: every render, newest first, sizes not values.
    let history = node.get_json("/history?prompt=summarize").await;
    let h = history.as_array().unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(
        (h[0]["ok"].as_bool(), h[1]["reference"].as_str()),
        (Some(false), Some("summarize@1"))
    );
    assert!(!history.to_string().contains("A long story"), "values are not kept");
    let viewer = node
        .post_json("/tokens", json!({"name": "v", "role": "viewer"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let viewer = viewer["token"].as_str().unwrap();
    let theirs: Value = node
        .http
        .get(node.url("/history"))
        .bearer_auth(viewer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]), "history is per caller");
    let all =
        node.http.get(node.url("/history?all=true")).bearer_auth(viewer).send().await.unwrap();
    assert_eq!(all.status(), 403);
    let write = node
        .http
        .post(node.url("/prompts"))
        .bearer_auth(viewer)
        .json(&summarize())
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403, "viewers read prompts but do not write them");

    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    for action in ["prompt.create", "prompt.edit", "prompt.render", "prompt.rate", "prompt.tags"] {
        assert!(audit.contains(action), "{action} audited");
    }
    let (status, _) = send(&node, M::DELETE, "/prompts/greet", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(node.get("/prompts/greet").await.status(), 404);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kai_prompt_commands() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let template = dir.tmp.path().join("t.j2");
    std::fs::write(&template, "Dear {{ name }},\n{{ body }}\n").unwrap();
    let run = |args: &[&str]| {
        let out = dir.run(args);
        assert!(out.status.success(), "kai {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let missing = dir.run(&["prompt", "edit", "letter", "--template", "x"]);
    assert!(
        !missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("--create")
    );
    let out = run(&[
        "prompt",
        "edit",
        "letter",
        "--create",
        "--file",
        template.to_str().unwrap(),
        "--var",
        "name:string!",
        "--var",
        "body:string=Thanks.",
        "--tag",
        "mail",
    ]);
    assert!(out.contains("saved letter@1"), "{out}");
    let out = run(&[
        "prompt",
        "edit",
        "letter",
        "--template",
        "Hi {{ name }},\n{{ body }}\n",
        "-m",
        "less formal",
    ]);
    assert!(out.contains("saved letter@2"), "{out}");
    let out = run(&["prompt", "render", "letter", "-v", "name=Ana"]);
    assert_eq!(out, "Hi Ana,\nThanks.\n", "Jinja drops the one trailing newline");
    let out = run(&["prompt", "render", "letter@1", "-v", "name=Bo", "-v", "body=See you."]);
    assert_eq!(out, "Dear Bo,\nSee you.\n");
    let out = run(&["prompt", "diff", "letter"]);
    assert!(out.contains("-Dear {{ name }},") && out.contains("+Hi {{ name }},"), "{out}");
    let out = run(&["prompt", "show", "letter@1", "--versions"]);
    assert!(
        out.contains("letter@1")
            && out.contains("{{ name }}: string (required)")
            && out.contains("less formal"),
        "{out}"
    );
    let out = run(&["prompt", "list"]);
    assert!(out.contains("letter@2") && out.contains("[mail]"), "{out}");
    let bad = dir.run(&["prompt", "render", "letter", "-v", "nmae=Ana"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("`nmae`: not declared") && err.contains("`name`: is required"), "{err}");
    node.stop();
}
