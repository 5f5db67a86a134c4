//! Cross-cutting request handling: per-route metrics, the live-configurable request timeout,
//! security headers and the panic guard.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use kai_runtime::metrics as m;

use crate::AppState;
use crate::error::problem;

/// Counts requests and records latency per method, matched route and status.
pub async fn record_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!(m::HTTP_LATENCY, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Answers 408 when a request outlives `server.request_timeout_secs` (read per request, so a
/// hot reload changes it at once).
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let secs = state.config.borrow().config.server.request_timeout_secs;
    match tokio::time::timeout(Duration::from_secs(secs), next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => problem(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {secs} s"),
        ),
    }
}

/// Headers every API response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Turns the body-limit rejection (plain text from tower-http) into a problem response.
pub async fn problem_for_plain_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let is_problem = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/problem+json")
            || v.as_bytes().starts_with(b"application/json")
    });
    let status = resp.status();
    if is_problem || status.is_success() || status.is_redirection() || status.is_informational() {
        return resp;
    }
    let (code, detail) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "the request body is larger than the node accepts".to_owned())
        }
        StatusCode::NOT_FOUND => {
            ("not_found", "no such route; see /openapi.json for the API".to_owned())
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this route does not accept that method".to_owned())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("unsupported_media_type", "send the body as application/json".to_owned())
        }
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            let body = axum::body::to_bytes(resp.into_body(), 64 * 1024).await.unwrap_or_default();
            ("bad_request", String::from_utf8_lossy(&body).into_owned())
        }
        other => ("error", other.canonical_reason().unwrap_or("error").to_owned()),
    };
    let status =
        if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
    problem(status, code, detail)
}

/// The response for a panicking handler: a plain 500 problem; the panic is logged, not shown.
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("?");
    tracing::error!(panic = msg, "handler panicked");
    problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something went wrong on the node; the cause is in its log".into(),
    )
}
