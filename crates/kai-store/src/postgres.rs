//! PostgreSQL backend, for nodes that outgrow one file or share a database server.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::error::{StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL store.
pub(crate) struct PgStore {
    pool: sqlx::PgPool,
    /// The same pool: PostgreSQL runs concurrent writers itself.
    writer: sqlx::PgPool,
}

fn options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|_| StoreError::Config(format!("bad postgres url {}", crate::redact_url(url))))
}

fn check_schema_name(schema: &str) -> StoreResult<()> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok { Ok(()) } else { Err(StoreError::Config(format!("bad schema name {schema:?}"))) }
}

impl PgStore {
    pub(crate) async fn open(
        url: &str,
        max_connections: u32,
        schema: Option<&str>,
    ) -> StoreResult<Self> {
        let mut opts = options(url)?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            let admin = PgPoolOptions::new().max_connections(1).connect_with(options(url)?).await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&admin).await?;
            admin.close().await;
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self { writer: pool.clone(), pool })
    }

    /// A connection from the pool.
    async fn read_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// A connection from the pool (PostgreSQL runs concurrent writers itself).
    async fn write_conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        self.writer.acquire().await
    }

    /// PostgreSQL's commit is already durable (and group-committed by the server).
    #[allow(clippy::unused_async)]
    async fn durable(&self) -> StoreResult<()> {
        Ok(())
    }

    #[allow(clippy::unused_async)]
    async fn flush_now(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// What SQLite runs on its writer thread or in place (`sqlite/hot.rs`), through the pool here.
impl PgStore {
    async fn audit_append_tx(
        &self,
        entries: &[kai_crypto::audit::Entry],
        checkpoint: Option<&kai_crypto::audit::Checkpoint>,
        frontier: Option<&str>,
    ) -> StoreResult<()> {
        use crate::sql::i64_of;
        const CHUNK: usize = 500;
        let insert = |chunk: &[kai_crypto::audit::Entry]| -> crate::StoreResult<sqlx::QueryBuilder<'static, sqlx::Postgres>> {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
                "INSERT INTO audit_entries ({}) ",
                crate::sql::AUDIT_COLUMNS
            ));
            let mut bad = None;
            qb.push_values(chunk, |mut b, e| {
                if let Err(err) = crate::sql::entry_is_sane(e) {
                    bad = Some(err);
                }
                b.push_bind(i64_of(e.seq).unwrap_or(i64::MAX))
                    .push_bind(e.timestamp_us)
                    .push_bind(e.actor.clone())
                    .push_bind(e.action.clone())
                    .push_bind(e.target.clone())
                    .push_bind(e.outcome.clone())
                    .push_bind(e.details.clone())
                    .push_bind(e.prev_hash.to_vec())
                    .push_bind(e.signer.clone())
                    .push_bind(e.hash.to_vec())
                    .push_bind(e.signature.to_vec());
            });
            match bad {
                Some(err) => Err(err),
                None => Ok(qb),
            }
        };
        // Entries alone: one statement is its own transaction.
        if checkpoint.is_none() && frontier.is_none() && entries.len() <= CHUNK {
            if entries.is_empty() {
                return Ok(());
            }
            insert(entries)?.build().execute(&mut *self.write_conn().await?).await?;
            return Ok(());
        }
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        for chunk in entries.chunks(CHUNK) {
            insert(chunk)?.build().execute(&mut *tx).await?;
        }
        if let Some(cp) = checkpoint {
            sqlx::query(
                "INSERT INTO audit_checkpoints (size, root, timestamp_us, signer, signature) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(i64_of(cp.size)?)
            .bind(cp.root.to_vec())
            .bind(cp.timestamp_us)
            .bind(cp.signer.clone())
            .bind(cp.signature.to_vec())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(frontier) = frontier {
            sqlx::query("INSERT INTO node_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(crate::AUDIT_FRONTIER_KEY)
                .bind(frontier)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn events_append_tx(&self, events: &[kai_core::Envelope]) -> StoreResult<Vec<u64>> {
        use sqlx::Row as _;
        // One multi-row statement per chunk (6 binds a row stays far below both
        // databases' bind limits); offsets are matched to events by id, since neither
        // database promises an order for `RETURNING`.
        const CHUNK: usize = 200;
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let mut offsets: std::collections::HashMap<String, i64> =
            std::collections::HashMap::with_capacity(events.len());
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        for (chunk, chunk_ids) in events.chunks(CHUNK).zip(ids.chunks(CHUNK)) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO events (id, type, agent, task_id, payload, timestamp_us) ",
            );
            qb.push_values(chunk.iter().zip(chunk_ids), |mut b, (e, id)| {
                b.push_bind(id.clone())
                    .push_bind(e.kind.as_str().to_owned())
                    .push_bind(e.agent.as_ref().map(|a| a.as_str().to_owned()))
                    .push_bind(e.task_id.clone())
                    .push_bind(e.payload.to_string())
                    .push_bind(e.timestamp.timestamp_micros());
            });
            qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id, event_offset");
            for row in qb.build().fetch_all(&mut *tx).await? {
                offsets.insert(row.try_get("id")?, row.try_get("event_offset")?);
            }
        }
        // Already stored (a retried publish): their existing offsets.
        let known: Vec<&String> = ids.iter().filter(|id| !offsets.contains_key(*id)).collect();
        for chunk in known.chunks(500) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT id, event_offset FROM events WHERE id IN (",
            );
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind((*id).clone());
            }
            qb.push(")");
            for row in qb.build().fetch_all(&mut *tx).await? {
                offsets.insert(row.try_get("id")?, row.try_get("event_offset")?);
            }
        }
        tx.commit().await?;
        drop(w);
        ids.iter()
            .map(|id| {
                let offset = offsets.get(id).copied().ok_or_else(|| {
                    crate::StoreError::Corrupt(format!("event {id} was neither stored nor found"))
                })?;
                crate::sql::u64_of(offset, "offset")
            })
            .collect()
    }

    async fn next_wakeup_read(
        &self,
        queues: &[kai_core::queue::QueueName],
    ) -> crate::queue::QueueResult<Option<i64>> {
        let names = || queues.iter().map(|q| q.as_str().to_owned());
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT (SELECT MIN(run_at_us) FROM queue_jobs WHERE state = 'queued' AND queue",
        );
        Self::queue_push_in(&mut qb, names());
        qb.push("), (SELECT MIN(lease_until_us) FROM queue_jobs WHERE state = 'running' AND queue");
        Self::queue_push_in(&mut qb, names());
        qb.push(")");
        let (ready, lease): (Option<i64>, Option<i64>) =
            qb.build_query_as().fetch_one(&mut *self.read_conn().await?).await?;
        Ok(match (ready, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    async fn close_all(&self) {
        self.pool.close().await;
    }

    async fn task_read(&self, id: &str) -> StoreResult<Option<crate::TaskRow>> {
        let row = sqlx::query(crate::sql_tasks::TASK)
            .bind(id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await?;
        row.as_ref().map(Self::task_from_row).transpose()
    }

    async fn step_read(&self, task_id: &str, step_id: &str) -> StoreResult<Option<crate::StepRow>> {
        let row = sqlx::query("SELECT * FROM steps WHERE task_id = $1 AND step_id = $2")
            .bind(task_id)
            .bind(step_id)
            .fetch_optional(&mut *self.read_conn().await?)
            .await?;
        row.as_ref().map(Self::step_from_row).transpose()
    }

    async fn steps_read(&self, task_id: &str) -> StoreResult<Vec<crate::StepRow>> {
        let rows = sqlx::query("SELECT * FROM steps WHERE task_id = $1 ORDER BY step_id")
            .bind(task_id)
            .fetch_all(&mut *self.read_conn().await?)
            .await?;
        rows.iter().map(Self::step_from_row).collect()
    }

    async fn plans_read(&self, task_id: &str) -> StoreResult<Vec<crate::PlanRow>> {
        let rows = sqlx::query(crate::sql_tasks::PLANS)
            .bind(task_id)
            .fetch_all(&mut *self.read_conn().await?)
            .await?;
        rows.iter().map(Self::plan_from_row).collect()
    }

    async fn plan_read(&self, task_id: &str, version: i64) -> StoreResult<Option<crate::PlanRow>> {
        let row = sqlx::query(crate::sql_tasks::PLAN)
            .bind(task_id)
            .bind(version)
            .fetch_optional(&mut *self.read_conn().await?)
            .await?;
        row.as_ref().map(Self::plan_from_row).transpose()
    }

    async fn questions_read(&self, task_id: &str) -> StoreResult<Vec<crate::QuestionRow>> {
        let rows = sqlx::query(crate::sql_tasks::QUESTIONS)
            .bind(task_id)
            .fetch_all(&mut *self.read_conn().await?)
            .await?;
        rows.iter().map(Self::question_from_row).collect()
    }

    async fn task_status_tx(&self, c: crate::sql_tasks::TaskStatusChange<'_>) -> StoreResult<bool> {
        let done = sqlx::query(crate::sql_tasks::SET_TASK_STATUS)
            .bind(c.id)
            .bind(c.status)
            .bind(c.result)
            .bind(c.error)
            .bind(c.finished)
            .bind(c.at_us)
            .bind(c.from)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn step_status_tx(
        &self,
        task_id: &str,
        step_id: &str,
        from: &str,
        to: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(crate::sql_tasks::SET_STEP_STATUS)
            .bind(task_id)
            .bind(step_id)
            .bind(from)
            .bind(to)
            .execute(&mut *self.write_conn().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_task_tx(
        &self,
        task: &crate::TaskRow,
        plan: Option<&crate::PlanRow>,
        job: &crate::queue::NewJob,
        now_us: i64,
    ) -> StoreResult<Option<crate::TaskRow>> {
        use crate::sql_tasks::{INSERT_PLAN, INSERT_TASK, bind_plan, bind_task};
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        let inserted = bind_task!(sqlx::query(INSERT_TASK), task).execute(&mut *tx).await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        if let Some(p) = plan
            && bind_plan!(sqlx::query(INSERT_PLAN), p).execute(&mut *tx).await?.rows_affected() == 0
        {
            return Err(crate::sql_tasks::plan_exists(p.version));
        }
        Self::queue_insert(&mut tx, std::slice::from_ref(job), now_us)
            .await
            .map_err(crate::sql_tasks::insert_error)?;
        let row = sqlx::query(crate::sql_tasks::TASK).bind(&task.id).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Self::task_from_row(&row).map(Some)
    }

    async fn approve_plan_tx(
        &self,
        task_id: &str,
        version: i64,
        steps: &[crate::StepRow],
        at_us: i64,
    ) -> StoreResult<()> {
        use crate::sql_tasks::{
            APPROVE_PLAN, DELETE_STEPS, INSERT_STEP, SET_PLAN_VERSION, SUPERSEDE_PLANS,
        };
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        let done = sqlx::query(APPROVE_PLAN).bind(task_id).bind(version).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(crate::sql_tasks::not_awaiting(version));
        }
        sqlx::query(SUPERSEDE_PLANS).bind(task_id).bind(version).execute(&mut *tx).await?;
        sqlx::query(SET_PLAN_VERSION)
            .bind(task_id)
            .bind(version)
            .bind(at_us)
            .execute(&mut *tx)
            .await?;
        sqlx::query(DELETE_STEPS).bind(task_id).execute(&mut *tx).await?;
        for s in steps {
            sqlx::query(INSERT_STEP)
                .bind(&s.task_id)
                .bind(&s.step_id)
                .bind(s.plan_version)
                .bind(&s.agent)
                .bind(&s.status)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn step_outputs_read(&self, task_id: &str) -> StoreResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(crate::sql_tasks::STEP_OUTPUTS)
            .bind(task_id)
            .fetch_all(&mut *self.read_conn().await?)
            .await?)
    }

    async fn succeed_tx(
        &self,
        lease: &crate::queue::Lease,
        result: String,
        now_us: i64,
    ) -> crate::queue::QueueResult<()> {
        let done = sqlx::query(crate::sql_queue::SUCCEED)
            .bind(result)
            .bind(now_us)
            .bind(lease.job.to_string())
            .bind(lease.token.to_string())
            .execute(&mut *self.write_conn().await?)
            .await?;
        if done.rows_affected() == 0 { Err(crate::queue::QueueError::LeaseLost) } else { Ok(()) }
    }

    async fn start_step_tx(
        &self,
        s: &crate::StepRow,
        u: crate::TaskUsage,
        at_us: i64,
    ) -> StoreResult<crate::TaskRow> {
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        Self::write_step(&mut *tx, s).await?;
        let row = Self::add_usage(&mut tx, &s.task_id, u, at_us).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn task_call_tx(
        &self,
        id: &str,
        rows: &[crate::UsageRow],
        u: crate::TaskUsage,
        at_us: i64,
    ) -> StoreResult<crate::TaskRow> {
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        for r in rows {
            Self::insert_usage(&mut tx, r).await?;
        }
        let row = Self::add_usage(&mut tx, id, u, at_us).await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn claim_tx(
        &self,
        req: &crate::queue::ClaimRequest,
        now_us: i64,
    ) -> crate::queue::QueueResult<Vec<crate::queue::ClaimedJob>> {
        self.queue_claim(req, now_us).await
    }

    async fn finish_step_tx(
        &self,
        step: &crate::StepRow,
        follow: crate::FollowUps,
        now_us: i64,
    ) -> StoreResult<(Vec<crate::StepRow>, Vec<String>)> {
        let mut w = self.write_conn().await?;
        let mut tx = w.begin().await?;
        // Serializes the finishing steps of one task.
        sqlx::query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE")
            .bind(&step.task_id)
            .execute(&mut *tx)
            .await?;
        Self::write_step(&mut *tx, step).await?;
        let rows = sqlx::query("SELECT * FROM steps WHERE task_id = $1 ORDER BY step_id")
            .bind(&step.task_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut steps = rows.iter().map(Self::step_from_row).collect::<StoreResult<Vec<_>>>()?;
        let mut queued = Vec::new();
        let mut jobs = Vec::new();
        for (id, job) in follow(&steps) {
            let done = sqlx::query(crate::sql_tasks::PROMOTE_STEP)
                .bind(&step.task_id)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                if let Some(s) = steps.iter_mut().find(|s| s.step_id == id) {
                    s.status = "queued".into();
                }
                queued.push(id);
                jobs.push(job);
            }
        }
        if !jobs.is_empty() {
            Self::queue_insert(&mut tx, &jobs, now_us)
                .await
                .map_err(crate::sql_tasks::insert_error)?;
        }
        tx.commit().await?;
        Ok((steps, queued))
    }
}

pub(crate) async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
    check_schema_name(schema)?;
    let admin = PgPoolOptions::new().max_connections(1).connect_with(options(url)?).await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

crate::sql::impl_store!(PgStore, sqlx::Postgres, "postgres");
crate::sql_chat::impl_chat_store!(PgStore, sqlx::Postgres);
crate::sql_tasks::impl_task_store!(PgStore, sqlx::Postgres);
crate::sql_library::impl_library_store!(PgStore, sqlx::Postgres);
crate::sql_memory::impl_memory_store!(PgStore, sqlx::Postgres);
crate::sql_security::impl_security_store!(PgStore, sqlx::Postgres);
crate::sql_queue::impl_queue_store!(PgStore, sqlx::Postgres, begin: "BEGIN", skip_locked: " FOR UPDATE SKIP LOCKED", for_update: " FOR UPDATE", for_share: " FOR SHARE");
