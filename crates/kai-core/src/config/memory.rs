//! `[memory]`: the memory service — where embeddings come from, which vector backend holds
//! them, the TTL sweep, chat recall and graph extraction.

use serde::{Deserialize, Serialize};

use super::schema::{FieldError, valid_name};

/// Where the memory vectors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackendName {
    /// The in-process HNSW index, persisted in the data dir (default).
    #[default]
    Hnsw,
    /// A Qdrant server over its REST API (`qdrant_url`); private memories stay in process.
    Qdrant,
}

/// How the in-process index stores vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    /// f32 vectors in memory.
    F32,
    /// int8 codes in memory with exact re-ranking from f32 originals kept in memory (default).
    #[default]
    Int8,
    /// int8 codes in memory; the f32 originals are read back from the index file for re-ranking
    /// (the smallest footprint).
    Int8File,
}

/// `[memory]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// Name of the provider that embeds memories and queries: `local` (the embedded MiniLM, the
    /// default) or a `[[providers]]` entry. Empty: no vector search — memories are still stored
    /// and found by full-text search, and the API says so.
    pub embedding_provider: String,
    /// Embedding model at that provider; empty: the provider's `embedding_model`.
    pub embedding_model: String,
    pub vector_backend: VectorBackendName,
    pub quantization: Quantization,
    /// Qdrant's REST endpoint, e.g. `http://127.0.0.1:6333` (with `vector_backend = "qdrant"`).
    pub qdrant_url: String,
    pub qdrant_collection: String,
    /// Vault secret holding Qdrant's API key; empty for an open server.
    pub qdrant_key_secret: String,
    /// How often expired memories are deleted (seconds, 1–86,400). Expired memories are never
    /// returned, swept or not.
    pub sweep_interval_secs: u64,
    /// Memories chat recalls into a reply's context (0–50; 0 turns recall off).
    pub recall_k: u32,
    /// Store an episodic memory of every chat turn and thread summary.
    pub episodic: bool,
    /// Persona that extracts entities and relations from new memories; empty: no extraction
    /// (the graph is then built only through the API).
    pub extraction_persona: String,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            embedding_provider: super::LOCAL_PROVIDER.into(),
            embedding_model: String::new(),
            vector_backend: VectorBackendName::Hnsw,
            quantization: Quantization::Int8,
            qdrant_url: String::new(),
            qdrant_collection: "kai_memory".into(),
            qdrant_key_secret: String::new(),
            sweep_interval_secs: 60,
            recall_k: 5,
            episodic: true,
            extraction_persona: String::new(),
        }
    }
}

impl MemoryConfig {
    /// Range and reference checks; `providers` and `personas` are the configured names.
    pub(crate) fn validate(
        &self,
        providers: &[&str],
        personas: &[&str],
        out: &mut Vec<FieldError>,
    ) {
        if !self.embedding_provider.is_empty()
            && self.embedding_provider != super::LOCAL_PROVIDER
            && !providers.contains(&self.embedding_provider.as_str())
        {
            out.push(FieldError {
                key: "memory.embedding_provider",
                message: format!(
                    "{:?} is not the name of a [[providers]] entry; allowed: empty or one of {providers:?}",
                    self.embedding_provider
                ),
            });
        }
        if !self.extraction_persona.is_empty()
            && !personas.contains(&self.extraction_persona.as_str())
        {
            out.push(FieldError {
                key: "memory.extraction_persona",
                message: format!(
                    "{:?} is not the name of a [[personas]] entry; allowed: empty or one of {personas:?}",
                    self.extraction_persona
                ),
            });
        }
        if self.vector_backend == VectorBackendName::Qdrant
            && !(self.qdrant_url.starts_with("http://") || self.qdrant_url.starts_with("https://"))
        {
            out.push(FieldError {
                key: "memory.qdrant_url",
                message: "vector_backend = \"qdrant\" needs qdrant_url = \"http://HOST:6333\""
                    .into(),
            });
        }
        if !valid_name(&self.qdrant_collection) {
            out.push(FieldError {
                key: "memory.qdrant_collection",
                message: "1 to 64 characters of a-z, 0-9, `-`, `_`, `.`".into(),
            });
        }
        if !(1..=86_400).contains(&self.sweep_interval_secs) {
            out.push(FieldError {
                key: "memory.sweep_interval_secs",
                message: format!(
                    "value {} is out of range; allowed: 1 to 86400",
                    self.sweep_interval_secs
                ),
            });
        }
        if self.recall_k > 50 {
            out.push(FieldError {
                key: "memory.recall_k",
                message: format!("value {} is out of range; allowed: 0 to 50", self.recall_k),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_ranges_are_checked() {
        let mut out = Vec::new();
        MemoryConfig::default().validate(&[], &[], &mut out);
        assert!(out.is_empty(), "{out:?}");
        let bad = MemoryConfig {
            embedding_provider: "nope".into(),
            extraction_persona: "ghost".into(),
            vector_backend: VectorBackendName::Qdrant,
            sweep_interval_secs: 0,
            recall_k: 51,
            qdrant_collection: "Bad Name".into(),
            ..MemoryConfig::default()
        };
        bad.validate(&["local"], &["assistant"], &mut out);
        let keys: Vec<_> = out.iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "memory.embedding_provider",
                "memory.extraction_persona",
                "memory.qdrant_url",
                "memory.qdrant_collection",
                "memory.sweep_interval_secs",
                "memory.recall_k"
            ]
        );
        let mut out = Vec::new();
        let good = MemoryConfig {
            embedding_provider: "local".into(),
            extraction_persona: "assistant".into(),
            ..MemoryConfig::default()
        };
        good.validate(&["local"], &["assistant"], &mut out);
        assert!(out.is_empty());
    }
}
