//! kSentinel: watches runs for trouble — a model calling the same tool with the same
//! arguments over and over (a loop), tool calls the policy refuses (an agent being steered
//! somewhere it may not go), budgets running out. Each is an incident: audited as the
//! sentinel, published as `SENTINEL_ALERT`; an agent with [`SUSPEND_AFTER`] incidents within
//! [`WINDOW`] is suspended (its queued steps wait until the owner resumes it).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kai_core::AgentId;
use kai_core::lifecycle::LifecycleAction;
use serde_json::json;

use super::Tasks;
use crate::agents::SENTINEL;

/// The same tool call (name and arguments) this many times in one step is a loop.
pub const LOOP_REPEATS: usize = 3;
/// Incidents within [`WINDOW`] that suspend an agent.
pub const SUSPEND_AFTER: usize = 3;
pub const WINDOW: Duration = Duration::from_secs(600);

/// Recent incidents per agent (in memory: a restart forgives).
#[derive(Default)]
pub struct Sentinel {
    recent: Mutex<BTreeMap<AgentId, VecDeque<Instant>>>,
}

impl Sentinel {
    /// Records one; true when the agent has now reached [`SUSPEND_AFTER`] within [`WINDOW`].
    fn count(&self, agent: &AgentId) -> bool {
        let mut map = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let q = map.entry(agent.clone()).or_default();
        let now = Instant::now();
        q.push_back(now);
        while q.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            q.pop_front();
        }
        if q.len() >= SUSPEND_AFTER {
            q.clear();
            return true;
        }
        false
    }
}

impl Tasks {
    /// Reports an incident of `agent` in `task`; may suspend the agent.
    pub(crate) async fn incident(&self, agent: &AgentId, task: &str, kind: &str, detail: &str) {
        let actor = format!("agent:{SENTINEL}");
        if let Ok(audit) = self.audit() {
            let details = json!({"agent": agent, "kind": kind, "detail": detail});
            if let Err(e) = audit
                .record(
                    &actor,
                    "sentinel.incident",
                    task,
                    kai_crypto::audit::Outcome::Denied,
                    details,
                )
                .await
            {
                tracing::warn!(error = %e, "sentinel incident not audited");
            }
            let sentinel: AgentId = SENTINEL.parse().unwrap_or_else(|e| unreachable!("{e}"));
            self.publish(
                task,
                Some(&sentinel),
                "SENTINEL_ALERT",
                json!({"agent": agent, "kind": kind, "detail": detail}),
            )
            .await;
            if self.sentinel.count(agent) {
                let reason = format!(
                    "kSentinel: {SUSPEND_AFTER} incidents within {} min (last: {kind}: {detail})",
                    WINDOW.as_secs() / 60
                );
                match self
                    .agents
                    .transition(
                        agent.as_str(),
                        LifecycleAction::Suspend,
                        None,
                        &actor,
                        &reason,
                        &audit,
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::warn!(agent = %agent, reason = %reason, "agent suspended by the sentinel")
                    }
                    Err(e) => {
                        tracing::info!(agent = %agent, error = %e, "sentinel could not suspend the agent")
                    }
                }
            }
        }
    }
}
