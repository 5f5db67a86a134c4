//! Artifacts: streaming upload (`POST /artifact/upload`, alias `/files/upload`; the body is the
//! file, metadata in the query), metadata and versions (`/artifacts…`), download with `Range`
//! (`GET /artifact/{id}`, alias `/files/{id}/download`), previews and full-text search.
//!
//! Uploads have their own size limit (`artifacts.max_upload_bytes`, not the server's body
//! limit) and are streamed to a staging file while hashed, so memory stays bounded whatever the
//! size; past the limit the upload is answered 413 at once and the staged bytes are deleted.
//! Contents are served with `nosniff`, `Content-Security-Policy: sandbox` and, unless asked
//! inline and a passive type (raster image, PDF, plain text), as an attachment.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures::StreamExt as _;
use kai_core::policy::{Action, Resource};
use kai_runtime::artifacts::{ArtifactError, UploadMeta, Viewer, shares::ShareError};
use kai_store::{ArtifactQuery, ArtifactRow};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit;
use crate::AppState;
use crate::api::library::{ArtifactView, SearchHit, snippet};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Routes whose body is an upload: they get `artifacts.max_upload_bytes` and
/// `artifacts.upload_timeout_secs` instead of the server-wide limits.
pub const UPLOAD_ROUTES: [&str; 2] = ["/artifact/upload", "/files/upload"];
/// What is read and discarded after an upload passes its limit, so the client can read the 413
/// before the connection closes (the server stops reading within the limit plus this).
const LINGER_BYTES: usize = 1024 * 1024;

impl From<ArtifactError> for ApiError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::NotFound(m) => Self::NotFound(m),
            ArtifactError::Invalid(m) => Self::BadRequest(m),
            ArtifactError::TooLarge(limit) => Self::PayloadTooLarge(limit),
            ArtifactError::RangeNotSatisfiable { size } => Self::RangeNotSatisfiable(size),
            ArtifactError::NoPreview(m) => Self::NoPreview(m),
            ArtifactError::Share(ShareError::Invalid) => Self::ShareInvalid,
            ArtifactError::Share(ShareError::Revoked) => Self::ShareRevoked,
            ArtifactError::Share(e @ ShareError::Expired) => Self::Gone(e.to_string()),
            ArtifactError::Share(ShareError::BadLifetime(m)) => Self::BadRequest(m),
            ArtifactError::Blob(b) => match b {
                kai_blob::BlobError::Credentials(_) => Self::Unavailable {
                    code: "object_store_credentials",
                    detail: "the object store's secret key is unavailable (is the vault unlocked and the secret set?)".into(),
                },
                kai_blob::BlobError::Unreachable(_) | kai_blob::BlobError::Remote { .. } => Self::Unavailable {
                    code: "object_store_unavailable",
                    detail: "the object store is unavailable; try again".into(),
                },
                other => Self::Internal(other.to_string()),
            },
            ArtifactError::Store(s) => s.into(),
        }
    }
}

/// The caller as the artifact service sees them: artifacts belong to the user a credential acts
/// for (or to the agent, or to a token without a user); admins may see everyone's.
pub(crate) fn viewer(p: &Principal) -> Viewer {
    let owner = p.user_id().map_or_else(|| p.actor(), |u| format!("user:{u}"));
    Viewer { owner, admin: p.allows(Resource::Artifacts, Action::Admin) }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// The artifact's name (a file name, `/` for folders; no `..`, absolute paths or control
    /// characters). An existing name gets a new version.
    pub name: String,
    /// Comma-separated tags.
    pub tags: Option<String>,
    /// The task that produced it.
    pub task_id: Option<String>,
}

fn split_tags(tags: Option<&str>) -> Vec<String> {
    tags.map(|t| t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Reads and discards up to [`LINGER_BYTES`] more of a refused upload in the background.
fn linger(mut stream: axum::body::BodyDataStream) {
    tokio::spawn(async move {
        let mut seen = 0usize;
        let drain = async {
            while let Some(Ok(chunk)) = stream.next().await {
                seen += chunk.len();
                if seen >= LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
    });
}

/// Uploads a file: the request body is its bytes (any content type). Answers 201 with the
/// stored version; 413 past `artifacts.max_upload_bytes`.
#[utoipa::path(post, path = "/artifact/upload", tag = "artifacts", security(("bearer" = [])), params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "the file's bytes"),
    responses(
        (status = 201, body = Object, description = "{artifact, deduplicated}"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let meta = UploadMeta::parse(&q.name, &split_tags(q.tags.as_deref()), q.task_id.as_deref())?;
    let limit = state.config.borrow().config.artifacts.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut writer = state.artifacts.begin_upload(limit)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::BadRequest("the upload was interrupted; send it again".into())
        })?;
        if let Err(e) = writer.write(&chunk).await {
            drop(writer);
            if matches!(e, kai_blob::StageError::TooLarge { .. }) {
                linger(stream);
            }
            return Err(ArtifactError::from(e).into());
        }
    }
    let staged = writer.finish().await.map_err(ArtifactError::from)?;
    let owner = viewer(&principal).owner;
    let content_type = kai_runtime::artifacts::Artifacts::content_type_of(&staged, &meta.name);
    audit(
        &state,
        &principal.actor(),
        "artifact.upload",
        &format!("artifact:{}", meta.name),
        json!({"digest": staged.digest.to_hex(), "size": staged.size, "content_type": content_type, "task_id": meta.task_id, "owner": owner}),
    )
    .await?;
    let done = state.artifacts.commit_upload(&owner, meta, staged).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"artifact": ArtifactView::from(&done.row), "deduplicated": done.deduplicated})),
    ))
}

/// `/files/upload`: the same as `/artifact/upload`.
#[utoipa::path(post, path = "/files/upload", tag = "artifacts", security(("bearer" = [])), params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, body = Object),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn upload_alias(
    state: State<AppState>,
    principal: Principal,
    q: Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    upload(state, principal, q, headers, body).await
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub name: Option<String>,
    pub tag: Option<String>,
    pub task_id: Option<String>,
    /// Every version, not only the latest of each name.
    #[serde(default)]
    pub versions: bool,
    /// Everyone's artifacts (admins); default your own.
    #[serde(default)]
    pub all: bool,
    /// Only artifacts created before this time (RFC 3339; paging).
    pub before: Option<chrono::DateTime<chrono::Utc>>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
}

/// Artifacts, newest first.
#[utoipa::path(get, path = "/artifacts", tag = "artifacts", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = Vec<ArtifactView>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ArtifactView>>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit is 1 to 1000".into()));
    }
    let query = ArtifactQuery {
        owner: None,
        name: q.name.as_deref(),
        tag: q.tag.as_deref(),
        task_id: q.task_id.as_deref(),
        latest_only: !q.versions,
        before_us: q.before.map(|t| t.timestamp_micros()),
        limit,
    };
    let rows = state.artifacts.list(&viewer(&principal), q.all, query).await?;
    Ok(Json(rows.iter().map(ArtifactView::from).collect()))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct SearchQuery {
    /// Words to find (BM25 ranking).
    pub q: String,
    /// `artifact` or `note`; default both.
    pub kind: Option<String>,
    /// Everyone's (admins); default your own.
    #[serde(default)]
    pub all: bool,
    /// 1 to 100, default 20.
    pub k: Option<usize>,
}

/// Full-text search over text artifacts and notes.
#[utoipa::path(get, path = "/artifacts/search", tag = "artifacts", security(("bearer" = [])), params(SearchQuery), responses(
    (status = 200, body = Vec<SearchHit>),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Vec<SearchHit>>> {
    let k = q.k.unwrap_or(20);
    if !(1..=100).contains(&k) || q.q.trim().is_empty() || q.q.len() > 1000 {
        return Err(ApiError::BadRequest("q is 1 to 1000 bytes and k 1 to 100".into()));
    }
    if q.kind.as_deref().is_some_and(|k| k != "artifact" && k != "note") {
        return Err(ApiError::BadRequest("kind is artifact or note".into()));
    }
    let hits =
        state.artifacts.search(&viewer(&principal), q.all, &q.q, q.kind.as_deref(), k).await?;
    Ok(Json(
        hits.iter()
            .map(|h| SearchHit {
                kind: h.doc.kind.clone(),
                id: h.doc.ref_id.clone(),
                title: h.doc.title.clone(),
                score: h.score,
                snippet: snippet(&h.doc.body, &q.q),
            })
            .collect(),
    ))
}

/// An artifact version's metadata.
#[utoipa::path(get, path = "/artifacts/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = ArtifactView),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<ArtifactView>> {
    Ok(Json(ArtifactView::from(&state.artifacts.get(&viewer(&principal), &id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactPatch {
    pub tags: Vec<String>,
}

/// Replaces an artifact version's tags.
#[utoipa::path(patch, path = "/artifacts/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), request_body = ArtifactPatch, responses(
    (status = 200, body = ArtifactView),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<ArtifactPatch>,
) -> ApiResult<Json<ArtifactView>> {
    let v = viewer(&principal);
    state.artifacts.get(&v, &id).await?;
    kai_core::library::parse_tags(&req.tags).map_err(|e| ApiError::BadRequest(e.0))?;
    audit(
        &state,
        &principal.actor(),
        "artifact.tags",
        &format!("artifact:{id}"),
        json!({"tags": req.tags}),
    )
    .await?;
    Ok(Json(ArtifactView::from(&state.artifacts.set_tags(&v, &id, &req.tags).await?)))
}

/// Deletes one version (its contents go when no other version or artifact uses them).
#[utoipa::path(delete, path = "/artifacts/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let v = viewer(&principal);
    let row = state.artifacts.get(&v, &id).await?;
    audit(
        &state,
        &principal.actor(),
        "artifact.delete",
        &format!("artifact:{id}"),
        json!({"name": row.name, "version": row.version, "digest": row.digest}),
    )
    .await?;
    state.artifacts.delete(&v, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of this artifact's name, oldest first.
#[utoipa::path(get, path = "/artifacts/{id}/versions", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Vec<ArtifactView>),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn versions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ArtifactView>>> {
    let rows = state.artifacts.versions(&viewer(&principal), &id).await?;
    Ok(Json(rows.iter().map(ArtifactView::from).collect()))
}

/// A preview: Markdown as sanitized HTML, text as plain text, images as themselves, a PDF's
/// first page as PNG. `X-Kai-Preview` names the kind; 415 when the type has none.
#[utoipa::path(get, path = "/artifacts/{id}/preview", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, description = "text/html, text/plain or an image"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 415, body = Problem, content_type = "application/problem+json"),
))]
pub async fn preview(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let row = state.artifacts.get(&viewer(&principal), &id).await?;
    let (kind, content_type, body) = state.artifacts.preview(&row).await?;
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    h.insert("x-kai-preview", HeaderValue::from_static(kind.as_str()));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"));
    Ok(resp)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DownloadQuery {
    /// Ask to display it in the browser (honoured for raster images, PDF and plain text).
    #[serde(default)]
    pub inline: bool,
}

/// `attachment; filename="…"; filename*=UTF-8''…` (or `inline`).
fn disposition(name: &str, inline: bool) -> String {
    let file = name.rsplit('/').next().unwrap_or(name);
    let ascii: String = file
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let encoded = kai_blob::s3::sigv4::uri_encode(file, false);
    format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}",
        if inline { "inline" } else { "attachment" }
    )
}

/// The contents of `row` as an HTTP response, honouring `Range`, `If-Range` and
/// `If-None-Match`.
pub(crate) async fn serve(
    state: &AppState,
    row: &ArtifactRow,
    headers: &HeaderMap,
    inline: bool,
) -> ApiResult<Response> {
    let size = row.size as u64;
    let etag = format!("\"blake3-{}\"", row.digest);
    let header_str = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?,
        );
        return Ok(resp);
    }
    let if_range_ok = header_str(header::IF_RANGE).is_none_or(|v| v.trim() == etag);
    let range = if if_range_ok {
        kai_blob::parse_range(header_str(header::RANGE), size)
            .map_err(|()| ApiError::RangeNotSatisfiable(size))?
    } else {
        None
    };
    let stream = state.artifacts.open(row, range).await?;
    let inline = inline && kai_runtime::artifacts::sniff::safe_inline(&row.content_type);
    let bad = |e: axum::http::header::InvalidHeaderValue| ApiError::Internal(e.to_string());
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&row.content_type).map_err(bad)?);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, HeaderValue::from_str(&etag).map_err(bad)?);
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition(&row.name, inline)).map_err(bad)?,
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; sandbox"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    match range {
        Some(r) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{size}", r.start, r.end))
                    .map_err(bad)?,
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
        }
        None => {
            resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
    }
    Ok(resp)
}

/// Downloads an artifact (`Range: bytes=…` answers 206, an unsatisfiable one 416).
#[utoipa::path(get, path = "/artifact/{id}", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path), DownloadQuery), responses(
    (status = 200, description = "the contents"),
    (status = 206, description = "the requested range"),
    (status = 304, description = "If-None-Match matched"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 416, body = Problem, content_type = "application/problem+json"),
))]
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let row = state.artifacts.get(&viewer(&principal), &id).await?;
    serve(&state, &row, &headers, q.inline).await
}

/// `/files/{id}/download`: the same as `/artifact/{id}`.
#[utoipa::path(get, path = "/files/{id}/download", tag = "artifacts", security(("bearer" = [])), params(("id" = String, Path), DownloadQuery), responses(
    (status = 200, description = "the contents"),
    (status = 206, description = "the requested range"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
    (status = 416, body = Problem, content_type = "application/problem+json"),
))]
pub async fn download_alias(
    state: State<AppState>,
    principal: Principal,
    id: Path<String>,
    q: Query<DownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    download(state, principal, id, q, headers).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispositions_are_safe_header_values() {
        let d = super::disposition("docs/Résumé \"final\".pdf", false);
        assert_eq!(
            d,
            "attachment; filename=\"R_sum_ _final_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(axum::http::HeaderValue::from_str(&d).is_ok());
        assert!(super::disposition("a.png", true).starts_with("inline;"));
    }
}
