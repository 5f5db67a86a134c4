//! SQLite backend: the embedded default. WAL journal, `synchronous=FULL` (an acknowledged
//! commit survives a crash and power loss), foreign keys on, 5 s busy timeout.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite store.
pub(crate) struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Self { pool })
    }
}

crate::sql::impl_store!(SqliteStore, sqlx::Sqlite, "sqlite");
crate::sql_chat::impl_chat_store!(SqliteStore, sqlx::Sqlite);
crate::sql_tasks::impl_task_store!(SqliteStore, sqlx::Sqlite);
crate::sql_library::impl_library_store!(SqliteStore, sqlx::Sqlite);
crate::sql_memory::impl_memory_store!(SqliteStore, sqlx::Sqlite);
crate::sql_security::impl_security_store!(SqliteStore, sqlx::Sqlite);
crate::sql_queue::impl_queue_store!(SqliteStore, sqlx::Sqlite, begin: "BEGIN IMMEDIATE", skip_locked: "", for_update: "", for_share: "");
