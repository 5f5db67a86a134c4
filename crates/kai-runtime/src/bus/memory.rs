//! In-process bus. `publish` appends to the store's event log (the source of truth), then fans
//! out to subscribers under one lock, so every subscriber sees events in offset order.
//! Publishers that arrive while another holds the lock queue their events; the next holder
//! appends the whole queue in one transaction and fans it out in order (group append: a busy
//! node pays one commit per batch, not per event), and each publisher then waits for the
//! shared flush that makes its event durable.
//! Replay reads the log page by page, then switches to the live feed, skipping what it
//! already delivered (the live feed is registered before the first page is read: no gap).

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use kai_core::Envelope;
use kai_core::event::EventFilter;
use kai_store::EventLog;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{BusError, CloseReason, DeliveryPolicy, EventBus, Subscription, check_size};
use crate::metrics as m;

struct Subscriber {
    filter: EventFilter,
    tx: mpsc::Sender<Arc<Envelope>>,
    policy: DeliveryPolicy,
    reason: Arc<OnceLock<CloseReason>>,
}

/// An event waiting for the next append, and where its outcome goes.
type Pending = (Envelope, oneshot::Sender<Result<Envelope, BusError>>);

/// Most events appended in one transaction.
const MAX_APPEND_BATCH: usize = 512;

/// The in-process bus.
pub struct MemoryBus {
    log: Arc<dyn EventLog>,
    subscribers: Mutex<Vec<Arc<Subscriber>>>,
    /// Held while appending and fanning out, so offsets and delivery order agree.
    order: tokio::sync::Mutex<()>,
    /// Events published while the lock was held, in arrival order.
    pending: Mutex<Vec<Pending>>,
    queue: usize,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl MemoryBus {
    /// A bus persisting to `log`, with `queue` events of room per subscriber. Replay tasks
    /// run on `tracker` and stop on `cancel`.
    pub fn new(
        log: Arc<dyn EventLog>,
        queue: usize,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            log,
            subscribers: Mutex::new(Vec::new()),
            order: tokio::sync::Mutex::new(()),
            pending: Mutex::new(Vec::new()),
            queue,
            tracker,
            cancel,
        }
    }

    fn register(
        &self,
        filter: EventFilter,
        tx: mpsc::Sender<Arc<Envelope>>,
        policy: DeliveryPolicy,
        reason: Arc<OnceLock<CloseReason>>,
    ) {
        let sub = Arc::new(Subscriber { filter, tx, policy, reason });
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).push(sub);
    }

    fn snapshot(&self) -> Vec<Arc<Subscriber>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn remove(&self, dead: &[Arc<Subscriber>]) {
        if dead.is_empty() {
            return;
        }
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| !dead.iter().any(|d| Arc::ptr_eq(s, d)));
    }

    /// Appends up to [`MAX_APPEND_BATCH`] queued events in one transaction, fans them out in
    /// offset order and tells each publisher. Called with the ordering lock held.
    async fn append_pending(&self) {
        let batch: Vec<Pending> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let n = pending.len().min(MAX_APPEND_BATCH);
            pending.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let (events, replies): (Vec<Envelope>, Vec<_>) = batch.into_iter().unzip();
        match self.log.append_events(&events).await {
            Ok(offsets) => {
                // Delivered in offset order, whatever order the store assigned them in.
                let mut stored: Vec<_> = events.into_iter().zip(replies).zip(offsets).collect();
                stored.sort_by_key(|(_, offset)| *offset);
                for ((mut event, reply), offset) in stored {
                    event.offset = Some(offset);
                    self.fan_out(&event).await;
                    let _ = reply.send(Ok(event));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(BusError::Store(kai_store::StoreError::Unavailable(
                        message.clone(),
                    ))));
                }
            }
        }
    }

    /// Delivers one stored event to every matching subscriber (by its delivery policy).
    async fn fan_out(&self, event: &Envelope) {
        metrics::counter!(m::EVENTS_PUBLISHED, "type" => event.kind.to_string()).increment(1);
        let mut dead = Vec::new();
        let mut depth = 0;
        // One copy of the event, shared by every subscriber's queue, made when the first
        // subscriber wants it (most events of a busy node match no subscriber).
        let mut shared: Option<Arc<Envelope>> = None;
        for sub in self.snapshot() {
            if sub.tx.is_closed() {
                dead.push(sub);
                continue;
            }
            if sub.filter.matches(event) {
                let shared = shared.get_or_insert_with(|| Arc::new(event.clone()));
                match sub.policy {
                    DeliveryPolicy::Block => {
                        if sub.tx.send(shared.clone()).await.is_err() {
                            dead.push(sub.clone());
                        }
                    }
                    DeliveryPolicy::DropSlow => match sub.tx.try_send(shared.clone()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            let _ = sub.reason.set(CloseReason::TooSlow);
                            metrics::counter!(m::BUS_SUBSCRIBERS_DROPPED).increment(1);
                            dead.push(sub.clone());
                        }
                        Err(TrySendError::Closed(_)) => dead.push(sub.clone()),
                    },
                }
            }
            depth += sub.tx.max_capacity() - sub.tx.capacity();
        }
        self.remove(&dead);
        metrics::gauge!(m::BUS_QUEUE_DEPTH).set(depth as f64);
    }

    /// Number of live subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: Envelope) -> Result<Envelope, BusError> {
        check_size(&event)?;
        let (tx, mut rx) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).push((event, tx));
        let outcome = {
            let _order = self.order.lock().await;
            // Append what is queued, oldest first, until an earlier holder or this one has
            // handled this publisher's event.
            loop {
                match rx.try_recv() {
                    Ok(outcome) => break outcome,
                    // The holder that took it was cancelled mid-append.
                    Err(oneshot::error::TryRecvError::Closed) => {
                        break Err(BusError::Backend(
                            "the append was interrupted; publish again".into(),
                        ));
                    }
                    Err(oneshot::error::TryRecvError::Empty) => self.append_pending().await,
                }
            }
        };
        let event = outcome?;
        // The flush to disk happens outside the ordering lock, so publishers share flushes
        // instead of queueing one each. Subscribers may therefore see an event a moment before
        // it is durable: a power loss in that moment (never a process crash) can take it back.
        self.log.sync_events().await?;
        Ok(event)
    }

    async fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        policy: DeliveryPolicy,
    ) -> Result<Subscription, BusError> {
        let (tx, reason, sub) = Subscription::new(self.queue);
        let Some(after) = after else {
            self.register(filter, tx, policy, reason);
            return Ok(sub);
        };
        // Live events go to a private queue first, so they wait while the log is replayed.
        let (live_tx, mut live_rx) = mpsc::channel(self.queue.max(1));
        {
            let _order = self.order.lock().await;
            self.register(filter.clone(), live_tx, policy, reason.clone());
        }
        let log = self.log.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = replay_then_follow(log, filter, after, tx, &mut live_rx, reason) => {}
                () = cancel.cancelled() => {}
            }
        });
        Ok(sub)
    }

    async fn read(&self, after: u64, limit: u32) -> Result<Vec<Envelope>, BusError> {
        Ok(self.log.events_after(after, limit).await?)
    }

    async fn last_offset(&self) -> Result<u64, BusError> {
        Ok(self.log.last_event_offset().await?)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

/// Sends stored events after `after`, then the live feed minus what was already sent.
async fn replay_then_follow(
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    after: u64,
    tx: mpsc::Sender<Arc<Envelope>>,
    live_rx: &mut mpsc::Receiver<Arc<Envelope>>,
    reason: Arc<OnceLock<CloseReason>>,
) {
    let mut last = after;
    loop {
        let page = match log.events_after(last, 500).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "event replay failed");
                let _ = reason.set(CloseReason::BusClosed);
                return;
            }
        };
        let Some(end) = page.last().and_then(|e| e.offset) else { break };
        for e in page.into_iter().filter(|e| filter.matches(e)) {
            if tx.send(Arc::new(e)).await.is_err() {
                return;
            }
        }
        last = end;
    }
    while let Some(e) = live_rx.recv().await {
        if e.offset.is_some_and(|o| o > last) && tx.send(e).await.is_err() {
            return;
        }
    }
}
