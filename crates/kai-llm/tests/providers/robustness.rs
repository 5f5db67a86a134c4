//! Typed errors from the providers' error bodies, retries (Retry-After honoured, 5xx exhausted),
//! the concurrency limit, cancellation, and keys kept out of errors and Debug output.

use std::time::Duration;

use futures::StreamExt;
use kai_llm::fake::{Endpoint, FakeError, FakeErrorKind, Reply};
use kai_llm::{ChatRequest, LlmError, Message, ProviderKind, build_provider};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::{KEY, WAIT, per_provider, start, start_with};

per_provider!(error_bodies_become_typed_errors, rate_limits_honour_retry_after);
per_provider!(server_errors_exhaust_the_retries, a_long_retry_after_fails_at_once);
per_provider!(the_concurrency_limit_holds, cancelling_a_stream_closes_the_connection);
per_provider!(dropping_a_stream_closes_the_connection, dropping_a_call_closes_the_connection);
per_provider!(a_cancelled_call_returns_at_once, keys_never_appear_in_errors_or_debug);

fn ask() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hello")])
}

async fn error_bodies_become_typed_errors(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.push_chat(Reply::Error(FakeError::bad_request("temperature must be at most 2")));
    let e = provider.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "bad_request", "{e}");
    assert!(e.to_string().contains("temperature must be at most 2"), "the provider's message: {e}");

    fake.push_chat(Reply::Error(FakeError::context_length()));
    let e = provider.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "context_length_exceeded", "{e}");

    fake.push_chat(Reply::Error(FakeError::auth("whatever")));
    let e = provider.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "auth_failed", "{e}");

    let busy = FakeError { status: Some(503), ..FakeError::new(FakeErrorKind::Overloaded, "busy") };
    fake.fail_times(Endpoint::Chat, 4, &busy);
    let e = provider.stream(ask()).await.map(|_| ()).unwrap_err();
    assert!(matches!(e, LlmError::Unavailable { status: Some(503), .. }), "{e}");
    assert_eq!(fake.requests().len(), 3 + 4, "bad requests are not retried; 503 is (3 retries)");
}

async fn rate_limits_honour_retry_after(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.fail_times(Endpoint::Chat, 2, &FakeError::rate_limited("1"));
    fake.push_chat(Reply::text("finally"));
    let response = provider.chat(ask()).await.unwrap();
    assert_eq!(response.message.content, "finally");
    let sent = fake.requests();
    assert_eq!(sent.len(), 3);
    for pair in sent.windows(2) {
        let waited = pair[1].at.duration_since(pair[0].at);
        assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    }
}

async fn server_errors_exhaust_the_retries(kind: ProviderKind) {
    let (fake, provider) = start_with(kind, |c| c.max_retries = 2).await;
    fake.fail_times(Endpoint::Chat, 5, &FakeError::server(500));
    let e = provider.chat(ask()).await.unwrap_err();
    assert!(matches!(e, LlmError::Unavailable { status: Some(500), .. }), "{e}");
    assert_eq!(fake.requests().len(), 3, "one attempt and two retries");
}

async fn a_long_retry_after_fails_at_once(kind: ProviderKind) {
    let (fake, provider) = start_with(kind, |c| c.max_retry_after_secs = 5.0).await;
    fake.fail_times(Endpoint::Chat, 1, &FakeError::rate_limited("3600"));
    let e = provider.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(fake.requests().len(), 1);
}

async fn the_concurrency_limit_holds(kind: ProviderKind) {
    let (fake, provider) = start_with(kind, |c| c.concurrency = 2).await;
    fake.set_latency(Duration::from_millis(100));
    let calls = (0..6).map(|_| provider.chat(ask()));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.requests().len(), 6);
    assert_eq!(fake.max_in_flight(), 2, "never more than the limit, and the limit was used");
}

/// A long, slow stream: the client hangs up long before it ends.
fn long_stream(fake: &kai_llm::fake::FakeServer) {
    fake.set_chunk_delay(Duration::from_millis(20));
    fake.push_chat(Reply::chunks((0..500).map(|i| format!("t{i} "))));
}

async fn cancelling_a_stream_closes_the_connection(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    long_stream(&fake);
    let token = CancellationToken::new();
    let mut stream = provider.stream(ask().with_cancel(token.clone())).await.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    token.cancel();
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.code(), "cancelled");
    assert!(stream.next().await.is_none());
    assert!(fake.wait_until(WAIT, |c| c.aborted == 1).await, "the fake saw the connection close");
    assert_eq!(fake.counters().completed, 0);
}

async fn dropping_a_stream_closes_the_connection(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    long_stream(&fake);
    let mut stream = provider.stream(ask()).await.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    assert!(fake.wait_until(WAIT, |c| c.aborted == 1).await, "the fake saw the connection close");
}

async fn dropping_a_call_closes_the_connection(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.set_latency(Duration::from_secs(30));
    let call = tokio::spawn(async move { provider.chat(ask()).await });
    assert!(fake.wait_until(WAIT, |c| c.requests == 1).await);
    call.abort();
    assert!(fake.wait_until(WAIT, |c| c.aborted == 1).await, "the fake saw the connection close");
}

async fn a_cancelled_call_returns_at_once(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    fake.set_latency(Duration::from_secs(30));
    let token = CancellationToken::new();
    let request = ask().with_cancel(token.clone());
    let call = tokio::spawn(async move { provider.chat(request).await });
    assert!(fake.wait_until(WAIT, |c| c.requests == 1).await);
    token.cancel();
    let result = tokio::time::timeout(WAIT, call).await.expect("returns promptly").unwrap();
    assert_eq!(result.unwrap_err().code(), "cancelled");
    assert!(fake.wait_until(WAIT, |c| c.aborted == 1).await, "the fake saw the connection close");
}

async fn keys_never_appear_in_errors_or_debug(kind: ProviderKind) {
    let (fake, provider) = start(kind).await;
    assert!(!format!("{provider:?}").contains(KEY), "{provider:?}");

    // The fake wants another key; like real providers, some quote the presented key back.
    fake.require_key(Some("sk-other-key"));
    let e = provider.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "auth_failed");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }
    let sent = fake.requests();
    assert!(sent.iter().all(|r| !r.path.contains(KEY)), "never in the URL");

    // Connection errors name the provider, not the key.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = fake.config();
    config.base_url = Some(format!("http://{addr}"));
    config.max_retries = 0;
    let dead = build_provider(&config, Some(SecretString::from(KEY))).unwrap();
    let e = dead.chat(ask()).await.unwrap_err();
    assert_eq!(e.code(), "connection_failed", "{e}");
    for text in [e.to_string(), format!("{e:?}"), format!("{dead:?}")] {
        assert!(!text.contains(KEY), "{text}");
    }
}
