//! Audit entries and checkpoints: their canonical bytes, hashes and signatures.

use chrono::{DateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Hash;
use crate::identity::{Did, Identity};

/// The first entry of every log: the node's identity introduces itself.
pub const GENESIS_ACTION: &str = "identity.genesis";
/// The signer hands over to the key named in `target` (the old key is retired).
pub const ROTATE_ACTION: &str = "identity.rotate";
/// The signer authorizes an additional identity (an agent) named in `target`.
pub const REGISTER_ACTION: &str = "identity.register";

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    /// The outcome as stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    /// Parses stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// What a caller wants recorded: who did what to which target, when, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryDraft {
    pub timestamp: DateTime<Utc>,
    /// The principal that asked for the operation (a DID, `user:NAME`, `token:ID`, …).
    pub actor: String,
    /// Dotted operation name, e.g. `event.publish`.
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    /// Extra facts. Values under keys that look secret are replaced by `[redacted]`.
    pub details: serde_json::Value,
}

/// One sealed entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// JSON text, hashed exactly as stored.
    pub details: String,
    #[serde(with = "hex_array")]
    pub prev_hash: Hash,
    pub signer: String,
    #[serde(with = "hex_array")]
    pub hash: Hash,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

/// A signed statement that the log held `size` entries with Merkle root `root`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub size: u64,
    #[serde(with = "hex_array")]
    pub root: Hash,
    pub timestamp_us: i64,
    pub signer: String,
    #[serde(with = "hex_array")]
    pub signature: [u8; 64],
}

const SENSITIVE: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
];

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SENSITIVE.iter().any(|s| lower.contains(s))
                    && !lower.ends_with("_hmac")
                    && !lower.ends_with("_id")
                {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

impl Entry {
    /// Seals a draft as entry `seq`, linked to `prev_hash` and signed by `signer`.
    pub fn seal(draft: EntryDraft, seq: u64, prev_hash: Hash, signer: &Identity) -> Self {
        let mut details = draft.details;
        redact(&mut details);
        let mut entry = Self {
            seq,
            timestamp_us: draft.timestamp.timestamp_micros(),
            actor: draft.actor,
            action: draft.action,
            target: draft.target,
            outcome: draft.outcome.as_str().to_owned(),
            details: details.to_string(),
            prev_hash,
            signer: signer.did().as_str().to_owned(),
            hash: [0; 32],
            signature: [0; 64],
        };
        entry.hash = entry.compute_hash();
        entry.signature = signer.sign(&entry.hash);
        entry
    }

    /// The hash of every field but `hash` and `signature`, with lengths prefixed so no two
    /// different entries share canonical bytes.
    pub fn compute_hash(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(b"kai-audit-entry-v1");
        h.update(self.seq.to_be_bytes());
        h.update(self.timestamp_us.to_be_bytes());
        for field in [&self.actor, &self.action, &self.target, &self.outcome, &self.details] {
            put(&mut h, field.as_bytes());
        }
        h.update(self.prev_hash);
        put(&mut h, self.signer.as_bytes());
        h.finalize().into()
    }

    /// When the entry was written.
    pub fn timestamp(&self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.timestamp_us).single().unwrap_or_default()
    }
}

impl Checkpoint {
    /// Signs a tree head.
    pub fn sign(size: u64, root: Hash, timestamp: DateTime<Utc>, signer: &Identity) -> Self {
        let mut cp = Self {
            size,
            root,
            timestamp_us: timestamp.timestamp_micros(),
            signer: signer.did().as_str().to_owned(),
            signature: [0; 64],
        };
        cp.signature = signer.sign(&cp.signed_bytes());
        cp
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"kai-audit-checkpoint-v1");
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.root);
        out.extend_from_slice(&self.timestamp_us.to_be_bytes());
        out.extend_from_slice(self.signer.as_bytes());
        out
    }

    /// True when the signature is valid for the named signer.
    pub fn signature_valid(&self) -> bool {
        self.signer.parse::<Did>().is_ok_and(|d| d.verify(&self.signed_bytes(), &self.signature))
    }
}

mod hex_array {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(&s).map_err(serde::de::Error::custom)?;
        bytes.try_into().map_err(|_| serde::de::Error::custom(format!("expected {N} bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(details: serde_json::Value) -> EntryDraft {
        EntryDraft {
            timestamp: Utc::now(),
            actor: "user:owner".into(),
            action: "vault.set".into(),
            target: "secret:x".into(),
            outcome: Outcome::Success,
            details,
        }
    }

    #[test]
    fn secrets_in_details_are_redacted() {
        let id = Identity::generate();
        let e = Entry::seal(
            draft(
                serde_json::json!({"name_hmac": "ab", "password": "hunter2", "nested": {"api_key": "sk-123"}, "token_id": "t1"}),
            ),
            1,
            [0; 32],
            &id,
        );
        assert!(!e.details.contains("hunter2"));
        assert!(!e.details.contains("sk-123"));
        assert!(e.details.contains("name_hmac") && e.details.contains("t1"));
    }

    #[test]
    fn hash_covers_every_field_and_signature_verifies() {
        let id = Identity::generate();
        let e = Entry::seal(draft(serde_json::json!({"n": 1})), 7, [9; 32], &id);
        assert_eq!(e.compute_hash(), e.hash);
        assert!(id.did().verify(&e.hash, &e.signature));
        type Mutation = Box<dyn Fn(&mut Entry)>;
        let mutations: Vec<Mutation> = vec![
            Box::new(|e| e.seq += 1),
            Box::new(|e| e.timestamp_us += 1),
            Box::new(|e| e.actor.push('x')),
            Box::new(|e| e.action.push('x')),
            Box::new(|e| e.target.push('x')),
            Box::new(|e| e.outcome = "failure".into()),
            Box::new(|e| e.details.push(' ')),
            Box::new(|e| e.prev_hash[0] ^= 1),
            Box::new(|e| e.signer.push('x')),
        ];
        for m in mutations {
            let mut c = e.clone();
            m(&mut c);
            assert_ne!(c.compute_hash(), e.hash);
        }
    }

    #[test]
    fn length_prefix_prevents_field_boundary_shifts() {
        let id = Identity::generate();
        let mut a = draft(serde_json::Value::Null);
        a.actor = "ab".into();
        a.action = "c".into();
        let mut b = a.clone();
        b.actor = "a".into();
        b.action = "bc".into();
        let ts = a.timestamp;
        b.timestamp = ts;
        assert_ne!(Entry::seal(a, 1, [0; 32], &id).hash, Entry::seal(b, 1, [0; 32], &id).hash);
    }

    #[test]
    fn checkpoint_signature() {
        let id = Identity::generate();
        let cp = Checkpoint::sign(10, [3; 32], Utc::now(), &id);
        assert!(cp.signature_valid());
        let mut bad = cp.clone();
        bad.size = 9;
        assert!(!bad.signature_valid());
    }
}
