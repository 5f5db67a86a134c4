//! SQL for the durable queue, shared by both backends like `sql.rs`. The backends differ only
//! in the four fragments the macro takes:
//! - `begin`: SQLite opens every multi-statement write with `BEGIN IMMEDIATE` (the single-writer
//!   lock up front, so a transaction never fails upgrading a read lock); PostgreSQL with `BEGIN`.
//! - `skip_locked`: PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so concurrent claimers
//!   take disjoint jobs without waiting; SQLite needs nothing (one writer at a time).
//! - `for_update`: PostgreSQL locks the concurrency-limit rows a claim depends on (in scope
//!   order, so claimers never deadlock), which serializes claimers of the same limited key
//!   while leaving others free; and the job row a failure reads.
//! - `for_share`: PostgreSQL holds the job row while an effect is started under its lease, so
//!   a takeover cannot slip in between the lease check and the effect record.
//!
//! Everything that is a decision (admission, retry schedule) is pure code in
//! `kai_core::queue`; this module only moves rows.

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

macro_rules! impl_queue_store {
    ($store:ty, $db:ty, begin: $begin:literal, skip_locked: $skip_locked:literal, for_update: $for_update:literal, for_share: $for_share:literal) => {
        impl $store {
            fn queue_job_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::queue::QueueResult<$crate::queue::Job> {
                use sqlx::Row as _;
                $crate::sql_queue::RawJob {
                    id: r.try_get("id")?,
                    queue: r.try_get("queue")?,
                    state: r.try_get("state")?,
                    priority: r.try_get("priority")?,
                    payload: r.try_get("payload")?,
                    result: r.try_get("result")?,
                    last_error: r.try_get("last_error")?,
                    parent_id: r.try_get("parent_id")?,
                    idempotency_key: r.try_get("idempotency_key")?,
                    concurrency_key: r.try_get("concurrency_key")?,
                    attempts: r.try_get("attempts")?,
                    max_attempts: r.try_get("max_attempts")?,
                    backoff_initial_ms: r.try_get("backoff_initial_ms")?,
                    backoff_max_ms: r.try_get("backoff_max_ms")?,
                    run_at_us: r.try_get("run_at_us")?,
                    lease_until_us: r.try_get("lease_until_us")?,
                    worker: r.try_get("worker")?,
                    cancel_requested: r.try_get("cancel_requested")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                    started_at_us: r.try_get("started_at_us")?,
                    finished_at_us: r.try_get("finished_at_us")?,
                }
                .into_job()
            }

            fn queue_push_in<'a>(qb: &mut sqlx::QueryBuilder<'a, $db>, items: impl IntoIterator<Item = String>) {
                qb.push(" IN (");
                let mut sep = qb.separated(", ");
                for item in items {
                    sep.push_bind(item);
                }
                sep.push_unseparated(")");
            }

            /// Inserts jobs inside `tx`; jobs whose idempotency key exists resolve to the stored job.
            async fn queue_insert(
                tx: &mut sqlx::Transaction<'static, $db>,
                jobs: &[$crate::queue::NewJob],
                now_us: i64,
            ) -> $crate::queue::QueueResult<Vec<$crate::queue::Enqueued>> {
                use $crate::queue::{Enqueued, QueueError};
                $crate::sql_queue::check_batch(jobs.len())?;
                let prepared = jobs
                    .iter()
                    .map(|j| $crate::sql_queue::prepare(j, now_us))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut created = std::collections::HashMap::new();
                for chunk in prepared.chunks(200) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO queue_jobs (id, queue, state, priority, payload, parent_id, idempotency_key, \
                         concurrency_key, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, run_at_us, \
                         cancel_requested, created_at_us, updated_at_us) ",
                    );
                    qb.push_values(chunk, |mut b, p| {
                        b.push_bind(p.id.clone())
                            .push_bind(p.queue.clone())
                            .push_bind("queued")
                            .push_bind(p.priority)
                            .push_bind(p.payload.clone())
                            .push_bind(p.parent_id.clone())
                            .push_bind(p.idempotency_key.clone())
                            .push_bind(p.concurrency_key.clone())
                            .push_bind(0i64)
                            .push_bind(p.max_attempts)
                            .push_bind(p.backoff_initial_ms)
                            .push_bind(p.backoff_max_ms)
                            .push_bind(p.run_at_us)
                            .push_bind(false)
                            .push_bind(now_us)
                            .push_bind(now_us);
                    });
                    qb.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING ");
                    qb.push($crate::sql_queue::JOB_COLUMNS);
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        let job = Self::queue_job_from_row(&row)?;
                        created.insert(job.id.to_string(), job);
                    }
                }
                let missing: Vec<String> = prepared
                    .iter()
                    .filter(|p| !created.contains_key(&p.id))
                    .filter_map(|p| p.idempotency_key.clone())
                    .collect();
                let mut existing = std::collections::HashMap::new();
                for chunk in missing.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM queue_jobs WHERE idempotency_key",
                        $crate::sql_queue::JOB_COLUMNS
                    ));
                    Self::queue_push_in(&mut qb, chunk.iter().cloned());
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        let job = Self::queue_job_from_row(&row)?;
                        if let Some(k) = &job.idempotency_key {
                            existing.insert(k.as_str().to_owned(), job);
                        }
                    }
                }
                let mut out = Vec::with_capacity(jobs.len());
                for (p, new) in prepared.iter().zip(jobs) {
                    if let Some(job) = created.get(&p.id) {
                        out.push(Enqueued { job: job.clone(), created: true });
                        continue;
                    }
                    let found = p.idempotency_key.as_ref().and_then(|k| existing.get(k));
                    let Some(job) = found else {
                        return Err(QueueError::Store($crate::StoreError::Corrupt(
                            "an enqueued job was neither inserted nor found by its idempotency key".into(),
                        )));
                    };
                    if !$crate::sql_queue::same_work(job, new) {
                        return Err(QueueError::IdempotencyConflict { existing: job.id });
                    }
                    out.push(Enqueued { job: job.clone(), created: false });
                }
                Ok(out)
            }

            /// Takes back jobs of `queues` whose lease ran out before `now_us`.
            async fn queue_reap(
                tx: &mut sqlx::Transaction<'static, $db>,
                queues: &[String],
                now_us: i64,
            ) -> $crate::queue::QueueResult<()> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id FROM queue_jobs WHERE state = 'running' AND lease_until_us < ",
                );
                qb.push_bind(now_us).push(" AND queue");
                Self::queue_push_in(&mut qb, queues.iter().cloned());
                qb.push(" ORDER BY lease_until_us LIMIT ").push_bind($crate::sql_queue::REAP_BATCH);
                qb.push($skip_locked);
                let expired: Vec<String> = qb.build_query_scalar().fetch_all(&mut **tx).await?;
                if expired.is_empty() {
                    return Ok(());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE queue_jobs SET \
                     state = CASE WHEN cancel_requested THEN 'cancelled' WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END, \
                     last_error = CASE WHEN cancel_requested THEN last_error ELSE ",
                );
                qb.push_bind($crate::sql_queue::LEASE_EXPIRED)
                    .push(" END, finished_at_us = CASE WHEN cancel_requested OR attempts >= max_attempts THEN ")
                    .push_bind(now_us)
                    .push(" ELSE NULL END, run_at_us = ")
                    .push_bind(now_us)
                    .push(", updated_at_us = ")
                    .push_bind(now_us)
                    .push(", lease_id = NULL, lease_until_us = NULL, worker = NULL WHERE state = 'running' AND id");
                Self::queue_push_in(&mut qb, expired);
                qb.build().execute(&mut **tx).await?;
                Ok(())
            }

            /// Free slots per limited scope among `keys` (plus the global limit), locking the
            /// limit rows on PostgreSQL so claimers of the same key take turns.
            async fn queue_free_slots(
                tx: &mut sqlx::Transaction<'static, $db>,
                keys: std::collections::BTreeSet<String>,
            ) -> $crate::queue::QueueResult<(Option<u64>, std::collections::BTreeMap<String, u64>)> {
                let mut scopes: Vec<String> = keys.iter().map(|k| format!("key:{k}")).collect();
                scopes.push("global".to_owned());
                scopes.sort();
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT scope, max_running FROM queue_limits WHERE scope");
                Self::queue_push_in(&mut qb, scopes);
                qb.push(" ORDER BY scope");
                qb.push($for_update);
                let limits: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut **tx).await?;
                let mut running = std::collections::BTreeMap::new();
                let limited: Vec<String> =
                    limits.iter().filter_map(|(s, _)| s.strip_prefix("key:").map(str::to_owned)).collect();
                if limits.iter().any(|(s, _)| s == "global") {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue_jobs WHERE state = 'running'")
                        .fetch_one(&mut **tx)
                        .await?;
                    running.insert("global".to_owned(), n);
                }
                if !limited.is_empty() {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT concurrency_key, COUNT(*) FROM queue_jobs WHERE state = 'running' AND concurrency_key",
                    );
                    Self::queue_push_in(&mut qb, limited);
                    qb.push(" GROUP BY concurrency_key");
                    let counts: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut **tx).await?;
                    for (k, n) in counts {
                        running.insert(format!("key:{k}"), n);
                    }
                }
                Ok($crate::sql_queue::free_slots(&limits, &running))
            }

            async fn queue_effect_upsert(
                tx: &mut sqlx::Transaction<'static, $db>,
                key: &kai_core::queue::EffectKey,
                job: &kai_core::ids::JobId,
                lease: Option<String>,
                attempt: i64,
                result: &serde_json::Value,
                now_us: i64,
            ) -> $crate::queue::QueueResult<bool> {
                let text = $crate::sql_queue::result_text(result)?;
                let inserted: Option<String> = sqlx::query_scalar(
                    "INSERT INTO queue_effects (effect_key, job_id, lease_id, attempt, result, started_at_us, done_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (effect_key) DO UPDATE \
                     SET result = excluded.result, done_at_us = excluded.done_at_us, job_id = excluded.job_id, \
                     lease_id = excluded.lease_id, attempt = excluded.attempt \
                     WHERE queue_effects.done_at_us IS NULL RETURNING effect_key",
                )
                .bind(key.as_str())
                .bind(job.to_string())
                .bind(lease)
                .bind(attempt)
                .bind(text)
                .bind(now_us)
                .fetch_optional(&mut **tx)
                .await?;
                Ok(inserted.is_some())
            }
        }

        $crate::sql_queue_ops::impl_queue_ops!($store, $db, begin: $begin, skip_locked: $skip_locked, for_update: $for_update, for_share: $for_share);
    };
}

pub(crate) use impl_queue_store;

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
