use chrono::Utc;
use proptest::prelude::*;

use super::*;
use crate::audit::entry::{EntryDraft, Outcome};
use crate::identity::Identity;

/// Builds a log the way the node's writer does.
struct Log {
    entries: Vec<Entry>,
    checkpoints: Vec<Checkpoint>,
    acc: MerkleAccumulator,
    signer: Identity,
    genesis: Did,
    every: u64,
}

impl Log {
    fn new(every: u64) -> Self {
        let signer = Identity::generate();
        let genesis = signer.did().clone();
        let mut log = Self {
            entries: vec![],
            checkpoints: vec![],
            acc: MerkleAccumulator::new(),
            signer,
            genesis,
            every,
        };
        log.append(GENESIS_ACTION, &log.genesis.to_string(), serde_json::json!({}));
        log
    }

    fn append(&mut self, action: &str, target: &str, details: serde_json::Value) {
        let seq = self.entries.len() as u64 + 1;
        let prev = self.entries.last().map_or([0; 32], |e| e.hash);
        let draft = EntryDraft {
            timestamp: Utc::now(),
            actor: "user:owner".into(),
            action: action.into(),
            target: target.into(),
            outcome: Outcome::Success,
            details,
        };
        let e = Entry::seal(draft, seq, prev, &self.signer);
        self.acc.push(&e.hash);
        self.entries.push(e);
        if seq.is_multiple_of(self.every) {
            self.checkpoints.push(Checkpoint::sign(seq, self.acc.root(), Utc::now(), &self.signer));
        }
    }

    fn op(&mut self, n: u64) {
        self.append("event.publish", &format!("event:{n}"), serde_json::json!({"n": n}));
    }

    fn rotate(&mut self) {
        let new = Identity::generate();
        let proof = new.sign(&rotation_proof_message(self.signer.did().as_str()));
        self.append(
            ROTATE_ACTION,
            new.did().as_str(),
            serde_json::json!({"proof": hex::encode(proof)}),
        );
        self.signer = new;
    }

    fn verify(&self) -> Result<VerifyReport, VerifyError> {
        verify_entries(&self.entries, &self.checkpoints, Some(self.genesis.clone()))
    }
}

fn verify_entries(
    entries: &[Entry],
    cps: &[Checkpoint],
    genesis: Option<Did>,
) -> Result<VerifyReport, VerifyError> {
    let mut v = Verifier::new(cps.to_vec(), genesis);
    for chunk in entries.chunks(7) {
        v.feed(chunk)?;
    }
    v.finish()
}

fn log_of(n: u64, every: u64) -> Log {
    let mut log = Log::new(every);
    for i in 0..n {
        log.op(i);
    }
    log
}

#[test]
fn intact_log_verifies() {
    let log = log_of(99, 10);
    let report = log.verify().unwrap();
    assert_eq!(report.entries, 100);
    assert_eq!(report.checkpoints, 10);
}

#[test]
fn tampered_byte_is_named() {
    let mut log = log_of(99, 10);
    log.entries[41].target.replace_range(0..1, "X");
    assert_eq!(log.verify().unwrap_err().seq, 42);
    let mut log = log_of(99, 10);
    log.entries[41].signature[5] ^= 1;
    assert_eq!(log.verify().unwrap_err().seq, 42);
}

#[test]
fn deleted_entry_is_named() {
    let mut log = log_of(99, 10);
    log.entries.remove(56);
    let err = log.verify().unwrap_err();
    assert_eq!(err.seq, 57);
    assert!(err.reason.contains("missing"), "{err}");
}

#[test]
fn deleted_entry_with_renumbered_tail_is_named() {
    // An attacker renumbers the rows after a deletion: the hash binding catches it.
    let mut log = log_of(99, 10);
    log.entries.remove(56);
    for e in &mut log.entries[56..] {
        e.seq -= 1;
    }
    assert_eq!(log.verify().unwrap_err().seq, 57);
}

#[test]
fn truncated_tail_is_detected_by_checkpoint() {
    let mut log = log_of(99, 10);
    log.entries.truncate(93);
    let err = log.verify().unwrap_err();
    assert_eq!(err.seq, 94, "{err}");
    assert!(err.reason.contains("truncated"), "{err}");
}

#[test]
fn reordered_entries_are_named() {
    let mut log = log_of(99, 10);
    log.entries.swap(20, 21);
    let err = log.verify().unwrap_err();
    assert_eq!(err.seq, 21, "{err}");
    // Swapping contents but keeping the seq column in order is caught by the hash.
    let mut log = log_of(99, 10);
    let (a, b) = (log.entries[20].seq, log.entries[21].seq);
    log.entries.swap(20, 21);
    log.entries[20].seq = a;
    log.entries[21].seq = b;
    assert_eq!(log.verify().unwrap_err().seq, 21);
}

#[test]
fn forged_entry_signed_by_other_key_is_rejected() {
    let mut log = log_of(20, 10);
    let intruder = Identity::generate();
    let e = &log.entries[14];
    let draft = EntryDraft {
        timestamp: e.timestamp(),
        actor: e.actor.clone(),
        action: e.action.clone(),
        target: e.target.clone(),
        outcome: Outcome::Success,
        details: serde_json::json!({"n": 999}),
    };
    log.entries[14] = Entry::seal(draft, 15, e.prev_hash, &intruder);
    let err = log.verify().unwrap_err();
    assert_eq!(err.seq, 15);
    assert!(err.reason.contains("not an authorized identity"), "{err}");
}

#[test]
fn rotation_keeps_old_signatures_valid_and_retires_the_old_key() {
    let mut log = log_of(15, 10);
    let old = log.signer.clone();
    log.rotate();
    for i in 0..15 {
        log.op(100 + i);
    }
    let report = log.verify().unwrap();
    assert_eq!(report.signers.len(), 2);
    // The retired key may no longer sign.
    let n = log.entries.len() as u64;
    let prev = log.entries.last().unwrap().hash;
    let draft = EntryDraft {
        timestamp: Utc::now(),
        actor: "x".into(),
        action: "event.publish".into(),
        target: "t".into(),
        outcome: Outcome::Success,
        details: serde_json::Value::Null,
    };
    log.entries.push(Entry::seal(draft, n + 1, prev, &old));
    let err = log.verify().unwrap_err();
    assert_eq!(err.seq, n + 1);
    assert!(err.reason.contains("rotated out"), "{err}");
}

#[test]
fn rotation_without_proof_is_rejected() {
    let mut log = log_of(3, 10);
    let new = Identity::generate();
    log.append(ROTATE_ACTION, new.did().as_str(), serde_json::json!({}));
    assert_eq!(log.verify().unwrap_err().seq, 5);
}

#[test]
fn wrong_genesis_identity_is_rejected() {
    let log = log_of(3, 10);
    let err =
        verify_entries(&log.entries, &log.checkpoints, Some(Identity::generate().did().clone()))
            .unwrap_err();
    assert_eq!(err.seq, 1);
}

#[test]
fn forged_checkpoint_is_rejected() {
    let mut log = log_of(30, 10);
    log.checkpoints[1].root[0] ^= 1;
    assert_eq!(log.verify().unwrap_err().seq, 20);
}

#[derive(Debug, Clone)]
enum Op {
    Append,
    Rotate,
}

#[derive(Debug, Clone)]
enum Tamper {
    None,
    Byte(usize),
    Delete(usize),
    Swap(usize),
    Truncate(usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(prop_oneof![9 => Just(Op::Append), 1 => Just(Op::Rotate)], 1..60)
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::None),
        any::<usize>().prop_map(Tamper::Byte),
        any::<usize>().prop_map(Tamper::Delete),
        any::<usize>().prop_map(Tamper::Swap),
        any::<usize>().prop_map(Tamper::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of operations verifies; any single tampering is detected at the exact entry.
    #[test]
    fn random_logs_verify_and_tampering_is_located(ops in ops(), every in 1u64..8, t in tamper()) {
        let mut log = Log::new(every);
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Append => log.op(i as u64),
                Op::Rotate => log.rotate(),
            }
        }
        let n = log.entries.len();
        prop_assert!(log.verify().is_ok());
        let expected: Option<u64> = match t {
            Tamper::None => None,
            Tamper::Byte(i) => {
                let i = i % n;
                log.entries[i].details.push(' ');
                Some(i as u64 + 1)
            }
            Tamper::Delete(i) => {
                let i = i % n;
                log.entries.remove(i);
                // Deleting the last entry is only visible when a checkpoint covers it.
                if i + 1 == n && log.checkpoints.iter().all(|c| c.size < n as u64) { None } else { Some(i as u64 + 1) }
            }
            Tamper::Swap(i) if n >= 2 => {
                let i = i % (n - 1);
                log.entries.swap(i, i + 1);
                Some(i as u64 + 1)
            }
            Tamper::Swap(_) => None,
            Tamper::Truncate(k) => {
                let keep = k % n;
                log.entries.truncate(keep);
                let covered = log.checkpoints.iter().any(|c| c.size > keep as u64);
                if covered { Some(keep as u64 + 1) } else { None }
            }
        };
        let result = log.verify();
        match expected {
            None => prop_assert!(result.is_ok(), "{:?}", result),
            Some(seq) => prop_assert_eq!(result.unwrap_err().seq, seq),
        }
    }
}
