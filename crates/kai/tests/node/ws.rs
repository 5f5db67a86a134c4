//! `GET /ws` on a real node: authenticated subscriptions with filters, resume after the last seen
//! offset with no gap, browser-style subprotocol tokens, cross-site refusal, and a client that
//! never reads being closed with 1013 while the node stays responsive.

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::harness::{Node, NodeDir};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(
    node: &Node,
    header: Option<(&'static str, String)>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/ws", node.addr).into_client_request().unwrap();
    if let Some((name, value)) = header {
        req.headers_mut().insert(name, HeaderValue::from_str(&value).unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(ws, _)| ws)
}

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("frame within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

async fn publish(node: &Node, kind: &str, n: u64) -> u64 {
    let resp = node
        .post_json("/events", json!({"type": kind, "task_id": "t1", "payload": {"n": n}}))
        .await;
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["offset"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_filter_and_resume_without_gaps() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let mut ws =
        connect(&node, Some(("authorization", format!("Bearer {}", node.token)))).await.unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "id": "steps", "filter": {"types": ["STEP_STARTED"]}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    publish(&node, "TASK_CREATED", 0).await;
    let o1 = publish(&node, "STEP_STARTED", 1).await;
    let got = next_json(&mut ws).await;
    assert_eq!((got["op"].as_str(), got["sub"].as_str()), (Some("event"), Some("steps")));
    assert_eq!(got["event"]["type"], "STEP_STARTED");
    assert_eq!(got["event"]["offset"], o1);
    // Disconnect; events happen meanwhile; reconnect and resume after the last seen offset.
    drop(ws);
    let missed: Vec<u64> =
        futures::future::join_all((2..5).map(|n| publish(&node, "STEP_STARTED", n))).await;
    let mut ws =
        connect(&node, Some(("authorization", format!("Bearer {}", node.token)))).await.unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "again", "filter": {"types": ["STEP_STARTED"]}, "after": o1}).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(next_json(&mut ws).await["event"]["offset"].as_u64().unwrap());
    }
    let mut want = missed.clone();
    want.sort_unstable();
    assert_eq!(seen, want, "no gap and no repeat after the resume point");
    let live = publish(&node, "STEP_STARTED", 9).await;
    assert_eq!(next_json(&mut ws).await["event"]["offset"], live);
    ws.send(Message::Text(json!({"op": "unsubscribe", "id": "again"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "unsubscribed");
    ws.send(Message::Text("{\"op\":\"dance\"}".into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "error");
    node.stop();
}

/// A burst published while the client is not reading queues on the connection and goes out in
/// batched writes: every event arrives once, in offset order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_arrives_complete_and_in_order() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let mut ws =
        connect(&node, Some(("authorization", format!("Bearer {}", node.token)))).await.unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "id": "burst", "filter": {"types": ["BURST"]}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    let mut published = Vec::new();
    // 150 events: within the default rate limit's burst of 200 requests.
    for round in 0..3 {
        let batch = (0..50).map(|i| publish(&node, "BURST", round * 50 + i));
        published.extend(futures::future::join_all(batch).await);
    }
    published.sort_unstable();
    let mut seen = Vec::with_capacity(published.len());
    while seen.len() < published.len() {
        let got = next_json(&mut ws).await;
        assert_eq!(got["op"], "event", "{got}");
        seen.push(got["event"]["offset"].as_u64().unwrap());
    }
    assert_eq!(seen, published, "every event once, in offset order");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_origin_and_browser_tokens() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let err = connect(&node, None).await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let err = connect(
        &node,
        Some(("authorization", "Bearer kai_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into())),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("401"), "{err}");
    let mut req = format!("ws://{}/ws", node.addr).into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", HeaderValue::from_str(&format!("Bearer {}", node.token)).unwrap());
    req.headers_mut().insert("origin", HeaderValue::from_static("http://evil.example"));
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err().to_string();
    assert!(err.contains("403"), "cross-site upgrade refused: {err}");
    // A browser passes the token as a subprotocol.
    let mut ws =
        connect(&node, Some(("sec-websocket-protocol", format!("kai, kai.token.{}", node.token))))
            .await
            .unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "all"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_the_node_stays_responsive() {
    let dir = NodeDir::new().await;
    dir.write_config("[bus]\nsubscriber_queue = 8\n[limits]\nrequests_per_second = 0\n");
    let node = Node::start(&dir);
    let mut ws =
        connect(&node, Some(("authorization", format!("Bearer {}", node.token)))).await.unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "all"}).to_string().into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    // Publish ~16 MB of events without reading a single frame.
    let blob = "x".repeat(16 * 1024);
    for n in 0..1000 {
        let resp = node
            .post_json("/events", json!({"type": "FLOOD", "payload": {"n": n, "blob": blob}}))
            .await;
        assert_eq!(resp.status(), 201, "publishing never blocks on the slow client");
    }
    assert_eq!(node.get("/system/info").await.status(), 200);
    // Now read: some events, then a close frame with 1013.
    let mut events = 0;
    let code = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .expect("closed within 20 s")
        {
            Some(Ok(Message::Text(_))) => events += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert_eq!(code, Some(1013), "closed as too slow after {events} frames");
    assert!(events < 1001);
    node.stop();
}

/// Reads frames until the server closes; returns the close code.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
            .await
            .expect("closed within 30 s")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_start_at_the_log_end_and_credentials_stay_checked() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    publish(&node, "BEFORE", 1).await;
    let last = publish(&node, "BEFORE", 2).await;

    // A browser session (access JWT as subprotocol): `subscribed` names where it starts.
    let login = node
        .http
        .post(node.url("/auth/login"))
        .json(&json!({"username": "owner", "password": super::harness::OWNER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let access = login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let mut ws =
        connect(&node, Some(("sec-websocket-protocol", format!("kai, kai.token.{access}"))))
            .await
            .unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "live"}).to_string().into()))
        .await
        .unwrap();
    let reply = next_json(&mut ws).await;
    assert_eq!((reply["op"].as_str(), reply["after"].as_u64()), (Some("subscribed"), Some(last)));
    let next = publish(&node, "AFTER", 3).await;
    assert_eq!(next_json(&mut ws).await["event"]["offset"], next);
    // Logging out ends the stream: 4401, so the client refreshes and reconnects.
    let out = node.http.post(node.url("/auth/logout")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(close_code(&mut ws).await, Some(4401), "a logged-out session is closed");

    // An API token: revoking it closes its streams too.
    let created = node
        .post_json("/tokens", json!({"name": "ws", "role": "member"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let mut ws = connect(&node, Some(("authorization", format!("Bearer {token}")))).await.unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "t"}).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    let id = created["info"]["id"].as_str().unwrap();
    assert_eq!(node.delete(&format!("/tokens/{id}")).await.status(), 204);
    assert_eq!(close_code(&mut ws).await, Some(4401), "a revoked token is closed");

    // Sealing the vault closes every stream with 4503.
    let mut ws =
        connect(&node, Some(("authorization", format!("Bearer {}", node.token)))).await.unwrap();
    ws.send(Message::Text(json!({"op": "subscribe", "id": "s"}).to_string().into())).await.unwrap();
    assert_eq!(next_json(&mut ws).await["op"], "subscribed");
    assert_eq!(node.post_json("/vault/seal", json!({})).await.status(), 204);
    assert_eq!(close_code(&mut ws).await, Some(4503), "sealing closes the stream");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_gives_the_newest_and_where_to_continue() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let mut offsets = Vec::new();
    for n in 0..5 {
        offsets.push(publish(&node, "TAILED", n).await);
    }
    let page = node.get_json("/events?tail=3").await;
    let got: Vec<u64> =
        page["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    assert_eq!(got, offsets[2..].to_vec(), "the newest three, oldest first");
    assert_eq!(page["next_after"], offsets[4]);
    for bad in
        ["/events?tail=0", "/events?tail=1001", "/events?tail=3&after=1", "/events?tail=2&limit=5"]
    {
        let resp = node.get(bad).await;
        assert_eq!(resp.status(), 400, "{bad}");
        assert_eq!(resp.json::<Value>().await.unwrap()["code"], "bad_request");
    }
    node.stop();
}
