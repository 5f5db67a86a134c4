//! A fake Qdrant server for tests (feature `fake-qdrant`): a real axum HTTP server on
//! `127.0.0.1:0` that speaks the subset of Qdrant's REST API the client uses, with Qdrant's
//! JSON shapes (`{"result": …, "status": "ok", "time": …}`, errors as
//! `{"status": {"error": "…"}, "time": …}`), `api-key` authentication, exact cosine search,
//! `has_id` filters and scroll pagination. Qdrant itself cannot run on the build machine.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Collection {
    dim: usize,
    points: BTreeMap<u64, Vec<f32>>,
}

#[derive(Default)]
struct Inner {
    collections: HashMap<String, Collection>,
    required_key: Option<String>,
    /// `METHOD path` of every request, in order.
    log: Vec<String>,
    /// Answer every request with a 500 while set.
    failing: bool,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake Qdrant. Dropping it stops the server.
pub struct FakeQdrant {
    addr: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
}

fn ok(result: Value) -> Response {
    Json(json!({"result": result, "status": "ok", "time": 0.000_1})).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"status": {"error": message}, "time": 0.0}))).into_response()
}

fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

fn vector_of(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?.iter().map(|x| x.as_f64().map(|f| f as f32)).collect()
}

impl FakeQdrant {
    /// Starts the server on an OS-assigned port.
    pub async fn start() -> std::io::Result<Self> {
        let shared: Shared = Arc::default();
        let app = axum::Router::new()
            .route("/collections/{name}", get(info).put(create).delete(drop_collection))
            .route("/collections/{name}/points", put(upsert))
            .route("/collections/{name}/points/delete", post(delete))
            .route("/collections/{name}/points/search", post(search))
            .route("/collections/{name}/points/scroll", post(scroll))
            .route("/collections/{name}/points/count", post(count))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned()).await;
        });
        Ok(Self { addr, shared, stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests without this `api-key` header get 401.
    pub fn require_key(&self, key: Option<&str>) {
        lock(&self.shared).required_key = key.map(str::to_owned);
    }

    /// While set, every request is answered 500.
    pub fn set_failing(&self, failing: bool) {
        lock(&self.shared).failing = failing;
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).log.clone()
    }

    /// Point ids stored in `collection`, ascending.
    pub fn point_ids(&self, collection: &str) -> Vec<u64> {
        lock(&self.shared)
            .collections
            .get(collection)
            .map(|c| c.points.keys().copied().collect())
            .unwrap_or_default()
    }
}

impl Drop for FakeQdrant {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn gate(
    State(s): State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (required, failing) = {
        let mut g = lock(&s);
        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
        g.log.push(format!("{} {path}", req.method()));
        (g.required_key.clone(), g.failing)
    };
    if failing {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Service internal error: injected");
    }
    if let Some(key) = required {
        let given = req.headers().get("api-key").and_then(|v| v.to_str().ok());
        if given != Some(key.as_str()) {
            return error(StatusCode::UNAUTHORIZED, "Invalid api-key");
        }
    }
    next.run(req).await
}

fn missing(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("Not found: Collection `{name}` doesn't exist!"))
}

async fn info(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let g = lock(&s);
    let Some(c) = g.collections.get(&name) else { return missing(&name) };
    ok(json!({
        "status": "green",
        "optimizer_status": "ok",
        "points_count": c.points.len(),
        "segments_count": 1,
        "config": {"params": {"vectors": {"size": c.dim, "distance": "Cosine"}}},
        "payload_schema": {},
    }))
}

async fn create(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let size = body["vectors"]["size"].as_u64().unwrap_or(0) as usize;
    if size == 0 || body["vectors"]["distance"] != "Cosine" {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Format error in JSON body: vectors");
    }
    let mut g = lock(&s);
    if g.collections.contains_key(&name) {
        return error(
            StatusCode::CONFLICT,
            &format!("Wrong input: Collection `{name}` already exists!"),
        );
    }
    g.collections.insert(name, Collection { dim: size, points: BTreeMap::new() });
    ok(json!(true))
}

async fn drop_collection(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    ok(json!(lock(&s).collections.remove(&name).is_some()))
}

fn completed() -> Response {
    ok(json!({"operation_id": 0, "status": "completed"}))
}

async fn upsert(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut g = lock(&s);
    let Some(c) = g.collections.get_mut(&name) else { return missing(&name) };
    let Some(points) = body["points"].as_array() else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Format error in JSON body: points");
    };
    let mut staged = Vec::with_capacity(points.len());
    for p in points {
        let (Some(id), Some(v)) = (p["id"].as_u64(), vector_of(&p["vector"])) else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "Format error in JSON body: point");
        };
        if v.len() != c.dim {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Wrong input: Vector dimension error: expected dim: {}, got {}",
                    c.dim,
                    v.len()
                ),
            );
        }
        let Some(u) = unit(&v) else {
            return error(StatusCode::BAD_REQUEST, "Wrong input: zero vector");
        };
        staged.push((id, u));
    }
    c.points.extend(staged);
    completed()
}

async fn delete(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut g = lock(&s);
    let Some(c) = g.collections.get_mut(&name) else { return missing(&name) };
    for id in body["points"].as_array().into_iter().flatten().filter_map(Value::as_u64) {
        c.points.remove(&id);
    }
    completed()
}

async fn search(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let g = lock(&s);
    let Some(c) = g.collections.get(&name) else { return missing(&name) };
    let Some(q) = vector_of(&body["vector"]).and_then(|v| unit(&v)) else {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "Format error in JSON body: vector");
    };
    if q.len() != c.dim {
        return error(StatusCode::BAD_REQUEST, "Wrong input: Vector dimension error");
    }
    let limit = body["limit"].as_u64().unwrap_or(10) as usize;
    let allowed: Option<Vec<u64>> = body["filter"]["must"].as_array().and_then(|must| {
        must.iter()
            .find_map(|c| c["has_id"].as_array())
            .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
    });
    let mut scored: Vec<(u64, f32)> = c
        .points
        .iter()
        .filter(|(id, _)| allowed.as_ref().is_none_or(|a| a.contains(id)))
        .map(|(id, v)| (*id, v.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(limit);
    ok(Value::Array(
        scored
            .into_iter()
            .map(|(id, score)| json!({"id": id, "version": 0, "score": score}))
            .collect(),
    ))
}

async fn scroll(
    State(s): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let g = lock(&s);
    let Some(c) = g.collections.get(&name) else { return missing(&name) };
    let limit = body["limit"].as_u64().unwrap_or(10).max(1) as usize;
    let from = body["offset"].as_u64().unwrap_or(0);
    let mut ids = c.points.range(from..).map(|(id, _)| *id);
    let page: Vec<u64> = ids.by_ref().take(limit).collect();
    let next = ids.next();
    ok(json!({
        "points": page.iter().map(|id| json!({"id": id, "payload": null})).collect::<Vec<_>>(),
        "next_page_offset": next,
    }))
}

async fn count(State(s): State<Shared>, Path(name): Path<String>) -> Response {
    let g = lock(&s);
    let Some(c) = g.collections.get(&name) else { return missing(&name) };
    ok(json!({"count": c.points.len()}))
}
