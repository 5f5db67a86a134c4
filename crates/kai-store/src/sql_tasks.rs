//! SQL for agents, tasks, plans and steps, shared by both backends like `sql.rs`.

macro_rules! impl_task_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn agent_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::AgentRow> {
                use sqlx::Row as _;
                Ok($crate::AgentRow {
                    id: r.try_get("id")?,
                    definition: r.try_get("definition")?,
                    staged: r.try_get("staged")?,
                    state: r.try_get("state")?,
                    builtin: r.try_get::<i64, _>("builtin")? != 0,
                    did: r.try_get("did")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                })
            }

            fn task_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::TaskRow> {
                use sqlx::Row as _;
                Ok($crate::sql_tasks::task_row!(r.try_get))
            }

            /// For a task that was not inserted: the stored one with its idempotency key, else
            /// `Conflict` (its id is taken).
            async fn task_by_key(&self, t: &$crate::TaskRow) -> $crate::StoreResult<$crate::TaskRow> {
                let existing = match &t.idempotency_key {
                    Some(k) => sqlx::query("SELECT * FROM tasks WHERE idempotency_key = $1").bind(k).fetch_optional(&mut *self.read_conn().await?).await?,
                    None => None,
                };
                match existing {
                    Some(row) => Self::task_from_row(&row),
                    None => Err($crate::StoreError::Conflict(format!("task {} already exists", t.id))),
                }
            }

            #[allow(dead_code, reason = "SQLite reads plans with rusqlite (sqlite/hot.rs)")]
            fn plan_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::PlanRow> {
                use sqlx::Row as _;
                Ok($crate::sql_tasks::plan_row!(r.try_get))
            }

            #[allow(dead_code, reason = "SQLite reads steps with rusqlite (sqlite/hot.rs)")]
            fn step_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::StepRow> {
                use sqlx::Row as _;
                Ok($crate::sql_tasks::step_row!(r.try_get))
            }

            fn question_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::QuestionRow> {
                use sqlx::Row as _;
                Ok($crate::sql_tasks::question_row!(r.try_get))
            }

            fn message_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::AgentMessageRow> {
                use sqlx::Row as _;
                Ok($crate::AgentMessageRow {
                    id: r.try_get("id")?,
                    from_agent: r.try_get("from_agent")?,
                    to_agent: r.try_get("to_agent")?,
                    task_id: r.try_get("task_id")?,
                    payload: r.try_get("payload")?,
                    status: r.try_get("status")?,
                    created_at_us: r.try_get("created_at_us")?,
                    delivered_at_us: r.try_get("delivered_at_us")?,
                })
            }

            fn workflow_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::WorkflowRow> {
                use sqlx::Row as _;
                Ok($crate::WorkflowRow {
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    definition: r.try_get("definition")?,
                    author: r.try_get("author")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }

            fn webhook_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::WebhookRow> {
                use sqlx::Row as _;
                Ok($crate::WebhookRow {
                    name: r.try_get("name")?,
                    secret_name: r.try_get("secret_name")?,
                    target: r.try_get("target")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::TaskStore for $store {
            async fn insert_agent(&self, a: &$crate::AgentRow) -> $crate::StoreResult<()> {
                let done = sqlx::query(
                    "INSERT INTO agents (id, definition, staged, state, builtin, did, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (id) DO UPDATE SET definition = excluded.definition, updated_at_us = excluded.updated_at_us \
                     WHERE agents.builtin = 1 AND excluded.builtin = 1",
                )
                .bind(&a.id)
                .bind(&a.definition)
                .bind(&a.staged)
                .bind(&a.state)
                .bind(i64::from(a.builtin))
                .bind(&a.did)
                .bind(a.created_at_us)
                .bind(a.updated_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::Conflict(format!("agent {} already exists", a.id)));
                }
                Ok(())
            }

            async fn agent(&self, id: &str) -> $crate::StoreResult<Option<$crate::AgentRow>> {
                let row = sqlx::query("SELECT * FROM agents WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::agent_from_row).transpose()
            }

            async fn agents(&self) -> $crate::StoreResult<Vec<$crate::AgentRow>> {
                let rows = sqlx::query("SELECT * FROM agents ORDER BY id").fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::agent_from_row).collect()
            }

            async fn transition_agent(
                &self,
                id: &str,
                expected: &str,
                state: &str,
                definition: Option<&str>,
                staged: Option<Option<&str>>,
                at_us: i64,
            ) -> $crate::StoreResult<()> {
                let (set_staged, staged) = match staged {
                    Some(s) => (1i64, s),
                    None => (0i64, None),
                };
                let done = sqlx::query(
                    "UPDATE agents SET state = $3, definition = COALESCE($4, definition), \
                     staged = CASE WHEN $5 = 1 THEN $6 ELSE staged END, updated_at_us = $7 \
                     WHERE id = $1 AND state = $2",
                )
                .bind(id)
                .bind(expected)
                .bind(state)
                .bind(definition)
                .bind(set_staged)
                .bind(staged)
                .bind(at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                match self.agent(id).await? {
                    None => Err($crate::StoreError::NotFound),
                    Some(a) => Err($crate::StoreError::Conflict(format!("agent {id} is {}, not {expected}", a.state))),
                }
            }

            async fn insert_task(&self, t: &$crate::TaskRow) -> $crate::StoreResult<$crate::TaskRow> {
                let inserted = $crate::sql_tasks::bind_task!(sqlx::query($crate::sql_tasks::INSERT_TASK), t)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                self.durable().await?;
                if inserted.rows_affected() == 1 {
                    return self.task(&t.id).await?.ok_or($crate::StoreError::NotFound);
                }
                self.task_by_key(t).await
            }

            async fn create_task(
                &self,
                t: &$crate::TaskRow,
                plan: Option<&$crate::PlanRow>,
                job: &$crate::queue::NewJob,
                at_us: i64,
            ) -> $crate::StoreResult<$crate::TaskRow> {
                let created = self.create_task_tx(t, plan, job, at_us).await?;
                self.durable().await?;
                match created {
                    Some(row) => Ok(row),
                    None => self.task_by_key(t).await,
                }
            }

            async fn task(&self, id: &str) -> $crate::StoreResult<Option<$crate::TaskRow>> {
                self.task_read(id).await
            }

            async fn tasks(&self, f: &$crate::TaskFilter) -> $crate::StoreResult<Vec<$crate::TaskRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM tasks WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR status = $2) \
                     AND ($3 IS NULL OR created_at_us < $3) ORDER BY created_at_us DESC, id DESC LIMIT $4",
                )
                .bind(&f.owner)
                .bind(&f.status)
                .bind(f.before_us)
                .bind(i64::from(f.limit.clamp(1, 1000)))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::task_from_row).collect()
            }

            async fn set_task_status(
                &self,
                id: &str,
                status: &str,
                result: Option<&str>,
                error: Option<&str>,
                final_states: &[&str],
                at_us: i64,
            ) -> $crate::StoreResult<bool> {
                // Compare-and-set on the status read, retried if another writer moved it meanwhile.
                for _ in 0..16 {
                    let current = self.task(id).await?.ok_or($crate::StoreError::NotFound)?;
                    if final_states.contains(&current.status.as_str()) {
                        return Ok(false);
                    }
                    let finished = final_states.contains(&status).then_some(at_us);
                    let change = $crate::sql_tasks::TaskStatusChange { id, status, result, error, finished, at_us, from: &current.status };
                    let changed = self.task_status_tx(change).await?;
                    self.durable().await?;
                    if changed {
                        return Ok(true);
                    }
                }
                Err($crate::StoreError::Conflict(format!("task {id} keeps changing; try again")))
            }

            async fn reopen_task(&self, id: &str, from: &str, status: &str, at_us: i64) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE tasks SET status = $3, result = NULL, error = NULL, finished_at_us = NULL, \
                     updated_at_us = $4 WHERE id = $1 AND status = $2",
                )
                .bind(id)
                .bind(from)
                .bind(status)
                .bind(at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn add_task_usage(&self, id: &str, u: $crate::TaskUsage, at_us: i64) -> $crate::StoreResult<$crate::TaskRow> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let row = Self::add_usage(&mut tx, id, u, at_us).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(row)
            }

            async fn insert_plan(&self, p: &$crate::PlanRow) -> $crate::StoreResult<()> {
                let done = $crate::sql_tasks::bind_plan!(sqlx::query($crate::sql_tasks::INSERT_PLAN), p)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                self.durable().await?;
                if done.rows_affected() == 0 {
                    return Err($crate::sql_tasks::plan_exists(p.version));
                }
                Ok(())
            }

            async fn plan(&self, task_id: &str, version: i64) -> $crate::StoreResult<Option<$crate::PlanRow>> {
                self.plan_read(task_id, version).await
            }

            async fn plans(&self, task_id: &str) -> $crate::StoreResult<Vec<$crate::PlanRow>> {
                self.plans_read(task_id).await
            }

            async fn approve_plan(&self, task_id: &str, version: i64, steps: &[$crate::StepRow], at_us: i64) -> $crate::StoreResult<()> {
                self.approve_plan_tx(task_id, version, steps, at_us).await?;
                self.durable().await?;
                Ok(())
            }

            async fn set_plan_status(&self, task_id: &str, version: i64, status: &str) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE plans SET status = $3 WHERE task_id = $1 AND version = $2")
                    .bind(task_id)
                    .bind(version)
                    .bind(status)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn step(&self, task_id: &str, step_id: &str) -> $crate::StoreResult<Option<$crate::StepRow>> {
                self.step_read(task_id, step_id).await
            }

            async fn steps(&self, task_id: &str) -> $crate::StoreResult<Vec<$crate::StepRow>> {
                self.steps_read(task_id).await
            }

            async fn step_outputs(&self, task_id: &str) -> $crate::StoreResult<Vec<(String, String)>> {
                self.step_outputs_read(task_id).await
            }

            async fn update_step(&self, s: &$crate::StepRow) -> $crate::StoreResult<()> {
                // One statement: its own transaction.
                Self::write_step(&mut *self.write_conn().await?, s).await?;
                self.durable().await?;
                Ok(())
            }

            async fn record_task_call(&self, id: &str, rows: &[$crate::UsageRow], u: $crate::TaskUsage, at_us: i64) -> $crate::StoreResult<$crate::TaskRow> {
                let row = self.task_call_tx(id, rows, u, at_us).await?;
                self.durable().await?;
                Ok(row)
            }

            async fn finish_step(
                &self,
                step: &$crate::StepRow,
                follow: $crate::FollowUps,
                now_us: i64,
            ) -> $crate::StoreResult<(Vec<$crate::StepRow>, Vec<String>)> {
                let done = self.finish_step_tx(step, follow, now_us).await?;
                self.durable().await?;
                Ok(done)
            }

            async fn update_step_with_usage(&self, s: &$crate::StepRow, u: $crate::TaskUsage, at_us: i64) -> $crate::StoreResult<$crate::TaskRow> {
                let row = self.start_step_tx(s, u, at_us).await?;
                self.durable().await?;
                Ok(row)
            }

            async fn set_step_status_if(&self, task_id: &str, step_id: &str, from: &str, to: &str) -> $crate::StoreResult<bool> {
                let changed = self.step_status_tx(task_id, step_id, from, to).await?;
                self.durable().await?;
                Ok(changed)
            }

            async fn agent_step_counts(&self) -> $crate::StoreResult<Vec<(String, String, i64)>> {
                let rows = sqlx::query(
                    "SELECT agent, status, COUNT(*) AS n FROM steps WHERE status IN ('running', 'queued') GROUP BY agent, status",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter()
                    .map(|r| {
                        use sqlx::Row as _;
                        Ok((r.try_get("agent")?, r.try_get("status")?, r.try_get::<i64, _>("n")?))
                    })
                    .collect()
            }

            async fn insert_question(&self, q: &$crate::QuestionRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO task_questions (id, task_id, step_id, question, asked_at_us) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&q.id)
                .bind(&q.task_id)
                .bind(&q.step_id)
                .bind(&q.question)
                .bind(q.asked_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn question(&self, id: &str) -> $crate::StoreResult<Option<$crate::QuestionRow>> {
                let row = sqlx::query("SELECT * FROM task_questions WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::question_from_row).transpose()
            }

            async fn questions(&self, task_id: &str) -> $crate::StoreResult<Vec<$crate::QuestionRow>> {
                self.questions_read(task_id).await
            }

            async fn answer_question(&self, id: &str, answer: &str, by: &str, at_us: i64) -> $crate::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE task_questions SET answer = $2, answered_by = $3, answered_at_us = $4 WHERE id = $1 AND answer IS NULL",
                )
                .bind(id)
                .bind(answer)
                .bind(by)
                .bind(at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 1 {
                    return Ok(());
                }
                match self.question(id).await? {
                    None => Err($crate::StoreError::NotFound),
                    Some(_) => Err($crate::StoreError::Conflict("that question is already answered".into())),
                }
            }

            async fn insert_agent_message(&self, m: &$crate::AgentMessageRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO agent_messages (id, from_agent, to_agent, task_id, payload, status, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                )
                .bind(&m.id)
                .bind(&m.from_agent)
                .bind(&m.to_agent)
                .bind(&m.task_id)
                .bind(&m.payload)
                .bind(&m.status)
                .bind(m.created_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn queued_messages(&self, agent: &str, limit: u32) -> $crate::StoreResult<Vec<$crate::AgentMessageRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM agent_messages WHERE to_agent = $1 AND status = 'queued' ORDER BY created_at_us, id LIMIT $2",
                )
                .bind(agent)
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::message_row).collect()
            }

            async fn mark_delivered(&self, id: &str, at_us: i64) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE agent_messages SET status = 'delivered', delivered_at_us = $2 WHERE id = $1 AND status = 'queued'")
                    .bind(id)
                    .bind(at_us)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }

            async fn insert_workflow(&self, name: &str, definition: &str, author: &str, at_us: i64) -> $crate::StoreResult<i64> {
                for _ in 0..5 {
                    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) + 1 FROM workflows WHERE name = $1")
                        .bind(name)
                        .fetch_one(&mut *self.read_conn().await?)
                        .await?;
                    let done = sqlx::query(
                        "INSERT INTO workflows (name, version, definition, author, created_at_us) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(name)
                    .bind(next)
                    .bind(definition)
                    .bind(author)
                    .bind(at_us)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                    if done.rows_affected() == 1 {
                        return Ok(next);
                    }
                }
                Err($crate::StoreError::Conflict(format!("workflow {name} is being saved concurrently; try again")))
            }

            async fn workflow(&self, name: &str, version: Option<i64>) -> $crate::StoreResult<Option<$crate::WorkflowRow>> {
                let row = sqlx::query(
                    "SELECT * FROM workflows WHERE name = $1 AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1",
                )
                .bind(name)
                .bind(version)
                .fetch_optional(&mut *self.read_conn().await?)
                .await?;
                row.as_ref().map(Self::workflow_from_row).transpose()
            }

            async fn workflows(&self) -> $crate::StoreResult<Vec<$crate::WorkflowRow>> {
                let rows = sqlx::query(
                    "SELECT w.* FROM workflows w WHERE version = (SELECT MAX(version) FROM workflows v WHERE v.name = w.name) ORDER BY name",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::workflow_from_row).collect()
            }

            async fn upsert_webhook(&self, w: &$crate::WebhookRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO webhooks (name, secret_name, target, created_at_us) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET secret_name = excluded.secret_name, target = excluded.target",
                )
                .bind(&w.name)
                .bind(&w.secret_name)
                .bind(&w.target)
                .bind(w.created_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn webhook(&self, name: &str) -> $crate::StoreResult<Option<$crate::WebhookRow>> {
                let row = sqlx::query("SELECT * FROM webhooks WHERE name = $1").bind(name).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::webhook_from_row).transpose()
            }

            async fn webhooks(&self) -> $crate::StoreResult<Vec<$crate::WebhookRow>> {
                let rows = sqlx::query("SELECT * FROM webhooks ORDER BY name").fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::webhook_from_row).collect()
            }

            async fn delete_webhook(&self, name: &str) -> $crate::StoreResult<()> {
                let done = sqlx::query("DELETE FROM webhooks WHERE name = $1").bind(name).execute(&mut *self.write_conn().await?).await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn trigger_last_fired(&self, id: &str) -> $crate::StoreResult<Option<i64>> {
                Ok(sqlx::query_scalar("SELECT last_fired_us FROM trigger_state WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await?)
            }

            async fn mark_trigger_fired(&self, id: &str, expected: Option<i64>, at_us: i64) -> $crate::StoreResult<bool> {
                let done = match expected {
                    None => sqlx::query("INSERT INTO trigger_state (id, last_fired_us) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(id)
                        .bind(at_us)
                        .execute(&mut *self.write_conn().await?)
                        .await?,
                    Some(prev) => sqlx::query("UPDATE trigger_state SET last_fired_us = $3 WHERE id = $1 AND last_fired_us = $2")
                        .bind(id)
                        .bind(prev)
                        .bind(at_us)
                        .execute(&mut *self.write_conn().await?)
                        .await?,
                };
                self.durable().await?;
                Ok(done.rows_affected() == 1)
            }
        }

        impl $store {
            async fn write_step<'e>(ex: impl sqlx::Executor<'e, Database = $db>, s: &$crate::StepRow) -> $crate::StoreResult<()> {
                let done = sqlx::query($crate::sql_tasks::WRITE_STEP)
                .bind(&s.task_id)
                .bind(&s.step_id)
                .bind(&s.status)
                .bind(s.attempts)
                .bind(&s.output)
                .bind(&s.feedback)
                .bind(&s.error)
                .bind(s.tokens)
                .bind(s.tool_calls)
                .bind(s.started_at_us)
                .bind(s.finished_at_us)
                .execute(ex)
                .await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn add_usage(tx: &mut sqlx::Transaction<'_, $db>, id: &str, u: $crate::TaskUsage, at_us: i64) -> $crate::StoreResult<$crate::TaskRow> {
                let row = sqlx::query(&format!("{} RETURNING *", $crate::sql_tasks::ADD_USAGE))
                .bind(id)
                .bind(u.steps)
                .bind(u.tool_calls)
                .bind(u.tokens)
                .bind(u.cost_micros)
                .bind(at_us)
                .fetch_optional(&mut **tx)
                .await?;
                row.as_ref().map(Self::task_from_row).transpose()?.ok_or($crate::StoreError::NotFound)
            }
        }
    };
}

pub(crate) use impl_task_store;

/// A [`crate::TaskRow`] from a row of `tasks`, by column name: `task_row!(r.try_get)` for sqlx,
/// `task_row!(r.get)` for rusqlite (`sqlite/hot.rs`), so both drivers read one field list.
macro_rules! task_row {
    ($r:ident . $get:ident) => {
        $crate::TaskRow {
            id: $r.$get("id")?,
            owner: $r.$get("owner")?,
            goal: $r.$get("goal")?,
            status: $r.$get("status")?,
            source: $r.$get("source")?,
            workflow: $r.$get("workflow")?,
            budget: $r.$get("budget")?,
            used_steps: $r.$get("used_steps")?,
            used_tool_calls: $r.$get("used_tool_calls")?,
            used_tokens: $r.$get("used_tokens")?,
            used_cost_micros: $r.$get("used_cost_micros")?,
            result: $r.$get("result")?,
            error: $r.$get("error")?,
            plan_version: $r.$get("plan_version")?,
            parent_id: $r.$get("parent_id")?,
            depth: $r.$get("depth")?,
            idempotency_key: $r.$get("idempotency_key")?,
            created_at_us: $r.$get("created_at_us")?,
            updated_at_us: $r.$get("updated_at_us")?,
            finished_at_us: $r.$get("finished_at_us")?,
        }
    };
}
pub(crate) use task_row;

/// A [`crate::StepRow`] from a row of `steps`, as [`task_row`].
macro_rules! step_row {
    ($r:ident . $get:ident) => {
        $crate::StepRow {
            task_id: $r.$get("task_id")?,
            step_id: $r.$get("step_id")?,
            plan_version: $r.$get("plan_version")?,
            agent: $r.$get("agent")?,
            status: $r.$get("status")?,
            attempts: $r.$get("attempts")?,
            output: $r.$get("output")?,
            feedback: $r.$get("feedback")?,
            error: $r.$get("error")?,
            tokens: $r.$get("tokens")?,
            tool_calls: $r.$get("tool_calls")?,
            started_at_us: $r.$get("started_at_us")?,
            finished_at_us: $r.$get("finished_at_us")?,
        }
    };
}
pub(crate) use step_row;

/// A [`crate::PlanRow`] from a row of `plans`, as [`task_row`].
macro_rules! plan_row {
    ($r:ident . $get:ident) => {
        $crate::PlanRow {
            task_id: $r.$get("task_id")?,
            version: $r.$get("version")?,
            graph: $r.$get("graph")?,
            status: $r.$get("status")?,
            checked: $r.$get("checked")?,
            author: $r.$get("author")?,
            created_at_us: $r.$get("created_at_us")?,
        }
    };
}
pub(crate) use plan_row;

/// A [`crate::QuestionRow`] from a row of `task_questions`, as [`task_row`].
macro_rules! question_row {
    ($r:ident . $get:ident) => {
        $crate::QuestionRow {
            id: $r.$get("id")?,
            task_id: $r.$get("task_id")?,
            step_id: $r.$get("step_id")?,
            question: $r.$get("question")?,
            answer: $r.$get("answer")?,
            asked_at_us: $r.$get("asked_at_us")?,
            answered_at_us: $r.$get("answered_at_us")?,
            answered_by: $r.$get("answered_by")?,
        }
    };
}
pub(crate) use question_row;

/// A task's plans, oldest first (`$1` the task).
/// A task by id.
pub(crate) const TASK: &str = "SELECT * FROM tasks WHERE id = $1";

pub(crate) const PLANS: &str = "SELECT * FROM plans WHERE task_id = $1 ORDER BY version";
/// One plan (`$1` the task, `$2` the version).
pub(crate) const PLAN: &str = "SELECT * FROM plans WHERE task_id = $1 AND version = $2";
/// A task's questions, oldest first (`$1` the task).
pub(crate) const QUESTIONS: &str =
    "SELECT * FROM task_questions WHERE task_id = $1 ORDER BY asked_at_us, id";

/// A task's move to `status` if it is still in `from`, the status read before
/// (`set_task_status`'s compare-and-set, bound in field order to [`SET_TASK_STATUS`]).
pub(crate) struct TaskStatusChange<'a> {
    pub id: &'a str,
    pub status: &'a str,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
    pub finished: Option<i64>,
    pub at_us: i64,
    pub from: &'a str,
}

/// Moves a task to a status if it is still in the one read ([`TaskStatusChange`]).
/// A new task; nothing if its id or idempotency key is taken (binds: [`bind_task`]).
pub(crate) const INSERT_TASK: &str = "INSERT INTO tasks (id, owner, goal, status, source, workflow, budget, result, error, plan_version, \
     parent_id, depth, idempotency_key, created_at_us, updated_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING";

/// Binds a [`crate::TaskRow`]'s fields to [`INSERT_TASK`], in its order: `$q.bind(..)` for
/// sqlx, or a `params!` list for rusqlite with `bind_task!(params t)`.
macro_rules! bind_task {
    (params $t:ident) => {
        rusqlite::params![
            $t.id,
            $t.owner,
            $t.goal,
            $t.status,
            $t.source,
            $t.workflow,
            $t.budget,
            $t.result,
            $t.error,
            $t.plan_version,
            $t.parent_id,
            $t.depth,
            $t.idempotency_key,
            $t.created_at_us,
            $t.updated_at_us
        ]
    };
    ($q:expr, $t:expr) => {{
        let t = $t;
        $q.bind(&t.id)
            .bind(&t.owner)
            .bind(&t.goal)
            .bind(&t.status)
            .bind(&t.source)
            .bind(&t.workflow)
            .bind(&t.budget)
            .bind(&t.result)
            .bind(&t.error)
            .bind(t.plan_version)
            .bind(&t.parent_id)
            .bind(t.depth)
            .bind(&t.idempotency_key)
            .bind(t.created_at_us)
            .bind(t.updated_at_us)
    }};
}
pub(crate) use bind_task;

/// A new plan version; nothing if it exists (binds: [`bind_plan`]).
pub(crate) const INSERT_PLAN: &str = "INSERT INTO plans (task_id, version, graph, status, checked, author, created_at_us) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING";

/// Binds a [`crate::PlanRow`]'s fields to [`INSERT_PLAN`], as [`bind_task`] does.
macro_rules! bind_plan {
    (params $p:ident) => {
        rusqlite::params![
            $p.task_id,
            $p.version,
            $p.graph,
            $p.status,
            $p.checked,
            $p.author,
            $p.created_at_us
        ]
    };
    ($q:expr, $p:expr) => {{
        let p = $p;
        $q.bind(&p.task_id)
            .bind(p.version)
            .bind(&p.graph)
            .bind(&p.status)
            .bind(&p.checked)
            .bind(&p.author)
            .bind(p.created_at_us)
    }};
}
pub(crate) use bind_plan;

/// The error for a plan version that is stored already.
pub(crate) fn plan_exists(version: i64) -> crate::StoreError {
    crate::StoreError::Conflict(format!("plan version {version} exists"))
}

pub(crate) const SET_TASK_STATUS: &str = "UPDATE tasks SET status = $2, result = COALESCE($3, result), error = COALESCE($4, error), \
     finished_at_us = COALESCE($5, finished_at_us), updated_at_us = $6 WHERE id = $1 AND status = $7";

/// Moves a step from one status to another (`$1` task, `$2` step, `$3` from, `$4` to).
pub(crate) const SET_STEP_STATUS: &str =
    "UPDATE steps SET status = $4 WHERE task_id = $1 AND step_id = $2 AND status = $3";

/// The statements of an approval, in order (`$1` the task, `$2` the version, `$3` the time):
/// the plan approved if it was proposed, the others superseded, the task pointed at it, its old
/// steps dropped; then [`INSERT_STEP`] for each step of the plan.
pub(crate) const APPROVE_PLAN: &str = "UPDATE plans SET status = 'approved' WHERE task_id = $1 AND version = $2 AND status = 'proposed'";
pub(crate) const SUPERSEDE_PLANS: &str = "UPDATE plans SET status = 'superseded' WHERE task_id = $1 AND version <> $2 \
     AND status IN ('proposed', 'approved')";
pub(crate) const SET_PLAN_VERSION: &str =
    "UPDATE tasks SET plan_version = $2, updated_at_us = $3 WHERE id = $1";
pub(crate) const DELETE_STEPS: &str = "DELETE FROM steps WHERE task_id = $1";
/// A new step of an approved plan (task, step, plan version, agent, status).
pub(crate) const INSERT_STEP: &str = "INSERT INTO steps (task_id, step_id, plan_version, agent, status, attempts, tokens, tool_calls) \
     VALUES ($1, $2, $3, $4, $5, 0, 0, 0)";

/// Why [`APPROVE_PLAN`] changed nothing.
pub(crate) fn not_awaiting(version: i64) -> crate::StoreError {
    crate::StoreError::Conflict(format!("plan version {version} is not awaiting approval"))
}

/// A step row's columns, by task and step id (`$1`, `$2`; bound by `write_step`).
pub(crate) const WRITE_STEP: &str = "UPDATE steps SET status = $3, attempts = $4, output = $5, feedback = $6, error = $7, tokens = $8, \
     tool_calls = $9, started_at_us = $10, finished_at_us = $11 WHERE task_id = $1 AND step_id = $2";

/// Adds to a task's usage counters (`$1` the task, then steps, tool calls, tokens, cost, time).
pub(crate) const ADD_USAGE: &str = "UPDATE tasks SET used_steps = used_steps + $2, used_tool_calls = used_tool_calls + $3, \
     used_tokens = used_tokens + $4, used_cost_micros = used_cost_micros + $5, updated_at_us = $6 WHERE id = $1";

/// `(step_id, output)` of a task's steps that have an output (`$1` the task), by step id.
pub(crate) const STEP_OUTPUTS: &str =
    "SELECT step_id, output FROM steps WHERE task_id = $1 AND output IS NOT NULL ORDER BY step_id";

/// Marks a step that a finished one unblocked as queued (`$1` task, `$2` step), unless it moved.
pub(crate) const PROMOTE_STEP: &str =
    "UPDATE steps SET status = 'queued' WHERE task_id = $1 AND step_id = $2 AND status = 'pending'";

/// A follow-up job that could not be queued, as a store error (`finish_step`).
pub(crate) fn insert_error(e: crate::queue::QueueError) -> crate::StoreError {
    match e {
        crate::queue::QueueError::Store(s) => s,
        other => crate::StoreError::Conflict(other.to_string()),
    }
}
