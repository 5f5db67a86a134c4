//! Fake provider servers for tests and benchmarks: real axum HTTP servers on `127.0.0.1:0`, one
//! dialect per provider speaking its exact wire format (JSON shapes, SSE/NDJSON streaming, error
//! bodies, auth headers). Tests script them per endpoint ([`Reply`] queues), set latency and
//! inter-chunk delay, and read back what the client sent ([`RecordedRequest`]), how many requests
//! were in flight at once and whether the client hung up early.
//!
//! Behind the `fake-servers` feature; never part of a production build.

mod anthropic;
mod gemini;
mod handler;
mod ollama;
mod openai;
mod script;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use handler::sse;
use script::Turn;
pub use script::{
    Endpoint, FRAGMENT_LEN, FakeError, FakeErrorKind, FakeToolCall, Reply, hashed_embedding,
};

use crate::config::{ProviderConfig, ProviderKind};

/// The chat model fakes report and [`FakeServer::config`] configures.
pub const FAKE_CHAT_MODEL: &str = "fake-chat";
/// The embedding model fakes report and [`FakeServer::config`] configures.
pub const FAKE_EMBED_MODEL: &str = "fake-embed";

/// What the fake saw of one request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// When the request arrived.
    pub at: Instant,
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The JSON body (`Null` when there was none or it was not JSON).
    pub body: Arc<Value>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Request counts, for waiting on server-side events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: usize,
    /// Responses sent to the end.
    pub completed: usize,
    /// Responses the client abandoned (connection closed early).
    pub aborted: usize,
}

/// How one provider's wire format renders the fake's answers.
pub(crate) trait Dialect: Send + Sync + 'static {
    /// Which endpoint a request addresses, and whether it asks for a stream.
    fn route(&self, method: &Method, path: &str, body: &Value) -> Option<Route>;
    /// The API key the request presents, from the provider's auth header.
    fn presented_key(&self, headers: &HeaderMap) -> Option<String>;
    fn error(&self, error: &FakeError) -> (u16, Value);
    fn last_user_text(&self, body: &Value) -> String;
    fn chat(&self, turn: &Turn) -> Value;
    /// The body of a streamed answer, frame by frame, and its content type.
    fn chat_stream(&self, turn: &Turn) -> (&'static str, Vec<String>);
    fn embeddings(&self, route: &Route, body: &Value, dims: usize) -> Value;
    fn models(&self, models: &[String]) -> Value;
}

/// A request's destination as a dialect understood it.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub endpoint: Endpoint,
    pub stream: bool,
    /// The model named in the path (Gemini) rather than the body.
    pub model: Option<String>,
    /// Gemini's `batchEmbedContents` versus `embedContent`.
    pub batch: bool,
}

impl Route {
    pub(crate) fn new(endpoint: Endpoint, stream: bool) -> Self {
        Self { endpoint, stream, model: None, batch: false }
    }
}

/// Picks a reply from the request body (a test's stand-in for a model that answers by what it
/// is asked); `None` falls through to the endpoint's default.
pub type Responder = Arc<dyn Fn(Endpoint, &Value) -> Option<Reply> + Send + Sync>;

struct Settings {
    queues: HashMap<Endpoint, VecDeque<Reply>>,
    responder: Option<Responder>,
    defaults: HashMap<Endpoint, Reply>,
    log: Vec<RecordedRequest>,
    latency: Duration,
    chunk_delay: Duration,
    models: Vec<String>,
    dims: usize,
    required_key: Option<String>,
}

struct Shared {
    dialect: &'static dyn Dialect,
    settings: Mutex<Settings>,
    counters: watch::Sender<Counters>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Shared {
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running fake provider. Dropping it stops the server.
pub struct FakeServer {
    kind: ProviderKind,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for FakeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeServer").field("kind", &self.kind).field("addr", &self.addr).finish()
    }
}

impl FakeServer {
    /// Starts a fake `kind` provider on `127.0.0.1` with an OS-assigned port. `Local` has no
    /// wire format and cannot be faked (an `Unsupported` I/O error).
    pub async fn start(kind: ProviderKind) -> std::io::Result<Self> {
        let dialect: &'static dyn Dialect = match kind {
            ProviderKind::OpenAi => &openai::OpenAi,
            ProviderKind::Ollama => &ollama::Ollama,
            ProviderKind::Anthropic => &anthropic::Anthropic,
            ProviderKind::Gemini => &gemini::Gemini,
            ProviderKind::Local => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the local provider runs in process; there is no server to fake",
                ));
            }
        };
        let shared = Arc::new(Shared {
            dialect,
            settings: Mutex::new(Settings {
                queues: HashMap::new(),
                responder: None,
                defaults: HashMap::new(),
                log: Vec::new(),
                latency: Duration::ZERO,
                chunk_delay: Duration::ZERO,
                models: vec![FAKE_CHAT_MODEL.to_owned(), FAKE_EMBED_MODEL.to_owned()],
                dims: 8,
                required_key: None,
            }),
            counters: watch::Sender::new(Counters::default()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(handler::handle).with_state(shared.clone());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            // Like a real API server: no Nagle delay on its small streamed writes.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "fake provider server failed");
            }
        });
        Ok(Self { kind, addr, shared, shutdown })
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL an adapter of this kind is configured with.
    pub fn base_url(&self) -> String {
        match self.kind {
            ProviderKind::OpenAi => format!("http://{}/v1", self.addr),
            _ => format!("http://{}", self.addr),
        }
    }

    /// A configuration pointing at this server, with the fake models as defaults and quick
    /// retries (10 ms base) so tests stay fast.
    pub fn config(&self) -> ProviderConfig {
        ProviderConfig {
            name: Some(format!("fake-{}", self.kind)),
            base_url: Some(self.base_url()),
            chat_model: Some(FAKE_CHAT_MODEL.to_owned()),
            embedding_model: Some(FAKE_EMBED_MODEL.to_owned()),
            timeout_secs: 10.0,
            retry_base_ms: 10,
            retry_max_ms: 100,
            ..ProviderConfig::new(self.kind)
        }
    }

    /// Queues `reply` for the next call to `endpoint`.
    pub fn push(&self, endpoint: Endpoint, reply: Reply) {
        self.shared.settings().queues.entry(endpoint).or_default().push_back(reply);
    }

    /// What `endpoint` answers when its queue is empty (by default: echo, hashed embeddings,
    /// the model list).
    pub fn set_default(&self, endpoint: Endpoint, reply: Reply) {
        self.shared.settings().defaults.insert(endpoint, reply);
    }

    /// Queues `reply` for the next chat call.
    pub fn push_chat(&self, reply: Reply) {
        self.push(Endpoint::Chat, reply);
    }

    /// The next `times` calls to `endpoint` fail with `error`.
    pub fn fail_times(&self, endpoint: Endpoint, times: usize, error: &FakeError) {
        for _ in 0..times {
            self.push(endpoint, Reply::Error(error.clone()));
        }
    }

    /// Every response waits this long before its headers (fixed-latency mode).
    /// Answers requests the queues do not cover by calling `responder` with the request body.
    pub fn set_responder(&self, responder: Responder) {
        self.shared.settings().responder = Some(responder);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.settings().latency = latency;
    }

    /// The pause between two frames of a streamed answer.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.shared.settings().chunk_delay = delay;
    }

    pub fn set_models(&self, models: Vec<String>) {
        self.shared.settings().models = models;
    }

    pub fn set_embedding_dims(&self, dims: usize) {
        self.shared.settings().dims = dims;
    }

    /// Requests not presenting this key (in the provider's auth header) get its auth error.
    pub fn require_key(&self, key: Option<&str>) {
        self.shared.settings().required_key = key.map(str::to_owned);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.settings().log.clone()
    }

    /// The most requests that were in flight at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn counters(&self) -> Counters {
        *self.shared.counters.borrow()
    }

    /// Waits until `done` holds for the counters, at most `timeout`; returns whether it did.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Counters) -> bool) -> bool {
        let mut rx = self.shared.counters.subscribe();
        matches!(tokio::time::timeout(timeout, rx.wait_for(|c| done(c))).await, Ok(Ok(_)))
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
