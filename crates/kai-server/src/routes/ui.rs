//! The web dashboard: `GET /` answers the shell (`web/index.html`) and `GET /ui/{path}` its
//! ES modules, stylesheet and icons, all embedded in the binary at build time (see
//! `build.rs`). Public (the page must load to log in or unlock), read-only, and strict: a
//! content security policy that allows only this origin's scripts and styles (no inline
//! script or style, no eval, no framing), `nosniff`, and `ETag` revalidation (`no-cache`) so
//! a new binary's files are picked up at once while unchanged ones answer 304.
//!
//! The dashboard holds no private endpoint: every data call it makes goes through the public
//! API with the user's access token.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult, Problem};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// The policy of every dashboard response. `connect-src 'self'` covers the same-origin
/// WebSocket (CSP 3 matches `ws:` to `http:` for 'self').
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Longest asset path accepted (longer ones are not ours).
const MAX_PATH: usize = 256;

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

static TABLE: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|(path, body)| {
            let digest = Sha256::digest(body);
            let etag = format!("\"{}\"", hex::encode(&digest[..12]));
            let asset = Asset {
                body,
                content_type: content_type(path),
                etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
            };
            (*path, asset)
        })
        .collect()
});

/// The content type for a file name's extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Total bytes of the embedded files whose path ends with one of `exts` (for page weight).
pub fn embedded_bytes(exts: &[&str]) -> usize {
    ASSETS.iter().filter(|(p, _)| exts.iter().any(|e| p.ends_with(e))).map(|(_, b)| b.len()).sum()
}

fn serve(path: &str, headers: &HeaderMap) -> ApiResult<Response> {
    let asset =
        TABLE.get(path).ok_or_else(|| ApiError::NotFound(format!("dashboard file {path}")))?;
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag || t.trim() == "*"));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))], asset.body)
            .into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    Ok(resp)
}

/// The dashboard's shell page.
#[utoipa::path(get, path = "/", tag = "ui", responses(
    (status = 200, content_type = "text/html", body = String, description = "the dashboard"),
    (status = 304, description = "unchanged (If-None-Match)"),
))]
pub async fn index(headers: HeaderMap) -> ApiResult<Response> {
    serve("/index.html", &headers)
}

/// One file of the dashboard (ES modules, CSS, icons).
#[utoipa::path(get, path = "/ui/{path}", tag = "ui", params(("path" = String, Path, description = "file under web/ui, e.g. app.js")), responses(
    (status = 200, description = "the file, with its content type"),
    (status = 304, description = "unchanged (If-None-Match)"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    if path.len() > MAX_PATH || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(ApiError::NotFound("dashboard file".into()));
    }
    serve(&format!("/ui/{path}"), &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_and_its_entry_module_are_embedded() {
        let paths: Vec<&str> = ASSETS.iter().map(|(p, _)| *p).collect();
        for want in ["/index.html", "/ui/app.js", "/ui/app.css", "/ui/pages.js"] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "sorted and unique");
        assert!(!paths.iter().any(|p| p.contains("/tests/") || p.contains("node_modules")));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("/ui/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/ui/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/ui/icon.svg"), "image/svg+xml");
        assert_eq!(content_type("/ui/README"), "application/octet-stream");
    }

    #[test]
    fn the_shell_loads_no_inline_script_or_style() {
        let (_, html) = ASSETS.iter().find(|(p, _)| *p == "/index.html").unwrap();
        let html = std::str::from_utf8(html).unwrap();
        for tag in html.split("<script").skip(1) {
            let open = &tag[..tag.find('>').unwrap()];
            assert!(
                open.contains("src=\"/ui/"),
                "every script is an embedded file: <script{open}>"
            );
        }
        assert!(!html.contains("<style"), "no inline style element");
        assert!(!html.contains(" style="), "no inline style attribute");
        let handler = html.match_indices(" on").any(|(i, _)| {
            let rest = &html[i + 3..];
            let name_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "no inline event handler attribute");
    }

    #[test]
    fn etags_revalidate() {
        let mut headers = HeaderMap::new();
        let first = serve("/ui/app.js", &headers).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        headers.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("/ui/app.js", &headers).unwrap().status(), StatusCode::NOT_MODIFIED);
        assert!(serve("/ui/nope.js", &headers).is_err());
    }
}
