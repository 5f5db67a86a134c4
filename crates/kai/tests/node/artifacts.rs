//! Artifacts on a real node: streaming upload with dedup and versions, Range downloads, names
//! that look like paths refused, an over-limit upload refused with the node's memory bounded,
//! share links (expiry, revocation, tampering), safe previews, full-text search over text
//! artifacts and notes, the S3 backend against the in-repo fake S3 server, the CLI, and an
//! acknowledged upload surviving `kill -9`.

use futures::StreamExt as _;
use serde_json::{Value, json};

use super::harness::{Node, NodeDir, exec_sql};

async fn upload(node: &Node, name: &str, body: Vec<u8>) -> reqwest::Response {
    node.http
        .post(node.url("/artifact/upload"))
        .query(&[("name", name)])
        .bearer_auth(&node.token)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn upload_ok(node: &Node, name: &str, body: &[u8]) -> Value {
    let resp = upload(node, name, body.to_vec()).await;
    assert_eq!(resp.status(), 201, "upload {name}");
    resp.json().await.unwrap()
}

fn objects(dir: &NodeDir) -> usize {
    let root = dir.data().join("artifacts/objects");
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten().map(|sub| std::fs::read_dir(sub.path()).map_or(0, |f| f.count())).sum()
        })
        .unwrap_or(0)
}

fn staging_files(dir: &NodeDir) -> usize {
    std::fs::read_dir(dir.data().join("artifacts/tmp")).map_or(0, |d| d.count())
}

async fn get_range(node: &Node, id: &str, range: &str) -> reqwest::Response {
    node.http
        .get(node.url(&format!("/artifact/{id}")))
        .bearer_auth(&node.token)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_dedup_version_and_download_with_ranges() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let first = upload_ok(&node, "data/blob.bin", &data).await;
    let a = &first["artifact"];
    assert_eq!((a["version"].as_i64(), first["deduplicated"].as_bool()), (Some(1), Some(false)));
    assert_eq!(a["digest"], blake3::hash(&data).to_hex().as_str());
    assert_eq!(a["content_type"], "application/octet-stream");
    let id = a["id"].as_str().unwrap().to_owned();
    // The same bytes under another name: stored once.
    let again = upload_ok(&node, "copy.bin", &data).await;
    assert_eq!(again["deduplicated"], true);
    assert_eq!(again["artifact"]["digest"], a["digest"]);
    // New bytes under the first name: version 2, through the /files alias.
    let resp = node
        .http
        .post(node.url("/files/upload?name=data/blob.bin&tags=draft,Q3&task_id=task-9"))
        .bearer_auth(&node.token)
        .body(b"second version".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v2: Value = resp.json().await.unwrap();
    assert_eq!(v2["artifact"]["version"], 2);
    assert_eq!(v2["artifact"]["tags"], json!(["draft", "q3"]));
    assert_eq!(v2["artifact"]["task_id"], "task-9");
    assert_eq!(v2["artifact"]["content_type"], "text/plain");
    assert_eq!(objects(&dir), 2, "two distinct contents");

    let versions = node.get_json(&format!("/artifacts/{id}/versions")).await;
    assert_eq!(
        versions
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let latest = node.get_json("/artifacts").await;
    assert_eq!(latest.as_array().unwrap().len(), 2, "latest of each name: {latest}");
    let by_task = node.get_json("/artifacts?task_id=task-9").await;
    assert_eq!(by_task.as_array().unwrap().len(), 1);

    // Whole, ranged, suffix, open-ended, unsatisfiable, conditional.
    let whole = node.get(&format!("/artifact/{id}")).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["accept-ranges"], "bytes");
    assert!(
        whole.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"blob.bin\"")
    );
    assert!(whole.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(whole.bytes().await.unwrap(), data);
    let part = get_range(&node, &id, "bytes=1000-1999").await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(part.headers()["content-length"], "1000");
    assert_eq!(part.bytes().await.unwrap(), data[1000..2000]);
    let tail = get_range(&node, &id, "bytes=-10").await;
    assert_eq!(tail.headers()["content-range"], "bytes 299990-299999/300000");
    assert_eq!(tail.bytes().await.unwrap(), data[299_990..]);
    let open = get_range(&node, &id, "bytes=299000-").await;
    assert_eq!(open.bytes().await.unwrap().len(), 1000);
    let beyond = get_range(&node, &id, "bytes=300000-").await;
    assert_eq!(beyond.status(), 416);
    assert_eq!(beyond.headers()["content-range"], "bytes */300000");
    assert_eq!(beyond.json::<Value>().await.unwrap()["code"], "range_not_satisfiable");
    let alias = node
        .http
        .get(node.url(&format!("/files/{id}/download")))
        .bearer_auth(&node.token)
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (alias.status().as_u16(), alias.bytes().await.unwrap().to_vec()),
        (206, data[..4].to_vec())
    );
    let cached = node
        .http
        .get(node.url(&format!("/artifact/{id}")))
        .bearer_auth(&node.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);
    let stale = node
        .http
        .get(node.url(&format!("/artifact/{id}")))
        .bearer_auth(&node.token)
        .header("range", "bytes=0-3")
        .header("if-range", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200, "If-Range mismatch: the whole object");

    // Deleting one of the two users of a blob keeps it; deleting the last removes it.
    let again_id = again["artifact"]["id"].as_str().unwrap();
    assert_eq!(node.delete(&format!("/artifacts/{again_id}")).await.status(), 204);
    assert_eq!(objects(&dir), 2);
    assert_eq!(node.get(&format!("/artifact/{id}")).await.bytes().await.unwrap(), data);
    assert_eq!(node.delete(&format!("/artifacts/{id}")).await.status(), 204);
    assert_eq!(objects(&dir), 1);
    assert_eq!(node.get(&format!("/artifact/{id}")).await.status(), 404);

    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    for action in ["artifact.upload", "artifact.delete"] {
        assert!(audit.contains(action), "{action} audited");
    }
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_look_like_paths_are_refused() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let before = node.get_json("/system/info").await["audit_entries"].as_u64().unwrap();
    for name in [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "..\\windows\\win.ini",
        "C:\\boot.ini",
        "%2e%2e%2fsecret",
        "..%2f..%2fx",
        "nul\u{0}byte",
        "new\nline",
        "bidi\u{202e}gpj.exe",
        "div\u{2215}..\u{2215}x",
        "",
        "a//b",
    ] {
        let resp = upload(&node, name, b"evil".to_vec()).await;
        assert_eq!(resp.status(), 400, "{name:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "bad_request", "{name:?}");
    }
    assert!(node.get_json("/artifacts").await.as_array().unwrap().is_empty());
    assert_eq!(objects(&dir), 0);
    assert_eq!(staging_files(&dir), 0);
    let after = node.get_json("/system/info").await["audit_entries"].as_u64().unwrap();
    assert_eq!(after, before, "refused uploads change nothing");
    // Nothing was written outside the data directory either.
    assert!(!dir.tmp.path().join("etc/passwd").exists() && !dir.tmp.path().join("secret").exists());
    node.stop();
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// Bytes the process has written through `write(2)` (files; sockets use `send`).
fn bytes_written(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines().find_map(|l| l.strip_prefix("wchar: ")).unwrap().trim().parse().unwrap()
}

/// 512 MiB streamed at a node whose limit is 64 MiB: 413, the node stops reading near the
/// limit (the client could hand over little more than the limit plus socket buffers), it wrote
/// no more than the limit to disk, its peak memory grows by far less than the upload, and
/// nothing is left on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_limit_upload_is_refused_with_bounded_memory() {
    const LIMIT: u64 = 64 << 20;
    const SENT: usize = 512 << 20;
    let dir = NodeDir::new().await;
    dir.write_config(&format!("[artifacts]\nmax_upload_bytes = {LIMIT}\n"));
    let node = Node::start(&dir);
    let pid = node.child.id();
    // Warm up allocator and connections with a small upload.
    upload_ok(&node, "warm.txt", b"warm").await;
    let rss_before = status_field(pid, "VmRSS:");
    let written_before = bytes_written(pid);

    // No Content-Length (chunked): the node must count the bytes itself.
    let chunk = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let handed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = handed.clone();
    let body = futures::stream::iter((0..SENT >> 20).map(move |_| {
        counter.fetch_add(1 << 20, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(chunk.clone())
    }));
    let resp = node
        .http
        .post(node.url("/artifact/upload?name=huge.bin"))
        .bearer_auth(&node.token)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("the node answers before the client has sent everything");
    assert_eq!(resp.status(), 413);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["code"], "payload_too_large");

    let peak = status_field(pid, "VmHWM:");
    let written = bytes_written(pid) - written_before;
    let sent = handed.load(std::sync::atomic::Ordering::SeqCst) as u64;
    assert!(
        peak.saturating_sub(rss_before) < 48 << 20,
        "peak RSS grew by {} MiB",
        (peak - rss_before) >> 20
    );
    assert!(
        written <= LIMIT + (4 << 20),
        "the node wrote {} MiB of a {} MiB upload",
        written >> 20,
        SENT >> 20
    );
    assert!(written >= LIMIT / 2, "it staged the upload up to the limit ({} MiB)", written >> 20);
    assert!(
        sent < LIMIT + (48 << 20),
        "the client handed over {} MiB before the node stopped reading",
        sent >> 20
    );

    // A declared Content-Length over the limit is refused before any byte is read.
    let resp = node
        .http
        .post(node.url("/artifact/upload?name=declared.bin"))
        .bearer_auth(&node.token)
        .header("content-length", (LIMIT + 1).to_string())
        .body(reqwest::Body::wrap_stream(futures::stream::pending::<
            Result<bytes::Bytes, std::io::Error>,
        >()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    let listed = node.get_json("/artifacts").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "only the warm-up upload: {listed}");
    assert_eq!(staging_files(&dir), 0, "the partial upload is deleted");
    assert_eq!(objects(&dir), 1);
    // Up to the limit is still fine; the server-wide 2 MiB body limit does not apply.
    let ok = upload(&node, "big-ok.bin", vec![1u8; 8 << 20]).await;
    assert_eq!(ok.status(), 201);
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_links_open_one_artifact_until_expired_or_revoked() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let a = upload_ok(&node, "report.txt", b"the quarterly report").await;
    let b = upload_ok(&node, "other.txt", b"another file").await;
    let id = a["artifact"]["id"].as_str().unwrap().to_owned();
    let resp = node.post_json(&format!("/artifacts/{id}/shares"), json!({})).await;
    assert_eq!(resp.status(), 201);
    let share: Value = resp.json().await.unwrap();
    let url = share["url"].as_str().unwrap().to_owned();
    let token = share["token"].as_str().unwrap().to_owned();
    assert!(token.len() >= 5 + 43, "≥ 256-bit token");
    let created =
        chrono::DateTime::parse_from_rfc3339(share["created_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(share["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 3600, "default 1 h");

    let anon = reqwest::Client::new();
    let got = anon.get(node.url(&url)).send().await.unwrap();
    assert_eq!(got.status(), 200, "no login needed");
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"the quarterly report");
    let part = anon.get(node.url(&url)).header("range", "bytes=4-12").send().await.unwrap();
    assert_eq!((part.status().as_u16(), part.text().await.unwrap()), (206, "quarterly".to_owned()));
    // The token opens nothing else: not the API, not another artifact.
    let api = anon
        .get(node.url(&format!("/artifact/{}", b["artifact"]["id"].as_str().unwrap())))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // One flipped bit in the token: refused.
    let mut bytes = token.clone().into_bytes();
    bytes[20] ^= 0x01;
    let flipped = String::from_utf8(bytes).unwrap();
    let bad = anon.get(node.url(&format!("/share/{flipped}"))).send().await.unwrap();
    assert_eq!(bad.status(), 403);
    assert_eq!(bad.json::<Value>().await.unwrap()["code"], "share_invalid");
    assert_eq!(anon.get(node.url("/share/garbage")).send().await.unwrap().status(), 403);
    // Lifetimes are bounded.
    let too_long = node
        .post_json(&format!("/artifacts/{id}/shares"), json!({"ttl_secs": 7 * 86_400 + 1}))
        .await;
    assert_eq!(too_long.status(), 400);
    let week =
        node.post_json(&format!("/artifacts/{id}/shares"), json!({"ttl_secs": 7 * 86_400})).await;
    assert_eq!(week.status(), 201);

    // Revocation is immediate.
    let share_id = share["id"].as_str().unwrap();
    let revoked = node.delete(&format!("/shares/{share_id}")).await;
    assert_eq!(revoked.status(), 204);
    let after = anon.get(node.url(&url)).send().await.unwrap();
    assert_eq!(after.status(), 410);
    assert_eq!(after.json::<Value>().await.unwrap()["code"], "share_revoked");

    // Expiry: a link whose time has passed answers 410 `expired`.
    let week: Value = week.json().await.unwrap();
    let week_url = week["url"].as_str().unwrap().to_owned();
    assert_eq!(anon.get(node.url(&week_url)).send().await.unwrap().status(), 200);
    let week_id = week["id"].as_str().unwrap();
    let past = chrono::Utc::now().timestamp_micros() - 1_000_000;
    exec_sql(
        &dir,
        &[&format!("UPDATE artifact_shares SET expires_at_us = {past} WHERE id = '{week_id}'")],
    )
    .await;
    let expired = anon.get(node.url(&week_url)).send().await.unwrap();
    assert_eq!(expired.status(), 410);
    assert_eq!(expired.json::<Value>().await.unwrap()["code"], "expired");

    let listed = node.get_json(&format!("/artifacts/{id}/shares")).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|s| s.get("token").is_none()), "tokens are shown once");
    let used = listed.iter().find(|s| s["id"] == week["id"]).unwrap();
    assert_eq!(used["uses"], 1);
    let audit = node.get_json("/audit/entries?limit=1000").await.to_string();
    for action in ["artifact.share.create", "artifact.share.use", "artifact.share.revoke"] {
        assert!(audit.contains(action), "{action} audited");
    }
    assert!(!audit.contains(&token), "tokens never reach the audit log");
    node.stop();
}

/// A minimal one-page PDF with a filled rectangle, offsets computed.
fn tiny_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R >>".to_owned(),
        {
            let content = "0 0 1 rg 20 20 160 60 re f";
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len())
        },
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_are_safe() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let md = upload_ok(&node, "notes/readme.md", b"# Hello\n\n<script>window.pwned=1</script>\n<img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) **bold**").await;
    let resp =
        node.get(&format!("/artifacts/{}/preview", md["artifact"]["id"].as_str().unwrap())).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-kai-preview"], "markdown");
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<h1>Hello</h1>") && html.contains("<strong>bold</strong>"), "{html}");
    for banned in ["<script", "onerror", "javascript:"] {
        assert!(!html.to_lowercase().contains(banned), "{banned} in {html}");
    }
    // HTML and SVG with scripts: previewed as source text, downloaded as sandboxed attachments.
    let page =
        upload_ok(&node, "page.html", b"<!doctype html><script>window.pwned=1</script>").await;
    let page_id = page["artifact"]["id"].as_str().unwrap();
    assert_eq!(page["artifact"]["content_type"], "text/html");
    let pv = node.get(&format!("/artifacts/{page_id}/preview")).await;
    assert!(pv.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let dl = node.get(&format!("/artifact/{page_id}?inline=true")).await;
    assert!(
        dl.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"),
        "HTML is never inline"
    );
    assert_eq!(dl.headers()["x-content-type-options"], "nosniff");
    assert!(dl.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    // A PNG (sniffed from its bytes, whatever the name says) previews as itself and may be inline.
    let png: Vec<u8> = [
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a][..],
        &[
            0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77,
            0x53, 0xde,
        ],
    ]
    .concat();
    let img = upload_ok(&node, "pixel.txt", &png).await;
    assert_eq!(img["artifact"]["content_type"], "image/png");
    let img_id = img["artifact"]["id"].as_str().unwrap();
    let pv = node.get(&format!("/artifacts/{img_id}/preview")).await;
    assert_eq!(pv.headers()["content-type"], "image/png");
    assert_eq!(pv.bytes().await.unwrap().to_vec(), png);
    let inline = node.get(&format!("/artifact/{img_id}?inline=true")).await;
    assert!(inline.headers()["content-disposition"].to_str().unwrap().starts_with("inline"));
    let bin = upload_ok(&node, "data.bin", &[0u8, 1, 2, 3, 0xff]).await;
    let none =
        node.get(&format!("/artifacts/{}/preview", bin["artifact"]["id"].as_str().unwrap())).await;
    assert_eq!(none.status(), 415);
    assert_eq!(none.json::<Value>().await.unwrap()["code"], "no_preview");
    #[cfg(feature = "pdf-preview")]
    {
        let pdf = upload_ok(&node, "doc.pdf", &tiny_pdf()).await;
        assert_eq!(pdf["artifact"]["content_type"], "application/pdf");
        let pv = node
            .get(&format!("/artifacts/{}/preview", pdf["artifact"]["id"].as_str().unwrap()))
            .await;
        assert_eq!(pv.status(), 200);
        assert_eq!(pv.headers()["x-kai-preview"], "pdf");
        let png = pv.bytes().await.unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(width, 800, "rendered at 800 px wide");
    }
    let _ = tiny_pdf;
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_text_search_over_text_artifacts_and_notes() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    upload_ok(&node, "garden.md", b"# Garden\nTomatoes need sun and water every morning.").await;
    upload_ok(&node, "car.txt", b"The car needs new tyres before winter.").await;
    upload_ok(&node, "photo.bin", &[0u8, 159, 146, 150]).await;
    let note = node
        .post_json(
            "/notes",
            json!({"title": "Shopping", "body": "buy tomatoes and basil", "tags": ["home"]}),
        )
        .await;
    assert_eq!(note.status(), 201);
    let note: Value = note.json().await.unwrap();
    let hits = node.get_json("/artifacts/search?q=tomatoes").await;
    let kinds: Vec<&str> =
        hits.as_array().unwrap().iter().map(|h| h["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 2, "{hits}");
    assert!(kinds.contains(&"artifact") && kinds.contains(&"note"));
    assert!(hits.to_string().contains("Tomatoes need sun"), "snippets: {hits}");
    let only_notes = node.get_json("/artifacts/search?q=tomatoes&kind=note").await;
    assert_eq!(only_notes.as_array().unwrap().len(), 1);
    assert_eq!(node.get_json("/artifacts/search?q=tyres").await[0]["title"], "car.txt");

    // Another user sees none of it.
    let made = node
        .post_json(
            "/users",
            json!({"username": "bob", "password": "bob password 123", "role": "member"}),
        )
        .await;
    assert_eq!(made.status(), 201);
    let login: Value = node
        .http
        .post(node.url("/auth/login"))
        .json(&json!({"username": "bob", "password": "bob password 123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let member = login["access_token"].as_str().unwrap().to_owned();
    let theirs: Value = node
        .http
        .get(node.url("/artifacts/search?q=tomatoes"))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]));
    let note_id = note["id"].as_str().unwrap();
    let peek = node
        .http
        .get(node.url(&format!("/notes/{note_id}")))
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(peek.status(), 404);

    // Editing a note re-indexes it; the index is rebuilt from the store after a restart.
    let edited = node
        .http
        .put(node.url(&format!("/notes/{note_id}")))
        .bearer_auth(&node.token)
        .json(&json!({"title": "Shopping", "body": "buy basil only"}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    assert_eq!(node.get_json("/artifacts/search?q=tomatoes&kind=note").await, json!([]));
    node.stop();
    let node = Node::start(&dir);
    assert_eq!(node.get_json("/artifacts/search?q=basil").await[0]["id"], note["id"]);
    assert_eq!(node.get_json("/artifacts/search?q=tomatoes").await.as_array().unwrap().len(), 1);
    let gone = node.delete(&format!("/notes/{note_id}")).await;
    assert_eq!(gone.status(), 204);
    assert_eq!(node.get_json("/artifacts/search?q=basil").await, json!([]));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend_stores_through_the_wire_format() {
    let fake = kai_blob::fake_s3::FakeS3::start(
        "kai-artifacts",
        "AKIDNODE",
        "node-s3-secret",
        "us-east-1",
    )
    .await
    .unwrap();
    let dir = NodeDir::new().await;
    dir.write_config(&format!(
        "[artifacts]\nbackend = \"s3\"\n[artifacts.s3]\nendpoint = \"{}\"\nbucket = \"kai-artifacts\"\nprefix = \"node/\"\naccess_key_id = \"AKIDNODE\"\nsecret_key_secret = \"s3/secret\"\n",
        fake.endpoint()
    ));
    let node = Node::start(&dir);
    // Without the secret in the vault the store is unavailable, and says what to do.
    let early = upload(&node, "a.txt", b"x".to_vec()).await;
    assert_eq!(early.status(), 503);
    assert_eq!(early.json::<Value>().await.unwrap()["code"], "object_store_credentials");
    let put = node
        .http
        .put(node.url("/vault/secrets/s3%2Fsecret"))
        .bearer_auth(&node.token)
        .json(&json!({"value": "node-s3-secret"}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 13) as u8).collect();
    let first = upload_ok(&node, "big.bin", &data).await;
    let digest = first["artifact"]["digest"].as_str().unwrap().to_owned();
    assert_eq!(fake.object(&format!("node/{digest}")).unwrap().as_ref(), &data[..]);
    let dup = upload_ok(&node, "dup.bin", &data).await;
    assert_eq!(dup["deduplicated"], true);
    assert_eq!(fake.keys(), [format!("node/{digest}")]);
    let id = first["artifact"]["id"].as_str().unwrap();
    let part = get_range(&node, id, "bytes=100-199").await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), data[100..200]);
    assert_eq!(node.get(&format!("/artifact/{id}")).await.bytes().await.unwrap(), data);
    assert!(
        !dir.data().join("artifacts/objects").exists() || objects(&dir) == 0,
        "nothing stored locally"
    );
    for a in [id, dup["artifact"]["id"].as_str().unwrap()] {
        let d = node.delete(&format!("/artifacts/{a}")).await;
        assert_eq!(d.status(), 204);
    }
    assert!(fake.keys().is_empty(), "the last delete removes the object");
    assert_eq!(fake.rejected(), 0, "every request was correctly signed");
    assert!(fake.requests().iter().any(|r| r == "GET GetObject"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_uploads_lists_downloads_shares_and_removes() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let file = dir.tmp.path().join("hello.txt");
    let data = "hello from the cli\n".repeat(10_000);
    std::fs::write(&file, &data).unwrap();
    let out = dir.run(&["--json", "artifact", "upload", file.to_str().unwrap(), "--tag", "cli"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let up: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = up["artifact"]["id"].as_str().unwrap().to_owned();
    assert_eq!(up["artifact"]["name"], "hello.txt");

    let out = dir.run(&["artifact", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello.txt"));
    let target = dir.tmp.path().join("copy.txt");
    let out = dir.run(&["artifact", "get", &id, "-o", target.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), data);
    let again = dir.run(&["artifact", "get", &id, "-o", target.to_str().unwrap()]);
    assert!(!again.status.success(), "no silent overwrite");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let out = dir.run(&["artifact", "share", &id, "--ttl", "600"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let url = text.lines().last().unwrap().trim().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/share/kais_"), "{text}");
    assert_eq!(reqwest::get(&url).await.unwrap().text().await.unwrap(), data);
    let share_id = text.split_whitespace().nth(1).unwrap();
    assert!(dir.run(&["artifact", "share", &id, "--revoke", share_id]).status.success());
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 410);

    assert!(dir.run(&["artifact", "rm", &id]).status.success());
    let out = dir.run(&["artifact", "get", &id]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("404"));
    let bad = dir.run(&["artifact", "upload", file.to_str().unwrap(), "--name", "../escape.txt"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("cannot leave"));
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_uploads_survive_kill_9() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);
    let mut stored = Vec::new();
    for i in 0..5u8 {
        let body: Vec<u8> = (0..50_000u32).map(|j| (j as u8).wrapping_mul(i + 1)).collect();
        let done = upload_ok(&node, &format!("f{i}.bin"), &body).await;
        stored.push((done["artifact"]["id"].as_str().unwrap().to_owned(), body));
    }
    node.kill9();
    let node = Node::start(&dir);
    for (id, body) in &stored {
        let resp = node.get(&format!("/artifact/{id}")).await;
        assert_eq!(resp.status(), 200);
        let mut got = Vec::new();
        let mut s = resp.bytes_stream();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(&got, body);
    }
    assert_eq!(staging_files(&dir), 0);
    node.stop();
}
