//! Checkpoints of the SQLite write-ahead log on a thread of their own, off the writers' path.
//!
//! SQLite copies the log back into the database file (a checkpoint) from inside the commit
//! that takes the log over 1,000 pages, on the committing connection: it reads the log, writes
//! the database file and flushes both to disk while that writer still holds the write lock.
//! On the node's busy path that writer is the one thread every task step's transaction waits
//! for (`direct.rs`): with 1,000 tasks × 10 steps it ran about 250 checkpoints, each one a
//! pause of every step in flight for two disk flushes (docs/benchmarks.md, issue 5).
//!
//! So every store connection is opened with `wal_autocheckpoint = 0`, and this thread runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on its own connection instead: woken after every commit
//! (the writer thread's batches, and every write through sqlx, which calls the store's
//! `durable`), at most once per [`INTERVAL`]. A passive checkpoint takes no lock a writer
//! needs: writers go on appending to the log while it copies.
//!
//! SQLite starts the log over from its beginning only at a write that follows a checkpoint
//! which copied *all* of it, and beside busy writers a checkpoint never gets to the end: the
//! log grew without bound (400 MB in that run). So once the log holds [`RESTART_PAGES`], the
//! thread takes the store's writer turn (the queue both writers wait in) for a second pass,
//! which copies only what was appended during the first and reaches the end; the writers wait
//! for that short pass instead of for the whole copy.
//!
//! What changes for durability: nothing. The log is flushed by `wal_sync.rs` before any write
//! is acknowledged, and a checkpoint flushes the log before and the database after it copies.
//!
//! Written by hand: a dozen lines around one pragma; no crate runs SQLite checkpoints.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{StoreError, StoreResult};
use crate::sqlite_conns::Conns;

/// Least time between two checkpoints, so that a busy log is copied in large runs (each
/// checkpoint that copies anything flushes the log and the database).
const INTERVAL: Duration = Duration::from_millis(100);

/// Log pages (4 KiB each) from which a checkpoint finishes under the writers' turn, so that
/// the log starts over (SQLite's own checkpoints start at 1,000).
const RESTART_PAGES: i64 = 1000;

/// Wakes the checkpointer; dropping every clone stops the thread (SQLite checkpoints the log
/// itself when the store's last connection closes).
#[derive(Clone)]
pub(super) struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    /// Checkpoints run so far.
    runs: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Starts the thread with a connection of its own (`connect`: the store's settings).
    pub(super) fn start(
        path: &Path,
        connect: fn(&Path) -> StoreResult<Connection>,
        turn: Arc<Conns>,
    ) -> StoreResult<(Self, std::thread::JoinHandle<()>)> {
        let conn = connect(path)?;
        // Room for one wake-up: wakes sent while one waits are the same wake-up.
        let (wake, woken) = mpsc::sync_channel(1);
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let thread = std::thread::Builder::new()
            .name("kai-sqlite-ckpt".into())
            .spawn(move || run(&conn, &woken, &turn, &counted))
            .map_err(|e| StoreError::Unavailable(format!("starting the checkpointer: {e}")))?;
        Ok((Self { wake, runs }, thread))
    }

    /// The log grew: checkpoint it soon. Never blocks.
    pub(super) fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    /// Checkpoints run so far.
    pub(super) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>, turn: &Conns, runs: &AtomicU64) {
    let mut last: Option<Instant> = None;
    while woken.recv().is_ok() {
        // Let the log gather what is written meanwhile (wake-ups in between are this one);
        // stop waiting if the store closes.
        let mut open = true;
        if let Some(until) = last.map(|at| at + INTERVAL) {
            while open && let Some(left) = until.checked_duration_since(Instant::now()) {
                open =
                    !matches!(woken.recv_timeout(left), Err(mpsc::RecvTimeoutError::Disconnected));
            }
        }
        if let Err(e) = checkpoint_to_end(conn, turn) {
            tracing::warn!(error = %e, "a checkpoint of the SQLite log failed; the next one retries");
        }
        last = Some(Instant::now());
        runs.fetch_add(1, Ordering::Relaxed);
        if !open {
            return;
        }
    }
}

/// A checkpoint beside the writers, and when the log is long a second pass under their turn.
fn checkpoint_to_end(conn: &Connection, turn: &Conns) -> StoreResult<()> {
    let (log, _) = checkpoint(conn)?;
    if log >= RESTART_PAGES {
        let _turn = futures::executor::block_on(turn.get())?;
        checkpoint(conn)?;
    }
    Ok(())
}

/// One passive checkpoint: `(log pages, pages copied)`.
fn checkpoint(conn: &Connection) -> StoreResult<(i64, i64)> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))?)
}
