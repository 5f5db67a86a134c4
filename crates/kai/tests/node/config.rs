//! Configuration at the process level: invalid layers stop the node with an error naming the
//! layer and key; a watched change is applied live or rejected with the old config kept.

use std::time::Duration;

use super::harness::{Node, NodeDir, eventually};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_configuration_refuses_to_start_and_names_the_culprit() {
    let dir = NodeDir::new().await;
    let file = dir.config_file().display().to_string();

    dir.write_config("[server]\nport = 8080\n");
    let out = dir.run(&["serve"]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains(&file) && err.contains("server.port") && err.contains("unknown field `port`"),
        "{err}"
    );
    assert!(err.contains("listen"), "allowed keys are listed: {err}");

    dir.write_config("[audit]\ncheckpoint_every = 0\n");
    let err = stderr(&dir.run(&["serve"]));
    assert!(
        err.contains("audit.checkpoint_every") && err.contains("allowed: 1 to 1000000"),
        "{err}"
    );

    dir.write_config("[log]\nlevel = \"chatty\"\n");
    let err = stderr(&dir.run(&["serve"]));
    assert!(err.contains("log.level") && err.contains("unknown variant"), "{err}");

    dir.write_config("");
    let out =
        dir.kai().env("KAI_SERVER__REQUEST_TIMEOUT_SECS", "soon").args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("environment variable KAI_SERVER__REQUEST_TIMEOUT_SECS"),
        "{}",
        stderr(&out)
    );

    let out = dir.run(&["--set", "server.request_timeout_secs=99999", "config", "check"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("command-line flag --set"));

    // The system file and the environment file are layers too.
    std::fs::write(dir.tmp.path().join("etc/config.toml"), "[node]\nname = \"\"\n").unwrap();
    let err = stderr(&dir.run(&["config", "check"]));
    assert!(err.contains("system file") && err.contains("node.name"), "{err}");
    std::fs::write(dir.tmp.path().join("etc/config.toml"), "[node]\nname = \"sys\"\n").unwrap();
    let out = dir.run(&["--env", "prod", "config", "check"]);
    assert_eq!(out.status.code(), Some(78), "a named environment file must exist");
    std::fs::write(dir.tmp.path().join("etc/config.prod.toml"), "[node]\nname = \"prod\"\n")
        .unwrap();
    let out = dir.run(&["--env", "prod", "--json", "config", "show"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["config"]["node"]["name"], "prod");
    assert!(shown["sources"]["node.name"].as_str().unwrap().starts_with("environment file"));
    assert!(!dir.data().exists(), "nothing was initialized by refused starts");
}

async fn node_name(node: &Node) -> String {
    node.get_json("/system/info").await["name"].as_str().unwrap().to_owned()
}

async fn reloads(node: &Node, outcome: &str) -> usize {
    let entries = node.get_json("/audit/entries?limit=1000").await;
    entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "config.reload" && e["outcome"] == outcome)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_applies_valid_changes_and_rejects_invalid_ones() {
    let dir = NodeDir::new().await;
    dir.write_config("[node]\nname = \"one\"\n[log]\nformat = \"json\"\n");
    let node = Node::start(&dir);
    assert_eq!(node_name(&node).await, "one");

    dir.write_config("[node]\nname = \"two\"\n[audit]\ncheckpoint_every = 5\n");
    eventually(Duration::from_secs(20), "reload to name two", || async {
        (node_name(&node).await == "two").then_some(())
    })
    .await;
    assert_eq!(node.get_json("/system/config").await["config"]["audit"]["checkpoint_every"], 5);
    assert_eq!(reloads(&node, "success").await, 1);

    // Invalid: rejected, logged, audited; the running configuration stays.
    dir.write_config("[node]\nname = \"three\"\nbogus = 1\n");
    eventually(Duration::from_secs(20), "rejected reload audited", || async {
        (reloads(&node, "failure").await == 1).then_some(())
    })
    .await;
    assert_eq!(node_name(&node).await, "two");
    // …and shown by /system/config (the dashboard's settings page) until a valid edit.
    let cfg = node.get_json("/system/config").await;
    let problems = cfg["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["key"].as_str().unwrap().starts_with("node")
            && p["source"].as_str().unwrap().starts_with("user file")
            && p["message"].as_str().unwrap().contains("bogus")),
        "{cfg}"
    );
    assert!(cfg["rejected_at"].is_string());
    let log = std::fs::read_to_string(dir.log_file()).unwrap();
    assert!(
        log.contains("configuration change rejected") && log.contains("bogus"),
        "rejection is logged"
    );

    // A restart-only key: the live parts apply, the bus keeps its settings until restart.
    dir.write_config("[node]\nname = \"four\"\n[bus]\nsubscriber_queue = 7\n");
    eventually(Duration::from_secs(20), "reload to name four", || async {
        (node_name(&node).await == "four").then_some(())
    })
    .await;
    let cfg = node.get_json("/system/config").await;
    assert_eq!(cfg["config"]["bus"]["subscriber_queue"], 1024, "the bus needs a restart");
    assert_eq!(cfg["problems"], serde_json::json!([]), "a valid edit clears the rejection");
    assert!(cfg["rejected_at"].is_null());
    assert_eq!(cfg["pending_restart"], serde_json::json!(["bus"]));
    let entries = node.get_json("/audit/entries?limit=1000").await;
    let last = entries["entries"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == "config.reload")
        .unwrap()
        .clone();
    assert_eq!(last["details"]["pending_restart"][0], "bus");
    assert_eq!(node.stop().code(), Some(0));
}
