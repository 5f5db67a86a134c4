//! Services of the kai node that sit between the HTTP surface and storage: the audit log
//! writer, the event bus (in-process and NATS JetStream), identity key files, metric names and
//! the durable queue's worker pool.
//!
//! Architecture invariants: services see `Arc<dyn Store>` and `Arc<dyn EventBus>`, never a
//! concrete backend; every spawned task belongs to the caller's `TaskTracker` and stops on its
//! `CancellationToken`; nothing here reads environment variables or configuration files.

pub mod agents;
pub mod artifacts;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod chat;
pub mod identity;
pub mod llm;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod prompts;
pub mod queue;
pub mod spend;
pub mod tasks;
pub mod tools;
pub mod users;
pub mod vault;

#[cfg(test)]
mod testkit;

pub use audit::{AuditError, AuditLog, AuditSettings};
pub use bus::{BusError, DeliveryPolicy, EventBus, Subscription};
pub use vault::{Vault, VaultError};
