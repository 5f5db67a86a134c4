//! Domain types and pure logic of the kai node.
//!
//! This crate owns the vocabulary every other crate speaks: identifiers, the event envelope,
//! the configuration schema with its layered merge and validation, and agent ids.
//!
//! Architecture invariant: `kai-core` does no I/O and has no async runtime. It never reads
//! files, environment variables or the clock on its own; callers pass those in.

pub mod agent_id;
pub mod config;
pub mod event;
pub mod ids;
pub mod library;
pub mod policy;
pub mod secret_policy;

pub use agent_id::AgentId;
pub use event::{Envelope, EventType};
