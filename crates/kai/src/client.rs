//! Talking to the node running on a data directory: find it through `<data>/run/node.json`,
//! authenticate with `<data>/admin.token`, and turn problem+json errors into readable ones.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::paths::DataDir;

/// Written by `kai serve` once it listens; removed when it stops.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunFile {
    pub pid: u32,
    pub addr: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// A client for the running node.
pub struct NodeClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// True when a `kai serve` holds the data directory's lock.
pub fn node_running(data: &DataDir) -> bool {
    match std::fs::File::open(data.lock_file()) {
        Ok(f) => f.try_lock().is_err(),
        Err(_) => false,
    }
}

impl NodeClient {
    /// The running node's client, or `None` when no node runs on `data`.
    pub fn connect(data: &DataDir) -> anyhow::Result<Option<Self>> {
        if !node_running(data) {
            return Ok(None);
        }
        let run: RunFile = serde_json::from_slice(
            &std::fs::read(data.run_file()).context("the running node has no run file yet")?,
        )?;
        let token = std::fs::read_to_string(data.admin_token_file()).with_context(|| {
            format!("cannot read the admin token {}", data.admin_token_file().display())
        })?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        Ok(Some(Self {
            base: format!("http://{}", run.addr),
            token: token.trim().to_owned(),
            http,
        }))
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let detail = body["detail"].as_str().unwrap_or("no detail");
        bail!("the node answered {status}: {detail}")
    }

    /// `http://ADDR` of the node.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An authenticated request builder (streaming uploads and downloads), without the
    /// client-wide timeout.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(24 * 3600))
    }

    /// The response if it succeeded, else the node's problem detail as the error.
    pub async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        bail!("the node answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(body)).await
    }

    /// A request whose success has no body (204).
    async fn send_empty(&self, req: reqwest::RequestBuilder) -> anyhow::Result<()> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        bail!("the node answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"))
    }

    pub async fn post_empty(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<()> {
        self.send_empty(self.http.post(format!("{}{path}", self.base)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send_empty(self.http.delete(format!("{}{path}", self.base))).await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(body)).await
    }

    /// POSTs a JSON Lines body (imports).
    pub async fn post_ndjson<T: DeserializeOwned>(
        &self,
        path: &str,
        body: String,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        self.send(req).await
    }

    /// A GET whose body is text (exports).
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.text().await?);
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        bail!("the node answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"))
    }

    /// POSTs with `Accept: text/event-stream` and calls `on_event(event, data)` for each
    /// server-sent event until the stream ends.
    pub async fn post_sse(
        &self,
        path: &str,
        body: &serde_json::Value,
        mut on_event: impl FnMut(&str, serde_json::Value),
    ) -> anyhow::Result<()> {
        let mut resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(3600))
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            bail!("the node answered {status}: {}", body["detail"].as_str().unwrap_or("no detail"));
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = buf.drain(..end + 2).collect();
                let block = String::from_utf8_lossy(&block);
                let mut event = "message";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event:") {
                        event = e.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if let Ok(value) = serde_json::from_str(&data) {
                    on_event(event, value);
                }
            }
        }
        Ok(())
    }
}
