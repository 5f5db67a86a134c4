//! The JSON shapes of the API. Domain types never go on the wire directly: each has a
//! counterpart here and an explicit conversion, so the API changes only on purpose.

use chrono::{DateTime, TimeZone as _, Utc};
use kai_core::Envelope;
use kai_crypto::audit::Entry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Ready {
    pub status: String,
    pub storage: String,
    pub schema_version: i64,
    pub audit_entries: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    pub name: String,
    pub version: String,
    /// The node's current signing identity.
    pub did: String,
    pub started_at: DateTime<Utc>,
    pub uptime_secs: u64,
    pub storage_backend: String,
    pub schema_version: i64,
    pub bus_backend: String,
    pub audit_entries: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemConfig {
    /// The effective configuration, secrets redacted.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Dotted key → the layer that set it.
    pub sources: std::collections::BTreeMap<String, String>,
    /// What was wrong with the last configuration edit the node rejected (it kept running on
    /// the configuration above); empty once a valid edit is applied.
    pub problems: Vec<ConfigProblem>,
    pub rejected_at: Option<DateTime<Utc>>,
    /// Changed keys that take effect after a restart.
    pub pending_restart: Vec<String>,
}

/// One validation problem: where (file, variable or flag), which key, what is allowed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfigProblem {
    pub source: String,
    /// Dotted key; empty for a whole-file problem such as a syntax error.
    pub key: String,
    pub message: String,
}

impl From<&kai_core::config::Problem> for ConfigProblem {
    fn from(p: &kai_core::config::Problem) -> Self {
        Self { source: p.source.to_string(), key: p.key.clone(), message: p.message.clone() }
    }
}

/// A new event to publish.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// `A-Z`, `0-9` and `_`, e.g. `TASK_CREATED`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `kClass:name`.
    pub agent: Option<String>,
    pub task_id: Option<String>,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub payload: serde_json::Value,
}

/// An event as seed 001 shapes it, with its log offset.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub agent: Option<String>,
    pub task_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub timestamp: DateTime<Utc>,
    pub offset: Option<u64>,
}

impl From<Envelope> for Event {
    fn from(e: Envelope) -> Self {
        Self {
            id: e.id.to_string(),
            kind: e.kind.to_string(),
            agent: e.agent.map(|a| a.to_string()),
            task_id: e.task_id,
            payload: e.payload,
            timestamp: e.timestamp,
            offset: e.offset,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass as `after` to get the next page.
    pub next_after: u64,
}

/// `?after=&limit=` paging.
#[derive(Debug, Deserialize, IntoParams)]
pub struct Paging {
    /// Return items after this offset / sequence number (default 0).
    pub after: Option<u64>,
    /// At most this many items (1–1000, default 100).
    pub limit: Option<u32>,
}

impl Paging {
    /// The validated `(after, limit)`.
    pub fn get(&self) -> Result<(u64, u32), crate::error::ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(crate::error::ApiError::BadRequest(format!(
                "limit {limit} is out of range; allowed: 1 to 1000"
            )));
        }
        Ok((self.after.unwrap_or(0), limit))
    }
}

/// `GET /events`: a page after an offset, or the newest events.
#[derive(Debug, Deserialize, IntoParams)]
pub struct EventQuery {
    /// Return events after this offset (default 0).
    pub after: Option<u64>,
    /// At most this many events (1–1000, default 100).
    pub limit: Option<u32>,
    /// Instead: the newest `tail` events (1–1000), oldest first; `next_after` is then where a
    /// live subscription continues. Not with `after` or `limit`.
    pub tail: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub seq: u64,
    pub timestamp: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub signer: String,
    pub prev_hash: String,
    pub hash: String,
    pub signature: String,
}

impl From<Entry> for AuditEntry {
    fn from(e: Entry) -> Self {
        Self {
            seq: e.seq,
            timestamp: Utc.timestamp_micros(e.timestamp_us).single().unwrap_or_default(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            details: serde_json::from_str(&e.details)
                .unwrap_or(serde_json::Value::String(e.details)),
            signer: e.signer,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
            signature: hex::encode(e.signature),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_after: u64,
}

/// The result of checking the whole audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries: u64,
    pub checkpoints: u64,
    /// Merkle root over all entries (hex), when the log verified.
    pub root: Option<String>,
    pub signers: Vec<String>,
    /// The first entry that fails, when one does.
    pub first_bad_entry: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Rotated {
    pub previous: String,
    pub did: String,
}

mod security;
pub use security::*;
pub mod library;
pub mod tasks;
