//! The `shell` tool: `sh -c <command>` inside a bubblewrap sandbox, or not at all.
//!
//! The sandbox ([`sandbox_args`]) unshares every namespace (so no network: only a down
//! loopback), drops every capability (also those of its new user namespace), dies with its
//! parent and runs in a new session (no terminal injection). It sees the system read-only
//! (`/usr`, the `/bin`-style links, a short list of `/etc` files; no `/home`, `/root`, `/sys` or
//! `/etc/shadow`) and its own root is read-only; it gets private `/proc`, `/dev` and `/tmp`,
//! and the only host directory it can change is the agent's workspace, bound at `/work`. The
//! environment is cleared except `PATH`, `HOME` and `LANG`.
//!
//! [`Shell::detect`] looks for `bwrap` and runs one probe sandbox; where that fails (not
//! installed, or a container that forbids user namespaces) the tool stays registered and every
//! call returns `Unavailable` with how to fix it. There is no unsandboxed fallback.
//!
//! A call has a deadline (at most 60 s); on expiry the process group is killed (and the
//! sandbox's PID namespace with it). stdout and stderr are each kept up to
//! [`ShellConfig::max_output_bytes`] and drained beyond that, so a chatty command cannot block.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::{Tool, ToolContext, ToolError, ToolSpec, parse_args};

/// Longest deadline a call may ask for.
pub const MAX_TIMEOUT_SECS: u64 = 60;

/// `/etc` entries the sandbox sees (when present): enough for libc, name lookups of users,
/// Debian's alternatives links and TLS roots.
const ETC_ENTRIES: &[&str] = &[
    "alternatives",
    "ca-certificates",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "passwd",
    "profile",
    "ssl",
];

/// Settings of the shell tool.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The bwrap binary; `None` searches `PATH`.
    pub bwrap: Option<PathBuf>,
    /// Deadline of a call that does not ask for one (default 30 s).
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr, each (default 64 KiB).
    pub max_output_bytes: usize,
}

impl Default for ShellConfig {
    fn default() -> Self {
        Self { bwrap: None, timeout: Duration::from_secs(30), max_output_bytes: 64 * 1024 }
    }
}

/// The `shell` tool.
#[derive(Debug, Clone)]
pub struct Shell {
    config: ShellConfig,
    /// The working bwrap, or why there is none.
    bwrap: Result<PathBuf, String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ShellArgs {
    command: String,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// The bwrap arguments up to (not including) the command: the sandbox described in the module
/// documentation, with `workspace` (if any) bound read-write at `/work`.
pub fn sandbox_args(workspace: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> =
        ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
            .map(String::from)
            .into();
    args.extend(["--ro-bind", "/usr", "/usr"].map(String::from));
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let path = Path::new(top);
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(path) {
                    args.extend(["--symlink".into(), target.display().to_string(), top.into()]);
                }
            }
            Ok(meta) if meta.is_dir() => args.extend(["--ro-bind".into(), top.into(), top.into()]),
            _ => {}
        }
    }
    for entry in ETC_ENTRIES {
        let path = format!("/etc/{entry}");
        if Path::new(&path).exists() {
            args.extend(["--ro-bind".into(), path.clone(), path]);
        }
    }
    args.extend(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"].map(String::from));
    if let Some(ws) = workspace {
        args.extend(["--bind".into(), ws.display().to_string(), "/work".into()]);
        args.extend(["--chdir".into(), "/work".into()]);
    }
    // The sandbox's own root (where the mount points live) becomes read-only too.
    args.extend(["--remount-ro", "/"].map(String::from));
    args
}

fn disabled(detail: &str) -> String {
    format!(
        "shell is disabled: bubblewrap (bwrap) is not installed or cannot create namespaces here; \
         install it with `apt-get install bubblewrap` (or your distribution's package) and, in a \
         container, allow unprivileged user namespaces ({detail})"
    )
}

/// Runs one `true` in the sandbox; `Err` carries bwrap's complaint.
fn probe(bwrap: &Path) -> Result<(), String> {
    let mut child = std::process::Command::new(bwrap)
        .args(sandbox_args(None))
        .arg("true")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                let first = stderr.lines().next().unwrap_or("no message").trim().to_string();
                return Err(format!("the probe sandbox failed with {status}: {first}"));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the probe sandbox did not finish within 10 s".into());
            }
            Err(e) => return Err(format!("waiting for the probe sandbox failed: {e}")),
        }
    }
}

impl Shell {
    /// Finds bwrap and checks once that it can build the sandbox here.
    pub fn detect(config: ShellConfig) -> Shell {
        let bwrap = match config.bwrap.clone().or_else(|| find_in_path("bwrap")) {
            None => Err(disabled("bwrap was not found on PATH")),
            Some(path) if !path.is_file() => {
                Err(disabled(&format!("{} does not exist", path.display())))
            }
            Some(path) => probe(&path).map(|()| path).map_err(|why| disabled(&why)),
        };
        if let Err(why) = &bwrap {
            tracing::warn!("{why}");
        }
        Shell { config, bwrap }
    }

    /// `Ok` when calls can run; otherwise the message every call returns.
    pub fn available(&self) -> Result<(), String> {
        self.bwrap.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    async fn run(
        &self,
        bwrap: &Path,
        workspace: &Path,
        command: &str,
        timeout: Duration,
    ) -> Result<serde_json::Value, ToolError> {
        std::fs::create_dir_all(workspace)
            .map_err(|e| ToolError::Failed(format!("cannot create the agent's workspace: {e}")))?;
        let mut child = tokio::process::Command::new(bwrap)
            .args(sandbox_args(Some(workspace)))
            .args(["/bin/sh", "-c", command])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", "/work")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ToolError::Failed(format!("cannot start the sandbox: {e}")))?;
        let max = self.config.max_output_bytes;
        let stdout = tokio::spawn(capped(child.stdout.take(), max));
        let stderr = tokio::spawn(capped(child.stderr.take(), max));
        let pid = child.id();
        let finished = tokio::time::timeout(timeout, async {
            let status = child.wait().await;
            (status, stdout.await, stderr.await)
        })
        .await;
        let Ok((status, stdout, stderr)) = finished else {
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            return Err(ToolError::Timeout(format!(
                "the command did not finish within {} s and was killed; raise timeout_secs (at most {MAX_TIMEOUT_SECS}) or make it faster",
                timeout.as_secs_f32()
            )));
        };
        let status = status
            .map_err(|e| ToolError::Failed(format!("waiting for the command failed: {e}")))?;
        let failed = |e| ToolError::Failed(format!("reading the command's output failed: {e}"));
        let (stdout, out_cut) = stdout.map_err(failed)?;
        let (stderr, err_cut) = stderr.map_err(failed)?;
        let exit_code = status
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s));
        Ok(json!({
            "exit_code": exit_code,
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&stderr),
            "truncated": out_cut || err_cut,
        }))
    }
}

/// Reads `pipe` to its end, keeping the first `max` bytes; `true` when some were dropped.
async fn capped(pipe: Option<impl AsyncRead + Unpin>, max: usize) -> (Vec<u8>, bool) {
    let (mut kept, mut cut) = (Vec::new(), false);
    let Some(mut pipe) = pipe else { return (kept, cut) };
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        let room = max - kept.len();
        kept.extend_from_slice(&buf[..n.min(room)]);
        cut |= n > room;
    }
    (kept, cut)
}

#[async_trait::async_trait]
impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description: format!(
                "Run a POSIX shell command in a sandbox with no network. The working directory \
                 /work is your workspace (the only writable place besides /tmp). Output is cut \
                 at {} bytes per stream; the default deadline is {} s (timeout_secs, at most {MAX_TIMEOUT_SECS}).",
                self.config.max_output_bytes,
                self.config.timeout.as_secs()
            ),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "run with sh -c in /work"},
                    "timeout_secs": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECS}
                },
                "required": ["command"],
                "additionalProperties": false
            })
            .into(),
            risky: false,
        }
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let bwrap = self.bwrap.as_ref().map_err(|why| ToolError::Unavailable(why.clone()))?;
        let args: ShellArgs = parse_args("shell", args)?;
        if args.command.contains('\0') {
            return Err(ToolError::InvalidArgs("the command contains a NUL character".into()));
        }
        let timeout = match args.timeout_secs {
            None => self.config.timeout,
            Some(secs @ 1..=MAX_TIMEOUT_SECS) => Duration::from_secs(secs),
            Some(other) => {
                return Err(ToolError::InvalidArgs(format!(
                    "timeout_secs is {other}; it must be between 1 and {MAX_TIMEOUT_SECS}"
                )));
            }
        };
        self.run(bwrap, &ctx.workspace, &args.command, timeout).await
    }
}
