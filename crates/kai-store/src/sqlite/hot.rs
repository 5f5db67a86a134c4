//! The SQLite versions of the transactions a task step runs, as scripts ([`crate::sqlite_script`]):
//! a step's start and a model call in one trip to the writer's thread each, a finished step in
//! four, a claim of queued jobs in two (when no concurrency limit is set). The PostgreSQL
//! versions are in `postgres.rs`; both use the SQL text of `sql_tasks.rs` and `sql_queue_rows.rs`.

use super::SqliteStore;
use crate::error::{StoreError, StoreResult};
use crate::sql_queue::placeholders;
use crate::sqlite_script::Script;

/// A task step's own transactions.
impl SqliteStore {
    /// Writes the step and adds `u` to its task's counters; the task row after.
    pub(super) async fn start_step_tx(
        &self,
        s: &crate::StepRow,
        u: crate::TaskUsage,
        at_us: i64,
    ) -> StoreResult<crate::TaskRow> {
        let mut script = Script::new();
        bind_step(script.push(crate::sql_tasks::WRITE_STEP), s);
        // The counters move only if the step exists (then the write above found it).
        let add = format!(
            "{} AND EXISTS (SELECT 1 FROM steps WHERE task_id = $1 AND step_id = $7) RETURNING *",
            crate::sql_tasks::ADD_USAGE
        );
        bind_usage(script.push(&add), &s.task_id, u, at_us).bind(s.step_id.clone());
        let done = script.run(&mut self.write_conn().await?).await?;
        if done.first().is_none_or(|d| d.changes == 0) {
            return Err(StoreError::NotFound);
        }
        let row = done.get(1).and_then(|d| d.rows.first()).ok_or(StoreError::NotFound)?;
        Self::task_from_row(row)
    }

    /// Records a model call's usage rows and adds `u` to the task's counters; the task row after.
    pub(super) async fn task_call_tx(
        &self,
        id: &str,
        rows: &[crate::UsageRow],
        u: crate::TaskUsage,
        at_us: i64,
    ) -> StoreResult<crate::TaskRow> {
        let mut script = Script::new();
        bind_usage(
            script.push(&format!("{} RETURNING *", crate::sql_tasks::ADD_USAGE)),
            id,
            u,
            at_us,
        );
        // The usage rows are kept only with their task (then the update above found it).
        let insert = format!(
            "{} SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $8)",
            crate::sql_security::INSERT_USAGE
        );
        for r in rows {
            script
                .push(&insert)
                .bind(r.id.clone())
                .bind(r.at_us)
                .bind(r.principal.clone())
                .bind(r.persona.clone())
                .bind(r.prompt_tokens)
                .bind(r.completion_tokens)
                .bind(r.cost_micros)
                .bind(id.to_owned());
        }
        let done = script.run(&mut self.write_conn().await?).await?;
        let row = done.first().and_then(|d| d.rows.first()).ok_or(StoreError::NotFound)?;
        Self::task_from_row(row)
    }

    /// Writes a finished step, reads its task's steps, queues the ones it unblocked with their
    /// jobs: four trips (the write and the read, the promotions, the jobs, the commit) where
    /// statement by statement it took seven or more. One writer: nothing else can move a step
    /// between the read and the promotions, so the read decides which are promoted.
    pub(super) async fn finish_step_tx(
        &self,
        step: &crate::StepRow,
        follow: &crate::sql_tasks::FollowUps<'_>,
        now_us: i64,
    ) -> StoreResult<(Vec<crate::StepRow>, Vec<String>)> {
        let mut conn = self.write_conn().await?;
        let mut script = Script::new();
        bind_step(script.push(crate::sql_tasks::WRITE_STEP), step);
        script
            .push("SELECT * FROM steps WHERE task_id = $1 ORDER BY step_id")
            .bind(step.task_id.clone());
        let read = script.run_open(&mut conn).await?;
        let finished = async {
            if read.first().is_none_or(|d| d.changes == 0) {
                return Err(StoreError::NotFound);
            }
            let rows = read.get(1).map_or(&[][..], |d| &d.rows[..]);
            let mut steps =
                rows.iter().map(Self::step_from_row).collect::<StoreResult<Vec<_>>>()?;
            let mut queued = Vec::new();
            let mut jobs = Vec::new();
            let mut promote = Script::continued();
            for (id, job) in follow(&steps) {
                let Some(s) = steps.iter_mut().find(|s| s.step_id == id && s.status == "pending")
                else {
                    continue;
                };
                s.status = "queued".into();
                promote
                    .push(crate::sql_tasks::PROMOTE_STEP)
                    .bind(step.task_id.clone())
                    .bind(id.clone());
                queued.push(id);
                jobs.push(job);
            }
            if !jobs.is_empty() {
                promote.run_open(&mut conn).await?;
                Self::queue_insert(&mut conn, &jobs, now_us)
                    .await
                    .map_err(crate::sql_tasks::insert_error)?;
            }
            Ok((steps, queued))
        }
        .await;
        Script::end(&mut conn, finished.is_ok()).await?;
        finished
    }
}

/// The queue's claim.
impl SqliteStore {
    /// Reaps expired leases, picks the first `max` ready jobs and takes them under one new lease:
    /// two trips, where statement by statement it took six. With concurrency limits set the
    /// admission needs the running counts, and the shared claim (`sql_queue.rs`) runs instead.
    pub(super) async fn claim_tx(
        &self,
        req: &crate::queue::ClaimRequest,
        now_us: i64,
    ) -> crate::queue::QueueResult<Vec<crate::queue::ClaimedJob>> {
        use sqlx::Row as _;
        crate::sql_queue::check_claim(req)?;
        let queues: Vec<String> = req.queues.iter().map(|q| q.as_str().to_owned()).collect();
        let lease_until_us = now_us.saturating_add(crate::sql_queue::duration_us(req.lease));
        let mut conn = self.write_conn().await?;
        let mut script = Script::new();
        // The reap of `queue_reap`, as one statement.
        script
            .push(&format!(
                "UPDATE queue_jobs SET {} WHERE state = 'running' AND id IN (SELECT id FROM queue_jobs \
                 WHERE state = 'running' AND lease_until_us < $2 AND queue IN ({}) ORDER BY lease_until_us LIMIT $3)",
                crate::sql_queue::REAP_SET,
                placeholders(4, queues.len())
            ))
            .bind(crate::sql_queue::LEASE_EXPIRED)
            .bind(now_us)
            .bind(crate::sql_queue::REAP_BATCH);
        for q in &queues {
            script.bind(q.clone());
        }
        script.push("SELECT COUNT(*) AS n FROM queue_limits");
        script
            .push(&format!(
                "SELECT id FROM queue_jobs WHERE state = 'queued' AND run_at_us <= $1 AND queue IN ({}) \
                 ORDER BY priority DESC, run_at_us, id LIMIT $2",
                placeholders(3, queues.len())
            ))
            .bind(now_us)
            .bind(i64::from(req.max));
        for q in &queues {
            script.bind(q.clone());
        }
        let read = script.run_open(&mut conn).await?;
        let claimed = async {
            let limited = match read.get(1).and_then(|d| d.rows.first()) {
                Some(row) => row.try_get::<i64, _>("n")? > 0,
                None => false,
            };
            if limited {
                return Ok(None);
            }
            let ids: Vec<String> = match read.get(2) {
                Some(d) => d.rows.iter().map(|r| r.try_get("id")).collect::<Result<_, _>>()?,
                None => Vec::new(),
            };
            if ids.is_empty() {
                return Ok(Some(Vec::new()));
            }
            let token = kai_core::ids::LeaseId::new();
            let mut take = Script::continued();
            take.push(&format!(
                "UPDATE queue_jobs SET {} WHERE state = 'queued' AND id IN ({}) RETURNING {}",
                crate::sql_queue::TAKE_SET,
                placeholders(5, ids.len()),
                crate::sql_queue::JOB_COLUMNS
            ))
            .bind(token.to_string())
            .bind(lease_until_us)
            .bind(req.worker.clone())
            .bind(now_us);
            for id in &ids {
                take.bind(id.clone());
            }
            let taken = take.run_open(&mut conn).await?;
            let mut jobs = std::collections::HashMap::new();
            for row in taken.first().map_or(&[][..], |d| &d.rows[..]) {
                let job = Self::queue_job_from_row(row)?;
                jobs.insert(job.id.to_string(), job);
            }
            // In the order picked.
            let out: Vec<crate::queue::ClaimedJob> = ids
                .iter()
                .filter_map(|id| jobs.remove(id))
                .map(|job| crate::queue::ClaimedJob {
                    lease: crate::queue::Lease { job: job.id, token },
                    job,
                    lease_until_us,
                })
                .collect();
            Ok::<_, crate::queue::QueueError>(Some(out))
        }
        .await;
        match claimed {
            Ok(Some(out)) => {
                Script::end(&mut conn, true).await?;
                drop(conn);
                if !out.is_empty() {
                    self.durable().await?;
                }
                Ok(out)
            }
            Ok(None) => {
                // Limits are set: the shared claim, which admits under them.
                Script::end(&mut conn, false).await?;
                drop(conn);
                self.queue_claim(req, now_us).await
            }
            Err(e) => {
                Script::end(&mut conn, false).await?;
                Err(e)
            }
        }
    }
}

/// [`crate::sql_tasks::WRITE_STEP`]'s arguments.
fn bind_step<'s>(script: &'s mut Script, s: &crate::StepRow) -> &'s mut Script {
    script
        .bind(s.task_id.clone())
        .bind(s.step_id.clone())
        .bind(s.status.clone())
        .bind(s.attempts)
        .bind(s.output.clone())
        .bind(s.feedback.clone())
        .bind(s.error.clone())
        .bind(s.tokens)
        .bind(s.tool_calls)
        .bind(s.started_at_us)
        .bind(s.finished_at_us)
}

/// [`crate::sql_tasks::ADD_USAGE`]'s arguments.
fn bind_usage<'s>(
    script: &'s mut Script,
    id: &str,
    u: crate::TaskUsage,
    at_us: i64,
) -> &'s mut Script {
    script
        .bind(id.to_owned())
        .bind(u.steps)
        .bind(u.tool_calls)
        .bind(u.tokens)
        .bind(u.cost_micros)
        .bind(at_us)
}
