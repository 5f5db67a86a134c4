//! `kai-bench ws-fanout URL TOKEN SUBSCRIBERS RATE SECS [PUBLISH_CONCURRENCY]`: WebSocket fan-out.
//!
//! Opens SUBSCRIBERS WebSocket clients on `URL/ws` (bearer TOKEN), each subscribed to
//! `BENCH_FANOUT` events, then publishes RATE events per second for SECS seconds with
//! `POST URL/events` (each payload carries its send time), and reports the delivery latency —
//! from the publisher sending the event to a subscriber having read it — over every delivery
//! (p50/p99/p99.9/max; it includes the publish request itself, whose own round trip is reported
//! as `publish_ms`), the publish rate reached, how many deliveries arrived, and how many
//! clients the server closed as too slow (1013). The same driver runs against a kai node and
//! against the bare-axum ceiling (`hello-axum ws`), which speaks the same frames.
//!
//! Latency is measured with one monotonic clock: publisher and subscribers share this process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_util::sync::CancellationToken;

struct Received {
    latencies_us: Vec<u32>,
    closed_too_slow: bool,
}

async fn subscriber(
    ws_url: String,
    token: String,
    base: Instant,
    delivered: Arc<AtomicU64>,
    stop: CancellationToken,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<Received> {
    let mut req = ws_url.into_client_request()?;
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {token}"))?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.context("connect")?;
    let sub = json!({"op": "subscribe", "id": "bench", "filter": {"types": ["BENCH_FANOUT"]}});
    ws.send(Message::Text(sub.to_string().into())).await?;
    let mut out = Received { latencies_us: Vec::new(), closed_too_slow: false };
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            () = stop.cancelled() => break,
        };
        match msg {
            Some(Ok(Message::Text(text))) => {
                let now = base.elapsed().as_micros() as u64;
                let v: Value = serde_json::from_str(&text)?;
                match v["op"].as_str() {
                    Some("subscribed") => {
                        let _ = ready.send(()).await;
                    }
                    Some("event") => {
                        let sent = v["event"]["payload"]["t"].as_u64().unwrap_or(now);
                        out.latencies_us
                            .push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => bail!("unexpected frame {text}"),
                }
            }
            Some(Ok(Message::Close(frame))) => {
                out.closed_too_slow = frame.is_some_and(|f| u16::from(f.code) == 1013);
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => break,
        }
    }
    Ok(out)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

pub async fn run(args: &[String]) -> anyhow::Result<()> {
    let [url, token, subscribers, rate, secs, rest @ ..] = args else {
        bail!("usage: kai-bench ws-fanout URL TOKEN SUBSCRIBERS RATE SECS [PUBLISH_CONCURRENCY]");
    };
    let subscribers: usize = subscribers.parse()?;
    let rate: u64 = rate.parse()?;
    let secs: u64 = secs.parse()?;
    let concurrency: usize = rest.first().map_or(Ok(256), |c| c.parse())?;
    if !(1..=20_000).contains(&subscribers)
        || !(1..=100_000).contains(&rate)
        || !(1..=120).contains(&secs)
    {
        bail!("SUBSCRIBERS 1–20000, RATE 1–100000, SECS 1–120");
    }
    let url = url.trim_end_matches('/').to_owned();
    let ws_url = format!("{}/ws", url.replacen("http", "ws", 1));
    let base = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();

    // Connect and subscribe everyone before publishing (32 handshakes at a time).
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(subscribers);
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let (ws_url, token, delivered, stop, ready) =
            (ws_url.clone(), token.clone(), delivered.clone(), stop.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(subscriber(ws_url, token, base, delivered, stop, ready)));
        if tasks.len() % 32 == 0 {
            // Let handshakes finish before starting more.
            for _ in 0..32 {
                tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
                    .await
                    .context("a subscriber was not subscribed within 30 s")?;
            }
        }
    }
    for _ in 0..subscribers % 32 {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .context("a subscriber was not subscribed within 30 s")?;
    }
    let connected_ms = base.elapsed().as_millis();

    // Publish RATE events per second, paced per millisecond, at most `concurrency` in flight.
    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
    let inflight = Arc::new(Semaphore::new(concurrency));
    let published = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = rate * secs;
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut publishers = Vec::new();
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_micros() as u64 * rate) / 1_000_000 + 1).min(total);
        while sent < due {
            let permit = inflight.clone().acquire_owned().await?;
            let (http, url, token, published, failed) =
                (http.clone(), url.clone(), token.clone(), published.clone(), failed.clone());
            let i = sent;
            publishers.push(tokio::spawn(async move {
                let t = base.elapsed().as_micros() as u64;
                let body = json!({"type": "BENCH_FANOUT", "payload": {"t": t, "i": i}});
                let ok = http
                    .post(format!("{url}/events"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    published.fetch_add(1, Ordering::Relaxed)
                } else {
                    failed.fetch_add(1, Ordering::Relaxed)
                };
                drop(permit);
                (base.elapsed().as_micros() as u64).saturating_sub(t) as u32
            }));
            sent += 1;
        }
    }
    let mut publish_us = Vec::with_capacity(publishers.len());
    for p in publishers {
        publish_us.push(p.await?);
    }
    publish_us.sort_unstable();
    let publish_secs = start.elapsed().as_secs_f64();
    let published = published.load(Ordering::Relaxed);

    // Drain: wait (at most 10 s) for every delivery.
    let expected = published * subscribers as u64;
    let drain_start = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected
        && drain_start.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut latencies = Vec::with_capacity(expected as usize);
    let mut too_slow = 0;
    let mut errors = 0;
    for t in tasks {
        match t.await? {
            Ok(r) => {
                too_slow += usize::from(r.closed_too_slow);
                latencies.extend(r.latencies_us);
            }
            Err(_) => errors += 1,
        }
    }
    latencies.sort_unstable();
    let got = latencies.len() as u64;
    println!(
        "{}",
        json!({
            "subscribers": subscribers,
            "target_events_per_sec": rate,
            "seconds": secs,
            "connect_ms": connected_ms,
            "published": published,
            "publish_failed": failed.load(Ordering::Relaxed),
            "published_per_sec": published as f64 / publish_secs,
            "deliveries": got,
            "expected_deliveries": expected,
            "delivered_ratio": if expected == 0 { 0.0 } else { got as f64 / expected as f64 },
            "deliveries_per_sec": got as f64 / publish_secs,
            "closed_too_slow": too_slow,
            "client_errors": errors,
            "publish_ms": {
                "p50": percentile(&publish_us, 0.50),
                "p99": percentile(&publish_us, 0.99),
            },
            "latency_ms": {
                "p50": percentile(&latencies, 0.50),
                "p99": percentile(&latencies, 0.99),
                "p999": percentile(&latencies, 0.999),
                "max": percentile(&latencies, 1.0),
            },
        })
    );
    Ok(())
}
