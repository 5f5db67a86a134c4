//! What every backend's queue must do, case by case.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kai_core::ids::TaskId;
use kai_core::queue::{JobState, MAX_BATCH, MAX_PAYLOAD_BYTES, RetryPolicy};
use kai_store::queue::{
    CancelCounts, CancelOutcome, Completion, CountFilter, EffectFinish, EffectStart, FailOutcome,
    Failure, Heartbeat, JobFilter, LimitScope, NewJob, QueueError, Retry,
};
use serde_json::json;

use crate::{Backend, T0, claim, ms, on_both_backends, queue, secs};

on_both_backends!(
    enqueue_inspect_and_bounds,
    idempotent_enqueue,
    concurrent_idempotent_enqueue_makes_one_job,
    concurrent_overlapping_batches_neither_deadlock_nor_duplicate,
    claim_order_priority_then_age,
    leases_expire_and_redeliver,
    heartbeat_extends_the_lease,
    backoff_schedule_and_dead_letter,
    retry_after_never_and_retry_dead,
    release_gives_the_attempt_back,
    cancel_jobs_and_tasks,
    list_and_count,
    completion_is_atomic_with_effects_and_follow_ups,
    effects_answer_whether_they_happened,
    concurrency_limits_per_key_and_global,
    concurrent_claimers_never_exceed_limits,
    concurrent_claimers_never_share_a_job,
    next_wakeup_and_purge,
);

fn job(q: &str, n: i64) -> NewJob {
    NewJob::new(queue(q), json!({"n": n}))
}

fn failure(retry: Retry) -> Failure {
    Failure { error: "boom".into(), retry }
}

const LEASE: Duration = Duration::from_secs(30);

async fn enqueue_inspect_and_bounds(b: &Backend) {
    let s = &b.store;
    let parent = TaskId::new();
    let new = job("work", 1)
        .with_priority(7)
        .with_parent(parent)
        .with_concurrency_key("kExecutor:web".parse().unwrap());
    let e = s.enqueue(&new, T0).await.unwrap();
    assert!(e.created);
    let j = e.job;
    assert_eq!((j.state, j.priority, j.attempts, j.run_at_us), (JobState::Queued, 7, 0, T0));
    assert_eq!((j.parent, j.payload.clone()), (Some(parent), json!({"n": 1})));
    assert_eq!(j.retry, RetryPolicy::default());
    assert_eq!(s.job(j.id).await.unwrap(), Some(j.clone()));
    assert_eq!(s.job(kai_core::ids::JobId::new()).await.unwrap(), None);

    let big = NewJob::new(queue("work"), json!("x".repeat(MAX_PAYLOAD_BYTES)));
    let err = s.enqueue(&big, T0).await.unwrap_err();
    assert!(matches!(err, QueueError::LimitExceeded { .. }), "{err:?}");
    assert_eq!(err.code(), "queue_limit_exceeded");
    let many: Vec<NewJob> = (0..=MAX_BATCH as i64).map(|n| job("work", n)).collect();
    assert!(matches!(s.enqueue_batch(&many, T0).await, Err(QueueError::LimitExceeded { .. })));
    let bad = job("work", 2).with_retry(RetryPolicy { max_attempts: 0, ..RetryPolicy::default() });
    assert_eq!(s.enqueue(&bad, T0).await.unwrap_err().code(), "invalid_job");
    // A refused batch leaves nothing behind; an accepted one keeps its order.
    assert_eq!(s.job_counts(&CountFilter::default()).await.unwrap().total(), 1);
    let batch: Vec<NewJob> = (10..20).map(|n| job("work", n)).collect();
    let got = s.enqueue_batch(&batch, T0).await.unwrap();
    assert_eq!(
        got.iter().map(|e| e.job.payload["n"].as_i64().unwrap()).collect::<Vec<_>>(),
        (10..20).collect::<Vec<_>>()
    );
    assert!(s.enqueue_batch(&[], T0).await.unwrap().is_empty());
}

async fn idempotent_enqueue(b: &Backend) {
    let s = &b.store;
    let key = "submit-1".parse().unwrap();
    let first = s.enqueue(&job("work", 1).with_idempotency_key(key), T0).await.unwrap();
    let again = s
        .enqueue(&job("work", 1).with_idempotency_key("submit-1".parse().unwrap()), T0 + 5)
        .await
        .unwrap();
    assert!(first.created && !again.created);
    assert_eq!(again.job, first.job);
    let other = job("work", 2).with_idempotency_key("submit-1".parse().unwrap());
    let err = s.enqueue(&other, T0).await.unwrap_err();
    assert!(
        matches!(err, QueueError::IdempotencyConflict { existing } if existing == first.job.id)
    );
    assert_eq!(err.code(), "idempotency_conflict");
    // Inside one batch and across batches, a key resolves to one job.
    let batch = vec![
        job("work", 3).with_idempotency_key("k3".parse().unwrap()),
        job("work", 3).with_idempotency_key("k3".parse().unwrap()),
        job("work", 1).with_idempotency_key("submit-1".parse().unwrap()),
        job("work", 4),
    ];
    let got = s.enqueue_batch(&batch, T0).await.unwrap();
    assert_eq!(got.iter().map(|e| e.created).collect::<Vec<_>>(), [true, false, false, true]);
    assert_eq!(got[0].job.id, got[1].job.id);
    assert_eq!(got[2].job.id, first.job.id);
    // A conflicting batch is refused whole.
    let bad = vec![job("work", 5), job("work", 9).with_idempotency_key("k3".parse().unwrap())];
    assert!(matches!(s.enqueue_batch(&bad, T0).await, Err(QueueError::IdempotencyConflict { .. })));
    assert_eq!(s.job_counts(&CountFilter::default()).await.unwrap().queued, 3);
}

async fn concurrent_idempotent_enqueue_makes_one_job(b: &Backend) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = b.store.clone();
            tokio::spawn(async move {
                let j = job("work", 1).with_idempotency_key("same".parse().unwrap());
                s.enqueue(&j, T0).await.unwrap()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let e = t.await.unwrap();
        ids.insert(e.job.id);
        created += usize::from(e.created);
    }
    assert_eq!((ids.len(), created), (1, 1));
}

/// Batches sharing keys in opposite orders, at once, round after round: no deadlock, one job
/// per key.
async fn concurrent_overlapping_batches_neither_deadlock_nor_duplicate(b: &Backend) {
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let s = b.store.clone();
                tokio::spawn(async move {
                    let mut ns: Vec<i64> = (0..200).collect();
                    if t % 2 == 1 {
                        ns.reverse();
                    }
                    ns.rotate_left((t * 29) % 200);
                    let batch: Vec<NewJob> = ns
                        .iter()
                        .map(|n| {
                            job("work", *n)
                                .with_idempotency_key(format!("r{round}-k{n}").parse().unwrap())
                        })
                        .collect();
                    s.enqueue_batch(&batch, T0).await.unwrap()
                })
            })
            .collect();
        let mut ids: HashMap<i64, kai_core::ids::JobId> = HashMap::new();
        for t in tasks {
            for e in t.await.unwrap() {
                let n = e.job.payload["n"].as_i64().unwrap();
                assert_eq!(
                    *ids.entry(n).or_insert(e.job.id),
                    e.job.id,
                    "key k{n} resolved to one job"
                );
            }
        }
        assert_eq!(ids.len(), 200);
    }
    assert_eq!(b.store.job_counts(&CountFilter::default()).await.unwrap().total(), 2000);
}

async fn claim_order_priority_then_age(b: &Backend) {
    let s = &b.store;
    let low_old = s.enqueue(&job("work", 1).with_run_at(T0 - 10), T0).await.unwrap().job.id;
    let high = s.enqueue(&job("work", 2).with_priority(5), T0).await.unwrap().job.id;
    let low_new = s.enqueue(&job("work", 3), T0).await.unwrap().job.id;
    let later = s
        .enqueue(&job("work", 4).with_priority(9).with_run_at(T0 + secs(60)), T0)
        .await
        .unwrap()
        .job
        .id;
    s.enqueue(&job("elsewhere", 5).with_priority(100), T0).await.unwrap();
    let got = s.claim(&claim("work", 10, Duration::from_secs(3600)), T0).await.unwrap();
    let order: Vec<_> = got.iter().map(|c| c.job.id).collect();
    assert_eq!(
        order,
        [high, low_old, low_new],
        "priority, then the longest ready; not the future job"
    );
    let c = &got[0];
    assert_eq!(
        (c.job.state, c.job.attempts, c.lease_until_us),
        (JobState::Running, 1, T0 + secs(3600))
    );
    assert_eq!(c.job.worker.as_deref(), Some("test-worker"));
    assert!(got.iter().all(|g| g.lease.token == c.lease.token), "one claim, one token");
    assert!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().is_empty());
    let got = s.claim(&claim("work", 10, LEASE), T0 + secs(60)).await.unwrap();
    assert_eq!(got.iter().map(|c| c.job.id).collect::<Vec<_>>(), [later]);
    // Bounds on the request.
    for bad in
        [claim("work", 0, LEASE), claim("work", 10_000, LEASE), claim("work", 1, Duration::ZERO)]
    {
        assert_eq!(s.claim(&bad, T0).await.unwrap_err().code(), "invalid_job");
    }
}

async fn leases_expire_and_redeliver(b: &Backend) {
    let s = &b.store;
    let id = s.enqueue(&job("work", 1), T0).await.unwrap().job.id;
    let first = s.claim(&claim("work", 1, Duration::from_secs(1)), T0).await.unwrap().remove(0);
    assert!(
        s.claim(&claim("work", 1, LEASE), T0 + ms(900)).await.unwrap().is_empty(),
        "lease still live"
    );
    let second = s.claim(&claim("work", 1, LEASE), T0 + ms(1001)).await.unwrap().remove(0);
    assert_eq!((second.job.id, second.job.attempts), (id, 2), "redelivered, attempt counted");
    assert_ne!(second.lease.token, first.lease.token);
    assert!(second.job.last_error.as_deref().unwrap().contains("lease expired"));
    // The old holder is fenced off from every call.
    let t = T0 + ms(1100);
    assert!(matches!(s.heartbeat(&first.lease, LEASE, t).await, Err(QueueError::LeaseLost)));
    assert!(matches!(
        s.complete_job(&first.lease, &json!(1).into(), t).await,
        Err(QueueError::LeaseLost)
    ));
    assert!(matches!(
        s.fail_job(&first.lease, &failure(Retry::Policy), t).await,
        Err(QueueError::LeaseLost)
    ));
    assert!(matches!(s.release_job(&first.lease, t).await, Err(QueueError::LeaseLost)));
    assert_eq!(QueueError::LeaseLost.code(), "lease_lost");
    s.complete_job(&second.lease, &json!("ok").into(), t).await.unwrap();
    let done = s.job(id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.result, done.finished_at_us),
        (JobState::Succeeded, Some(json!("ok")), Some(t))
    );

    // A job whose last attempt's lease runs out is dead, with the reason kept.
    let once =
        s.enqueue(&job("work", 2).with_retry(RetryPolicy::no_retry()), T0).await.unwrap().job.id;
    s.claim(&claim("work", 1, Duration::from_secs(1)), T0).await.unwrap();
    assert!(s.claim(&claim("work", 1, LEASE), T0 + secs(2)).await.unwrap().is_empty());
    let dead = s.job(once).await.unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 1));
    assert!(dead.last_error.unwrap().contains("lease expired"));
}

async fn heartbeat_extends_the_lease(b: &Backend) {
    let s = &b.store;
    s.enqueue(&job("work", 1), T0).await.unwrap();
    let c = s.claim(&claim("work", 1, Duration::from_secs(1)), T0).await.unwrap().remove(0);
    let hb = s.heartbeat(&c.lease, Duration::from_secs(1), T0 + ms(900)).await.unwrap();
    assert_eq!(hb, Heartbeat::Continue { lease_until_us: T0 + ms(1900) });
    assert!(s.claim(&claim("work", 1, LEASE), T0 + ms(1500)).await.unwrap().is_empty());
    assert_eq!(s.job(c.lease.job).await.unwrap().unwrap().lease_until_us, Some(T0 + ms(1900)));
    let taken = s.claim(&claim("work", 1, LEASE), T0 + ms(1901)).await.unwrap();
    assert_eq!(taken.len(), 1, "once heartbeats stop, the job is rescued");
    assert_eq!(
        s.heartbeat(&taken[0].lease, MAX_LEASE_PLUS, T0).await.unwrap_err().code(),
        "invalid_job"
    );
}

const MAX_LEASE_PLUS: Duration = Duration::from_secs(24 * 3600 + 1);

async fn backoff_schedule_and_dead_letter(b: &Backend) {
    let s = &b.store;
    let policy = RetryPolicy {
        max_attempts: 4,
        initial: Duration::from_secs(1),
        max_delay: Duration::from_secs(3),
    };
    let id = s.enqueue(&job("work", 1).with_retry(policy), T0).await.unwrap().job.id;
    let mut now = T0;
    for attempt in 1..=4u32 {
        let c = s.claim(&claim("work", 1, LEASE), now).await.unwrap();
        assert_eq!(c.len(), 1, "attempt {attempt} is claimable once its backoff passed");
        assert_eq!(c[0].job.attempts, attempt);
        now += ms(10);
        let out = s
            .fail_job(
                &c[0].lease,
                &Failure { error: format!("err {attempt}"), retry: Retry::Policy },
                now,
            )
            .await
            .unwrap();
        if attempt == 4 {
            assert_eq!(out, FailOutcome::Dead);
            break;
        }
        let FailOutcome::Retrying { run_at_us } = out else { panic!("{out:?}") };
        let nominal = i64::try_from(policy.nominal_delay(attempt).as_micros()).unwrap();
        assert_eq!(nominal, secs([1, 2, 3][attempt as usize - 1]));
        let delay = run_at_us - now;
        assert!(
            delay <= nominal && delay >= nominal * 8 / 10,
            "attempt {attempt}: {delay} vs {nominal}"
        );
        assert!(
            s.claim(&claim("work", 1, LEASE), run_at_us - 1).await.unwrap().is_empty(),
            "not before its time"
        );
        now = run_at_us;
    }
    let dead = s.job(id).await.unwrap().unwrap();
    assert_eq!(
        (dead.state, dead.attempts, dead.last_error.as_deref()),
        (JobState::Dead, 4, Some("err 4"))
    );
    assert_eq!(s.job_counts(&CountFilter::default()).await.unwrap().dead, 1);
    assert!(
        s.claim(&claim("work", 1, LEASE), now + secs(3600)).await.unwrap().is_empty(),
        "dead jobs never run"
    );
    // Long errors are cut, not refused.
    s.enqueue(&job("work", 2), T0).await.unwrap();
    let c = s.claim(&claim("work", 1, LEASE), now).await.unwrap().remove(0);
    let long = Failure { error: "e".repeat(100_000), retry: Retry::Never };
    s.fail_job(&c.lease, &long, now).await.unwrap();
    let stored = s.job(c.lease.job).await.unwrap().unwrap().last_error.unwrap();
    assert_eq!(stored.len(), kai_core::queue::MAX_ERROR_BYTES);
}

async fn retry_after_never_and_retry_dead(b: &Backend) {
    let s = &b.store;
    let a = s.enqueue(&job("work", 1), T0).await.unwrap().job.id;
    let c = s.claim(&claim("work", 1, LEASE), T0).await.unwrap().remove(0);
    let out =
        s.fail_job(&c.lease, &failure(Retry::After(Duration::from_secs(10))), T0).await.unwrap();
    assert_eq!(out, FailOutcome::Retrying { run_at_us: T0 + secs(10) });
    let c = s.claim(&claim("work", 1, LEASE), T0 + secs(10)).await.unwrap().remove(0);
    assert_eq!(
        s.fail_job(&c.lease, &failure(Retry::Never), T0 + secs(11)).await.unwrap(),
        FailOutcome::Dead
    );
    let err = s.retry_job(a, T0).await;
    let retried = err.unwrap();
    assert_eq!((retried.state, retried.attempts, retried.run_at_us), (JobState::Queued, 0, T0));
    assert_eq!(retried.last_error.as_deref(), Some("boom"), "the last error stays for inspection");
    let err = s.retry_job(a, T0).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidState { state: JobState::Queued, .. }), "{err:?}");
    assert_eq!(err.code(), "job_state_conflict");
    assert_eq!(
        s.retry_job(kai_core::ids::JobId::new(), T0).await.unwrap_err().code(),
        "job_not_found"
    );
    let c = s.claim(&claim("work", 1, LEASE), T0 + secs(12)).await.unwrap().remove(0);
    assert_eq!((c.job.id, c.job.attempts), (a, 1));
}

async fn release_gives_the_attempt_back(b: &Backend) {
    let s = &b.store;
    let id = s.enqueue(&job("work", 1), T0).await.unwrap().job.id;
    let c = s.claim(&claim("work", 1, LEASE), T0).await.unwrap().remove(0);
    s.release_job(&c.lease, T0 + 5).await.unwrap();
    let j = s.job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts, j.run_at_us, j.worker), (JobState::Queued, 0, T0 + 5, None));
    let again = s.claim(&claim("work", 1, LEASE), T0 + 5).await.unwrap().remove(0);
    assert_eq!(again.job.attempts, 1);
}

async fn cancel_jobs_and_tasks(b: &Backend) {
    let s = &b.store;
    let task = TaskId::new();
    let ids: Vec<_> = s
        .enqueue_batch(&(0..4).map(|n| job("work", n).with_parent(task)).collect::<Vec<_>>(), T0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    let unrelated = s.enqueue(&job("work", 9), T0).await.unwrap().job.id;
    assert_eq!(s.cancel_job(ids[0], T0).await.unwrap(), CancelOutcome::Cancelled);
    let running = s.claim(&claim("work", 2, LEASE), T0).await.unwrap();
    assert_eq!(running.iter().map(|c| c.job.id).collect::<Vec<_>>(), ids[1..3]);
    assert_eq!(s.cancel_job(ids[1], T0).await.unwrap(), CancelOutcome::Requested);
    let hb = s.heartbeat(&running[0].lease, LEASE, T0 + 1).await.unwrap();
    assert!(matches!(hb, Heartbeat::CancelRequested { .. }));
    assert!(matches!(
        s.heartbeat(&running[1].lease, LEASE, T0 + 1).await.unwrap(),
        Heartbeat::Continue { .. }
    ));
    s.ack_cancel(&running[0].lease, T0 + 2).await.unwrap();
    assert_eq!(s.job(ids[1]).await.unwrap().unwrap().state, JobState::Cancelled);
    assert_eq!(
        s.cancel_job(ids[1], T0).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobState::Cancelled)
    );
    assert_eq!(
        s.cancel_job(kai_core::ids::JobId::new(), T0).await.unwrap_err().code(),
        "job_not_found"
    );

    // The task's remaining jobs: one queued, one running.
    let counts = s.cancel_parent(task, T0 + 3).await.unwrap();
    assert_eq!(counts, CancelCounts { cancelled: 1, requested: 1 });
    assert_eq!(
        s.cancel_parent(task, T0 + 3).await.unwrap(),
        CancelCounts { cancelled: 0, requested: 0 }
    );
    // A failure after a cancellation request cancels instead of retrying.
    assert_eq!(
        s.fail_job(&running[1].lease, &failure(Retry::Policy), T0 + 4).await.unwrap(),
        FailOutcome::Cancelled
    );
    let c = s.job_counts(&CountFilter { parent: Some(task), queue: None }).await.unwrap();
    assert_eq!((c.cancelled, c.total()), (4, 4));
    assert_eq!(s.job(unrelated).await.unwrap().unwrap().state, JobState::Queued);
    // A cancelled running job whose worker vanished is cancelled when its lease runs out.
    let lone = s.claim(&claim("work", 1, Duration::from_secs(1)), T0).await.unwrap().remove(0);
    assert_eq!(s.cancel_job(lone.lease.job, T0).await.unwrap(), CancelOutcome::Requested);
    assert!(s.claim(&claim("work", 1, LEASE), T0 + secs(2)).await.unwrap().is_empty());
    assert_eq!(s.job(unrelated).await.unwrap().unwrap().state, JobState::Cancelled);
    // Cancelled jobs can be retried.
    assert_eq!(s.retry_job(ids[0], T0).await.unwrap().state, JobState::Queued);
}

async fn list_and_count(b: &Backend) {
    let s = &b.store;
    let task = TaskId::new();
    let mine: Vec<_> = s
        .enqueue_batch(&(0..5).map(|n| job("a", n).with_parent(task)).collect::<Vec<_>>(), T0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect();
    s.enqueue_batch(&(0..3).map(|n| job("b", n)).collect::<Vec<_>>(), T0).await.unwrap();
    let c = s.claim(&claim("a", 2, LEASE), T0).await.unwrap();
    s.complete_job(&c[0].lease, &json!(null).into(), T0).await.unwrap();

    let page =
        |after, limit| JobFilter { parent: Some(task), after, limit, ..JobFilter::default() };
    let first = s.jobs(&page(None, 3)).await.unwrap();
    assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), mine[..3]);
    let rest = s.jobs(&page(Some(first[2].id), 3)).await.unwrap();
    assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), mine[3..]);
    let running = JobFilter { state: Some(JobState::Running), limit: 10, ..JobFilter::default() };
    assert_eq!(s.jobs(&running).await.unwrap().len(), 1);
    let in_b = JobFilter { queue: Some(queue("b")), limit: 10, ..JobFilter::default() };
    assert_eq!(s.jobs(&in_b).await.unwrap().len(), 3);
    for limit in [0, 1001] {
        let f = JobFilter { limit, ..JobFilter::default() };
        assert_eq!(s.jobs(&f).await.unwrap_err().code(), "invalid_job");
    }
    let all = s.job_counts(&CountFilter::default()).await.unwrap();
    assert_eq!((all.queued, all.running, all.succeeded, all.total()), (6, 1, 1, 8));
    let of_task = s.job_counts(&CountFilter { parent: Some(task), queue: None }).await.unwrap();
    assert_eq!((of_task.queued, of_task.get(JobState::Succeeded)), (3, 1));
    let of_b = s.job_counts(&CountFilter { parent: None, queue: Some(queue("b")) }).await.unwrap();
    assert_eq!(of_b.total(), 3);
}

async fn completion_is_atomic_with_effects_and_follow_ups(b: &Backend) {
    let s = &b.store;
    let task = TaskId::new();
    s.enqueue(&job("step", 1).with_parent(task), T0).await.unwrap();
    let c = s.claim(&claim("step", 1, Duration::from_secs(1)), T0).await.unwrap().remove(0);
    let done = Completion {
        result: json!({"out": 42}),
        effects: vec![("task/1/output".parse().unwrap(), json!({"stored": true}))],
        enqueue: vec![job("step", 2).with_parent(task), job("step", 3).with_parent(task)],
    };
    // After its lease was taken over, the run's completion writes nothing at all.
    let thief = s.claim(&claim("step", 1, LEASE), T0 + secs(2)).await.unwrap().remove(0);
    assert!(matches!(
        s.complete_job(&c.lease, &done, T0 + secs(2)).await,
        Err(QueueError::LeaseLost)
    ));
    assert_eq!(s.job_counts(&CountFilter::default()).await.unwrap().total(), 1);
    assert_eq!(s.effect(&"task/1/output".parse().unwrap()).await.unwrap(), None);
    // The holder's completion commits all three together.
    let follow = s.complete_job(&thief.lease, &done, T0 + secs(3)).await.unwrap();
    assert_eq!(follow.len(), 2);
    assert!(follow.iter().all(|e| e.created && e.job.parent == Some(task)));
    let rec = s.effect(&"task/1/output".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (rec.job, rec.result, rec.attempt),
        (thief.lease.job, Some(json!({"stored": true})), 2)
    );
    let counts = s.job_counts(&CountFilter { parent: Some(task), queue: None }).await.unwrap();
    assert_eq!((counts.succeeded, counts.queued), (1, 2));
    let too_big = Completion::from(json!("y".repeat(kai_core::queue::MAX_RESULT_BYTES)));
    let c2 = s.claim(&claim("step", 1, LEASE), T0 + secs(3)).await.unwrap().remove(0);
    assert_eq!(
        s.complete_job(&c2.lease, &too_big, T0).await.unwrap_err().code(),
        "queue_limit_exceeded"
    );
}

async fn effects_answer_whether_they_happened(b: &Backend) {
    let s = &b.store;
    let key: kai_core::queue::EffectKey = "mail/42".parse().unwrap();
    s.enqueue(&job("work", 1), T0).await.unwrap();
    let run1 = s.claim(&claim("work", 1, Duration::from_secs(1)), T0).await.unwrap().remove(0);
    assert_eq!(s.begin_effect(&run1.lease, &key, T0).await.unwrap(), EffectStart::Proceed);
    // Run 1 dies after starting the effect; run 2 is told the outcome is unknown.
    let run2 =
        s.claim(&claim("work", 1, Duration::from_secs(1)), T0 + secs(2)).await.unwrap().remove(0);
    assert!(matches!(
        s.begin_effect(&run1.lease, &key, T0 + secs(2)).await,
        Err(QueueError::LeaseLost)
    ));
    let start = s.begin_effect(&run2.lease, &key, T0 + secs(2)).await.unwrap();
    assert_eq!(start, EffectStart::Unknown { started_at_us: T0, attempt: 1 });
    assert_eq!(
        s.finish_effect(&run2.lease, &key, &json!({"sent": "msg-1"}), T0 + secs(2)).await.unwrap(),
        EffectFinish::Recorded
    );
    // Run 3 (after run 2 also died) skips it and gets the recorded result.
    let run3 = s.claim(&claim("work", 1, LEASE), T0 + secs(4)).await.unwrap().remove(0);
    assert_eq!(run3.job.attempts, 3);
    assert_eq!(
        s.begin_effect(&run3.lease, &key, T0 + secs(4)).await.unwrap(),
        EffectStart::Done(json!({"sent": "msg-1"}))
    );
    // The first record wins; a late report from a stale run is answered with it.
    assert_eq!(
        s.finish_effect(&run1.lease, &key, &json!({"sent": "other"}), T0 + secs(5)).await.unwrap(),
        EffectFinish::AlreadyDone(json!({"sent": "msg-1"}))
    );
    let rec = s.effect(&key).await.unwrap().unwrap();
    assert_eq!(
        (rec.result, rec.attempt, rec.done_at_us),
        (Some(json!({"sent": "msg-1"})), 2, Some(T0 + secs(2)))
    );
    // An effect recorded without begin (the target itself is idempotent) counts the same.
    let k2: kai_core::queue::EffectKey = "mail/43".parse().unwrap();
    assert_eq!(
        s.finish_effect(&run3.lease, &k2, &json!(1), T0).await.unwrap(),
        EffectFinish::Recorded
    );
    assert_eq!(s.begin_effect(&run3.lease, &k2, T0).await.unwrap(), EffectStart::Done(json!(1)));
    assert_eq!(s.effect(&"never".parse().unwrap()).await.unwrap(), None);
}

async fn concurrency_limits_per_key_and_global(b: &Backend) {
    let s = &b.store;
    let a: kai_core::queue::ConcurrencyKey = "kExecutor:a".parse().unwrap();
    s.set_concurrency_limit(&LimitScope::Key(a.clone()), Some(2)).await.unwrap();
    let mut batch: Vec<NewJob> =
        (0..5).map(|n| job("work", n).with_priority(10).with_concurrency_key(a.clone())).collect();
    batch.extend(
        (5..8).map(|n| job("work", n).with_concurrency_key("kExecutor:b".parse().unwrap())),
    );
    s.enqueue_batch(&batch, T0).await.unwrap();
    let got = s.claim(&claim("work", 10, LEASE), T0).await.unwrap();
    let of_a = got.iter().filter(|c| c.job.concurrency_key.as_ref() == Some(&a)).count();
    assert_eq!((of_a, got.len()), (2, 5), "key a capped at 2; b unlimited");
    assert!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().is_empty(), "a is full");
    let a_job = got.iter().find(|c| c.job.concurrency_key.as_ref() == Some(&a)).unwrap();
    s.complete_job(&a_job.lease, &json!(1).into(), T0).await.unwrap();
    assert_eq!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().len(), 1, "one slot freed");

    s.set_concurrency_limit(&LimitScope::Global, Some(6)).await.unwrap();
    let limits = s.concurrency_limits().await.unwrap();
    assert_eq!(limits, [(LimitScope::Global, 6), (LimitScope::Key(a.clone()), 2)]);
    s.set_concurrency_limit(&LimitScope::Key(a.clone()), None).await.unwrap();
    s.enqueue_batch(&(0..3).map(|n| job("work", 100 + n)).collect::<Vec<_>>(), T0).await.unwrap();
    // 5 running now: the global limit of 6 lets one more start.
    assert_eq!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().len(), 1);
    assert!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().is_empty());
    s.set_concurrency_limit(&LimitScope::Global, None).await.unwrap();
    assert_eq!(s.claim(&claim("work", 10, LEASE), T0).await.unwrap().len(), 4);
}

/// Many claimers race on limited keys; at no moment may a key run more than its limit.
async fn concurrent_claimers_never_exceed_limits(b: &Backend) {
    let keys = ["kExecutor:a", "kExecutor:b", "kExecutor:c"];
    let limits = [1u32, 2, 3];
    for (k, l) in keys.iter().zip(limits) {
        b.store.set_concurrency_limit(&LimitScope::Key(k.parse().unwrap()), Some(l)).await.unwrap();
    }
    b.store.set_concurrency_limit(&LimitScope::Global, Some(5)).await.unwrap();
    let jobs: Vec<NewJob> = (0..180)
        .map(|n| job("work", n).with_concurrency_key(keys[n as usize % 3].parse().unwrap()))
        .collect();
    b.store.enqueue_batch(&jobs, T0).await.unwrap();
    let running: Arc<std::sync::Mutex<HashMap<String, u32>>> = Arc::default();
    let peak: Arc<std::sync::Mutex<HashMap<String, u32>>> = Arc::default();
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (s, running, peak, done) =
                (b.store.clone(), running.clone(), peak.clone(), done.clone());
            tokio::spawn(async move {
                let mut req = claim("work", 2, LEASE);
                req.worker = format!("w{w}");
                let mut idle = 0;
                while done.load(Ordering::SeqCst) < 180 && idle < 10_000 {
                    let got = s.claim(&req, T0).await.unwrap();
                    if got.is_empty() {
                        idle += 1;
                        tokio::task::yield_now().await;
                        continue;
                    }
                    for c in &got {
                        let k = c.job.concurrency_key.clone().unwrap().to_string();
                        let mut r = running.lock().unwrap();
                        let n = {
                            let n = r.entry(k.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        let total: u32 = r.values().sum();
                        let mut p = peak.lock().unwrap();
                        let pk = p.entry(k).or_default();
                        *pk = (*pk).max(n);
                        let pg = p.entry("global".into()).or_default();
                        *pg = (*pg).max(total);
                    }
                    // The store's own view never exceeds a limit either.
                    let in_store = s
                        .jobs(&JobFilter {
                            state: Some(JobState::Running),
                            limit: 1000,
                            ..JobFilter::default()
                        })
                        .await
                        .unwrap();
                    assert!(in_store.len() <= 5, "global limit exceeded: {}", in_store.len());
                    tokio::task::yield_now().await;
                    for c in got {
                        let k = c.job.concurrency_key.clone().unwrap().to_string();
                        *running.lock().unwrap().get_mut(&k).unwrap() -= 1;
                        s.complete_job(&c.lease, &json!(null).into(), T0).await.unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 180, "every job ran");
    let peak = peak.lock().unwrap().clone();
    for (k, l) in keys.iter().zip(limits) {
        assert!(peak[*k] <= l, "{k}: peak {} > limit {l}", peak[*k]);
    }
    assert!(peak["global"] <= 5);
    assert_eq!(b.store.job_counts(&CountFilter::default()).await.unwrap().succeeded, 180);
}

/// Eight claimers drain 400 jobs: each job is claimed exactly once.
async fn concurrent_claimers_never_share_a_job(b: &Backend) {
    let jobs: Vec<NewJob> =
        (0..400).map(|n| job("work", n).with_priority((n % 7) as i32)).collect();
    b.store.enqueue_batch(&jobs, T0).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = b.store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s.claim(&claim("work", 5, LEASE), T0).await.unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for c in got {
                        mine.push(c.job.id);
                        s.complete_job(&c.lease, &json!(null).into(), T0).await.unwrap();
                    }
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (400, 400));
    let done = b
        .store
        .jobs(&JobFilter { state: Some(JobState::Succeeded), limit: 1000, ..JobFilter::default() })
        .await
        .unwrap();
    assert!(done.iter().all(|j| j.attempts == 1));
}

async fn next_wakeup_and_purge(b: &Backend) {
    let s = &b.store;
    assert_eq!(s.next_wakeup(&[queue("work")]).await.unwrap(), None);
    s.enqueue(&job("work", 1).with_run_at(T0 + secs(50)), T0).await.unwrap();
    s.enqueue(&job("work", 2), T0).await.unwrap();
    assert_eq!(s.next_wakeup(&[queue("work")]).await.unwrap(), Some(T0));
    let c = s.claim(&claim("work", 1, Duration::from_secs(20)), T0).await.unwrap().remove(0);
    assert_eq!(
        s.next_wakeup(&[queue("work")]).await.unwrap(),
        Some(T0 + secs(20)),
        "the lease deadline"
    );
    assert_eq!(s.next_wakeup(&[queue("other")]).await.unwrap(), None);
    let key: kai_core::queue::EffectKey = "e/1".parse().unwrap();
    s.finish_effect(&c.lease, &key, &json!(1), T0).await.unwrap();
    s.complete_job(&c.lease, &json!(null).into(), T0 + 1).await.unwrap();
    assert_eq!(s.purge_finished(T0 + 1, 100).await.unwrap(), 0, "finished at T0+1, not before");
    assert_eq!(s.purge_finished(T0 + 2, 100).await.unwrap(), 1);
    assert_eq!(s.job(c.lease.job).await.unwrap(), None);
    assert_eq!(s.effect(&key).await.unwrap(), None, "its effects went with it");
    assert_eq!(s.job_counts(&CountFilter::default()).await.unwrap().total(), 1);
}
