//! `kai audit verify` on a real node's log after tampering with the database directly:
//! a changed byte, a deleted entry, a cut tail and two swapped entries are each detected,
//! and the first bad entry is named.

use super::harness::{Node, NodeDir, exec_sql};

/// A stopped node with 61 entries and a checkpoint every 10 (plus one at shutdown).
async fn node_with_log() -> NodeDir {
    let dir = NodeDir::new().await;
    dir.write_config("[audit]\ncheckpoint_every = 10\n");
    let node = Node::start(&dir);
    for n in 0..59 {
        // One at a time, so group commit does not merge them and checkpoints land every 10.
        let resp = node
            .post_json("/events", serde_json::json!({"type": "TAMPER_PROBE", "payload": {"n": n}}))
            .await;
        assert_eq!(resp.status(), 201);
    }
    assert_eq!(node.stop().code(), Some(0));
    dir
}

fn verify(dir: &NodeDir) -> serde_json::Value {
    let out = dir.run(&["--json", "audit", "verify"]);
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_log_verifies() {
    let dir = node_with_log().await;
    let out = dir.run(&["audit", "verify"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("audit log OK: "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_byte_is_named() {
    let dir = node_with_log().await;
    exec_sql(&dir, &["UPDATE audit_entries SET target = 'event:forged' WHERE seq = 25"]).await;
    let r = verify(&dir);
    assert_eq!(r["ok"], false);
    assert_eq!(r["first_bad_entry"], 25, "{r}");
    let out = dir.run(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("entry 25"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_entry_is_named() {
    let dir = node_with_log().await;
    exec_sql(&dir, &["DELETE FROM audit_entries WHERE seq = 30"]).await;
    let r = verify(&dir);
    assert_eq!(r["first_bad_entry"], 30, "{r}");
    assert!(r["reason"].as_str().unwrap().contains("missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_tail_is_named() {
    let dir = node_with_log().await;
    // Cut the entries and every checkpoint past 45 from the database; the witness file
    // outside the database still remembers the full size.
    exec_sql(
        &dir,
        &[
            "DELETE FROM audit_entries WHERE seq > 45",
            "DELETE FROM audit_checkpoints WHERE size > 45",
        ],
    )
    .await;
    let r = verify(&dir);
    assert_eq!(r["first_bad_entry"], 46, "{r}");
    assert!(r["reason"].as_str().unwrap().contains("truncated"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_entries_are_named() {
    let dir = node_with_log().await;
    exec_sql(
        &dir,
        &[
            "UPDATE audit_entries SET seq = -1 WHERE seq = 20",
            "UPDATE audit_entries SET seq = 20 WHERE seq = 21",
            "UPDATE audit_entries SET seq = 21 WHERE seq = -1",
        ],
    )
    .await;
    let r = verify(&dir);
    assert_eq!(r["first_bad_entry"], 20, "{r}");
}
