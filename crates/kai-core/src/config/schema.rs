//! The configuration schema: every key, its type, default and allowed range.
//!
//! Unknown keys are rejected (`deny_unknown_fields`); ranges are checked by [`Config::validate`].

use serde::{Deserialize, Serialize};

/// The whole node configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub audit: AuditConfig,
    pub bus: BusConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub limits: LimitsConfig,
    /// LLM providers (`[[providers]]`), merged across layers by `name`.
    pub providers: Vec<ProviderEntry>,
    /// Personas (`[[personas]]`): what `/v1/models` offers and `/v1/chat/completions` routes.
    pub personas: Vec<PersonaEntry>,
    /// `[spend]`: the default token budget per principal.
    pub spend: SpendConfig,
    /// `[[budgets]]`: budgets for named principals (`user:ID`, `token:ID`, `agent:kClass:name`).
    pub budgets: Vec<BudgetEntry>,
    /// `[models]`: the embedded local models (provider `local`).
    pub models: ModelsConfig,
    /// `[artifacts]`: artifact storage, upload limit, share links.
    pub artifacts: super::artifacts::ArtifactsConfig,
    /// `[memory]`: embeddings, vector backend, TTL sweep, recall and graph extraction.
    pub memory: super::memory::MemoryConfig,
    /// `[tasks]`: task workers and tool limits.
    pub tasks: super::tasks::TasksConfig,
}

/// `[models]`: where the embedded models' weights are and how they run. They are the provider
/// named `local`, which needs no `[[providers]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Directory `kai models install` writes to; empty: `<data dir>/models`.
    pub dir: String,
    /// Load the installed models when the node starts, so the first request does not wait
    /// (off by default: they add ~300 MB of memory, which an idle node should not hold).
    pub preload: bool,
    /// Local generations at once (1–16); more queue.
    pub chat_concurrency: usize,
    /// Local embedding batches at once (1–16).
    pub embed_concurrency: usize,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self { dir: String::new(), preload: false, chat_concurrency: 1, embed_concurrency: 1 }
    }
}

/// The provider name of the embedded models; always defined, never in `[[providers]]`.
pub const LOCAL_PROVIDER: &str = "local";

/// `[node]`: who this node is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Display name shown in `/system/info` and the dashboard.
    pub name: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { name: "kai".into() }
    }
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default; a public address needs `allow_public_bind`.
    pub listen: String,
    /// Permit listening on a non-loopback address.
    pub allow_public_bind: bool,
    /// A request taking longer than this is answered 408 (seconds, 1–3600).
    pub request_timeout_secs: u64,
    /// Largest request body accepted (bytes, 1 KiB–1 GiB); larger bodies get 413.
    pub body_limit_bytes: u64,
    /// How long a graceful shutdown waits for in-flight requests (seconds, 0–600).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7470".into(),
            allow_public_bind: false,
            request_timeout_secs: 30,
            body_limit_bytes: 2 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

/// `[storage]`: where the node keeps its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` or `postgres://…`. Empty means `sqlite://<data dir>/kai.db`.
    pub url: String,
    /// Connection pool size (1–256).
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8 }
    }
}

/// `[audit]`: the signed audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write a signed checkpoint after this many entries (1–1,000,000).
    pub checkpoint_every: u64,
    /// …or after this many seconds with new entries (1–86,400).
    pub checkpoint_interval_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { checkpoint_every: 1000, checkpoint_interval_secs: 60 }
    }
}

/// Which event bus carries events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusBackend {
    /// In-process bus with the event log in storage (default).
    Memory,
    /// NATS JetStream, shared by several nodes.
    Nats,
}

/// `[bus]`: the event bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    pub backend: BusBackend,
    /// NATS server URL (used when `backend = "nats"`).
    pub nats_url: String,
    /// JetStream stream name (used when `backend = "nats"`).
    pub nats_stream: String,
    /// Events buffered per subscriber before back-pressure applies (1–1,000,000).
    pub subscriber_queue: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            backend: BusBackend::Memory,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_stream: "KAI_EVENTS".into(),
            subscriber_queue: 1024,
        }
    }
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The level as a tracing filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default; machine-readable).
    Json,
    /// Human-readable lines.
    Pretty,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: LogLevel::Info, format: LogFormat::Json }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` in Prometheus text format.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[limits]`: per-principal request rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Sustained requests per second per principal (0–100,000; 0 turns the limit off).
    pub requests_per_second: u32,
    /// Burst allowance per principal (1–1,000,000).
    pub burst: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self { requests_per_second: 50, burst: 200 }
    }
}

/// `[spend]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpendConfig {
    /// Tokens (prompt + completion) each principal may use per rolling 24 hours; 0: no limit.
    pub tokens_per_day: u64,
    /// US dollars each principal may spend per rolling 24 hours (at the providers' configured
    /// prices); 0: no limit.
    pub cost_per_day: f64,
}

/// `[[budgets]]`: one principal's own budget, overriding `[spend]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetEntry {
    /// The principal as audit entries name it, e.g. `user:0190…` or `agent:kBridge:mail`.
    pub name: String,
    /// Tokens per rolling 24 hours; 0 blocks every call. Unset: `[spend] tokens_per_day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// US dollars per rolling 24 hours; 0 blocks every priced call. Unset: `[spend]
    /// cost_per_day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_day: Option<f64>,
}

/// Which wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindName {
    /// OpenAI-compatible `/v1` (OpenAI, vLLM, llama.cpp server, LM Studio, TGI, Ollama's /v1).
    Openai,
    Ollama,
    Anthropic,
    Gemini,
}

/// `[[providers]]`: one LLM endpoint. Its API key is a vault secret, named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub name: String,
    pub kind: ProviderKindName,
    /// Empty: the provider's public default.
    #[serde(default)]
    pub base_url: String,
    /// Name of the vault secret holding the API key; empty for keyless local servers.
    #[serde(default)]
    pub key_secret: String,
    #[serde(default)]
    pub chat_model: String,
    #[serde(default)]
    pub embedding_model: String,
    /// Seconds per request (1–600).
    #[serde(default = "default_provider_timeout")]
    pub timeout_secs: u64,
    /// Retries on 429/5xx (0–10).
    #[serde(default = "default_provider_retries")]
    pub max_retries: u32,
    /// Requests in flight at once (1–1024).
    #[serde(default = "default_provider_concurrency")]
    pub concurrency: usize,
    /// US dollars per million prompt tokens (for cost budgets; 0: free).
    #[serde(default)]
    pub prompt_price: f64,
    /// US dollars per million completion tokens.
    #[serde(default)]
    pub completion_price: f64,
}

fn default_provider_timeout() -> u64 {
    120
}
fn default_provider_retries() -> u32 {
    3
}
fn default_provider_concurrency() -> usize {
    4
}

/// `[[personas]]`: a named system prompt, model choice and fallback chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub system_prompt: String,
    /// Provider names to try in order: the next is used when one is down.
    pub providers: Vec<String>,
    /// Model name at the provider; empty: the provider's `chat_model`.
    #[serde(default)]
    pub model: String,
    pub temperature: Option<f32>,
    /// The model's context window in tokens: chat threads summarize old turns before their
    /// history fills three quarters of it (256 to 2,000,000).
    #[serde(default = "default_context_tokens")]
    pub context_tokens: u32,
}

fn default_context_tokens() -> u32 {
    8192
}

pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.'
        })
}

/// One range or format violation: the dotted key and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub key: &'static str,
    pub message: String,
}

fn range<T: PartialOrd + std::fmt::Display + Copy>(
    out: &mut Vec<FieldError>,
    key: &'static str,
    value: T,
    lo: T,
    hi: T,
) {
    if value < lo || value > hi {
        out.push(FieldError {
            key,
            message: format!("value {value} is out of range; allowed: {lo} to {hi}"),
        });
    }
}

impl Config {
    /// Checks every range and format rule the types alone cannot express.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if self.node.name.trim().is_empty() || self.node.name.len() > 64 {
            out.push(FieldError { key: "node.name", message: "must be 1 to 64 characters".into() });
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(FieldError {
                key: "server.listen",
                message: format!(
                    "{:?} is not an address; allowed: IP:PORT such as 127.0.0.1:7470",
                    self.server.listen
                ),
            });
        }
        range(&mut out, "server.request_timeout_secs", self.server.request_timeout_secs, 1, 3600);
        range(&mut out, "server.body_limit_bytes", self.server.body_limit_bytes, 1024, 1 << 30);
        range(&mut out, "server.shutdown_grace_secs", self.server.shutdown_grace_secs, 0, 600);
        let url = &self.storage.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            out.push(FieldError {
                key: "storage.url",
                message: "unsupported scheme; allowed: empty (SQLite in the data dir), sqlite://PATH, postgres://…".into(),
            });
        }
        range(&mut out, "storage.max_connections", self.storage.max_connections, 1, 256);
        range(&mut out, "audit.checkpoint_every", self.audit.checkpoint_every, 1, 1_000_000);
        range(
            &mut out,
            "audit.checkpoint_interval_secs",
            self.audit.checkpoint_interval_secs,
            1,
            86_400,
        );
        range(&mut out, "bus.subscriber_queue", self.bus.subscriber_queue, 1, 1_000_000);
        range(&mut out, "limits.requests_per_second", self.limits.requests_per_second, 0, 100_000);
        range(&mut out, "limits.burst", self.limits.burst, 1, 1_000_000);
        self.validate_llm(&mut out);
        self.artifacts.validate(&mut out);
        let providers: Vec<&str> = self.providers.iter().map(|p| p.name.as_str()).collect();
        let personas: Vec<&str> = self.personas.iter().map(|p| p.name.as_str()).collect();
        self.memory.validate(&providers, &personas, &mut out);
        self.tasks.validate(&mut out);
        if !self.bus.nats_url.starts_with("nats://") && !self.bus.nats_url.starts_with("tls://") {
            out.push(FieldError {
                key: "bus.nats_url",
                message: "allowed: nats://HOST:PORT or tls://HOST:PORT".into(),
            });
        }
        if self.bus.nats_stream.is_empty()
            || !self
                .bus
                .nats_stream
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.push(FieldError {
                key: "bus.nats_stream",
                message: "allowed: letters, digits, `_` and `-`".into(),
            });
        }
        out
    }

    fn validate_llm(&self, out: &mut Vec<FieldError>) {
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(LOCAL_PROVIDER);
        if !(1..=16).contains(&self.models.chat_concurrency)
            || !(1..=16).contains(&self.models.embed_concurrency)
        {
            out.push(FieldError {
                key: "models",
                message: "chat_concurrency and embed_concurrency: allowed 1 to 16".into(),
            });
        }
        for p in &self.providers {
            if p.name == LOCAL_PROVIDER {
                out.push(FieldError {
                    key: "providers",
                    message: "the provider name \"local\" is the embedded models' (configure them under [models])".into(),
                });
                continue;
            }
            if !valid_name(&p.name) || !seen.insert(p.name.as_str()) {
                out.push(FieldError {
                    key: "providers",
                    message: format!(
                        "provider name {:?} is empty, repeated or not a-z, 0-9, `-`, `_`, `.`",
                        p.name
                    ),
                });
            }
            if !(p.base_url.is_empty()
                || p.base_url.starts_with("http://")
                || p.base_url.starts_with("https://"))
            {
                out.push(FieldError {
                    key: "providers",
                    message: format!("provider {:?}: base_url must be http(s)://…", p.name),
                });
            }
            if !(1..=600).contains(&p.timeout_secs)
                || p.max_retries > 10
                || !(1..=1024).contains(&p.concurrency)
            {
                out.push(FieldError {
                    key: "providers",
                    message: format!("provider {:?}: allowed: timeout_secs 1 to 600, max_retries 0 to 10, concurrency 1 to 1024", p.name),
                });
            }
            let price_ok = |x: f64| x.is_finite() && (0.0..=1_000_000.0).contains(&x);
            if !price_ok(p.prompt_price) || !price_ok(p.completion_price) {
                out.push(FieldError {
                    key: "providers",
                    message: format!("provider {:?}: prompt_price and completion_price are US dollars per million tokens, 0 to 1000000", p.name),
                });
            }
        }
        let dollars_ok = |x: f64| x.is_finite() && (0.0..=1_000_000_000.0).contains(&x);
        if !dollars_ok(self.spend.cost_per_day) {
            out.push(FieldError {
                key: "spend.cost_per_day",
                message: "US dollars, 0 to 1000000000 (0: no limit)".into(),
            });
        }
        let mut budgets = std::collections::BTreeSet::new();
        for b in &self.budgets {
            if b.name.is_empty() || !budgets.insert(b.name.as_str()) {
                out.push(FieldError {
                    key: "budgets",
                    message: format!("budget name {:?} is empty or repeated", b.name),
                });
            }
            if b.tokens_per_day.is_none() && b.cost_per_day.is_none() {
                out.push(FieldError {
                    key: "budgets",
                    message: format!(
                        "budget {:?} sets neither tokens_per_day nor cost_per_day",
                        b.name
                    ),
                });
            }
            if b.cost_per_day.is_some_and(|c| !dollars_ok(c)) {
                out.push(FieldError {
                    key: "budgets",
                    message: format!(
                        "budget {:?}: cost_per_day is US dollars, 0 to 1000000000",
                        b.name
                    ),
                });
            }
        }
        let mut personas = std::collections::BTreeSet::new();
        for persona in &self.personas {
            if !valid_name(&persona.name) || !personas.insert(persona.name.as_str()) {
                out.push(FieldError {
                    key: "personas",
                    message: format!(
                        "persona name {:?} is empty, repeated or not a-z, 0-9, `-`, `_`, `.`",
                        persona.name
                    ),
                });
            }
            if persona.providers.is_empty() {
                out.push(FieldError {
                    key: "personas",
                    message: format!("persona {:?} names no provider", persona.name),
                });
            }
            for missing in persona.providers.iter().filter(|p| !seen.contains(p.as_str())) {
                out.push(FieldError {
                    key: "personas",
                    message: format!("persona {:?} uses provider {missing:?}, which no [[providers]] entry defines", persona.name),
                });
            }
            if persona.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
                out.push(FieldError {
                    key: "personas",
                    message: format!("persona {:?}: temperature allowed 0 to 2", persona.name),
                });
            }
            if !(256..=2_000_000).contains(&persona.context_tokens) {
                out.push(FieldError {
                    key: "personas",
                    message: format!(
                        "persona {:?}: context_tokens allowed 256 to 2000000",
                        persona.name
                    ),
                });
            }
        }
    }

    /// Keys whose new value only takes effect after a restart (listener, storage, bus).
    /// Everything else is applied live by a hot reload.
    pub fn restart_required(&self, new: &Config) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut check = |changed: bool, key| {
            if changed {
                keys.push(key);
            }
        };
        check(self.server.listen != new.server.listen, "server.listen");
        check(
            self.server.allow_public_bind != new.server.allow_public_bind,
            "server.allow_public_bind",
        );
        check(
            self.server.body_limit_bytes != new.server.body_limit_bytes,
            "server.body_limit_bytes",
        );
        check(self.storage != new.storage, "storage");
        check(self.bus != new.bus, "bus");
        check(self.metrics != new.metrics, "metrics");
        check(self.log.format != new.log.format, "log.format");
        check(self.limits != new.limits, "limits");
        check(self.providers != new.providers, "providers");
        check(self.personas != new.personas, "personas");
        check(self.models != new.models, "models");
        check(self.artifacts.backend != new.artifacts.backend, "artifacts.backend");
        check(self.artifacts.s3 != new.artifacts.s3, "artifacts.s3");
        check(self.memory != new.memory, "memory");
        check(self.tasks.workers != new.tasks.workers, "tasks.workers");
        keys
    }
}

impl Config {
    /// The configuration to run with after a hot reload to `new`: every key that can change
    /// live takes its new value; keys listed by [`Config::restart_required`] keep their old one.
    pub fn with_live_changes(&self, new: &Config) -> Config {
        let mut next = self.clone();
        next.spend = new.spend.clone();
        next.budgets = new.budgets.clone();
        next.node = new.node.clone();
        next.server.request_timeout_secs = new.server.request_timeout_secs;
        next.server.shutdown_grace_secs = new.server.shutdown_grace_secs;
        next.audit = new.audit.clone();
        next.log.level = new.log.level;
        next.artifacts = super::artifacts::ArtifactsConfig {
            backend: self.artifacts.backend,
            s3: self.artifacts.s3.clone(),
            ..new.artifacts.clone()
        };
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_changes_apply_and_static_keys_wait_for_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.log.level = LogLevel::Debug;
        new.server.request_timeout_secs = 9;
        new.server.listen = "127.0.0.1:1".into();
        new.storage.max_connections = 3;
        let running = old.with_live_changes(&new);
        assert_eq!(running.log.level, LogLevel::Debug);
        assert_eq!(running.server.request_timeout_secs, 9);
        assert_eq!(running.server.listen, old.server.listen);
        assert_eq!(running.storage, old.storage);
        // What did not apply is exactly what restart_required reports.
        assert!(
            running.restart_required(&new).iter().all(|k| old.restart_required(&new).contains(k))
        );
        assert!(
            running.with_live_changes(&new).restart_required(&new).len()
                == old.restart_required(&new).len()
        );
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), vec![]);
    }

    #[test]
    fn personas_must_name_defined_providers() {
        let mut c = Config::default();
        c.providers.push(ProviderEntry {
            name: "llamacpp".into(),
            kind: ProviderKindName::Openai,
            base_url: "http://127.0.0.1:8080/v1".into(),
            key_secret: String::new(),
            chat_model: "m".into(),
            embedding_model: String::new(),
            timeout_secs: 120,
            max_retries: 3,
            concurrency: 4,
            prompt_price: 0.0,
            completion_price: 0.0,
        });
        c.personas.push(PersonaEntry {
            name: "assistant".into(),
            description: String::new(),
            system_prompt: "Be brief.".into(),
            providers: vec!["llamacpp".into(), "local".into(), "cloud".into()],
            model: String::new(),
            temperature: Some(0.2),
            context_tokens: 8192,
        });
        let errors = c.validate();
        assert_eq!(errors.len(), 1, "the built-in `local` is defined: {errors:?}");
        assert!(errors[0].message.contains("\"cloud\""));
        c.personas[0].providers.pop();
        assert!(c.validate().is_empty());
        // `local` is reserved for the embedded models.
        c.providers[0].name = "local".into();
        let errors = c.validate();
        assert!(errors.iter().any(|e| e.message.contains("embedded models")), "{errors:?}");
    }

    #[test]
    fn restart_required_lists_only_static_keys() {
        let a = Config::default();
        let mut b = a.clone();
        b.log.level = LogLevel::Debug;
        b.audit.checkpoint_every = 5;
        b.server.request_timeout_secs = 5;
        assert!(a.restart_required(&b).is_empty());
        b.server.listen = "127.0.0.1:1".into();
        assert_eq!(a.restart_required(&b), vec!["server.listen"]);
    }
}
