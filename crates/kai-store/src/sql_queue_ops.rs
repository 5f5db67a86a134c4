//! The `QueueStore` operations, shared by both backends; the row helpers they use (insert,
//! reap, free slots, effect upsert) and the dialect fragments are in `sql_queue.rs`.

macro_rules! impl_queue_ops {
    ($store:ty, $db:ty, begin: $begin:literal, skip_locked: $skip_locked:literal, for_update: $for_update:literal, for_share: $for_share:literal) => {
        #[async_trait::async_trait]
        impl $crate::queue::QueueStore for $store {
            async fn enqueue(&self, job: &$crate::queue::NewJob, now_us: i64) -> $crate::queue::QueueResult<$crate::queue::Enqueued> {
                let mut out = <Self as $crate::queue::QueueStore>::enqueue_batch(self, std::slice::from_ref(job), now_us).await?;
                out.pop().ok_or_else(|| $crate::StoreError::Corrupt("enqueue returned nothing".into()).into())
            }

            async fn enqueue_batch(
                &self,
                jobs: &[$crate::queue::NewJob],
                now_us: i64,
            ) -> $crate::queue::QueueResult<Vec<$crate::queue::Enqueued>> {
                if jobs.is_empty() {
                    return Ok(Vec::new());
                }
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let out = Self::queue_insert(&mut *tx, jobs, now_us).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(out)
            }

            async fn claim(
                &self,
                req: &$crate::queue::ClaimRequest,
                now_us: i64,
            ) -> $crate::queue::QueueResult<Vec<$crate::queue::ClaimedJob>> {
                self.claim_tx(req, now_us).await
            }

            async fn heartbeat(
                &self,
                lease: &$crate::queue::Lease,
                extend: std::time::Duration,
                now_us: i64,
            ) -> $crate::queue::QueueResult<$crate::queue::Heartbeat> {
                $crate::sql_queue::check_lease(extend)?;
                let until = now_us.saturating_add($crate::sql_queue::duration_us(extend));
                let cancel: Option<bool> = sqlx::query_scalar(
                    "UPDATE queue_jobs SET lease_until_us = $1, updated_at_us = $2 \
                     WHERE id = $3 AND lease_id = $4 AND state = 'running' RETURNING cancel_requested",
                )
                .bind(until)
                .bind(now_us)
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .fetch_optional(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                match cancel {
                    None => Err($crate::queue::QueueError::LeaseLost),
                    Some(true) => Ok($crate::queue::Heartbeat::CancelRequested { lease_until_us: until }),
                    Some(false) => Ok($crate::queue::Heartbeat::Continue { lease_until_us: until }),
                }
            }

            async fn complete_job(
                &self,
                lease: &$crate::queue::Lease,
                completion: &$crate::queue::Completion,
                now_us: i64,
            ) -> $crate::queue::QueueResult<Vec<$crate::queue::Enqueued>> {
                use $crate::queue::QueueError;
                let result = $crate::sql_queue::result_text(&completion.result)?;
                if completion.effects.len() > kai_core::queue::MAX_EFFECTS_PER_COMPLETION {
                    return Err(QueueError::LimitExceeded {
                        what: "effects in one completion",
                        limit: kai_core::queue::MAX_EFFECTS_PER_COMPLETION,
                    });
                }
                if completion.effects.is_empty() && completion.enqueue.is_empty() {
                    // The update alone: one statement is its own transaction.
                    self.succeed_tx(lease, result, now_us).await?;
                    return Ok(Vec::new());
                }
                let succeed = sqlx::query_scalar::<_, i64>(concat!($crate::sql_queue::succeed_sql!(), " RETURNING attempts"))
                .bind(result)
                .bind(now_us)
                .bind(lease.job.to_string())
                .bind(lease.token.to_string());
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let attempt = succeed.fetch_optional(&mut *tx).await?.ok_or(QueueError::LeaseLost)?;
                for (key, value) in &completion.effects {
                    Self::queue_effect_upsert(&mut tx, key, &lease.job, Some(lease.token.to_string()), attempt, value, now_us)
                        .await?;
                }
                let follow_ups = Self::queue_insert(&mut *tx, &completion.enqueue, now_us).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(follow_ups)
            }

            async fn fail_job(
                &self,
                lease: &$crate::queue::Lease,
                failure: &$crate::queue::Failure,
                now_us: i64,
            ) -> $crate::queue::QueueResult<$crate::queue::FailOutcome> {
                use $crate::queue::{FailOutcome, QueueError};
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let row: Option<(i64, i64, i64, i64, bool)> = sqlx::query_as(concat!(
                    "SELECT attempts, max_attempts, backoff_initial_ms, backoff_max_ms, cancel_requested FROM queue_jobs \
                     WHERE id = $1 AND lease_id = $2 AND state = 'running'",
                    $for_update
                ))
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                let (attempts, max_attempts, initial, max_delay, cancel) = row.ok_or(QueueError::LeaseLost)?;
                let ms = |v: i64| std::time::Duration::from_millis(u64::try_from(v).unwrap_or(0));
                let policy = kai_core::queue::RetryPolicy {
                    max_attempts: u32::try_from(max_attempts).unwrap_or(1),
                    initial: ms(initial),
                    max_delay: ms(max_delay),
                };
                let (state, outcome) = $crate::sql_queue::fail_decision(
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                    &policy,
                    cancel,
                    failure,
                    now_us,
                    rand::random::<f64>(),
                );
                let run_at = match outcome {
                    FailOutcome::Retrying { run_at_us } => run_at_us,
                    FailOutcome::Dead | FailOutcome::Cancelled => now_us,
                };
                let finished = state.is_terminal().then_some(now_us);
                sqlx::query(
                    "UPDATE queue_jobs SET state = $1, last_error = $2, run_at_us = $3, finished_at_us = $4, updated_at_us = $5, \
                     lease_id = NULL, lease_until_us = NULL, worker = NULL WHERE id = $6",
                )
                .bind(state.as_str())
                .bind(kai_core::queue::clip_error(&failure.error))
                .bind(run_at)
                .bind(finished)
                .bind(now_us)
                .bind(lease.job.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(outcome)
            }

            async fn release_job(&self, lease: &$crate::queue::Lease, now_us: i64) -> $crate::queue::QueueResult<()> {
                let done = sqlx::query(
                    "UPDATE queue_jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END, \
                     finished_at_us = CASE WHEN cancel_requested THEN $1 ELSE NULL END, \
                     attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, run_at_us = $1, updated_at_us = $1, \
                     lease_id = NULL, lease_until_us = NULL, worker = NULL \
                     WHERE id = $2 AND lease_id = $3 AND state = 'running'",
                )
                .bind(now_us)
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::queue::QueueError::LeaseLost) } else { Ok(()) }
            }

            async fn ack_cancel(&self, lease: &$crate::queue::Lease, now_us: i64) -> $crate::queue::QueueResult<()> {
                let done = sqlx::query(
                    "UPDATE queue_jobs SET state = 'cancelled', finished_at_us = $1, updated_at_us = $1, \
                     lease_id = NULL, lease_until_us = NULL, worker = NULL \
                     WHERE id = $2 AND lease_id = $3 AND state = 'running'",
                )
                .bind(now_us)
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::queue::QueueError::LeaseLost) } else { Ok(()) }
            }

            async fn cancel_job(&self, id: kai_core::ids::JobId, now_us: i64) -> $crate::queue::QueueResult<$crate::queue::CancelOutcome> {
                use $crate::queue::{CancelOutcome, QueueError};
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let state: Option<String> = sqlx::query_scalar(concat!("SELECT state FROM queue_jobs WHERE id = $1", $for_update))
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                let state: kai_core::queue::JobState = state
                    .ok_or(QueueError::JobNotFound)?
                    .parse()
                    .map_err(|_| $crate::StoreError::Corrupt("bad job state".into()))?;
                let outcome = match state {
                    kai_core::queue::JobState::Queued => {
                        sqlx::query("UPDATE queue_jobs SET state = 'cancelled', finished_at_us = $1, updated_at_us = $1 WHERE id = $2")
                            .bind(now_us)
                            .bind(id.to_string())
                            .execute(&mut *tx)
                            .await?;
                        CancelOutcome::Cancelled
                    }
                    kai_core::queue::JobState::Running => {
                        sqlx::query("UPDATE queue_jobs SET cancel_requested = TRUE, updated_at_us = $1 WHERE id = $2")
                            .bind(now_us)
                            .bind(id.to_string())
                            .execute(&mut *tx)
                            .await?;
                        CancelOutcome::Requested
                    }
                    done => CancelOutcome::AlreadyFinished(done),
                };
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(outcome)
            }

            async fn cancel_parent(&self, parent: kai_core::ids::TaskId, now_us: i64) -> $crate::queue::QueueResult<$crate::queue::CancelCounts> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let cancelled = sqlx::query(
                    "UPDATE queue_jobs SET state = 'cancelled', finished_at_us = $1, updated_at_us = $1 \
                     WHERE parent_id = $2 AND state = 'queued'",
                )
                .bind(now_us)
                .bind(parent.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let requested = sqlx::query(
                    "UPDATE queue_jobs SET cancel_requested = TRUE, updated_at_us = $1 \
                     WHERE parent_id = $2 AND state = 'running' AND NOT cancel_requested",
                )
                .bind(now_us)
                .bind(parent.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok($crate::queue::CancelCounts { cancelled, requested })
            }

            async fn retry_job(&self, id: kai_core::ids::JobId, now_us: i64) -> $crate::queue::QueueResult<$crate::queue::Job> {
                use $crate::queue::QueueError;
                let q = format!(
                    "UPDATE queue_jobs SET state = 'queued', attempts = 0, run_at_us = $1, updated_at_us = $1, \
                     cancel_requested = FALSE, finished_at_us = NULL, result = NULL \
                     WHERE id = $2 AND state IN ('dead', 'cancelled') RETURNING {}",
                    $crate::sql_queue::JOB_COLUMNS
                );
                let row = sqlx::query(&q).bind(now_us).bind(id.to_string()).fetch_optional(&mut *self.read_conn().await?).await?;
                match row {
                    Some(row) => Self::queue_job_from_row(&row),
                    None => match <Self as $crate::queue::QueueStore>::job(self, id).await? {
                        None => Err(QueueError::JobNotFound),
                        Some(job) => Err(QueueError::InvalidState { state: job.state, what: "only dead or cancelled jobs can be retried" }),
                    },
                }
            }

            async fn job(&self, id: kai_core::ids::JobId) -> $crate::queue::QueueResult<Option<$crate::queue::Job>> {
                let q = format!("SELECT {} FROM queue_jobs WHERE id = $1", $crate::sql_queue::JOB_COLUMNS);
                let row = sqlx::query(&q).bind(id.to_string()).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::queue_job_from_row).transpose()
            }

            async fn jobs(&self, f: &$crate::queue::JobFilter) -> $crate::queue::QueueResult<Vec<$crate::queue::Job>> {
                let limit = $crate::sql_queue::check_list_limit(f.limit)?;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!("SELECT {} FROM queue_jobs WHERE 1 = 1", $crate::sql_queue::JOB_COLUMNS));
                if let Some(p) = f.parent {
                    qb.push(" AND parent_id = ").push_bind(p.to_string());
                }
                if let Some(q) = &f.queue {
                    qb.push(" AND queue = ").push_bind(q.as_str().to_owned());
                }
                if let Some(s) = f.state {
                    qb.push(" AND state = ").push_bind(s.as_str());
                }
                if let Some(a) = f.after {
                    qb.push(" AND id > ").push_bind(a.to_string());
                }
                qb.push(" ORDER BY id LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::queue_job_from_row).collect()
            }

            async fn job_counts(&self, f: &$crate::queue::CountFilter) -> $crate::queue::QueueResult<$crate::queue::QueueCounts> {
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT state, COUNT(*) FROM queue_jobs WHERE 1 = 1");
                if let Some(p) = f.parent {
                    qb.push(" AND parent_id = ").push_bind(p.to_string());
                }
                if let Some(q) = &f.queue {
                    qb.push(" AND queue = ").push_bind(q.as_str().to_owned());
                }
                qb.push(" GROUP BY state");
                let rows: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *self.read_conn().await?).await?;
                let mut c = $crate::queue::QueueCounts::default();
                for (state, n) in rows {
                    let n = u64::try_from(n).unwrap_or(0);
                    match state.parse::<kai_core::queue::JobState>() {
                        Ok(kai_core::queue::JobState::Queued) => c.queued = n,
                        Ok(kai_core::queue::JobState::Running) => c.running = n,
                        Ok(kai_core::queue::JobState::Succeeded) => c.succeeded = n,
                        Ok(kai_core::queue::JobState::Dead) => c.dead = n,
                        Ok(kai_core::queue::JobState::Cancelled) => c.cancelled = n,
                        Err(_) => return Err($crate::StoreError::Corrupt("bad job state".into()).into()),
                    }
                }
                Ok(c)
            }

            async fn next_wakeup(&self, queues: &[kai_core::queue::QueueName]) -> $crate::queue::QueueResult<Option<i64>> {
                if queues.is_empty() {
                    return Ok(None);
                }
                self.next_wakeup_read(queues).await
            }

            async fn set_concurrency_limit(
                &self,
                scope: &$crate::queue::LimitScope,
                max_running: Option<u32>,
            ) -> $crate::queue::QueueResult<()> {
                let name = $crate::sql_queue::scope_name(scope);
                match max_running {
                    Some(n) => {
                        sqlx::query(
                            "INSERT INTO queue_limits (scope, max_running) VALUES ($1, $2) \
                             ON CONFLICT (scope) DO UPDATE SET max_running = excluded.max_running",
                        )
                        .bind(name)
                        .bind(i64::from(n))
                        .execute(&mut *self.write_conn().await?)
                        .await?;
                        self.durable().await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM queue_limits WHERE scope = $1").bind(name).execute(&mut *self.write_conn().await?).await?;
                        self.durable().await?;
                    }
                }
                Ok(())
            }

            async fn concurrency_limits(&self) -> $crate::queue::QueueResult<Vec<($crate::queue::LimitScope, u32)>> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as("SELECT scope, max_running FROM queue_limits ORDER BY scope").fetch_all(&mut *self.read_conn().await?).await?;
                rows.into_iter()
                    .map(|(s, n)| Ok(($crate::sql_queue::scope_of(&s)?, u32::try_from(n).unwrap_or(u32::MAX))))
                    .collect()
            }

            async fn begin_effect(
                &self,
                lease: &$crate::queue::Lease,
                key: &kai_core::queue::EffectKey,
                now_us: i64,
            ) -> $crate::queue::QueueResult<$crate::queue::EffectStart> {
                use $crate::queue::{EffectStart, QueueError};
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let attempt: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT attempts FROM queue_jobs WHERE id = $1 AND lease_id = $2 AND state = 'running'",
                    $for_share
                ))
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .fetch_optional(&mut *tx)
                .await?;
                let attempt = attempt.ok_or(QueueError::LeaseLost)?;
                let inserted = sqlx::query(
                    "INSERT INTO queue_effects (effect_key, job_id, lease_id, attempt, started_at_us) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (effect_key) DO NOTHING",
                )
                .bind(key.as_str())
                .bind(lease.job.to_string())
                .bind(lease.token.to_string())
                .bind(attempt)
                .bind(now_us)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let start = if inserted == 1 {
                    EffectStart::Proceed
                } else {
                    let (result, started, before): (Option<String>, i64, i64) = sqlx::query_as(
                        "SELECT result, started_at_us, attempt FROM queue_effects WHERE effect_key = $1",
                    )
                    .bind(key.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                    match result {
                        Some(r) => EffectStart::Done($crate::sql_queue::json_of(&r, "bad effect result")?),
                        None => {
                            sqlx::query(
                                "UPDATE queue_effects SET job_id = $1, lease_id = $2, attempt = $3, started_at_us = $4 WHERE effect_key = $5",
                            )
                            .bind(lease.job.to_string())
                            .bind(lease.token.to_string())
                            .bind(attempt)
                            .bind(now_us)
                            .bind(key.as_str())
                            .execute(&mut *tx)
                            .await?;
                            EffectStart::Unknown { started_at_us: started, attempt: u32::try_from(before).unwrap_or(0) }
                        }
                    }
                };
                tx.commit().await?;
                drop(w);
                // Before the caller acts on the outside world: never deferred.
                self.flush_now().await?;
                Ok(start)
            }

            async fn finish_effect(
                &self,
                lease: &$crate::queue::Lease,
                key: &kai_core::queue::EffectKey,
                result: &serde_json::Value,
                now_us: i64,
            ) -> $crate::queue::QueueResult<$crate::queue::EffectFinish> {
                use $crate::queue::{EffectFinish, QueueError};
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let attempt: Option<i64> = sqlx::query_scalar("SELECT attempts FROM queue_jobs WHERE id = $1")
                    .bind(lease.job.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                let attempt = attempt.ok_or(QueueError::JobNotFound)?;
                let recorded =
                    Self::queue_effect_upsert(&mut tx, key, &lease.job, Some(lease.token.to_string()), attempt, result, now_us).await?;
                let out = if recorded {
                    EffectFinish::Recorded
                } else {
                    let r: Option<String> = sqlx::query_scalar("SELECT result FROM queue_effects WHERE effect_key = $1")
                        .bind(key.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                    let r = r.ok_or_else(|| $crate::StoreError::Corrupt("effect done without a result".into()))?;
                    EffectFinish::AlreadyDone($crate::sql_queue::json_of(&r, "bad effect result")?)
                };
                tx.commit().await?;
                drop(w);
                // Before the caller acts on the outside world: never deferred.
                self.flush_now().await?;
                Ok(out)
            }

            async fn effect(&self, key: &kai_core::queue::EffectKey) -> $crate::queue::QueueResult<Option<$crate::queue::EffectRecord>> {
                let row: Option<(String, Option<String>, i64, i64, Option<i64>)> = sqlx::query_as(
                    "SELECT job_id, result, attempt, started_at_us, done_at_us FROM queue_effects WHERE effect_key = $1",
                )
                .bind(key.as_str())
                .fetch_optional(&mut *self.read_conn().await?)
                .await?;
                let Some((job, result, attempt, started_at_us, done_at_us)) = row else { return Ok(None) };
                let corrupt = |what: &str| $crate::StoreError::Corrupt(format!("effect: {what}"));
                Ok(Some($crate::queue::EffectRecord {
                    key: key.clone(),
                    job: job.parse().map_err(|_| corrupt("bad job id"))?,
                    result: result.as_deref().map(|r| $crate::sql_queue::json_of(r, "bad effect result")).transpose()?,
                    attempt: u32::try_from(attempt).map_err(|_| corrupt("bad attempt"))?,
                    started_at_us,
                    done_at_us,
                }))
            }

            async fn purge_finished(&self, before_us: i64, limit: u32) -> $crate::queue::QueueResult<u64> {
                let limit = $crate::sql_queue::check_list_limit(limit)?;
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM queue_jobs WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at_us < $1 \
                     ORDER BY finished_at_us LIMIT $2",
                )
                .bind(before_us)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if ids.is_empty() {
                    return Ok(0);
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM queue_effects WHERE job_id");
                Self::queue_push_in(&mut qb, ids.iter().cloned());
                qb.build().execute(&mut *tx).await?;
                let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM queue_jobs WHERE id");
                Self::queue_push_in(&mut qb, ids);
                let n = qb.build().execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(n)
            }
        }
    };
}

pub(crate) use impl_queue_ops;
