//! The one-shot commands: status, config, audit, identity, completions.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::TimeZone as _;
use kai_crypto::audit::{Checkpoint, Entry};
use kai_server::api::{Ready, Rotated, SystemInfo};

use crate::client::NodeClient;
use crate::output::outln;
use crate::{Ctx, node, settings};

/// Exit code for "the node is not running".
pub const EXIT_NOT_RUNNING: i32 = 3;

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn status(ctx: &Ctx) -> anyhow::Result<i32> {
    let Some(client) = NodeClient::connect(&ctx.data)? else {
        if ctx.json {
            print_json(&serde_json::json!({"running": false, "data_dir": ctx.data.root}))?;
        } else {
            outln!("not running (data directory {})", ctx.data.root.display());
            if !ctx.data.is_initialized() {
                outln!("not initialized either: `kai init` or `kai serve` sets it up");
            }
        }
        return Ok(EXIT_NOT_RUNNING);
    };
    let vault: kai_server::api::VaultStatus = client.get("/vault/status").await?;
    if vault.state != "unsealed" {
        if ctx.json {
            print_json(
                &serde_json::json!({"running": true, "ready": false, "vault": vault.state}),
            )?;
        } else {
            outln!("kai node running, vault {}: unlock it with `kai vault unlock`", vault.state);
        }
        return Ok(1);
    }
    let info: SystemInfo = client.get("/system/info").await?;
    let ready: Result<Ready, _> = client.get("/ready").await;
    if ctx.json {
        print_json(&serde_json::json!({"running": true, "ready": ready.is_ok(), "info": info}))?;
    } else {
        outln!(
            "{} {} — {}",
            info.name,
            info.version,
            if ready.is_ok() { "ready" } else { "NOT ready" }
        );
        outln!("  identity   {}", info.did);
        outln!(
            "  up         {} s (since {})",
            info.uptime_secs,
            info.started_at.format("%Y-%m-%d %H:%M:%S UTC")
        );
        outln!("  storage    {} (schema v{})", info.storage_backend, info.schema_version);
        outln!("  event bus  {}", info.bus_backend);
        outln!("  audit log  {} entries", info.audit_entries);
    }
    Ok(if ready.is_ok() { 0 } else { 1 })
}

pub fn config_show(ctx: &Ctx, sources: bool) -> anyhow::Result<()> {
    let flags = settings::flag_overrides(&ctx.set, None, None)?;
    let loaded = settings::load(&ctx.config_paths, &flags)?;
    let redacted = kai_server::routes::system::redacted(&loaded.config);
    if ctx.json {
        let sources: std::collections::BTreeMap<_, _> =
            loaded.provenance.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        return print_json(&serde_json::json!({"config": redacted, "sources": sources}));
    }
    let value: toml::Value = serde_json::from_value(redacted)?;
    outln!("{}", toml::to_string_pretty(&value)?.trim_end());
    if sources {
        outln!("\n# where each key came from");
        for (k, v) in &loaded.provenance {
            if loaded.provenance.keys().any(|other| other.starts_with(&format!("{k}."))) {
                continue;
            }
            outln!("# {k:<36} {v}");
        }
    }
    Ok(())
}

pub fn config_check(ctx: &Ctx, file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let mut paths = ctx.config_paths.clone();
    if let Some(f) = file {
        paths.user = f;
        paths.user_explicit = true;
    }
    let flags = settings::flag_overrides(&ctx.set, None, None)?;
    settings::load(&paths, &flags)?;
    if ctx.json {
        print_json(&serde_json::json!({"valid": true}))
    } else {
        outln!("configuration is valid");
        Ok(())
    }
}

fn read_witness(ctx: &Ctx) -> anyhow::Result<Option<Checkpoint>> {
    match std::fs::read(ctx.data.witness_file()) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).context("the audit witness checkpoint file is corrupt")?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Offline verification: reads the store directly, anchored on `identity/genesis.did` and the
/// witness checkpoint outside the database.
pub async fn audit_verify(ctx: &Ctx) -> anyhow::Result<i32> {
    let config =
        settings::load(&ctx.config_paths, &settings::flag_overrides(&ctx.set, None, None)?)?.config;
    if !ctx.data.is_initialized() {
        bail!("no node in {}; nothing to verify", ctx.data.root.display());
    }
    let store = node::open_store(&config, &ctx.data).await?;
    let genesis = std::fs::read_to_string(ctx.data.genesis_file())
        .ok()
        .map(|s| s.trim().parse().context("identity/genesis.did does not hold a did:key"))
        .transpose()?;
    let witness = read_witness(ctx)?;
    let total = store.audit_count().await?;
    let bar = (!ctx.json && std::io::stderr().is_terminal() && total > 50_000).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "verifying {bar:40} {pos}/{len} entries ({eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let started = std::time::Instant::now();
    let result =
        kai_runtime::audit::verify_store_with_progress(store.as_ref(), genesis, witness, |n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        })
        .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    store.close().await;
    let secs = started.elapsed().as_secs_f64();
    match result {
        Ok(report) => {
            if ctx.json {
                print_json(&serde_json::json!({"ok": true, "report": report, "seconds": secs}))?;
            } else {
                outln!(
                    "audit log OK: {} entries, {} checkpoints, {} signer(s), root {} ({secs:.2} s)",
                    report.entries,
                    report.checkpoints,
                    report.signers.len(),
                    report.root
                );
            }
            Ok(0)
        }
        Err(e) => {
            if ctx.json {
                print_json(
                    &serde_json::json!({"ok": false, "first_bad_entry": e.seq, "reason": e.reason}),
                )?;
            } else {
                outln!("audit log FAILED verification at entry {}: {}", e.seq, e.reason);
            }
            Ok(1)
        }
    }
}

fn print_entry(e: &Entry, json: bool) {
    if json {
        let dto = kai_server::api::AuditEntry::from(e.clone());
        outln!("{}", serde_json::to_string(&dto).unwrap_or_default());
    } else {
        let ts = chrono::Utc.timestamp_micros(e.timestamp_us).single().unwrap_or_default();
        outln!(
            "{:>8}  {}  {:<8} {:<24} {:<40} by {}",
            e.seq,
            ts.format("%Y-%m-%d %H:%M:%S"),
            e.outcome,
            e.action,
            e.target,
            e.actor
        );
    }
}

pub async fn audit_tail(ctx: &Ctx, lines: u32, follow: bool) -> anyhow::Result<()> {
    let config =
        settings::load(&ctx.config_paths, &settings::flag_overrides(&ctx.set, None, None)?)?.config;
    let store = node::open_store(&config, &ctx.data).await?;
    let mut last = 0;
    for e in store.audit_tail(lines).await? {
        last = e.seq;
        print_entry(&e, ctx.json);
    }
    if !follow {
        store.close().await;
        return Ok(());
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        for e in store.audit_range(last + 1, 1000).await? {
            last = e.seq;
            print_entry(&e, ctx.json);
        }
    }
    store.close().await;
    Ok(())
}

pub async fn identity_show(ctx: &Ctx) -> anyhow::Result<()> {
    if let Some(client) = NodeClient::connect(&ctx.data)? {
        let info: SystemInfo = client.get("/system/info").await?;
        return print_did(ctx, &info.did);
    }
    // Offline: the signer the audit log expects next is public information.
    let config =
        settings::load(&ctx.config_paths, &settings::flag_overrides(&ctx.set, None, None)?)?.config;
    let store = node::open_store(&config, &ctx.data).await?;
    let head = store.audit_head().await?;
    store.close().await;
    let Some(head) = head else { bail!("no node in {}; run `kai init`", ctx.data.root.display()) };
    print_did(ctx, kai_runtime::audit::current_signer(&head))
}

fn print_did(ctx: &Ctx, did: &str) -> anyhow::Result<()> {
    if ctx.json {
        print_json(&serde_json::json!({"did": did}))
    } else {
        outln!("{did}");
        Ok(())
    }
}

pub async fn identity_rotate(ctx: &Ctx) -> anyhow::Result<()> {
    let client = NodeClient::connect(&ctx.data)?.ok_or_else(|| {
        anyhow::anyhow!(
            "the node key lives in the vault: start the node (`kai serve`) and unlock it first"
        )
    })?;
    let rotated: Rotated = client.post("/system/identity/rotate", &serde_json::json!({})).await?;
    if ctx.json {
        print_json(&rotated)
    } else {
        outln!("rotated: {} -> {}", rotated.previous, rotated.did);
        Ok(())
    }
}
