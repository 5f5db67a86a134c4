//! `GET /ws`: the live event stream. A client authenticates like any API call (bearer header, or
//! the `kai.token.<token>` WebSocket subprotocol for browsers, which cannot set headers on a
//! WebSocket; never a token in the URL), then sends
//! `{"op":"subscribe","id":"s1","filter":{…},"after":OFFSET}` to receive matching events in the
//! seed 001 envelope, resuming after `after` with no gap. The `subscribed` reply names the
//! offset the subscription starts after (the log's end when `after` was not given), so a client
//! that reconnects resumes exactly there. `{"op":"unsubscribe","id":"s1"}` stops one.
//!
//! The connection stays authenticated: it is closed with 4401 when its access token expires,
//! its session is logged out or its API token is revoked (checked every few seconds), and with
//! 4503 when the vault is sealed. A client that does not keep up is closed with 1013 and never
//! slows the node: subscriptions use the bus's drop-slow policy and the outgoing queue is
//! bounded in frames and bytes. Fan-out is shared: the bus hands every subscriber the same
//! copy of an event, each event is serialized once for all connections ([`FrameCache`]), and
//! frames already queued for a connection go out in one flushed write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::SinkExt as _;
use kai_core::event::EventFilter;
use kai_runtime::DeliveryPolicy;
use kai_runtime::bus::CloseReason;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::{Credential, Principal};
use crate::error::{ApiError, ApiResult, Problem};

/// Subscriptions one connection may hold.
const MAX_SUBSCRIPTIONS: usize = 32;
/// Frames queued for one client before it counts as too slow…
const OUTBOUND_QUEUE: usize = 1000;
/// …or bytes, whichever comes first (memory per client stays bounded).
const OUTBOUND_BYTES: usize = 8 * 1024 * 1024;
/// How often a connection re-checks that its session or token is still live.
const RECHECK: Duration = Duration::from_secs(5);
/// Close code for "too slow, try again later" (RFC 6455 1013).
pub const CLOSE_TOO_SLOW: u16 = 1013;
/// Close code for "your credential expired or was revoked; reconnect with a fresh one".
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code for "the vault was sealed".
pub const CLOSE_SEALED: u16 = 4503;

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

/// What keeps the connection authorized, re-checked while it is open.
enum Liveness {
    /// A user's access token: valid until `exp` (Unix seconds) while its session is live.
    Session { session: String, exp: i64 },
    /// An API token, by hash: valid while it is not revoked and not expired.
    Token { hash: [u8; 32] },
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
    principal: Principal,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::Forbidden { role: "cross-site page", action: "open" });
    }
    let token = crate::auth::bearer_in(&headers).ok_or(ApiError::Unauthorized)?;
    let liveness = match &principal.credential {
        Credential::Session { session } => {
            let claims =
                state.node.auth.verify_signature(token).map_err(|_| ApiError::Unauthorized)?;
            Liveness::Session { session: session.clone(), exp: claims.exp }
        }
        Credential::ApiToken { .. } => Liveness::Token { hash: kai_crypto::token::hash(token) },
    };
    let actor = principal.actor();
    Ok(ws
        .protocols(["kai"])
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(state, actor, liveness, socket)))
}

/// `None` while the credential holds; else the close code and reason.
async fn recheck(state: &AppState, liveness: &Liveness) -> Option<(u16, &'static str)> {
    if !state.node.is_unsealed() {
        return Some((CLOSE_SEALED, "the vault was sealed; unlock it and reconnect"));
    }
    let now = chrono::Utc::now();
    let live = match liveness {
        Liveness::Session { session, exp } => {
            *exp > now.timestamp()
                && match state.node.store.session(session).await {
                    Ok(Some(s)) => s.revoked_at_us.is_none(),
                    Ok(None) => false,
                    Err(_) => true,
                }
        }
        Liveness::Token { hash } => match state.node.store.token_by_hash(hash).await {
            Ok(Some(t)) => t.expires_at_us.is_none_or(|e| e > now.timestamp_micros()),
            Ok(None) => false,
            // A store hiccup does not end the stream; the next check decides.
            Err(_) => true,
        },
    };
    (!live).then_some((
        CLOSE_UNAUTHORIZED,
        "credential expired or revoked; reconnect with a fresh token",
    ))
}

fn expiry(liveness: &Liveness) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match liveness {
        Liveness::Session { exp, .. } => {
            let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0) as u64;
            now + Duration::from_secs(left)
        }
        // API tokens' expiry is checked on every recheck.
        Liveness::Token { .. } => now + Duration::from_secs(365 * 24 * 3600),
    }
}

async fn subscribe(
    state: &AppState,
    id: String,
    filter: EventFilter,
    after: Option<u64>,
    actor: &str,
    out: &mpsc::Sender<Outbound>,
    queued: &Arc<AtomicUsize>,
) -> (Value, Option<tokio::task::JoinHandle<()>>) {
    // A subscription without `after` starts at the log's end, and says so: the client can
    // resume from there after a reconnect without missing what happened in between.
    let after = match after {
        Some(a) => a,
        None => match state.node.bus.last_offset().await {
            Ok(a) => a,
            Err(e) => return (json!({"op": "error", "id": id, "message": e.to_string()}), None),
        },
    };
    match state.node.bus.subscribe(filter, Some(after), DeliveryPolicy::DropSlow).await {
        Ok(sub) => {
            let task = tokio::spawn(forward(
                state.ws_frames.clone(),
                id.clone(),
                actor.to_owned(),
                sub,
                out.clone(),
                queued.clone(),
            ));
            (json!({"op": "subscribed", "id": id, "after": after}), Some(task))
        }
        Err(e) => (json!({"op": "error", "id": id, "message": e.to_string()}), None),
    }
}

async fn serve(state: AppState, actor: String, liveness: Liveness, mut socket: WebSocket) {
    let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(OUTBOUND_QUEUE);
    let queued = Arc::new(AtomicUsize::new(0));
    let mut subs: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
    let expires = tokio::time::sleep_until(expiry(&liveness));
    tokio::pin!(expires);
    let close = loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break None };
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => break None,
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
                        let (reply, task) = subscribe(&state, id.clone(), filter, after, &actor, &out_tx, &queued).await;
                        if let Some(task) = task { subs.insert(id, task); }
                        reply
                    }
                };
                if out_tx.try_send(Outbound::Frame(reply.to_string())).is_err() {
                    break Some((CLOSE_TOO_SLOW, "client too slow; reconnect and resume after your last offset"));
                }
            }
            out = out_rx.recv() => match write_ready(&mut socket, out, &mut out_rx, &queued).await {
                Written::Ok => {}
                Written::Gone => break None,
                Written::TooSlow => {
                    break Some((CLOSE_TOO_SLOW, "client too slow; reconnect and resume after your last offset"));
                }
            },
            _ = tick.tick() => {
                if let Some(reason) = recheck(&state, &liveness).await { break Some(reason); }
            }
            () = &mut expires => {
                break Some((CLOSE_UNAUTHORIZED, "access token expired; reconnect with a fresh token"));
            }
        }
    };
    for (_, task) in subs {
        task.abort();
    }
    if let Some((code, reason)) = close {
        let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    }
}

/// What writing the outbound queue came to.
enum Written {
    Ok,
    /// The client went away.
    Gone,
    /// A forwarder found the queue full (or the queue closed).
    TooSlow,
}

/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Writes `first` and every frame already queued behind it (up to [`WRITE_BATCH`]), then
/// flushes once: a busy connection pays one socket write per batch instead of one per event,
/// so delivery keeps up under load instead of falling behind one syscall at a time.
async fn write_ready(
    socket: &mut WebSocket,
    first: Option<Outbound>,
    rx: &mut mpsc::Receiver<Outbound>,
    queued: &AtomicUsize,
) -> Written {
    let mut next = first;
    let mut written = 0;
    loop {
        match next {
            Some(Outbound::Frame(text)) => {
                queued.fetch_sub(text.len().min(queued.load(Ordering::Relaxed)), Ordering::Relaxed);
                if socket.feed(Message::Text(text.into())).await.is_err() {
                    return Written::Gone;
                }
            }
            Some(Outbound::TooSlow) | None => return Written::TooSlow,
        }
        written += 1;
        if written == WRITE_BATCH {
            break;
        }
        match rx.try_recv() {
            Ok(o) => next = Some(o),
            Err(_) => break,
        }
    }
    if socket.flush().await.is_err() { Written::Gone } else { Written::Ok }
}

/// Recently serialized events by bus offset, shared by every connection of one node that
/// forwards the same event: with many subscribers an event is converted and serialized once,
/// not once each.
pub struct FrameCache(Vec<std::sync::Mutex<Option<Frame>>>);

/// A bus offset and that event's JSON.
type Frame = (u64, Arc<str>);

const FRAME_SLOTS: usize = 256;

impl Default for FrameCache {
    fn default() -> Self {
        Self((0..FRAME_SLOTS).map(|_| std::sync::Mutex::new(None)).collect())
    }
}

impl FrameCache {
    /// The event's JSON (the seed 001 envelope), from the cache when another connection
    /// already serialized it.
    fn event_json(&self, event: &kai_core::Envelope) -> Arc<str> {
        let serialize = |e: &kai_core::Envelope| -> Arc<str> {
            serde_json::to_string(&crate::api::Event::from(e.clone())).unwrap_or_default().into()
        };
        let Some(offset) = event.offset else { return serialize(event) };
        let slot = &self.0[(offset % FRAME_SLOTS as u64) as usize];
        if let Some((o, text)) = &*slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            && *o == offset
        {
            return text.clone();
        }
        let text = serialize(event);
        *slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((offset, text.clone()));
        text
    }
}

async fn forward(
    frames: Arc<FrameCache>,
    id: String,
    actor: String,
    mut sub: kai_runtime::Subscription,
    out: mpsc::Sender<Outbound>,
    queued: Arc<AtomicUsize>,
) {
    let sub_json = serde_json::to_string(&id).unwrap_or_default();
    while let Some(event) = sub.recv_shared().await {
        if !super::events::visible_to(&actor, &event) {
            continue;
        }
        let frame =
            format!(r#"{{"op":"event","sub":{sub_json},"event":{}}}"#, frames.event_json(&event));
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
