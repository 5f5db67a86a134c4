//! `GET /ws`: the live event stream. A client authenticates like any API call (bearer header, or
//! the `kai.token.<token>` WebSocket subprotocol for browsers), then sends
//! `{"op":"subscribe","id":"s1","filter":{…},"after":OFFSET}` to receive matching events in the
//! seed 001 envelope, resuming after `after` with no gap; `{"op":"unsubscribe","id":"s1"}` stops
//! one. A client that does not keep up is closed with code 1013 and never slows the node:
//! subscriptions use the bus's drop-slow policy and the outgoing queue is bounded.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use kai_core::event::EventFilter;
use kai_runtime::DeliveryPolicy;
use kai_runtime::bus::CloseReason;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::{ApiError, ApiResult, Problem};

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 32;
/// Frames queued for one client before it counts as too slow…
const OUTBOUND_QUEUE: usize = 1000;
/// …or bytes, whichever comes first (memory per client stays bounded).
const OUTBOUND_BYTES: usize = 8 * 1024 * 1024;
/// Close code for "too slow, try again later" (RFC 6455 1013).
pub const CLOSE_TOO_SLOW: u16 = 1013;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
enum ClientOp {
    Subscribe {
        id: String,
        #[serde(default)]
        filter: EventFilter,
        after: Option<u64>,
    },
    Unsubscribe {
        id: String,
    },
}

enum Outbound {
    Frame(String),
    TooSlow,
}

/// Refuses cross-site upgrades: an `Origin` must name this host.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) else { return true };
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// Upgrades to the event WebSocket.
#[utoipa::path(get, path = "/ws", tag = "events", security(("bearer" = [])), responses(
    (status = 101, description = "switching to the event stream"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn upgrade(
    State(state): State<AppState>,
    principal: crate::auth::Principal,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden { role: "cross-site page", action: "open" });
    }
    Ok(ws
        .protocols(["kai"])
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(state, principal.actor(), socket)))
}

async fn serve(state: AppState, actor: String, mut socket: WebSocket) {
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let reply = match serde_json::from_str::<ClientOp>(&text) {
                    Err(e) => json!({"op": "error", "message": format!("not a subscribe/unsubscribe op: {e}")}),
                    Ok(ClientOp::Unsubscribe { id }) => {
                        if let Some(task) = subs.remove(&id) { task.abort(); }
                        json!({"op": "unsubscribed", "id": id})
                    }
                    Ok(ClientOp::Subscribe { id, .. }) if subs.contains_key(&id) || subs.len() >= MAX_SUBSCRIPTIONS || id.len() > 64 => {
                        json!({"op": "error", "id": id, "message": format!("subscription ids are unique, at most 64 characters, at most {MAX_SUBSCRIPTIONS} per connection")})
                    }
                    Ok(ClientOp::Subscribe { id, filter, after }) => {
                        match state.node.bus.subscribe(filter, after, DeliveryPolicy::DropSlow).await {
                            Ok(sub) => {
                                subs.insert(id.clone(), tokio::spawn(forward(id.clone(), actor.clone(), sub, out_tx.clone(), queued.clone())));
                                json!({"op": "subscribed", "id": id})
                            }
                            Err(e) => json!({"op": "error", "id": id, "message": e.to_string()}),
                        }
                    }
                };
                if out_tx.try_send(Outbound::Frame(reply.to_string())).is_err() { break; }
            }
            out = out_rx.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    queued.fetch_sub(text.len().min(queued.load(Ordering::Relaxed)), Ordering::Relaxed);
                    if socket.send(Message::Text(text.into())).await.is_err() { break; }
                }
                Some(Outbound::TooSlow) | None => {
                    let frame = CloseFrame { code: CLOSE_TOO_SLOW, reason: "client too slow; reconnect and resume after your last offset".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
            },
        }
    }
    for (_, task) in subs {
        task.abort();
    }
}

async fn forward(
    id: String,
    actor: String,
    mut sub: kai_runtime::Subscription,
    out: mpsc::Sender<Outbound>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(event) = sub.recv().await {
        if !super::events::visible_to(&actor, &event) {
            continue;
        }
        let frame =
            json!({"op": "event", "sub": id, "event": crate::api::Event::from(event)}).to_string();
        let len = frame.len();
        if queued.fetch_add(len, Ordering::Relaxed) + len > OUTBOUND_BYTES
            || out.try_send(Outbound::Frame(frame)).is_err()
        {
            let _ = out.try_send(Outbound::TooSlow);
            return;
        }
    }
    if sub.closed_reason() == Some(CloseReason::TooSlow) {
        let _ = out.send(Outbound::TooSlow).await;
    }
}
