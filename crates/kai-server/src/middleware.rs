//! Cross-cutting request handling: per-route metrics, the live-configurable request timeout,
//! security headers and the panic guard.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use kai_runtime::metrics as m;
use tower_http::request_id::{MakeRequestId, RequestId};

use crate::AppState;
use crate::error::problem;

/// Metric handles per (method, route, status), registered once: building label sets and
/// looking them up in the registry on every request cost more than the request itself.
type SeriesKey = (axum::http::Method, Arc<str>, u16);
type Series = (metrics::Counter, metrics::Histogram);
static SERIES: LazyLock<RwLock<HashMap<SeriesKey, Series>>> = LazyLock::new(Default::default);

fn series(method: &axum::http::Method, route: &Arc<str>, status: u16) -> Series {
    let key = (method.clone(), route.clone(), status);
    if let Some(s) = SERIES.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return s.clone();
    }
    let (m_label, r_label) = (method.as_str().to_owned(), route.to_string());
    let counter = metrics::counter!(m::HTTP_REQUESTS, "method" => m_label.clone(), "route" => r_label.clone(), "status" => status.to_string());
    let histogram = metrics::histogram!(m::HTTP_LATENCY, "method" => m_label, "route" => r_label);
    SERIES
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_insert((counter, histogram))
        .clone()
}

/// Counts requests and records latency per method, matched route and status.
pub async fn record_metrics(req: Request, next: Next) -> Response {
    static UNMATCHED: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("unmatched"));
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.clone(), |p| Arc::from(p.as_str()));
    let resp = next.run(req).await;
    let (counter, histogram) = series(&method, &route, resp.status().as_u16());
    counter.increment(1);
    histogram.record(start.elapsed().as_secs_f64());
    resp
}

/// Request ids `<process prefix>-<counter>`: unique per process run, no syscall per request
/// (a UUIDv4 costs a `getrandom` call each).
#[derive(Clone)]
pub struct SequentialRequestId {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl Default for SequentialRequestId {
    fn default() -> Self {
        let prefix = uuid::Uuid::new_v4().as_u128() as u32;
        Self { prefix: Arc::from(format!("{prefix:08x}")), next: Arc::new(AtomicU64::new(1)) }
    }
}

impl MakeRequestId for SequentialRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix)).ok().map(RequestId::new)
    }
}

fn is_upload(req: &Request) -> bool {
    req.extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| crate::routes::artifacts::UPLOAD_ROUTES.contains(&p.as_str()))
}

/// Answers 408 when a request outlives `server.request_timeout_secs` (uploads:
/// `artifacts.upload_timeout_secs`; read per request, so a hot reload changes it at once).
pub async fn timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let secs = {
        let config = &state.config.borrow().config;
        if is_upload(&req) {
            config.artifacts.upload_timeout_secs
        } else {
            config.server.request_timeout_secs
        }
    };
    match tokio::time::timeout(Duration::from_secs(secs), next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => problem(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!("the request took longer than {secs} s"),
        ),
    }
}

/// Bounds request bodies at `server.body_limit_bytes`: a larger `Content-Length` is 413 at
/// once, and a body that grows past it fails its reader (axum's extractors answer 413).
/// Upload routes are exempt: they stream into a staging file under their own limit
/// (`artifacts.max_upload_bytes`) and answer 413 themselves.
pub async fn body_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_upload(&req) {
        return next.run(req).await;
    }
    let limit = state.config.borrow().config.server.body_limit_bytes as usize;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        );
    }
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// Headers every API response carries.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // The dashboard's files and routes serving stored contents (with `sandbox`) set their own
    // (still strict) policy; other API responses get none at all.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
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
