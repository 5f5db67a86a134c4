//! Storage of the kai node: the traits services persist through, and their SQLite
//! (embedded default, WAL with group commit: `wal_sync.rs`) and PostgreSQL implementations on sqlx.
//!
//! Both backends share one SQL body (`sql.rs`, `sql_chat.rs`, `sql_security.rs`,
//! `sql_queue*.rs`) and differ only in connection set-up, a few SQL fragments (the queue's
//! locking) and migration files (`migrations/sqlite`, `migrations/postgres`), applied at open.
//! The durable task queue ([`QueueStore`], in `queue.rs`) is a store concern too.
//! A write that returns `Ok` is committed and durable: callers may acknowledge it (inside
//! [`deferred_flush`], committed at once and durable with the caller's next write outside it).

mod chat;
mod error;
mod library;
mod memory;
mod postgres;
pub mod queue;
mod records;
mod security;
mod sql;
mod sql_chat;
mod sql_library;
mod sql_memory;
mod sql_queue;
mod sql_queue_ops;
mod sql_queue_rows;
mod sql_security;
mod sql_tasks;
mod sqlite;
mod sqlite_conns;
mod tasks;
mod wal_sync;

use std::sync::Arc;

use async_trait::async_trait;
use kai_core::Envelope;
use kai_crypto::audit::{Checkpoint, Entry};

pub use chat::{ChatMessageRow, ChatStore, ChatSummaryRow, ThreadRow};
pub use error::{StoreError, StoreResult};
pub use library::{
    ArtifactQuery, ArtifactRow, ArtifactStore, DeletedArtifact, NoteRow, PromptQuery,
    PromptRenderRow, PromptRow, PromptStore, PromptVersionRow, SearchDocRow, ShareRow,
};
pub use memory::{EntityRow, MemoryRow, MemoryStore, RelationRow};
pub use queue::{QueueError, QueueResult, QueueStore};
pub use wal_sync::deferred_flush;

/// Meta key holding the audit writer's Merkle frontier, updated atomically with each batch.
pub const AUDIT_FRONTIER_KEY: &str = "audit.frontier";
pub use records::{
    RefreshRow, SessionRow, Spent, StoreInfo, TokenRecord, UsageRow, UsageTotal, UserRow,
    VaultItemRow, VaultVersionRow,
};
pub use security::{SessionStore, UsageStore, UserStore, VaultStore};
pub use tasks::{
    AgentMessageRow, AgentRow, FollowUps, PlanRow, QuestionRow, StepRow, TaskFilter, TaskRow,
    TaskStore, TaskUsage, WebhookRow, WorkflowRow,
};

/// The signed audit log's storage. Appends are atomic: all entries and the checkpoint of a
/// call commit together or not at all.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends entries, and optionally a checkpoint and the writer's Merkle frontier (readable
    /// afterwards as meta key [`AUDIT_FRONTIER_KEY`]), atomically. Entries alone (the common
    /// case) are one `INSERT` committed on its own: one round trip to the database instead of
    /// a transaction's four, which is most of what an audited request waits for.
    async fn append_audit(
        &self,
        entries: &[Entry],
        checkpoint: Option<&Checkpoint>,
        frontier: Option<&str>,
    ) -> StoreResult<()>;
    /// The entry with the highest `seq`.
    async fn audit_head(&self) -> StoreResult<Option<Entry>>;
    /// Up to `limit` entries with `seq >= from`, in order.
    async fn audit_range(&self, from: u64, limit: u32) -> StoreResult<Vec<Entry>>;
    /// The last `n` entries, oldest first.
    async fn audit_tail(&self, n: u32) -> StoreResult<Vec<Entry>>;
    /// Every checkpoint, by size.
    async fn audit_checkpoints(&self) -> StoreResult<Vec<Checkpoint>>;
    /// Number of entries.
    async fn audit_count(&self) -> StoreResult<u64>;
}

/// The persisted event log: every event published on the bus, with an increasing offset (dense,
/// except that an append refused as a duplicate may use one up).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Persists an event and returns its offset. Appending an event whose `id` is already
    /// stored returns the existing offset (idempotent retries). Unlike the other writes, `Ok`
    /// means committed (it survives a process crash) but not yet flushed: call
    /// [`EventLog::sync_events`] before acknowledging it, so that a publisher holding the
    /// bus's ordering lock does not hold it across a disk flush.
    async fn append_event(&self, event: &Envelope) -> StoreResult<u64>;
    /// [`EventLog::append_event`] for several events in one transaction (all or none), offsets
    /// in input order: how a busy bus appends what its publishers queued meanwhile.
    async fn append_events(&self, events: &[Envelope]) -> StoreResult<Vec<u64>>;
    /// Returns once every event appended before the call is durable (survives a power loss).
    async fn sync_events(&self) -> StoreResult<()>;
    /// Up to `limit` events with offset greater than `after`, in order.
    async fn events_after(&self, after: u64, limit: u32) -> StoreResult<Vec<Envelope>>;
    /// The offset of the newest event (0 when empty).
    async fn last_event_offset(&self) -> StoreResult<u64>;
}

/// API tokens, stored by SHA-256 hash only.
#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn insert_token(&self, token: &TokenRecord) -> StoreResult<()>;
    /// The live (not revoked) token with this hash.
    async fn token_by_hash(&self, hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>>;
    async fn list_tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Marks a token revoked; `NotFound` if there is none with this id.
    async fn revoke_token(&self, id: &str, at_us: i64) -> StoreResult<()>;
}

/// Small key/value facts about the node (its first identity, …).
#[async_trait]
pub trait MetaStore: Send + Sync {
    async fn get_meta(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put_meta(&self, key: &str, value: &str) -> StoreResult<()>;
}

/// What the audit writer needs: the log and the meta table (for its frontier).
pub trait AuditBackend: AuditStore + MetaStore {}

impl<T: AuditStore + MetaStore + ?Sized> AuditBackend for T {}

/// Everything the node persists, behind one handle.
#[async_trait]
pub trait Store:
    AuditBackend
    + EventLog
    + TokenStore
    + VaultStore
    + UserStore
    + SessionStore
    + UsageStore
    + ChatStore
    + TaskStore
    + QueueStore
    + PromptStore
    + ArtifactStore
    + MemoryStore
{
    /// Round trip to the database; `Err` when it is unreachable.
    async fn ping(&self) -> StoreResult<()>;
    /// Backend name and schema version.
    async fn info(&self) -> StoreResult<StoreInfo>;
    /// Closes the pool, waiting for connections to be returned.
    async fn close(&self);
}

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://…`) and applies migrations.
pub async fn open(url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url, max_connections).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url, max_connections, None).await?))
    } else {
        Err(StoreError::Config(format!("unsupported storage url scheme in {:?}", redact_url(url))))
    }
}

/// Opens a PostgreSQL store inside `schema` (created if missing). Tests use one schema each.
pub async fn open_postgres_schema(
    url: &str,
    schema: &str,
    max_connections: u32,
) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(postgres::PgStore::open(url, max_connections, Some(schema)).await?))
}

/// Drops a schema made by [`open_postgres_schema`].
pub async fn drop_postgres_schema(url: &str, schema: &str) -> StoreResult<()> {
    postgres::drop_schema(url, schema).await
}

/// The URL with any password replaced, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact_url("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
