//! The event bus: publish an [`Envelope`], subscribe with a filter, resume after an offset.
//!
//! Two backends share this trait: [`memory::MemoryBus`] (in-process fan-out, event log in the
//! node's store) and [`nats::NatsBus`] (NATS JetStream, so several nodes share one stream).
//! Either way `publish` returns only once the event is persisted, with its offset set.
//!
//! Delivery policies: [`DeliveryPolicy::Block`] applies back-pressure (the publisher waits for
//! room in the subscriber's queue; for internal consumers that must see everything), while
//! [`DeliveryPolicy::DropSlow`] ends a subscription whose queue is full (for remote clients,
//! which must never stall the node); the subscriber learns why via [`Subscription::closed_reason`].

pub mod memory;
#[cfg(feature = "nats")]
pub mod nats;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use kai_core::Envelope;
use kai_core::event::{EventFilter, MAX_PAYLOAD_BYTES};
use tokio::sync::mpsc;

/// What happens when a subscriber's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryPolicy {
    /// The publisher waits (back-pressure).
    Block,
    /// The subscription is closed with [`CloseReason::TooSlow`].
    DropSlow,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its queue was full under [`DeliveryPolicy::DropSlow`].
    TooSlow,
    /// The bus shut down or lost its backend.
    BusClosed,
}

/// Bus errors.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event payload is {0} bytes; the limit is {MAX_PAYLOAD_BYTES}")]
    TooLarge(usize),
    #[error("event could not be persisted: {0}")]
    Store(#[from] kai_store::StoreError),
    #[error("event bus backend unavailable: {0}")]
    Backend(String),
}

impl BusError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "payload_too_large",
            Self::Store(e) => e.code(),
            Self::Backend(_) => "bus_unavailable",
        }
    }
}

/// A live stream of events for one subscriber, in offset order.
pub struct Subscription {
    rx: mpsc::Receiver<Arc<Envelope>>,
    reason: Arc<OnceLock<CloseReason>>,
}

impl Subscription {
    fn new(capacity: usize) -> (mpsc::Sender<Arc<Envelope>>, Arc<OnceLock<CloseReason>>, Self) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let reason = Arc::new(OnceLock::new());
        (tx, reason.clone(), Self { rx, reason })
    }

    /// The next event, or `None` once the subscription has ended.
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.rx.recv().await.map(Arc::unwrap_or_clone)
    }

    /// The next event as the bus shares it between subscribers (no copy of its own): for
    /// forwarders that only read it, such as the WebSocket's.
    pub async fn recv_shared(&mut self) -> Option<Arc<Envelope>> {
        self.rx.recv().await
    }

    /// Why the subscription ended, once it has.
    pub fn closed_reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }
}

/// The event bus.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Persists and delivers an event; returns it with `offset` set.
    async fn publish(&self, event: Envelope) -> Result<Envelope, BusError>;
    /// Subscribes to events matching `filter`. With `after = Some(n)` the subscription first
    /// replays every stored event with offset > n, then continues live without gaps or repeats.
    async fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        policy: DeliveryPolicy,
    ) -> Result<Subscription, BusError>;
    /// Up to `limit` stored events with offset greater than `after`, oldest first.
    async fn read(&self, after: u64, limit: u32) -> Result<Vec<Envelope>, BusError>;
    /// The offset of the newest event.
    async fn last_offset(&self) -> Result<u64, BusError>;
    /// `memory` or `nats`.
    fn backend(&self) -> &'static str;
}

fn check_size(event: &Envelope) -> Result<(), BusError> {
    /// Counts what the payload would serialize to, without keeping it (every event is measured).
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, &event.payload)
        .map_err(|e| BusError::Backend(format!("the payload does not serialize: {e}")))?;
    let size = count.0;
    if size > MAX_PAYLOAD_BYTES { Err(BusError::TooLarge(size)) } else { Ok(()) }
}

#[cfg(test)]
mod tests;
