//! Bare axum servers, built in the same run as `kai` so whole-system benchmarks have a ceiling:
//! `hello-axum [ADDR]` answers `/health` (the HTTP benchmark); `hello-axum ws [ADDR]` is the
//! WebSocket fan-out ceiling: `POST /events` broadcasts the body to every `/ws` client that
//! sent a subscribe op, in kai's frame shape, with no authentication, audit, persistence or
//! filtering (a lagging client is closed with 1013, like kai's). Prints its address on stdout.

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::broadcast;

async fn publish(
    State(tx): State<broadcast::Sender<String>>,
    Json(mut event): Json<serde_json::Value>,
) -> axum::http::StatusCode {
    event["offset"] = serde_json::json!(0);
    let _ = tx.send(event.to_string());
    axum::http::StatusCode::CREATED
}

async fn upgrade(State(tx): State<broadcast::Sender<String>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| follow(socket, tx))
}

async fn follow(mut socket: WebSocket, tx: broadcast::Sender<String>) {
    let id = loop {
        let Some(Ok(Message::Text(text))) = socket.recv().await else { return };
        let op: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if op["op"] == "subscribe" {
            break op["id"].as_str().unwrap_or("s").to_owned();
        }
    };
    let mut rx = tx.subscribe();
    let reply = serde_json::json!({"op": "subscribed", "id": id});
    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            event = rx.recv() => match event {
                Ok(event) => {
                    let frame = format!("{{\"op\":\"event\",\"sub\":\"{id}\",\"event\":{event}}}");
                    if socket.send(Message::Text(frame.into())).await.is_err() { return; }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let frame = CloseFrame { code: 1013, reason: "too slow".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let ws = args.first().is_some_and(|a| a == "ws");
    if ws {
        args.remove(0);
    }
    let addr = args.first().cloned().unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let app = if ws {
        let (tx, _) = broadcast::channel::<String>(1024);
        Router::new().route("/ws", get(upgrade)).route("/events", post(publish)).with_state(tx)
    } else {
        Router::new().route("/health", get(|| async { "ok" }))
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
