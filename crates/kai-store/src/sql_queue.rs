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

pub(crate) use crate::sql_queue_rows::*;

macro_rules! impl_queue_store {
    ($store:ty, $db:ty, begin: $begin:literal, skip_locked: $skip_locked:literal, for_update: $for_update:literal, for_share: $for_share:literal) => {
        impl $store {
            fn queue_job_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::queue::QueueResult<$crate::queue::Job> {
                use sqlx::Row as _;
                $crate::sql_queue::raw_job!(r.try_get)
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
                tx: &mut <$db as sqlx::Database>::Connection,
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
                // Insert in idempotency-key order: concurrent batches sharing keys then take the
                // unique-index locks in the same order and cannot deadlock (PostgreSQL).
                let mut ordered: Vec<&$crate::sql_queue::PreparedJob> = prepared.iter().collect();
                ordered.sort_by(|a, b| a.idempotency_key.cmp(&b.idempotency_key));
                for chunk in ordered.chunks(200) {
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
                    for row in qb.build().fetch_all(&mut *tx).await? {
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
                    for row in qb.build().fetch_all(&mut *tx).await? {
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
                tx: &mut sqlx::Transaction<'_, $db>,
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
                let sql = format!(
                    "UPDATE queue_jobs SET {} WHERE state = 'running' AND id IN ({})",
                    $crate::sql_queue::REAP_SET,
                    $crate::sql_queue::placeholders(3, expired.len())
                );
                let mut reap = sqlx::query(&sql).bind($crate::sql_queue::LEASE_EXPIRED).bind(now_us);
                for id in expired {
                    reap = reap.bind(id);
                }
                reap.execute(&mut **tx).await?;
                Ok(())
            }

            /// Free slots per limited scope among `keys` (plus the global limit), locking the
            /// limit rows on PostgreSQL so claimers of the same key take turns.
            async fn queue_free_slots(
                tx: &mut sqlx::Transaction<'_, $db>,
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

            /// The claim: reap expired leases, pick candidates in order, admit them under the
            /// concurrency limits, take them under one new lease — one transaction.
            async fn queue_claim(
                &self,
                req: &$crate::queue::ClaimRequest,
                now_us: i64,
            ) -> $crate::queue::QueueResult<Vec<$crate::queue::ClaimedJob>> {
                use sqlx::Row as _;
                $crate::sql_queue::check_claim(req)?;
                let queues: Vec<String> = req.queues.iter().map(|q| q.as_str().to_owned()).collect();
                let lease_until_us = now_us.saturating_add($crate::sql_queue::duration_us(req.lease));
                let max = usize::try_from(req.max).unwrap_or(usize::MAX);
                let mut w = self.write_conn().await?;
                let mut tx = w.begin_with($begin).await?;
                Self::queue_reap(&mut tx, &queues, now_us).await?;
                let any_limits: bool = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM queue_limits")
                    .fetch_one(&mut *tx)
                    .await?
                    > 0;
                // With limits, look further than `max`: some candidates may be held back.
                let scan = if any_limits { (req.max * 4 + 16).min(1024) } else { req.max };
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, concurrency_key FROM queue_jobs WHERE state = 'queued' AND run_at_us <= ",
                );
                qb.push_bind(now_us).push(" AND queue");
                Self::queue_push_in(&mut qb, queues.iter().cloned());
                qb.push(" ORDER BY priority DESC, run_at_us, id LIMIT ").push_bind(i64::from(scan));
                qb.push($skip_locked);
                let rows = qb.build().fetch_all(&mut *tx).await?;
                let mut candidates: Vec<(String, Option<String>)> = Vec::with_capacity(rows.len());
                for r in &rows {
                    candidates.push((r.try_get("id")?, r.try_get("concurrency_key")?));
                }
                let admitted: Vec<usize> = if any_limits && !candidates.is_empty() {
                    let keys = candidates.iter().filter_map(|(_, k)| k.clone()).collect();
                    let (global, per_key) = Self::queue_free_slots(&mut tx, keys).await?;
                    kai_core::queue::admit(candidates.iter().map(|(_, k)| k.as_deref()), max, global, &per_key)
                } else {
                    (0..candidates.len().min(max)).collect()
                };
                if admitted.is_empty() {
                    // Nothing handed out: whatever was reaped needs no flush before returning.
                    tx.commit().await?;
                    drop(w);
                    return Ok(Vec::new());
                }
                let token = kai_core::ids::LeaseId::new();
                let sql = format!(
                    "UPDATE queue_jobs SET {} WHERE state = 'queued' AND id IN ({}) RETURNING {}",
                    $crate::sql_queue::TAKE_SET,
                    $crate::sql_queue::placeholders(5, admitted.len()),
                    $crate::sql_queue::JOB_COLUMNS
                );
                let mut take = sqlx::query(&sql).bind(token.to_string()).bind(lease_until_us).bind(req.worker.clone()).bind(now_us);
                for &i in &admitted {
                    take = take.bind(candidates[i].0.clone());
                }
                let mut claimed = std::collections::HashMap::new();
                for row in take.fetch_all(&mut *tx).await? {
                    let job = Self::queue_job_from_row(&row)?;
                    claimed.insert(job.id.to_string(), job);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(admitted
                    .iter()
                    .filter_map(|&i| claimed.remove(&candidates[i].0))
                    .map(|job| $crate::queue::ClaimedJob {
                        lease: $crate::queue::Lease { job: job.id, token },
                        job,
                        lease_until_us,
                    })
                    .collect())
                        }

            async fn queue_effect_upsert(
                tx: &mut sqlx::Transaction<'_, $db>,
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
