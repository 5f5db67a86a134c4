//! The SQLite versions of the two append-only logs' writes — audit entries (with their
//! checkpoint and frontier) and bus events — and of the queue's wake-up read, through
//! [`super::direct`]: every step appends to both logs, so on the writer thread they commit in
//! the same batches as the steps' own transactions instead of taking sqlx's writer in turn.
//! The PostgreSQL versions are in `postgres.rs`.

use std::sync::LazyLock;

use kai_crypto::audit::{Checkpoint, Entry};
use rusqlite::OptionalExtension as _;
use rusqlite::types::Value;

use super::SqliteStore;
use super::direct::positional;
use crate::error::StoreResult;
use crate::sql::{AUDIT_COLUMNS, entry_is_sane, i64_of, u64_of};

static INSERT_ENTRY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO audit_entries ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    )
});

impl SqliteStore {
    /// Appends audit entries, the checkpoint and the frontier in one transaction.
    pub(super) async fn audit_append_tx(
        &self,
        entries: &[Entry],
        checkpoint: Option<&Checkpoint>,
        frontier: Option<&str>,
    ) -> StoreResult<()> {
        if entries.is_empty() && checkpoint.is_none() && frontier.is_none() {
            return Ok(());
        }
        let rows = entries
            .iter()
            .map(|e| {
                entry_is_sane(e)?;
                Ok((i64_of(e.seq)?, e.clone()))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let checkpoint =
            checkpoint.map(|cp| Ok::<_, crate::StoreError>((i64_of(cp.size)?, cp.clone())));
        let checkpoint = checkpoint.transpose()?;
        let frontier = frontier.map(str::to_owned);
        self.direct
            .write(move |c| {
                let mut insert = c.prepare_cached(&INSERT_ENTRY)?;
                for (seq, e) in &rows {
                    insert.execute(rusqlite::params![
                        seq,
                        e.timestamp_us,
                        e.actor,
                        e.action,
                        e.target,
                        e.outcome,
                        e.details,
                        &e.prev_hash[..],
                        e.signer,
                        &e.hash[..],
                        &e.signature[..]
                    ])?;
                }
                if let Some((size, cp)) = &checkpoint {
                    c.prepare_cached(
                        "INSERT INTO audit_checkpoints (size, root, timestamp_us, signer, signature) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(rusqlite::params![
                        size,
                        &cp.root[..],
                        cp.timestamp_us,
                        cp.signer,
                        &cp.signature[..]
                    ])?;
                }
                if let Some(frontier) = &frontier {
                    c.prepare_cached(
                        "INSERT INTO node_meta (key, value) VALUES (?1, ?2) \
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    )?
                    .execute([crate::AUDIT_FRONTIER_KEY, frontier])?;
                }
                Ok(())
            })
            .await
    }

    /// Stores events (an event already stored keeps its offset); their offsets, in order.
    pub(super) async fn events_append_tx(
        &self,
        events: &[kai_core::Envelope],
    ) -> StoreResult<Vec<u64>> {
        let rows: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.id.to_string(),
                    e.kind.as_str().to_owned(),
                    e.agent.as_ref().map(|a| a.as_str().to_owned()),
                    e.task_id.clone(),
                    e.payload.to_string(),
                    e.timestamp.timestamp_micros(),
                )
            })
            .collect();
        self.direct
            .write(move |c| {
                let mut insert = c.prepare_cached(
                    "INSERT INTO events (id, type, agent, task_id, payload, timestamp_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING RETURNING event_offset",
                )?;
                let mut offsets = Vec::with_capacity(rows.len());
                for (id, kind, agent, task, payload, at) in &rows {
                    let new: Option<i64> = insert
                        .query_row(rusqlite::params![id, kind, agent, task, payload, at], |r| {
                            r.get(0)
                        })
                        .optional()?;
                    let offset = match new {
                        Some(o) => o,
                        // Already stored (a retried publish): its offset.
                        None => c
                            .prepare_cached("SELECT event_offset FROM events WHERE id = ?1")?
                            .query_row([id], |r| r.get(0))?,
                    };
                    offsets.push(u64_of(offset, "offset")?);
                }
                Ok(offsets)
            })
            .await
    }

    /// When the next of `queues`' jobs is due or lease runs out, read in place (async only to
    /// match the PostgreSQL version).
    #[allow(clippy::unused_async)]
    pub(super) async fn next_wakeup_read(
        &self,
        queues: &[kai_core::queue::QueueName],
    ) -> crate::queue::QueueResult<Option<i64>> {
        let list = crate::sql_queue::placeholders(1, queues.len());
        let sql = positional(&format!(
            "SELECT (SELECT MIN(run_at_us) FROM queue_jobs WHERE state = 'queued' AND queue IN ({list})), \
             (SELECT MIN(lease_until_us) FROM queue_jobs WHERE state = 'running' AND queue IN ({list}))"
        ));
        Ok(self.direct.read(|c| {
            let names = queues.iter().map(|q| Value::from(q.as_str().to_owned()));
            let (ready, lease): (Option<i64>, Option<i64>) = c
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(names), |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(match (ready, lease) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            })
        })?)
    }
}
