//! Cryptography of the kai node: Ed25519 identities named by `did:key`, the signed audit
//! chain with RFC 6962 Merkle checkpoints, and the offline verifier for both.
//!
//! Architecture invariant: pure functions and data; no files, network or clock. Callers pass
//! timestamps in and persist what this crate produces.

pub mod audit;
pub mod identity;
pub mod token;
pub mod vault;

pub use identity::{Did, DidError, Identity};
