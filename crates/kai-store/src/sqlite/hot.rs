//! The SQLite versions of what a task and its steps do to the store, run without a thread
//! hand-off per statement ([`super::direct`]): their reads of the task, its plans, steps and
//! questions in place, and their transactions — a new task with its plan and job, the plan's
//! approval, the task's and a step's
//! status moves, the claim of a job, a step's start, each model call, a step's finish with the
//! steps it unblocks, a job's completion — each as one closure on the writer thread, committed in
//! a batch with whatever else is waiting. The PostgreSQL versions are in `postgres.rs` and
//! `sql_tasks.rs`; both use the SQL text of `sql_tasks.rs` and `sql_queue_rows.rs`.

use std::sync::LazyLock;

use rusqlite::{Connection, OptionalExtension as _, Row};

use super::SqliteStore;
use super::direct::positional;
use crate::error::{StoreError, StoreResult};
use crate::queue::{ClaimRequest, ClaimedJob, Job, Lease, NewJob, QueueError, QueueResult};
use crate::sql_queue::{self, placeholders};
use crate::{PlanRow, QuestionRow, StepRow, TaskRow, TaskUsage, UsageRow};

/// The shared SQL with SQLite's placeholders, made once.
static WRITE_STEP: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::WRITE_STEP));
static ADD_USAGE: LazyLock<String> =
    LazyLock::new(|| format!("{} RETURNING *", positional(crate::sql_tasks::ADD_USAGE)));
static PROMOTE_STEP: LazyLock<String> =
    LazyLock::new(|| positional(crate::sql_tasks::PROMOTE_STEP));
static INSERT_USAGE: LazyLock<String> = LazyLock::new(|| {
    format!("{} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", crate::sql_security::INSERT_USAGE)
});
static STEP_OUTPUTS: LazyLock<String> =
    LazyLock::new(|| positional(crate::sql_tasks::STEP_OUTPUTS));
static SUCCEED: LazyLock<String> = LazyLock::new(|| positional(sql_queue::SUCCEED));
static TASK: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::TASK));
static PLANS: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::PLANS));
static PLAN: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::PLAN));
static QUESTIONS: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::QUESTIONS));
static SET_TASK_STATUS: LazyLock<String> =
    LazyLock::new(|| positional(crate::sql_tasks::SET_TASK_STATUS));
static SET_STEP_STATUS: LazyLock<String> =
    LazyLock::new(|| positional(crate::sql_tasks::SET_STEP_STATUS));
static INSERT_TASK: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::INSERT_TASK));
static INSERT_PLAN: LazyLock<String> = LazyLock::new(|| positional(crate::sql_tasks::INSERT_PLAN));
/// The approval's statements ([`crate::sql_tasks::APPROVE_PLAN`] and what follows it).
static APPROVAL: LazyLock<[String; 5]> = LazyLock::new(|| {
    use crate::sql_tasks::{
        APPROVE_PLAN, DELETE_STEPS, INSERT_STEP, SET_PLAN_VERSION, SUPERSEDE_PLANS,
    };
    [APPROVE_PLAN, SUPERSEDE_PLANS, SET_PLAN_VERSION, DELETE_STEPS, INSERT_STEP].map(positional)
});

/// Reads, in place (async only to match the PostgreSQL versions the shared SQL calls).
#[allow(clippy::unused_async)]
impl SqliteStore {
    pub(super) async fn task_read(&self, id: &str) -> StoreResult<Option<TaskRow>> {
        self.direct.read(|c| Ok(c.prepare_cached(&TASK)?.query_row([id], task_row).optional()?))
    }

    pub(super) async fn step_read(
        &self,
        task_id: &str,
        step_id: &str,
    ) -> StoreResult<Option<StepRow>> {
        self.direct.read(|c| {
            Ok(c.prepare_cached("SELECT * FROM steps WHERE task_id = ?1 AND step_id = ?2")?
                .query_row([task_id, step_id], step_row)
                .optional()?)
        })
    }

    pub(super) async fn steps_read(&self, task_id: &str) -> StoreResult<Vec<StepRow>> {
        self.direct.read(|c| steps_of(c, task_id))
    }

    pub(super) async fn plans_read(&self, task_id: &str) -> StoreResult<Vec<PlanRow>> {
        self.direct.read(|c| {
            let mut stmt = c.prepare_cached(&PLANS)?;
            let rows = stmt.query_map([task_id], plan_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(super) async fn plan_read(
        &self,
        task_id: &str,
        version: i64,
    ) -> StoreResult<Option<PlanRow>> {
        self.direct.read(|c| {
            Ok(c.prepare_cached(&PLAN)?
                .query_row(rusqlite::params![task_id, version], plan_row)
                .optional()?)
        })
    }

    pub(super) async fn questions_read(&self, task_id: &str) -> StoreResult<Vec<QuestionRow>> {
        self.direct.read(|c| {
            let mut stmt = c.prepare_cached(&QUESTIONS)?;
            let rows = stmt.query_map([task_id], question_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    pub(super) async fn step_outputs_read(
        &self,
        task_id: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        self.direct.read(|c| {
            let mut stmt = c.prepare_cached(&STEP_OUTPUTS)?;
            let rows = stmt.query_map([task_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }
}

/// A task step's own transactions.
impl SqliteStore {
    /// Writes the step and adds `u` to its task's counters; the task row after.
    pub(super) async fn start_step_tx(
        &self,
        s: &StepRow,
        u: TaskUsage,
        at_us: i64,
    ) -> StoreResult<TaskRow> {
        let s = s.clone();
        self.direct
            .write(move |c| {
                write_step(c, &s)?;
                add_usage(c, &s.task_id, u, at_us)
            })
            .await
    }

    /// Records a model call's usage rows and adds `u` to the task's counters; the task row after.
    pub(super) async fn task_call_tx(
        &self,
        id: &str,
        rows: &[UsageRow],
        u: TaskUsage,
        at_us: i64,
    ) -> StoreResult<TaskRow> {
        let (id, rows) = (id.to_owned(), rows.to_vec());
        self.direct
            .write(move |c| {
                let task = add_usage(c, &id, u, at_us)?;
                let mut stmt = c.prepare_cached(&INSERT_USAGE)?;
                for r in &rows {
                    stmt.execute(rusqlite::params![
                        r.id,
                        r.at_us,
                        r.principal,
                        r.persona,
                        r.prompt_tokens,
                        r.completion_tokens,
                        r.cost_micros
                    ])?;
                }
                Ok(task)
            })
            .await
    }

    /// Writes a finished step, reads its task's steps, queues the ones it unblocked with their
    /// jobs, in one transaction. One writer: nothing else can move a step between the read and
    /// the promotions, so the read decides which are promoted.
    pub(super) async fn finish_step_tx(
        &self,
        step: &StepRow,
        follow: crate::FollowUps,
        now_us: i64,
    ) -> StoreResult<(Vec<StepRow>, Vec<String>)> {
        let step = step.clone();
        self.direct
            .write(move |c| {
                write_step(c, &step)?;
                let mut steps = steps_of(c, &step.task_id)?;
                let mut queued = Vec::new();
                let mut jobs = Vec::new();
                for (id, job) in follow(&steps) {
                    let Some(s) =
                        steps.iter_mut().find(|s| s.step_id == id && s.status == "pending")
                    else {
                        continue;
                    };
                    s.status = "queued".into();
                    c.prepare_cached(&PROMOTE_STEP)?.execute([&step.task_id, &id])?;
                    queued.push(id);
                    jobs.push(job);
                }
                insert_jobs(c, &jobs, now_us).map_err(crate::sql_tasks::insert_error)?;
                Ok((steps, queued))
            })
            .await
    }
}

/// A task's own transactions: its approval and status moves (one closure on the writer thread
/// each, instead of a thread hand-off per statement on sqlx's writer, which held the store's
/// writer turn — and so every step's write — for the whole approval).
impl SqliteStore {
    /// Inserts the task, its plan and its job; `None` (nothing written) if the task's id or
    /// idempotency key is taken.
    pub(super) async fn create_task_tx(
        &self,
        task: &TaskRow,
        plan: Option<&PlanRow>,
        job: &NewJob,
        now_us: i64,
    ) -> StoreResult<Option<TaskRow>> {
        let (task, plan, job) = (task.clone(), plan.cloned(), job.clone());
        self.direct
            .write(move |c| {
                if c.prepare_cached(&INSERT_TASK)?
                    .execute(crate::sql_tasks::bind_task!(params task))?
                    == 0
                {
                    return Ok(None);
                }
                if let Some(p) = &plan
                    && c.prepare_cached(&INSERT_PLAN)?
                        .execute(crate::sql_tasks::bind_plan!(params p))?
                        == 0
                {
                    return Err(crate::sql_tasks::plan_exists(p.version));
                }
                insert_jobs(c, std::slice::from_ref(&job), now_us)
                    .map_err(crate::sql_tasks::insert_error)?;
                Ok(Some(c.prepare_cached(&TASK)?.query_row([&task.id], task_row)?))
            })
            .await
    }

    /// The task's status compare-and-set; whether it moved.
    pub(super) async fn task_status_tx(
        &self,
        c: crate::sql_tasks::TaskStatusChange<'_>,
    ) -> StoreResult<bool> {
        let (id, status, from) = (c.id.to_owned(), c.status.to_owned(), c.from.to_owned());
        let (result, error) = (c.result.map(str::to_owned), c.error.map(str::to_owned));
        let (finished, at_us) = (c.finished, c.at_us);
        self.direct
            .write(move |c| {
                let changed = c
                    .prepare_cached(&SET_TASK_STATUS)?
                    .execute(rusqlite::params![id, status, result, error, finished, at_us, from])?;
                Ok(changed == 1)
            })
            .await
    }

    /// A step's status from `from` to `to`; whether it moved.
    pub(super) async fn step_status_tx(
        &self,
        task_id: &str,
        step_id: &str,
        from: &str,
        to: &str,
    ) -> StoreResult<bool> {
        let args = [task_id, step_id, from, to].map(str::to_owned);
        self.direct
            .write(move |c| Ok(c.prepare_cached(&SET_STEP_STATUS)?.execute(args)? == 1))
            .await
    }

    /// Approves a proposed plan and writes its steps, all or nothing.
    pub(super) async fn approve_plan_tx(
        &self,
        task_id: &str,
        version: i64,
        steps: &[StepRow],
        at_us: i64,
    ) -> StoreResult<()> {
        let (task_id, steps) = (task_id.to_owned(), steps.to_vec());
        self.direct
            .write(move |c| {
                let [approve, supersede, point, delete, insert] = &*APPROVAL;
                if c.prepare_cached(approve)?.execute(rusqlite::params![task_id, version])? == 0 {
                    return Err(crate::sql_tasks::not_awaiting(version));
                }
                c.prepare_cached(supersede)?.execute(rusqlite::params![task_id, version])?;
                c.prepare_cached(point)?.execute(rusqlite::params![task_id, version, at_us])?;
                c.prepare_cached(delete)?.execute([&task_id])?;
                let mut insert = c.prepare_cached(insert)?;
                for s in &steps {
                    insert.execute(rusqlite::params![
                        s.task_id,
                        s.step_id,
                        s.plan_version,
                        s.agent,
                        s.status
                    ])?;
                }
                Ok(())
            })
            .await
    }
}

/// The queue's claim and completion.
impl SqliteStore {
    /// Reaps expired leases, picks the first `max` ready jobs and takes them under one new
    /// lease, in one transaction. With concurrency limits set the admission needs the running
    /// counts, and the shared claim (`sql_queue.rs`) runs instead.
    pub(super) async fn claim_tx(
        &self,
        req: &ClaimRequest,
        now_us: i64,
    ) -> QueueResult<Vec<ClaimedJob>> {
        sql_queue::check_claim(req)?;
        let queues: Vec<String> = req.queues.iter().map(|q| q.as_str().to_owned()).collect();
        let lease_until_us = now_us.saturating_add(sql_queue::duration_us(req.lease));
        let (max, worker) = (i64::from(req.max), req.worker.clone());
        let claimed = self
            .direct
            .write(move |c| claim(c, &queues, max, &worker, lease_until_us, now_us))
            .await?;
        match claimed {
            Some(out) => {
                if !out.is_empty() {
                    self.durable().await?;
                }
                Ok(out)
            }
            None => self.queue_claim(req, now_us).await,
        }
    }

    /// Marks a job succeeded under its lease (a completion with no effects and no follow-ups).
    pub(super) async fn succeed_tx(
        &self,
        lease: &Lease,
        result: String,
        now_us: i64,
    ) -> QueueResult<()> {
        let (job, token) = (lease.job.to_string(), lease.token.to_string());
        let done = self
            .direct
            .write(move |c| {
                Ok::<_, QueueError>(
                    c.prepare_cached(&SUCCEED)?
                        .execute(rusqlite::params![result, now_us, job, token])?,
                )
            })
            .await?;
        if done == 0 {
            return Err(QueueError::LeaseLost);
        }
        self.durable().await?;
        Ok(())
    }
}

/// The claim, on the writer thread; `None` when concurrency limits are set.
fn claim(
    c: &Connection,
    queues: &[String],
    max: i64,
    worker: &str,
    lease_until_us: i64,
    now_us: i64,
) -> QueueResult<Option<Vec<ClaimedJob>>> {
    use rusqlite::types::Value;
    let names = || queues.iter().map(|q| Value::from(q.clone()));
    let reap = format!(
        "UPDATE queue_jobs SET {} WHERE state = 'running' AND id IN (SELECT id FROM queue_jobs \
         WHERE state = 'running' AND lease_until_us < $2 AND queue IN ({}) ORDER BY lease_until_us LIMIT $3)",
        sql_queue::REAP_SET,
        placeholders(4, queues.len())
    );
    let head = [
        Value::from(sql_queue::LEASE_EXPIRED.to_owned()),
        Value::from(now_us),
        Value::from(sql_queue::REAP_BATCH),
    ];
    c.prepare_cached(&positional(&reap))?
        .execute(rusqlite::params_from_iter(head.into_iter().chain(names())))?;
    let limited: i64 =
        c.prepare_cached("SELECT COUNT(*) FROM queue_limits")?.query_row([], |r| r.get(0))?;
    if limited > 0 {
        return Ok(None);
    }
    let pick = format!(
        "SELECT id FROM queue_jobs WHERE state = 'queued' AND run_at_us <= $1 AND queue IN ({}) \
         ORDER BY priority DESC, run_at_us, id LIMIT $2",
        placeholders(3, queues.len())
    );
    let ids: Vec<String> = c
        .prepare_cached(&positional(&pick))?
        .query_map(
            rusqlite::params_from_iter(
                [Value::from(now_us), Value::from(max)].into_iter().chain(names()),
            ),
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    if ids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let token = kai_core::ids::LeaseId::new();
    let take = format!(
        "UPDATE queue_jobs SET {} WHERE state = 'queued' AND id IN ({}) RETURNING {}",
        sql_queue::TAKE_SET,
        placeholders(5, ids.len()),
        sql_queue::JOB_COLUMNS
    );
    let head = [
        Value::from(token.to_string()),
        Value::from(lease_until_us),
        Value::from(worker.to_owned()),
        Value::from(now_us),
    ];
    let mut stmt = c.prepare_cached(&positional(&take))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(
        head.into_iter().chain(ids.iter().map(|i| Value::from(i.clone()))),
    ))?;
    let mut jobs = std::collections::HashMap::new();
    while let Some(row) = rows.next()? {
        let job = job_row(row)?;
        jobs.insert(job.id.to_string(), job);
    }
    // In the order picked.
    Ok(Some(
        ids.iter()
            .filter_map(|id| jobs.remove(id))
            .map(|job| ClaimedJob { lease: Lease { job: job.id, token }, job, lease_until_us })
            .collect(),
    ))
}

/// Inserts jobs; a job whose idempotency key exists resolves to the stored one, which must
/// describe the same work (as `queue_insert` of `sql_queue.rs`).
fn insert_jobs(c: &Connection, jobs: &[NewJob], now_us: i64) -> QueueResult<()> {
    sql_queue::check_batch(jobs.len())?;
    const INSERT: &str = "INSERT INTO queue_jobs (id, queue, state, priority, payload, parent_id, idempotency_key, \
         concurrency_key, attempts, max_attempts, backoff_initial_ms, backoff_max_ms, run_at_us, \
         cancel_requested, created_at_us, updated_at_us) \
         VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, FALSE, ?12, ?12) \
         ON CONFLICT (idempotency_key) DO NOTHING";
    let existing =
        format!("SELECT {} FROM queue_jobs WHERE idempotency_key = ?1", sql_queue::JOB_COLUMNS);
    for job in jobs {
        let p = sql_queue::prepare(job, now_us)?;
        let inserted = c.prepare_cached(INSERT)?.execute(rusqlite::params![
            p.id,
            p.queue,
            p.priority,
            p.payload,
            p.parent_id,
            p.idempotency_key,
            p.concurrency_key,
            p.max_attempts,
            p.backoff_initial_ms,
            p.backoff_max_ms,
            p.run_at_us,
            now_us
        ])?;
        if inserted == 1 {
            continue;
        }
        let Some(key) = &p.idempotency_key else {
            return Err(QueueError::Store(StoreError::Corrupt(
                "a job without an idempotency key was not inserted".into(),
            )));
        };
        let mut stmt = c.prepare_cached(&existing)?;
        let mut rows = stmt.query([key])?;
        let Some(row) = rows.next()? else {
            return Err(QueueError::Store(StoreError::Corrupt(
                "an enqueued job was neither inserted nor found by its idempotency key".into(),
            )));
        };
        let found = job_row(row)?;
        if !sql_queue::same_work(&found, job) {
            return Err(QueueError::IdempotencyConflict { existing: found.id });
        }
    }
    Ok(())
}

/// [`crate::sql_tasks::WRITE_STEP`]; `NotFound` if the step does not exist.
fn write_step(c: &Connection, s: &StepRow) -> StoreResult<()> {
    let changed = c.prepare_cached(&WRITE_STEP)?.execute(rusqlite::params![
        s.task_id,
        s.step_id,
        s.status,
        s.attempts,
        s.output,
        s.feedback,
        s.error,
        s.tokens,
        s.tool_calls,
        s.started_at_us,
        s.finished_at_us
    ])?;
    if changed == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// [`crate::sql_tasks::ADD_USAGE`]; the task row after, `NotFound` if there is no such task.
fn add_usage(c: &Connection, id: &str, u: TaskUsage, at_us: i64) -> StoreResult<TaskRow> {
    c.prepare_cached(&ADD_USAGE)?
        .query_row(
            rusqlite::params![id, u.steps, u.tool_calls, u.tokens, u.cost_micros, at_us],
            task_row,
        )
        .optional()?
        .ok_or(StoreError::NotFound)
}

fn steps_of(c: &Connection, task_id: &str) -> StoreResult<Vec<StepRow>> {
    let mut stmt = c.prepare_cached("SELECT * FROM steps WHERE task_id = ?1 ORDER BY step_id")?;
    let rows = stmt.query_map([task_id], step_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn task_row(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    let r = InOrder::new(r);
    Ok(crate::sql_tasks::task_row!(r.get))
}

fn step_row(r: &Row<'_>) -> rusqlite::Result<StepRow> {
    let r = InOrder::new(r);
    Ok(crate::sql_tasks::step_row!(r.get))
}

fn plan_row(r: &Row<'_>) -> rusqlite::Result<PlanRow> {
    let r = InOrder::new(r);
    Ok(crate::sql_tasks::plan_row!(r.get))
}

fn question_row(r: &Row<'_>) -> rusqlite::Result<QuestionRow> {
    let r = InOrder::new(r);
    Ok(crate::sql_tasks::question_row!(r.get))
}

fn job_row(r: &Row<'_>) -> QueueResult<Job> {
    let r = InOrder::new(r);
    crate::sql_queue::raw_job!(r.get).into_job()
}

/// A row read by column name, for the row macros, that tries the column after the last one
/// read before searching: the macros name the columns in table order, so each lookup is one
/// comparison instead of rusqlite's scan over every column before it (which was 4 % of a
/// task step's CPU). Any other order still reads the right columns, only slower.
struct InOrder<'a, 'r> {
    row: &'a Row<'r>,
    next: std::cell::Cell<usize>,
}

impl<'a, 'r> InOrder<'a, 'r> {
    fn new(row: &'a Row<'r>) -> Self {
        Self { row, next: std::cell::Cell::new(0) }
    }

    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> rusqlite::Result<T> {
        let i = self.next.get();
        let at = if self.row.as_ref().column_name(i).is_ok_and(|n| n == name) {
            i
        } else {
            self.row.as_ref().column_index(name)?
        };
        self.next.set(at + 1);
        self.row.get(at)
    }
}

#[cfg(test)]
mod tests {
    use super::InOrder;

    #[test]
    fn columns_read_by_name_in_any_order() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE t (a TEXT, b INTEGER, c TEXT); INSERT INTO t VALUES ('x', 7, NULL)",
        )
        .unwrap();
        let read = |order: &[&str]| {
            c.query_row("SELECT * FROM t", [], |r| {
                let r = InOrder::new(r);
                let mut out = Vec::new();
                for name in order {
                    let v: rusqlite::types::Value = r.get(name)?;
                    out.push(format!("{name}={v:?}"));
                }
                Ok(out.join(" "))
            })
        };
        let want = |order: &[&str]| {
            order
                .iter()
                .map(|n| match *n {
                    "a" => "a=Text(\"x\")".to_owned(),
                    "b" => "b=Integer(7)".to_owned(),
                    _ => "c=Null".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        for order in [["a", "b", "c"], ["c", "a", "b"], ["b", "b", "a"], ["c", "b", "a"]] {
            assert_eq!(read(&order).unwrap(), want(&order), "order {order:?}");
        }
        let missing = c.query_row("SELECT * FROM t", [], |r| InOrder::new(r).get::<String>("zz"));
        assert!(
            matches!(missing, Err(rusqlite::Error::InvalidColumnName(ref n)) if n == "zz"),
            "{missing:?}"
        );
    }
}
