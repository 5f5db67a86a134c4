//! `kai artifact upload|list|get|share|rm`: artifacts through the running node. Uploads and
//! downloads stream (constant memory) with a progress bar on a terminal (indicatif; hidden when
//! stderr is not one).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use crate::Ctx;
use crate::cli::ArtifactCommand;
use crate::client::NodeClient;
use crate::output::outln;
use crate::secure::client;

fn enc(s: &str) -> String {
    kai_blob::s3::sigv4::uri_encode(s, false)
}

fn bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

fn human(n: i64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1024.0 * 1024.0 * 1024.0 => format!("{:.1} GiB", n / (1024.0 * 1024.0 * 1024.0)),
        n if n >= 1024.0 * 1024.0 => format!("{:.1} MiB", n / (1024.0 * 1024.0)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}

async fn upload(
    ctx: &Ctx,
    node: &NodeClient,
    file: &Path,
    name: Option<String>,
    tags: &[String],
    task: Option<String>,
) -> anyhow::Result<()> {
    let meta = tokio::fs::metadata(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", file.display());
    }
    let name = match name {
        Some(n) => n,
        None => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("the file has no name; pass --name")?,
    };
    let mut path = format!("/artifact/upload?name={}", enc(&name));
    if !tags.is_empty() {
        path.push_str(&format!("&tags={}", enc(&tags.join(","))));
    }
    if let Some(t) = &task {
        path.push_str(&format!("&task_id={}", enc(t)));
    }
    let progress = bar(Some(meta.len()), "upload");
    let counter = progress.clone();
    let reader = tokio::fs::File::open(file).await?;
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).inspect(move |chunk| {
            if let Ok(c) = chunk {
                counter.inc(c.len() as u64);
            }
        });
    let resp = node
        .request(reqwest::Method::POST, &path)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, meta.len())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .with_context(|| format!("cannot reach the node at {}", node.base()))?;
    progress.finish_and_clear();
    let done: Value = NodeClient::check(resp).await?.json().await?;
    if ctx.json {
        outln!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    let a = &done["artifact"];
    outln!(
        "{}  {} v{}  {}  {}{}",
        a["id"].as_str().unwrap_or(""),
        a["name"].as_str().unwrap_or(""),
        a["version"],
        human(a["size"].as_i64().unwrap_or(0)),
        a["content_type"].as_str().unwrap_or(""),
        if done["deduplicated"].as_bool() == Some(true) {
            "  (contents already stored)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn download(
    ctx: &Ctx,
    node: &NodeClient,
    id: &str,
    output: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<()> {
    let meta: Value = node.get(&format!("/artifacts/{}", enc(id))).await?;
    let resp = node.request(reqwest::Method::GET, &format!("/artifact/{}", enc(id))).send().await?;
    let resp = NodeClient::check(resp).await?;
    let to_stdout = output.as_deref().is_some_and(|p| p.as_os_str() == "-");
    let target = match output {
        Some(p) if !to_stdout => p,
        _ => {
            let name = meta["name"].as_str().unwrap_or("artifact");
            PathBuf::from(name.rsplit('/').next().unwrap_or("artifact"))
        }
    };
    let progress = bar(resp.content_length(), "download");
    let mut stream = resp.bytes_stream();
    if to_stdout {
        progress.finish_and_clear();
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)?;
        }
        out.flush()?;
        return Ok(());
    }
    if target.exists() && !force {
        bail!(
            "{} exists; pass --force to overwrite it or -o to choose another path",
            target.display()
        );
    }
    let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new().prefix(".kai-download-").tempfile_in(dir)?;
    let mut file = tokio::fs::File::from_std(tmp.reopen()?);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("the download was interrupted")?;
        progress.inc(chunk.len() as u64);
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    tmp.persist(&target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", target.display()))?;
    progress.finish_and_clear();
    if ctx.json {
        outln!("{}", json!({"path": target, "artifact": meta}));
    } else {
        outln!("saved {} ({})", target.display(), human(meta["size"].as_i64().unwrap_or(0)));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, cmd: ArtifactCommand) -> anyhow::Result<()> {
    let node = client(ctx)?;
    match cmd {
        ArtifactCommand::Upload { file, name, tags, task } => {
            upload(ctx, &node, &file, name, &tags, task).await?
        }
        ArtifactCommand::List { name, tag, versions, all } => {
            let mut path = format!("/artifacts?versions={versions}&all={all}");
            if let Some(n) = &name {
                path.push_str(&format!("&name={}", enc(n)));
            }
            if let Some(t) = &tag {
                path.push_str(&format!("&tag={}", enc(t)));
            }
            let list: Vec<Value> = node.get(&path).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                outln!("no artifacts; upload one with `kai artifact upload FILE`");
            }
            for a in &list {
                outln!(
                    "{}  {:<32} v{:<3} {:>10}  {}",
                    a["id"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or(""),
                    a["version"],
                    human(a["size"].as_i64().unwrap_or(0)),
                    a["content_type"].as_str().unwrap_or("")
                );
            }
        }
        ArtifactCommand::Get { id, output, force } => {
            download(ctx, &node, &id, output, force).await?
        }
        ArtifactCommand::Share { id, ttl, revoke } => {
            if let Some(share) = revoke {
                node.delete(&format!("/shares/{}", enc(&share))).await?;
                outln!("revoked {share}");
                return Ok(());
            }
            let made: Value = node
                .post(&format!("/artifacts/{}/shares", enc(&id)), &json!({"ttl_secs": ttl}))
                .await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&made)?);
                return Ok(());
            }
            outln!(
                "share {} expires {} (revoke: kai artifact share {id} --revoke {})",
                made["id"].as_str().unwrap_or(""),
                made["expires_at"].as_str().unwrap_or(""),
                made["id"].as_str().unwrap_or("")
            );
            outln!("{}{}", node.base(), made["url"].as_str().unwrap_or(""));
        }
        ArtifactCommand::Rm { id } => {
            node.delete(&format!("/artifacts/{}", enc(&id))).await?;
            outln!("deleted {id}");
        }
    }
    Ok(())
}
