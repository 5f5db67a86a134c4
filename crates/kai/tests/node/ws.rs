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
