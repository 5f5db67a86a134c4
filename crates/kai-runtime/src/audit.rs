//! The audit log writer: one task owns the chain head, seals entries with the node's identity,
//! and commits them in batches (group commit: one durable transaction acknowledges every
//! append waiting at that moment). A signed checkpoint is written every N entries or T seconds.
//!
//! Fail closed: `append` returns only after the entry is committed; if the store refuses,
//! every append in the batch gets [`AuditError::Unavailable`] and the in-memory head rolls back,
//! so the caller's operation fails and the chain stays consistent.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use kai_crypto::Identity;
use kai_crypto::audit::{
    Checkpoint, Entry, EntryDraft, GENESIS_ACTION, Hash, MerkleAccumulator, Outcome, ROTATE_ACTION,
};
use kai_store::{AUDIT_FRONTIER_KEY, AuditBackend};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics as m;

/// Meta key holding the DID that signed the genesis entry (the log's trust anchor).
pub const GENESIS_DID_KEY: &str = "identity.genesis";

/// Largest number of appends committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Live-tunable checkpoint policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSettings {
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
}

/// Why an audit append did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The entry could not be made durable; the operation it records must fail.
    #[error("the audit log cannot be written ({0}); the operation was not performed")]
    Unavailable(String),
    /// The writer has stopped (the node is shutting down).
    #[error("the audit log is closed (the node is shutting down)")]
    Closed,
    /// The stored log does not match this node's identity.
    #[error("audit log and identity disagree: {0}")]
    IdentityMismatch(String),
}

impl AuditError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) | Self::Closed => "audit_unavailable",
            Self::IdentityMismatch(_) => "identity_mismatch",
        }
    }
}

enum Command {
    Append(EntryDraft, oneshot::Sender<Result<u64, AuditError>>),
    Rotate(Box<Rotation>),
    Checkpoint(oneshot::Sender<Result<Option<Checkpoint>, AuditError>>),
}

struct Rotation {
    actor: String,
    new: Identity,
    proof: [u8; 64],
    reply: oneshot::Sender<Result<u64, AuditError>>,
}

/// Handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Command>,
    entries: Arc<AtomicU64>,
}

/// What `open` found and the chain head the writer continues from.
struct Head {
    seq: u64,
    prev: Hash,
    acc: MerkleAccumulator,
    last_checkpoint: u64,
    /// Entries covered by the frontier last stored (see [`FRONTIER_EVERY`]).
    frontier_at: u64,
}

/// The Merkle frontier is stored with every checkpoint and at least every this many entries,
/// not with every commit: a commit of entries alone is then one statement, and opening the log
/// extends the stored frontier with the (at most this many, or `checkpoint_every`) entries
/// after it.
const FRONTIER_EVERY: u64 = 1024;

async fn store_did_after_genesis(store: &Arc<dyn AuditBackend>) -> Result<String, AuditError> {
    let first =
        store.audit_range(1, 1).await.map_err(|e| AuditError::Unavailable(e.to_string()))?;
    first
        .into_iter()
        .next()
        .map(|e| e.signer)
        .ok_or_else(|| AuditError::Unavailable("genesis entry missing".into()))
}

/// Verifies the whole stored log page by page: chain, signatures, signer authority and every
/// checkpoint (plus `witness`, a checkpoint kept outside the database). `genesis` is the
/// trusted first identity; without it the log's own record is used.
pub async fn verify_store(
    store: &dyn AuditBackend,
    genesis: Option<kai_crypto::Did>,
    witness: Option<Checkpoint>,
) -> Result<
    Result<kai_crypto::audit::VerifyReport, kai_crypto::audit::VerifyError>,
    kai_store::StoreError,
> {
    verify_store_with_progress(store, genesis, witness, |_| {}).await
}

/// [`verify_store`], calling `progress` with the number of entries checked so far.
pub async fn verify_store_with_progress(
    store: &dyn AuditBackend,
    genesis: Option<kai_crypto::Did>,
    witness: Option<Checkpoint>,
    progress: impl Fn(u64),
) -> Result<
    Result<kai_crypto::audit::VerifyReport, kai_crypto::audit::VerifyError>,
    kai_store::StoreError,
> {
    let genesis = match genesis {
        Some(g) => Some(g),
        None => store.get_meta(GENESIS_DID_KEY).await?.and_then(|d| d.parse().ok()),
    };
    let mut checkpoints = store.audit_checkpoints().await?;
    checkpoints.extend(witness);
    let mut verifier = kai_crypto::audit::Verifier::new(checkpoints, genesis);
    let mut from = 1;
    loop {
        let page = store.audit_range(from, 20_000).await?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        let fed =
            tokio::task::spawn_blocking(move || verifier.feed(&page).map(|()| verifier)).await;
        verifier = match fed {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(e) => {
                return Err(kai_store::StoreError::Unavailable(format!(
                    "verifier task failed: {e}"
                )));
            }
        };
        progress(last);
        from = last + 1;
    }
    Ok(verifier.finish())
}

/// The DID that signs the next entry of a log whose newest entry is `head`.
pub fn current_signer(head: &Entry) -> &str {
    if head.action == ROTATE_ACTION && head.outcome == Outcome::Success.as_str() {
        &head.target
    } else {
        &head.signer
    }
}

async fn load_head(store: &dyn AuditBackend) -> Result<Option<Head>, AuditError> {
    let unavailable = |e: kai_store::StoreError| AuditError::Unavailable(e.to_string());
    let Some(head) = store.audit_head().await.map_err(unavailable)? else {
        return Ok(None);
    };
    let stored = store.get_meta(AUDIT_FRONTIER_KEY).await.map_err(unavailable)?;
    let (mut acc, frontier_at) = match stored.as_deref().and_then(MerkleAccumulator::from_text) {
        Some(acc) if acc.size() <= head.seq => {
            let at = acc.size();
            (acc, at)
        }
        _ => {
            tracing::warn!(
                entries = head.seq,
                "audit frontier missing or ahead of the log; rebuilding from the log"
            );
            (MerkleAccumulator::new(), 0)
        }
    };
    // The entries committed after the stored frontier (by design at most a few thousand).
    let mut from = acc.size() + 1;
    while from <= head.seq {
        let page = store.audit_range(from, 10_000).await.map_err(unavailable)?;
        let Some(last) = page.last() else { break };
        // A gap (a deleted entry) is not repaired here: `kai audit verify` reports it.
        page.iter().for_each(|e| acc.push(&e.hash));
        from = last.seq + 1;
    }
    let cps = store.audit_checkpoints().await.map_err(unavailable)?;
    Ok(Some(Head {
        seq: head.seq,
        prev: head.hash,
        acc,
        last_checkpoint: cps.last().map_or(0, |c| c.size),
        frontier_at,
    }))
}

impl AuditLog {
    /// Opens the log, writing the genesis entry if it is empty, and starts the writer task.
    /// `signer` must be the identity the log expects next (see [`current_signer`]).
    pub async fn open(
        store: Arc<dyn AuditBackend>,
        signer: Identity,
        settings: watch::Receiver<AuditSettings>,
        witness: Option<PathBuf>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, AuditError> {
        if let Some(head) =
            store.audit_head().await.map_err(|e| AuditError::Unavailable(e.to_string()))?
        {
            let expected = current_signer(&head);
            if expected != signer.did().as_str() {
                return Err(AuditError::IdentityMismatch(format!(
                    "the log's current signer is {expected} but the identity file holds {}",
                    signer.did()
                )));
            }
        }
        let head = load_head(store.as_ref()).await?;
        let fresh = head.is_none();
        let head = head.unwrap_or(Head {
            seq: 0,
            prev: [0; 32],
            acc: MerkleAccumulator::new(),
            last_checkpoint: 0,
            frontier_at: 0,
        });
        let entries = Arc::new(AtomicU64::new(head.seq));
        metrics::gauge!(m::AUDIT_ENTRIES).set(head.seq as f64);
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        let log_store = store.clone();
        let writer =
            Writer { store, signer, settings, witness, head, rx, entries: entries.clone() };
        tracker.spawn(writer.run(cancel));
        let log = Self { tx, entries };
        if fresh {
            // The writer fills in the signer's DID as actor and target of the genesis entry.
            log.append(EntryDraft {
                timestamp: Utc::now(),
                actor: String::new(),
                action: GENESIS_ACTION.into(),
                target: String::new(),
                outcome: Outcome::Success,
                details: serde_json::json!({"note": "first entry of this node's audit log"}),
            })
            .await?;
            let genesis = store_did_after_genesis(&log_store).await?;
            log_store
                .put_meta(GENESIS_DID_KEY, &genesis)
                .await
                .map_err(|e| AuditError::Unavailable(e.to_string()))?;
        }
        Ok(log)
    }

    /// Appends an entry and waits until it is durable. Returns its `seq`.
    pub async fn append(&self, draft: EntryDraft) -> Result<u64, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Append(draft, reply)).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Convenience for the common case.
    pub async fn record(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: Outcome,
        details: serde_json::Value,
    ) -> Result<u64, AuditError> {
        self.append(EntryDraft {
            timestamp: Utc::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            details,
        })
        .await
    }

    /// Hands signing over to `new`: the rotation entry is signed by the current key and
    /// carries `proof` (the new key's signature over
    /// [`kai_crypto::audit::rotation_proof_message`] of the old DID). Later entries are signed
    /// by `new`; entries signed before stay verifiable.
    pub async fn rotate(
        &self,
        actor: &str,
        new: Identity,
        proof: [u8; 64],
    ) -> Result<u64, AuditError> {
        let (reply, rx) = oneshot::channel();
        let rotation = Rotation { actor: actor.to_owned(), new, proof, reply };
        self.tx.send(Command::Rotate(Box::new(rotation))).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes a checkpoint now if there are entries since the last one.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Checkpoint(reply)).await.map_err(|_| AuditError::Closed)?;
        rx.await.map_err(|_| AuditError::Closed)?
    }

    /// Entries committed so far.
    pub fn len(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// True before the genesis entry is committed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Writer {
    store: Arc<dyn AuditBackend>,
    signer: Identity,
    settings: watch::Receiver<AuditSettings>,
    witness: Option<PathBuf>,
    head: Head,
    rx: mpsc::Receiver<Command>,
    entries: Arc<AtomicU64>,
}

enum Reply {
    Seq(oneshot::Sender<Result<u64, AuditError>>, u64),
    Checkpoint(oneshot::Sender<Result<Option<Checkpoint>, AuditError>>),
}

impl Writer {
    async fn run(mut self, cancel: CancellationToken) {
        let mut interval = self.settings.borrow().checkpoint_interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let first = tokio::select! {
                biased;
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                _ = tick.tick() => {
                    if self.head.acc.size() > self.head.last_checkpoint {
                        let (reply, _) = oneshot::channel();
                        self.commit(vec![Command::Checkpoint(reply)]).await;
                    }
                    let now = self.settings.borrow().checkpoint_interval;
                    if now != interval {
                        interval = now;
                        tick = tokio::time::interval(interval);
                        tick.tick().await;
                    }
                    continue;
                }
                _ = cancel.cancelled() => break,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
        // Shutdown: finish what was already asked for, then seal the tail with a checkpoint.
        self.rx.close();
        let mut rest = Vec::new();
        while let Ok(cmd) = self.rx.try_recv() {
            rest.push(cmd);
        }
        let (reply, _) = oneshot::channel();
        rest.push(Command::Checkpoint(reply));
        self.commit(rest).await;
    }

    fn seal(&mut self, mut draft: EntryDraft) -> Entry {
        if draft.action == GENESIS_ACTION {
            draft.actor = self.signer.did().to_string();
            draft.target = self.signer.did().to_string();
        }
        let seq = self.head.seq + 1;
        let entry = Entry::seal(draft, seq, self.head.prev, &self.signer);
        self.head.seq = seq;
        self.head.prev = entry.hash;
        self.head.acc.push(&entry.hash);
        entry
    }

    async fn commit(&mut self, batch: Vec<Command>) {
        let saved = (self.head.seq, self.head.prev, self.head.acc.clone(), self.signer.clone());
        let mut entries = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut force_checkpoint = false;
        for cmd in batch {
            match cmd {
                Command::Append(draft, reply) => {
                    let e = self.seal(draft);
                    replies.push(Reply::Seq(reply, e.seq));
                    entries.push(e);
                }
                Command::Rotate(rotation) => {
                    let Rotation { actor, new, proof, reply } = *rotation;
                    let e = self.seal(EntryDraft {
                        timestamp: Utc::now(),
                        actor,
                        action: ROTATE_ACTION.into(),
                        target: new.did().to_string(),
                        outcome: Outcome::Success,
                        details: serde_json::json!({"proof": hex::encode(proof), "previous": self.signer.did().as_str()}),
                    });
                    replies.push(Reply::Seq(reply, e.seq));
                    entries.push(e);
                    self.signer = new;
                    force_checkpoint = true;
                }
                Command::Checkpoint(reply) => {
                    force_checkpoint = true;
                    replies.push(Reply::Checkpoint(reply));
                }
            }
        }
        let every = self.settings.borrow().checkpoint_every.max(1);
        let size = self.head.acc.size();
        let due = size > self.head.last_checkpoint
            && (force_checkpoint || size - self.head.last_checkpoint >= every);
        let checkpoint =
            due.then(|| Checkpoint::sign(size, self.head.acc.root(), Utc::now(), &self.signer));
        if entries.is_empty() && checkpoint.is_none() {
            for r in replies {
                if let Reply::Checkpoint(tx) = r {
                    let _ = tx.send(Ok(None));
                }
            }
            return;
        }
        let frontier = (checkpoint.is_some() || size - self.head.frontier_at >= FRONTIER_EVERY)
            .then(|| self.head.acc.to_text());
        let result =
            self.store.append_audit(&entries, checkpoint.as_ref(), frontier.as_deref()).await;
        match result {
            Ok(()) => {
                if frontier.is_some() {
                    self.head.frontier_at = size;
                }
                if let Some(cp) = &checkpoint {
                    self.head.last_checkpoint = cp.size;
                    self.write_witness(cp).await;
                }
                self.entries.store(self.head.seq, Ordering::Relaxed);
                metrics::gauge!(m::AUDIT_ENTRIES).set(self.head.seq as f64);
                metrics::histogram!(m::AUDIT_BATCH_SIZE).record(entries.len() as f64);
                for r in replies {
                    match r {
                        Reply::Seq(tx, seq) => drop(tx.send(Ok(seq))),
                        Reply::Checkpoint(tx) => drop(tx.send(Ok(checkpoint.clone()))),
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, entries = entries.len(), "audit commit failed; failing the operations it records");
                metrics::counter!(m::AUDIT_FAILURES).increment(entries.len() as u64);
                (self.head.seq, self.head.prev, self.head.acc, self.signer) = saved;
                let err = AuditError::Unavailable(e.code().to_owned());
                for r in replies {
                    match r {
                        Reply::Seq(tx, _) => drop(tx.send(Err(err.clone()))),
                        Reply::Checkpoint(tx) => drop(tx.send(Err(err.clone()))),
                    }
                }
            }
        }
    }

    /// Keeps a copy of the newest checkpoint outside the database, so cutting the log's tail
    /// in the database alone is caught by `kai audit verify`.
    async fn write_witness(&self, cp: &Checkpoint) {
        let Some(path) = &self.witness else { return };
        let tmp = path.with_extension("tmp");
        let Ok(body) = serde_json::to_vec_pretty(cp) else { return };
        let result = async {
            tokio::fs::write(&tmp, &body).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, path).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, path = %path.display(), "could not write the audit witness checkpoint");
        }
    }
}

#[cfg(test)]
mod tests;
