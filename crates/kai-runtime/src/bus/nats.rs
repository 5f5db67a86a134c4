//! NATS JetStream bus: events are messages on the stream `<stream>` under subjects
//! `<stream>.<TYPE>`; the JetStream sequence is the event offset, so every node attached to the
//! stream sees the same offsets and can resume from any of them. `Nats-Msg-Id` carries the event
//! id, so a retried publish is de-duplicated by the server.
//!
//! Durability is JetStream's: an acknowledged publish is stored, but the server's own fsync
//! policy decides when it reaches disk (see the NATS `sync_interval` setting).

use std::sync::Arc;

use async_nats::jetstream::{
    self, consumer::DeliverPolicy, consumer::pull::OrderedConfig, stream::StorageType,
};
use async_trait::async_trait;
use futures::StreamExt as _;
use kai_core::Envelope;
use kai_core::event::EventFilter;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{BusError, CloseReason, DeliveryPolicy, EventBus, Subscription, check_size};
use crate::metrics as m;

/// The JetStream-backed bus.
pub struct NatsBus {
    js: jetstream::Context,
    stream: String,
    queue: usize,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

fn backend<E: std::fmt::Display>(e: E) -> BusError {
    BusError::Backend(e.to_string())
}

impl NatsBus {
    /// Connects to `url` and creates the stream if it does not exist.
    pub async fn connect(
        url: &str,
        stream: &str,
        queue: usize,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|e| BusError::Backend(format!("cannot connect to NATS at {url}: {e}")))?;
        let js = jetstream::new(client);
        js.get_or_create_stream(jetstream::stream::Config {
            name: stream.to_owned(),
            subjects: vec![format!("{stream}.>")],
            storage: StorageType::File,
            duplicate_window: std::time::Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(backend)?;
        Ok(Self { js, stream: stream.to_owned(), queue, tracker, cancel })
    }

    /// Deletes the stream (tests clean up with this).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.js.delete_stream(&self.stream).await.map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, mut event: Envelope) -> Result<Envelope, BusError> {
        check_size(&event)?;
        event.offset = None;
        let body = serde_json::to_vec(&event).map_err(backend)?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        let subject = format!("{}.{}", self.stream, event.kind);
        let ack = self
            .js
            .publish_with_headers(subject, headers, body.into())
            .await
            .map_err(backend)?
            .await
            .map_err(backend)?;
        event.offset = Some(ack.sequence);
        metrics::counter!(m::EVENTS_PUBLISHED, "type" => event.kind.to_string()).increment(1);
        Ok(event)
    }

    async fn subscribe(
        &self,
        filter: EventFilter,
        after: Option<u64>,
        policy: DeliveryPolicy,
    ) -> Result<Subscription, BusError> {
        let stream = self.js.get_stream(&self.stream).await.map_err(backend)?;
        let deliver_policy = match after {
            None => DeliverPolicy::New,
            Some(n) => DeliverPolicy::ByStartSequence { start_sequence: n + 1 },
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}.>", self.stream),
                deliver_policy,
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let mut messages = consumer.messages().await.map_err(backend)?;
        let (tx, reason, sub) = Subscription::new(self.queue);
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            loop {
                let next = tokio::select! {
                    next = messages.next() => next,
                    () = cancel.cancelled() => None,
                    () = tx.closed() => return,
                };
                let Some(Ok(msg)) = next else {
                    let _ = reason.set(CloseReason::BusClosed);
                    return;
                };
                let Ok(seq) = msg.info().map(|i| i.stream_sequence) else { continue };
                let Ok(mut event) = serde_json::from_slice::<Envelope>(&msg.payload) else {
                    tracing::warn!(
                        offset = seq,
                        "skipping an undecodable event on the NATS stream"
                    );
                    continue;
                };
                event.offset = Some(seq);
                if !filter.matches(&event) {
                    continue;
                }
                let event = Arc::new(event);
                match policy {
                    DeliveryPolicy::Block => {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                    DeliveryPolicy::DropSlow => match tx.try_send(event) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => {
                            let _ = reason.set(CloseReason::TooSlow);
                            metrics::counter!(m::BUS_SUBSCRIBERS_DROPPED).increment(1);
                            return;
                        }
                        Err(TrySendError::Closed(_)) => return,
                    },
                }
            }
        });
        Ok(sub)
    }

    async fn read(&self, after: u64, limit: u32) -> Result<Vec<Envelope>, BusError> {
        let last = self.last_offset().await?;
        if after >= last {
            return Ok(Vec::new());
        }
        let stream = self.js.get_stream(&self.stream).await.map_err(backend)?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}.>", self.stream),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: after + 1 },
                ..Default::default()
            })
            .await
            .map_err(backend)?;
        let mut messages = consumer.messages().await.map_err(backend)?;
        let mut out = Vec::new();
        while out.len() < limit as usize {
            let next =
                tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await;
            let Ok(Some(Ok(msg))) = next else { break };
            let Ok(seq) = msg.info().map(|i| i.stream_sequence) else { continue };
            if let Ok(mut event) = serde_json::from_slice::<Envelope>(&msg.payload) {
                event.offset = Some(seq);
                out.push(event);
            }
            if seq >= last {
                break;
            }
        }
        Ok(out)
    }

    async fn last_offset(&self) -> Result<u64, BusError> {
        let mut stream = self.js.get_stream(&self.stream).await.map_err(backend)?;
        Ok(stream.info().await.map_err(backend)?.state.last_sequence)
    }

    fn backend(&self) -> &'static str {
        "nats"
    }
}
