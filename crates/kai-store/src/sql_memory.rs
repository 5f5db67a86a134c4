//! SQL for memories and the memory graph, shared by both backends like `sql.rs`.

/// Longest list bound into one `IN (…)`; longer lists are split.
pub(crate) const IN_CHUNK: usize = 500;

/// `$from, $from+1, …` for `n` parameters.
pub(crate) fn placeholders(from: usize, n: usize) -> String {
    (from..from + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// `base` with the keys of `extra` added; `extra` wins where both have a key. Anything that is
/// not a JSON object counts as empty.
pub(crate) fn merge_json(base: &str, extra: &str, extra_wins: bool) -> String {
    use serde_json::{Map, Value};
    let object = |s: &str| match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let mut out = object(base);
    for (k, v) in object(extra) {
        if extra_wins || !out.contains_key(&k) {
            out.insert(k, v);
        }
    }
    Value::Object(out).to_string()
}

pub(crate) fn new_relation_id() -> String {
    format!("rel_{}", uuid::Uuid::now_v7().simple())
}

macro_rules! impl_memory_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn memory_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::MemoryRow> {
                use sqlx::Row as _;
                Ok($crate::MemoryRow {
                    id: r.try_get("id")?,
                    num: r.try_get("num")?,
                    owner: r.try_get("owner")?,
                    ns_kind: r.try_get("ns_kind")?,
                    ns_id: r.try_get("ns_id")?,
                    tier: r.try_get("tier")?,
                    text: r.try_get("text")?,
                    metadata: r.try_get("metadata")?,
                    embedding: r.try_get("embedding")?,
                    embedding_model: r.try_get("embedding_model")?,
                    encrypted: r.try_get("encrypted")?,
                    needs_extraction: r.try_get("needs_extraction")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                    expires_at_us: r.try_get("expires_at_us")?,
                })
            }

            fn entity_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::EntityRow> {
                use sqlx::Row as _;
                Ok($crate::EntityRow {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    name: r.try_get("name")?,
                    norm: r.try_get("norm")?,
                    kind: r.try_get("kind")?,
                    properties: r.try_get("properties")?,
                    created_at_us: r.try_get("created_at_us")?,
                    updated_at_us: r.try_get("updated_at_us")?,
                })
            }

            fn relation_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::RelationRow> {
                use sqlx::Row as _;
                Ok($crate::RelationRow {
                    id: r.try_get("id")?,
                    owner: r.try_get("owner")?,
                    source_id: r.try_get("source_id")?,
                    target_id: r.try_get("target_id")?,
                    rel_type: r.try_get("rel_type")?,
                    memory_id: r.try_get("memory_id")?,
                    properties: r.try_get("properties")?,
                    created_at_us: r.try_get("created_at_us")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::MemoryStore for $store {
            async fn insert_memories(&self, rows: &[$crate::MemoryRow]) -> $crate::StoreResult<Vec<i64>> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let mut nums = Vec::with_capacity(rows.len());
                for m in rows {
                    let num: i64 = sqlx::query_scalar(
                        "INSERT INTO memories (id, owner, ns_kind, ns_id, tier, text, metadata, embedding, embedding_model, \
                         encrypted, needs_extraction, created_at_us, updated_at_us, expires_at_us) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING num",
                    )
                    .bind(&m.id)
                    .bind(&m.owner)
                    .bind(&m.ns_kind)
                    .bind(&m.ns_id)
                    .bind(&m.tier)
                    .bind(&m.text)
                    .bind(&m.metadata)
                    .bind(&m.embedding)
                    .bind(&m.embedding_model)
                    .bind(m.encrypted)
                    .bind(m.needs_extraction)
                    .bind(m.created_at_us)
                    .bind(m.updated_at_us)
                    .bind(m.expires_at_us)
                    .fetch_one(&mut *tx)
                    .await?;
                    nums.push(num);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(nums)
            }

            async fn memory(&self, id: &str) -> $crate::StoreResult<Option<$crate::MemoryRow>> {
                let row = sqlx::query("SELECT * FROM memories WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::memory_from_row).transpose()
            }

            async fn memories_by_num(&self, nums: &[i64]) -> $crate::StoreResult<Vec<$crate::MemoryRow>> {
                let mut out = Vec::with_capacity(nums.len());
                for chunk in nums.chunks($crate::sql_memory::IN_CHUNK) {
                    let sql = format!(
                        "SELECT * FROM memories WHERE num IN ({})",
                        $crate::sql_memory::placeholders(1, chunk.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for n in chunk {
                        q = q.bind(*n);
                    }
                    for r in q.fetch_all(&mut *self.read_conn().await?).await? {
                        out.push(Self::memory_from_row(&r)?);
                    }
                }
                Ok(out)
            }

            async fn update_memory(&self, m: &$crate::MemoryRow) -> $crate::StoreResult<()> {
                let done = sqlx::query(
                    "UPDATE memories SET ns_kind = $2, ns_id = $3, tier = $4, text = $5, metadata = $6, embedding = $7, \
                     embedding_model = $8, encrypted = $9, needs_extraction = $10, updated_at_us = $11, expires_at_us = $12 \
                     WHERE id = $1",
                )
                .bind(&m.id)
                .bind(&m.ns_kind)
                .bind(&m.ns_id)
                .bind(&m.tier)
                .bind(&m.text)
                .bind(&m.metadata)
                .bind(&m.embedding)
                .bind(&m.embedding_model)
                .bind(m.encrypted)
                .bind(m.needs_extraction)
                .bind(m.updated_at_us)
                .bind(m.expires_at_us)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn set_memory_embedding(
                &self,
                id: &str,
                updated_at_us: i64,
                embedding: &[u8],
                model: &str,
            ) -> $crate::StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE memories SET embedding = $3, embedding_model = $4 WHERE id = $1 AND updated_at_us = $2",
                )
                .bind(id)
                .bind(updated_at_us)
                .bind(embedding)
                .bind(model)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_memory(&self, id: &str) -> $crate::StoreResult<Option<i64>> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("DELETE FROM memory_mentions WHERE memory_id = $1").bind(id).execute(&mut *tx).await?;
                let num: Option<i64> = sqlx::query_scalar("DELETE FROM memories WHERE id = $1 RETURNING num")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(num)
            }

            async fn memories_after(&self, after: i64, limit: u32) -> $crate::StoreResult<Vec<$crate::MemoryRow>> {
                let rows = sqlx::query("SELECT * FROM memories WHERE num > $1 ORDER BY num LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::memory_from_row).collect()
            }

            async fn owner_memories_after(
                &self,
                owner: &str,
                after: i64,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::MemoryRow>> {
                let rows = sqlx::query("SELECT * FROM memories WHERE owner = $1 AND num > $2 ORDER BY num LIMIT $3")
                    .bind(owner)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::memory_from_row).collect()
            }

            async fn memories_without_embedding(&self, after: i64, limit: u32) -> $crate::StoreResult<Vec<$crate::MemoryRow>> {
                let rows = sqlx::query("SELECT * FROM memories WHERE embedding IS NULL AND num > $1 ORDER BY num LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::memory_from_row).collect()
            }

            async fn memories_needing_extraction(&self, after: i64, limit: u32) -> $crate::StoreResult<Vec<$crate::MemoryRow>> {
                let rows = sqlx::query("SELECT * FROM memories WHERE needs_extraction AND num > $1 ORDER BY num LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter().map(Self::memory_from_row).collect()
            }

            async fn mark_memory_extracted(&self, id: &str) -> $crate::StoreResult<()> {
                sqlx::query("UPDATE memories SET needs_extraction = $2 WHERE id = $1")
                    .bind(id)
                    .bind(false)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }

            async fn delete_expired_memories(&self, now_us: i64, limit: u32) -> $crate::StoreResult<Vec<i64>> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let expired: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT num, id FROM memories WHERE expires_at_us IS NOT NULL AND expires_at_us <= $1 ORDER BY num LIMIT $2",
                )
                .bind(now_us)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                for (_, id) in &expired {
                    sqlx::query("DELETE FROM memory_mentions WHERE memory_id = $1").bind(id).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM memories WHERE id = $1").bind(id).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(expired.into_iter().map(|(n, _)| n).collect())
            }

            async fn upsert_entity(&self, e: &$crate::EntityRow) -> $crate::StoreResult<$crate::EntityRow> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query(
                    "INSERT INTO memory_entities (id, owner, name, norm, kind, properties, created_at_us, updated_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner, norm, kind) DO NOTHING",
                )
                .bind(&e.id)
                .bind(&e.owner)
                .bind(&e.name)
                .bind(&e.norm)
                .bind(&e.kind)
                .bind(&e.properties)
                .bind(e.created_at_us)
                .bind(e.updated_at_us)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query("SELECT * FROM memory_entities WHERE owner = $1 AND norm = $2 AND kind = $3")
                    .bind(&e.owner)
                    .bind(&e.norm)
                    .bind(&e.kind)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut stored = Self::entity_from_row(&row)?;
                if stored.id != e.id {
                    let merged = $crate::sql_memory::merge_json(&stored.properties, &e.properties, true);
                    if merged != stored.properties {
                        sqlx::query("UPDATE memory_entities SET properties = $2, updated_at_us = $3 WHERE id = $1")
                            .bind(&stored.id)
                            .bind(&merged)
                            .bind(e.updated_at_us)
                            .execute(&mut *tx)
                            .await?;
                        stored.properties = merged;
                        stored.updated_at_us = e.updated_at_us;
                    }
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(stored)
            }

            async fn entity(&self, id: &str) -> $crate::StoreResult<Option<$crate::EntityRow>> {
                let row = sqlx::query("SELECT * FROM memory_entities WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::entity_from_row).transpose()
            }

            async fn entities(
                &self,
                owner: &str,
                query: Option<&str>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::EntityRow>> {
                let pattern = query.map($crate::sql_chat::contains_pattern);
                let rows = sqlx::query(
                    "SELECT * FROM memory_entities WHERE owner = $1 AND ($2 IS NULL OR norm LIKE $2 ESCAPE '\\') \
                     ORDER BY norm, kind, id LIMIT $3",
                )
                .bind(owner)
                .bind(pattern)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::entity_from_row).collect()
            }

            async fn entities_by_id(&self, ids: &[String]) -> $crate::StoreResult<Vec<$crate::EntityRow>> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks($crate::sql_memory::IN_CHUNK) {
                    let sql = format!(
                        "SELECT * FROM memory_entities WHERE id IN ({})",
                        $crate::sql_memory::placeholders(1, chunk.len())
                    );
                    let mut q = sqlx::query(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for r in q.fetch_all(&mut *self.read_conn().await?).await? {
                        out.push(Self::entity_from_row(&r)?);
                    }
                }
                Ok(out)
            }

            async fn delete_entity(&self, id: &str) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query("DELETE FROM memory_relations WHERE source_id = $1 OR target_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM memory_mentions WHERE entity_id = $1").bind(id).execute(&mut *tx).await?;
                let done = sqlx::query("DELETE FROM memory_entities WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn insert_relation(&self, r: &$crate::RelationRow) -> $crate::StoreResult<$crate::RelationRow> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                sqlx::query(
                    "INSERT INTO memory_relations (id, owner, source_id, target_id, rel_type, memory_id, properties, created_at_us) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner, source_id, target_id, rel_type) DO NOTHING",
                )
                .bind(&r.id)
                .bind(&r.owner)
                .bind(&r.source_id)
                .bind(&r.target_id)
                .bind(&r.rel_type)
                .bind(&r.memory_id)
                .bind(&r.properties)
                .bind(r.created_at_us)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT * FROM memory_relations WHERE owner = $1 AND source_id = $2 AND target_id = $3 AND rel_type = $4",
                )
                .bind(&r.owner)
                .bind(&r.source_id)
                .bind(&r.target_id)
                .bind(&r.rel_type)
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Self::relation_from_row(&row)
            }

            async fn relation(&self, id: &str) -> $crate::StoreResult<Option<$crate::RelationRow>> {
                let row = sqlx::query("SELECT * FROM memory_relations WHERE id = $1").bind(id).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::relation_from_row).transpose()
            }

            async fn delete_relation(&self, id: &str) -> $crate::StoreResult<()> {
                let done = sqlx::query("DELETE FROM memory_relations WHERE id = $1").bind(id).execute(&mut *self.write_conn().await?).await?;
                self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }

            async fn relations_touching(
                &self,
                owner: &str,
                entity_ids: &[String],
                rel_type: Option<&str>,
                limit: u32,
            ) -> $crate::StoreResult<Vec<$crate::RelationRow>> {
                let mut out: Vec<$crate::RelationRow> = Vec::new();
                for chunk in entity_ids.chunks($crate::sql_memory::IN_CHUNK) {
                    let list = $crate::sql_memory::placeholders(4, chunk.len());
                    let sql = format!(
                        "SELECT * FROM memory_relations WHERE owner = $1 AND ($2 IS NULL OR rel_type = $2) \
                         AND (source_id IN ({list}) OR target_id IN ({list})) ORDER BY created_at_us, id LIMIT $3"
                    );
                    let mut q = sqlx::query(&sql).bind(owner).bind(rel_type).bind(i64::from(limit));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for r in q.fetch_all(&mut *self.read_conn().await?).await? {
                        let rel = Self::relation_from_row(&r)?;
                        if !out.iter().any(|o| o.id == rel.id) {
                            out.push(rel);
                        }
                    }
                }
                out.truncate(limit as usize);
                Ok(out)
            }

            async fn merge_entities(&self, into: &str, from: &[String], at_us: i64) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                let target = sqlx::query("SELECT * FROM memory_entities WHERE id = $1")
                    .bind(into)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                let target = Self::entity_from_row(&target)?;
                let mut properties = target.properties.clone();
                for f in from.iter().filter(|f| f.as_str() != into) {
                    let dup = sqlx::query("SELECT * FROM memory_entities WHERE id = $1")
                        .bind(f)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or($crate::StoreError::NotFound)?;
                    let dup = Self::entity_from_row(&dup)?;
                    if dup.owner != target.owner {
                        return Err($crate::StoreError::Conflict("entities of different owners cannot be merged".into()));
                    }
                    properties = $crate::sql_memory::merge_json(&properties, &dup.properties, false);
                    let rels = sqlx::query("SELECT * FROM memory_relations WHERE source_id = $1 OR target_id = $1")
                        .bind(f)
                        .fetch_all(&mut *tx)
                        .await?;
                    for r in &rels {
                        let r = Self::relation_from_row(r)?;
                        let source = if r.source_id == *f { into.to_owned() } else { r.source_id.clone() };
                        let target_id = if r.target_id == *f { into.to_owned() } else { r.target_id.clone() };
                        if source == target_id {
                            continue;
                        }
                        sqlx::query(
                            "INSERT INTO memory_relations (id, owner, source_id, target_id, rel_type, memory_id, properties, created_at_us) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (owner, source_id, target_id, rel_type) DO NOTHING",
                        )
                        .bind($crate::sql_memory::new_relation_id())
                        .bind(&r.owner)
                        .bind(&source)
                        .bind(&target_id)
                        .bind(&r.rel_type)
                        .bind(&r.memory_id)
                        .bind(&r.properties)
                        .bind(r.created_at_us)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query(
                        "INSERT INTO memory_mentions (memory_id, entity_id) SELECT memory_id, $2 FROM memory_mentions \
                         WHERE entity_id = $1 ON CONFLICT (memory_id, entity_id) DO NOTHING",
                    )
                    .bind(f)
                    .bind(into)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM memory_relations WHERE source_id = $1 OR target_id = $1").bind(f).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM memory_mentions WHERE entity_id = $1").bind(f).execute(&mut *tx).await?;
                    sqlx::query("DELETE FROM memory_entities WHERE id = $1").bind(f).execute(&mut *tx).await?;
                }
                sqlx::query("UPDATE memory_entities SET properties = $2, updated_at_us = $3 WHERE id = $1")
                    .bind(into)
                    .bind(&properties)
                    .bind(at_us)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn add_mentions(&self, memory_id: &str, entity_ids: &[String]) -> $crate::StoreResult<()> {
                let mut w = self.write_conn().await?;
                let mut tx = w.begin().await?;
                for e in entity_ids {
                    sqlx::query(
                        "INSERT INTO memory_mentions (memory_id, entity_id) VALUES ($1, $2) ON CONFLICT (memory_id, entity_id) DO NOTHING",
                    )
                    .bind(memory_id)
                    .bind(e)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                drop(w);
                self.durable().await?;
                Ok(())
            }

            async fn mentions_of(&self, memory_ids: &[String]) -> $crate::StoreResult<Vec<(String, String)>> {
                let mut out = Vec::new();
                for chunk in memory_ids.chunks($crate::sql_memory::IN_CHUNK) {
                    let sql = format!(
                        "SELECT memory_id, entity_id FROM memory_mentions WHERE memory_id IN ({}) ORDER BY memory_id, entity_id",
                        $crate::sql_memory::placeholders(1, chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, (String, String)>(&sql);
                    for id in chunk {
                        q = q.bind(id);
                    }
                    out.extend(q.fetch_all(&mut *self.read_conn().await?).await?);
                }
                Ok(out)
            }

            async fn memories_mentioning(&self, entity_ids: &[String], limit: u32) -> $crate::StoreResult<Vec<i64>> {
                let mut out: Vec<i64> = Vec::new();
                for chunk in entity_ids.chunks($crate::sql_memory::IN_CHUNK) {
                    let sql = format!(
                        "SELECT DISTINCT m.num FROM memory_mentions x JOIN memories m ON m.id = x.memory_id \
                         WHERE x.entity_id IN ({}) ORDER BY m.num LIMIT $1",
                        $crate::sql_memory::placeholders(2, chunk.len())
                    );
                    let mut q = sqlx::query_scalar::<_, i64>(&sql).bind(i64::from(limit));
                    for id in chunk {
                        q = q.bind(id);
                    }
                    for n in q.fetch_all(&mut *self.read_conn().await?).await? {
                        if !out.contains(&n) {
                            out.push(n);
                        }
                    }
                }
                out.truncate(limit as usize);
                Ok(out)
            }
        }
    };
}
pub(crate) use impl_memory_store;
