//! SQLite without a thread hand-off per statement, for the writes and reads a task step makes.
//!
//! sqlx's SQLite driver runs every statement on its connection's own thread: one statement is
//! one hand-off there and one back, and a transaction holds the single writer for as many
//! hand-offs as it has statements. On the 2-vCPU dev VM those hand-offs (context switches,
//! wake-ups) were most of the CPU a task step cost and the writer's hold time capped the node
//! at about one core (docs/benchmarks.md, issue 5). Here, with `rusqlite` on the same
//! `libsqlite3-sys` that sqlx links:
//!
//! - [`Direct::write`] sends a closure to one writer thread, which runs it inside a transaction
//!   with no hand-off between its statements. The thread takes every closure queued by the
//!   time it wakes (up to [`MAX_BATCH`]) and runs them in **one** transaction, each under a
//!   savepoint: a closure that fails is rolled back alone and the others commit together
//!   (group commit of transactions; the WAL flush after it is still [`crate::wal_sync`]'s).
//!   Every caller gets its answer after the commit, so nothing is acknowledged that is not
//!   committed. While it runs a batch the thread holds the store's writer turn (the same fair
//!   queue sqlx's writer connection waits in), so the two writers never meet SQLite's busy
//!   handler.
//! - [`Direct::read`] runs a read on the calling thread with a connection of its own. A
//!   point read on a WAL database takes microseconds and never waits for the writer, so it is
//!   cheaper in place than the two hand-offs of a sqlx reader; only short indexed reads use it.
//!
//! Statements are cached per connection (`prepare_cached`). SQL is written with `$N`
//! placeholders, as everywhere in the store; [`positional`] turns them into SQLite's `?N`.
//!
//! Written by hand: what it does — batching other callers' transactions into one — is the
//! project's own, and it is a thin layer over `rusqlite`.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::checkpoint::Checkpointer;
use crate::error::{StoreError, StoreResult};
use crate::sqlite_conns::Conns;

/// Most transactions committed together.
pub(super) const MAX_BATCH: usize = 256;
/// Statements cached per connection.
const CACHED_STATEMENTS: usize = 64;

/// One transaction's work for the writer thread: run it (whether to keep what it did), then
/// answer its caller once the batch committed or failed.
trait Job: Send {
    fn run(&mut self, conn: &Connection) -> bool;
    fn answer(self: Box<Self>, committed: StoreResult<()>);
}

struct Pending<F, R, E> {
    work: Option<F>,
    out: Option<Result<R, E>>,
    reply: tokio::sync::oneshot::Sender<Result<R, E>>,
}

impl<F, R, E> Job for Pending<F, R, E>
where
    F: FnOnce(&Connection) -> Result<R, E> + Send,
    R: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
            Err(StoreError::Unavailable("a SQLite write panicked".into()).into())
        });
        let keep = out.is_ok();
        self.out = Some(out);
        keep
    }

    fn answer(self: Box<Self>, committed: StoreResult<()>) {
        let out = match (committed, self.out) {
            (Ok(()), Some(out)) => out,
            (Err(e), _) => Err(e.into()),
            (Ok(()), None) => Err(StoreError::Unavailable("the write did not run".into()).into()),
        };
        // The caller may have gone; the write stands either way.
        let _ = self.reply.send(out);
    }
}

type Work = Box<dyn Job>;

/// The writer thread and the readers of one database file.
pub(super) struct Direct {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Mutex<Option<mpsc::Sender<Work>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Wakes the checkpointer after writes that did not go through the writer thread.
    checkpointer: Mutex<Option<Checkpointer>>,
    /// The checkpointer's thread (it stops once the writer thread and `checkpointer` are gone).
    checkpoints: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Transactions the writer thread has run (batches).
    batches: Arc<AtomicU64>,
}

impl Direct {
    /// Opens the writer connection and starts its thread; `turn` is the store's writer queue.
    pub(super) fn open(path: &Path, turn: Arc<Conns>) -> StoreResult<Self> {
        let conn = connect(path)?;
        let (checkpointer, checkpoints) = Checkpointer::start(path, connect, turn.clone())?;
        let wakes = checkpointer.clone();
        let (tx, rx) = mpsc::channel::<Work>();
        let batches = Arc::new(AtomicU64::new(0));
        let counted = batches.clone();
        let thread = std::thread::Builder::new()
            .name("kai-sqlite-writer".into())
            .spawn(move || writer(&conn, &rx, &turn, &counted, &wakes))
            .map_err(|e| StoreError::Unavailable(format!("starting the SQLite writer: {e}")))?;
        Ok(Self {
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            writer: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            checkpoints: Mutex::new(Some(checkpoints)),
            batches,
        })
    }

    /// Transactions the writer thread has run so far.
    #[cfg(test)]
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Runs `work` in a transaction of the writer thread; its result once that committed. An
    /// `Err` from `work` rolls back what it did (only that).
    pub(super) async fn write<R, E>(
        &self,
        work: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let boxed: Work = Box::new(Pending { work: Some(work), out: None, reply });
        let sent = lock(&self.writer).as_ref().map(|w| w.send(boxed).is_ok());
        if sent != Some(true) {
            return Err(stopped().into());
        }
        rx.await.unwrap_or_else(|_| Err(stopped().into()))
    }

    /// Another connection committed: the checkpointer copies the log back soon.
    pub(super) fn wrote(&self) {
        if let Some(c) = lock(&self.checkpointer).as_ref() {
            c.wake();
        }
    }

    /// Checkpoints run so far.
    #[cfg(test)]
    pub(super) fn checkpoints(&self) -> u64 {
        lock(&self.checkpointer).as_ref().map_or(0, Checkpointer::runs)
    }

    /// Runs `read` on this thread with a reader connection (opened on first use).
    pub(super) fn read<R>(
        &self,
        read: impl FnOnce(&Connection) -> StoreResult<R>,
    ) -> StoreResult<R> {
        let conn = match lock(&self.readers).pop() {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let out = read(&conn);
        lock(&self.readers).push(conn);
        out
    }

    /// Stops the writer thread once it has run what was sent; closes the readers.
    pub(super) async fn close(&self) {
        drop(lock(&self.writer).take());
        // The checkpointer's thread stops once the writer thread's clone is gone too.
        let checkpoints = lock(&self.checkpointer).take().map_or(0, |c| c.runs());
        let threads = [lock(&self.thread).take(), lock(&self.checkpoints).take()];
        for t in threads.into_iter().flatten() {
            if !matches!(tokio::task::spawn_blocking(move || t.join()).await, Ok(Ok(()))) {
                tracing::warn!("a SQLite writer thread did not stop cleanly");
            }
        }
        lock(&self.readers).clear();
        tracing::debug!(
            transactions = self.batches.load(Ordering::Relaxed),
            checkpoints,
            "SQLite writer stopped"
        );
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped (the store is closed)".into())
}

/// A connection with the store's settings (`sqlite.rs`): WAL, `synchronous=NORMAL` (flushes are
/// `WalSync`'s), foreign keys, 5 s busy timeout, temporary storage in memory, checkpoints left
/// to `checkpoint.rs`. The file exists (sqlx created and migrated it).
///
/// `temp_store = MEMORY` matters for the writer: every work of a batch runs under a savepoint,
/// and a page that an earlier work of the batch already changed is copied to the savepoint's
/// journal before it changes again. With SQLite's default that journal is a temporary file, and
/// on 1,000 tasks × 10 steps those copies were two thirds of all the bytes the node wrote
/// (docs/benchmarks.md, issue 5). The journal lives only for its transaction and holds at most
/// the pages the batch touched.
fn connect(path: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;",
    )?;
    conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
    Ok(conn)
}

/// The writer thread: batches of queued work, one transaction per batch.
fn writer(
    conn: &Connection,
    queue: &mpsc::Receiver<Work>,
    turn: &Conns,
    batches: &AtomicU64,
    checkpointer: &Checkpointer,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        batches.fetch_add(1, Ordering::Relaxed);
        let committed = match futures::executor::block_on(turn.get()) {
            Ok(_turn) => run_batch(conn, &mut batch),
            Err(e) => Err(StoreError::from(e)),
        };
        match &committed {
            Ok(()) => checkpointer.wake(),
            Err(e) => tracing::error!(error = %e, "a batch of SQLite writes failed"),
        }
        for work in batch {
            let answer = match &committed {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::Unavailable(format!("the write was not committed: {e}"))),
            };
            work.answer(answer);
        }
    }
}

/// Runs a batch in one transaction, each work under a savepoint (a failed one is rolled back
/// alone); an error if the transaction itself failed, which rolls all of it back.
fn run_batch(conn: &Connection, batch: &mut [Work]) -> StoreResult<()> {
    // Prepared once per connection (cached), not parsed again for every work of every batch.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop);
    run("BEGIN IMMEDIATE")?;
    let ran = (|| {
        for work in batch.iter_mut() {
            run("SAVEPOINT work")?;
            if !work.run(conn) {
                run("ROLLBACK TO work")?;
            }
            run("RELEASE work")?;
        }
        run("COMMIT")
    })();
    if ran.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Ok(ran?)
}

/// `sql` with its `$N` placeholders written as SQLite's positional `?N`.
pub(super) fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        match e {
            E::QueryReturnedNoRows => Self::NotFound,
            E::SqliteFailure(f, msg)
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Self::Conflict(msg.unwrap_or_else(|| f.to_string()))
            }
            E::FromSqlConversionFailure(..)
            | E::InvalidColumnType(..)
            | E::InvalidColumnName(_)
            | E::IntegralValueOutOfRange(..) => Self::Corrupt(e.to_string()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<rusqlite::Error> for crate::queue::QueueError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn direct(dir: &tempfile::TempDir) -> (Direct, Arc<Conns>) {
        use sqlx::Connection as _;
        let path = dir.path().join("d.db");
        let url = format!("sqlite://{}", path.display());
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let mut c = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        let turn = Arc::new(Conns::new(vec![c]));
        (Direct::open(&path, turn.clone()).unwrap(), turn)
    }

    fn put(k: &str, v: i64) -> impl FnOnce(&Connection) -> StoreResult<usize> + Send + 'static {
        let k = k.to_owned();
        move |c| Ok(c.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, v))?)
    }

    fn count(d: &Direct) -> i64 {
        d.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)).unwrap()
    }

    #[test]
    fn dollar_placeholders_become_positional() {
        assert_eq!(
            positional("a = $1 AND b IN ($12, $3) AND c = '$x'"),
            "a = ?1 AND b IN (?12, ?3) AND c = '$x'"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_commit_together_and_a_failed_one_is_rolled_back_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _turn) = direct(&dir).await;
        let d = Arc::new(d);
        d.write(put("taken", 0)).await.unwrap();
        let mut joins = Vec::new();
        for i in 0..200 {
            let d = d.clone();
            joins.push(tokio::spawn(async move { d.write(put(&format!("k{i}"), i)).await }));
        }
        // A key already stored: a unique violation, in whatever batch it lands.
        let dup = d.write(put("taken", 1)).await;
        for j in joins {
            assert_eq!(j.await.unwrap().unwrap(), 1);
        }
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        // A work that wrote, then failed: its write is undone, the rest stays.
        let partial = d
            .write(|c| -> StoreResult<()> {
                c.execute("INSERT INTO t (k, v) VALUES ('half', 1)", [])?;
                Err(StoreError::NotFound)
            })
            .await;
        assert!(matches!(partial, Err(StoreError::NotFound)));
        assert_eq!(count(&d), 201);
        let v7: i64 = d
            .read(|c| Ok(c.query_row("SELECT v FROM t WHERE k = 'k7'", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(v7, 7);
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _turn) = direct(&dir).await;
        let boom = d
            .write(|c| -> StoreResult<()> {
                c.execute("INSERT INTO t (k, v) VALUES ('p', 1)", [])?;
                panic!("bug in a write");
            })
            .await;
        assert!(matches!(boom, Err(StoreError::Unavailable(_))), "{boom:?}");
        d.write(put("after", 1)).await.unwrap();
        assert_eq!(count(&d), 1);
    }

    #[tokio::test]
    async fn the_writer_waits_for_the_stores_writer_turn_and_then_commits_the_queue_together() {
        let dir = tempfile::tempdir().unwrap();
        let (d, turn) = direct(&dir).await;
        let mut held = turn.get().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *held).await.unwrap();
        sqlx::query("INSERT INTO t (k, v) VALUES ('sqlx', 1)").execute(&mut *held).await.unwrap();
        let d = Arc::new(d);
        let write = tokio::spawn({
            let d = d.clone();
            async move { d.write(put("direct", 2)).await }
        });
        // More writes queue behind it meanwhile.
        let queued: Vec<_> = (0..50)
            .map(|i| {
                let d = d.clone();
                tokio::spawn(async move { d.write(put(&format!("q{i}"), i)).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!write.is_finished(), "the direct write waits while sqlx's writer holds the turn");
        sqlx::query("COMMIT").execute(&mut *held).await.unwrap();
        drop(held);
        write.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        // What queued while the turn was held ran as one transaction (or a few, had some
        // writes been slow to arrive), not as 50.
        assert!(d.batches() < 10, "{} transactions for 51 writes", d.batches());
        assert_eq!(count(&d), 52);
    }

    /// Waits (up to 10 s) for a checkpoint after the `seen`th.
    async fn checkpoint_after(d: &Direct, seen: u64) -> u64 {
        for _ in 0..1000 {
            let now = d.checkpoints();
            if now > seen {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no checkpoint within 10 s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_copies_the_log_back_so_it_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let (d, turn) = direct(&dir).await;
        d.write(|c| -> StoreResult<()> {
            c.execute("CREATE TABLE b (k INTEGER PRIMARY KEY, v BLOB NOT NULL)", [])?;
            Ok(())
        })
        .await
        .unwrap();
        let blob = vec![7u8; 4096];
        let mut seen = checkpoint_after(&d, 0).await;
        // Eight rounds of about 2.5 MB of log each: through the writer thread, and every
        // other round through the store's sqlx writer, which wakes the checkpointer itself.
        for round in 0..8i64 {
            if round % 2 == 0 {
                let blob = blob.clone();
                d.write(move |c| -> StoreResult<()> {
                    let mut insert = c.prepare("INSERT INTO b (k, v) VALUES (?1, ?2)")?;
                    for i in 0..300 {
                        insert.execute(rusqlite::params![round * 1000 + i, blob])?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
            } else {
                let mut w = turn.get().await.unwrap();
                sqlx::query("BEGIN").execute(&mut *w).await.unwrap();
                for i in 0..300 {
                    sqlx::query("INSERT INTO b (k, v) VALUES ($1, $2)")
                        .bind(round * 1000 + i)
                        .bind(&blob)
                        .execute(&mut *w)
                        .await
                        .unwrap();
                }
                sqlx::query("COMMIT").execute(&mut *w).await.unwrap();
                drop(w);
                d.wrote();
            }
            seen = checkpoint_after(&d, seen).await;
        }
        let rows: i64 =
            d.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM b", [], |r| r.get(0))?)).unwrap();
        assert_eq!(rows, 2400);
        // The log was copied back and started over from its beginning: its file holds a
        // round or two, not the 20 MB written.
        let wal = std::fs::metadata(dir.path().join("d.db-wal")).unwrap().len();
        assert!(wal < 8 << 20, "the log file grew to {wal} bytes");
        let db = std::fs::metadata(dir.path().join("d.db")).unwrap().len();
        assert!(db > 9 << 20, "the database file holds what was written: {db} bytes");
    }

    #[tokio::test]
    async fn a_closed_writer_refuses_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (d, _turn) = direct(&dir).await;
        d.write(put("a", 1)).await.unwrap();
        d.close().await;
        let e = d.write(put("b", 2)).await.unwrap_err();
        assert!(e.to_string().contains("store is closed"), "{e}");
    }
}
