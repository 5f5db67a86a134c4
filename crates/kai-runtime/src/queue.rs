//! The durable queue's service side: a [`Queue`] handle that enqueues (acknowledged after
//! commit) and wakes local workers, the [`JobHandler`] trait the node's job kinds implement,
//! the [`JobContext`] a handler runs with (payload, cancellation, recorded side effects), and
//! the worker pool ([`Queue::start_workers`], in `queue/pool.rs`).
//!
//! Delivery is at least once: a job whose worker dies runs again after its lease runs out.
//! Side effects that go through [`JobContext::effect_once`] with a stable key happen once (see
//! `kai_store::QueueStore::begin_effect` for the exact guarantee). Storage rules live in
//! `kai-store`, retry and admission rules in `kai-core::queue`; this module only runs things.
//! It reads no configuration: callers pass [`WorkerSettings`].

mod pool;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kai_core::ids::{JobId, TaskId};
use kai_core::queue::{EffectKey, QueueName};
use kai_store::Store;
use kai_store::queue::{
    CancelCounts, CancelOutcome, Completion, EffectFinish, EffectStart, Enqueued, Job, Lease,
    LimitScope, NewJob, QueueError, QueueResult, Retry,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use pool::{PoolStats, WorkerPool};

/// Microseconds since the epoch, the clock every queue call is given.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// How a worker pool runs. [`WorkerSettings::new`] gives the defaults of the reliability notes:
/// 5-minute leases renewed every 30 s, a 1 s poll as fallback, 30 s to stop on shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Shown on the jobs this pool runs (`<name>/<slot>`), e.g. the node name.
    pub name: String,
    /// The queues (job kinds) this pool takes jobs from.
    pub queues: Vec<QueueName>,
    /// How many jobs run at once (worker slots).
    pub concurrency: usize,
    /// Most jobs one claim takes (at most `concurrency`, and at most
    /// [`kai_core::queue::MAX_CLAIM`]: a larger batch is claimed in several queries).
    pub claim_batch: u32,
    /// How long a claim (and each heartbeat) holds a job.
    pub lease: Duration,
    /// How often a running job's lease is renewed; well below `lease`.
    pub heartbeat_every: Duration,
    /// How long an idle pool waits before looking again when nothing woke it (jobs enqueued
    /// by another process). Local enqueues and completions wake it at once.
    pub poll_interval: Duration,
    /// How long running jobs may take to finish once the pool is stopped (or a job is
    /// cancelled) before they are abandoned (released, or acknowledged as cancelled).
    pub stop_grace: Duration,
}

impl WorkerSettings {
    pub fn new(name: impl Into<String>, queues: Vec<QueueName>) -> Self {
        Self {
            name: name.into(),
            queues,
            concurrency: 4,
            claim_batch: 4,
            lease: Duration::from_secs(300),
            heartbeat_every: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            stop_grace: Duration::from_secs(30),
        }
    }

    /// Checks that the settings can work: at least one queue and slot, a heartbeat shorter
    /// than the lease, nonzero intervals.
    pub fn validate(&self) -> Result<(), QueueError> {
        let bad = |m: &str| Err(QueueError::Invalid(format!("worker settings: {m}")));
        if self.queues.is_empty() {
            return bad("name at least one queue");
        }
        if self.concurrency == 0 || self.claim_batch == 0 {
            return bad("concurrency and claim_batch must be at least 1");
        }
        if self.heartbeat_every.is_zero() || self.heartbeat_every >= self.lease {
            return bad("heartbeat_every must be nonzero and shorter than the lease");
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval must be nonzero");
        }
        Ok(())
    }
}

/// Why a run failed, and whether to retry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub message: String,
    pub retry: Retry,
}

impl JobError {
    /// A failure worth retrying by the job's policy (timeouts, unavailable services).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { message: message.into(), retry: Retry::Policy }
    }

    /// A failure retrying cannot fix (bad input, forbidden): the job goes to the dead letters.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { message: message.into(), retry: Retry::Never }
    }

    /// Retry after `delay` (a `Retry-After`), while attempts remain.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self { message: message.into(), retry: Retry::After(delay) }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<QueueError> for JobError {
    fn from(e: QueueError) -> Self {
        Self::retryable(format!("queue: {e} ({})", e.code()))
    }
}

/// One kind of work. `run` is called once per attempt; it returns the job's result (and
/// optionally effects to record and follow-up jobs, all committed with the completion).
#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError>;
}

/// Dispatches jobs to a handler per queue; a job of an unrouted queue fails permanently.
#[derive(Default, Clone)]
pub struct JobRouter {
    routes: std::collections::BTreeMap<QueueName, Arc<dyn JobHandler>>,
}

impl JobRouter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route(mut self, queue: QueueName, handler: Arc<dyn JobHandler>) -> Self {
        self.routes.insert(queue, handler);
        self
    }

    /// The queues with a handler (what a pool running this router should claim from).
    pub fn queues(&self) -> Vec<QueueName> {
        self.routes.keys().cloned().collect()
    }
}

#[async_trait]
impl JobHandler for JobRouter {
    async fn run(&self, ctx: JobContext) -> Result<Completion, JobError> {
        match self.routes.get(&ctx.job.queue) {
            Some(h) => h.run(ctx).await,
            None => Err(JobError::permanent(format!("no handler for queue {}", ctx.job.queue))),
        }
    }
}

/// How an effect is being attempted (see [`JobContext::effect_once`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EffectAttempt {
    /// No run has started it: just do it.
    First,
    /// A run started it and died before recording the outcome: check with the target by the
    /// effect key whether it happened (or repeat it only if the target de-duplicates on the
    /// key), then return its result.
    Unknown { started_at_us: i64, attempt: u32 },
}

/// What a handler runs with.
pub struct JobContext {
    /// The job as claimed (`attempts` counts this attempt).
    pub job: Job,
    lease: Lease,
    store: Arc<dyn Store>,
    stop: CancellationToken,
}

impl JobContext {
    pub fn id(&self) -> JobId {
        self.job.id
    }

    pub fn payload(&self) -> &Value {
        &self.job.payload
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.job.attempts
    }

    pub fn parent(&self) -> Option<TaskId> {
        self.job.parent
    }

    /// The lease this run holds (for calls straight to the store).
    pub fn lease(&self) -> Lease {
        self.lease
    }

    /// The store (to read other jobs, e.g. the results of a step's dependencies).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Fires when the run should stop: the job was cancelled, its lease was lost, or the pool
    /// is shutting down. A handler that ignores it is dropped after the stop grace (or at
    /// once when the lease is lost).
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// Runs side effect `key` at most once across all runs of all jobs: if it is recorded
    /// done, returns the recorded result without calling `perform`; otherwise calls `perform`
    /// (telling it whether an earlier run may already have done it) and records its result.
    /// If `perform` fails, nothing is recorded and the next run is told
    /// [`EffectAttempt::Unknown`].
    pub async fn effect_once<F, Fut>(&self, key: &EffectKey, perform: F) -> Result<Value, JobError>
    where
        F: FnOnce(EffectAttempt) -> Fut + Send,
        Fut: Future<Output = Result<Value, JobError>> + Send,
    {
        let attempt = match self.store.begin_effect(&self.lease, key, now_us()).await? {
            EffectStart::Done(v) => return Ok(v),
            EffectStart::Proceed => EffectAttempt::First,
            EffectStart::Unknown { started_at_us, attempt } => {
                EffectAttempt::Unknown { started_at_us, attempt }
            }
        };
        let value = perform(attempt).await?;
        match self.store.finish_effect(&self.lease, key, &value, now_us()).await? {
            EffectFinish::Recorded => Ok(value),
            EffectFinish::AlreadyDone(first) => Ok(first),
        }
    }
}

/// The queue as services use it: enqueue and control calls on the store, stamped with the
/// clock, that also wake this process's worker pools. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    store: Arc<dyn Store>,
    wake: Arc<watch::Sender<u64>>,
}

impl Queue {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, wake: Arc::new(watch::channel(0).0) }
    }

    /// The store, for reads (`job`, `jobs`, `job_counts`, `effect`, …).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Wakes the local pools to look for work now.
    pub fn wake(&self) {
        self.wake.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Enqueues a job; `Ok` means it is committed.
    pub async fn enqueue(&self, job: &NewJob) -> QueueResult<Enqueued> {
        let out = self.store.enqueue(job, now_us()).await?;
        self.wake();
        Ok(out)
    }

    /// Enqueues jobs in one transaction; `Ok` means all are committed.
    pub async fn enqueue_batch(&self, jobs: &[NewJob]) -> QueueResult<Vec<Enqueued>> {
        let out = self.store.enqueue_batch(jobs, now_us()).await?;
        self.wake();
        Ok(out)
    }

    pub async fn cancel_job(&self, id: JobId) -> QueueResult<CancelOutcome> {
        self.store.cancel_job(id, now_us()).await
    }

    /// Cancels every unfinished job of a task.
    pub async fn cancel_parent(&self, parent: TaskId) -> QueueResult<CancelCounts> {
        self.store.cancel_parent(parent, now_us()).await
    }

    /// Queues a dead or cancelled job again.
    pub async fn retry_job(&self, id: JobId) -> QueueResult<Job> {
        let job = self.store.retry_job(id, now_us()).await?;
        self.wake();
        Ok(job)
    }

    /// Sets or removes a concurrency limit; pools look again at once (a raised limit may
    /// admit waiting jobs).
    pub async fn set_concurrency_limit(
        &self,
        scope: &LimitScope,
        max_running: Option<u32>,
    ) -> QueueResult<()> {
        self.store.set_concurrency_limit(scope, max_running).await?;
        self.wake();
        Ok(())
    }
}
