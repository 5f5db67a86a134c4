//! The SQL both backends share. SQLite and PostgreSQL both accept `$n` placeholders,
//! `RETURNING` and `ON CONFLICT`, so one body serves both; the macro stamps it out for each
//! concrete pool type (sqlx's generic-over-database bounds cost more to read than this does).

use kai_core::Envelope;
use kai_crypto::audit::{Checkpoint, Entry};

use crate::error::{StoreError, StoreResult};

pub(crate) fn arr<const N: usize>(v: Vec<u8>, what: &str) -> StoreResult<[u8; N]> {
    v.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is not {N} bytes")))
}

pub(crate) fn u64_of(v: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} is negative")))
}

pub(crate) fn i64_of(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict("value exceeds 2^63".into()))
}

pub(crate) fn event_from_parts(
    offset: i64,
    id: String,
    kind: String,
    agent: Option<String>,
    task_id: Option<String>,
    payload: String,
    timestamp_us: i64,
) -> StoreResult<Envelope> {
    use chrono::TimeZone as _;
    let corrupt = |what: &str| StoreError::Corrupt(format!("event at offset {offset}: {what}"));
    Ok(Envelope {
        id: id.parse().map_err(|_| corrupt("bad id"))?,
        kind: kind.parse().map_err(|_| corrupt("bad type"))?,
        agent: agent.map(|a| a.parse()).transpose().map_err(|_| corrupt("bad agent"))?,
        task_id,
        payload: serde_json::from_str(&payload).map_err(|_| corrupt("bad payload"))?,
        timestamp: chrono::Utc
            .timestamp_micros(timestamp_us)
            .single()
            .ok_or_else(|| corrupt("bad timestamp"))?,
        offset: Some(u64_of(offset, "offset")?),
    })
}

/// Columns of `audit_entries` in the order the macro binds and reads them.
pub(crate) const AUDIT_COLUMNS: &str = "seq, timestamp_us, actor, action, target, outcome, details, prev_hash, signer, hash, signature";

pub(crate) fn checkpoint_of(
    size: i64,
    root: Vec<u8>,
    timestamp_us: i64,
    signer: String,
    signature: Vec<u8>,
) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        size: u64_of(size, "checkpoint size")?,
        root: arr(root, "root")?,
        timestamp_us,
        signer,
        signature: arr(signature, "signature")?,
    })
}

pub(crate) fn entry_is_sane(e: &Entry) -> StoreResult<()> {
    i64_of(e.seq).map(|_| ())
}

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            fn entry_from_row(row: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<kai_crypto::audit::Entry> {
                use sqlx::Row as _;
                use $crate::sql::{arr, u64_of};
                Ok(kai_crypto::audit::Entry {
                    seq: u64_of(row.try_get("seq")?, "seq")?,
                    timestamp_us: row.try_get("timestamp_us")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    outcome: row.try_get("outcome")?,
                    details: row.try_get("details")?,
                    prev_hash: arr(row.try_get("prev_hash")?, "prev_hash")?,
                    signer: row.try_get("signer")?,
                    hash: arr(row.try_get("hash")?, "hash")?,
                    signature: arr(row.try_get("signature")?, "signature")?,
                })
            }

            fn event_from_row(row: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<kai_core::Envelope> {
                use sqlx::Row as _;
                $crate::sql::event_from_parts(
                    row.try_get("event_offset")?,
                    row.try_get("id")?,
                    row.try_get("type")?,
                    row.try_get("agent")?,
                    row.try_get("task_id")?,
                    row.try_get("payload")?,
                    row.try_get("timestamp_us")?,
                )
            }

            fn token_from_row(row: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::TokenRecord> {
                use sqlx::Row as _;
                Ok($crate::TokenRecord {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    role: row.try_get("role")?,
                    token_hash: $crate::sql::arr(row.try_get("token_hash")?, "token_hash")?,
                    created_at_us: row.try_get("created_at_us")?,
                    expires_at_us: row.try_get("expires_at_us")?,
                    revoked_at_us: row.try_get("revoked_at_us")?,
                    scopes: row
                        .try_get::<String, _>("scopes")?
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect(),
                    user_id: row.try_get("user_id")?,
                })
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn append_audit(
                &self,
                entries: &[kai_crypto::audit::Entry],
                checkpoint: Option<&kai_crypto::audit::Checkpoint>,
                frontier: Option<&str>,
            ) -> $crate::StoreResult<()> {
                self.audit_append_tx(entries, checkpoint, frontier).await?;
                self.durable().await
            }

            async fn audit_head(&self) -> $crate::StoreResult<Option<kai_crypto::audit::Entry>> {
                let q = format!("SELECT {} FROM audit_entries ORDER BY seq DESC LIMIT 1", $crate::sql::AUDIT_COLUMNS);
                let row = sqlx::query(&q).fetch_optional(&mut *self.read_conn().await?).await?;
                row.as_ref().map(Self::entry_from_row).transpose()
            }

            async fn audit_range(&self, from: u64, limit: u32) -> $crate::StoreResult<Vec<kai_crypto::audit::Entry>> {
                let q = format!(
                    "SELECT {} FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2",
                    $crate::sql::AUDIT_COLUMNS
                );
                let rows = sqlx::query(&q).bind($crate::sql::i64_of(from)?).bind(i64::from(limit)).fetch_all(&mut *self.read_conn().await?).await?;
                rows.iter().map(Self::entry_from_row).collect()
            }

            async fn audit_tail(&self, n: u32) -> $crate::StoreResult<Vec<kai_crypto::audit::Entry>> {
                let q = format!("SELECT {} FROM audit_entries ORDER BY seq DESC LIMIT $1", $crate::sql::AUDIT_COLUMNS);
                let rows = sqlx::query(&q).bind(i64::from(n)).fetch_all(&mut *self.read_conn().await?).await?;
                let mut out: Vec<_> = rows.iter().map(Self::entry_from_row).collect::<Result<_, _>>()?;
                out.reverse();
                Ok(out)
            }

            async fn audit_checkpoints(&self) -> $crate::StoreResult<Vec<kai_crypto::audit::Checkpoint>> {
                use sqlx::Row as _;
                let rows = sqlx::query("SELECT size, root, timestamp_us, signer, signature FROM audit_checkpoints ORDER BY size")
                    .fetch_all(&mut *self.read_conn().await?)
                    .await?;
                rows.iter()
                    .map(|r| {
                        $crate::sql::checkpoint_of(
                            r.try_get("size")?,
                            r.try_get("root")?,
                            r.try_get("timestamp_us")?,
                            r.try_get("signer")?,
                            r.try_get("signature")?,
                        )
                    })
                    .collect()
            }

            async fn audit_count(&self) -> $crate::StoreResult<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_entries").fetch_one(&mut *self.read_conn().await?).await?;
                $crate::sql::u64_of(n, "count")
            }
        }

        #[async_trait::async_trait]
        impl $crate::EventLog for $store {
            async fn append_event(&self, e: &kai_core::Envelope) -> $crate::StoreResult<u64> {
                let offsets = self.append_events(std::slice::from_ref(e)).await?;
                offsets.first().copied().ok_or_else(|| $crate::StoreError::Corrupt("no offset for an appended event".into()))
            }

            async fn events_after(&self, after: u64, limit: u32) -> $crate::StoreResult<Vec<kai_core::Envelope>> {
                let rows = sqlx::query(
                    "SELECT event_offset, id, type, agent, task_id, payload, timestamp_us FROM events \
                     WHERE event_offset > $1 ORDER BY event_offset LIMIT $2",
                )
                .bind($crate::sql::i64_of(after)?)
                .bind(i64::from(limit))
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::event_from_row).collect()
            }

            async fn last_event_offset(&self) -> $crate::StoreResult<u64> {
                let n: Option<i64> = sqlx::query_scalar("SELECT MAX(event_offset) FROM events").fetch_one(&mut *self.read_conn().await?).await?;
                $crate::sql::u64_of(n.unwrap_or(0), "offset")
            }

            async fn append_events(&self, events: &[kai_core::Envelope]) -> $crate::StoreResult<Vec<u64>> {
                self.events_append_tx(events).await
            }

            async fn sync_events(&self) -> $crate::StoreResult<()> {
                self.durable().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::TokenStore for $store {
            async fn insert_token(&self, t: &$crate::TokenRecord) -> $crate::StoreResult<()> {
                sqlx::query(
                    "INSERT INTO api_tokens (id, name, role, token_hash, created_at_us, expires_at_us, revoked_at_us, scopes, user_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(&t.id)
                .bind(&t.name)
                .bind(&t.role)
                .bind(t.token_hash.to_vec())
                .bind(t.created_at_us)
                .bind(t.expires_at_us)
                .bind(t.revoked_at_us)
                .bind(t.scopes.join(" "))
                .bind(&t.user_id)
                .execute(&mut *self.write_conn().await?)
                .await?;
                self.durable().await?;
                Ok(())
            }

            async fn token_by_hash(&self, hash: &[u8; 32]) -> $crate::StoreResult<Option<$crate::TokenRecord>> {
                let row = sqlx::query(
                    "SELECT id, name, role, token_hash, created_at_us, expires_at_us, revoked_at_us, scopes, user_id FROM api_tokens \
                     WHERE token_hash = $1 AND revoked_at_us IS NULL",
                )
                .bind(hash.to_vec())
                .fetch_optional(&mut *self.read_conn().await?)
                .await?;
                row.as_ref().map(Self::token_from_row).transpose()
            }

            async fn list_tokens(&self) -> $crate::StoreResult<Vec<$crate::TokenRecord>> {
                let rows = sqlx::query(
                    "SELECT id, name, role, token_hash, created_at_us, expires_at_us, revoked_at_us, scopes, user_id FROM api_tokens ORDER BY created_at_us",
                )
                .fetch_all(&mut *self.read_conn().await?)
                .await?;
                rows.iter().map(Self::token_from_row).collect()
            }

            async fn revoke_token(&self, id: &str, at_us: i64) -> $crate::StoreResult<()> {
                let done = sqlx::query("UPDATE api_tokens SET revoked_at_us = $1 WHERE id = $2 AND revoked_at_us IS NULL")
                    .bind(at_us)
                    .bind(id)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                if done.rows_affected() == 0 { Err($crate::StoreError::NotFound) } else { Ok(()) }
            }
        }

        #[async_trait::async_trait]
        impl $crate::MetaStore for $store {
            async fn get_meta(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM node_meta WHERE key = $1").bind(key).fetch_optional(&mut *self.read_conn().await?).await?)
            }

            async fn put_meta(&self, key: &str, value: &str) -> $crate::StoreResult<()> {
                sqlx::query("INSERT INTO node_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *self.write_conn().await?)
                    .await?;
                    self.durable().await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&mut *self.read_conn().await?).await?;
                Ok(())
            }

            async fn info(&self) -> $crate::StoreResult<$crate::StoreInfo> {
                let v: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(&mut *self.read_conn().await?)
                    .await?;
                Ok($crate::StoreInfo { backend: $backend, schema_version: v.unwrap_or(0) })
            }

            async fn close(&self) {
                self.close_all().await;
            }
        }
    };
}

pub(crate) use impl_store;
