//! Per-token overhead of the OpenAI adapter's streaming path: a 1,000-token SSE answer from the
//! fake server read through `Provider::stream` (framing, JSON decoding, chunk emission) versus
//! the same request's bytes read raw with reqwest. The difference divided by 1,000 is what the
//! adapter adds per token (target: < 5 µs).
//!
//! Run: `cargo bench -p kai-llm --bench stream -- --sample-size 10`

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use kai_llm::fake::{Endpoint, FakeServer, Reply};
use kai_llm::{ChatChunk, ChatRequest, Message, Provider, ProviderKind, build_provider};

const TOKENS: usize = 1_000;

struct Setup {
    runtime: tokio::runtime::Runtime,
    _fake: FakeServer,
    provider: Arc<dyn Provider>,
    client: reqwest::Client,
    url: String,
    body: serde_json::Value,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fake = runtime.block_on(FakeServer::start(ProviderKind::OpenAi)).expect("fake server");
    let pieces: Vec<String> = (0..TOKENS).map(|i| format!(" tok{i}")).collect();
    fake.set_default(Endpoint::Chat, Reply::Chunks(pieces));
    let provider = build_provider(&fake.config(), None).expect("provider");
    // The exact body the adapter sends, so both sides get the same response.
    runtime.block_on(drain_adapter(&provider));
    let body = serde_json::Value::clone(&fake.requests().pop().expect("one request").body);
    Setup {
        url: format!("{}/chat/completions", fake.base_url()),
        runtime,
        _fake: fake,
        provider,
        client: reqwest::Client::new(),
        body,
    }
}

fn request() -> ChatRequest {
    ChatRequest::new(vec![Message::user("Count to a thousand.")])
}

async fn drain_adapter(provider: &Arc<dyn Provider>) -> usize {
    let mut stream = provider.stream(request()).await.expect("stream");
    let mut tokens = 0;
    while let Some(chunk) = stream.next().await {
        if let ChatChunk::Text(_) = chunk.expect("chunk") {
            tokens += 1;
        }
    }
    assert_eq!(tokens, TOKENS);
    tokens
}

async fn drain_raw(client: &reqwest::Client, url: &str, body: &serde_json::Value) -> usize {
    let response = client.post(url).json(body).send().await.expect("send");
    let mut bytes = response.bytes_stream();
    let mut total = 0;
    while let Some(chunk) = bytes.next().await {
        total += chunk.expect("chunk").len();
    }
    assert!(total > TOKENS * 50);
    total
}

fn stream_overhead(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("openai_sse_1000_tokens");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("raw_reqwest_bytes", |b| {
        b.iter(|| s.runtime.block_on(drain_raw(&s.client, &s.url, &s.body)));
    });
    group.bench_function("adapter_stream", |b| {
        b.iter(|| s.runtime.block_on(drain_adapter(&s.provider)));
    });
    group.finish();
}

criterion_group!(benches, stream_overhead);
criterion_main!(benches);
