//! The one request handler every fake shares: record the request, count it in flight, pick the
//! scripted reply (or the endpoint's default), wait the configured latency, and have the dialect
//! render it, streaming frames with the configured delay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::script::{Turn, count_words, words};
use super::{
    Endpoint, FAKE_CHAT_MODEL, FakeError, FakeToolCall, RecordedRequest, Reply, Route, Shared,
};

/// Counts a response in flight until it is sent to the end (completed) or dropped (aborted).
struct InFlight {
    shared: Arc<Shared>,
    finished: bool,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        shared.counters.send_modify(|c| c.requests += 1);
        Self { shared: shared.clone(), finished: false }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let finished = self.finished;
        self.shared.counters.send_modify(
            |c| {
                if finished { c.completed += 1 } else { c.aborted += 1 }
            },
        );
    }
}

pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let guard = InFlight::enter(&shared);
    // Shared with the request log rather than copied into it (benchmarks send thousands).
    let json: Arc<Value> = Arc::new(serde_json::from_slice(&body).unwrap_or(Value::Null));
    let path =
        uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let dialect = shared.dialect;
    let (reply, route, latency, chunk_delay, models, dims) = {
        let mut s = shared.settings();
        s.log.push(RecordedRequest {
            at: Instant::now(),
            method: method.to_string(),
            path,
            headers: headers.clone(),
            body: json.clone(),
        });
        let route = dialect.route(&method, uri.path(), &json);
        let presented = dialect.presented_key(&headers);
        let reply = match (&route, &s.required_key) {
            (None, _) => Reply::Error(FakeError {
                status: Some(404),
                ..FakeError::bad_request(&format!("no route for {method} {}", uri.path()))
            }),
            (Some(_), Some(key)) if presented.as_deref() != Some(key.as_str()) => {
                Reply::Error(FakeError::auth(presented.as_deref().unwrap_or("")))
            }
            (Some(route), _) => {
                let queued = s.queues.get_mut(&route.endpoint).and_then(VecDeque::pop_front);
                let responded = || s.responder.as_ref().and_then(|r| r(route.endpoint, &json));
                queued
                    .or_else(responded)
                    .or_else(|| s.defaults.get(&route.endpoint).cloned())
                    .unwrap_or(match route.endpoint {
                        Endpoint::Chat => Reply::Echo,
                        Endpoint::Embed => Reply::Embeddings,
                        Endpoint::Models => Reply::Models,
                    })
            }
        };
        (reply, route, s.latency, s.chunk_delay, s.models.clone(), s.dims)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let route = route.unwrap_or(Route::new(Endpoint::Models, false));
    let model = route
        .model
        .clone()
        .or_else(|| json.get("model").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| FAKE_CHAT_MODEL.to_owned());
    let turn = |pieces: Vec<String>, calls: Vec<FakeToolCall>| {
        let completion =
            (pieces.len() + calls.iter().map(|c| c.fragments().len() + 1).sum::<usize>()) as u64;
        Turn {
            model: model.clone(),
            pieces,
            calls,
            prompt_tokens: count_words(&json),
            completion_tokens: completion,
        }
    };
    let turn = match reply {
        Reply::Error(error) => {
            let (status, body) = dialect.error(&error);
            let mut response = json_response(status, &body, guard);
            if let Some(after) = error.retry_after.and_then(|a| HeaderValue::from_str(&a).ok()) {
                response.headers_mut().insert(header::RETRY_AFTER, after);
            }
            return response;
        }
        Reply::Raw { status, content_type, body } => {
            return body_response(status, &content_type, vec![body], chunk_delay, guard);
        }
        Reply::Models => return json_response(200, &dialect.models(&models), guard),
        Reply::Embeddings => {
            return json_response(200, &dialect.embeddings(&route, &json, dims), guard);
        }
        Reply::Echo => turn(words(&format!("echo: {}", dialect.last_user_text(&json))), Vec::new()),
        Reply::Text(text) => turn(words(&text), Vec::new()),
        Reply::Chunks(pieces) => turn(pieces, Vec::new()),
        Reply::ToolCalls(calls) => turn(Vec::new(), calls),
    };
    if route.stream {
        let (content_type, frames) = dialect.chat_stream(&turn);
        body_response(200, content_type, frames, chunk_delay, guard)
    } else {
        json_response(200, &dialect.chat(&turn), guard)
    }
}

fn json_response(status: u16, body: &Value, guard: InFlight) -> Response {
    body_response(status, "application/json", vec![body.to_string()], Duration::ZERO, guard)
}

/// A response whose body is sent frame by frame with `delay` between frames. The guard finishes
/// after the last frame; if the client goes away first, the body is dropped and the guard
/// counts the request as aborted.
fn body_response(
    status: u16,
    content_type: &str,
    frames: Vec<String>,
    delay: Duration,
    guard: InFlight,
) -> Response {
    let state = (frames.into_iter(), Some(guard), true);
    let stream = futures::stream::unfold(state, move |(mut frames, mut guard, first)| async move {
        let Some(frame) = frames.next() else {
            if let Some(mut g) = guard.take() {
                g.finished = true;
            }
            return None;
        };
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(frame)), (frames, guard, false)))
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type.to_owned())], Body::from_stream(stream))
        .into_response()
}

/// Formats one SSE event.
pub(crate) fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}
