//! The SQLite backend's connections, held open for the store's life instead of in sqlx's pool.
//!
//! Why not `sqlx::SqlitePool`: the pool pings a connection when it hands it out
//! (`test_before_acquire`) and again, always, when it takes it back — and a SQLite ping is a
//! round trip to the connection's own thread. A one-statement write cost three thread hand-offs
//! instead of one, and the single writer connection was busy with its release ping before the
//! next writer could have it (on the 2-vCPU dev VM, thread hand-offs were most of the CPU a task
//! step costs: docs/benchmarks.md, issue 5). Here a [`Conns`] is a fixed set of plain
//! `SqliteConnection`s and a fair semaphore: a caller waits its turn (first come, first served,
//! as in the pool) and gets one for as long as it holds the [`Conn`].
//!
//! A query future dropped part-way leaves nothing behind: the connection's thread runs its
//! commands in order, so whatever the next holder sends runs after the abandoned command (and
//! after the rollback sqlx queues for a dropped transaction).
//!
//! Written by hand because no pool crate is in the build and the set needs no more than this:
//! no connection is ever replaced (a SQLite connection to a local file does not go stale).

use std::sync::Mutex;

use sqlx::{Connection as _, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A fixed set of open connections.
pub(crate) struct Conns {
    idle: Mutex<Vec<SqliteConnection>>,
    turns: Semaphore,
    size: u32,
}

/// One connection of a [`Conns`], returned to it when dropped.
pub(crate) struct Conn<'a> {
    conn: Option<SqliteConnection>,
    home: &'a Conns,
    _turn: SemaphorePermit<'a>,
}

impl Conns {
    pub(crate) fn new(conns: Vec<SqliteConnection>) -> Self {
        let size = u32::try_from(conns.len()).unwrap_or(u32::MAX);
        Self { turns: Semaphore::new(size as usize), idle: Mutex::new(conns), size }
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a free connection; fails once the set is closed.
    pub(crate) async fn get(&self) -> Result<Conn<'_>, sqlx::Error> {
        let turn = self.turns.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        // A turn guarantees an idle connection: there are as many turns as connections, and a
        // connection is back before its turn is.
        let conn = self.idle().pop().ok_or(sqlx::Error::PoolClosed)?;
        Ok(Conn { conn: Some(conn), home: self, _turn: turn })
    }

    /// Waits for every connection to come back, closes them, and refuses later callers.
    pub(crate) async fn close(&self) {
        // Everything handed out is back once every turn is taken.
        let all = self.turns.acquire_many(self.size).await;
        let conns = std::mem::take(&mut *self.idle());
        self.turns.close();
        drop(all);
        for c in conns {
            if let Err(e) = c.close().await {
                tracing::debug!(error = %e, "closing a SQLite connection");
            }
        }
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_ref().unwrap_or_else(|| unreachable!("a held connection is present"))
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a held connection is present"))
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        // Back before the turn is released (fields drop after this body).
        if let Some(c) = self.conn.take() {
            self.home.idle().push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;
    use std::time::Duration;

    use sqlx::Connection as _;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::Conns;

    async fn conns(dir: &tempfile::TempDir, n: usize) -> Conns {
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let options = SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(sqlx::SqliteConnection::connect_with(&options).await.unwrap());
        }
        Conns::new(all)
    }

    #[tokio::test]
    async fn a_caller_waits_for_the_connection_and_gets_it_back_when_it_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        let set = std::sync::Arc::new(conns(&dir, 1).await);
        let held = set.get().await.unwrap();
        let waiter = tokio::spawn({
            let set = set.clone();
            async move {
                let mut c = set.get().await.unwrap();
                sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&mut *c).await.unwrap()
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "the only connection is held");
        drop(held);
        assert_eq!(waiter.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_transaction_abandoned_midway_leaves_nothing_and_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let set = conns(&dir, 1).await;
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut *set.get().await.unwrap())
            .await
            .unwrap();
        {
            let mut c = set.get().await.unwrap();
            let mut tx = c.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
            // Dropped without a commit, as when a request is cancelled.
        }
        let mut c = set.get().await.unwrap();
        let mut tx = c.begin().await.expect("no transaction is left open");
        sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t").fetch_all(&mut *c).await.unwrap();
        assert_eq!(xs, [2]);
    }

    #[tokio::test]
    async fn a_closed_set_waits_for_its_connections_and_refuses_later_callers() {
        let dir = tempfile::tempdir().unwrap();
        let set = std::sync::Arc::new(conns(&dir, 2).await);
        let held = set.get().await.unwrap();
        let closing = tokio::spawn({
            let set = set.clone();
            async move { set.close().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!closing.is_finished(), "close waits for the connection in use");
        drop(held);
        closing.await.unwrap();
        assert!(matches!(set.get().await, Err(sqlx::Error::PoolClosed)));
    }
}
