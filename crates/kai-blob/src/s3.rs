//! The S3-compatible backend: objects `<prefix><blake3 hex>` in one bucket, reached with
//! PutObject, GetObject (with `Range`), HeadObject, DeleteObject and ListObjectsV2 over
//! `reqwest`, every request signed with SigV4 ([`sigv4`]) and a SHA-256 payload hash (so the
//! store verifies what it received).
//!
//! Why hand-written: `aws-sdk-s3` adds 39 crates to this workspace including `aws-lc-sys` (a C
//! build we keep out), `object_store` with `aws` adds 10 including `aws-lc-sys` too, `rusty-s3`
//! adds 10 and signs query strings only; SigV4 over the HTTP client we already have is ~150 lines
//! pinned to Amazon's published examples. Uploads are single PutObjects (at most 5 GiB, which the
//! configuration enforces); no multipart.

pub mod sigv4;
mod xml;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{BlobError, BlobInfo, BlobResult, BlobStore, ByteRange, ByteStream, Digest, Staged};

/// Where the bucket is and who we are.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// `http(s)://host[:port]`, no path.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to every key (e.g. `kai/`).
    pub prefix: String,
    pub access_key_id: String,
    /// `endpoint/bucket/key` (MinIO and most self-hosted stores) instead of `bucket.endpoint/key`.
    pub path_style: bool,
    pub timeout: Duration,
}

/// Supplies the secret access key when a request is signed (the node reads it from the vault,
/// which may be sealed).
#[async_trait]
pub trait SecretKeySource: Send + Sync {
    async fn secret_key(&self) -> Result<SecretString, String>;
}

/// A secret key known up front (tests, benchmarks).
pub struct StaticSecret(pub SecretString);

#[async_trait]
impl SecretKeySource for StaticSecret {
    async fn secret_key(&self) -> Result<SecretString, String> {
        Ok(self.0.clone())
    }
}

/// Objects in an S3 bucket.
pub struct S3BlobStore {
    settings: S3Settings,
    secret: Arc<dyn SecretKeySource>,
    http: reqwest::Client,
    /// `scheme://authority` requests go to.
    base: String,
    /// The `Host` header value (authority).
    host: String,
}

fn unreachable(e: &reqwest::Error) -> BlobError {
    BlobError::Unreachable(e.to_string())
}

impl S3BlobStore {
    pub fn new(settings: S3Settings, secret: Arc<dyn SecretKeySource>) -> BlobResult<Self> {
        let url = reqwest::Url::parse(&settings.endpoint)
            .map_err(|e| BlobError::Io(format!("bad S3 endpoint: {e}")))?;
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(BlobError::Io("the S3 endpoint has no host".into())),
        };
        let host = if settings.path_style {
            authority
        } else {
            format!("{}.{authority}", settings.bucket)
        };
        let base = format!("{}://{host}", url.scheme());
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BlobError::Io(e.to_string()))?;
        Ok(Self { settings, secret, http, base, host })
    }

    fn key_of(&self, digest: &Digest) -> String {
        format!("{}{}", self.settings.prefix, digest.to_hex())
    }

    /// The decoded path of `key` (or of the bucket when `None`).
    fn path_of(&self, key: Option<&str>) -> String {
        match (self.settings.path_style, key) {
            (true, Some(k)) => format!("/{}/{k}", self.settings.bucket),
            (true, None) => format!("/{}", self.settings.bucket),
            (false, Some(k)) => format!("/{k}"),
            (false, None) => "/".to_owned(),
        }
    }

    /// Signs and sends one request.
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(String, String)],
        extra: &[(String, String)],
        payload_hash: &str,
        body: Option<reqwest::Body>,
    ) -> BlobResult<reqwest::Response> {
        let secret = self.secret.secret_key().await.map_err(BlobError::Credentials)?;
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let path = self.path_of(key);
        let mut headers = vec![
            ("host".to_owned(), self.host.clone()),
            ("x-amz-content-sha256".to_owned(), payload_hash.to_owned()),
            ("x-amz-date".to_owned(), amz_date.clone()),
        ];
        headers.extend(extra.iter().cloned());
        let input = sigv4::CanonicalInput {
            method: method.as_str(),
            path: &path,
            query,
            headers: &headers,
            payload_hash,
        };
        let scope = sigv4::Scope {
            access_key: &self.settings.access_key_id,
            amz_date: &amz_date,
            region: &self.settings.region,
            service: "s3",
        };
        let auth = sigv4::authorization(&input, &scope, secret.expose_secret());
        let mut q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                format!("{}={}", sigv4::uri_encode(k, false), sigv4::uri_encode(v, false))
            })
            .collect();
        q.sort();
        let mut url = format!("{}{}", self.base, sigv4::uri_encode(&path, true));
        if !q.is_empty() {
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let mut req = self.http.request(method, url).header("authorization", auth);
        for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        req.send().await.map_err(|e| unreachable(&e))
    }

    /// Turns an error answer into [`BlobError::Remote`] (S3's XML `<Error>` body).
    async fn failure(resp: reqwest::Response) -> BlobError {
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return BlobError::NotFound;
        }
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return BlobError::InvalidRange;
        }
        let body = resp.text().await.unwrap_or_default();
        let (code, message) = xml::error(&body);
        BlobError::Remote { status: status.as_u16(), code, message }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, staged: Staged) -> BlobResult<bool> {
        if self.size(&staged.digest).await?.is_some() {
            return Ok(false);
        }
        let key = self.key_of(&staged.digest);
        let hash = crate::fs::sha256_file(staged.path().to_owned()).await?;
        let file = tokio::fs::File::open(staged.path()).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        let extra = [
            ("content-length".to_owned(), staged.size.to_string()),
            ("content-type".to_owned(), "application/octet-stream".to_owned()),
        ];
        let resp = self.send(Method::PUT, Some(&key), &[], &extra, &hash, Some(body)).await?;
        if !resp.status().is_success() {
            return Err(Self::failure(resp).await);
        }
        drop(staged);
        Ok(true)
    }

    async fn size(&self, digest: &Digest) -> BlobResult<Option<u64>> {
        let key = self.key_of(digest);
        let resp = self.send(Method::HEAD, Some(&key), &[], &[], sigv4::EMPTY_SHA256, None).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(Self::failure(resp).await),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> BlobResult<ByteStream> {
        let key = self.key_of(digest);
        let extra: Vec<(String, String)> = range
            .map(|r| vec![("range".to_owned(), format!("bytes={}-{}", r.start, r.end))])
            .unwrap_or_default();
        let resp =
            self.send(Method::GET, Some(&key), &[], &extra, sigv4::EMPTY_SHA256, None).await?;
        let expected = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        if resp.status() != expected {
            return Err(Self::failure(resp).await);
        }
        Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
    }

    async fn delete(&self, digest: &Digest) -> BlobResult<()> {
        let key = self.key_of(digest);
        let resp =
            self.send(Method::DELETE, Some(&key), &[], &[], sigv4::EMPTY_SHA256, None).await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::failure(resp).await)
        }
    }

    async fn list(&self, after: Option<Digest>, limit: usize) -> BlobResult<Vec<BlobInfo>> {
        let prefix = &self.settings.prefix;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        while out.len() < limit {
            let mut query = vec![
                ("list-type".to_owned(), "2".to_owned()),
                ("max-keys".to_owned(), (limit - out.len()).min(1000).to_string()),
                ("prefix".to_owned(), prefix.clone()),
            ];
            match (&token, after) {
                (Some(t), _) => query.push(("continuation-token".to_owned(), t.clone())),
                (None, Some(a)) => query.push(("start-after".to_owned(), self.key_of(&a))),
                (None, None) => {}
            }
            let resp = self.send(Method::GET, None, &query, &[], sigv4::EMPTY_SHA256, None).await?;
            if !resp.status().is_success() {
                return Err(Self::failure(resp).await);
            }
            let body = resp.text().await.map_err(|e| unreachable(&e))?;
            let page = xml::list_page(&body).map_err(BlobError::Io)?;
            out.extend(page.objects.into_iter().filter_map(|(key, size)| {
                let digest = Digest::parse(key.strip_prefix(prefix.as_str())?).ok()?;
                Some(BlobInfo { digest, size })
            }));
            match page.next {
                Some(next) if page.truncated => token = Some(next),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }
}
