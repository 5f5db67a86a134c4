//! The worker pool on a real SQLite store (and PostgreSQL when `KAI_TEST_POSTGRES_URL` is
//! set): prompt wake on enqueue with no polling, retries and dead letters, heartbeats keeping
//! long jobs from being stolen, cancellation seen through heartbeats, redelivery of a dead
//! worker's job, shutdown releasing running jobs, panics, recorded effects, concurrency limits.
//! Every wait is on an event (pool counters, handler messages) under a timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kai_core::queue::{JobState, QueueName, RetryPolicy};
use kai_runtime::queue::{
    EffectAttempt, JobContext, JobError, JobHandler, JobRouter, Queue, WorkerSettings, now_us,
};
use kai_store::Store;
use kai_store::queue::{ClaimRequest, Completion, LimitScope, NewJob};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WAIT: Duration = Duration::from_secs(30);

struct Backend {
    store: Arc<dyn Store>,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        Self { store: kai_store::open(&url, 4).await.unwrap(), cleanup: None, _dir: Some(dir) }
    }

    async fn postgres() -> Option<Self> {
        let url = std::env::var("KAI_TEST_POSTGRES_URL").ok()?;
        let schema = format!("kai_test_{}", uuid::Uuid::now_v7().simple());
        let store = kai_store::open_postgres_schema(&url, &schema, 8).await.unwrap();
        Some(Self { store, cleanup: Some((url, schema)), _dir: None })
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.cleanup {
            kai_store::drop_postgres_schema(&url, &schema).await.unwrap();
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let b = super::Backend::sqlite().await;
                super::$name(b.store.clone()).await;
                b.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(b) = super::Backend::postgres().await else {
                    eprintln!("KAI_TEST_POSTGRES_URL not set: PostgreSQL run of this test not performed");
                    return;
                };
                super::$name(b.store.clone()).await;
                b.finish().await;
            })*
        }
    };
}

on_both_backends!(
    enqueue_wakes_workers_and_idle_pool_sleeps,
    retries_then_dead_letter_and_permanent_errors,
    heartbeats_keep_long_jobs_and_cancel_stops_them,
    dead_workers_job_is_redelivered,
    shutdown_releases_running_jobs,
    panics_fail_the_attempt,
    effects_run_once_across_attempts,
    pools_respect_concurrency_limits,
    unrecordable_completion_fails_for_good,
    pools_wider_than_one_claim_fill_every_slot,
);

/// A successful run's result.
fn done(v: serde_json::Value) -> Result<Completion, JobError> {
    Ok(v.into())
}

fn q(name: &str) -> QueueName {
    name.parse().unwrap()
}

fn settings(queue: &str) -> WorkerSettings {
    WorkerSettings {
        concurrency: 4,
        claim_batch: 4,
        lease: Duration::from_secs(10),
        heartbeat_every: Duration::from_secs(2),
        poll_interval: Duration::from_secs(3600),
        stop_grace: Duration::from_secs(5),
        ..WorkerSettings::new("test", vec![q(queue)])
    }
}

/// A handler from a closure.
struct Handler<F>(F);

#[async_trait]
impl<F, Fut> JobHandler for Handler<F>
where
    F: Fn(JobContext) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Completion, JobError>> + Send,
{
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError> {
        (self.0)(ctx).await
    }
}

fn handler<F, Fut>(f: F) -> Arc<dyn JobHandler>
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Completion, JobError>> + Send + 'static,
{
    Arc::new(Handler(f))
}

struct Pool {
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Pool {
    async fn stop(self) {
        self.cancel.cancel();
        self.tracker.close();
        tokio::time::timeout(WAIT, self.tracker.wait()).await.expect("pool stops");
    }
}

fn start(
    queue: &Queue,
    s: WorkerSettings,
    h: Arc<dyn JobHandler>,
) -> (Pool, Arc<kai_runtime::queue::PoolStats>) {
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let pool = queue.start_workers(s, h, &tracker, cancel.clone()).unwrap();
    (Pool { tracker, cancel }, pool.stats().clone())
}

async fn until(
    stats: &kai_runtime::queue::PoolStats,
    what: &str,
    f: impl FnMut(&kai_runtime::queue::PoolStats) -> bool,
) {
    tokio::time::timeout(WAIT, stats.wait_until(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Waits until `f` holds, re-checking whenever either pool's counters change.
async fn until_both(
    a: &kai_runtime::queue::PoolStats,
    b: &kai_runtime::queue::PoolStats,
    what: &str,
    f: impl Fn() -> bool,
) {
    let both = async {
        tokio::select! {
            _ = a.wait_until(|_| f()) => {}
            _ = b.wait_until(|_| f()) => {}
        }
    };
    tokio::time::timeout(WAIT, both)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn enqueue_wakes_workers_and_idle_pool_sleeps(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let ran = Arc::new(AtomicU64::new(0));
    let r = ran.clone();
    // The poll interval is an hour: only the enqueue's wake can start these jobs.
    let (pool, stats) = start(
        &queue,
        settings("work"),
        handler(move |ctx: JobContext| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                done(json!({"echo": ctx.payload()["n"]}))
            }
        }),
    );
    until(&stats, "the idle pool to park", |s| s.parked()).await;
    let jobs: Vec<NewJob> = (0..50).map(|n| NewJob::new(q("work"), json!({"n": n}))).collect();
    let ids: Vec<_> =
        queue.enqueue_batch(&jobs).await.unwrap().into_iter().map(|e| e.job.id).collect();
    until(&stats, "50 completions", |s| s.succeeded() == 50).await;
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    let last = store.job(ids[49]).await.unwrap().unwrap();
    assert_eq!((last.state, last.result), (JobState::Succeeded, Some(json!({"echo": 49}))));
    // Idle again: parked, and no claim query while nothing changes.
    until(&stats, "the drained pool to park", |s| s.parked() && s.running() == 0).await;
    // The completion of the last job may wake the pool once more; let that settle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queries = stats.claim_queries();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stats.claim_queries(), queries, "an idle pool makes no queries (no busy loop)");
    pool.stop().await;
}

async fn retries_then_dead_letter_and_permanent_errors(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let (pool, stats) = start(
        &queue,
        settings("work"),
        handler(|ctx: JobContext| async move {
            let e = if ctx.payload()["permanent"] == json!(true) {
                JobError::permanent("bad input")
            } else {
                JobError::retryable(format!("flaky, attempt {}", ctx.attempt()))
            };
            Err::<Completion, _>(e)
        }),
    );
    let policy = RetryPolicy {
        max_attempts: 3,
        initial: Duration::from_millis(20),
        max_delay: Duration::from_millis(40),
    };
    let flaky =
        queue.enqueue(&NewJob::new(q("work"), json!({})).with_retry(policy)).await.unwrap().job.id;
    let bad = queue
        .enqueue(&NewJob::new(q("work"), json!({"permanent": true})).with_retry(policy))
        .await
        .unwrap()
        .job
        .id;
    // The backoff's due time wakes the parked pool (the poll interval is an hour).
    until(&stats, "two dead letters", |s| s.dead() == 2).await;
    let f = store.job(flaky).await.unwrap().unwrap();
    assert_eq!(
        (f.state, f.attempts, f.last_error.as_deref()),
        (JobState::Dead, 3, Some("flaky, attempt 3"))
    );
    let b = store.job(bad).await.unwrap().unwrap();
    assert_eq!(
        (b.state, b.attempts),
        (JobState::Dead, 1),
        "a permanent error makes exactly one attempt"
    );
    assert_eq!(stats.retried(), 2);
    // A manual retry runs it again with fresh attempts.
    queue.retry_job(bad).await.unwrap();
    until(&stats, "the retried job to die again", |s| s.dead() == 3).await;
    pool.stop().await;
}

async fn heartbeats_keep_long_jobs_and_cancel_stops_them(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let running: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let overlap = Arc::new(AtomicU32::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, &'static str)>();
    let make = || {
        let (running, overlap, tx) = (running.clone(), overlap.clone(), tx.clone());
        handler(move |ctx: JobContext| {
            let (running, overlap, tx) = (running.clone(), overlap.clone(), tx.clone());
            async move {
                let id = ctx.id().to_string();
                if let Some(n) = running.lock().unwrap().insert(id.clone(), 1) {
                    overlap.fetch_add(n, Ordering::SeqCst);
                }
                tx.send((id.clone(), "started")).unwrap();
                // Runs for many lease lengths unless stopped.
                let out = tokio::select! {
                    _ = ctx.stop().cancelled() => Err(JobError::retryable("stopped")),
                    _ = tokio::time::sleep(Duration::from_millis(1500)) => done(json!("long done")),
                };
                running.lock().unwrap().remove(&id);
                tx.send((id, "ended")).unwrap();
                out
            }
        })
    };
    let short = WorkerSettings {
        lease: Duration::from_millis(300),
        heartbeat_every: Duration::from_millis(60),
        poll_interval: Duration::from_millis(50),
        ..settings("work")
    };
    // Two pools compete (as two nodes would); heartbeats keep each job with its first holder.
    let (p1, s1) = start(&queue, short.clone(), make());
    let (p2, s2) = start(&queue, short, make());
    let long = queue.enqueue(&NewJob::new(q("work"), json!("long"))).await.unwrap().job.id;
    assert_eq!(rx.recv().await.unwrap(), (long.to_string(), "started"));
    assert_eq!(rx.recv().await.unwrap(), (long.to_string(), "ended"));
    until_both(&s1, &s2, "the long job's completion", || s1.succeeded() + s2.succeeded() == 1)
        .await;
    let j = store.job(long).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts),
        (JobState::Succeeded, 1),
        "never redelivered while heartbeating"
    );
    assert_eq!(s1.lost() + s2.lost(), 0);

    let victim = queue.enqueue(&NewJob::new(q("work"), json!("cancel me"))).await.unwrap().job.id;
    assert_eq!(rx.recv().await.unwrap(), (victim.to_string(), "started"));
    assert_eq!(queue.cancel_job(victim).await.unwrap(), kai_store::queue::CancelOutcome::Requested);
    assert_eq!(
        rx.recv().await.unwrap(),
        (victim.to_string(), "ended"),
        "the handler saw the stop signal"
    );
    until_both(&s1, &s2, "the cancellation to be recorded", || {
        s1.cancelled() + s2.cancelled() == 1
    })
    .await;
    assert_eq!(store.job(victim).await.unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(overlap.load(Ordering::SeqCst), 0, "no job ran twice at once");
    p1.stop().await;
    p2.stop().await;
}

async fn dead_workers_job_is_redelivered(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let id = queue.enqueue(&NewJob::new(q("work"), json!(1))).await.unwrap().job.id;
    // A worker claims it with a short lease and dies (never heartbeats or finishes).
    let req = ClaimRequest {
        queues: vec![q("work")],
        worker: "doomed".into(),
        max: 1,
        lease: Duration::from_millis(200),
    };
    let claimed = store.claim(&req, now_us()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // A live pool wakes at the lease deadline (the poll interval is an hour) and runs it.
    let (pool, stats) = start(
        &queue,
        settings("work"),
        handler(|ctx: JobContext| async move { done(json!({"attempt": ctx.attempt()})) }),
    );
    until(&stats, "the redelivered job", |s| s.succeeded() == 1).await;
    let j = store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.result),
        (JobState::Succeeded, 2, Some(json!({"attempt": 2})))
    );
    assert!(matches!(
        store.complete_job(&claimed[0].lease, &json!("late").into(), now_us()).await,
        Err(kai_store::QueueError::LeaseLost)
    ));
    pool.stop().await;
}

async fn shutdown_releases_running_jobs(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let s = WorkerSettings { stop_grace: Duration::from_millis(100), ..settings("work") };
    // A handler that ignores the stop signal: the pool abandons it after the grace period.
    let (pool, stats) = start(
        &queue,
        s,
        handler(move |_ctx: JobContext| {
            let tx = tx.clone();
            async move {
                tx.send(()).unwrap();
                std::future::pending::<()>().await;
                done(json!(null))
            }
        }),
    );
    let jobs: Vec<NewJob> = (0..3).map(|n| NewJob::new(q("work"), json!(n))).collect();
    let ids: Vec<_> =
        queue.enqueue_batch(&jobs).await.unwrap().into_iter().map(|e| e.job.id).collect();
    for _ in 0..3 {
        rx.recv().await.unwrap();
    }
    pool.stop().await;
    assert_eq!(stats.released(), 3);
    for id in ids {
        let j = store.job(id).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.attempts, j.worker),
            (JobState::Queued, 0, None),
            "released, attempt given back"
        );
    }
}

async fn panics_fail_the_attempt(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let (pool, stats) = start(
        &queue,
        settings("work"),
        handler(|ctx: JobContext| async move {
            assert!(ctx.payload().is_null(), "handler bug");
            done(json!(null))
        }),
    );
    let id = queue
        .enqueue(&NewJob::new(q("work"), json!(1)).with_retry(RetryPolicy::no_retry()))
        .await
        .unwrap()
        .job
        .id;
    until(&stats, "the dead letter", |s| s.dead() == 1).await;
    let j = store.job(id).await.unwrap().unwrap();
    assert_eq!(j.last_error.as_deref(), Some("handler panicked: handler bug"));
    // The pool survives the panic and runs the next job.
    queue.enqueue(&NewJob::new(q("work"), json!(null))).await.unwrap();
    until(&stats, "the next job", |s| s.succeeded() == 1).await;
    pool.stop().await;
}

async fn effects_run_once_across_attempts(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let performed = Arc::new(AtomicU32::new(0));
    let p = performed.clone();
    // Attempt 1 performs the effect, then fails; attempt 2 must get the recorded result.
    let h = handler(move |ctx: JobContext| {
        let p = p.clone();
        async move {
            let key = "order/7/charge".parse().unwrap();
            let charged = ctx
                .effect_once(&key, |attempt| async move {
                    assert_eq!(attempt, EffectAttempt::First);
                    p.fetch_add(1, Ordering::SeqCst);
                    Ok(json!({"charge": "ch_1"}))
                })
                .await?;
            if ctx.attempt() == 1 {
                return Err(JobError::retry_after(
                    "network blip after the charge",
                    Duration::from_millis(10),
                ));
            }
            Ok(Completion { result: charged, ..Completion::default() })
        }
    });
    let router = JobRouter::new().route(q("orders"), h);
    let (pool, stats) = start(&queue, settings("orders"), Arc::new(router));
    let id = queue.enqueue(&NewJob::new(q("orders"), json!({"order": 7}))).await.unwrap().job.id;
    until(&stats, "the second attempt's success", |s| s.succeeded() == 1).await;
    assert_eq!(performed.load(Ordering::SeqCst), 1, "the charge happened once");
    let j = store.job(id).await.unwrap().unwrap();
    assert_eq!((j.attempts, j.result), (2, Some(json!({"charge": "ch_1"}))));
    pool.stop().await;
}

async fn pools_respect_concurrency_limits(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let agent: kai_core::queue::ConcurrencyKey = "kExecutor:web".parse().unwrap();
    store.set_concurrency_limit(&LimitScope::Key(agent.clone()), Some(2)).await.unwrap();
    let now = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let make = || {
        let (now, peak) = (now.clone(), peak.clone());
        handler(move |_ctx: JobContext| {
            let (now, peak) = (now.clone(), peak.clone());
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                done(json!(null))
            }
        })
    };
    let s = WorkerSettings { poll_interval: Duration::from_millis(50), ..settings("work") };
    let (p1, s1) = start(&queue, s.clone(), make());
    let (p2, s2) = start(&queue, s, make());
    let jobs: Vec<NewJob> = (0..40)
        .map(|n| NewJob::new(q("work"), json!(n)).with_concurrency_key(agent.clone()))
        .collect();
    queue.enqueue_batch(&jobs).await.unwrap();
    until_both(&s1, &s2, "40 completions", || s1.succeeded() + s2.succeeded() == 40).await;
    assert!(peak.load(Ordering::SeqCst) <= 2, "peak {} > limit 2", peak.load(Ordering::SeqCst));
    p1.stop().await;
    p2.stop().await;
}

async fn unrecordable_completion_fails_for_good(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let key: kai_core::queue::IdempotencyKey = "next-step".parse().unwrap();
    queue
        .enqueue(&NewJob::new(q("other"), json!("taken")).with_idempotency_key(key.clone()))
        .await
        .unwrap();
    // The handler's follow-up reuses that key for different work: the completion is refused.
    let k = key.clone();
    let (pool, stats) = start(
        &queue,
        settings("work"),
        handler(move |_ctx: JobContext| {
            let k = k.clone();
            async move {
                let next = NewJob::new(q("work"), json!("different")).with_idempotency_key(k);
                Ok(Completion { result: json!(1), enqueue: vec![next], ..Completion::default() })
            }
        }),
    );
    let id = queue.enqueue(&NewJob::new(q("work"), json!(1))).await.unwrap().job.id;
    until(&stats, "the dead letter", |s| s.dead() == 1).await;
    let j = store.job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Dead, 1), "not re-run: it cannot succeed");
    assert!(j.last_error.unwrap().contains("idempotency_conflict"));
    pool.stop().await;
}

/// A pool with more slots than one claim may take (`MAX_CLAIM`) claims in several queries and
/// runs a job in every slot at once. (An unclamped claim batch was refused by the store on
/// every try, and such a pool never ran anything.)
async fn pools_wider_than_one_claim_fill_every_slot(store: Arc<dyn Store>) {
    let queue = Queue::new(store.clone());
    let slots = kai_core::queue::MAX_CLAIM as usize + 44;
    // Every job holds its slot until the gate opens, so `slots` jobs started means all slots
    // were taken at once.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let started = Arc::new((AtomicU64::new(0), tokio::sync::Notify::new()));
    let (g, st) = (gate.clone(), started.clone());
    let (pool, stats) = start(
        &queue,
        WorkerSettings { concurrency: slots, claim_batch: slots as u32, ..settings("wide") },
        handler(move |_ctx: JobContext| {
            let (g, st) = (g.clone(), st.clone());
            async move {
                st.0.fetch_add(1, Ordering::SeqCst);
                st.1.notify_waiters();
                g.acquire().await.unwrap().forget();
                done(json!({}))
            }
        }),
    );
    let jobs: Vec<NewJob> = (0..slots).map(|n| NewJob::new(q("wide"), json!({"n": n}))).collect();
    queue.enqueue_batch(&jobs).await.unwrap();
    let all_started = async {
        loop {
            let changed = started.1.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if started.0.load(Ordering::SeqCst) == slots as u64 {
                return;
            }
            changed.await;
        }
    };
    tokio::time::timeout(WAIT, all_started).await.expect("every slot running at once");
    assert!(stats.claim_queries() >= 2, "{} claims", stats.claim_queries());
    gate.add_permits(slots);
    until(&stats, "every job done", |s| s.succeeded() == slots as u64).await;
    pool.stop().await;
}
