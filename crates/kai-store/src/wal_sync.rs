//! Group commit for the SQLite backend: one `fdatasync` of the write-ahead log makes every
//! commit before it durable, so concurrent writers share it instead of paying one each.
//!
//! SQLite's `synchronous=FULL` syncs the WAL inside every commit, and commits are serialized by
//! its single writer lock, so a busy node pays one disk flush per write (≈1 ms on the dev
//! VM's disk: 1,000 commits/s at most). The store opens its connections with
//! `synchronous=NORMAL` instead — a commit only writes its WAL frames, which survive a process
//! crash (`kill -9`) because they are in the OS page cache — and each write method calls
//! [`WalSync::sync`] after its commit before it returns `Ok`. That call waits for an
//! `fdatasync` of the WAL file that *started after* the caller's commit; while one flush runs,
//! every writer that commits meanwhile queues for the next, which then covers them all.
//! Durability is therefore what `FULL` gives (a power loss after `Ok` loses nothing), at one
//! flush per batch of concurrent writes.
//!
//! The one difference from `FULL`: another connection can read a commit a moment before its
//! flush (a status page may show progress that a power loss then takes back). Nothing that was
//! acknowledged is lost, and a rolled-back prefix is consistent (WAL recovery replays whole
//! commits in order), so the queue simply runs that work again.
//!
//! Why this is sound: in WAL mode a commit appends frames to `<db>-wal`; SQLite's recovery
//! replays every frame up to the last valid commit frame, so flushing the file after a commit
//! persists it and everything committed before it. With `NORMAL`, SQLite still syncs the WAL
//! header when it restarts the log and syncs the WAL before and the database after each
//! checkpoint, so a checkpointed commit is durable in the main file; if the WAL file is gone
//! (the last connection checkpointed and removed it) there is nothing left to flush. The file is
//! opened by path for each flush, so a log that was removed and recreated is the one flushed.
//!
//! The flush runs on tokio's blocking pool. Running it on the caller's thread instead (when the
//! caller was the only writer waiting) was measured and dropped (2026-12-02): one lone worker's
//! queue drain gained ≈20 %, but with 4–16 workers or 8 producers throughput fell 20–45 %,
//! because a worker blocked in `fdatasync` neither runs other tasks nor lets their commits join
//! the next flush.
//!
//! Written by hand because no crate offers it: SQLite has no group commit of its own, and
//! sqlx exposes no hook after a commit.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{StoreError, StoreResult};

tokio::task_local! {
    static DEFERRED: ();
}

/// Runs `work` with the flushes of its writes deferred: inside it, a write returns once
/// committed (it survives a process crash), and becomes durable against power loss with the
/// next write made outside it — or at once for the writes that must never wait
/// ([`crate::QueueStore::begin_effect`] and `finish_effect`, which precede and follow an action
/// on the outside world). The queue's worker pool runs each job handler this way: the job's
/// completion (or failure), written after the handler returns, flushes the handler's writes
/// with it, so a step pays one flush instead of one per write. Tasks spawned inside `work`
/// are not deferred. No effect on PostgreSQL, whose commits are durable by themselves.
pub async fn deferred_flush<F: Future>(work: F) -> F::Output {
    DEFERRED.scope((), work).await
}

/// True inside [`deferred_flush`].
pub(crate) fn is_deferred() -> bool {
    DEFERRED.try_with(|()| ()).is_ok()
}

/// Flushes a SQLite database's WAL file for every writer waiting at that moment.
pub(crate) struct WalSync {
    /// `<db>-wal`; `None` for an in-memory database (nothing to make durable).
    wal: Option<PathBuf>,
    /// Flushes started so far; a flush numbered above what a caller saw covers its commit.
    started: AtomicU64,
    /// The newest flush that finished. Guarded by the lock so flushes run one at a time.
    finished: tokio::sync::Mutex<u64>,
}

impl WalSync {
    /// For the database file at `db` (`None`: in memory).
    pub(crate) fn new(db: Option<PathBuf>) -> Self {
        let wal = db.map(|p| {
            let mut name = p.into_os_string();
            name.push("-wal");
            PathBuf::from(name)
        });
        Self { wal, started: AtomicU64::new(0), finished: tokio::sync::Mutex::new(0) }
    }

    /// Flushes started so far.
    #[cfg(test)]
    pub(crate) fn flushes(&self) -> u64 {
        self.started.load(Ordering::Acquire)
    }

    /// Returns once every commit this task made before the call is on disk.
    pub(crate) async fn sync(&self) -> StoreResult<()> {
        let Some(wal) = &self.wal else { return Ok(()) };
        // Any flush numbered above `seen` starts after this point, hence after our commit.
        let seen = self.started.load(Ordering::Acquire);
        let mut finished = self.finished.lock().await;
        if *finished > seen {
            return Ok(());
        }
        let number = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let path = wal.clone();
        tokio::task::spawn_blocking(move || flush(&path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("WAL flush task failed: {e}")))??;
        *finished = number;
        Ok(())
    }
}

fn flush(path: &std::path::Path) -> StoreResult<()> {
    match std::fs::File::open(path) {
        Ok(file) => file
            .sync_data()
            .map_err(|e| StoreError::Unavailable(format!("flushing the write-ahead log: {e}"))),
        // Checkpointed and removed: its commits are in the (synced) database file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!("opening the write-ahead log: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_callers_share_flushes_and_each_waits_for_one_after_its_call() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        std::fs::write(dir.path().join("x.db-wal"), b"frames").unwrap();
        let sync = Arc::new(WalSync::new(Some(db)));
        let mut joins = Vec::new();
        for _ in 0..64 {
            let s = sync.clone();
            joins.push(tokio::spawn(async move { s.sync().await }));
        }
        for j in joins {
            j.await.unwrap().unwrap();
        }
        let flushes = sync.started.load(Ordering::Acquire);
        assert!((1..=64).contains(&flushes), "{flushes} flushes");
        // A call after everything finished still gets a flush of its own.
        sync.sync().await.unwrap();
        assert_eq!(sync.started.load(Ordering::Acquire), flushes + 1);
    }

    #[tokio::test]
    async fn a_missing_log_or_a_memory_database_needs_no_flush() {
        let dir = tempfile::tempdir().unwrap();
        WalSync::new(Some(dir.path().join("gone.db"))).sync().await.unwrap();
        WalSync::new(None).sync().await.unwrap();
    }
}
