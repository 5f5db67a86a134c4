//! A [`VectorIndex`] on a Qdrant server, over its REST API (feature `qdrant`): one collection
//! with cosine distance, points keyed by the caller's `u64` ids and carrying no payload (the
//! records stay in the node's store; Qdrant only ever sees vectors and ids).
//!
//! Endpoints used: `GET`/`PUT /collections/{c}`, `PUT /collections/{c}/points?wait=true`,
//! `POST /collections/{c}/points/delete?wait=true`, `POST /collections/{c}/points/search`,
//! `POST /collections/{c}/points/scroll` and `POST /collections/{c}/points/count`, with the
//! API key in the `api-key` header. Every write waits for Qdrant to apply it, so an `Ok` means
//! the point is searchable.
//!
//! The trait is synchronous; this client runs its async requests on the given tokio runtime
//! with `Handle::block_on`, so it must be called from a blocking thread (`spawn_blocking`),
//! never from an async task. Qdrant cannot run on the build machine: the tests use the fake
//! server in [`fake`] (feature `fake-qdrant`), which speaks the same wire format.
//!
//! Id filters: an arbitrary `Fn(u64) -> bool` cannot be sent to Qdrant, so a filtered search
//! asks for more candidates than wanted (doubling up to [`MAX_FETCH`]) and filters them here;
//! filtered-out ids are never returned. [`VectorIndex::search_ids`] sends a `has_id` filter.

#[cfg(feature = "fake-qdrant")]
pub mod fake;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::distance::normalize;
use crate::error::{Error, Result};
use crate::hnsw::{Hit, SearchParams, VectorIndex};

/// Most candidates one filtered search fetches.
pub const MAX_FETCH: usize = 4096;
/// Points per upsert request.
const UPSERT_BATCH: usize = 256;

/// Where the collection lives.
#[derive(Clone, Debug)]
pub struct QdrantConfig {
    /// REST endpoint, e.g. `http://127.0.0.1:6333`.
    pub url: String,
    pub collection: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

/// The Qdrant-backed index.
pub struct QdrantIndex {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
    base: String,
    api_key: Option<String>,
    dim: usize,
    count: usize,
}

#[derive(Deserialize)]
struct Envelope<T> {
    result: T,
}

#[derive(Deserialize)]
struct ScoredPoint {
    id: Value,
    score: f32,
}

#[derive(Deserialize)]
struct ScrollPage {
    points: Vec<ScrollPoint>,
    next_page_offset: Option<Value>,
}

#[derive(Deserialize)]
struct ScrollPoint {
    id: Value,
}

#[derive(Deserialize)]
struct Count {
    count: usize,
}

fn remote(message: impl Into<String>) -> Error {
    Error::Remote { backend: "qdrant", message: message.into() }
}

fn point_id(v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| remote(format!("point id {v} is not an unsigned integer")))
}

impl QdrantIndex {
    /// Connects, and creates the collection (cosine, `dim`) if it does not exist. A collection
    /// of another dimension is an error: point the node at another collection or drop it.
    pub fn open(
        config: &QdrantConfig,
        dim: usize,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self> {
        if !(1..=65_536).contains(&dim) {
            return Err(Error::param("dim", format!("{dim} is outside 1..=65536")));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| remote(format!("cannot build the HTTP client: {e}")))?;
        let mut index = Self {
            http,
            runtime,
            base: format!("{}/collections/{}", config.url.trim_end_matches('/'), config.collection),
            api_key: config.api_key.clone(),
            dim,
            count: 0,
        };
        match index.call(reqwest::Method::GET, "", None)? {
            Some(info) => {
                let size = info["config"]["params"]["vectors"]["size"].as_u64();
                if size != Some(dim as u64) {
                    return Err(Error::DimensionMismatch {
                        expected: dim,
                        got: size.unwrap_or(0) as usize,
                    });
                }
            }
            None => {
                let body = json!({"vectors": {"size": dim, "distance": "Cosine"}});
                index
                    .call(reqwest::Method::PUT, "", Some(body))?
                    .ok_or_else(|| remote("creating the collection answered 404"))?;
            }
        }
        index.refresh_count()?;
        Ok(index)
    }

    /// One request; `Ok(None)` on 404, the `result` field otherwise.
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Option<Value>> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(key) = &self.api_key {
            req = req.header("api-key", key);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.runtime.block_on(async move {
            let resp = req.send().await.map_err(|e| remote(format!("request failed: {e}")))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let text = resp.text().await.map_err(|e| remote(format!("reading the answer: {e}")))?;
            if !status.is_success() {
                let detail: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let msg = detail["status"]["error"].as_str().unwrap_or("no error message");
                return Err(remote(format!("HTTP {status}: {msg}")));
            }
            let env: Envelope<Value> = serde_json::from_str(&text)
                .map_err(|e| remote(format!("unexpected answer: {e}")))?;
            Ok(Some(env.result))
        })
    }

    fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: Value) -> Result<T> {
        let result = self
            .call(reqwest::Method::POST, path, Some(body))?
            .ok_or_else(|| remote("the collection does not exist (was it deleted?)"))?;
        serde_json::from_value(result).map_err(|e| remote(format!("unexpected answer: {e}")))
    }

    fn refresh_count(&mut self) -> Result<()> {
        let c: Count = self.post("/points/count", json!({"exact": true}))?;
        self.count = c.count;
        Ok(())
    }

    fn unit(&self, v: &[f32]) -> Result<Vec<f32>> {
        if v.len() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: v.len() });
        }
        let mut out = v.to_vec();
        normalize(&mut out)?;
        Ok(out)
    }

    fn hits(points: Vec<ScoredPoint>) -> Result<Vec<Hit>> {
        points.iter().map(|p| Ok(Hit { id: point_id(&p.id)?, score: p.score })).collect()
    }
}

impl VectorIndex for QdrantIndex {
    fn dim(&self) -> usize {
        self.dim
    }

    /// Points in the collection as of the last write from this client.
    fn len(&self) -> usize {
        self.count
    }

    fn upsert(&mut self, id: u64, vector: &[f32]) -> Result<()> {
        self.upsert_batch(&[(id, vector.to_vec())])
    }

    fn upsert_batch(&mut self, records: &[(u64, Vec<f32>)]) -> Result<()> {
        let mut points = Vec::with_capacity(records.len());
        for (id, v) in records {
            points.push(json!({"id": id, "vector": self.unit(v)?}));
        }
        for chunk in points.chunks(UPSERT_BATCH) {
            self.call(reqwest::Method::PUT, "/points?wait=true", Some(json!({"points": chunk})))?
                .ok_or_else(|| remote("the collection does not exist (was it deleted?)"))?;
        }
        self.refresh_count()
    }

    fn remove(&mut self, id: u64) -> Result<bool> {
        let before = self.count;
        let _: Value = self.post("/points/delete?wait=true", json!({"points": [id]}))?;
        self.refresh_count()?;
        Ok(self.count < before)
    }

    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>> {
        let q = self.unit(query)?;
        if params.k == 0 {
            return Ok(Vec::new());
        }
        let ef = params.ef.max(params.k);
        let mut fetch = if filter.is_some() { (params.k * 4).max(64) } else { params.k };
        loop {
            let fetch_now = fetch.min(MAX_FETCH);
            let body = json!({
                "vector": q,
                "limit": fetch_now,
                "with_payload": false,
                "params": {"hnsw_ef": ef.max(fetch_now)},
            });
            let got: Vec<ScoredPoint> = self.post("/points/search", body)?;
            let complete = got.len() < fetch_now;
            let mut hits = Self::hits(got)?;
            if let Some(f) = filter {
                hits.retain(|h| f(h.id));
            }
            if hits.len() >= params.k || complete || fetch_now >= MAX_FETCH {
                hits.truncate(params.k);
                return Ok(hits);
            }
            fetch = fetch_now * 2;
        }
    }

    fn search_ids(&self, query: &[f32], k: usize, ids: &[u64]) -> Result<Vec<Hit>> {
        let q = self.unit(query)?;
        if k == 0 || ids.is_empty() {
            return Ok(Vec::new());
        }
        let body = json!({
            "vector": q,
            "limit": k,
            "with_payload": false,
            "filter": {"must": [{"has_id": ids}]},
            "params": {"exact": true},
        });
        Self::hits(self.post("/points/search", body)?)
    }

    fn all_ids(&self) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(self.count);
        let mut offset: Option<Value> = None;
        loop {
            let mut body = json!({"limit": 1000, "with_payload": false, "with_vector": false});
            if let Some(o) = &offset {
                body["offset"] = o.clone();
            }
            let page: ScrollPage = self.post("/points/scroll", body)?;
            for p in &page.points {
                out.push(point_id(&p.id)?);
            }
            match page.next_page_offset {
                Some(next) if !next.is_null() && !page.points.is_empty() => offset = Some(next),
                _ => return Ok(out),
            }
        }
    }
}

#[cfg(all(test, feature = "fake-qdrant"))]
mod tests;
