//! The files tool: the traversal and symlink corpus (nothing outside the workspace is read or
//! changed), literal names that stay confined, limits, and the ordinary operations.

use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use kai_tools::files::{MAX_LIST_ENTRIES, MAX_READ_BYTES, MAX_WRITE_BYTES};
use kai_tools::{Files, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

const CANARY: &str = "CANARY-SECRET-0123456789";

fn ctx(workspace: &Path) -> ToolContext {
    ToolContext {
        task_id: Some("t1".into()),
        step_id: None,
        agent: "kExecutor:executor".into(),
        workspace: workspace.to_path_buf(),
        allowed_hosts: vec![],
    }
}

async fn call(ws: &Path, args: Value) -> Result<Value, ToolError> {
    Files.call(&ctx(ws), args).await
}

/// Every path under `dir` with its type and content, for before/after comparison.
fn snapshot(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path == skip {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let summary = if meta.file_type().is_symlink() {
            format!("link -> {}", std::fs::read_link(&path).unwrap().display())
        } else if meta.is_dir() {
            snapshot(&path, skip, out);
            "dir".into()
        } else {
            format!("file {:?}", std::fs::read(&path).unwrap())
        };
        out.insert(path, summary);
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
}

/// `base/outside/canary.txt` and a workspace `base/ws` holding links that lead out.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("canary.txt"), CANARY).unwrap();
    let ws = base.join("ws");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::write(ws.join("sub/inside.txt"), "inside").unwrap();
    symlink("../outside/canary.txt", ws.join("link")).unwrap();
    symlink(outside.join("canary.txt"), ws.join("abslink")).unwrap();
    symlink(&outside, ws.join("linkdir")).unwrap();
    symlink("../../outside/canary.txt", ws.join("sub/deeplink")).unwrap();
    symlink("sub", ws.join("dirlink_inside")).unwrap();
    symlink("/etc", ws.join("etc")).unwrap();
    Fixture { _tmp: tmp, base, ws }
}

#[tokio::test]
async fn traversal_corpus_is_refused_and_leaks_nothing() {
    let f = fixture();
    let mut before = BTreeMap::new();
    snapshot(&f.base, &f.ws, &mut before);
    let canary_abs = f.base.join("outside/canary.txt").display().to_string();

    let corpus: Vec<String> = vec![
        "../x".into(),
        "../outside/canary.txt".into(),
        "a/../../x".into(),
        "a/..".into(),
        "..".into(),
        "./../x".into(),
        "..//x".into(),
        "sub/../../outside/canary.txt".into(),
        "/etc/passwd".into(),
        "//etc/passwd".into(),
        canary_abs,
        "..\\x".into(),
        "..\\outside\\canary.txt".into(),
        "C:\\x".into(),
        "\\\\server\\share\\x".into(),
        "a\0b".into(),
        "\0".into(),
        "x\n".into(),
        "x\r\ny".into(),
        "\u{7f}".into(),
        "\u{1b}[31mred".into(),
        "x".repeat(256),
        format!("{}/y", "a".repeat(300)),
        "a/".repeat(2100),
        "link".into(),
        "abslink".into(),
        "linkdir".into(),
        "linkdir/canary.txt".into(),
        "linkdir/new.txt".into(),
        "sub/deeplink".into(),
        "dirlink_inside/inside.txt".into(),
        "etc/passwd".into(),
        "etc".into(),
    ];
    assert!(corpus.len() >= 30);
    for path in &corpus {
        for args in [
            json!({"op": "read", "path": path}),
            json!({"op": "write", "path": path, "content": "PWNED"}),
            json!({"op": "list", "path": path}),
        ] {
            let result = call(&f.ws, args.clone()).await;
            let err = result.expect_err(&format!("{args} was not refused"));
            assert!(matches!(err.code(), "denied" | "invalid_args"), "{args}: {err}");
            assert!(!err.to_string().contains("CANARY"), "{err}");
        }
        // Deleting through a link or outside the root is refused; deleting a link itself is
        // allowed (it removes the link) and checked separately below.
        if !matches!(path.as_str(), "link" | "abslink" | "linkdir" | "sub/deeplink" | "etc") {
            let err = call(&f.ws, json!({"op": "delete", "path": path})).await.unwrap_err();
            assert!(matches!(err.code(), "denied" | "invalid_args"), "delete {path:?}: {err}");
        }
    }

    // Links are refused as such, with a message that says so.
    for path in ["link", "linkdir/canary.txt", "sub/deeplink", "dirlink_inside/inside.txt"] {
        let err = call(&f.ws, json!({"op": "read", "path": path})).await.unwrap_err();
        assert_eq!(err.code(), "denied", "{path}: {err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    // Deleting a link removes the link, never its target.
    for link in ["link", "linkdir", "etc"] {
        call(&f.ws, json!({"op": "delete", "path": link})).await.unwrap();
        assert!(std::fs::symlink_metadata(f.ws.join(link)).is_err());
    }

    let mut after = BTreeMap::new();
    snapshot(&f.base, &f.ws, &mut after);
    assert_eq!(before, after, "something outside the workspace changed");
    assert_eq!(std::fs::read_to_string(f.base.join("outside/canary.txt")).unwrap(), CANARY);
}

#[tokio::test]
async fn odd_but_literal_names_stay_inside() {
    let f = fixture();
    let names = [
        "%2e%2e%2f",
        "%2e%2e/%2e%2e/outside",
        "..%2f",
        "%252e%252e%252f",
        "....",
        "C:",
        "\u{2215}etc\u{2215}passwd",
        "..\u{2215}outside",
        ".hidden",
        "name with spaces",
    ];
    for name in names {
        call(&f.ws, json!({"op": "write", "path": name, "content": name})).await.unwrap();
        let file = f.ws.join(name);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), name, "{name}");
        let read = call(&f.ws, json!({"op": "read", "path": name})).await.unwrap();
        assert_eq!(read["content"], name);
        call(&f.ws, json!({"op": "delete", "path": name})).await.unwrap();
        assert!(!file.exists());
    }
    assert!(!f.base.join("etc").exists());
}

#[tokio::test]
async fn ordinary_operations() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("agents/executor"); // created on demand

    let wrote = call(&ws, json!({"op": "write", "path": "notes/a/b.txt", "content": "one"})).await;
    assert_eq!(wrote.unwrap()["bytes"], 3);
    call(&ws, json!({"op": "write", "path": "notes/a/b.txt", "content": "two"})).await.unwrap();
    let read = call(&ws, json!({"op": "read", "path": "./notes//a/b.txt"})).await.unwrap();
    assert_eq!(read["content"], "two");
    assert_eq!(read["path"], "notes/a/b.txt");

    let listed = call(&ws, json!({"op": "list", "path": "notes/a"})).await.unwrap();
    assert_eq!(listed["entries"], json!([{"name": "b.txt", "type": "file", "size": 3}]));
    assert_eq!(listed["truncated"], false);
    let root = call(&ws, json!({"op": "list", "path": "."})).await.unwrap();
    assert_eq!(root["entries"][0]["name"], "notes");
    assert_eq!(root["entries"][0]["type"], "dir");

    let err = call(&ws, json!({"op": "delete", "path": "notes"})).await.unwrap_err();
    assert_eq!(err.code(), "failed", "{err}");
    call(&ws, json!({"op": "delete", "path": "notes/a/b.txt"})).await.unwrap();
    call(&ws, json!({"op": "delete", "path": "notes/a"})).await.unwrap();
    let err = call(&ws, json!({"op": "read", "path": "notes/a/b.txt"})).await.unwrap_err();
    assert_eq!(err.code(), "failed");
    assert!(err.to_string().contains("does not exist"), "{err}");

    for bad in [
        json!({"op": "delete", "path": "."}),
        json!({"op": "read", "path": ""}),
        json!({"op": "write", "path": "x"}),
        json!({"op": "read", "path": "x", "content": "y"}),
        json!({"op": "chmod", "path": "x"}),
        json!({"path": "x"}),
        json!({"op": "read", "path": "notes"}),
    ] {
        let err = call(&ws, bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), "invalid_args", "{bad}: {err}");
    }
}

#[tokio::test]
async fn size_and_count_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();

    let big = "x".repeat(MAX_WRITE_BYTES + 1);
    let err = call(ws, json!({"op": "write", "path": "big", "content": big})).await.unwrap_err();
    assert_eq!(err.code(), "too_large");
    assert!(!ws.join("big").exists());

    std::fs::write(ws.join("max"), vec![b'a'; MAX_READ_BYTES]).unwrap();
    let read = call(ws, json!({"op": "read", "path": "max"})).await.unwrap();
    assert_eq!(read["bytes"], MAX_READ_BYTES);
    std::fs::write(ws.join("over"), vec![b'a'; MAX_READ_BYTES + 1]).unwrap();
    let err = call(ws, json!({"op": "read", "path": "over"})).await.unwrap_err();
    assert_eq!(err.code(), "too_large");

    let many = ws.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..=MAX_LIST_ENTRIES {
        std::fs::write(many.join(format!("f{i:04}")), "").unwrap();
    }
    let listed = call(ws, json!({"op": "list", "path": "many"})).await.unwrap();
    assert_eq!(listed["entries"].as_array().unwrap().len(), MAX_LIST_ENTRIES);
    assert_eq!(listed["truncated"], true);
}

#[tokio::test]
async fn writes_leave_no_temporary_files_and_fifos_do_not_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    for i in 0..5 {
        call(ws, json!({"op": "write", "path": "f", "content": i.to_string()})).await.unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(ws).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["f"]);

    let fifo = ws.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let read = call(ws, json!({"op": "read", "path": "pipe"}));
        let err = tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), "invalid_args", "{err}");
        let err =
            call(ws, json!({"op": "write", "path": "pipe", "content": "x"})).await.unwrap_err();
        assert_eq!(err.code(), "denied", "{err}");
    }
}

/// T3's "symlink swapped mid-operation": a directory is swapped for a link to the outside
/// over and over while reads go through it; the walk holds handles, so no read ever sees the
/// outside file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_directory_for_a_link_mid_operation_leaks_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let f = fixture();
    let (real, evil, swapped) = (f.ws.join("real"), f.ws.join("evil"), f.ws.join("d"));
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("canary.txt"), "inside").unwrap();
    symlink(f.base.join("outside"), &evil).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::fs::rename(&real, &swapped).unwrap();
                std::fs::rename(&swapped, &real).unwrap();
                std::fs::rename(&evil, &swapped).unwrap();
                std::fs::rename(&swapped, &evil).unwrap();
            }
        })
    };
    let (mut inside, mut refused) = (0, 0);
    for _ in 0..2000 {
        match call(&f.ws, json!({"op": "read", "path": "d/canary.txt"})).await {
            Ok(read) => {
                assert_eq!(read["content"], "inside", "leaked: {read}");
                inside += 1;
            }
            Err(err) => {
                assert!(!err.to_string().contains("CANARY"), "{err}");
                refused += 1;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!("{inside} reads inside, {refused} refused or missing");
}
