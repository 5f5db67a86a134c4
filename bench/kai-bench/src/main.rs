//! Whole-system benchmark driver.
//!
//! `kai-bench llm-overhead KAI_BIN REQUESTS TOKENS`: see [`llm`].
//!
//! `kai-bench audit-append DATA_DIR ENTRIES CONCURRENCY`: appends ENTRIES signed, durable audit
//! entries through the node's real audit writer (group commit) from CONCURRENCY tasks, on a
//! data directory made by `kai init`, and prints the throughput as JSON.
//!
//! `kai-bench ws-fanout URL TOKEN SUBSCRIBERS RATE SECS`: WebSocket fan-out (see `fanout.rs`).
//!
//! `kai-bench orchestration TASKS STEPS LATENCY_MS [options]`: the task orchestrator against a
//! fake LLM with fixed latency; `kai-bench chains BASE_URL TASKS STEPS LATENCY_MS`: the fake
//! server alone, the floor under it (see [`orchestration`]).

mod fanout;
mod orchestration;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kai_crypto::audit::Outcome;
use kai_runtime::{AuditLog, AuditSettings};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod llm;

/// The node's allocator (`kai`'s `jemalloc` feature; `crates/kai/src/main.rs` says why), so the
/// in-process runs measure what it runs.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("ws-fanout") {
        return fanout::run(&args[2..]).await;
    }
    if args.get(1).map(String::as_str) == Some("chains") {
        return orchestration::chains(&args[2..]).await;
    }
    if args.get(1).map(String::as_str) == Some("orchestration") {
        return orchestration::orchestration(&args[2..]).await;
    }
    if let [_, cmd, kai, requests, tokens] = args.as_slice()
        && cmd == "llm-overhead"
    {
        return llm::overhead(kai, requests.parse()?, tokens.parse()?).await;
    }
    let [_, cmd, dir, entries, concurrency] = args.as_slice() else {
        bail!(
            "usage: kai-bench audit-append DATA_DIR ENTRIES CONCURRENCY | llm-overhead KAI_BIN REQUESTS TOKENS | ws-fanout … | orchestration TASKS STEPS LATENCY_MS [options] | chains BASE_URL TASKS STEPS LATENCY_MS"
        );
    };
    if cmd != "audit-append" {
        bail!("unknown command {cmd}");
    }
    let dir = std::path::PathBuf::from(dir);
    let entries: u64 = entries.parse()?;
    let concurrency: u64 = concurrency.parse()?;
    let store = kai_store::open(&format!("sqlite://{}", dir.join("kai.db").display()), 4).await?;
    store.audit_head().await?.context("run `kai init` on the data dir first")?;
    let vault = kai_runtime::Vault::new(store.clone(), kai_crypto::vault::KdfPolicy::Enforce);
    let key =
        std::fs::read_to_string(dir.join("vault.key")).context("the data dir has no vault.key")?;
    vault.unlock_key(&kai_crypto::vault::UnlockKey::from_text(key.trim())?).await?;
    let identity = kai_runtime::node::load_identity(&vault, store.as_ref()).await?;
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_tx, settings) = watch::channel(AuditSettings {
        checkpoint_every: 1000,
        checkpoint_interval: Duration::from_secs(60),
    });
    let log = AuditLog::open(
        store.clone(),
        identity,
        settings,
        Some(dir.join("audit/checkpoint.json")),
        &tracker,
        cancel.clone(),
    )
    .await?;
    let per_task = entries / concurrency;
    let started = Instant::now();
    let log = Arc::new(log);
    let tasks: Vec<_> = (0..concurrency)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    log.record(
                        "bench",
                        "bench.append",
                        &format!("t{t}/{i}"),
                        Outcome::Success,
                        serde_json::json!({"i": i}),
                    )
                    .await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        t??;
    }
    let secs = started.elapsed().as_secs_f64();
    let n = per_task * concurrency;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    store.close().await;
    println!(
        "{}",
        serde_json::json!({"entries": n, "concurrency": concurrency, "seconds": secs, "entries_per_sec": n as f64 / secs})
    );
    Ok(())
}
