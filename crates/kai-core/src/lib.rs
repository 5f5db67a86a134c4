//! Domain types and pure logic of the kai node.
//!
//! This crate owns the vocabulary every other crate speaks: identifiers, the event envelope,
//! the configuration schema with its layered merge and validation, agent ids, agent definitions
//! and their lifecycle, task graphs with their checks, and the durable queue's pure rules (job
//! states, retry schedule, concurrency admission).
//!
//! Architecture invariant: `kai-core` does no I/O and has no async runtime. It never reads
//! files, environment variables or the clock on its own; callers pass those in.

pub mod agent;
pub mod agent_id;
pub mod config;
pub mod event;
pub mod ids;
pub mod library;
pub mod lifecycle;
pub mod plan;
pub mod policy;
pub mod queue;
pub mod secret_policy;

pub use agent_id::AgentId;
pub use event::{Envelope, EventType};
