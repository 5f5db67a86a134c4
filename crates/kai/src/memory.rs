//! `kai memory …`: add, search, get, forget, export and import memories through the running
//! node's API (so ownership, RBAC and audit apply as to any client).

use std::io::{Read as _, Write as _};

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::cli::MemoryCommand;
use crate::output::outln;
use crate::secure::client;

/// Largest import request body (the node's default body limit is 2 MiB).
const IMPORT_CHUNK_BYTES: usize = 1024 * 1024;
/// Most lines per import request.
const IMPORT_CHUNK_LINES: usize = 5000;

fn enc(s: &str) -> String {
    kai_blob::s3::sigv4::uri_encode(s, false)
}

fn text_arg(words: Vec<String>) -> anyhow::Result<String> {
    if words.is_empty() || words == ["-"] {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s.trim_end().to_owned());
    }
    Ok(words.join(" "))
}

fn metadata(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for p in pairs {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--meta takes KEY=VALUE, got {p:?}");
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned()));
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

pub async fn run(ctx: &Ctx, cmd: MemoryCommand) -> anyhow::Result<()> {
    let c = client(ctx)?;
    match cmd {
        MemoryCommand::Add { text, namespace, tier, ttl, private, meta, wait } => {
            let text = text_arg(text)?;
            let body = json!({
                "memories": [{
                    "text": text, "namespace": namespace, "tier": tier, "ttl_secs": ttl,
                    "private": private, "metadata": metadata(&meta)?,
                }],
                "wait": wait,
            });
            let v: Value = c.post("/memories", &body).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let m = &v["memories"][0];
                if v["embedding"] == "unavailable" {
                    eprintln!(
                        "note: no embedding provider is configured; this memory is found by full-text search only"
                    );
                }
                outln!("{}", m["id"].as_str().unwrap_or_default());
            }
        }
        MemoryCommand::Search { query, k, namespace, tier, expand } => {
            let q = query.join(" ");
            if q.trim().is_empty() {
                bail!("give something to search for: kai memory search WORDS");
            }
            let mut path = format!("/memory/search?q={}&k={k}", enc(&q));
            if let Some(n) = namespace {
                path.push_str(&format!("&namespace={}", enc(&n)));
            }
            if let Some(t) = tier {
                path.push_str(&format!("&tier={}", enc(&t)));
            }
            if expand {
                path.push_str("&expand=true");
            }
            let v: Value = c.get(&path).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            if let Some(n) = v["notice"].as_str() {
                eprintln!("note: {n}");
            }
            let results = v["results"].as_array().cloned().unwrap_or_default();
            if results.is_empty() {
                outln!("no memories match");
            }
            for r in results {
                let m = &r["memory"];
                let via = if r["via"] == "graph" { " (via graph)" } else { "" };
                outln!(
                    "{}  {:.4}  [{} {}]{}  {}",
                    m["id"].as_str().unwrap_or_default(),
                    r["score"].as_f64().unwrap_or_default(),
                    m["namespace"].as_str().unwrap_or_default(),
                    m["tier"].as_str().unwrap_or_default(),
                    via,
                    one_line(m["text"].as_str().unwrap_or_default(), 100)
                );
            }
        }
        MemoryCommand::Get { id } => {
            let v: Value = c.get(&format!("/memories/{}", enc(&id))).await?;
            if ctx.json {
                outln!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                outln!(
                    "{}  [{} {}]{}",
                    v["id"].as_str().unwrap_or_default(),
                    v["namespace"].as_str().unwrap_or_default(),
                    v["tier"].as_str().unwrap_or_default(),
                    if v["private"] == true { " private" } else { "" }
                );
                outln!("{}", v["text"].as_str().unwrap_or_default());
            }
        }
        MemoryCommand::Forget { id } => {
            c.delete(&format!("/memories/{}", enc(&id))).await?;
            if !ctx.json {
                outln!("forgot {id}");
            }
        }
        MemoryCommand::Export { output, vectors } => {
            let body = c.get_text(&format!("/memories/export?vectors={vectors}")).await?;
            let count = body.lines().filter(|l| !l.trim().is_empty()).count();
            match output {
                Some(path) => {
                    std::fs::write(&path, &body)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported {count} memories to {}", path.display());
                }
                None => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(body.as_bytes())?;
                    out.flush()?;
                }
            }
        }
        MemoryCommand::Import { file } => {
            let text = if file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?
            };
            let (mut imported, mut skipped) = (0, 0);
            let mut chunk = String::new();
            let mut lines = 0;
            let mut bodies = Vec::new();
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                if !chunk.is_empty()
                    && (chunk.len() + line.len() >= IMPORT_CHUNK_BYTES
                        || lines >= IMPORT_CHUNK_LINES)
                {
                    bodies.push(std::mem::take(&mut chunk));
                    lines = 0;
                }
                chunk.push_str(line);
                chunk.push('\n');
                lines += 1;
            }
            if !chunk.is_empty() {
                bodies.push(chunk);
            }
            for body in bodies {
                let v: Value = c.post_ndjson("/memories/import", body).await?;
                imported += v["imported"].as_u64().unwrap_or(0);
                skipped += v["skipped_expired"].as_u64().unwrap_or(0);
            }
            if ctx.json {
                outln!("{}", json!({"imported": imported, "skipped_expired": skipped}));
            } else {
                outln!("imported {imported} memories ({skipped} expired lines skipped)");
            }
        }
    }
    Ok(())
}
