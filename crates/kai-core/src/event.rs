//! The one event envelope of seed 001, used on the bus, in the event log and on the WebSocket:
//! `{type, agent, task_id, payload, timestamp}` plus an `id` and, once persisted, an `offset`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agent_id::AgentId;
use crate::ids::EventId;

/// Largest payload accepted on the bus, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// An event type such as `AGENT_RESULT`: 1–64 characters of `A-Z`, `0-9` and `_`, starting
/// with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

/// Why a string is not an event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid event type {0:?}: use 1 to 64 characters of A-Z, 0-9 and _, starting with a letter (e.g. TASK_CREATED)"
)]
pub struct EventTypeError(String);

impl EventType {
    /// The type as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventType {
    type Error = EventTypeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if ok { Ok(Self(s)) } else { Err(EventTypeError(s)) }
    }
}

impl std::str::FromStr for EventType {
    type Err = EventTypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::try_from(s.to_owned())
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> Self {
        t.0
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One event. `offset` is assigned by the event log when the event is persisted; it is the
/// position a subscriber resumes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub agent: Option<AgentId>,
    pub task_id: Option<String>,
    pub payload: serde_json::Value,
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

impl Envelope {
    /// A new, not yet persisted event.
    pub fn new(kind: EventType, payload: serde_json::Value, timestamp: DateTime<Utc>) -> Self {
        Self {
            id: EventId::new(),
            kind,
            agent: None,
            task_id: None,
            payload,
            timestamp,
            offset: None,
        }
    }

    /// Sets the agent the event is about.
    pub fn with_agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Sets the task the event belongs to.
    pub fn with_task(mut self, task_id: impl Into<String>) -> Self {
        self.task_id = Some(task_id.into());
        self
    }
}

/// Which events a subscriber wants. Empty lists match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    #[serde(default)]
    pub types: Vec<EventType>,
    #[serde(default)]
    pub agents: Vec<AgentId>,
    #[serde(default)]
    pub task_ids: Vec<String>,
    /// Chat threads, matched against the payload's `thread_id`.
    #[serde(default)]
    pub threads: Vec<String>,
}

impl EventFilter {
    /// True when the envelope passes every non-empty criterion.
    pub fn matches(&self, e: &Envelope) -> bool {
        (self.types.is_empty() || self.types.contains(&e.kind))
            && (self.agents.is_empty() || e.agent.as_ref().is_some_and(|a| self.agents.contains(a)))
            && (self.task_ids.is_empty()
                || e.task_id.as_ref().is_some_and(|t| self.task_ids.contains(t)))
            && (self.threads.is_empty()
                || e.payload
                    .get("thread_id")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|t| self.threads.iter().any(|x| x == t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_wire_shape_matches_seed() {
        let e = Envelope::new(
            "AGENT_RESULT".parse().unwrap(),
            serde_json::json!({"status": "success"}),
            Utc::now(),
        )
        .with_agent("kExecutor:webscraper".parse().unwrap())
        .with_task("xyz123");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "AGENT_RESULT");
        assert_eq!(v["agent"], "kExecutor:webscraper");
        assert_eq!(v["task_id"], "xyz123");
        assert_eq!(v["payload"]["status"], "success");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        let back: Envelope = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn event_type_validation() {
        assert!("TASK_CREATED".parse::<EventType>().is_ok());
        for bad in ["", "task_created", "1ABC", "A-B", &"A".repeat(65)] {
            assert!(bad.parse::<EventType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn filter_matches() {
        let e = Envelope::new("STEP_STARTED".parse().unwrap(), serde_json::Value::Null, Utc::now())
            .with_task("t1");
        assert!(EventFilter::default().matches(&e));
        let f = EventFilter { task_ids: vec!["t1".into()], ..Default::default() };
        assert!(f.matches(&e));
        let f = EventFilter { types: vec!["TASK_CREATED".parse().unwrap()], ..Default::default() };
        assert!(!f.matches(&e));
        let f = EventFilter { agents: vec!["kCore:main".parse().unwrap()], ..Default::default() };
        let chat = Envelope::new(
            "CHAT_MESSAGE".parse().unwrap(),
            serde_json::json!({"thread_id": "thr_1"}),
            Utc::now(),
        );
        let by_thread = EventFilter { threads: vec!["thr_1".into()], ..Default::default() };
        assert!(by_thread.matches(&chat));
        assert!(
            !EventFilter { threads: vec!["thr_2".into()], ..Default::default() }.matches(&chat)
        );
        assert!(!f.matches(&e));
    }
}
