//! SQLite backend: the embedded default. WAL journal with group commit (`synchronous=NORMAL`
//! plus one shared flush of the log per batch of writers, [`crate::wal_sync`]: an acknowledged
//! commit survives a crash and power loss, as with `FULL`), foreign keys on, 5 s busy timeout.

use std::str::FromStr as _;
use std::time::Duration;

use std::sync::Arc;

use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{StoreError, StoreResult};
use crate::sqlite_conns::{Conn, Conns};
use crate::wal_sync::WalSync;

mod checkpoint;
mod direct;
mod hot;
mod logs;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
///
/// Reads go to `pool` (WAL readers run in parallel); every write goes to `writer`, one
/// connection, so writers wait their turn in a queue instead of colliding on SQLite's write
/// lock — where a loser sleeps in SQLite's busy handler (1, 2, 5, 10… ms) while the lock sits
/// free. Both are sets of connections held open ([`crate::sqlite_conns`], which says why not
/// sqlx's pool). What a task step does runs through `direct` instead (`sqlite/direct.rs`:
/// reads in place, transactions batched on a writer thread that waits in the same queue).
pub(crate) struct SqliteStore {
    pool: Conns,
    writer: Arc<Conns>,
    direct: direct::Direct,
    wal: WalSync,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Durability comes from `WalSync` after each write (see the module doc).
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            // Statement and savepoint journals in memory, not in files under /var/tmp (see
            // `direct::connect`).
            .pragma("temp_store", "MEMORY")
            // The log is copied back on a thread of its own (`sqlite/checkpoint.rs`).
            .pragma("wal_autocheckpoint", "0")
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if in_memory || file.as_os_str().is_empty() {
            // Readers and the writer are separate connections: each would get its own database.
            return Err(StoreError::Config(
                "an in-memory SQLite database cannot back a node; give a file: sqlite://PATH"
                    .into(),
            ));
        }
        // Migrations run through a pool of their own (sqlx's migrator on a bare connection is
        // not `Send` for every lifetime, which the store's callers need).
        let migrate =
            SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        let migrated = MIGRATOR.run(&migrate).await;
        migrate.close().await;
        migrated.map_err(|e| StoreError::Migration(e.to_string()))?;
        let mut readers = Vec::new();
        for _ in 0..max_connections.max(1) {
            readers.push(sqlx::SqliteConnection::connect_with(&options).await?);
        }
        let writer =
            Arc::new(Conns::new(vec![sqlx::SqliteConnection::connect_with(&options).await?]));
        let pool = Conns::new(readers);
        let direct = direct::Direct::open(options.get_filename(), writer.clone())?;
        let wal = WalSync::new(Some(options.get_filename().to_path_buf()));
        Ok(Self { pool, writer, direct, wal })
    }

    async fn close_all(&self) {
        self.direct.close().await;
        self.pool.close().await;
        self.writer.close().await;
    }
    /// A reader connection (waits for a free one).
    async fn read_conn(&self) -> Result<Conn<'_>, sqlx::Error> {
        self.pool.get().await
    }

    /// The writer connection (waits its turn).
    async fn write_conn(&self) -> Result<Conn<'_>, sqlx::Error> {
        self.writer.get().await
    }

    /// Makes every commit this caller made durable (a shared flush of the WAL), unless the
    /// caller runs inside [`crate::deferred_flush`]. Every write method calls it after its
    /// commit, so it also wakes the checkpointer (`sqlite/checkpoint.rs`).
    async fn durable(&self) -> StoreResult<()> {
        self.direct.wrote();
        if crate::wal_sync::is_deferred() { Ok(()) } else { self.wal.sync().await }
    }

    /// [`Self::durable`], deferred or not.
    async fn flush_now(&self) -> StoreResult<()> {
        self.direct.wrote();
        self.wal.sync().await
    }
}

crate::sql::impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");
crate::sql_chat::impl_chat_store!(SqliteStore, sqlx::Sqlite);
crate::sql_tasks::impl_task_store!(SqliteStore, sqlx::Sqlite);
crate::sql_library::impl_library_store!(SqliteStore, sqlx::Sqlite);
crate::sql_memory::impl_memory_store!(SqliteStore, sqlx::Sqlite);
crate::sql_security::impl_security_store!(SqliteStore, sqlx::Sqlite);
crate::sql_queue::impl_queue_store!(SqliteStore, sqlx::Sqlite, begin: "BEGIN IMMEDIATE", skip_locked: "", for_update: "", for_share: "");

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_in_memory_database_is_refused_with_a_way_out() {
        for url in ["sqlite::memory:", "sqlite://:memory:"] {
            let Err(e) = super::SqliteStore::open(url, 2).await else { panic!("{url} opened") };
            assert!(e.to_string().contains("sqlite://PATH"), "{url}: {e}");
        }
    }

    #[tokio::test]
    async fn writes_are_flushed_and_readers_see_them() {
        use crate::MetaStore as _;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = super::SqliteStore::open(&url, 2).await.unwrap();
        let before = store.wal.flushes();
        store.put_meta("k", "v").await.unwrap();
        assert!(store.wal.flushes() > before, "a write returns after a flush of the log");
        assert_eq!(store.get_meta("k").await.unwrap().as_deref(), Some("v"));
        // Deferred inside `deferred_flush`, flushed by the next write outside it.
        let inside = store.wal.flushes();
        crate::deferred_flush(async { store.put_meta("k", "w").await.unwrap() }).await;
        assert_eq!(store.wal.flushes(), inside, "no flush inside the deferred scope");
        store.put_meta("k2", "x").await.unwrap();
        assert!(store.wal.flushes() > inside);
    }
}
