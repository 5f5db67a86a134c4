//! `kai serve`: wires storage, identity, audit, bus and the HTTP server together, watches the
//! configuration files for hot reload, and shuts down gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kai_core::config::LoadedConfig;
use kai_crypto::audit::Outcome;
use kai_runtime::node::Credential;
use kai_server::{AppState, Services};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use notify::Watcher as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Ctx;
use crate::client::RunFile;
use crate::logging::LogHandle;
use crate::output::outln;
use crate::{init, logging, node, settings};

/// Everything `serve` needs to re-read the configuration later.
struct Reloader {
    ctx: Ctx,
    flags: Vec<(String, String, String)>,
    config: watch::Sender<LoadedConfig>,
    /// What `/system/config` reports about reloads.
    status: watch::Sender<kai_server::ConfigStatus>,
    audit_settings: watch::Sender<kai_runtime::AuditSettings>,
    node: Arc<kai_runtime::node::Node>,
    log: LogHandle,
}

pub async fn serve(
    ctx: Ctx,
    listen: Option<String>,
    log_level: Option<String>,
) -> anyhow::Result<()> {
    let flags = settings::flag_overrides(&ctx.set, listen.as_deref(), log_level.as_deref())?;
    let loaded = settings::load(&ctx.config_paths, &flags)?;
    let config = loaded.config.clone();
    let log = logging::init(&config.log);

    let addr: SocketAddr = config.server.listen.parse().context("server.listen")?;
    if !addr.ip().is_loopback() && !config.server.allow_public_bind {
        bail!(
            "refusing to listen on {addr}: it is reachable from other machines. Keep the default 127.0.0.1, or set \
             server.allow_public_bind = true once authentication is configured for everyone who can reach it"
        );
    }
    let data = ctx.data.clone();
    std::fs::create_dir_all(&data.root)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.lock_file())?;
    if lock.try_lock().is_err() {
        bail!(
            "another kai node is already running on {}; stop it first or use another --data-dir",
            data.root.display()
        );
    }
    let done = init::init(&config, &data, false).await?;
    if done.created {
        eprintln!("initialized a new node in {} (identity {})", done.data_dir, done.did);
        if let Some(p) = &done.owner_password {
            eprintln!(
                "  owner login: {} / {p}   (shown once; change it with `kai user passwd`)",
                done.owner
            );
        }
        if let Some(p) = &done.vault_passphrase {
            eprintln!("  vault passphrase: {p}   (shown once; keep it safe)");
        }
        eprintln!("  owner API token: {}", done.admin_token_file);
    }

    let metrics = config.metrics.enabled.then(install_metrics).transpose()?;
    let tracker = TaskTracker::new();
    let background = CancellationToken::new();
    let shutdown = CancellationToken::new();

    let (audit_tx, audit_rx) = watch::channel(node::audit_settings(&config));
    let kai = node::build(&config, &data, audit_rx, &tracker, &background).await?;
    match node::unattended_key(&data)? {
        Some(key) => kai
            .unlock(&Credential::Key(key), "kai serve")
            .await
            .context("cannot unlock the vault with its key")?,
        None => eprintln!(
            "the vault is sealed: unlock it with `kai vault unlock` (or set KAI_VAULT_KEY)"
        ),
    }
    let (config_tx, config_rx) = watch::channel(loaded);
    let (status_tx, status_rx) = watch::channel(kai_server::ConfigStatus::default());
    let limits =
        kai_server::limits::Limits::new(config.limits.requests_per_second, config.limits.burst);
    let llm = std::sync::Arc::new(kai_runtime::llm::Llm::new(
        &config.providers,
        &config.personas,
        local_models(&config, &data, &tracker),
        kai.vault.clone(),
    ));
    let memory = kai_runtime::memory::Memory::new(
        kai.store.clone(),
        kai.vault.clone(),
        llm.clone(),
        node::memory_settings(&config, &data),
    );
    let prompts = std::sync::Arc::new(kai_runtime::prompts::Prompts::new(kai.store.clone()));
    let artifacts = std::sync::Arc::new(
        kai_runtime::artifacts::Artifacts::from_config(
            kai.store.clone(),
            &config.artifacts,
            &data.artifacts_dir(),
            kai.vault.clone(),
        )
        .with_context(|| {
            format!("cannot open the artifact store in {}", data.artifacts_dir().display())
        })?,
    );
    memory.start(&tracker, background.clone());
    let chat = std::sync::Arc::new(
        kai_runtime::chat::Chat::new(kai.store.clone(), kai.bus.clone(), llm.clone())
            .with_memory(memory.clone()),
    );
    let agents = Arc::new(kai_runtime::agents::Agents::new(
        kai.store.clone(),
        kai.bus.clone(),
        kai.vault.clone(),
    ));
    let queue = kai_runtime::queue::Queue::new(kai.store.clone());
    let tool_settings =
        kai_runtime::tools::ToolSettings::from_config(&config.tasks, data.workspaces_dir())
            .map_err(anyhow::Error::msg)?;
    let tools = Arc::new(kai_runtime::tools::Toolbox::new(
        kai_runtime::tools::builtin(&tool_settings, Some(memory.clone())),
        tool_settings,
        kai.vault.clone(),
    ));
    let tasks = Arc::new(kai_runtime::tasks::Tasks::new(
        kai.store.clone(),
        kai.bus.clone(),
        kai_runtime::tasks::Tasks::audit_of(kai.clone()),
        queue.clone(),
        agents.clone(),
        llm.clone(),
        tools,
        config_rx.clone(),
    ));
    start_agents(&kai, &agents, &tasks, &queue, &data, &config, &tracker, background.clone());
    let state = AppState::new(Services {
        node: kai.clone(),
        config: config_rx,
        metrics: metrics.clone(),
        started_at: chrono::Utc::now(),
        limits,
        llm,
        chat,
        config_status: status_rx,
        prompts,
        artifacts,
        memory,
        agents,
        tasks,
        ws_frames: Arc::default(),
        token_cache: kai_server::token_cache::TokenCache::default(),
    });

    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    write_run_file(&ctx, bound)?;
    let did = kai.unsealed().map(|u| u.identity.did()).unwrap_or_else(|_| "sealed".into());
    tracing::info!(addr = %bound, did = %did, data_dir = %data.root.display(), "kai node listening");
    if ctx.json {
        outln!("{}", serde_json::json!({"listening": bound.to_string(), "did": did}));
    } else {
        outln!("kai node listening on http://{bound} (identity {did})");
    }

    if let Some(handle) = metrics {
        let stop = background.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! { _ = tick.tick() => handle.run_upkeep(), () = stop.cancelled() => return }
            }
        });
    }
    let reloader = Reloader {
        ctx: ctx.clone(),
        flags,
        config: config_tx,
        status: status_tx,
        audit_settings: audit_tx,
        node: kai.clone(),
        log,
    };
    let _watcher = watch_config(reloader, &tracker, background.clone())?;
    tracker.spawn(shutdown_on_signal(shutdown.clone()));

    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    kai_server::serve(listener, kai_server::app(state), shutdown.clone(), grace).await?;
    tracing::info!("server stopped; finishing background work");
    shutdown.cancel();
    background.cancel();
    tracker.close();
    tracker.wait().await;
    kai.store.close().await;
    let _ = std::fs::remove_file(data.run_file());
    drop(lock);
    tracing::info!("kai node stopped");
    Ok(())
}

/// Once the vault is unsealed (now, or when the owner unlocks it): registers the built-in
/// agents and the definition files in `<data>/agents/`, then starts the task workers. Queued
/// work from before a crash resumes then.
#[allow(clippy::too_many_arguments)]
fn start_agents(
    kai: &Arc<kai_runtime::node::Node>,
    agents: &Arc<kai_runtime::agents::Agents>,
    tasks: &Arc<kai_runtime::tasks::Tasks>,
    queue: &kai_runtime::queue::Queue,
    data: &crate::paths::DataDir,
    config: &kai_core::config::Config,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    let (kai, agents, tasks, queue) = (kai.clone(), agents.clone(), tasks.clone(), queue.clone());
    let dir = data.agents_dir();
    let workers = config.tasks.workers;
    let name = config.node.name.clone();
    let inner = tracker.clone();
    tracker.spawn(async move {
        let audit = loop {
            if let Ok(u) = kai.unsealed() {
                break u.audit;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                () = stop.cancelled() => return,
            }
        };
        let files = read_agent_files(&dir);
        match agents.load(&audit, &files).await {
            Ok(problems) => {
                for (file, problem) in problems {
                    tracing::warn!(file = %file, problem = %problem, "agent definition not loaded");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot register the agents; tasks will not run");
                return;
            }
        }
        if let Err(e) = tasks.apply_agent_limits().await {
            tracing::warn!(error = %e, "agents' concurrency limits not applied");
        }
        let mut settings =
            kai_runtime::queue::WorkerSettings::new(name, kai_runtime::tasks::Tasks::queues());
        settings.concurrency = workers;
        // Short leases: after a crash, the steps the dead process held are taken up again
        // within 30 s (heartbeats keep long model calls leased).
        settings.lease = Duration::from_secs(30);
        settings.heartbeat_every = Duration::from_secs(10);
        settings.claim_batch = u32::try_from(workers).unwrap_or(u32::MAX);
        match queue.start_workers(settings, Arc::new(tasks.router()), &inner, stop.clone()) {
            Ok(_) => tracing::info!(workers, "task workers started"),
            Err(e) => tracing::error!(error = %e, "cannot start the task workers"),
        }
        tasks.start_triggers(&inner, stop);
    });
}

/// `(file name, text)` of every agent definition file; unreadable ones are logged.
fn read_agent_files(dir: &std::path::Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match std::fs::read_to_string(e.path()) {
                Ok(text) => Some((name, text)),
                Err(err) => {
                    tracing::warn!(file = %name, error = %err, "cannot read agent definition");
                    None
                }
            }
        })
        .collect();
    files.sort();
    files
}

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let buckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(kai_runtime::metrics::HTTP_LATENCY.into()), &buckets)?
        .install_recorder()
        .context("cannot install the metrics recorder")
}

fn write_run_file(ctx: &Ctx, addr: SocketAddr) -> anyhow::Result<()> {
    let path = ctx.data.run_file();
    std::fs::create_dir_all(path.parent().unwrap_or(&ctx.data.root))?;
    let run =
        RunFile { pid: std::process::id(), addr: addr.to_string(), started_at: chrono::Utc::now() };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&run)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

async fn shutdown_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down gracefully"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down gracefully"),
        () = shutdown.cancelled() => {}
    }
    shutdown.cancel();
}

/// Watches the configuration files' directories; each change is re-validated and applied.
fn watch_config(
    reloader: Reloader,
    tracker: &TaskTracker,
    stop: CancellationToken,
) -> anyhow::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let files = reloader.ctx.config_paths.watched();
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && e.paths.iter().any(|p| watched.iter().any(|w| w == p))
        {
            let _ = tx.send(());
        }
    })?;
    let mut dirs: Vec<_> = files.iter().filter_map(|f| f.parent().map(|p| p.to_owned())).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    }
    tracker.spawn(async move {
        loop {
            tokio::select! {
                got = rx.recv() => if got.is_none() { return },
                () = stop.cancelled() => return,
            }
            // Editors write in several steps: wait for the burst to settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            reloader.reload().await;
        }
    });
    Ok(watcher)
}

impl Reloader {
    async fn reload(&self) {
        let result = settings::load(&self.ctx.config_paths, &self.flags);
        let audit = self.node.unsealed().ok().map(|u| u.audit);
        match result {
            Err(e) => {
                tracing::error!(error = %e, "configuration change rejected; the running configuration stays in force");
                self.status.send_modify(|s| {
                    s.rejected_at = Some(chrono::Utc::now());
                    s.problems.clone_from(&e.problems);
                });
                let problems = serde_json::to_value(&e.problems).unwrap_or_default();
                if let Some(audit) = audit {
                    let details = serde_json::json!({"problems": problems});
                    let _ = audit
                        .record("node", "config.reload", "config", Outcome::Failure, details)
                        .await;
                }
            }
            Ok(new) => {
                let old = self.config.borrow().config.clone();
                // A valid file again: the rejection no longer stands.
                self.status.send_if_modified(|s| {
                    let had = s.rejected_at.is_some();
                    s.rejected_at = None;
                    s.problems.clear();
                    had
                });
                if new.config == old {
                    return;
                }
                let Some(audit) = audit else {
                    tracing::error!(
                        "configuration change not applied: the vault is sealed, so it cannot be audited"
                    );
                    return;
                };
                let pending = old.restart_required(&new.config);
                let running = old.with_live_changes(&new.config);
                let details = serde_json::json!({"pending_restart": pending});
                if audit
                    .record("node", "config.reload", "config", Outcome::Success, details)
                    .await
                    .is_err()
                {
                    tracing::error!(
                        "configuration change not applied: the audit log cannot be written"
                    );
                    return;
                }
                self.log.set_level(running.log.level);
                let _ = self.audit_settings.send(node::audit_settings(&running));
                self.config
                    .send_replace(LoadedConfig { config: running, provenance: new.provenance });
                self.status.send_modify(|s| {
                    s.pending_restart = pending.iter().map(|k| (*k).to_owned()).collect();
                });
                if pending.is_empty() {
                    tracing::info!("configuration reloaded");
                } else {
                    tracing::warn!(keys = ?pending, "configuration reloaded; these keys take effect after a restart");
                }
            }
        }
    }
}

/// The embedded models as the provider `local`, loading in the background when asked to.
#[cfg(feature = "local-models")]
fn local_models(
    config: &kai_core::config::Config,
    data: &crate::paths::DataDir,
    tracker: &TaskTracker,
) -> Option<std::sync::Arc<dyn kai_llm::Provider>> {
    let dir = crate::models::model_dir(config, data);
    if !kai_local::catalog::ALL.iter().any(|m| dir.is_installed(m)) {
        tracing::warn!(
            dir = %dir.path().display(),
            "the embedded models are not installed; the local provider will answer with an error until `kai models install` is run"
        );
    }
    let mut settings = kai_local::LocalSettings::new(dir);
    settings.chat_concurrency = config.models.chat_concurrency;
    settings.embed_concurrency = config.models.embed_concurrency;
    let local = std::sync::Arc::new(kai_local::LocalProvider::new(settings));
    if config.models.preload {
        let preloading = local.clone();
        tracker.spawn(async move { preloading.preload().await });
    }
    Some(local)
}

#[cfg(not(feature = "local-models"))]
fn local_models(
    _: &kai_core::config::Config,
    _: &crate::paths::DataDir,
    _: &TaskTracker,
) -> Option<std::sync::Arc<dyn kai_llm::Provider>> {
    None
}
