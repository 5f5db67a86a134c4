//! The embedded dashboard on a real node: the shell and every module it imports are served with
//! the right content type, a strict CSP, ETag revalidation, while sealed too; nothing outside
//! `web/ui` is reachable; the shell stays within its page-weight budget. (The pages themselves
//! are tested in Chromium by `web/tests/e2e.test.mjs`.)

use std::collections::{BTreeSet, VecDeque};

use super::harness::{Node, NodeDir};

async fn fetch(node: &Node, path: &str) -> reqwest::Response {
    node.http.get(node.url(path)).send().await.unwrap()
}

/// Module specifiers in a JS file: `from './x.js'` and `import('./x.js')`.
/// The modules `js` imports: `(specifier, lazy)`, lazy for `import('…')` (loaded on first use,
/// so not part of the shell's weight).
fn imports(js: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (marker, lazy) in [("from '", false), ("import('", true)] {
        for (i, _) in js.match_indices(marker) {
            let rest = &js[i + marker.len()..];
            if let Some(end) = rest.find('\'') {
                out.push((rest[..end].to_owned(), lazy));
            }
        }
    }
    out
}

fn resolve(base: &str, spec: &str) -> String {
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in spec.split('/') {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_files_are_served_strictly_and_completely() {
    let dir = NodeDir::new().await;
    let node = Node::start(&dir);

    let shell = fetch(&node, "/").await;
    assert_eq!(shell.status(), 200);
    let h = shell.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "no unsafe-inline or unsafe-eval: {csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    let etag = h["etag"].to_str().unwrap().to_owned();
    let html = shell.text().await.unwrap();
    assert!(html.contains("<script type=\"module\" src=\"/ui/app.js\"></script>"));

    // Revalidation: unchanged files answer 304 without a body.
    let again = node.http.get(node.url("/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

    // Every module reachable from the entry point exists, with the JS content type.
    // The shell is what loads before any page module: the static imports from the entry point.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from(["/ui/app.js".to_owned()]);
    let mut sizes = std::collections::BTreeMap::new();
    let mut static_edges: Vec<(String, String)> = Vec::new();
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let resp = fetch(&node, &path).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/javascript; charset=utf-8", "{path}");
        let js = resp.text().await.unwrap();
        for (spec, lazy) in imports(&js) {
            assert!(spec.starts_with('.'), "{path} imports {spec}: only relative modules");
            let target = resolve(&path, &spec);
            if !lazy {
                static_edges.push((path.clone(), target.clone()));
            }
            queue.push_back(target);
        }
        sizes.insert(path, js.len());
    }
    let mut shell = BTreeSet::from(["/ui/app.js".to_owned()]);
    loop {
        let more: Vec<String> = static_edges
            .iter()
            .filter(|(from, to)| shell.contains(from) && !shell.contains(to))
            .map(|(_, to)| to.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        shell.extend(more);
    }
    let js_bytes: usize = shell.iter().map(|p| sizes[p]).sum();
    assert!(shell.len() < seen.len(), "pages load lazily: {shell:?}");
    assert!(seen.len() >= 10, "{seen:?}");
    let css = fetch(&node, "/ui/app.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let css_bytes = css.bytes().await.unwrap().len();
    assert!(
        js_bytes + css_bytes < 150 * 1024,
        "page weight {} bytes is over the 150 KB budget",
        js_bytes + css_bytes
    );
    let icon = fetch(&node, "/ui/icon.svg").await;
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");

    // Nothing else: unknown files, traversal and the test directory are 404 problems.
    for bad in [
        "/ui/nope.js",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/tests/package.json",
        "/ui//app.js",
    ] {
        let resp = fetch(&node, bad).await;
        assert_eq!(resp.status(), 404, "{bad}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{bad}");
    }
    // API responses keep their own, stricter policy.
    let api = fetch(&node, "/health").await;
    assert_eq!(
        api.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );

    // Sealed, the dashboard still loads (to show the unlock page); the API does not.
    assert_eq!(node.post_json("/vault/seal", serde_json::json!({})).await.status(), 204);
    assert_eq!(fetch(&node, "/").await.status(), 200);
    assert_eq!(fetch(&node, "/ui/pages/unlock.js").await.status(), 200);
    assert_eq!(node.get("/system/info").await.status(), 503);
    node.stop();
}
