//! The HTTP surface of a real node: health, readiness, metrics, OpenAPI, auth on every route,
//! problem+json for bad input, graceful shutdown, safe defaults.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::harness::{Node, NodeDir, signal, wait_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_info_metrics_and_openapi() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let health = node.http.get(node.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value =
        node.http.get(node.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(ready["schema_version"].as_i64().unwrap() >= 1);
    let info = node.get_json("/system/info").await;
    let did = std::fs::read_to_string(dir.data().join("identity/genesis.did")).unwrap();
    assert_eq!(info["did"], did.trim());
    assert_eq!(info["bus_backend"], "memory");
    let expected_storage = if dir.pg_schema.is_some() { "postgres" } else { "sqlite" };
    assert_eq!(info["storage_backend"], expected_storage);
    let config = node.get_json("/system/config").await;
    assert_eq!(config["config"]["server"]["listen"], "127.0.0.1:0");
    assert_eq!(config["sources"]["server.listen"], "command-line flag --listen");
    let metrics = node.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("kai_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/system/info\""), "{metrics}");
    assert!(metrics.contains("kai_http_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("kai_audit_entries"), "{metrics}");
    let doc: serde_json::Value =
        node.http.get(node.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/system/info",
        "/system/config",
        "/events",
        "/audit/entries",
        "/audit/verify",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from OpenAPI");
    }
    assert_eq!(node.stop().code(), Some(0));
}

/// Walks the OpenAPI document: every route but /health and /ready rejects anonymous callers
/// and callers with a bad token with 401 problem+json.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_requires_authentication() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let doc: serde_json::Value =
        node.http.get(node.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let listed = [
                "/health",
                "/ready",
                "/vault/status",
                "/vault/unlock",
                "/auth/login",
                "/auth/refresh",
                "/",
                "/ui/{path}",
                "/share/{token}",
            ]
            .contains(&path.as_str());
            // A webhook delivery is public (its signature is its credential); deleting one is not.
            let public = listed || (path == "/webhooks/{name}" && method.as_str() == "post");
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            for token in
                [None, Some("kai_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), Some("not-a-token")]
            {
                let mut req =
                    node.http.request(method.clone(), node.url(path)).json(&serde_json::json!({}));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.unwrap();
                if public {
                    assert_ne!(resp.status(), 401, "{method} {path} is public");
                } else {
                    assert_eq!(resp.status(), 401, "{method} {path} with {token:?}");
                    assert_eq!(resp.headers()["content-type"], "application/problem+json");
                    let body: serde_json::Value = resp.json().await.unwrap();
                    assert_eq!(body["code"], "unauthorized");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 27, "{checked}");
    // Every non-public operation declares bearer security in the document.
    for (path, item) in doc["paths"].as_object().unwrap() {
        if [
            "/health",
            "/ready",
            "/vault/status",
            "/vault/unlock",
            "/auth/login",
            "/auth/refresh",
            "/",
            "/ui/{path}",
            "/share/{token}",
        ]
        .contains(&path.as_str())
        {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            if path == "/webhooks/{name}" && method.as_str() == "post" {
                continue;
            }
            assert!(
                op["security"].to_string().contains("bearer"),
                "{method} {path} lacks security"
            );
        }
    }
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_problem_and_changes_nothing() {
    let dir = NodeDir::new().await;
    dir.write_config("[server]\nbody_limit_bytes = 4096\n");
    let node = Node::start(&dir);
    let before = node.get_json("/system/info").await["audit_entries"].as_u64().unwrap();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .json(&serde_json::json!({"type": "lower"})),
            400,
            "bad_request",
        ),
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .json(&serde_json::json!({"type": "OK", "extra": 1})),
            400,
            "bad_request",
        ),
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .json(&serde_json::json!({"type": 5})),
            400,
            "bad_request",
        ),
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .json(&serde_json::json!({"type": "OK", "agent": "nobody"})),
            400,
            "bad_request",
        ),
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "bad_request",
        ),
        (
            node.http.post(node.url("/events")).bearer_auth(&node.token).body("type=OK"),
            415,
            "unsupported_media_type",
        ),
        (
            node.http
                .post(node.url("/events"))
                .bearer_auth(&node.token)
                .json(&serde_json::json!({"type": "OK", "payload": "x".repeat(10_000)})),
            413,
            "payload_too_large",
        ),
        (node.http.get(node.url("/events?limit=0")).bearer_auth(&node.token), 400, "bad_request"),
        (node.http.get(node.url("/events?limit=abc")).bearer_auth(&node.token), 400, "bad_request"),
        (node.http.get(node.url("/no/such/route")), 404, "not_found"),
        (node.http.delete(node.url("/events")).bearer_auth(&node.token), 405, "method_not_allowed"),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "case {i}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "case {i}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "case {i}: {body}");
        assert_eq!(body["status"], status, "case {i}");
        assert!(!body["detail"].as_str().unwrap().is_empty());
    }
    let after = node.get_json("/system/info").await["audit_entries"].as_u64().unwrap();
    assert_eq!(before, after, "rejected requests change nothing");
    assert_eq!(node.get_json("/events").await["events"].as_array().unwrap().len(), 0);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_published_audited_and_paged() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let mut ids = Vec::new();
    for n in 0..5 {
        let resp = node
            .post_json("/events", serde_json::json!({"type": "AGENT_RESULT", "agent": "kExecutor:webscraper", "task_id": "xyz123", "payload": {"n": n}}))
            .await;
        assert_eq!(resp.status(), 201);
        let e: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(e["agent"], "kExecutor:webscraper");
        ids.push(e["id"].as_str().unwrap().to_owned());
    }
    let page = node.get_json("/events?limit=2").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_u64().unwrap();
    let rest = node.get_json(&format!("/events?after={next}")).await;
    let got: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["events"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids);
    let audit = node.get_json("/audit/entries?limit=1000").await;
    let publishes = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "event.publish")
        .count();
    assert_eq!(publishes, 5);
    let verified = node.get_json("/audit/verify").await;
    assert_eq!(verified["ok"], true, "{verified}");
    node.stop();
}

/// SIGTERM while a request is in flight: the request completes, then the node exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let dir = NodeDir::new().await;
    let mut node = Node::start(&dir);
    let body = serde_json::json!({"type": "SHUTDOWN_PROBE", "payload": {"x": 1}}).to_string();
    let mut conn = tokio::net::TcpStream::connect(&node.addr).await.unwrap();
    let head = format!(
        "POST /events HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        node.addr,
        node.token,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..5]).await.unwrap();
    // The server is now reading this request's body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&node.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(node.child.try_wait().unwrap().is_none(), "node must wait for the in-flight request");
    conn.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    let status = wait_exit(&mut node.child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    assert!(!dir.data().join("run/node.json").exists(), "run file removed on clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_bind_and_second_node_are_refused() {
    let dir = NodeDir::new().await;
    let out = dir.run(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing to listen on 0.0.0.0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = Node::start(&dir);
    let out = dir.run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_identity_rotation_and_completions() {
    let dir = NodeDir::new().await;
    assert_eq!(dir.run(&["status"]).status.code(), Some(3), "not running");
    let node = Node::start(&dir);
    let out = dir.run(&["--json", "status"]);
    assert_eq!(out.status.code(), Some(0));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["ready"], true);
    let first = status["info"]["did"].as_str().unwrap().to_owned();
    let out = dir.run(&["--json", "identity", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["previous"], first);
    assert_ne!(rotated["did"], first);
    assert_eq!(node.get_json("/system/info").await["did"], rotated["did"]);
    node.post_json("/events", serde_json::json!({"type": "AFTER_ROTATION"})).await;
    assert_eq!(node.stop().code(), Some(0));
    let out = dir.run(&["--json", "audit", "verify"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["report"]["signers"].as_array().unwrap().len(), 2);
    // The node restarts with the rotated key.
    let node = Node::start(&dir);
    assert_eq!(node.get_json("/system/info").await["did"], rotated["did"]);
    node.stop();
    for shell in ["bash", "zsh", "fish"] {
        let out = dir.run(&["completions", shell]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("audit"), "{shell}");
    }
}
