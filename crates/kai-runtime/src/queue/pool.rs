//! The worker pool: one dispatcher task claims jobs for free slots (a semaphore of
//! `concurrency` permits) and spawns one task per claimed job; each job task runs the handler
//! while renewing the lease, then records the outcome (complete, fail, release, cancel).
//!
//! Idle means asleep: a drained dispatcher waits for the earliest of the next due job or
//! lease deadline (`next_wakeup`), a local wake (enqueue, completion, retry) or the poll
//! interval — never a busy loop. Every task belongs to the caller's `TaskTracker` and stops on
//! its `CancellationToken`: the dispatcher stops claiming, running jobs get `stop_grace` to
//! finish, then are released (their attempt given back) so a restart runs them at once.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt as _;
use kai_store::queue::{
    ClaimRequest, ClaimedJob, Completion, FailOutcome, Failure, Heartbeat, QueueError, Retry,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::{JobContext, JobError, JobHandler, Queue, WorkerSettings, now_us};
use crate::metrics as m;

/// What a pool has done so far (for status pages, tests and benchmarks).
#[derive(Debug, Default)]
pub struct PoolStats {
    claimed: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    cancelled: AtomicU64,
    released: AtomicU64,
    lost: AtomicU64,
    claim_queries: AtomicU64,
    running: AtomicU64,
    parked: std::sync::atomic::AtomicBool,
    changed: tokio::sync::Notify,
}

impl PoolStats {
    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn set_parked(&self, parked: bool) {
        self.parked.store(parked, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Waits until `done` holds, re-checking whenever a counter changes (wrap it in a timeout).
    pub async fn wait_until(&self, mut done: impl FnMut(&PoolStats) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            changed.await;
        }
    }

    /// Jobs running now.
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }
    /// True while the dispatcher sleeps (nothing claimable, waiting for a wake, a due job or
    /// the poll interval).
    pub fn parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }
    /// Jobs claimed.
    pub fn claimed(&self) -> u64 {
        self.claimed.load(Ordering::Relaxed)
    }
    /// Jobs completed.
    pub fn succeeded(&self) -> u64 {
        self.succeeded.load(Ordering::Relaxed)
    }
    /// Failed attempts that were queued for a retry.
    pub fn retried(&self) -> u64 {
        self.retried.load(Ordering::Relaxed)
    }
    /// Jobs that went to the dead letters from this pool.
    pub fn dead(&self) -> u64 {
        self.dead.load(Ordering::Relaxed)
    }
    /// Jobs stopped because they were cancelled.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }
    /// Jobs given back unfinished at shutdown.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }
    /// Runs abandoned because their lease was lost (another worker took the job over).
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
    /// Claim queries made (an idle pool makes one per poll interval, not a busy loop).
    pub fn claim_queries(&self) -> u64 {
        self.claim_queries.load(Ordering::Relaxed)
    }
}

/// A running pool. Stop it with the `CancellationToken` given to [`Queue::start_workers`] and
/// wait for the `TaskTracker`.
pub struct WorkerPool {
    stats: Arc<PoolStats>,
}

impl WorkerPool {
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }
}

struct Shared {
    queue: Queue,
    settings: WorkerSettings,
    handler: Arc<dyn JobHandler>,
    stats: Arc<PoolStats>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Queue {
    /// Starts a pool of `settings.concurrency` worker slots running `handler` on jobs of
    /// `settings.queues`. Its tasks run on `tracker` and stop on `cancel`.
    pub fn start_workers(
        &self,
        settings: WorkerSettings,
        handler: Arc<dyn JobHandler>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<WorkerPool, QueueError> {
        settings.validate()?;
        let stats = Arc::new(PoolStats::default());
        let shared = Arc::new(Shared {
            queue: self.clone(),
            settings,
            handler,
            stats: stats.clone(),
            tracker: tracker.clone(),
            cancel,
        });
        tracker.spawn(dispatch(shared));
        Ok(WorkerPool { stats })
    }
}

/// Waits `pause`, or less if woken or cancelled. True if cancelled.
async fn pause(
    cancel: &CancellationToken,
    wake: &mut watch::Receiver<u64>,
    pause: Duration,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = wake.changed() => false,
        _ = tokio::time::sleep(pause) => false,
    }
}

async fn dispatch(shared: Arc<Shared>) {
    let s = &shared.settings;
    let slots = Arc::new(Semaphore::new(s.concurrency));
    // The store refuses claims above MAX_CLAIM; a pool with more slots fills them in several
    // claims (an unclamped batch made every claim fail, and a 1,000-slot pool never started).
    let batch = usize::try_from(s.claim_batch.min(kai_core::queue::MAX_CLAIM))
        .unwrap_or(1)
        .clamp(1, s.concurrency);
    let mut wake = shared.queue.wake.subscribe();
    let store = shared.queue.store.clone();
    let mut due_but_empty = false;
    loop {
        let first = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let mut permits = vec![first];
        while permits.len() < batch {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        wake.borrow_and_update();
        let asked = permits.len();
        let request = ClaimRequest {
            queues: s.queues.clone(),
            worker: s.name.clone(),
            max: u32::try_from(asked).unwrap_or(1),
            lease: s.lease,
        };
        shared.stats.bump(&shared.stats.claim_queries);
        let claimed = match store.claim(&request, now_us()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "queue claim failed; retrying after the poll interval");
                drop(permits);
                shared.stats.set_parked(true);
                let cancelled = pause(&shared.cancel, &mut wake, s.poll_interval).await;
                shared.stats.set_parked(false);
                if cancelled {
                    break;
                }
                continue;
            }
        };
        let got = claimed.len();
        if got > 0 {
            due_but_empty = false;
        }
        shared.stats.claimed.fetch_add(got as u64, Ordering::Relaxed);
        shared.stats.running.fetch_add(got as u64, Ordering::Relaxed);
        for (job, permit) in claimed.into_iter().zip(permits.drain(..)) {
            metrics::counter!(m::QUEUE_JOBS_CLAIMED, "queue" => job.job.queue.to_string())
                .increment(1);
            let span = tracing::info_span!("job", job_id = %job.job.id, queue = %job.job.queue,
                attempt = job.job.attempts, task_id = %job.job.parent.map(|p| p.to_string()).unwrap_or_default());
            shared.tracker.spawn(run_job(shared.clone(), job, permit).instrument(span));
        }
        drop(permits);
        if got < asked {
            // Drained (or held back by concurrency limits): sleep until something is due.
            let now = now_us();
            let wait = match store.next_wakeup(&s.queues).await {
                Ok(Some(at)) if at > now => {
                    due_but_empty = false;
                    Duration::from_micros(u64::try_from(at - now).unwrap_or(0)).min(s.poll_interval)
                }
                // Something became due while we claimed: look again at once, but only once —
                // a job that stays due yet unclaimable is held back by a concurrency limit
                // (freed by a completion, which wakes us) or by another process's claim.
                Ok(Some(_)) if !due_but_empty => {
                    due_but_empty = true;
                    continue;
                }
                _ => s.poll_interval,
            };
            shared.stats.set_parked(true);
            let cancelled = pause(&shared.cancel, &mut wake, wait).await;
            shared.stats.set_parked(false);
            if cancelled {
                break;
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    Shutdown,
    LeaseLost,
}

type RunResult = Result<Result<Completion, JobError>, Box<dyn Any + Send>>;

enum End {
    Finished(RunResult, Option<Stop>),
    Abandoned(Stop),
}

fn panic_text(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}

async fn run_job(shared: Arc<Shared>, claimed: ClaimedJob, _slot: OwnedSemaphorePermit) {
    let s = &shared.settings;
    let store = shared.queue.store.clone();
    let ClaimedJob { lease, job, lease_until_us } = claimed;
    let queue = job.queue.to_string();
    let stop = CancellationToken::new();
    let ctx = JobContext { job, lease, store: store.clone(), stop: stop.clone() };
    let started = Instant::now();
    let handler = shared.handler.clone();
    // The handler's writes become durable with the outcome recorded below (one shared WAL
    // flush for the job instead of one per write; see `kai_store::deferred_flush`).
    let run = AssertUnwindSafe(kai_store::deferred_flush(async move { handler.run(ctx).await }))
        .catch_unwind();
    tokio::pin!(run);
    let mut beat = tokio::time::interval_at(Instant::now() + s.heartbeat_every, s.heartbeat_every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease_until = lease_until_us;
    let mut stopping: Option<(Stop, Instant)> = None;
    let end = loop {
        let abandon_at = stopping.map(|(_, at)| at);
        tokio::select! {
            res = &mut run => break End::Finished(res, stopping.map(|(r, _)| r)),
            _ = beat.tick() => match store.heartbeat(&lease, s.lease, now_us()).await {
                Ok(Heartbeat::Continue { lease_until_us }) => lease_until = lease_until_us,
                Ok(Heartbeat::CancelRequested { lease_until_us }) => {
                    lease_until = lease_until_us;
                    if stopping.is_none() {
                        stop.cancel();
                        stopping = Some((Stop::Cancelled, Instant::now() + s.stop_grace));
                    }
                }
                Err(QueueError::LeaseLost) => break End::Abandoned(Stop::LeaseLost),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed; the lease runs until its deadline");
                    if now_us() >= lease_until {
                        break End::Abandoned(Stop::LeaseLost);
                    }
                }
            },
            _ = shared.cancel.cancelled(), if stopping.is_none() => {
                stop.cancel();
                stopping = Some((Stop::Shutdown, Instant::now() + s.stop_grace));
            }
            _ = tokio::time::sleep_until(abandon_at.unwrap_or_else(Instant::now)), if abandon_at.is_some() => {
                break End::Abandoned(stopping.map_or(Stop::Shutdown, |(r, _)| r));
            }
        }
    };
    stop.cancel();
    let outcome = record(&shared, &lease, end).await;
    shared.stats.running.fetch_sub(1, Ordering::Relaxed);
    shared.stats.changed.notify_waiters();
    metrics::counter!(m::QUEUE_JOBS_FINISHED, "queue" => queue, "outcome" => outcome).increment(1);
    metrics::histogram!(m::QUEUE_JOB_SECONDS).record(started.elapsed().as_secs_f64());
    // A finished job frees a slot and may have enqueued follow-ups or freed a concurrency key.
    shared.queue.wake();
    tracing::debug!(outcome, "job run ended");
}

/// Records how a run ended; returns the outcome's metric label.
async fn record(shared: &Shared, lease: &kai_store::queue::Lease, end: End) -> &'static str {
    let store = &shared.queue.store;
    let stats = &shared.stats;
    let result = match end {
        End::Abandoned(Stop::LeaseLost) => {
            stats.bump(&stats.lost);
            return "lease_lost";
        }
        End::Abandoned(Stop::Cancelled) => {
            with_retries(|| store.ack_cancel(lease, now_us())).await.map(|()| {
                stats.bump(&stats.cancelled);
                "cancelled"
            })
        }
        End::Abandoned(Stop::Shutdown) | End::Finished(Ok(Err(_)), Some(Stop::Shutdown)) => {
            with_retries(|| store.release_job(lease, now_us())).await.map(|()| {
                stats.bump(&stats.released);
                "released"
            })
        }
        End::Finished(Ok(Ok(completion)), _) => {
            match with_retries(|| store.complete_job(lease, &completion, now_us())).await {
                Ok(_) => {
                    stats.bump(&stats.succeeded);
                    Ok("succeeded")
                }
                // The store refuses this completion as it is (a follow-up's idempotency key
                // conflicts, a result is too large): running the job again cannot help.
                Err(
                    e @ (QueueError::IdempotencyConflict { .. }
                    | QueueError::LimitExceeded { .. }
                    | QueueError::Invalid(_)),
                ) => {
                    let error =
                        format!("the job's result could not be recorded: {e} ({})", e.code());
                    fail(shared, lease, Failure { error, retry: Retry::Never }).await
                }
                Err(e) => Err(e),
            }
        }
        End::Finished(Ok(Err(e)), _) => {
            fail(shared, lease, Failure { error: e.message, retry: e.retry }).await
        }
        End::Finished(Err(panic), _) => {
            let error = format!("handler panicked: {}", panic_text(panic.as_ref()));
            fail(shared, lease, Failure { error, retry: Retry::Policy }).await
        }
    };
    match result {
        Ok(label) => label,
        Err(QueueError::LeaseLost) => {
            stats.bump(&stats.lost);
            "lease_lost"
        }
        Err(e) => {
            tracing::error!(error = %e, code = e.code(), job_id = %lease.job,
                "could not record the job's outcome; it runs again when its lease expires");
            "unrecorded"
        }
    }
}

async fn fail(
    shared: &Shared,
    lease: &kai_store::queue::Lease,
    failure: Failure,
) -> Result<&'static str, QueueError> {
    let stats = &shared.stats;
    let outcome = with_retries(|| shared.queue.store.fail_job(lease, &failure, now_us())).await?;
    Ok(match outcome {
        FailOutcome::Retrying { .. } => {
            stats.bump(&stats.retried);
            "retrying"
        }
        FailOutcome::Dead => {
            stats.bump(&stats.dead);
            tracing::warn!(job_id = %lease.job, error = %failure.error, "job failed for good (dead letter)");
            "dead"
        }
        FailOutcome::Cancelled => {
            stats.bump(&stats.cancelled);
            "cancelled"
        }
    })
}

/// Runs a storage call up to three times while the database is unavailable (0.1 s, 0.4 s
/// apart); any other answer, `LeaseLost` included, is final.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..2 {
        match call().await {
            Err(QueueError::Store(kai_store::StoreError::Unavailable(e))) => {
                tracing::warn!(error = %e, "queue write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            other => return other,
        }
    }
    call().await
}
