//! SQL for the prompt library and the artifact store, shared by both backends like `sql.rs`.
//! Multi-statement operations start with a write so that SQLite takes its write lock first (a
//! deferred transaction that reads before it writes can fail with `SQLITE_BUSY` under load).

use crate::{StoreError, StoreResult};

pub(crate) fn tags_json(tags: &[String]) -> String {
    serde_json::to_string(tags).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn tags_of(json: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))
}

/// A `LIKE` pattern matching a JSON tag array that contains `tag` (wildcards escaped).
pub(crate) fn tag_pattern(tag: &str) -> String {
    crate::sql_chat::contains_pattern(&format!("\"{tag}\""))
}

macro_rules! impl_library_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn lib_prompt_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::PromptRow> {
                use sqlx::Row as _;
                Ok($crate::PromptRow {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    tags: $crate::sql_library::tags_of(&r.try_get::<String, _>("tags")?)?,
                    latest_version: r.try_get("latest_version")?,
                    usage_count: r.try_get("usage_count")?,
                    rating_sum: r.try_get("rating_sum")?,
                    rating_count: r.try_get("rating_count")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                })
            }

            fn lib_version_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::PromptVersionRow> {
                use sqlx::Row as _;
                Ok($crate::PromptVersionRow {
                    prompt_id: r.try_get("prompt_id")?,
                    version: r.try_get("version")?,
                    template: r.try_get("template")?,
                    variables: r.try_get("variables")?,
                    description: r.try_get("description")?,
                    message: r.try_get("message")?,
                    author: r.try_get("author")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }

            fn lib_render_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::PromptRenderRow> {
                use sqlx::Row as _;
                Ok($crate::PromptRenderRow {
                    id: r.try_get("id")?,
                    prompt_id: r.try_get("prompt_id")?,
                    prompt_name: r.try_get("prompt_name")?,
                    version: r.try_get("version")?,
                    actor: r.try_get("actor")?,
                    ok: r.try_get("ok")?,
                    variables: r.try_get("variables")?,
                    output_bytes: r.try_get("output_bytes")?,
                    error: r.try_get("error")?,
                    at_us: r.try_get("at_us")?,
                })
            }

            fn lib_artifact_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::ArtifactRow> {
                use sqlx::Row as _;
                Ok($crate::ArtifactRow {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    name: r.try_get("name")?,
                    version: r.try_get("version")?,
                    digest: r.try_get("digest")?,
                    size: r.try_get("size")?,
                    content_type: r.try_get("content_type")?,
                    tags: $crate::sql_library::tags_of(&r.try_get::<String, _>("tags")?)?,
                    task_id: r.try_get("task_id")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }

            fn lib_share_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::ShareRow> {
                use sqlx::Row as _;
                Ok($crate::ShareRow {
                    id: r.try_get("id")?,
                    artifact_id: r.try_get("artifact_id")?,
                    token_hash: $crate::sql::arr(r.try_get("token_hash")?, "token_hash")?,
                    created_by: r.try_get("created_by")?,
                    created_at_us: r.try_get("created_at_us")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                    revoked_at_us: r.try_get("revoked_at_us")?,
                    uses: r.try_get("uses")?,
                    last_used_at_us: r.try_get("last_used_at_us")?,
                })
            }

            fn lib_note_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::NoteRow> {
                use sqlx::Row as _;
                Ok($crate::NoteRow {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                    tags: $crate::sql_library::tags_of(&r.try_get::<String, _>("tags")?)?,
                    task_id: r.try_get("task_id")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                })
            }

            fn lib_doc_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::SearchDocRow> {
                use sqlx::Row as _;
                Ok($crate::SearchDocRow {
                    doc_id: r.try_get("doc_id")?,
                    kind: r.try_get("kind")?,
                    ref_id: r.try_get("ref_id")?,
                    owner: r.try_get("owner")?,
                    title: r.try_get("title")?,
                    body: r.try_get("body")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::PromptStore for $store {
            async fn insert_prompt(&self, p: &$crate::PromptRow, v: &$crate::PromptVersionRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query(
                    "INSERT INTO prompts (id, name, description, tags, latest_version, usage_count, rating_sum, rating_count, created_by, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, 0, 0, 0, $6, $7, $8)",
                )
                .bind(&p.id)
                .bind(&p.name)
                .bind(&p.description)
                .bind($crate::sql_library::tags_json(&p.tags))
                .bind(v.version)
                .bind(&p.created_by)
                .bind(p.created_at_us)
                .bind(p.updated_at_us)
                .execute(&mut *tx)
                .await?;
                Self::lib_insert_version(&mut tx, v).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn prompt(&self, id: &str) -> $crate::StoreResult<Option<$crate::PromptRow>> {
                let row = sqlx::query("SELECT * FROM prompts WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::lib_prompt_from_row).transpose()
            }

            async fn prompt_by_name(&self, name: &str) -> $crate::StoreResult<Option<$crate::PromptRow>> {
                let row = sqlx::query("SELECT * FROM prompts WHERE name = $1").bind(name).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::lib_prompt_from_row).transpose()
            }

            async fn prompts(&self, q: &$crate::PromptQuery<'_>) -> $crate::StoreResult<Vec<$crate::PromptRow>> {
                let text = q.text.map($crate::sql_chat::contains_pattern);
                let tag = q.tag.map($crate::sql_library::tag_pattern);
                let order = if text.is_some() { "usage_count DESC, name" } else { "name" };
                let sql = format!(
                    "SELECT p.* FROM prompts p WHERE ($1 IS NULL OR LOWER(p.name) LIKE $1 ESCAPE '\\' \
                     OR LOWER(p.description) LIKE $1 ESCAPE '\\' OR LOWER(p.tags) LIKE $1 ESCAPE '\\' \
                     OR EXISTS (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id AND v.version = p.latest_version \
                                AND LOWER(v.template) LIKE $1 ESCAPE '\\')) \
                     AND ($2 IS NULL OR p.tags LIKE $2 ESCAPE '\\') ORDER BY {order} LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(text)
                    .bind(tag)
                    .bind(i64::from(q.limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_prompt_from_row).collect()
            }

            async fn add_prompt_version(&self, v: &$crate::PromptVersionRow) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let done = sqlx::query(
                    "UPDATE prompts SET latest_version = $2, description = $3, updated_at_us = $4 \
                     WHERE id = $1 AND latest_version = $5",
                )
                .bind(&v.prompt_id)
                .bind(v.version)
                .bind(&v.description)
                .bind(v.created_at_us)
                .bind(v.version - 1)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    let exists: Option<i64> = sqlx::query_scalar("SELECT latest_version FROM prompts WHERE id = $1")
                        .bind(&v.prompt_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    return Err(match exists {
                        None => $crate::StoreError::NotFound,
                        Some(latest) => $crate::StoreError::Conflict(format!(
                            "the prompt is at version {latest}; edit that version"
                        )),
                    });
                }
                Self::lib_insert_version(&mut tx, v).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn prompt_version(&self, prompt_id: &str, version: i64) -> $crate::StoreResult<Option<$crate::PromptVersionRow>> {
                let row = sqlx::query("SELECT * FROM prompt_versions WHERE prompt_id = $1 AND version = $2")
                    .bind(prompt_id)
                    .bind(version)
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await?;
                row.as_ref().map(Self::lib_version_from_row).transpose()
            }

            async fn prompt_versions(&self, prompt_id: &str) -> $crate::StoreResult<Vec<$crate::PromptVersionRow>> {
                let rows = sqlx::query("SELECT * FROM prompt_versions WHERE prompt_id = $1 ORDER BY version")
                    .bind(prompt_id)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_version_from_row).collect()
            }

            async fn set_prompt_tags(&self, id: &str, tags: &[String], at_us: i64) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE prompts SET tags = $2, updated_at_us = $3 WHERE id = $1")
                    .bind(id)
                    .bind($crate::sql_library::tags_json(tags))
                    .bind(at_us)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn rate_prompt(&self, id: &str, rater: &str, stars: i64, at_us: i64) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let exists = sqlx::query("UPDATE prompts SET updated_at_us = updated_at_us WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if exists.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                sqlx::query(
                    "INSERT INTO prompt_ratings (prompt_id, rater, stars, rated_at_us) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (prompt_id, rater) DO UPDATE SET stars = excluded.stars, rated_at_us = excluded.rated_at_us",
                )
                .bind(id)
                .bind(rater)
                .bind(stars)
                .bind(at_us)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE prompts SET rating_sum = (SELECT COALESCE(SUM(stars), 0) FROM prompt_ratings WHERE prompt_id = $1), \
                     rating_count = (SELECT COUNT(*) FROM prompt_ratings WHERE prompt_id = $1) WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn delete_prompt(&self, id: &str) -> $crate::StoreResult<()> {
                let done = sqlx::query("DELETE FROM prompts WHERE id = $1").bind(id).execute(&mut *self.write_conn().await?).await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn record_render(&self, r: &$crate::PromptRenderRow) -> $crate::StoreResult<i64> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO prompt_renders (prompt_id, prompt_name, version, actor, ok, variables, output_bytes, error, at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(&r.prompt_id)
                .bind(&r.prompt_name)
                .bind(r.version)
                .bind(&r.actor)
                .bind(r.ok)
                .bind(&r.variables)
                .bind(r.output_bytes)
                .bind(&r.error)
                .bind(r.at_us)
                .fetch_one(&mut *tx)
                .await?;
                if r.ok {
                    sqlx::query("UPDATE prompts SET usage_count = usage_count + 1 WHERE id = $1")
                        .bind(&r.prompt_id)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(id)
            }

            async fn renders(
                &self,
                actor: Option<&str>,
                prompt_id: Option<&str>,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::PromptRenderRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM prompt_renders WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR prompt_id = $2) \
                     AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
                )
                .bind(actor)
                .bind(prompt_id)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::lib_render_from_row).collect()
            }
        }

        impl $store {
            async fn lib_insert_version(
                tx: &mut sqlx::Transaction<'_, $db>,
                v: &$crate::PromptVersionRow,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO prompt_versions (prompt_id, version, template, variables, description, message, author, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&v.prompt_id)
                .bind(v.version)
                .bind(&v.template)
                .bind(&v.variables)
                .bind(&v.description)
                .bind(&v.message)
                .bind(&v.author)
                .bind(v.created_at_us)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn lib_insert_doc(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: &str,
                ref_id: &str,
                owner: &str,
                title: &str,
                body: &str,
            ) -> $crate::StoreResult<i64> {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO search_docs (kind, ref_id, owner, title, body) VALUES ($1, $2, $3, $4, $5) RETURNING doc_id",
                )
                .bind(kind)
                .bind(ref_id)
                .bind(owner)
                .bind(title)
                .bind(body)
                .fetch_one(&mut **tx)
                .await?;
                Ok(id)
            }
        }

        #[async_trait::async_trait]
        impl $crate::ArtifactStore for $store {
            async fn insert_artifact(&self, a: &$crate::ArtifactRow, text: Option<&str>) -> $crate::StoreResult<($crate::ArtifactRow, Option<i64>)> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                // One statement picks the next version and inserts it (atomic on SQLite; a
                // concurrent insert on PostgreSQL fails the unique index and is retried).
                let version: i64 = sqlx::query_scalar(
                    "INSERT INTO artifacts (id, owner, name, version, digest, size, content_type, tags, task_id, created_at_us) \
                     SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7, $8, $9 FROM artifacts WHERE owner = $2 AND name = $3 \
                     RETURNING version",
                )
                .bind(&a.id)
                .bind(&a.owner)
                .bind(&a.name)
                .bind(&a.digest)
                .bind(a.size)
                .bind(&a.content_type)
                .bind($crate::sql_library::tags_json(&a.tags))
                .bind(&a.task_id)
                .bind(a.created_at_us)
                .fetch_one(&mut *tx)
                .await?;
                let doc = match text {
                    Some(t) => Some(Self::lib_insert_doc(&mut tx, "artifact", &a.id, &a.owner, &a.name, t).await?),
                    None => None,
                };
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(($crate::ArtifactRow { version, ..a.clone() }, doc))
            }

            async fn artifact(&self, id: &str) -> $crate::StoreResult<Option<$crate::ArtifactRow>> {
                let row = sqlx::query("SELECT * FROM artifacts WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::lib_artifact_from_row).transpose()
            }

            async fn artifacts(&self, q: &$crate::ArtifactQuery<'_>) -> $crate::StoreResult<Vec<$crate::ArtifactRow>> {
                let latest = if q.latest_only {
                    "AND a.version = (SELECT MAX(b.version) FROM artifacts b WHERE b.owner = a.owner AND b.name = a.name)"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT a.* FROM artifacts a WHERE ($1 IS NULL OR a.owner = $1) AND ($2 IS NULL OR a.name = $2) \
                     AND ($3 IS NULL OR a.tags LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR a.task_id = $4) \
                     AND ($5 IS NULL OR a.created_at_us < $5) {latest} ORDER BY a.created_at_us DESC, a.id DESC LIMIT $6"
                );
                let rows = sqlx::query(&sql)
                    .bind(q.owner)
                    .bind(q.name)
                    .bind(q.tag.map($crate::sql_library::tag_pattern))
                    .bind(q.task_id)
                    .bind(q.before_us)
                    .bind(i64::from(q.limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_artifact_from_row).collect()
            }

            async fn artifact_versions(&self, owner: &str, name: &str) -> $crate::StoreResult<Vec<$crate::ArtifactRow>> {
                let rows = sqlx::query("SELECT * FROM artifacts WHERE owner = $1 AND name = $2 ORDER BY version")
                    .bind(owner)
                    .bind(name)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_artifact_from_row).collect()
            }

            async fn set_artifact_tags(&self, id: &str, tags: &[String]) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE artifacts SET tags = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::sql_library::tags_json(tags))
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn delete_artifact(&self, id: &str) -> $crate::StoreResult<$crate::DeletedArtifact> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let row = sqlx::query("DELETE FROM artifacts WHERE id = $1 RETURNING *")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                let row = Self::lib_artifact_from_row(&row)?;
                sqlx::query("DELETE FROM artifact_shares WHERE artifact_id = $1").bind(id).execute(&mut *tx).await?;
                let doc_id: Option<i64> = sqlx::query_scalar("DELETE FROM search_docs WHERE ref_id = $1 RETURNING doc_id")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let remaining_refs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM artifacts WHERE digest = $1")
                    .bind(&row.digest)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok($crate::DeletedArtifact { row, remaining_refs, doc_id })
            }

            async fn digest_refs(&self, digest: &str) -> $crate::StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM artifacts WHERE digest = $1").bind(digest).fetch_one(&mut *self.read_conn().await?).await?)
            }

            async fn insert_share(&self, s: &$crate::ShareRow) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO artifact_shares (id, artifact_id, token_hash, created_by, created_at_us, expires_at_us, revoked_at_us, uses, last_used_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, NULL)",
                )
                .bind(&s.id)
                .bind(&s.artifact_id)
                .bind(&s.token_hash[..])
                .bind(&s.created_by)
                .bind(s.created_at_us)
                .bind(s.expires_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn share(&self, id: &str) -> $crate::StoreResult<Option<$crate::ShareRow>> {
                let row = sqlx::query("SELECT * FROM artifact_shares WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::lib_share_from_row).transpose()
            }

            async fn share_by_hash(&self, hash: &[u8; 32]) -> $crate::StoreResult<Option<$crate::ShareRow>> {
                let row = sqlx::query("SELECT * FROM artifact_shares WHERE token_hash = $1")
                    .bind(&hash[..])
                    .fetch_optional(&mut *self.read_conn().await?)
                    .await?;
                row.as_ref().map(Self::lib_share_from_row).transpose()
            }

            async fn shares(&self, artifact_id: &str) -> $crate::StoreResult<Vec<$crate::ShareRow>> {
                let rows = sqlx::query("SELECT * FROM artifact_shares WHERE artifact_id = $1 ORDER BY created_at_us DESC, id DESC")
                    .bind(artifact_id)
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_share_from_row).collect()
            }

            async fn revoke_share(&self, id: &str, at_us: i64) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE artifact_shares SET revoked_at_us = COALESCE(revoked_at_us, $2) WHERE id = $1")
                    .bind(id)
                    .bind(at_us)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn touch_share(&self, id: &str, at_us: i64) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE artifact_shares SET uses = uses + 1, last_used_at_us = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at_us)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }

            async fn insert_note(&self, n: &$crate::NoteRow) -> $crate::StoreResult<i64> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query(
                    "INSERT INTO notes (id, owner, title, body, tags, task_id, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&n.id)
                .bind(&n.owner)
                .bind(&n.title)
                .bind(&n.body)
                .bind($crate::sql_library::tags_json(&n.tags))
                .bind(&n.task_id)
                .bind(n.created_at_us)
                .bind(n.updated_at_us)
                .execute(&mut *tx)
                .await?;
                let doc = Self::lib_insert_doc(&mut tx, "note", &n.id, &n.owner, &n.title, &n.body).await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(doc)
            }

            async fn note(&self, id: &str) -> $crate::StoreResult<Option<$crate::NoteRow>> {
                let row = sqlx::query("SELECT * FROM notes WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::lib_note_from_row).transpose()
            }

            async fn notes(&self, owner: Option<&str>, tag: Option<&str>, limit: u32) -> $crate::StoreResult<Vec<$crate::NoteRow>> {
                let rows = sqlx::query(
                    "SELECT * FROM notes WHERE ($1 IS NULL OR owner = $1) AND ($2 IS NULL OR tags LIKE $2 ESCAPE '\\') \
                     ORDER BY updated_at_us DESC, id DESC LIMIT $3",
                )
                .bind(owner)
                .bind(tag.map($crate::sql_library::tag_pattern))
                .bind(i64::from(limit))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::lib_note_from_row).collect()
            }

            async fn update_note(&self, n: &$crate::NoteRow) -> $crate::StoreResult<i64> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let done = sqlx::query(
                    "UPDATE notes SET title = $2, body = $3, tags = $4, task_id = $5, updated_at_us = $6 WHERE id = $1",
                )
                .bind(&n.id)
                .bind(&n.title)
                .bind(&n.body)
                .bind($crate::sql_library::tags_json(&n.tags))
                .bind(&n.task_id)
                .bind(n.updated_at_us)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                let doc: i64 = sqlx::query_scalar("UPDATE search_docs SET title = $2, body = $3 WHERE ref_id = $1 RETURNING doc_id")
                    .bind(&n.id)
                    .bind(&n.title)
                    .bind(&n.body)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(doc)
            }

            async fn delete_note(&self, id: &str) -> $crate::StoreResult<i64> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let done = sqlx::query("DELETE FROM notes WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                let doc: i64 = sqlx::query_scalar("DELETE FROM search_docs WHERE ref_id = $1 RETURNING doc_id")
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(doc)
            }

            async fn search_docs(&self, after: i64, limit: u32) -> $crate::StoreResult<Vec<$crate::SearchDocRow>> {
                let rows = sqlx::query("SELECT * FROM search_docs WHERE doc_id > $1 ORDER BY doc_id LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::lib_doc_from_row).collect()
            }

            async fn search_docs_by_id(&self, ids: &[i64]) -> $crate::StoreResult<Vec<$crate::SearchDocRow>> {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(row) = sqlx::query("SELECT * FROM search_docs WHERE doc_id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await? {
                        out.push(Self::lib_doc_from_row(&row)?);
                    }
                }
                Ok(out)
            }
        }
    };
}

pub(crate) use impl_library_store;
