//! Offline verification of a whole audit log: chain links, hashes, signatures, signer
//! authority (genesis, rotation, registration) and every signed checkpoint.
//!
//! Entries are fed in batches (so a million-entry log never sits in memory at once);
//! hashes and signatures of a batch are checked on all cores, the chain in order.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signature, VerifyingKey};
use rayon::prelude::*;

use super::Hash;
use super::entry::{Checkpoint, Entry, GENESIS_ACTION, REGISTER_ACTION, ROTATE_ACTION};
use super::merkle::MerkleAccumulator;
use crate::identity::Did;

/// The first problem found, naming the entry (by `seq`) where the log stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {reason}")]
pub struct VerifyError {
    pub seq: u64,
    pub reason: String,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: u64,
    pub root: String,
    pub signers: Vec<String>,
}

/// The message a new key signs to accept a rotation from `old`.
pub fn rotation_proof_message(old: &str) -> Vec<u8> {
    let mut m = b"kai-audit-rotate-v1".to_vec();
    m.extend_from_slice(old.as_bytes());
    m
}

/// Streams a log through every check.
pub struct Verifier {
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    expected_seq: u64,
    prev: Hash,
    acc: MerkleAccumulator,
    authorized: HashSet<String>,
    retired: HashMap<String, u64>,
    all_signers: Vec<String>,
    trusted_genesis: Option<Did>,
    keys: HashMap<String, Option<VerifyingKey>>,
    checkpoints_checked: u64,
}

impl Verifier {
    /// A verifier that will check `checkpoints` (any order) and, if given, that the log was
    /// started by `trusted_genesis` (the node's own first identity).
    pub fn new(mut checkpoints: Vec<Checkpoint>, trusted_genesis: Option<Did>) -> Self {
        checkpoints.sort_by_key(|c| c.size);
        Self {
            checkpoints,
            next_checkpoint: 0,
            expected_seq: 1,
            prev: [0; 32],
            acc: MerkleAccumulator::new(),
            authorized: HashSet::new(),
            retired: HashMap::new(),
            all_signers: Vec::new(),
            trusted_genesis,
            keys: HashMap::new(),
            checkpoints_checked: 0,
        }
    }

    fn key(&mut self, did: &str) -> Option<VerifyingKey> {
        *self
            .keys
            .entry(did.to_owned())
            .or_insert_with(|| did.parse::<Did>().ok().and_then(|d| d.verifying_key().ok()))
    }

    /// Checks the next batch of entries (which must continue where the last batch ended).
    pub fn feed(&mut self, batch: &[Entry]) -> Result<(), VerifyError> {
        for e in batch {
            self.key(&e.signer);
        }
        let keys = &self.keys;
        let checks: Vec<(bool, bool)> = batch
            .par_iter()
            .map(|e| {
                let hash_ok = e.compute_hash() == e.hash;
                let sig_ok = keys.get(&e.signer).copied().flatten().is_some_and(|k| {
                    k.verify_strict(&e.hash, &Signature::from_bytes(&e.signature)).is_ok()
                });
                (hash_ok, sig_ok)
            })
            .collect();
        for (e, (hash_ok, sig_ok)) in batch.iter().zip(checks) {
            self.check_entry(e, hash_ok, sig_ok)?;
        }
        Ok(())
    }

    fn check_entry(&mut self, e: &Entry, hash_ok: bool, sig_ok: bool) -> Result<(), VerifyError> {
        let seq = self.expected_seq;
        let fail = |reason: String| Err(VerifyError { seq, reason });
        if e.seq != seq {
            return if e.seq > seq {
                fail(format!(
                    "missing: found entry {} where entry {seq} should be (deleted or reordered)",
                    e.seq
                ))
            } else {
                fail(format!("out of order: found entry {} after entry {}", e.seq, seq - 1))
            };
        }
        if !hash_ok {
            return fail(
                "contents do not match the entry's hash (modified, or moved from another position)"
                    .into(),
            );
        }
        if e.prev_hash != self.prev {
            return fail(format!(
                "does not link to entry {} (an entry before it was removed, inserted or reordered)",
                seq.saturating_sub(1)
            ));
        }
        if seq == 1 {
            if e.action != GENESIS_ACTION {
                return fail(format!(
                    "the log must start with {GENESIS_ACTION}, found {}",
                    e.action
                ));
            }
            if let Some(trusted) = &self.trusted_genesis
                && trusted.as_str() != e.signer
            {
                return fail(format!(
                    "genesis signed by {} but this node's first identity is {trusted}",
                    e.signer
                ));
            }
            self.authorized.insert(e.signer.clone());
            self.all_signers.push(e.signer.clone());
        }
        if !self.authorized.contains(&e.signer) {
            return match self.retired.get(&e.signer) {
                Some(at) => {
                    fail(format!("signed by {} which was rotated out at entry {at}", e.signer))
                }
                None => fail(format!(
                    "signed by {} which is not an authorized identity of this log",
                    e.signer
                )),
            };
        }
        if !sig_ok {
            return fail(format!("signature does not verify for {}", e.signer));
        }
        if e.outcome == "success" {
            self.apply_identity_action(e)?;
        }
        self.prev = e.hash;
        self.acc.push(&e.hash);
        self.expected_seq += 1;
        self.check_checkpoints_at_current_size()
    }

    fn apply_identity_action(&mut self, e: &Entry) -> Result<(), VerifyError> {
        let fail = |reason: String| Err(VerifyError { seq: e.seq, reason });
        match e.action.as_str() {
            ROTATE_ACTION => {
                let Ok(new) = e.target.parse::<Did>() else {
                    return fail(format!("rotation to {:?}, which is not a did:key", e.target));
                };
                let proof = serde_json::from_str::<serde_json::Value>(&e.details)
                    .ok()
                    .and_then(|d| d.get("proof").and_then(|p| p.as_str()).map(str::to_owned))
                    .and_then(|p| hex::decode(p).ok())
                    .and_then(|p| <[u8; 64]>::try_from(p).ok());
                if !proof.is_some_and(|p| new.verify(&rotation_proof_message(&e.signer), &p)) {
                    return fail(format!(
                        "rotation to {new} lacks a valid proof signed by the new key"
                    ));
                }
                self.authorized.remove(&e.signer);
                self.retired.insert(e.signer.clone(), e.seq);
                self.authorized.insert(e.target.clone());
                self.all_signers.push(e.target.clone());
            }
            REGISTER_ACTION => {
                if e.target.parse::<Did>().is_err() {
                    return fail(format!("registration of {:?}, which is not a did:key", e.target));
                }
                self.authorized.insert(e.target.clone());
                self.all_signers.push(e.target.clone());
            }
            _ => {}
        }
        Ok(())
    }

    fn check_checkpoints_at_current_size(&mut self) -> Result<(), VerifyError> {
        let size = self.acc.size();
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.size > size {
                break;
            }
            let cp = cp.clone();
            self.next_checkpoint += 1;
            self.checkpoints_checked += 1;
            let fail = |reason: String| Err(VerifyError { seq: cp.size.max(1), reason });
            if cp.size == 0 {
                return fail("checkpoint of an empty log".into());
            }
            if !cp.signature_valid() {
                return fail(format!(
                    "the checkpoint at size {} has an invalid signature",
                    cp.size
                ));
            }
            if !self.authorized.contains(&cp.signer) && !self.retired.contains_key(&cp.signer) {
                return fail(format!(
                    "the checkpoint at size {} is signed by unknown key {}",
                    cp.size, cp.signer
                ));
            }
            if cp.root != self.acc.root() {
                return fail(format!(
                    "the checkpoint at size {} commits to a different tree (entries up to here were changed)",
                    cp.size
                ));
            }
        }
        Ok(())
    }

    /// Ends verification: checkpoints beyond the last entry mean the tail was cut off.
    pub fn finish(self) -> Result<VerifyReport, VerifyError> {
        if let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            let last = self.expected_seq - 1;
            return Err(VerifyError {
                seq: self.expected_seq,
                reason: format!(
                    "missing: the log ends at entry {last} but a signed checkpoint covers {} entries (truncated)",
                    cp.size
                ),
            });
        }
        Ok(VerifyReport {
            entries: self.acc.size(),
            checkpoints: self.checkpoints_checked,
            root: hex::encode(self.acc.root()),
            signers: self.all_signers,
        })
    }
}

#[cfg(test)]
mod tests;
