//! Property test: random interleavings of claims, heartbeats, completions, failures, releases,
//! cancellations and clock jumps by three workers, checked step by step against a model of
//! the queue. The central property: **no job is ever claimed while another lease on it is
//! live** (a takeover happens only after the old deadline passed), and a fenced-off lease can
//! do nothing. Along the way every answer is predicted exactly (who may act, what a failure
//! becomes, the backoff bounds of a random retry policy, claim order, nothing left behind).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kai_core::ids::{JobId, LeaseId};
use kai_core::queue::{JobState, RetryPolicy};
use kai_store::Store;
use kai_store::queue::{
    CancelOutcome, FailOutcome, Failure, Heartbeat, Lease, NewJob, QueueError, Retry,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::{Backend, T0, claim};

#[derive(Debug, Clone)]
enum Op {
    Claim { worker: usize, max: u32, lease_ms: u64 },
    Heartbeat { worker: usize, slot: usize, extend_ms: u64 },
    Complete { worker: usize, slot: usize },
    Fail { worker: usize, slot: usize, retry: bool },
    Release { worker: usize, slot: usize },
    Cancel { job: usize },
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 1..4u32, 50..2000u64).prop_map(|(worker, max, lease_ms)| Op::Claim { worker, max, lease_ms }),
        3 => (0..3usize, 0..4usize, 50..2000u64).prop_map(|(worker, slot, extend_ms)| Op::Heartbeat { worker, slot, extend_ms }),
        2 => (0..3usize, 0..4usize).prop_map(|(worker, slot)| Op::Complete { worker, slot }),
        2 => (0..3usize, 0..4usize, any::<bool>()).prop_map(|(worker, slot, retry)| Op::Fail { worker, slot, retry }),
        1 => (0..3usize, 0..4usize).prop_map(|(worker, slot)| Op::Release { worker, slot }),
        1 => (0..6usize).prop_map(|job| Op::Cancel { job }),
        3 => (0..2500u64).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn policy() -> impl Strategy<Value = RetryPolicy> {
    (1u32..=4, 10u64..=500, 1u32..=8).prop_map(|(max_attempts, init, mult)| RetryPolicy {
        max_attempts,
        initial: Duration::from_millis(init),
        max_delay: Duration::from_millis(init * u64::from(mult)),
    })
}

/// How often the runs exercised the interesting paths (asserted nonzero: the test is not vacuous).
static TAKEOVERS: AtomicU64 = AtomicU64::new(0);
static FENCED: AtomicU64 = AtomicU64::new(0);

struct MJob {
    id: JobId,
    state: JobState,
    attempts: u32,
    run_at: i64,
    /// The lease the store holds valid and its deadline.
    current: Option<(LeaseId, i64)>,
    cancel_requested: bool,
}

struct Held {
    job: usize,
    lease: Lease,
    deadline: i64,
}

fn holds(j: &MJob, h: &Held) -> bool {
    j.current.is_some_and(|(token, _)| token == h.lease.token)
}

fn us(ms: u64) -> i64 {
    i64::try_from(ms).unwrap() * 1000
}

/// Takes the held lease `slot` (modulo) of `worker`, if it holds any.
fn pick(workers: &mut [Vec<Held>], worker: usize, slot: usize) -> Option<Held> {
    let held = &mut workers[worker];
    if held.is_empty() { None } else { Some(held.remove(slot % held.len())) }
}

async fn check_model(
    store: &dyn Store,
    queue: &str,
    njobs: usize,
    policy: RetryPolicy,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let new: Vec<NewJob> = (0..njobs)
        .map(|n| NewJob::new(crate::queue(queue), serde_json::json!(n)).with_retry(policy))
        .collect();
    let ids = store.enqueue_batch(&new, T0).await.unwrap();
    let mut jobs: Vec<MJob> = ids
        .iter()
        .map(|e| MJob {
            id: e.job.id,
            state: JobState::Queued,
            attempts: 0,
            run_at: T0,
            current: None,
            cancel_requested: false,
        })
        .collect();
    let mut workers: Vec<Vec<Held>> = (0..3).map(|_| Vec::new()).collect();
    let mut now = T0;
    let index = |jobs: &[MJob], id: JobId| jobs.iter().position(|j| j.id == id).unwrap();

    for op in ops {
        match *op {
            Op::Advance { ms } => now += us(ms),
            Op::Claim { worker, max, lease_ms } => {
                // The store first takes back every expired lease of the queue.
                for j in jobs.iter_mut().filter(|j| j.state == JobState::Running) {
                    if j.current.is_some_and(|(_, deadline)| deadline < now) {
                        j.current = None;
                        j.run_at = now;
                        j.state = if j.cancel_requested {
                            JobState::Cancelled
                        } else if j.attempts >= policy.max_attempts {
                            JobState::Dead
                        } else {
                            JobState::Queued
                        };
                    }
                }
                let got = store
                    .claim(&claim(queue, max, Duration::from_millis(lease_ms)), now)
                    .await
                    .unwrap();
                prop_assert!(got.len() <= max as usize);
                let mut order = Vec::new();
                for c in &got {
                    let i = index(&jobs, c.job.id);
                    let j = &jobs[i];
                    prop_assert_eq!(
                        j.state,
                        JobState::Queued,
                        "claimed a job the model holds as {:?}",
                        j.state
                    );
                    prop_assert!(j.run_at <= now, "claimed before its run_at");
                    prop_assert_eq!(c.job.attempts, j.attempts + 1);
                    // THE property: nobody else holds a live lease on it.
                    for h in workers.iter().flatten().filter(|h| h.job == i) {
                        prop_assert!(
                            h.deadline < now,
                            "job claimed while lease {:?} is live until {}",
                            h.lease.token,
                            h.deadline
                        );
                        TAKEOVERS.fetch_add(1, Ordering::Relaxed);
                    }
                    order.push((j.run_at, j.id));
                }
                prop_assert!(
                    order.windows(2).all(|w| w[0] <= w[1]),
                    "claim order: longest ready first"
                );
                for c in got.iter() {
                    let i = index(&jobs, c.job.id);
                    let j = &mut jobs[i];
                    j.state = JobState::Running;
                    j.attempts += 1;
                    j.current = Some((c.lease.token, now + us(lease_ms)));
                    j.cancel_requested = false;
                    workers[worker].push(Held {
                        job: i,
                        lease: c.lease,
                        deadline: now + us(lease_ms),
                    });
                }
                if got.len() < max as usize {
                    for j in &jobs {
                        let ready = j.state == JobState::Queued && j.run_at <= now;
                        prop_assert!(
                            !ready || got.iter().any(|c| c.job.id == j.id),
                            "a ready job was left behind"
                        );
                    }
                }
            }
            Op::Heartbeat { worker, slot, extend_ms } => {
                let Some(mut h) = pick(&mut workers, worker, slot) else { continue };
                let j = &jobs[h.job];
                let res = store.heartbeat(&h.lease, Duration::from_millis(extend_ms), now).await;
                if holds(j, &h) {
                    let until = now + us(extend_ms);
                    let want = if j.cancel_requested {
                        Heartbeat::CancelRequested { lease_until_us: until }
                    } else {
                        Heartbeat::Continue { lease_until_us: until }
                    };
                    prop_assert_eq!(res.unwrap(), want);
                    h.deadline = until;
                    jobs[h.job].current = Some((h.lease.token, until));
                    workers[worker].push(h);
                } else {
                    FENCED.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(
                        matches!(res, Err(QueueError::LeaseLost)),
                        "stale heartbeat: {:?}",
                        res
                    );
                }
            }
            Op::Complete { worker, slot } => {
                let Some(h) = pick(&mut workers, worker, slot) else { continue };
                let res =
                    store.complete_job(&h.lease, &serde_json::json!("done").into(), now).await;
                let j = &mut jobs[h.job];
                if holds(j, &h) {
                    prop_assert!(res.is_ok(), "{:?}", res);
                    j.state = JobState::Succeeded;
                    j.current = None;
                } else {
                    FENCED.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(
                        matches!(res, Err(QueueError::LeaseLost)),
                        "stale completion: {:?}",
                        res
                    );
                }
            }
            Op::Fail { worker, slot, retry } => {
                let Some(h) = pick(&mut workers, worker, slot) else { continue };
                let failure = Failure {
                    error: "x".into(),
                    retry: if retry { Retry::Policy } else { Retry::Never },
                };
                let res = store.fail_job(&h.lease, &failure, now).await;
                let j = &mut jobs[h.job];
                if !holds(j, &h) {
                    FENCED.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(
                        matches!(res, Err(QueueError::LeaseLost)),
                        "stale failure: {:?}",
                        res
                    );
                    continue;
                }
                j.current = None;
                match res.unwrap() {
                    FailOutcome::Cancelled => {
                        prop_assert!(j.cancel_requested);
                        j.state = JobState::Cancelled;
                    }
                    FailOutcome::Dead => {
                        prop_assert!(
                            !j.cancel_requested && (!retry || j.attempts >= policy.max_attempts)
                        );
                        j.state = JobState::Dead;
                    }
                    FailOutcome::Retrying { run_at_us } => {
                        prop_assert!(
                            !j.cancel_requested && retry && j.attempts < policy.max_attempts
                        );
                        let nominal =
                            i64::try_from(policy.nominal_delay(j.attempts).as_micros()).unwrap();
                        let delay = run_at_us - now;
                        prop_assert!(
                            delay <= nominal && delay * 10 >= nominal * 8 - 10,
                            "backoff {} vs nominal {}",
                            delay,
                            nominal
                        );
                        j.state = JobState::Queued;
                        j.run_at = run_at_us;
                    }
                }
            }
            Op::Release { worker, slot } => {
                let Some(h) = pick(&mut workers, worker, slot) else { continue };
                let res = store.release_job(&h.lease, now).await;
                let j = &mut jobs[h.job];
                if holds(j, &h) {
                    prop_assert!(res.is_ok(), "{:?}", res);
                    j.current = None;
                    j.attempts -= 1;
                    j.run_at = now;
                    j.state =
                        if j.cancel_requested { JobState::Cancelled } else { JobState::Queued };
                } else {
                    FENCED.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(
                        matches!(res, Err(QueueError::LeaseLost)),
                        "stale release: {:?}",
                        res
                    );
                }
            }
            Op::Cancel { job } => {
                let Some(j) = jobs.get_mut(job) else { continue };
                let res = store.cancel_job(j.id, now).await.unwrap();
                let want = match j.state {
                    JobState::Queued => CancelOutcome::Cancelled,
                    JobState::Running => CancelOutcome::Requested,
                    done => CancelOutcome::AlreadyFinished(done),
                };
                prop_assert_eq!(res, want);
                match res {
                    CancelOutcome::Cancelled => j.state = JobState::Cancelled,
                    CancelOutcome::Requested => j.cancel_requested = true,
                    CancelOutcome::AlreadyFinished(_) => {}
                }
            }
        }
    }
    for j in &jobs {
        let stored = store.job(j.id).await.unwrap().unwrap();
        prop_assert_eq!(
            (stored.state, stored.attempts),
            (j.state, j.attempts),
            "final state of {}",
            j.id
        );
        prop_assert!(stored.attempts <= policy.max_attempts);
    }
    Ok(())
}

fn run_model(b: &Backend, rt: &tokio::runtime::Runtime, cases: u32) {
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let case = AtomicU64::new(0);
    let strategy = (1..6usize, policy(), proptest::collection::vec(op(), 1..60));
    runner
        .run(&strategy, |(njobs, policy, ops)| {
            let queue = format!("prop-{}", case.fetch_add(1, Ordering::Relaxed));
            rt.block_on(check_model(b.store.as_ref(), &queue, njobs, policy, &ops))
        })
        .unwrap();
    assert!(TAKEOVERS.load(Ordering::Relaxed) > 0, "no case took over an expired lease");
    assert!(FENCED.load(Ordering::Relaxed) > 0, "no case used a stale lease");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn leases_never_overlap_sqlite() {
    let rt = runtime();
    let b = rt.block_on(Backend::sqlite());
    run_model(&b, &rt, 64);
    rt.block_on(b.finish());
}

#[test]
fn leases_never_overlap_postgres() {
    let rt = runtime();
    let Some(b) = rt.block_on(Backend::postgres()) else {
        eprintln!("KAI_TEST_POSTGRES_URL not set: PostgreSQL run of this test not performed");
        return;
    };
    run_model(&b, &rt, 48);
    rt.block_on(b.finish());
}
