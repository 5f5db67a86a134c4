//! SQL for chat threads, shared by both backends like `sql.rs`.

/// `query` as a case-insensitive `LIKE` pattern matching it anywhere (wildcards escaped).
pub(crate) fn contains_pattern(query: &str) -> String {
    let mut p = String::with_capacity(query.len() + 2);
    p.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

macro_rules! impl_chat_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn thread_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::ThreadRow> {
                use sqlx::Row as _;
                Ok($crate::ThreadRow {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    title: r.try_get("title")?,
                    persona: r.try_get("persona")?,
                    head_id: r.try_get("head_id")?,
                    message_count: r.try_get("message_count")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                })
            }

            fn message_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::ChatMessageRow> {
                use sqlx::Row as _;
                Ok($crate::ChatMessageRow {
                    id: r.try_get("id")?,
                    thread_id: r.try_get("thread_id")?,
                    parent_id: r.try_get("parent_id")?,
                    seq: r.try_get("seq")?,
                    role: r.try_get("role")?,
                    content: r.try_get("content")?,
                    tool_calls: r.try_get("tool_calls")?,
                    tool_call_id: r.try_get("tool_call_id")?,
                    persona: r.try_get("persona")?,
                    meta: r.try_get("meta")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::ChatStore for $store {
            async fn insert_thread(&self, t: &$crate::ThreadRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO chat_threads (id, owner, title, persona, head_id, message_count, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $7)",
                )
                .bind(&t.id)
                .bind(&t.owner)
                .bind(&t.title)
                .bind(&t.persona)
                .bind(&t.head_id)
                .bind(t.created_at_us)
                .bind(t.updated_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn thread(&self, id: &str) -> $crate::StoreResult<Option<$crate::ThreadRow>> {
                let row = sqlx::query("SELECT * FROM chat_threads WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::thread_from_row).transpose()
            }

            async fn threads(&self, owner: &str, query: Option<&str>, limit: u32) -> $crate::StoreResult<Vec<$crate::ThreadRow>> {
                let pattern = query.map($crate::sql_chat::contains_pattern);
                let rows = sqlx::query(
                    "SELECT * FROM chat_threads t WHERE owner = $1 AND ($2 IS NULL OR LOWER(title) LIKE $2 ESCAPE '\\' \
                     OR EXISTS (SELECT 1 FROM chat_messages m WHERE m.thread_id = t.id AND LOWER(m.content) LIKE $2 ESCAPE '\\')) \
                     ORDER BY updated_at_us DESC, id DESC LIMIT $3",
                )
                .bind(owner)
                .bind(pattern)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::thread_from_row).collect()
            }

            async fn update_thread(
                &self,
                id: &str,
                title: Option<&str>,
                persona: Option<&str>,
                head_id: Option<&str>,
                at_us: i64,
            ) -> $crate::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE chat_threads SET title = COALESCE($2, title), persona = COALESCE($3, persona), \
                     head_id = COALESCE($4, head_id), updated_at_us = $5 WHERE id = $1",
                )
                .bind(id)
                .bind(title)
                .bind(persona)
                .bind(head_id)
                .bind(at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_thread(&self, id: &str) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("DELETE FROM chat_summaries WHERE thread_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM chat_messages WHERE thread_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM chat_threads WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn append_message(&self, m: &$crate::ChatMessageRow) -> $crate::StoreResult<i64> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let seq: Option<i64> = sqlx::query_scalar(
                    "UPDATE chat_threads SET message_count = message_count + 1, head_id = $2, updated_at_us = $3 \
                     WHERE id = $1 RETURNING message_count",
                )
                .bind(&m.thread_id)
                .bind(&m.id)
                .bind(m.created_at_us)
                .fetch_optional(&mut *tx)
                .await?;
                let seq = seq.ok_or($crate::StoreError::NotFound)?;
                sqlx::query(
                    "INSERT INTO chat_messages (id, thread_id, parent_id, seq, role, content, tool_calls, tool_call_id, persona, meta, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&m.id)
                .bind(&m.thread_id)
                .bind(&m.parent_id)
                .bind(seq)
                .bind(&m.role)
                .bind(&m.content)
                .bind(&m.tool_calls)
                .bind(&m.tool_call_id)
                .bind(&m.persona)
                .bind(&m.meta)
                .bind(m.created_at_us)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(seq)
            }

            async fn thread_messages(&self, thread_id: &str) -> $crate::StoreResult<Vec<$crate::ChatMessageRow>> {
                let rows = sqlx::query("SELECT * FROM chat_messages WHERE thread_id = $1 ORDER BY seq")
                    .bind(thread_id)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::message_from_row).collect()
            }

            async fn insert_summary(&self, s: &$crate::ChatSummaryRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO chat_summaries (id, thread_id, upto_id, covered, content, created_at_us) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id)
                .bind(&s.thread_id)
                .bind(&s.upto_id)
                .bind(&s.covered)
                .bind(&s.content)
                .bind(s.created_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn summaries(&self, thread_id: &str) -> $crate::StoreResult<Vec<$crate::ChatSummaryRow>> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT * FROM chat_summaries WHERE thread_id = $1 ORDER BY created_at_us, id")
                    .bind(thread_id)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::ChatSummaryRow {
                            id: r.try_get("id")?,
                            thread_id: r.try_get("thread_id")?,
                            upto_id: r.try_get("upto_id")?,
                            covered: r.try_get("covered")?,
                            content: r.try_get("content")?,
                            created_at_us: r.try_get("created_at_us")?,
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_chat_store;
