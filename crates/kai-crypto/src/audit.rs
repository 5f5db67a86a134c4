//! The signed audit log: entries chained by hash and signed by the acting identity, Merkle
//! tree heads over the entries (RFC 6962 hashing), signed checkpoints, and the verifier.

mod entry;
mod merkle;
mod verify;

pub use entry::{
    Checkpoint, Entry, EntryDraft, GENESIS_ACTION, Outcome, REGISTER_ACTION, ROTATE_ACTION,
};
pub use merkle::MerkleAccumulator;
pub use verify::{Verifier, VerifyError, VerifyReport, rotation_proof_message};

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];
