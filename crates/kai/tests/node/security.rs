//! Issue 3 at the process level: the RBAC matrix over every route and role, JWT sessions over
//! HTTP, secret policies between agents, nothing secret on disk, unlock throttling, and a
//! `kill -9` during a rekey.

use std::collections::HashMap;

use kai_core::policy::Role;
use kai_server::access::{Access, rule};
use serde_json::{Value, json};

use super::harness::{Node, NodeDir, OWNER_PASSWORD, VAULT_PASSPHRASE, exec_sql};

const PUBLIC: &[&str] = &[
    "/webhooks/{name}",
    "/health",
    "/ready",
    "/vault/status",
    "/vault/unlock",
    "/auth/login",
    "/auth/refresh",
    "/",
    "/ui/{path}",
    "/share/{token}",
];

async fn token(node: &Node, role: &str, agent: Option<&str>) -> String {
    let resp = node
        .post_json("/tokens", json!({"name": format!("t-{role}"), "role": role, "agent": agent}))
        .await;
    assert_eq!(resp.status(), 201, "create {role} token");
    resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

async fn call(
    node: &Node,
    method: &reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = node.http.request(method.clone(), node.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every route of the OpenAPI document × every role: a role the table denies gets 403; a
/// role it allows never does (it gets 2xx or a 4xx about the request itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_matrix_over_every_route_and_role() {
    let dir = NodeDir::new().await;
    dir.write_config("[limits]\nrequests_per_second = 0\n");
    let node = Node::start(&dir);
    let mut tokens = HashMap::new();
    for (role, agent) in [
        ("owner", None),
        ("admin", None),
        ("member", None),
        ("viewer", None),
        ("agent", Some("kBridge:a")),
    ] {
        tokens.insert(role, token(&node, role, agent).await);
    }
    let doc: Value =
        node.http.get(node.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    let mut seal_allowed = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "nobody").replace("{name}", "nothing");
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let access =
                rule(&method, path).unwrap_or_else(|| panic!("{method} {path} has no access rule"));
            let Access::Need(resource, action) = access else {
                assert!(PUBLIC.contains(&path.as_str()), "{path} is public but not listed");
                continue;
            };
            for (role_name, token) in &tokens {
                let role: Role = role_name.parse().unwrap();
                let allowed = role.allows(resource, action);
                if allowed && path == "/vault/seal" {
                    seal_allowed.push(*role_name);
                    continue;
                }
                let (status, body) = call(&node, &method, &concrete, Some(token), json!({})).await;
                if allowed {
                    assert!(
                        status != 401 && !(status == 403 && body["code"] == "forbidden"),
                        "{role_name} {method} {path}: {status} {body}"
                    );
                } else {
                    assert_eq!(status, 403, "{role_name} {method} {path}: {body}");
                    assert_eq!(body["code"], "forbidden");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "{checked}");
    assert_eq!(seal_allowed.len(), 2, "owner and admin may seal");
    // Sealing, by an allowed role, then unlocking again with the key file.
    let (status, _) =
        call(&node, &reqwest::Method::POST, "/vault/seal", Some(&tokens["admin"]), json!({})).await;
    assert_eq!(status, 204);
    let (status, body) =
        call(&node, &reqwest::Method::GET, "/system/info", Some(&tokens["owner"]), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("sealed")));
    let key = std::fs::read_to_string(dir.data().join("vault.key")).unwrap();
    let (status, _) =
        call(&node, &reqwest::Method::POST, "/vault/unlock", None, json!({"key": key.trim()}))
            .await;
    assert_eq!(status, 204);
    let (status, _) =
        call(&node, &reqwest::Method::GET, "/system/info", Some(&tokens["viewer"]), json!({}))
            .await;
    assert_eq!(status, 200);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_sessions_over_http() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let (status, tokens) = call(
        &node,
        &reqwest::Method::POST,
        "/auth/login",
        None,
        json!({"username": "owner", "password": OWNER_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, me) =
        call(&node, &reqwest::Method::GET, "/auth/me", Some(&access), json!({})).await;
    assert_eq!((status, me["role"].as_str()), (200, Some("owner")));
    // Forged tokens: every one gets the same 401 body.
    let parts: Vec<&str> = access.split('.').collect();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    let tampered = format!("{}.{}x.{}", parts[0], parts[1], parts[2]);
    let mut bodies = Vec::new();
    for bad in [none.as_str(), tampered.as_str(), "not.a.jwt", &"a".repeat(9000)] {
        let (status, body) =
            call(&node, &reqwest::Method::GET, "/auth/me", Some(bad), json!({})).await;
        assert_eq!(status, 401);
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical 401 bodies: {bodies:?}");
    // Wrong password: 401, and it is audited as denied.
    let (status, _) = call(
        &node,
        &reqwest::Method::POST,
        "/auth/login",
        None,
        json!({"username": "owner", "password": "wrong password"}),
    )
    .await;
    assert_eq!(status, 401);
    // Refresh rotates; reusing the old refresh token revokes the session.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, second) = call(
        &node,
        &reqwest::Method::POST,
        "/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &node,
        &reqwest::Method::POST,
        "/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(status, 401, "reuse");
    let (status, _) = call(
        &node,
        &reqwest::Method::GET,
        "/auth/me",
        Some(second["access_token"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "the whole session is revoked");
    // Logout revokes.
    let (_, fresh) = call(
        &node,
        &reqwest::Method::POST,
        "/auth/login",
        None,
        json!({"username": "owner", "password": OWNER_PASSWORD}),
    )
    .await;
    let fresh_access = fresh["access_token"].as_str().unwrap();
    assert_eq!(
        call(&node, &reqwest::Method::POST, "/auth/logout", Some(fresh_access), json!({})).await.0,
        204
    );
    assert_eq!(
        call(&node, &reqwest::Method::GET, "/auth/me", Some(fresh_access), json!({})).await.0,
        401
    );
    let audit = node.get_json("/audit/entries?limit=1000").await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.login" && e["outcome"] == "denied")
    );
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_only_reach_their_own_secrets_and_viewers_cannot_write() {
    let dir = NodeDir::new().await;
    let owned = Node::start(&dir);
    let node = &owned;
    let a = token(node, "agent", Some("kBridge:a")).await;
    let b = token(node, "agent", Some("kBridge:b")).await;
    let viewer = token(node, "viewer", None).await;
    let put = |name: &str, policy: Value| {
        let body = json!({"value": format!("value-of-{name}"), "policy": policy});
        let path = format!("/vault/secrets/{name}");
        async move {
            node.http
                .put(node.url(&path))
                .bearer_auth(&node.token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(put("for-a", json!({"read": {"agents": ["kBridge:a"]}})).await, 200);
    assert_eq!(put("for-b", json!({"read": {"agents": ["kBridge:b"]}})).await, 200);
    assert_eq!(put("use-only", json!({"use": {"agents": ["kBridge:a"]}})).await, 200);
    let get = |t: &str, name: &str| {
        let (t, path) = (t.to_owned(), format!("/vault/secrets/{name}"));
        async move { call(node, &reqwest::Method::GET, &path, Some(&t), json!({})).await }
    };
    let (status, body) = get(&a, "for-a").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("value-of-for-a")));
    assert_eq!(
        get(&a, "for-b").await.1["code"],
        "policy_denied",
        "agent A cannot read agent B's secret"
    );
    assert_eq!(get(&b, "for-a").await.0, 403);
    assert_eq!(get(&a, "use-only").await.0, 403, "use is not read");
    assert_eq!(get(&viewer, "for-a").await.0, 403);
    let (status, _) =
        call(node, &reqwest::Method::PUT, "/vault/secrets/x", Some(&viewer), json!({"value": "v"}))
            .await;
    assert_eq!(status, 403, "a viewer cannot write");
    let (status, _) =
        call(node, &reqwest::Method::POST, "/events", Some(&viewer), json!({"type": "X"})).await;
    assert_eq!(status, 403, "a viewer cannot write");
    // Every access is audited with the name's HMAC, never the name or value.
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    assert!(audit.contains("vault.secret.read") && audit.contains("denied"));
    assert!(
        !audit.contains("value-of-") && !audit.contains("for-a"),
        "no names or values in the audit log"
    );
    owned.stop();
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

/// A random canary secret is stored, read, versioned and used for encryption; afterwards no
/// file of the node (database, WAL, audit witness, logs) holds its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_secret_never_reaches_disk_in_plaintext() {
    use base64::Engine as _;
    let dir = NodeDir::new().await;
    dir.write_config("[log]\nlevel = \"debug\"\n");
    let node = Node::start(&dir);
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    for _ in 0..3 {
        let resp = node
            .http
            .put(node.url("/vault/secrets/canary"))
            .bearer_auth(&node.token)
            .json(&json!({"value": canary}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(node.get_json("/vault/secrets/canary").await["value"], canary);
    let enc = node
        .post_json("/vault/encrypt", json!({"key": "k", "plaintext": canary}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let dec = node
        .post_json("/vault/decrypt", json!({"key": "k", "ciphertext": enc["ciphertext"]}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(dec["plaintext"], canary);
    node.post_json(
        "/events",
        json!({"type": "CANARY_CHECK", "payload": {"note": "no secret here"}}),
    )
    .await;
    node.stop();
    let needles = vec![
        canary.as_bytes().to_vec(),
        base64::engine::general_purpose::STANDARD.encode(&canary).into_bytes(),
    ];
    let mut hits = Vec::new();
    scan(dir.tmp.path(), &needles, &mut hits);
    assert!(hits.is_empty(), "canary found in {hits:?}");
    if dir.pg_schema.is_some() {
        exec_sql(&dir, &["SELECT 1"]).await;
        let url = super::harness::postgres_url().unwrap();
        let schema = dir.pg_schema.clone().unwrap();
        let dump = std::process::Command::new("pg_dump")
            .arg("--schema")
            .arg(&schema)
            .arg(url)
            .output()
            .unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        assert!(
            !String::from_utf8_lossy(&dump.stdout).contains(&canary),
            "canary in the PostgreSQL dump"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passphrase_is_clear_and_throttled() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    assert_eq!(node.post_json("/vault/seal", json!({})).await.status(), 204);
    for _ in 0..5 {
        let (status, body) = call(
            &node,
            &reqwest::Method::POST,
            "/vault/unlock",
            None,
            json!({"passphrase": "nope"}),
        )
        .await;
        assert_eq!(status, 401);
        assert!(body["detail"].as_str().unwrap().contains("wrong passphrase"), "{body}");
        assert_eq!(
            node.http
                .get(node.url("/vault/status"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["state"],
            "sealed"
        );
    }
    let resp = node
        .http
        .post(node.url("/vault/unlock"))
        .json(&json!({"passphrase": VAULT_PASSPHRASE}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429, "attempts are rate-limited");
    assert!(resp.headers().contains_key("retry-after"));
    node.stop();
}

/// `kill -9` while a rekey of several hundred secrets runs: after restart the vault opens with
/// its key file, finishes the rekey if it was pending, and every secret reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_rekey_leaves_a_vault_that_opens() {
    let dir = NodeDir::new().await;
    dir.write_config("[limits]\nrequests_per_second = 0\n");
    let node = Node::start(&dir);
    let n = 300;
    for i in 0..n {
        let resp = node
            .http
            .put(node.url(&format!("/vault/secrets/s{i}")))
            .bearer_auth(&node.token)
            .json(&json!({"value": format!("v{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let key = std::fs::read_to_string(dir.data().join("vault.key")).unwrap();
    let rekey = {
        let (http, url, token) = (node.http.clone(), node.url("/vault/rekey"), node.token.clone());
        let body = json!({"passphrase": VAULT_PASSPHRASE, "key": key.trim()});
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).json(&body).send().await.map(|r| r.status())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    node.kill9();
    let _ = rekey.await;
    let node = Node::start(&dir);
    let status: Value =
        node.http.get(node.url("/vault/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["state"], "unsealed", "{status}");
    assert_eq!(status["rekey_pending"], false);
    for i in (0..n).step_by(7) {
        assert_eq!(node.get_json(&format!("/vault/secrets/s{i}")).await["value"], format!("v{i}"));
    }
    node.stop();
}

/// Ten bad logins per minute from one (user, address): the next gets 429 with `Retry-After`;
/// the same user from another address is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_throttling_is_per_user_and_address() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let wrong = json!({"username": "owner", "password": "not the password"});
    for _ in 0..10 {
        assert_eq!(
            call(&node, &reqwest::Method::POST, "/auth/login", None, wrong.clone()).await.0,
            401
        );
    }
    let resp = node.http.post(node.url("/auth/login")).json(&wrong).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    // Another client address on the loopback network still gets to try (and succeed).
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let resp = other
        .post(node.url("/auth/login"))
        .json(&json!({"username": "owner", "password": OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    node.stop();
}

/// API tokens are cached after their first lookup; revoking one through the node still locks it
/// out on the very next request, and the other tokens keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_on_the_next_request() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let resp = node.post_json("/tokens", json!({"name": "short", "role": "member"})).await;
    assert_eq!(resp.status(), 201);
    let created = resp.json::<Value>().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    let other = token(&node, "viewer", None).await;
    for t in [&secret, &other] {
        for _ in 0..3 {
            let (status, _) =
                call(&node, &reqwest::Method::GET, "/system/info", Some(t), Value::Null).await;
            assert_eq!(status, 200, "a live token works, first from the store, then cached");
        }
    }
    let revoked = node.delete(&format!("/tokens/{id}")).await;
    assert_eq!(revoked.status(), 204);
    let (status, body) =
        call(&node, &reqwest::Method::GET, "/system/info", Some(&secret), Value::Null).await;
    assert_eq!(status, 401, "revoked means refused at once, cache or not: {body}");
    let (status, _) =
        call(&node, &reqwest::Method::GET, "/system/info", Some(&other), Value::Null).await;
    assert_eq!(status, 200, "the other tokens keep working");
    node.stop();
}
