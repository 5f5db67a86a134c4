//! The HTTP robustness every adapter shares: timeouts, retries with backoff honouring
//! `Retry-After`, the per-provider concurrency limit, cancellation, and mapping of failed
//! responses to typed errors. Adapters build a `reqwest::Request` and hand it here; they never
//! loop, sleep or read status codes themselves.

mod body;
pub(crate) mod classify;
pub(crate) mod lines;
pub(crate) mod retry;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret as _, SecretString};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

pub(crate) use body::{BodyStream, ChatChunkStream, StreamDecoder};
pub use classify::{ErrorBody, ErrorHint};
pub use retry::RetryPolicy;

use crate::error::LlmError;

/// Limits and timeouts of one provider.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// TCP + TLS connect.
    pub connect_timeout: Duration,
    /// A whole non-streamed exchange; for streams, until the response headers and then between
    /// two chunks.
    pub request_timeout: Duration,
    /// Requests in flight at once (streams count until they end).
    pub concurrency: usize,
    pub retry: RetryPolicy,
}

/// How an adapter reads its provider's error bodies.
pub type ErrorParser = fn(&[u8]) -> ErrorBody;

/// Where a provider expects its API key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI-compatible servers, proxies in front of Ollama).
    Bearer,
    /// The key alone in a named header (`x-api-key`, `x-goog-api-key`).
    Named(&'static str),
}

/// The base URL and transport every adapter starts from.
pub(crate) fn endpoint(
    config: &crate::config::ProviderConfig,
    key: Option<SecretString>,
    parse_error: ErrorParser,
) -> Result<(String, Transport), LlmError> {
    let base = config.resolved_base_url()?;
    let transport =
        Transport::new(config.display_name(), config.transport_settings()?, key, parse_error)?;
    Ok((base, transport))
}

/// The HTTP client of one provider.
#[derive(Debug)]
pub(crate) struct Transport {
    provider: Arc<str>,
    client: reqwest::Client,
    limit: Arc<Semaphore>,
    settings: TransportSettings,
    /// Only for scrubbing it out of provider messages; adapters set the header themselves.
    key: Option<SecretString>,
    parse_error: ErrorParser,
}

impl Transport {
    pub(crate) fn new(
        provider: &str,
        settings: TransportSettings,
        key: Option<SecretString>,
        parse_error: ErrorParser,
    ) -> Result<Self, LlmError> {
        if settings.concurrency == 0 {
            return Err(LlmError::Config(format!("{provider}: concurrency must be at least 1")));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("kai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LlmError::Config(format!("{provider}: HTTP client: {}", describe(&e))))?;
        Ok(Self {
            provider: provider.into(),
            client,
            limit: Arc::new(Semaphore::new(settings.concurrency)),
            settings,
            key,
            parse_error,
        })
    }

    pub(crate) fn provider(&self) -> &str {
        &self.provider
    }

    /// A request to `base` + `path` carrying `key` where the provider expects it.
    pub(crate) fn keyed_request(
        &self,
        method: reqwest::Method,
        url: String,
        key: Option<&SecretString>,
        header: KeyHeader,
    ) -> Result<reqwest::RequestBuilder, LlmError> {
        let builder = self.client.request(method, url);
        let Some(key) = key else { return Ok(builder) };
        Ok(match header {
            KeyHeader::Bearer => builder.header(
                reqwest::header::AUTHORIZATION,
                self.secret_header(&format!("Bearer {}", key.expose_secret()))?,
            ),
            KeyHeader::Named(name) => {
                builder.header(name, self.secret_header(key.expose_secret())?)
            }
        })
    }

    /// A header value that is never printed (reqwest's Debug hides sensitive values).
    pub(crate) fn secret_header(&self, value: &str) -> Result<HeaderValue, LlmError> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            LlmError::Config(format!("{}: the API key contains invalid characters", self.provider))
        })?;
        v.set_sensitive(true);
        Ok(v)
    }

    pub(crate) fn build(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::Request, LlmError> {
        builder.build().map_err(|e| {
            LlmError::Config(format!("{}: cannot build request: {}", self.provider, describe(&e)))
        })
    }

    /// Sends `request` (retrying as the policy allows) and decodes the JSON reply.
    pub(crate) async fn send_json<T: DeserializeOwned>(
        &self,
        request: reqwest::Request,
        cancel: Option<&CancellationToken>,
    ) -> Result<T, LlmError> {
        let bytes = self.with_retries(request, cancel, |r| self.attempt_full(r)).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            LlmError::protocol(&self.provider, format!("unexpected response body: {e}"))
        })
    }

    /// Sends `request` (retrying until the response headers arrive) and returns its body as a
    /// stream that keeps the concurrency permit until it ends or is dropped.
    pub(crate) async fn send_stream(
        &self,
        request: reqwest::Request,
        cancel: Option<&CancellationToken>,
    ) -> Result<BodyStream, LlmError> {
        let (response, permit) =
            self.with_retries(request, cancel, |r| self.attempt_stream(r)).await?;
        Ok(BodyStream::new(
            self.provider.clone(),
            response,
            self.settings.request_timeout,
            cancel.cloned(),
            permit,
            self.key.clone(),
        ))
    }

    /// Runs `attempt` on copies of `request` until it succeeds, fails in a way retrying cannot
    /// fix, or the retry policy gives up. Backoff sleeps end early on cancellation.
    async fn with_retries<T, F, Fut>(
        &self,
        request: reqwest::Request,
        cancel: Option<&CancellationToken>,
        attempt: F,
    ) -> Result<T, LlmError>
    where
        F: Fn(reqwest::Request) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let mut retry = 0;
        loop {
            let copy = request.try_clone().ok_or_else(|| {
                LlmError::Config(format!("{}: request body cannot be replayed", self.provider))
            })?;
            let error = match cancellable(cancel, attempt(copy)).await {
                Ok(success) => return Ok(success),
                Err(e) => e,
            };
            let delay = if error.is_retryable() {
                self.settings.retry.delay(retry, error.retry_after(), &mut rand::thread_rng())
            } else {
                None
            };
            let Some(delay) = delay else { return Err(error) };
            retry += 1;
            tracing::warn!(
                provider = %self.provider,
                code = error.code(),
                retry,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "provider call failed; retrying"
            );
            cancellable(cancel, async {
                tokio::time::sleep(delay).await;
                Ok(())
            })
            .await?;
        }
    }

    /// One complete exchange under a concurrency slot; the timeout covers sending and reading
    /// the whole body, not the wait for the slot.
    async fn attempt_full(&self, request: reqwest::Request) -> Result<Bytes, LlmError> {
        let _permit = self.acquire().await?;
        self.timed(async {
            let response = self.respond(request).await?;
            response.bytes().await.map_err(|e| self.transport_error(&e))
        })
        .await
    }

    /// One streamed exchange up to its response headers; the slot goes with the body.
    async fn attempt_stream(
        &self,
        request: reqwest::Request,
    ) -> Result<(reqwest::Response, OwnedSemaphorePermit), LlmError> {
        let permit = self.acquire().await?;
        let response = self.timed(self.respond(request)).await?;
        Ok((response, permit))
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, LlmError> {
        self.limit.clone().acquire_owned().await.map_err(|_| {
            LlmError::Config(format!("{}: the concurrency limiter is closed", self.provider))
        })
    }

    async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, LlmError>>,
    ) -> Result<T, LlmError> {
        let timeout = self.settings.request_timeout;
        tokio::time::timeout(timeout, fut).await.unwrap_or_else(|_| {
            Err(LlmError::Timeout { provider: self.provider.to_string(), timeout })
        })
    }

    /// Sends the request; a non-success status becomes the typed error its body describes.
    async fn respond(&self, request: reqwest::Request) -> Result<reqwest::Response, LlmError> {
        let response = self.client.execute(request).await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let mut parsed = (self.parse_error)(&body);
        parsed.message = classify::sanitize(&parsed.message, self.key.as_ref());
        Err(classify::classify(&self.provider, status, retry_after, parsed))
    }

    fn transport_error(&self, e: &reqwest::Error) -> LlmError {
        let provider = self.provider.to_string();
        if e.is_timeout() && !e.is_connect() {
            return LlmError::Timeout { provider, timeout: self.settings.request_timeout };
        }
        LlmError::Connection { provider, message: describe(e) }
    }
}

/// Runs `fut` unless `cancel` fires first.
async fn cancellable<T>(
    cancel: Option<&CancellationToken>,
    fut: impl Future<Output = Result<T, LlmError>>,
) -> Result<T, LlmError> {
    match cancel {
        None => fut.await,
        Some(token) => tokio::select! {
            biased;
            () = token.cancelled() => Err(LlmError::Cancelled),
            result = fut => result,
        },
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    retry::parse_retry_after(value, SystemTime::now())
}

/// A reqwest error with its causes, without the URL.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = String::new();
    let mut current: Option<&dyn std::error::Error> = e.source();
    text.push_str(if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    });
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}
