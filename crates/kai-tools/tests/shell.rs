//! The shell tool: disabled without bubblewrap, and (where bwrap works) the sandbox's promises:
//! output, no network, nothing writable outside `/work`, a cleared environment, caps, timeouts.
//!
//! Tests that need a working bwrap skip with a printed reason when it cannot run here, unless
//! `KAI_TEST_REQUIRE_BWRAP=1`, which makes them fail instead.

use std::path::Path;
use std::time::{Duration, Instant};

use kai_tools::{Shell, ShellConfig, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

fn ctx(workspace: &Path) -> ToolContext {
    ToolContext {
        task_id: None,
        step_id: None,
        agent: "kExecutor:executor".into(),
        workspace: workspace.to_path_buf(),
        allowed_hosts: vec![],
    }
}

/// A working sandbox, or `None` (test skipped) when bwrap cannot run here.
fn sandbox(config: ShellConfig) -> Option<Shell> {
    let shell = Shell::detect(config);
    match shell.available() {
        Ok(()) => Some(shell),
        Err(why) if std::env::var("KAI_TEST_REQUIRE_BWRAP").is_ok_and(|v| v == "1") => {
            panic!("KAI_TEST_REQUIRE_BWRAP=1 but {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

async fn run(shell: &Shell, ws: &Path, command: &str) -> Value {
    shell.call(&ctx(ws), json!({"command": command})).await.unwrap()
}

#[tokio::test]
async fn without_bwrap_the_tool_is_registered_but_unavailable() {
    let shell = Shell::detect(ShellConfig {
        bwrap: Some("/nonexistent/bwrap".into()),
        ..ShellConfig::default()
    });
    let why = shell.available().unwrap_err();
    assert!(why.contains("apt-get install bubblewrap"), "{why}");
    assert_eq!(shell.spec().name, "shell");
    let tmp = tempfile::tempdir().unwrap();
    let err = shell.call(&ctx(tmp.path()), json!({"command": "echo hi"})).await.unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)));
    assert_eq!(err.code(), "unavailable");
    assert!(err.to_string().starts_with("shell is disabled: bubblewrap (bwrap)"), "{err}");
}

#[tokio::test]
async fn a_command_runs_in_the_workspace() {
    let Some(shell) = sandbox(ShellConfig::default()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws"); // created on demand
    let out = run(&shell, &ws, "echo hello; pwd; echo oops >&2; echo data > out.txt; exit 3").await;
    assert_eq!(out["exit_code"], 3);
    assert_eq!(out["stdout"], "hello\n/work\n");
    assert_eq!(out["stderr"], "oops\n");
    assert_eq!(out["truncated"], false);
    assert_eq!(std::fs::read_to_string(ws.join("out.txt")).unwrap(), "data\n");
}

#[tokio::test]
async fn the_network_is_unreachable() {
    let Some(shell) = sandbox(ShellConfig::default()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let out = run(&shell, tmp.path(), "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").await;
    assert_eq!(out["stdout"], "lo\n", "interfaces: {out}");
    let out = run(&shell, tmp.path(), "ls /sys/class/net").await;
    assert_ne!(out["exit_code"], 0);
    if Path::new("/usr/bin/bash").exists() {
        let connect = format!("bash -c 'echo x > /dev/tcp/127.0.0.1/{port}'");
        let out = run(&shell, tmp.path(), &connect).await;
        assert_ne!(out["exit_code"], 0, "{out}");
    }
    assert!(listener.accept().is_err(), "a connection left the sandbox");
}

#[tokio::test]
async fn nothing_outside_the_workspace_is_writable_or_secret() {
    let Some(shell) = sandbox(ShellConfig::default()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    for command in [
        "touch /etc/kai-sandbox-test",
        "touch /usr/kai-sandbox-test",
        "touch /kai-sandbox-test",
        "mount -o remount,rw /usr",
        "cat /etc/shadow",
        "ls /root",
        "ls /home",
    ] {
        let out = run(&shell, tmp.path(), command).await;
        assert_ne!(out["exit_code"], 0, "{command}: {out}");
    }
    assert!(!Path::new("/etc/kai-sandbox-test").exists());
    assert!(!Path::new("/usr/kai-sandbox-test").exists());

    let out = run(&shell, tmp.path(), "grep CapEff /proc/self/status; env | sort").await;
    let stdout = out["stdout"].as_str().unwrap();
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    let vars: Vec<&str> = stdout.lines().skip(1).filter_map(|l| l.split('=').next()).collect();
    for var in &vars {
        assert!(
            ["HOME", "LANG", "PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(var),
            "leaked {var}"
        );
    }
    let out = run(&shell, tmp.path(), "touch /tmp/scratch && echo ok").await;
    assert_eq!(out["stdout"], "ok\n");
}

#[tokio::test]
async fn a_timeout_kills_the_command() {
    let Some(shell) = sandbox(ShellConfig::default()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let args = json!({"command": "sleep 37.25 & sleep 37.5", "timeout_secs": 1});
    let err = shell.call(&ctx(tmp.path()), args).await.unwrap_err();
    assert_eq!(err.code(), "timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    // Neither sleep survives (the process group and the sandbox's PID namespace are gone).
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeping() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sleeping(), "a sleep outlived the timeout");
}

/// Whether a process of the timeout test still runs.
fn sleeping() -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|c| c.starts_with(b"sleep\x0037.25") || c.starts_with(b"sleep\x0037.5"))
    })
}

#[tokio::test]
async fn output_is_capped_and_arguments_checked() {
    let Some(shell) = sandbox(ShellConfig { max_output_bytes: 1000, ..ShellConfig::default() })
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&shell, tmp.path(), "head -c 200000 /dev/zero | tr '\\0' x; echo done >&2").await;
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(out["stderr"], "done\n");
    assert_eq!(out["truncated"], true);
    assert_eq!(out["exit_code"], 0);

    for bad in [
        json!({"command": "true", "timeout_secs": 0}),
        json!({"command": "true", "timeout_secs": 61}),
        json!({"command": "a\0b"}),
        json!({"cmd": "true"}),
    ] {
        let err = shell.call(&ctx(tmp.path()), bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), "invalid_args", "{bad}: {err}");
    }
}
