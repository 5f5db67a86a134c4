//! Structured logs on stderr: JSON lines by default (`log.format = "json"`), human-readable
//! with `pretty`. The level can be changed live by a configuration reload.

use kai_core::config::{LogConfig, LogFormat, LogLevel};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// Lets a hot reload change the level.
pub struct LogHandle(reload::Handle<EnvFilter, Registry>);

fn filter(level: LogLevel) -> EnvFilter {
    // Our crates at the configured level; chatty dependencies one step quieter.
    let l = level.as_str();
    EnvFilter::new(format!("{l},sqlx=warn,hyper=warn,async_nats=warn,notify=warn,tower_http={l}"))
}

/// Installs the global subscriber for `kai serve`.
pub fn init(config: &LogConfig) -> LogHandle {
    let (filter_layer, handle) = reload::Layer::new(filter(config.level));
    let registry = tracing_subscriber::registry().with(filter_layer);
    let result = match config.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => {
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init()
        }
    };
    if let Err(e) = result {
        eprintln!("warning: logging already initialized: {e}");
    }
    LogHandle(handle)
}

/// Quiet logging for one-shot commands (warnings and errors only).
pub fn init_quiet() {
    let _ = tracing_subscriber::registry()
        .with(filter(LogLevel::Warn))
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}

impl LogHandle {
    /// Applies a new level at once.
    pub fn set_level(&self, level: LogLevel) {
        if let Err(e) = self.0.reload(filter(level)) {
            tracing::warn!(error = %e, "could not change the log level");
        }
    }
}
