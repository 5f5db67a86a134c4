//! Write transactions that cross to SQLite's connection thread once: `BEGIN IMMEDIATE`, the
//! statements and `COMMIT` sent as one script with one list of arguments.
//!
//! Why: sqlx runs every statement as a round trip to the connection's thread, and the writer
//! connection is held for the whole transaction. Under load each round trip also waits for the
//! holding task to be scheduled again, so a four-statement transaction held the one writer for
//! four scheduling delays, and the writer's hold time, not CPU, set the pace of task steps
//! (docs/benchmarks.md, issue 5: the node used 1.07 of 2 cores). A script holds it for one.
//!
//! sqlx-sqlite 0.8 runs every statement of a multi-statement query in one command and binds
//! `$N` placeholders by absolute number (its docs call multi-statement queries deprecated for
//! a future release; `a_script_runs_in_one_transaction_and_reports_each_statement` below fails
//! loudly if an upgrade drops them). [`Script::push`] renumbers each statement's `$1…$n` after
//! the arguments bound before it, so statements keep the text they have on PostgreSQL.
//!
//! A script must check what it needs in SQL (a later statement guarded by `EXISTS`), since it
//! commits before Rust sees any result. If a statement fails, the transaction is rolled back
//! before the error returns; if the caller's future is dropped part-way, the connection is
//! marked and the next holder rolls back first ([`crate::sqlite_conns`]).

use futures::TryStreamExt as _;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments as _, Either, Executor as _};

use crate::error::{StoreError, StoreResult};
use crate::sqlite_conns::Conn;

/// Statements and their arguments, run as one transaction by [`Script::run`].
pub(crate) struct Script {
    sql: String,
    args: SqliteArguments<'static>,
    bad: Option<String>,
    /// Starts with `BEGIN IMMEDIATE` (whose own result is not reported).
    begins: bool,
}

/// What one statement of a script did.
pub(crate) struct Done {
    /// Rows it changed.
    pub(crate) changes: u64,
    /// Rows it returned.
    pub(crate) rows: Vec<SqliteRow>,
}

/// `$N` → `$(N + base)`. The store's statements have no `$` inside string literals.
fn renumber(statement: &str, base: usize) -> String {
    let mut out = String::with_capacity(statement.len() + 8);
    let mut chars = statement.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n * 10 + v as usize;
            digits = true;
            chars.next();
        }
        if digits {
            out.push_str(&(n + base).to_string());
        }
    }
    out
}

impl Script {
    /// A write transaction: the script starts with `BEGIN IMMEDIATE`.
    pub(crate) fn new() -> Self {
        Self {
            sql: "BEGIN IMMEDIATE".into(),
            args: SqliteArguments::default(),
            bad: None,
            begins: true,
        }
    }

    /// More statements of a transaction an earlier [`Self::run_open`] left open.
    pub(crate) fn continued() -> Self {
        Self { sql: String::new(), args: SqliteArguments::default(), bad: None, begins: false }
    }

    /// Appends a statement; its `$1…$n` are the next `n` arguments [`Self::bind`]s add.
    pub(crate) fn push(&mut self, statement: &str) -> &mut Self {
        if !self.sql.is_empty() {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(&renumber(statement, self.args.len()));
        self
    }

    /// Adds the next argument.
    pub(crate) fn bind<T>(&mut self, value: T) -> &mut Self
    where
        T: sqlx::Encode<'static, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite> + 'static,
    {
        if let Err(e) = self.args.add(value) {
            self.bad.get_or_insert_with(|| e.to_string());
        }
        self
    }

    /// Runs the script and commits. One [`Done`] per statement pushed, in order.
    pub(crate) async fn run(mut self, conn: &mut Conn<'_>) -> StoreResult<Vec<Done>> {
        self.push("COMMIT");
        let mut done = self.execute(conn).await?;
        done.pop();
        conn.set_open(false);
        Ok(done)
    }

    /// Runs the script and leaves its transaction open for more: a [`Self::continued`] script,
    /// statements of sqlx's own on the connection, then [`Self::end`]. A failure rolls back.
    pub(crate) async fn run_open(self, conn: &mut Conn<'_>) -> StoreResult<Vec<Done>> {
        self.execute(conn).await
    }

    /// Commits (`commit`) or rolls back the transaction a [`Self::run_open`] left open.
    pub(crate) async fn end(conn: &mut Conn<'_>, commit: bool) -> StoreResult<()> {
        let ended = conn.execute(if commit { "COMMIT" } else { "ROLLBACK" }).await;
        if ended.is_err() {
            let _ = conn.execute("ROLLBACK").await;
        }
        conn.set_open(false);
        ended?;
        Ok(())
    }

    async fn execute(self, conn: &mut Conn<'_>) -> StoreResult<Vec<Done>> {
        if let Some(e) = self.bad {
            if !self.begins {
                Self::end(conn, false).await?;
            }
            return Err(StoreError::Conflict(format!("a value could not be bound: {e}")));
        }
        conn.set_open(true);
        let ran = collect(conn, &self.sql, self.args).await;
        let Ok(mut done) = ran else {
            // A failed statement leaves the transaction open (SQLite rolls back only on some
            // errors); an error from this ROLLBACK means it had none left.
            let _ = conn.execute("ROLLBACK").await;
            conn.set_open(false);
            return ran;
        };
        if self.begins && !done.is_empty() {
            done.remove(0);
        }
        Ok(done)
    }
}

async fn collect(
    conn: &mut Conn<'_>,
    sql: &str,
    args: SqliteArguments<'static>,
) -> StoreResult<Vec<Done>> {
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let mut results = (&mut *conn).fetch_many(sqlx::query_with(sql, args));
    while let Some(item) = results.try_next().await? {
        match item {
            Either::Left(r) => {
                out.push(Done { changes: r.rows_affected(), rows: std::mem::take(&mut rows) })
            }
            Either::Right(row) => rows.push(row),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use sqlx::Connection as _;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::{Script, renumber};
    use crate::sqlite_conns::Conns;

    #[test]
    fn placeholders_move_past_the_arguments_before_them() {
        assert_eq!(
            renumber("UPDATE t SET a = $1 WHERE b = $2 AND c = $12", 3),
            "UPDATE t SET a = $4 WHERE b = $5 AND c = $15"
        );
        assert_eq!(renumber("SELECT 1", 9), "SELECT 1");
    }

    async fn writer(dir: &tempfile::TempDir) -> Conns {
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let options = SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
        let mut c = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY, n INTEGER NOT NULL)")
            .execute(&mut c)
            .await
            .unwrap();
        Conns::new(vec![c])
    }

    #[tokio::test]
    async fn a_script_runs_in_one_transaction_and_reports_each_statement() {
        let dir = tempfile::tempdir().unwrap();
        let set = writer(&dir).await;
        let mut conn = set.get().await.unwrap();
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("a").bind(1i64);
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("b").bind(2i64);
        s.push("UPDATE t SET n = n + $1 WHERE k = $2 RETURNING n").bind(10i64).bind("b");
        let done = s.run(&mut conn).await.unwrap();
        assert_eq!(done.len(), 3);
        assert_eq!(done.iter().map(|d| d.changes).collect::<Vec<_>>(), [1, 1, 1]);
        let n: i64 = sqlx::Row::get(&done[2].rows[0], "n");
        assert_eq!(n, 12);
        assert!(done[0].rows.is_empty());
    }

    #[tokio::test]
    async fn a_failed_statement_rolls_the_whole_script_back() {
        let dir = tempfile::tempdir().unwrap();
        let set = writer(&dir).await;
        let mut conn = set.get().await.unwrap();
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("a").bind(1i64);
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("a").bind(2i64);
        assert!(s.run(&mut conn).await.is_err(), "the second insert breaks the primary key");
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(rows, 0, "the first insert is gone with it");
        // And the connection takes the next script.
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("c").bind(3i64);
        assert_eq!(s.run(&mut conn).await.unwrap()[0].changes, 1);
    }

    #[tokio::test]
    async fn a_script_abandoned_part_way_is_rolled_back_by_the_next_holder() {
        let dir = tempfile::tempdir().unwrap();
        let set = writer(&dir).await;
        {
            let mut conn = set.get().await.unwrap();
            // Open a transaction the way a script does and drop the connection without
            // finishing, as a cancelled script would.
            sqlx::Executor::execute(
                &mut *conn,
                "BEGIN IMMEDIATE; INSERT INTO t (k, n) VALUES ('x', 1)",
            )
            .await
            .unwrap();
            conn.set_open(true);
        }
        let mut conn = set.get().await.unwrap();
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(rows, 0, "the abandoned insert was rolled back");
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("y").bind(1i64);
        s.run(&mut conn).await.expect("no transaction is left open");
    }

    #[tokio::test]
    async fn an_open_script_continues_and_ends_as_the_caller_decides() {
        let dir = tempfile::tempdir().unwrap();
        let set = writer(&dir).await;
        let mut conn = set.get().await.unwrap();
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("a").bind(1i64);
        s.push("SELECT n FROM t WHERE k = $1").bind("a");
        let read = s.run_open(&mut conn).await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].rows.len(), 1, "the open transaction reads its own write");
        let mut more = Script::continued();
        more.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("b").bind(2i64);
        assert_eq!(more.run_open(&mut conn).await.unwrap()[0].changes, 1);
        Script::end(&mut conn, false).await.unwrap();
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(rows, 0, "ended without a commit: both inserts are gone");
        let mut s = Script::new();
        s.push("INSERT INTO t (k, n) VALUES ($1, $2)").bind("c").bind(3i64);
        s.run_open(&mut conn).await.unwrap();
        Script::end(&mut conn, true).await.unwrap();
        let rows: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(rows, 1);
    }
}
