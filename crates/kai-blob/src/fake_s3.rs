//! A fake S3 server for tests: a real HTTP server on `127.0.0.1:0` speaking S3's REST wire format
//! for one bucket, path-style: PutObject, GetObject (with `Range`, 206 and 416), HeadObject,
//! DeleteObject and ListObjectsV2 (prefix, start-after, max-keys, continuation tokens), errors as
//! S3's XML `<Error>` bodies. Every request must carry a valid SigV4 `Authorization` header for
//! the configured key: the signature, credential scope, clock skew (15 min) and the payload's
//! SHA-256 are all checked, as S3 does. Objects live in memory.
//!
//! Behind the `fake-s3` feature; never part of a production build.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::s3::sigv4;

/// One stored object.
#[derive(Debug, Clone)]
struct Object {
    data: Bytes,
    etag: String,
    modified: DateTime<Utc>,
}

struct Shared {
    bucket: String,
    access_key: String,
    secret_key: String,
    region: String,
    objects: Mutex<BTreeMap<String, Object>>,
    /// `METHOD op` of every request that passed authentication, in order.
    log: Mutex<Vec<String>>,
    rejected: AtomicUsize,
    fail_next: AtomicUsize,
}

impl Shared {
    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Object>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake S3 server; stops when dropped.
pub struct FakeS3 {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeS3 {
    /// Serves `bucket` for `access_key` / `secret_key` in `region`.
    pub async fn start(
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            bucket: bucket.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            region: region.to_owned(),
            objects: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
            fail_next: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self { addr, shared, _stop: stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The stored bytes of `key`.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.shared.objects().get(key).map(|o| o.data.clone())
    }

    /// Every stored key, in order.
    pub fn keys(&self) -> Vec<String> {
        self.shared.objects().keys().cloned().collect()
    }

    /// `METHOD op` of every authenticated request so far (`PUT PutObject`, `GET ListObjectsV2`…).
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Requests refused for a bad or missing signature.
    pub fn rejected(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }

    /// Answers the next `n` authenticated requests with 500 `InternalError`.
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message><RequestId>fake</RequestId></Error>",
        xml_escape(message)
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Decoded query pairs of `uri`.
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (sigv4::percent_decode(k), sigv4::percent_decode(v))
        })
        .collect()
}

/// Checks the SigV4 signature of a request; `Err` is the S3 error to answer.
fn authenticate(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let denied = |code: &str, msg: &str| Err(Box::new(s3_error(StatusCode::FORBIDDEN, code, msg)));
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization").and_then(sigv4::parse_authorization) else {
        return denied("AccessDenied", "missing or malformed SigV4 Authorization header");
    };
    if auth.access_key != s.access_key {
        return denied("InvalidAccessKeyId", "the access key id does not exist");
    }
    let Some(amz_date) = header("x-amz-date") else {
        return denied("AccessDenied", "x-amz-date is required");
    };
    let Ok(when) = NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ") else {
        return denied("AccessDenied", "x-amz-date is not YYYYMMDDTHHMMSSZ");
    };
    if (Utc::now() - when.and_utc()).num_seconds().abs() > 15 * 60 {
        return denied(
            "RequestTimeTooSkewed",
            "the difference between the request time and the server's time is too large",
        );
    }
    if auth.date != amz_date[..8] || auth.region != s.region || auth.service != "s3" {
        return denied("SignatureDoesNotMatch", "credential scope does not match the request");
    }
    for required in ["host", "x-amz-date", "x-amz-content-sha256"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return denied("AccessDenied", &format!("{required} must be signed"));
        }
    }
    let mut signed = Vec::new();
    for name in &auth.signed_headers {
        let Some(value) = header(name) else {
            return denied("SignatureDoesNotMatch", &format!("signed header {name} is missing"));
        };
        signed.push((name.clone(), value.to_owned()));
    }
    let payload_hash = header("x-amz-content-sha256").unwrap_or_default();
    if payload_hash != sigv4::UNSIGNED_PAYLOAD && payload_hash != sigv4::sha256_hex(body) {
        return Err(Box::new(s3_error(
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
            "the provided x-amz-content-sha256 does not match what was computed",
        )));
    }
    let path = sigv4::percent_decode(uri.path());
    let query = query_pairs(uri);
    let input = sigv4::CanonicalInput {
        method: method.as_str(),
        path: &path,
        query: &query,
        headers: &signed,
        payload_hash,
    };
    let scope =
        sigv4::Scope { access_key: &auth.access_key, amz_date, region: &s.region, service: "s3" };
    let expected = sigv4::signature(&input, &scope, &s.secret_key);
    if !sigv4::signatures_match(&expected, &auth.signature) {
        return denied(
            "SignatureDoesNotMatch",
            "the request signature we calculated does not match the signature you provided",
        );
    }
    Ok(())
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return s3_error(StatusCode::BAD_REQUEST, "IncompleteBody", "the body ended early");
    };
    if let Err(resp) = authenticate(&s, &method, &uri, &headers, &body) {
        s.rejected.fetch_add(1, Ordering::SeqCst);
        return *resp;
    }
    let path = sigv4::percent_decode(uri.path());
    let rest = path.trim_start_matches('/');
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (rest, None),
    };
    let query = query_pairs(&uri);
    let op = match (&method, key) {
        (&Method::PUT, Some(_)) => "PutObject",
        (&Method::GET, Some(_)) => "GetObject",
        (&Method::HEAD, Some(_)) => "HeadObject",
        (&Method::DELETE, Some(_)) => "DeleteObject",
        (&Method::GET, None) if query.iter().any(|(k, v)| k == "list-type" && v == "2") => {
            "ListObjectsV2"
        }
        _ => "Unsupported",
    };
    s.log.lock().unwrap_or_else(PoisonError::into_inner).push(format!("{method} {op}"));
    if s.fail_next.load(Ordering::SeqCst) > 0 {
        s.fail_next.fetch_sub(1, Ordering::SeqCst);
        return s3_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "injected failure");
    }
    if bucket != s.bucket {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "the specified bucket does not exist",
        );
    }
    match (op, key) {
        ("PutObject", Some(key)) => put(&s, key, body, &headers),
        ("GetObject", Some(key)) => get(&s, key, &headers, false),
        ("HeadObject", Some(key)) => get(&s, key, &headers, true),
        ("DeleteObject", Some(key)) => {
            s.objects().remove(key);
            StatusCode::NO_CONTENT.into_response()
        }
        ("ListObjectsV2", None) => list(&s, &query),
        _ => s3_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "the fake does not implement this operation",
        ),
    }
}

fn put(s: &Shared, key: &str, body: Bytes, headers: &HeaderMap) -> Response {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
    if declared.and_then(|v| v.parse::<usize>().ok()) != Some(body.len()) {
        return s3_error(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "you must provide the Content-Length HTTP header",
        );
    }
    let etag = format!("\"{}\"", &sigv4::sha256_hex(&body)[..32]);
    s.objects()
        .insert(key.to_owned(), Object { data: body, etag: etag.clone(), modified: Utc::now() });
    (StatusCode::OK, [(header::ETAG, etag)]).into_response()
}

fn get(s: &Shared, key: &str, headers: &HeaderMap, head: bool) -> Response {
    let Some(obj) = s.objects().get(key).cloned() else {
        if head {
            return StatusCode::NOT_FOUND.into_response();
        }
        return s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "the specified key does not exist");
    };
    let size = obj.data.len() as u64;
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let modified = obj.modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let base = Response::builder()
        .header(header::ETAG, &obj.etag)
        .header(header::LAST_MODIFIED, modified)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream");
    let built = match crate::parse_range(range, size) {
        Err(()) => {
            return s3_error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "the requested range is not satisfiable",
            );
        }
        Ok(Some(r)) => {
            let part = obj.data.slice(r.start as usize..=r.end as usize);
            base.status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", r.start, r.end))
                .header(header::CONTENT_LENGTH, part.len())
                .body(if head { Body::empty() } else { Body::from(part) })
        }
        Ok(None) => base
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, size)
            .body(if head { Body::empty() } else { Body::from(obj.data) }),
    };
    built.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn list(s: &Shared, query: &[(String, String)]) -> Response {
    let q = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let prefix = q("prefix").unwrap_or("");
    let max_keys: usize = q("max-keys").and_then(|v| v.parse().ok()).unwrap_or(1000).min(1000);
    let after = match q("continuation-token") {
        Some(token) => match hex::decode(token).ok().and_then(|b| String::from_utf8(b).ok()) {
            Some(k) => Some(k),
            None => {
                return s3_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "the continuation token provided is incorrect",
                );
            }
        },
        None => q("start-after").map(str::to_owned),
    };
    let objects = s.objects();
    let matching: Vec<(&String, &Object)> = objects
        .iter()
        .filter(|(k, _)| {
            k.starts_with(prefix) && after.as_ref().is_none_or(|a| k.as_str() > a.as_str())
        })
        .collect();
    let page = &matching[..matching.len().min(max_keys)];
    let truncated = matching.len() > page.len();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max_keys}</MaxKeys><IsTruncated>{truncated}</IsTruncated>",
        xml_escape(&s.bucket),
        xml_escape(prefix),
        page.len()
    );
    for (key, obj) in page {
        xml.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            xml_escape(key),
            obj.modified.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            xml_escape(&obj.etag),
            obj.data.len()
        ));
    }
    if truncated && let Some((last, _)) = page.last() {
        xml.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            hex::encode(last)
        ));
    }
    xml.push_str("</ListBucketResult>");
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/xml")], xml).into_response()
}
