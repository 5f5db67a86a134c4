use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kai_core::Envelope;
use kai_core::event::EventFilter;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::memory::MemoryBus;
use super::*;

fn ev(kind: &str, n: u64) -> Envelope {
    Envelope::new(kind.parse().unwrap(), serde_json::json!({"n": n}), Utc::now())
        .with_task(format!("t{}", n % 3))
}

async fn recv(sub: &mut Subscription) -> Envelope {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("event within 10 s")
        .expect("subscription open")
}

/// The shared behaviour every backend must have.
async fn conformance(bus: Arc<dyn EventBus>) {
    let base = bus.last_offset().await.unwrap();
    let mut all = bus.subscribe(EventFilter::default(), None, DeliveryPolicy::Block).await.unwrap();
    let filter = EventFilter { types: vec!["STEP_STARTED".parse().unwrap()], ..Default::default() };
    let mut steps = bus.subscribe(filter, None, DeliveryPolicy::Block).await.unwrap();
    let mut offsets = Vec::new();
    for n in 0..10 {
        let kind = if n % 2 == 0 { "TASK_CREATED" } else { "STEP_STARTED" };
        offsets.push(bus.publish(ev(kind, n)).await.unwrap().offset.unwrap());
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    for (n, offset) in offsets.iter().enumerate() {
        let e = recv(&mut all).await;
        assert_eq!(e.offset, Some(*offset));
        assert_eq!(e.payload["n"], n as u64);
    }
    for n in (1..10).step_by(2) {
        assert_eq!(recv(&mut steps).await.payload["n"], n as u64);
    }
    // Replay from the middle, then live, with nothing missing or repeated.
    let mut replay = bus
        .subscribe(EventFilter::default(), Some(offsets[4]), DeliveryPolicy::Block)
        .await
        .unwrap();
    let more = bus.publish(ev("TASK_CREATED", 10)).await.unwrap().offset.unwrap();
    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(recv(&mut replay).await.offset.unwrap());
    }
    let mut want = offsets[5..].to_vec();
    want.push(more);
    assert_eq!(seen, want);
    assert!(bus.last_offset().await.unwrap() >= base + 11);
    let page = bus.read(offsets[2], 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.offset.unwrap()).collect::<Vec<_>>(), offsets[3..6].to_vec());
    assert_eq!(page[0].payload["n"], 3);
    assert!(bus.read(more, 10).await.unwrap().is_empty());
    let too_big =
        Envelope::new("X".parse().unwrap(), serde_json::json!("a".repeat(300_000)), Utc::now());
    assert_eq!(bus.publish(too_big).await.unwrap_err().code(), "payload_too_large");
}

async fn memory_bus(queue: usize) -> (Arc<MemoryBus>, tempfile::TempDir, TaskTracker) {
    let dir = tempfile::tempdir().unwrap();
    let store = kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 4)
        .await
        .unwrap();
    let tracker = TaskTracker::new();
    (
        Arc::new(MemoryBus::new(store, queue, tracker.clone(), CancellationToken::new())),
        dir,
        tracker,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bus_conformance() {
    let (bus, _dir, _t) = memory_bus(64).await;
    conformance(bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_is_dropped_and_never_blocks_the_publisher() {
    let (bus, _dir, _t) = memory_bus(4).await;
    let mut slow =
        bus.subscribe(EventFilter::default(), None, DeliveryPolicy::DropSlow).await.unwrap();
    let mut fast =
        bus.subscribe(EventFilter::default(), None, DeliveryPolicy::DropSlow).await.unwrap();
    for n in 0..20 {
        bus.publish(ev("TASK_CREATED", n)).await.unwrap();
        recv(&mut fast).await;
    }
    let mut got = 0;
    while slow.recv().await.is_some() {
        got += 1;
    }
    assert_eq!(got, 4, "the queue's worth was delivered, then the subscription ended");
    assert_eq!(slow.closed_reason(), Some(CloseReason::TooSlow));
    assert_eq!(bus.subscriber_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_subscriber_applies_back_pressure() {
    let (bus, _dir, _t) = memory_bus(2).await;
    let mut sub = bus.subscribe(EventFilter::default(), None, DeliveryPolicy::Block).await.unwrap();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for n in 0..10 {
                bus.publish(ev("TASK_CREATED", n)).await.unwrap();
            }
        })
    };
    // The publisher cannot finish until the subscriber drains; nothing is lost.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!publisher.is_finished(), "publisher must wait for the full queue");
    for n in 0..10 {
        assert_eq!(recv(&mut sub).await.payload["n"], n);
    }
    publisher.await.unwrap();
}

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use crate::bus::nats::NatsBus;

    fn url() -> Option<String> {
        std::env::var("KAI_TEST_NATS_URL").ok()
    }

    async fn node(stream: &str) -> Arc<NatsBus> {
        let url = url().unwrap();
        Arc::new(
            NatsBus::connect(&url, stream, 64, TaskTracker::new(), CancellationToken::new())
                .await
                .unwrap(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_bus_conformance() {
        if url().is_none() {
            eprintln!("KAI_TEST_NATS_URL not set: NATS run of this test not performed");
            return;
        }
        let stream = format!("KAI_TEST_{}", uuid::Uuid::now_v7().simple());
        let bus = node(&stream).await;
        conformance(bus.clone()).await;
        bus.delete_stream().await.unwrap();
    }

    /// Two nodes on one stream: what one publishes, the other receives, and both agree on offsets.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_carries_events_between_nodes() {
        if url().is_none() {
            eprintln!("KAI_TEST_NATS_URL not set: NATS run of this test not performed");
            return;
        }
        let stream = format!("KAI_TEST_{}", uuid::Uuid::now_v7().simple());
        let a = node(&stream).await;
        let b = node(&stream).await;
        let mut on_b =
            b.subscribe(EventFilter::default(), None, DeliveryPolicy::Block).await.unwrap();
        let sent = a.publish(ev("AGENT_RESULT", 7)).await.unwrap();
        let got = recv(&mut on_b).await;
        assert_eq!(got.id, sent.id);
        assert_eq!(got.offset, sent.offset);
        // A retried publish of the same event is de-duplicated by the server.
        let again = a.publish(sent.clone()).await.unwrap();
        assert_eq!(again.offset, sent.offset);
        // B resumes from A's offset after a "reconnect".
        b.publish(ev("AGENT_RESULT", 8)).await.unwrap();
        let mut resumed = a
            .subscribe(EventFilter::default(), Some(sent.offset.unwrap()), DeliveryPolicy::Block)
            .await
            .unwrap();
        assert_eq!(recv(&mut resumed).await.payload["n"], 8);
        a.delete_stream().await.unwrap();
    }
}
