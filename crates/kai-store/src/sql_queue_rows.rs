//! The queue's row helpers, shared by both backends: decoding `queue_jobs` rows, checking and
//! preparing new jobs, request bounds, limit scopes and the failure decision. No SQL runs here.

use std::collections::BTreeMap;
use std::time::Duration;

use kai_core::ids::{JobId, TaskId};
use kai_core::queue::{self as q, JobState, RetryPolicy};

use crate::StoreError;
use crate::queue::{
    ClaimRequest, FailOutcome, Failure, Job, LimitScope, NewJob, QueueError, QueueResult, Retry,
};

/// Columns of `queue_jobs` in the order [`RawJob`] reads them.
pub(crate) const JOB_COLUMNS: &str = "id, queue, state, priority, payload, result, last_error, parent_id, \
    idempotency_key, concurrency_key, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, run_at_us, \
    lease_id, lease_until_us, worker, cancel_requested, created_at_us, updated_at_us, started_at_us, finished_at_us";

/// Most expired leases one claim takes back (the rest wait for the next claim).
pub(crate) const REAP_BATCH: i64 = 256;
/// Most queues one claim may name.
pub(crate) const MAX_CLAIM_QUEUES: usize = 32;
/// Longest worker name.
pub(crate) const MAX_WORKER_NAME: usize = 128;
/// The error a job gets when its lease ran out.
pub(crate) const LEASE_EXPIRED: &str =
    "lease expired: the worker stopped heartbeating (crashed, stalled or lost the database)";

/// What reaping an expired lease sets (`$1` the error, `$2` now): cancelled if asked, dead if out
/// of attempts, else queued again at once.
pub(crate) const REAP_SET: &str = "state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
     last_error = CASE WHEN cancel_requested THEN last_error ELSE $1 END, \
     finished_at_us = CASE WHEN cancel_requested OR attempts >= max_attempts THEN $2 ELSE NULL END, \
     run_at_us = $2, updated_at_us = $2, lease_id = NULL, lease_until_us = NULL, worker = NULL";

/// What taking a job under a lease sets (`$1` lease, `$2` lease end, `$3` worker, `$4` now).
pub(crate) const TAKE_SET: &str = "state = 'running', attempts = attempts + 1, cancel_requested = FALSE, \
     lease_id = $1, lease_until_us = $2, worker = $3, started_at_us = $4, updated_at_us = $4";

/// [`SUCCEED`] as a literal, for `concat!`.
macro_rules! succeed_sql {
    () => {
        "UPDATE queue_jobs SET state = 'succeeded', result = $1, finished_at_us = $2, updated_at_us = $2, \
         lease_id = NULL, lease_until_us = NULL, worker = NULL \
         WHERE id = $3 AND lease_id = $4 AND state = 'running'"
    };
}
pub(crate) use succeed_sql;

/// Marks a job succeeded under its lease (`$1` result, `$2` now, `$3` job, `$4` lease).
pub(crate) const SUCCEED: &str = succeed_sql!();

/// `$first, $first+1, …` for `n` values (an `IN` list).
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(crate) fn duration_us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn corrupt(what: &str) -> QueueError {
    QueueError::Store(StoreError::Corrupt(format!("queue job: {what}")))
}

fn u32_of(v: i64, what: &str) -> QueueResult<u32> {
    u32::try_from(v).map_err(|_| corrupt(what))
}

pub(crate) fn json_of(text: &str, what: &str) -> QueueResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|_| corrupt(what))
}

/// A `queue_jobs` row as stored.
pub(crate) struct RawJob {
    pub id: String,
    pub queue: String,
    pub state: String,
    pub priority: i64,
    pub payload: String,
    pub result: Option<String>,
    pub last_error: Option<String>,
    pub parent_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub backoff_initial_ms: i64,
    pub backoff_max_ms: i64,
    pub run_at_us: i64,
    pub lease_until_us: Option<i64>,
    pub worker: Option<String>,
    pub cancel_requested: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub started_at_us: Option<i64>,
    pub finished_at_us: Option<i64>,
}

/// A [`RawJob`] from a row with [`JOB_COLUMNS`], by column name: `raw_job!(r.try_get)` for sqlx,
/// `raw_job!(r.get)` for rusqlite (`sqlite/hot.rs`).
macro_rules! raw_job {
    ($r:ident . $get:ident) => {
        $crate::sql_queue::RawJob {
            id: $r.$get("id")?,
            queue: $r.$get("queue")?,
            state: $r.$get("state")?,
            priority: $r.$get("priority")?,
            payload: $r.$get("payload")?,
            result: $r.$get("result")?,
            last_error: $r.$get("last_error")?,
            parent_id: $r.$get("parent_id")?,
            idempotency_key: $r.$get("idempotency_key")?,
            concurrency_key: $r.$get("concurrency_key")?,
            attempts: $r.$get("attempts")?,
            max_attempts: $r.$get("max_attempts")?,
            backoff_initial_ms: $r.$get("backoff_initial_ms")?,
            backoff_max_ms: $r.$get("backoff_max_ms")?,
            run_at_us: $r.$get("run_at_us")?,
            lease_until_us: $r.$get("lease_until_us")?,
            worker: $r.$get("worker")?,
            cancel_requested: $r.$get("cancel_requested")?,
            created_at_us: $r.$get("created_at_us")?,
            updated_at_us: $r.$get("updated_at_us")?,
            started_at_us: $r.$get("started_at_us")?,
            finished_at_us: $r.$get("finished_at_us")?,
        }
    };
}
pub(crate) use raw_job;

impl RawJob {
    pub(crate) fn into_job(self) -> QueueResult<Job> {
        let ms =
            |v: i64, what| u64::try_from(v).map(Duration::from_millis).map_err(|_| corrupt(what));
        Ok(Job {
            id: self.id.parse().map_err(|_| corrupt("bad id"))?,
            queue: self.queue.parse().map_err(|_| corrupt("bad queue"))?,
            state: self.state.parse().map_err(|_| corrupt("bad state"))?,
            priority: i32::try_from(self.priority).map_err(|_| corrupt("bad priority"))?,
            payload: json_of(&self.payload, "bad payload")?,
            result: self.result.as_deref().map(|r| json_of(r, "bad result")).transpose()?,
            last_error: self.last_error,
            parent: self
                .parent_id
                .map(|p| p.parse::<TaskId>())
                .transpose()
                .map_err(|_| corrupt("bad parent"))?,
            idempotency_key: self
                .idempotency_key
                .map(|k| k.parse())
                .transpose()
                .map_err(|_| corrupt("bad idempotency key"))?,
            concurrency_key: self
                .concurrency_key
                .map(|k| k.parse())
                .transpose()
                .map_err(|_| corrupt("bad concurrency key"))?,
            attempts: u32_of(self.attempts, "bad attempts")?,
            retry: RetryPolicy {
                max_attempts: u32_of(self.max_attempts, "bad max_attempts")?,
                initial: ms(self.backoff_initial_ms, "bad backoff")?,
                max_delay: ms(self.backoff_max_ms, "bad backoff")?,
            },
            run_at_us: self.run_at_us,
            worker: self.worker,
            lease_until_us: self.lease_until_us,
            cancel_requested: self.cancel_requested,
            created_at_us: self.created_at_us,
            updated_at_us: self.updated_at_us,
            started_at_us: self.started_at_us,
            finished_at_us: self.finished_at_us,
        })
    }
}

/// A [`NewJob`] checked and turned into column values.
pub(crate) struct PreparedJob {
    pub id: String,
    pub queue: String,
    pub priority: i64,
    pub payload: String,
    pub parent_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub max_attempts: i64,
    pub backoff_initial_ms: i64,
    pub backoff_max_ms: i64,
    pub run_at_us: i64,
}

/// Checks bounds and serializes a new job.
pub(crate) fn prepare(job: &NewJob, now_us: i64) -> QueueResult<PreparedJob> {
    let payload = serde_json::to_string(&job.payload)
        .map_err(|e| QueueError::Invalid(format!("payload is not JSON: {e}")))?;
    if payload.len() > q::MAX_PAYLOAD_BYTES {
        return Err(QueueError::LimitExceeded {
            what: "job payload (bytes)",
            limit: q::MAX_PAYLOAD_BYTES,
        });
    }
    job.retry.validate().map_err(|e| QueueError::Invalid(e.to_string()))?;
    Ok(PreparedJob {
        id: JobId::new().to_string(),
        queue: job.queue.as_str().to_owned(),
        priority: i64::from(job.priority),
        payload,
        parent_id: job.parent.map(|p| p.to_string()),
        idempotency_key: job.idempotency_key.as_ref().map(|k| k.as_str().to_owned()),
        concurrency_key: job.concurrency_key.as_ref().map(|k| k.as_str().to_owned()),
        max_attempts: i64::from(job.retry.max_attempts),
        backoff_initial_ms: duration_ms(job.retry.initial),
        backoff_max_ms: duration_ms(job.retry.max_delay),
        run_at_us: job.run_at_us.unwrap_or(now_us),
    })
}

pub(crate) fn check_batch(len: usize) -> QueueResult<()> {
    if len > q::MAX_BATCH {
        return Err(QueueError::LimitExceeded { what: "jobs in one batch", limit: q::MAX_BATCH });
    }
    Ok(())
}

/// True if `existing` (found by idempotency key) describes the same work as `new`.
pub(crate) fn same_work(existing: &Job, new: &NewJob) -> bool {
    existing.queue == new.queue
        && existing.payload == new.payload
        && existing.parent == new.parent
        && existing.concurrency_key == new.concurrency_key
}

pub(crate) fn check_claim(req: &ClaimRequest) -> QueueResult<()> {
    if req.queues.is_empty() || req.queues.len() > MAX_CLAIM_QUEUES {
        return Err(QueueError::Invalid(format!("a claim names 1 to {MAX_CLAIM_QUEUES} queues")));
    }
    if req.max == 0 || req.max > q::MAX_CLAIM {
        return Err(QueueError::Invalid(format!("a claim takes 1 to {} jobs", q::MAX_CLAIM)));
    }
    check_lease(req.lease)?;
    if req.worker.len() > MAX_WORKER_NAME || req.worker.chars().any(char::is_control) {
        return Err(QueueError::Invalid(format!(
            "worker name must be at most {MAX_WORKER_NAME} bytes without control characters"
        )));
    }
    Ok(())
}

pub(crate) fn check_lease(lease: Duration) -> QueueResult<()> {
    if lease < q::MIN_LEASE || lease > q::MAX_LEASE {
        return Err(QueueError::Invalid(format!(
            "a lease lasts {} ms to {} s",
            q::MIN_LEASE.as_millis(),
            q::MAX_LEASE.as_secs()
        )));
    }
    Ok(())
}

/// Serializes a job or effect result within its bound.
pub(crate) fn result_text(v: &serde_json::Value) -> QueueResult<String> {
    let text = serde_json::to_string(v)
        .map_err(|e| QueueError::Invalid(format!("result is not JSON: {e}")))?;
    if text.len() > q::MAX_RESULT_BYTES {
        return Err(QueueError::LimitExceeded {
            what: "job or effect result (bytes)",
            limit: q::MAX_RESULT_BYTES,
        });
    }
    Ok(text)
}

pub(crate) fn check_list_limit(limit: u32) -> QueueResult<i64> {
    if limit == 0 || limit > q::MAX_LIST {
        return Err(QueueError::Invalid(format!("list limit must be 1 to {}", q::MAX_LIST)));
    }
    Ok(i64::from(limit))
}

/// The stored name of a limit scope.
pub(crate) fn scope_name(scope: &LimitScope) -> String {
    match scope {
        LimitScope::Global => "global".to_owned(),
        LimitScope::Key(k) => format!("key:{k}"),
    }
}

pub(crate) fn scope_of(name: &str) -> QueueResult<LimitScope> {
    match name.split_once(':') {
        None if name == "global" => Ok(LimitScope::Global),
        Some(("key", k)) => k.parse().map(LimitScope::Key).map_err(|_| corrupt("bad limit scope")),
        _ => Err(corrupt("bad limit scope")),
    }
}

/// How many more jobs may start per stored scope, given the limits and the running counts.
pub(crate) fn free_slots(
    limits: &[(String, i64)],
    running: &BTreeMap<String, i64>,
) -> (Option<u64>, BTreeMap<String, u64>) {
    let mut global = None;
    let mut keys = BTreeMap::new();
    for (scope, max) in limits {
        let used = running.get(scope).copied().unwrap_or(0);
        let free = u64::try_from(max.saturating_sub(used)).unwrap_or(0);
        match scope.strip_prefix("key:") {
            Some(k) => {
                keys.insert(k.to_owned(), free);
            }
            None => global = Some(free),
        }
    }
    (global, keys)
}

/// What a failed attempt leads to: the new state, when it runs next, and the outcome.
pub(crate) fn fail_decision(
    attempts: u32,
    policy: &RetryPolicy,
    cancel_requested: bool,
    failure: &Failure,
    now_us: i64,
    jitter_sample: f64,
) -> (JobState, FailOutcome) {
    if cancel_requested {
        return (JobState::Cancelled, FailOutcome::Cancelled);
    }
    let delay = match failure.retry {
        Retry::Never => None,
        _ if !policy.allows_another(attempts) => None,
        Retry::Policy => Some(policy.delay(attempts, jitter_sample)),
        Retry::After(d) => Some(d.min(RetryPolicy::MAX_DELAY)),
    };
    match delay {
        Some(d) => (
            JobState::Queued,
            FailOutcome::Retrying { run_at_us: now_us.saturating_add(duration_us(d)) },
        ),
        None => (JobState::Dead, FailOutcome::Dead),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        for s in [LimitScope::Global, LimitScope::Key("kExecutor:web".parse().unwrap())] {
            assert_eq!(scope_of(&scope_name(&s)).unwrap(), s);
        }
        assert!(scope_of("nope").is_err());
    }

    #[test]
    fn free_slots_subtract_running() {
        let limits =
            vec![("global".to_owned(), 5), ("key:a".to_owned(), 2), ("key:b".to_owned(), 1)];
        let running = BTreeMap::from([("global".to_owned(), 4), ("key:a".to_owned(), 3)]);
        let (g, k) = free_slots(&limits, &running);
        assert_eq!(g, Some(1));
        assert_eq!(k, BTreeMap::from([("a".to_owned(), 0), ("b".to_owned(), 1)]));
    }

    #[test]
    fn failures_retry_then_die() {
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let f = |retry| Failure { error: "x".into(), retry };
        let (s, o) = fail_decision(1, &p, false, &f(Retry::Policy), 0, 0.0);
        assert_eq!((s, o), (JobState::Queued, FailOutcome::Retrying { run_at_us: 1_000_000 }));
        let (s, _) = fail_decision(3, &p, false, &f(Retry::Policy), 0, 0.0);
        assert_eq!(s, JobState::Dead);
        let (s, _) = fail_decision(1, &p, false, &f(Retry::Never), 0, 0.0);
        assert_eq!(s, JobState::Dead);
        let (_, o) = fail_decision(1, &p, false, &f(Retry::After(Duration::from_secs(7))), 5, 0.0);
        assert_eq!(o, FailOutcome::Retrying { run_at_us: 7_000_005 });
        let (s, _) = fail_decision(1, &p, true, &f(Retry::Policy), 0, 0.0);
        assert_eq!(s, JobState::Cancelled);
    }
}
