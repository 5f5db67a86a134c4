//! The `files` tool: read, write, list and delete files inside the agent's workspace.
//!
//! Confinement is structural, not a string-prefix check. A path is first checked lexically
//! ([`parse_path`]: relative, no `..`, no backslashes, no control characters, component and
//! total length limits; nothing is ever percent-decoded). It is then walked one component at a
//! time from an open handle on the workspace, each step an `openat(parent, name, O_NOFOLLOW)`
//! relative to the directory opened by the previous step. So:
//!
//! - no step can leave the workspace (there is no `..` and every lookup is relative to a handle
//!   inside it);
//! - no symbolic link is ever followed, at any depth (`O_NOFOLLOW` on every component, the last
//!   one included), so a link inside the workspace pointing outside yields `Denied`, not bytes;
//! - swapping a directory for a link between steps cannot redirect the walk, because the walk
//!   holds handles, not names (no check-then-use race as with `canonicalize` + `open`).
//!
//! Writes are atomic: a temporary file in the same directory, fsync'd, renamed over the target,
//! then the directory fsync'd. Opening uses `O_NONBLOCK` and only regular files are read, so a
//! FIFO in the workspace cannot hang a call. Unix only (the node runs on Linux and macOS).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde_json::json;

use crate::{Tool, ToolContext, ToolError, ToolSpec, parse_args};

/// Largest file `read` returns.
pub const MAX_READ_BYTES: usize = 1024 * 1024;
/// Largest content `write` accepts.
pub const MAX_WRITE_BYTES: usize = 1024 * 1024;
/// Most entries `list` returns.
pub const MAX_LIST_ENTRIES: usize = 1000;
/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

/// The `files` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Files;

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Read,
    Write,
    List,
    Delete,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesArgs {
    op: Op,
    path: String,
    #[serde(default)]
    content: Option<String>,
}

/// Splits a workspace-relative path into its components after the lexical checks; `""` and
/// `"."` are the workspace itself (no components).
pub fn parse_path(path: &str) -> Result<Vec<&str>, ToolError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(ToolError::InvalidArgs(format!(
            "the path is longer than {MAX_PATH_BYTES} bytes"
        )));
    }
    if path.chars().any(char::is_control) {
        return Err(ToolError::InvalidArgs(
            "the path contains a control character (e.g. NUL)".into(),
        ));
    }
    if path.contains('\\') {
        return Err(ToolError::Denied(
            "the path contains a backslash; use forward slashes, relative to the workspace".into(),
        ));
    }
    if path.starts_with('/') {
        return Err(ToolError::Denied(format!(
            "{path} is absolute; give a path relative to the agent's workspace"
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(ToolError::Denied(
                    "the path contains \"..\"; paths must stay inside the workspace".into(),
                ));
            }
            name if name.len() > MAX_NAME_BYTES => {
                return Err(ToolError::InvalidArgs(format!(
                    "a path component is longer than {MAX_NAME_BYTES} bytes"
                )));
            }
            name => parts.push(name),
        }
    }
    Ok(parts)
}

fn io_error(path: &str, err: Errno) -> ToolError {
    match err {
        Errno::NOENT => ToolError::Failed(format!("{path} does not exist in the workspace")),
        Errno::EXIST => ToolError::Failed(format!("{path} already exists")),
        Errno::NOTDIR => ToolError::Failed(format!("a parent of {path} is not a directory")),
        Errno::ISDIR => ToolError::Failed(format!("{path} is a directory")),
        Errno::NOTEMPTY => ToolError::Failed(format!("{path} is a directory that is not empty")),
        Errno::ACCESS | Errno::PERM => ToolError::Failed(format!("permission denied for {path}")),
        Errno::NOSPC => ToolError::Failed("the disk is full".into()),
        other => ToolError::Failed(format!("{path}: {}", std::io::Error::from(other))),
    }
}

fn symlink_denied(path: &str) -> ToolError {
    ToolError::Denied(format!(
        "{path} is or goes through a symbolic link; the files tool never follows links"
    ))
}

/// The file type of `name` in `dir`, without following a link.
fn type_of(dir: &OwnedFd, name: &str) -> Result<FileType, Errno> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode))
}

/// Opens `name` in `dir` with `O_NOFOLLOW`, turning a link into `Denied`.
fn open_at(
    dir: &OwnedFd,
    name: &str,
    flags: OFlags,
    mode: Mode,
    shown: &str,
) -> Result<OwnedFd, ToolError> {
    rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode).map_err(|e| {
        if type_of(dir, name).is_ok_and(|t| t == FileType::Symlink) {
            symlink_denied(shown)
        } else {
            io_error(shown, e)
        }
    })
}

/// An open handle on the workspace root, creating the directory if missing.
fn open_root(workspace: &Path) -> Result<OwnedFd, ToolError> {
    std::fs::create_dir_all(workspace)
        .map_err(|e| ToolError::Failed(format!("cannot create the agent's workspace: {e}")))?;
    rustix::fs::open(workspace, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ToolError::Failed(format!("cannot open the agent's workspace: {e}")))
}

/// Walks `parts` from `root`, one no-follow `openat` per directory, optionally creating them.
fn walk(root: OwnedFd, parts: &[&str], create: bool, shown: &str) -> Result<OwnedFd, ToolError> {
    let mut dir = root;
    for part in parts {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        dir = match open_at(&dir, part, flags, Mode::empty(), shown) {
            Err(ToolError::Failed(_)) if create && type_of(&dir, part) == Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, *part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_error(shown, e)),
                }
                open_at(&dir, part, flags, Mode::empty(), shown)?
            }
            other => other?,
        };
    }
    Ok(dir)
}

fn read(root: OwnedFd, parts: &[&str], shown: &str) -> Result<serde_json::Value, ToolError> {
    let (name, parents) = parts.split_last().ok_or_else(|| is_workspace("read"))?;
    let dir = walk(root, parents, false, shown)?;
    let fd = open_at(&dir, name, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty(), shown)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| io_error(shown, e))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ToolError::InvalidArgs(format!(
            "{shown} is not a regular file; use op \"list\" for directories"
        )));
    }
    let too_large =
        || ToolError::TooLarge(format!("{shown} is larger than {MAX_READ_BYTES} bytes"));
    if st.st_size as u64 > MAX_READ_BYTES as u64 {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_READ_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("reading {shown} failed: {e}")))?;
    if bytes.len() > MAX_READ_BYTES {
        return Err(too_large());
    }
    Ok(json!({"path": shown, "content": String::from_utf8_lossy(&bytes), "bytes": bytes.len()}))
}

fn write(
    root: OwnedFd,
    parts: &[&str],
    content: &str,
    shown: &str,
) -> Result<serde_json::Value, ToolError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if content.len() > MAX_WRITE_BYTES {
        return Err(ToolError::TooLarge(format!("content is larger than {MAX_WRITE_BYTES} bytes")));
    }
    let (name, parents) = parts.split_last().ok_or_else(|| is_workspace("write"))?;
    let dir = walk(root, parents, true, shown)?;
    match type_of(&dir, name) {
        Ok(FileType::RegularFile) | Err(Errno::NOENT) => {}
        Ok(FileType::Symlink) => return Err(symlink_denied(shown)),
        Ok(FileType::Directory) => return Err(io_error(shown, Errno::ISDIR)),
        Ok(_) => return Err(ToolError::Denied(format!("{shown} is not a regular file"))),
        Err(e) => return Err(io_error(shown, e)),
    }
    let tmp = format!(".kai-tmp-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL;
    let fd = open_at(&dir, &tmp, flags, Mode::from_raw_mode(0o644), shown)?;
    let written = (|| {
        let mut file = std::fs::File::from(fd);
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        rustix::fs::renameat(&dir, &tmp, &dir, *name)?;
        rustix::fs::fsync(&dir)?;
        Ok::<_, std::io::Error>(())
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
        return Err(ToolError::Failed(format!("writing {shown} failed: {e}")));
    }
    Ok(json!({"path": shown, "bytes": content.len()}))
}

fn list(root: OwnedFd, parts: &[&str], shown: &str) -> Result<serde_json::Value, ToolError> {
    let dir = walk(root, parts, false, shown)?;
    let entries = rustix::fs::Dir::read_from(&dir).map_err(|e| io_error(shown, e))?;
    let mut out = Vec::new();
    let mut truncated = false;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(shown, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "." || name == ".." {
            continue;
        }
        if out.len() == MAX_LIST_ENTRIES {
            truncated = true;
            break;
        }
        let st = rustix::fs::statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let kind = match st.map(|st| FileType::from_raw_mode(st.st_mode)) {
            Some(FileType::RegularFile) => "file",
            Some(FileType::Directory) => "dir",
            Some(FileType::Symlink) => "symlink",
            _ => "other",
        };
        out.push(json!({"name": name, "type": kind, "size": st.map_or(0, |st| st.st_size)}));
    }
    out.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(json!({"path": shown, "entries": out, "truncated": truncated}))
}

/// Deletes a file, a link (not its target) or an empty directory.
fn delete(root: OwnedFd, parts: &[&str], shown: &str) -> Result<serde_json::Value, ToolError> {
    let (name, parents) = parts.split_last().ok_or_else(|| is_workspace("delete"))?;
    let dir = walk(root, parents, false, shown)?;
    let flags = match type_of(&dir, name).map_err(|e| io_error(shown, e))? {
        FileType::Directory => AtFlags::REMOVEDIR,
        _ => AtFlags::empty(),
    };
    rustix::fs::unlinkat(&dir, *name, flags).map_err(|e| io_error(shown, e))?;
    rustix::fs::fsync(&dir).map_err(|e| io_error(shown, e))?;
    Ok(json!({"path": shown, "deleted": true}))
}

fn is_workspace(op: &str) -> ToolError {
    ToolError::InvalidArgs(format!("op \"{op}\" needs a path to a file inside the workspace"))
}

fn run(workspace: &Path, args: FilesArgs) -> Result<serde_json::Value, ToolError> {
    let parts = parse_path(&args.path)?;
    let shown = if parts.is_empty() { ".".to_string() } else { parts.join("/") };
    if !matches!(args.op, Op::Write) && args.content.is_some() {
        return Err(ToolError::InvalidArgs("content is only used with op \"write\"".into()));
    }
    let root = open_root(workspace)?;
    match args.op {
        Op::Read => read(root, &parts, &shown),
        Op::Write => {
            let content = args
                .content
                .ok_or_else(|| ToolError::InvalidArgs("op \"write\" needs content".into()))?;
            write(root, &parts, &content, &shown)
        }
        Op::List => list(root, &parts, &shown),
        Op::Delete => delete(root, &parts, &shown),
    }
}

#[async_trait::async_trait]
impl Tool for Files {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "files".into(),
            description: "Read, write, list or delete files in your workspace. Paths are relative \
                          to the workspace; symbolic links are not followed. Reads and writes are \
                          limited to 1 MiB, listings to 1000 entries."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": ["read", "write", "list", "delete"]},
                    "path": {"type": "string", "description": "relative path, e.g. notes/today.md; \".\" is the workspace"},
                    "content": {"type": "string", "description": "text to write (op write only)"}
                },
                "required": ["op", "path"],
                "additionalProperties": false
            }).into(),
            risky: false,
        }
    }

    async fn call(
        &self,
        ctx: &ToolContext,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ToolError> {
        let args: FilesArgs = parse_args("files", args)?;
        let workspace = ctx.workspace.clone();
        tokio::task::spawn_blocking(move || run(&workspace, args)).await.map_err(|e| {
            ToolError::Failed(format!("the file operation stopped unexpectedly: {e}"))
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_rules() {
        assert_eq!(parse_path("a/./b//c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse_path(".").unwrap(), Vec::<&str>::new());
        assert_eq!(parse_path("%2e%2e%2fx").unwrap(), vec!["%2e%2e%2fx"]);
        assert_eq!(parse_path("a\u{2215}b").unwrap(), vec!["a\u{2215}b"]);
        for bad in ["../x", "a/../../x", "/etc/passwd", "..\\x", "C:\\x", "a/.."] {
            assert_eq!(parse_path(bad).unwrap_err().code(), "denied", "{bad}");
        }
        for bad in ["a\0b", "a\nb", &"x".repeat(256), &"a/".repeat(2049)] {
            assert_eq!(parse_path(bad).unwrap_err().code(), "invalid_args", "{bad:?}");
        }
    }
}
