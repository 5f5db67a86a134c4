//! The audit gate of a completion. Its `llm.chat` entry is written on its own task while the
//! upstream call opens (DESIGN: audited before the reply; a failed audit fails the request). An
//! entry that fails before the call opened cancels the call (its future is dropped) and fails
//! the request with its 503; a call that fails to open still waits for its entry, so every
//! attempt is on record, and a client that disconnects does not stop its entry.
//!
//! A non-streamed reply waits for both ([`AuditGate::open`], then [`AuditGate::result`]). A
//! streamed one sends its first tokens once the call has opened; its *end* — the finish chunk
//! and `[DONE]` — waits until the entry is durable ([`AuditGate::passed`]), and an entry that
//! cannot be made durable ends the stream with an `audit_unavailable` error event instead of a
//! finish.
//!
//! Why a stream does not wait before its first token, like every other audited request: the
//! entry's `fdatasync` and its thread hand-offs were the whole of the 1.6–1.9 ms the node added
//! to the first token (docs/benchmarks.md, issue 4). A model completion changes no state and
//! carries no secret (the audit classes of reliability-security A1/A2 — secret reads, policy
//! changes, tool executions, federation sends — are all gated before their reply); an unaudited
//! completion is never *finished*.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::error::{ApiError, ApiResult};

/// The audit code a failed gate reports in the stream's error event.
pub const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

enum State {
    Pending(JoinHandle<ApiResult<()>>),
    Passed,
    /// `reported`: a [`AuditGate::passed`] caller has been told.
    Failed {
        reported: bool,
    },
}

/// Why a streamed reply may not finish.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// Always [`AUDIT_UNAVAILABLE`].
    pub code: &'static str,
    /// Whether this is the first [`AuditGate::passed`] caller to learn of it (the one that
    /// reports it to the client).
    pub first: bool,
}

enum First<T> {
    Entry(ApiResult<()>),
    Call(ApiResult<T>),
}

/// Shared by the handler and the response stream; cheap to clone.
#[derive(Clone)]
pub struct AuditGate(Arc<Mutex<State>>);

fn joined(r: Result<ApiResult<()>, tokio::task::JoinError>) -> ApiResult<()> {
    r.unwrap_or_else(|e| Err(ApiError::Internal(format!("the audit task ended: {e}"))))
}

fn failed_before() -> ApiError {
    ApiError::Unavailable {
        code: AUDIT_UNAVAILABLE,
        detail: "the audit entry of this call could not be made durable".into(),
    }
}

impl AuditGate {
    /// Starts writing the entry on its own task.
    pub fn spawn(entry: impl Future<Output = ApiResult<()>> + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(State::Pending(tokio::spawn(entry)))))
    }

    /// Waits for the entry. The first waiter after a failure gets the audit's own error; later
    /// ones an `audit_unavailable`.
    pub async fn result(&self) -> ApiResult<()> {
        let mut state = self.0.lock().await;
        match &mut *state {
            State::Pending(handle) => {
                let r = joined(handle.await);
                *state = if r.is_ok() { State::Passed } else { State::Failed { reported: false } };
                r
            }
            State::Passed => Ok(()),
            State::Failed { .. } => Err(failed_before()),
        }
    }

    /// Opens the upstream call while the entry is written. An entry that fails first cancels
    /// the call (its future is dropped) and fails the request; a call that fails first waits
    /// for the entry, and the audit's error wins. A call that opens first returns at once: the
    /// stream's end checks the gate.
    pub async fn open<T>(&self, call: impl Future<Output = ApiResult<T>>) -> ApiResult<T> {
        let mut state = self.0.lock().await;
        let mut handle = match std::mem::replace(&mut *state, State::Passed) {
            State::Pending(handle) => handle,
            settled => {
                *state = settled;
                drop(state);
                self.result().await?;
                return call.await;
            }
        };
        tokio::pin!(call);
        let first = tokio::select! {
            r = &mut handle => First::Entry(joined(r)),
            opened = &mut call => First::Call(opened),
        };
        match first {
            First::Entry(r) => {
                *state = if r.is_ok() { State::Passed } else { State::Failed { reported: false } };
                drop(state);
                r?;
                call.await
            }
            First::Call(opened) => {
                *state = State::Pending(handle);
                drop(state);
                match opened {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        self.result().await?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// Whether the reply may finish: waits for the entry. A failure is logged once (without the
    /// reply) and reported as [`AUDIT_UNAVAILABLE`].
    pub async fn passed(&self) -> Result<(), Failure> {
        let Err(e) = self.result().await else { return Ok(()) };
        let mut state = self.0.lock().await;
        let first = matches!(*state, State::Failed { reported: false });
        *state = State::Failed { reported: true };
        if first {
            tracing::warn!(error = %e, "the audit entry of a streamed completion failed; the stream ends without a finish");
        }
        Err(Failure { code: AUDIT_UNAVAILABLE, first })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{AuditGate, Failure};
    use crate::error::ApiError;

    fn unavailable() -> ApiError {
        ApiError::Unavailable { code: "audit_unavailable", detail: "audit down".into() }
    }

    /// A gate whose entry succeeds after `ms`, and the flag it sets when it does.
    fn entry_after(ms: u64) -> (AuditGate, Arc<AtomicBool>) {
        let recorded = Arc::new(AtomicBool::new(false));
        let r = recorded.clone();
        let gate = AuditGate::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            r.store(true, Ordering::SeqCst);
            Ok(())
        });
        (gate, recorded)
    }

    /// A gate whose entry fails after `ms`.
    fn failing_after(ms: u64) -> AuditGate {
        AuditGate::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Err(unavailable())
        })
    }

    #[tokio::test]
    async fn an_entry_that_fails_before_the_call_opens_fails_the_request() {
        let gate = AuditGate::spawn(async { Err(unavailable()) });
        // The call never opens: only the entry's failure can end this.
        let err = gate.open(std::future::pending::<Result<u32, ApiError>>()).await.unwrap_err();
        assert!(matches!(err, ApiError::Unavailable { code: "audit_unavailable", .. }));
        assert_eq!(gate.passed().await, Err(Failure { code: "audit_unavailable", first: true }));
        assert_eq!(
            gate.passed().await,
            Err(Failure { code: "audit_unavailable", first: false }),
            "and it stays failed, reported once"
        );
    }

    #[tokio::test]
    async fn a_call_that_opens_first_returns_before_the_entry_is_durable() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let gate = AuditGate::spawn(async move {
            rx.await.ok();
            Ok(())
        });
        assert_eq!(gate.open(async { Ok(7) }).await.unwrap(), 7, "opened while the entry waits");
        let end = tokio::spawn({
            let gate = gate.clone();
            async move { gate.passed().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!end.is_finished(), "the end waits for the entry");
        tx.send(()).unwrap();
        assert_eq!(end.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn an_entry_that_fails_after_the_call_opened_stops_the_finish() {
        let gate = failing_after(20);
        assert_eq!(gate.open(async { Ok(1) }).await.unwrap(), 1);
        assert_eq!(gate.passed().await, Err(Failure { code: "audit_unavailable", first: true }));
    }

    #[tokio::test]
    async fn a_non_streamed_reply_waits_for_its_entry_and_is_refused_when_it_fails() {
        let (gate, recorded) = entry_after(20);
        assert_eq!(gate.open(async { Ok(5) }).await.unwrap(), 5);
        gate.result().await.unwrap();
        assert!(recorded.load(Ordering::SeqCst), "the reply waited for its entry");
        // The call succeeded before the entry failed: the reply is still refused, with the
        // audit's own error.
        let gate = failing_after(20);
        assert_eq!(gate.open(async { Ok(7) }).await.unwrap(), 7);
        assert!(matches!(
            gate.result().await,
            Err(ApiError::Unavailable { code: "audit_unavailable", .. })
        ));
    }

    #[tokio::test]
    async fn a_call_that_fails_to_open_still_waits_for_its_entry() {
        let (gate, recorded) = entry_after(20);
        let err = gate
            .open(async { Err::<u32, _>(ApiError::BadRequest("no".into())) })
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)));
        assert!(recorded.load(Ordering::SeqCst), "the entry was written before the error returned");
        // Both failed: the audit's error wins.
        let gate = failing_after(10);
        let err = gate.open(async { Err::<u32, _>(ApiError::BadRequest("no".into())) }).await;
        assert!(matches!(err, Err(ApiError::Unavailable { .. })));
    }

    #[tokio::test]
    async fn a_dropped_stream_does_not_stop_the_entry() {
        let (gate, recorded) = entry_after(10);
        gate.open(async { Ok(()) }).await.unwrap();
        drop(gate);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            recorded.load(Ordering::SeqCst),
            "the client went away; the entry is still written"
        );
    }
}
