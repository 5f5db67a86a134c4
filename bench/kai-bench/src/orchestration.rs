//! Issue 5's orchestration benchmark, the kai side and the floor under it
//! (`bench/orchestration/compare.sh` runs both beside LangGraph against one fake server).
//!
//! `kai-bench chains BASE_URL TASKS STEPS LATENCY_MS`: the fake OpenAI server alone — TASKS
//! chains run concurrently, each STEPS non-streaming `POST /chat/completions` one after another
//! (the next prompt carries the previous answer), with one shared reqwest client and no
//! orchestration at all. Its makespan is what "ideal" is on this machine at that concurrency.
//!
//! `kai-bench orchestration TASKS STEPS LATENCY_MS [--fake-url URL] [--workers N]
//! [--provider-concurrency N] [--review]`: the real orchestrator in process — kai-runtime's
//! `Tasks` service on a SQLite store (WAL) with the queue's worker pool, agents, audit log and
//! in-process bus built as `kai serve` builds them. It submits TASKS tasks at once, each with a
//! ready-made chain of STEPS model steps for `kExecutor:executor` (a saved-workflow graph: no
//! planner call; review skipped unless `--review`), whose persona's provider is the fake server
//! at URL (or one started in process with LATENCY_MS), and measures from the first submit to
//! the last `TASK_COMPLETED`. Worker slots default to min(TASKS, 4096) and provider concurrency
//! to min(TASKS, 1024), the largest values the node's config allows (`tasks.workers`,
//! `providers[].concurrency`): one slot and one connection per concurrent task.
//!
//! Every run prints one JSON line: makespan, the ideal (STEPS × latency for a chain), overhead
//! per step on the critical path ((makespan − ideal) / STEPS), CPU time per step, tasks/s,
//! steps/s and the process's peak RSS (`VmHWM`).
//!
//! It owns no orchestration logic and asserts nothing about time; it only measures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kai_core::config::{Config, LoadedConfig, PersonaEntry, ProviderEntry, ProviderKindName};
use kai_core::event::EventFilter;
use kai_core::plan::{PlanStep, TaskGraph};
use kai_crypto::Identity;
use kai_crypto::vault::{KdfParams, KdfPolicy};
use kai_llm::ProviderKind;
use kai_llm::fake::FakeServer;
use kai_runtime::agents::Agents;
use kai_runtime::bus::memory::MemoryBus;
use kai_runtime::llm::Llm;
use kai_runtime::queue::{Queue, WorkerSettings};
use kai_runtime::tasks::{Submit, Tasks};
use kai_runtime::tools::{ToolSettings, Toolbox};
use kai_runtime::{AuditLog, AuditSettings, DeliveryPolicy, EventBus, Vault};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Peak resident set of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU time of this process so far (`/proc/self/stat`, clock ticks of 10 ms).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The measurements every run reports, as JSON.
pub struct Run {
    pub tasks: usize,
    pub steps: usize,
    pub latency_ms: u64,
    pub makespan: Duration,
    pub cpu: Duration,
}

impl Run {
    #[allow(clippy::cast_precision_loss)]
    pub fn report(&self, implementation: &str, extra: Value) -> Value {
        let ideal = self.steps as f64 * self.latency_ms as f64 / 1000.0;
        let makespan = self.makespan.as_secs_f64();
        let total_steps = (self.tasks * self.steps) as f64;
        let mut out = json!({
            "impl": implementation,
            "tasks": self.tasks, "steps": self.steps, "latency_ms": self.latency_ms,
            "makespan_s": makespan, "ideal_s": ideal, "vs_ideal": makespan / ideal,
            "overhead_per_step_ms": (makespan - ideal) * 1000.0 / self.steps as f64,
            "cpu_s": self.cpu.as_secs_f64(),
            "cpu_per_step_us": self.cpu.as_secs_f64() * 1e6 / total_steps,
            "tasks_per_s": self.tasks as f64 / makespan,
            "steps_per_s": total_steps / makespan,
            "peak_rss_mib": peak_rss_mib(),
            "load_average": load_average(),
        });
        if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

async fn chain(
    http: reqwest::Client,
    url: String,
    task: usize,
    steps: usize,
) -> anyhow::Result<usize> {
    let mut last = String::new();
    for step in 0..steps {
        let prompt = format!("Task {task}, step {}. Previous step's output: {last}", step + 1);
        let resp = http
            .post(&url)
            .json(&json!({"model": "fake-chat", "messages": [
                {"role": "system", "content": "You are a helpful executor."},
                {"role": "user", "content": prompt},
            ]}))
            .send()
            .await?;
        if !resp.status().is_success() {
            bail!("{url} answered {}", resp.status());
        }
        let body: Value = resp.json().await?;
        last = body["choices"][0]["message"]["content"]
            .as_str()
            .context("no message content in the reply")?
            .to_owned();
    }
    Ok(steps)
}

/// `chains BASE_URL TASKS STEPS LATENCY_MS`.
pub async fn chains(args: &[String]) -> anyhow::Result<()> {
    let [base, tasks, steps, latency] = args else {
        bail!("usage: kai-bench chains BASE_URL TASKS STEPS LATENCY_MS");
    };
    let (tasks, steps): (usize, usize) = (tasks.parse()?, steps.parse()?);
    let url = format!("{}/chat/completions", base.trim_end_matches('/'));
    let http = reqwest::Client::builder().pool_max_idle_per_host(tasks + 16).build()?;
    // Warm the code paths with a few chains (not the pool: the timed run grows it).
    let warm: Vec<_> =
        (0..10).map(|t| tokio::spawn(chain(http.clone(), url.clone(), t, steps))).collect();
    for w in futures::future::join_all(warm).await {
        w??;
    }
    let cpu0 = cpu_time();
    let started = Instant::now();
    let runs: Vec<_> =
        (0..tasks).map(|t| tokio::spawn(chain(http.clone(), url.clone(), t, steps))).collect();
    let mut done = 0;
    for r in futures::future::join_all(runs).await {
        done += r?? / steps.max(1);
    }
    let makespan = started.elapsed();
    if done != tasks {
        bail!("only {done} of {tasks} chains finished");
    }
    let run = Run { tasks, steps, latency_ms: latency.parse()?, makespan, cpu: cpu_time() - cpu0 };
    println!("{}", run.report("raw reqwest chains (no orchestration)", json!({})));
    Ok(())
}

/// Options of `orchestration` after its positional arguments.
struct KaiOptions {
    fake_url: Option<String>,
    workers: usize,
    provider_concurrency: usize,
    review: bool,
}

fn kai_options(rest: &[String], tasks: usize) -> anyhow::Result<KaiOptions> {
    let mut o = KaiOptions {
        fake_url: None,
        workers: tasks.clamp(1, 4096),
        provider_concurrency: tasks.clamp(1, 1024),
        review: false,
    };
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--fake-url" => o.fake_url = Some(value()?.clone()),
            "--workers" => o.workers = value()?.parse()?,
            "--provider-concurrency" => o.provider_concurrency = value()?.parse()?,
            "--review" => o.review = true,
            other => bail!("unknown option {other}"),
        }
    }
    Ok(o)
}

/// A chain of `steps` model steps for the executor: step i depends on step i-1.
fn chain_graph(steps: usize) -> TaskGraph {
    TaskGraph {
        steps: (0..steps)
            .map(|i| PlanStep {
                id: format!("s{i}"),
                title: String::new(),
                agent: None,
                tool: None,
                instruction: format!("Do step {} of the chain.", i + 1),
                inputs: Default::default(),
                depends_on: if i == 0 { vec![] } else { vec![format!("s{}", i - 1)] },
            })
            .collect(),
    }
}

/// `orchestration TASKS STEPS LATENCY_MS [--fake-url URL] [--workers N]
/// [--provider-concurrency N] [--review]`.
pub async fn orchestration(args: &[String]) -> anyhow::Result<()> {
    let [tasks_n, steps, latency, rest @ ..] = args else {
        bail!(
            "usage: kai-bench orchestration TASKS STEPS LATENCY_MS [--fake-url URL] [--workers N] [--provider-concurrency N] [--review]"
        );
    };
    let (tasks_n, steps, latency_ms): (usize, usize, u64) =
        (tasks_n.parse()?, steps.parse()?, latency.parse()?);
    let opts = kai_options(rest, tasks_n)?;
    // The fake server: the one compare.sh started (shared with LangGraph), or one in process.
    let local_fake = match &opts.fake_url {
        Some(_) => None,
        None => {
            let f = FakeServer::start(ProviderKind::OpenAi).await?;
            f.set_latency(Duration::from_millis(latency_ms));
            Some(f)
        }
    };
    let base_url = match (&opts.fake_url, &local_fake) {
        (Some(u), _) => u.clone(),
        (None, Some(f)) => f.base_url(),
        (None, None) => unreachable!("one of the two is set"),
    };

    // The node's services as `kai serve` builds them: SQLite in a temp dir (WAL, its default
    // pool), an unlocked vault, the audit log, the in-process bus, agents, queue, tools.
    let dir = tempfile::tempdir()?;
    let config_defaults = Config::default();
    // `KAI_BENCH_DB_CONNECTIONS` overrides the pool size (default: the node's).
    let connections = std::env::var("KAI_BENCH_DB_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(config_defaults.storage.max_connections);
    let store =
        kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), connections)
            .await?;
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let vault = Arc::new(Vault::new(store.clone(), KdfPolicy::AllowWeakForTests));
    vault
        .create(
            &SecretString::from("bench passphrase".to_owned()),
            KdfParams::testing_only_fast(),
            false,
        )
        .await?;
    let (_audit_tx, audit_settings) = watch::channel(AuditSettings {
        checkpoint_every: config_defaults.audit.checkpoint_every,
        checkpoint_interval: Duration::from_secs(config_defaults.audit.checkpoint_interval_secs),
    });
    let audit = AuditLog::open(
        store.clone(),
        Identity::generate(),
        audit_settings,
        None,
        &tracker,
        cancel.clone(),
    )
    .await?;
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new(
        store.clone(),
        config_defaults.bus.subscriber_queue,
        tracker.clone(),
        cancel.clone(),
    ));
    let mut config = Config::default();
    config.providers.push(ProviderEntry {
        name: "fake".into(),
        kind: ProviderKindName::Openai,
        base_url,
        key_secret: String::new(),
        chat_model: "fake-chat".into(),
        embedding_model: String::new(),
        timeout_secs: 120,
        max_retries: 0,
        concurrency: opts.provider_concurrency,
        prompt_price: 0.0,
        completion_price: 0.0,
    });
    config.personas.push(PersonaEntry {
        name: "assistant".into(),
        description: String::new(),
        system_prompt: String::new(),
        providers: vec!["fake".into()],
        model: String::new(),
        temperature: None,
        context_tokens: 8192,
    });
    config.tasks.workers = opts.workers;
    let llm = Arc::new(Llm::new(&config.providers, &config.personas, None, vault.clone()));
    let agents = Arc::new(Agents::new(store.clone(), bus.clone(), vault.clone()));
    agents.load(&audit, &[]).await?;
    let tool_settings = ToolSettings::from_config(&config.tasks, dir.path().join("workspaces"))
        .map_err(anyhow::Error::msg)?;
    let toolbox = Arc::new(Toolbox::new(
        kai_runtime::tools::builtin(&tool_settings, None),
        tool_settings,
        vault.clone(),
    ));
    let (_config_tx, config_rx) =
        watch::channel(LoadedConfig { config, provenance: Default::default() });
    let queue = Queue::new(store.clone());
    let audit_source = audit.clone();
    let tasks = Arc::new(Tasks::new(
        store.clone(),
        bus.clone(),
        Arc::new(move || Some(audit_source.clone())),
        queue.clone(),
        agents,
        llm,
        toolbox,
        config_rx,
    ));
    tasks.apply_agent_limits().await?;
    // Worker settings as `kai serve` sets them.
    let mut settings = WorkerSettings::new("bench", Tasks::queues());
    settings.concurrency = opts.workers;
    settings.lease = Duration::from_secs(30);
    settings.heartbeat_every = Duration::from_secs(10);
    settings.claim_batch = u32::try_from(opts.workers).unwrap_or(u32::MAX);
    queue.start_workers(settings, Arc::new(tasks.router()), &tracker, cancel.clone())?;

    let filter = EventFilter {
        types: ["TASK_COMPLETED", "TASK_FAILED", "TASK_CANCELLED"]
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect(),
        ..EventFilter::default()
    };
    let mut events = bus.subscribe(filter, None, DeliveryPolicy::Block).await?;
    let graph = chain_graph(steps);
    let submit = |i: usize| Submit {
        goal: format!("benchmark chain {i}"),
        owner: "user:bench".into(),
        skip_review: !opts.review,
        graph: Some(graph.clone()),
        source: "workflow".into(),
        ..Submit::default()
    };
    let cpu0 = cpu_time();
    let started = Instant::now();
    let submits: Vec<_> = (0..tasks_n)
        .map(|i| {
            let (tasks, s) = (tasks.clone(), submit(i));
            tokio::spawn(async move { tasks.submit(s).await })
        })
        .collect();
    let mut submitted_in = Duration::ZERO;
    for s in futures::future::join_all(submits).await {
        s??;
        submitted_in = started.elapsed();
    }
    let (mut completed, mut failed) = (0usize, 0usize);
    let mut first_error = None;
    let deadline = started + Duration::from_secs(1800);
    while completed + failed < tasks_n {
        let e = tokio::time::timeout_at(deadline.into(), events.recv())
            .await
            .context("the tasks did not finish within 30 minutes")?
            .context("the bus closed")?;
        if e.kind.as_str() == "TASK_COMPLETED" {
            completed += 1;
        } else {
            failed += 1;
            first_error.get_or_insert_with(|| e.payload.to_string());
        }
    }
    let makespan = started.elapsed();
    let cpu = cpu_time() - cpu0;
    let calls = match &local_fake {
        Some(f) => f.counters().requests,
        None => 0,
    };
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    store.close().await;
    if failed > 0 {
        bail!("{failed} of {tasks_n} tasks failed; first: {}", first_error.unwrap_or_default());
    }
    let run = Run { tasks: tasks_n, steps, latency_ms, makespan, cpu };
    let report = run.report(
        "kai tasks (in process, SQLite)",
        json!({
            "workers": opts.workers, "provider_concurrency": opts.provider_concurrency,
            "review": opts.review, "submitted_in_s": submitted_in.as_secs_f64(),
            "completed": completed, "model_calls_local_fake": calls,
        }),
    );
    println!("{report}");
    Ok(())
}
