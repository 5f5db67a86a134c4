//! The HTTP surface of the kai node (axum): routes, the `Principal` extractor, problem+json
//! errors, per-route metrics, the OpenAPI document generated from the handlers, and serving
//! with graceful shutdown.
//!
//! Architecture invariant: this is the only crate that knows HTTP and the JSON shape of the
//! API (`api.rs`); it calls services in `kai-runtime` and `kai-store` and converts explicitly.

pub mod access;
pub mod api;
pub mod auth;
pub mod error;
pub mod limits;
pub mod middleware;
pub mod routes;
pub mod token_cache;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use chrono::{DateTime, Utc};
use kai_core::config::LoadedConfig;
use kai_runtime::node::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What every handler can reach.
pub struct Services {
    pub node: Arc<Node>,
    /// The live configuration; a hot reload sends a new value.
    pub config: watch::Receiver<LoadedConfig>,
    pub metrics: Option<PrometheusHandle>,
    pub started_at: DateTime<Utc>,
    pub limits: limits::Limits,
    /// Providers and personas behind `/v1`.
    pub llm: Arc<kai_runtime::llm::Llm>,
    /// Chat threads.
    pub chat: Arc<kai_runtime::chat::Chat>,
    /// The last rejected configuration edit and keys waiting for a restart.
    pub config_status: watch::Receiver<ConfigStatus>,
    /// The prompt library.
    pub prompts: Arc<kai_runtime::prompts::Prompts>,
    /// Artifacts, share links and notes.
    pub artifacts: Arc<kai_runtime::artifacts::Artifacts>,
    /// Memories and the memory graph.
    pub memory: Arc<kai_runtime::memory::Memory>,
    /// The agent registry.
    pub agents: Arc<kai_runtime::agents::Agents>,
    /// Tasks: submission, plans, steps, questions.
    pub tasks: Arc<kai_runtime::tasks::Tasks>,
    /// Events serialized once for every WebSocket that forwards them.
    pub ws_frames: Arc<routes::ws::FrameCache>,
    /// API tokens recently looked up (revoking one clears it).
    pub token_cache: token_cache::TokenCache,
}

/// How the live configuration's reloads went: the problems of the last rejected edit (cleared
/// by the next accepted one) and the changed keys that take effect only after a restart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigStatus {
    pub rejected_at: Option<DateTime<Utc>>,
    pub problems: Vec<kai_core::config::Problem>,
    pub pending_restart: Vec<String>,
}

/// Shared handler state (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Wraps the services.
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "kai node API", description = "REST API of a kai personal AI node. Errors are application/problem+json."),
    modifiers(&BearerAuth),
    paths(routes::ui::index, routes::ui::asset),
    tags(
        (name = "system", description = "Health, readiness, metrics, node information and identity"),
        (name = "events", description = "The event bus and its persisted log"),
        (name = "audit", description = "The signed audit log"),
        (name = "auth", description = "Login sessions"),
        (name = "users", description = "User accounts"),
        (name = "tokens", description = "API tokens"),
        (name = "vault", description = "The encrypted vault: secrets and named keys"),
        (name = "openai", description = "OpenAI-compatible models, chat completions and embeddings"),
        (name = "ui", description = "The embedded web dashboard (static files; its data calls use the API)"),
        (name = "prompts", description = "The prompt library: versioned templates, renders, history"),
        (name = "artifacts", description = "Stored files: streaming upload, Range download, previews, share links, notes, full-text search"),
        (name = "memory", description = "Memories (hybrid vector + full-text search, tiers, namespaces, TTL, private memories) and the memory graph"),
        (name = "agents", description = "The agent registry and agent lifecycles"),
        (name = "tasks", description = "Goals, plans, steps and questions; workflows, triggers and webhooks"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and their OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::system::health))
        .routes(routes!(routes::system::ready))
        .routes(routes!(routes::system::metrics))
        .routes(routes!(routes::system::info))
        .routes(routes!(routes::system::config))
        .routes(routes!(routes::system::rotate_identity))
        .routes(routes!(routes::events::publish, routes::events::list))
        .routes(routes!(routes::audit::entries))
        .routes(routes!(routes::audit::verify))
        .routes(routes!(routes::auth::login))
        .routes(routes!(routes::auth::refresh))
        .routes(routes!(routes::auth::logout))
        .routes(routes!(routes::auth::me))
        .routes(routes!(routes::auth::change_password))
        .routes(routes!(routes::users::list, routes::users::create))
        .routes(routes!(routes::users::preferences, routes::users::set_preferences))
        .routes(routes!(routes::users::get, routes::users::update, routes::users::delete))
        .routes(routes!(routes::tokens::list, routes::tokens::create))
        .routes(routes!(routes::tokens::revoke))
        .routes(routes!(routes::vault::status))
        .routes(routes!(routes::vault::unlock))
        .routes(routes!(routes::vault::seal))
        .routes(routes!(routes::vault::passphrase))
        .routes(routes!(routes::vault::rekey))
        .routes(routes!(routes::vault::list))
        .routes(routes!(routes::vault::get, routes::vault::put, routes::vault::delete))
        .routes(routes!(routes::vault::versions))
        .routes(routes!(routes::vault::set_policy))
        .routes(routes!(routes::vault::encrypt))
        .routes(routes!(routes::vault::decrypt))
        .routes(routes!(routes::openai::models))
        .routes(routes!(routes::openai::chat))
        .routes(routes!(routes::openai::embeddings))
        .routes(routes!(routes::openai::usage))
        .routes(routes!(routes::chat::list, routes::chat::create))
        .routes(routes!(routes::chat::get, routes::chat::update, routes::chat::delete))
        .routes(routes!(routes::chat::messages, routes::chat::send))
        .routes(routes!(routes::chat::regenerate))
        .routes(routes!(routes::chat::export))
        .routes(routes!(routes::ws::upgrade))
        .routes(routes!(routes::prompts::list, routes::prompts::create))
        .routes(routes!(routes::prompts::search))
        .routes(routes!(routes::prompts::test))
        .routes(routes!(
            routes::prompts::get,
            routes::prompts::edit,
            routes::prompts::patch,
            routes::prompts::delete
        ))
        .routes(routes!(routes::prompts::versions))
        .routes(routes!(routes::prompts::diff))
        .routes(routes!(routes::prompts::render))
        .routes(routes!(routes::prompts::rate))
        .routes(routes!(routes::prompts::templates))
        .routes(routes!(routes::prompts::history))
        .routes(routes!(routes::artifacts::upload))
        .routes(routes!(routes::artifacts::upload_alias))
        .routes(routes!(routes::artifacts::list))
        .routes(routes!(routes::artifacts::search))
        .routes(routes!(
            routes::artifacts::get,
            routes::artifacts::patch,
            routes::artifacts::delete
        ))
        .routes(routes!(routes::artifacts::versions))
        .routes(routes!(routes::artifacts::preview))
        .routes(routes!(routes::artifacts::download))
        .routes(routes!(routes::artifacts::download_alias))
        .routes(routes!(routes::shares::create, routes::shares::list))
        .routes(routes!(routes::shares::revoke))
        .routes(routes!(routes::shares::open))
        .routes(routes!(routes::notes::list, routes::notes::create))
        .routes(routes!(routes::notes::get, routes::notes::update, routes::notes::delete))
        .routes(routes!(routes::memory::add))
        .routes(routes!(routes::memory::get, routes::memory::update, routes::memory::forget))
        .routes(routes!(routes::memory::search))
        .routes(routes!(routes::memory::embeddings))
        .routes(routes!(routes::memory::export))
        .routes(routes!(routes::memory::import))
        .routes(routes!(routes::memory_graph::graph))
        .routes(routes!(routes::memory_graph::entities, routes::memory_graph::add_entity))
        .routes(routes!(routes::memory_graph::get_entity, routes::memory_graph::delete_entity))
        .routes(routes!(routes::memory_graph::merge))
        .routes(routes!(routes::memory_graph::add_relation))
        .routes(routes!(routes::memory_graph::delete_relation))
        .routes(routes!(routes::agents::list, routes::agents::create))
        .routes(routes!(routes::agents::status))
        .routes(routes!(routes::agents::get))
        .routes(routes!(routes::agents::lifecycle))
        .routes(routes!(routes::agents::message))
        .routes(routes!(routes::tasks::submit))
        .routes(routes!(routes::tasks::plan))
        .routes(routes!(routes::tasks::list))
        .routes(routes!(routes::tasks::get))
        .routes(routes!(routes::tasks::cancel))
        .routes(routes!(routes::tasks::retry))
        .routes(routes!(routes::tasks::edit_plan))
        .routes(routes!(routes::tasks::approve))
        .routes(routes!(routes::tasks::reject))
        .routes(routes!(routes::tasks::answer))
        .routes(routes!(routes::workflows::list, routes::workflows::save))
        .routes(routes!(routes::workflows::get))
        .routes(routes!(routes::workflows::run))
        .routes(routes!(routes::workflows::list_webhooks, routes::workflows::create_webhook))
        .routes(routes!(routes::workflows::delete_webhook, routes::workflows::deliver))
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The full application: routes, `/openapi.json` and the middleware stack.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.borrow().config.server.body_limit_bytes as usize;
    let (router, doc) = api().split_for_parts();
    let doc = Arc::new(doc);
    let request_id = HeaderName::from_static("x-request-id");
    router
        .route("/openapi.json", axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }))
        .route("/", axum::routing::get(routes::ui::index))
        .route("/ui/{*path}", axum::routing::get(routes::ui::asset))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authorize))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::timeout))
        .layer(axum::middleware::from_fn(middleware::problem_for_plain_errors))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, middleware::SequentialRequestId::default()))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` fires, then lets in-flight requests finish for
/// at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let stop = shutdown.clone();
    // TCP_NODELAY on every connection: a streamed reply is many small writes, and with Nagle's
    // algorithm each waits for the client's (delayed) ACK of the previous one — ~40 ms per token.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server =
        axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(async move { stop.cancelled().await });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish within the shutdown grace period");
            Ok(())
        }
    }
}
