//! The durable queue's storage contract: jobs with leases, retries, dead letters, cancellation,
//! concurrency limits and recorded side effects (Celery/Temporal-like semantics on one table).
//!
//! Guarantees (both backends; the SQL is shared in `sql_queue.rs`):
//! - **Durable enqueue.** `Ok` from [`QueueStore::enqueue`] means committed (SQLite
//!   `synchronous=FULL`); an idempotency key makes a repeated enqueue return the first job.
//! - **At-least-once delivery.** A claimed job runs under a lease (deadline + fencing token
//!   [`LeaseId`]). If the worker neither heartbeats nor finishes before the deadline, the next
//!   claim takes the job over (the attempt counts) and the old token stops working: every
//!   heartbeat, completion and failure presents it and fails with [`QueueError::LeaseLost`]
//!   once someone else holds the job. So a job may *run* more than once, but its outcome is
//!   *recorded* once, by the holder of the current lease.
//! - **Exactly-once effects, for effects that use a key.** See [`QueueStore::begin_effect`]:
//!   an effect recorded done is never reported as still to do, and the one window in which an
//!   effect may have happened without being recorded (a crash between doing it and
//!   [`QueueStore::finish_effect`]) is reported to the next run as [`EffectStart::Unknown`],
//!   so the handler can reconcile with the target by the same key.
//!
//! Time is passed in (`now_us`, microseconds since the epoch), never read here, so tests drive
//! leases and backoff with a simulated clock.

use std::time::Duration;

use async_trait::async_trait;
use kai_core::ids::{JobId, LeaseId, TaskId};
use kai_core::queue::{
    ConcurrencyKey, EffectKey, IdempotencyKey, JobState, QueueName, RetryPolicy,
};
use serde_json::Value;

use crate::StoreError;

/// Why a queue operation did not happen. Each variant has a stable [`QueueError::code`].
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("no such job")]
    JobNotFound,
    /// The lease is no longer the job's current one: it expired and another worker took the
    /// job, or the job was finished, released or cancelled. Stop working on it; do not retry.
    #[error(
        "the lease on this job is no longer held (it expired and was taken over, or the job finished)"
    )]
    LeaseLost,
    /// The idempotency key belongs to a job with a different queue, payload, parent or
    /// concurrency key.
    #[error("idempotency key already used by job {existing} for different work")]
    IdempotencyConflict { existing: JobId },
    /// The job is not in a state that allows the operation (e.g. retrying a running job).
    #[error("job is {state}: {what}")]
    InvalidState { state: JobState, what: &'static str },
    /// A size or count bound was exceeded (payload, result, batch, list or claim size).
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded { what: &'static str, limit: usize },
    /// A request field is out of range (lease length, retry policy, worker name).
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    /// Stable snake_case code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::JobNotFound => "job_not_found",
            Self::LeaseLost => "lease_lost",
            Self::IdempotencyConflict { .. } => "idempotency_conflict",
            Self::InvalidState { .. } => "job_state_conflict",
            Self::LimitExceeded { .. } => "queue_limit_exceeded",
            Self::Invalid(_) => "invalid_job",
            Self::Store(e) => e.code(),
        }
    }
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Result alias for queue calls.
pub type QueueResult<T> = Result<T, QueueError>;

/// A job to enqueue. Build with [`NewJob::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub queue: QueueName,
    /// At most [`kai_core::queue::MAX_PAYLOAD_BYTES`] serialized.
    pub payload: Value,
    /// Higher runs first; ties go to the job that has been ready longest.
    pub priority: i32,
    /// Not before this time (`None`: as soon as possible).
    pub run_at_us: Option<i64>,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Jobs sharing a key obey that key's concurrency limit (see [`LimitScope::Key`]).
    pub concurrency_key: Option<ConcurrencyKey>,
    /// The task the job belongs to: list, count and cancel jobs by it.
    pub parent: Option<TaskId>,
    pub retry: RetryPolicy,
}

impl NewJob {
    /// A job on `queue` with priority 0, runnable now, the default retry policy.
    pub fn new(queue: QueueName, payload: Value) -> Self {
        Self {
            queue,
            payload,
            priority: 0,
            run_at_us: None,
            idempotency_key: None,
            concurrency_key: None,
            parent: None,
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn with_run_at(mut self, run_at_us: i64) -> Self {
        self.run_at_us = Some(run_at_us);
        self
    }

    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    pub fn with_concurrency_key(mut self, key: ConcurrencyKey) -> Self {
        self.concurrency_key = Some(key);
        self
    }

    pub fn with_parent(mut self, parent: TaskId) -> Self {
        self.parent = Some(parent);
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub queue: QueueName,
    pub state: JobState,
    pub priority: i32,
    pub payload: Value,
    /// Set when the job succeeded.
    pub result: Option<Value>,
    /// The newest failure (kept when a job is retried or succeeds later).
    pub last_error: Option<String>,
    pub parent: Option<TaskId>,
    pub idempotency_key: Option<IdempotencyKey>,
    pub concurrency_key: Option<ConcurrencyKey>,
    /// Attempts started so far (a claim starts one; a released lease gives it back).
    pub attempts: u32,
    pub retry: RetryPolicy,
    /// When the job (next) becomes claimable.
    pub run_at_us: i64,
    /// The current holder, while running.
    pub worker: Option<String>,
    pub lease_until_us: Option<i64>,
    /// Cancellation was asked while it ran; the worker learns it from its next heartbeat.
    pub cancel_requested: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub started_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
}

/// The result of an enqueue: the job and whether this call created it (`false`: the
/// idempotency key matched an existing job, which is returned as it is now).
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    pub created: bool,
}

/// What a worker holds while it runs a job, and presents with every call about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub job: JobId,
    pub token: LeaseId,
}

/// A job handed to a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub lease: Lease,
    /// The job as claimed (state `running`, `attempts` counting this attempt).
    pub job: Job,
    /// The lease runs out at this time unless extended by a heartbeat.
    pub lease_until_us: i64,
}

/// A claim: up to `max` ready jobs from `queues`, held for `lease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    pub queues: Vec<QueueName>,
    /// Who claims (shown on the job while it runs), at most 128 bytes.
    pub worker: String,
    /// 1 to [`kai_core::queue::MAX_CLAIM`].
    pub max: u32,
    /// Between [`kai_core::queue::MIN_LEASE`] and [`kai_core::queue::MAX_LEASE`].
    pub lease: Duration,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// Keep going; the lease now runs until `lease_until_us`.
    Continue { lease_until_us: i64 },
    /// The job was cancelled: stop and call [`QueueStore::ack_cancel`]. The lease is still
    /// extended so the worker has time to stop cleanly.
    CancelRequested { lease_until_us: i64 },
}

/// What a successful run records, in one transaction with the completion.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Completion {
    /// The job's result, at most [`kai_core::queue::MAX_RESULT_BYTES`] serialized.
    pub result: Value,
    /// Effects to record as done together with the completion (see [`QueueStore::begin_effect`]).
    pub effects: Vec<(EffectKey, Value)>,
    /// Follow-up jobs enqueued atomically with the completion (e.g. the next steps of a
    /// task graph): they exist if and only if the completion committed.
    pub enqueue: Vec<NewJob>,
}

impl From<Value> for Completion {
    fn from(result: Value) -> Self {
        Self { result, ..Self::default() }
    }
}

/// How a failure should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// By the job's retry policy (exponential backoff with jitter) while attempts remain.
    Policy,
    /// After this delay (e.g. a `Retry-After`) while attempts remain.
    After(Duration),
    /// Not at all: the error is permanent and the job goes to the dead letters now.
    Never,
}

/// A failed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong (cut to [`kai_core::queue::MAX_ERROR_BYTES`]).
    pub error: String,
    pub retry: Retry,
}

/// What became of a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Queued again; claimable from `run_at_us`.
    Retrying { run_at_us: i64 },
    /// No attempts left (or not retryable): dead, with the error kept.
    Dead,
    /// Cancellation had been requested: the job is cancelled instead of retried.
    Cancelled,
}

/// What [`QueueStore::cancel_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued and is now cancelled.
    Cancelled,
    /// It is running: its worker is told through its heartbeat and stops.
    Requested,
    /// It had already finished in this state; nothing changed.
    AlreadyFinished(JobState),
}

/// What [`QueueStore::cancel_parent`] did to a task's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CancelCounts {
    /// Queued jobs now cancelled.
    pub cancelled: u64,
    /// Running jobs whose workers were asked to stop.
    pub requested: u64,
}

/// Which jobs to list. Results are in id (creation) order, after the `after` cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFilter {
    pub parent: Option<TaskId>,
    pub queue: Option<QueueName>,
    pub state: Option<JobState>,
    /// Return jobs created after this one (the last id of the previous page).
    pub after: Option<JobId>,
    /// 1 to [`kai_core::queue::MAX_LIST`].
    pub limit: u32,
}

/// Which jobs to count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CountFilter {
    pub parent: Option<TaskId>,
    pub queue: Option<QueueName>,
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub cancelled: u64,
}

impl QueueCounts {
    /// The count for one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Running => self.running,
            JobState::Succeeded => self.succeeded,
            JobState::Dead => self.dead,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// Every job counted.
    pub fn total(&self) -> u64 {
        JobState::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// What a concurrency limit applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitScope {
    /// Every running job, in every queue.
    Global,
    /// Running jobs with this concurrency key (e.g. one agent's steps).
    Key(ConcurrencyKey),
}

/// Whether a job's run may perform an effect (see [`QueueStore::begin_effect`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EffectStart {
    /// No run has started this effect: perform it, then call [`QueueStore::finish_effect`].
    Proceed,
    /// It was performed and recorded; this is its recorded result. Do not perform it again.
    Done(Value),
    /// An earlier run (or this one) started it and never recorded the outcome: it may or may
    /// not have happened. Ask the target by the effect key (or repeat it only if the target
    /// de-duplicates on that key), then call [`QueueStore::finish_effect`].
    Unknown { started_at_us: i64, attempt: u32 },
}

/// Whether [`QueueStore::finish_effect`] recorded the effect.
#[derive(Debug, Clone, PartialEq)]
pub enum EffectFinish {
    Recorded,
    /// Another run recorded it first; its result is kept (the first record wins).
    AlreadyDone(Value),
}

/// A recorded effect.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRecord {
    pub key: EffectKey,
    /// The job that started (or recorded) it.
    pub job: JobId,
    /// Set once the outcome is recorded.
    pub result: Option<Value>,
    pub attempt: u32,
    pub started_at_us: i64,
    pub done_at_us: Option<i64>,
}

/// The durable queue. Object safe; every method is one transaction.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Enqueues one job; `Ok` means committed. With an idempotency key already in use, returns
    /// the existing job (`created: false`) if it describes the same work (queue, payload,
    /// parent, concurrency key), else [`QueueError::IdempotencyConflict`].
    async fn enqueue(&self, job: &NewJob, now_us: i64) -> QueueResult<Enqueued>;
    /// Enqueues up to [`kai_core::queue::MAX_BATCH`] jobs in one transaction: all or none.
    /// Results are in input order.
    async fn enqueue_batch(&self, jobs: &[NewJob], now_us: i64) -> QueueResult<Vec<Enqueued>>;
    /// Takes up to `max` ready jobs (state queued, `run_at_us <= now`), highest priority first,
    /// then the longest ready, skipping jobs whose concurrency key (or the global limit) is
    /// full. Jobs of these queues whose lease expired are first taken back: queued again with
    /// their attempt counted, or dead if it was their last, or cancelled if that was asked.
    async fn claim(&self, request: &ClaimRequest, now_us: i64) -> QueueResult<Vec<ClaimedJob>>;
    /// Extends the lease to `now + extend`. [`QueueError::LeaseLost`] if it is not held.
    async fn heartbeat(
        &self,
        lease: &Lease,
        extend: Duration,
        now_us: i64,
    ) -> QueueResult<Heartbeat>;
    /// Marks the job succeeded with its result, records the completion's effects and enqueues
    /// its follow-ups, in one transaction. Returns the follow-ups. [`QueueError::LeaseLost`]
    /// (and nothing written) if the lease is not held.
    async fn complete_job(
        &self,
        lease: &Lease,
        completion: &Completion,
        now_us: i64,
    ) -> QueueResult<Vec<Enqueued>>;
    /// Records a failed attempt: queued again after the backoff while attempts remain and the
    /// failure is retryable, else dead with the error kept.
    async fn fail_job(
        &self,
        lease: &Lease,
        failure: &Failure,
        now_us: i64,
    ) -> QueueResult<FailOutcome>;
    /// Gives the job back unfinished (a worker shutting down): queued, claimable now, and the
    /// attempt does not count.
    async fn release_job(&self, lease: &Lease, now_us: i64) -> QueueResult<()>;
    /// The worker stopped after a cancellation request: the job is cancelled.
    async fn ack_cancel(&self, lease: &Lease, now_us: i64) -> QueueResult<()>;
    /// Cancels a queued job now, or asks a running job's worker to stop.
    async fn cancel_job(&self, id: JobId, now_us: i64) -> QueueResult<CancelOutcome>;
    /// [`QueueStore::cancel_job`] for every unfinished job of a task.
    async fn cancel_parent(&self, parent: TaskId, now_us: i64) -> QueueResult<CancelCounts>;
    /// Queues a dead or cancelled job again with a fresh set of attempts.
    async fn retry_job(&self, id: JobId, now_us: i64) -> QueueResult<Job>;
    async fn job(&self, id: JobId) -> QueueResult<Option<Job>>;
    async fn jobs(&self, filter: &JobFilter) -> QueueResult<Vec<Job>>;
    async fn job_counts(&self, filter: &CountFilter) -> QueueResult<QueueCounts>;
    /// The earliest time something in `queues` may become claimable: the soonest `run_at_us`
    /// of a queued job or lease deadline of a running one. Workers sleep until then.
    async fn next_wakeup(&self, queues: &[QueueName]) -> QueueResult<Option<i64>>;
    /// Sets (or with `None` removes) the most jobs that may run at once in `scope`.
    async fn set_concurrency_limit(
        &self,
        scope: &LimitScope,
        max_running: Option<u32>,
    ) -> QueueResult<()>;
    async fn concurrency_limits(&self) -> QueueResult<Vec<(LimitScope, u32)>>;
    /// Starts effect `key` for the run holding `lease`, in one transaction that also checks
    /// the lease. [`EffectStart::Proceed`] the first time; [`EffectStart::Done`] with the
    /// recorded result once finished; [`EffectStart::Unknown`] if a run started it and did
    /// not record how it ended (the row is re-stamped with this run).
    ///
    /// The guarantee, exactly: an effect key is recorded done at most once, and a run that
    /// asks after that gets `Done`, so a handler that always asks first performs an effect
    /// again only if a run died (or lost its lease) after performing it and before
    /// `finish_effect` committed — and then the next run is told `Unknown`, never `Proceed`.
    /// Where the target can be asked by the key, or de-duplicates on it, effects happen
    /// exactly once; where it can do neither, that window is at-least-once.
    async fn begin_effect(
        &self,
        lease: &Lease,
        key: &EffectKey,
        now_us: i64,
    ) -> QueueResult<EffectStart>;
    /// Records effect `key` as done with `result` (first record wins). Accepted from a run
    /// whose lease was lost too: it reports a fact, and refusing it would only turn a known
    /// outcome into an unknown one.
    async fn finish_effect(
        &self,
        lease: &Lease,
        key: &EffectKey,
        result: &Value,
        now_us: i64,
    ) -> QueueResult<EffectFinish>;
    async fn effect(&self, key: &EffectKey) -> QueueResult<Option<EffectRecord>>;
    /// Deletes up to `limit` finished jobs (succeeded, dead, cancelled) that finished before
    /// `before_us`, with their effect records. Returns how many jobs went.
    async fn purge_finished(&self, before_us: i64, limit: u32) -> QueueResult<u64>;
}
