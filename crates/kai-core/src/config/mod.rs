//! Node configuration: the typed schema, its layered deep merge and its validation.
//!
//! Layers are merged in this order, later ones winning: built-in defaults → system file →
//! environment-specific file → user file → `KAI_*` environment variables → CLI flags.
//! The binary reads the files and variables and hands them here as [`Layer`]s; this module
//! merges them, remembers which layer set each key, and turns every problem into a
//! [`ConfigError`] that names the layer (file, variable or flag), the key and what is allowed.

mod artifacts;
mod layers;
mod memory;
mod schema;
mod tasks;

pub use artifacts::{ArtifactBackend, ArtifactsConfig, S3_MAX_PUT_BYTES, S3Config};
pub use layers::{
    ConfigError, Layer, LoadedConfig, Problem, Source, env_layer, load, parse_scalar,
};
pub use memory::{MemoryConfig, Quantization, VectorBackendName};
pub use schema::{
    AuditConfig, BudgetEntry, BusBackend, BusConfig, Config, LOCAL_PROVIDER, LimitsConfig,
    LogConfig, LogFormat, LogLevel, MetricsConfig, ModelsConfig, NodeConfig, PersonaEntry,
    ProviderEntry, ProviderKindName, ServerConfig, StorageConfig,
};
pub use tasks::TasksConfig;
