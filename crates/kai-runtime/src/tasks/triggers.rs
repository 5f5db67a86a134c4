//! Triggers: what starts tasks without a person asking. Cron schedules (agents' `schedule`
//! triggers and workflows with a `schedule`, evaluated with `croner`), event triggers (an
//! agent's `event` trigger matching an event type on the bus, `*` suffix allowed), and signed
//! webhooks (`POST /webhooks/{name}`, HMAC-SHA256 over `timestamp.body` with a per-webhook
//! secret kept in the vault, a ±5 minute window and replay refusal).
//!
//! Firing is compare-and-set in the store (`mark_trigger_fired`), so two processes or a
//! restart never fire one occurrence twice; occurrences missed while the node was down fire
//! once, not once each. Tasks started by a trigger never fire event triggers themselves (no
//! cascades).

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use kai_core::AgentId;
use kai_core::agent::TriggerKind;
use kai_core::event::EventFilter;
use kai_core::plan::{PlanStep, TaskGraph};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Result, Submit, TaskError, Tasks, now_us};
use crate::bus::DeliveryPolicy;

/// Webhook deliveries older or newer than this are refused.
pub const WEBHOOK_WINDOW_SECS: i64 = 300;
/// Largest webhook body, in bytes.
pub const MAX_WEBHOOK_BYTES: usize = 256 * 1024;

pub fn parse_cron(pattern: &str) -> std::result::Result<croner::Cron, String> {
    croner::Cron::from_str(pattern)
        .map_err(|e| format!("{pattern:?} is not a cron expression: {e}"))
}

/// The next occurrence of `cron` after `after`.
pub fn next_after(cron: &croner::Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

fn single_step(agent: &AgentId, instruction: String) -> TaskGraph {
    TaskGraph {
        steps: vec![PlanStep {
            id: "run".into(),
            title: String::new(),
            agent: Some(agent.clone()),
            tool: None,
            instruction,
            inputs: BTreeMap::new(),
            depends_on: Vec::new(),
        }],
    }
}

/// `pattern` matches event type `kind` exactly, or by prefix with a trailing `*`.
pub fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

/// A schedule the node keeps.
struct Schedule {
    id: String,
    cron: croner::Cron,
    start: Start,
}

enum Start {
    Agent { agent: AgentId, goal: String },
    Workflow { name: String, owner: String },
}

impl Tasks {
    /// Starts the schedule clock and the event-trigger listener.
    pub fn start_triggers(self: &Arc<Self>, tracker: &TaskTracker, stop: CancellationToken) {
        let me = self.clone();
        let s = stop.clone();
        tracker.spawn(async move {
            loop {
                if let Err(e) = me.fire_schedules(Utc::now()).await {
                    tracing::warn!(error = %e, "schedules not evaluated");
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = s.cancelled() => return,
                }
            }
        });
        let me = self.clone();
        tracker.spawn(async move { me.listen_for_events(stop).await });
    }

    async fn schedules(&self) -> Result<Vec<Schedule>> {
        let mut out = Vec::new();
        for agent in self.agents.list().await? {
            if !agent.state.is_runnable() {
                continue;
            }
            for (i, t) in agent.definition.triggers.iter().enumerate() {
                if t.kind != TriggerKind::Schedule {
                    continue;
                }
                match parse_cron(&t.pattern) {
                    Ok(cron) => out.push(Schedule {
                        id: format!("schedule:{}:{i}", agent.id()),
                        cron,
                        start: Start::Agent { agent: agent.id().clone(), goal: t.goal.clone() },
                    }),
                    Err(e) => {
                        tracing::warn!(agent = %agent.id(), error = %e, "schedule trigger ignored")
                    }
                }
            }
        }
        for row in self.store.workflows().await? {
            let Ok(wf) = super::workflows::Workflow::parse(&row.definition) else { continue };
            if let Some(cron) = wf.schedule.as_deref().and_then(|s| parse_cron(s).ok()) {
                out.push(Schedule {
                    id: format!("workflow:{}", wf.name),
                    cron,
                    start: Start::Workflow { name: wf.name, owner: row.author },
                });
            }
        }
        Ok(out)
    }

    /// Fires every schedule whose next occurrence after its last firing is due; returns how
    /// many fired. A schedule seen for the first time starts counting from `now`.
    pub async fn fire_schedules(&self, now: DateTime<Utc>) -> Result<usize> {
        if self.audit().is_err() {
            return Ok(0);
        }
        let mut fired = 0;
        for s in self.schedules().await? {
            let last = self.store.trigger_last_fired(&s.id).await?;
            let Some(last_us) = last else {
                self.store.mark_trigger_fired(&s.id, None, now.timestamp_micros()).await?;
                continue;
            };
            let last_at = DateTime::from_timestamp_micros(last_us).unwrap_or(now);
            let Some(next) = next_after(&s.cron, last_at) else { continue };
            if next > now {
                continue;
            }
            if !self.store.mark_trigger_fired(&s.id, Some(last_us), now.timestamp_micros()).await? {
                continue;
            }
            fired += 1;
            let key = Some(format!("{}@{}", s.id, next.timestamp()));
            let started = match &s.start {
                Start::Agent { agent, goal } => {
                    let goal = if goal.is_empty() {
                        format!("scheduled work of {agent}")
                    } else {
                        goal.clone()
                    };
                    self.submit(Submit {
                        graph: Some(single_step(agent, goal.clone())),
                        goal,
                        owner: format!("agent:{agent}"),
                        source: "trigger".into(),
                        skip_review: true,
                        idempotency_key: key,
                        ..Submit::default()
                    })
                    .await
                }
                Start::Workflow { name, owner } => {
                    self.run_workflow(name, &serde_json::Map::new(), owner, "trigger", key).await
                }
            };
            match started {
                Ok(t) => tracing::info!(trigger = %s.id, task = %t.id, "schedule fired"),
                Err(e) => {
                    tracing::warn!(trigger = %s.id, error = %e, "schedule fired but the task was refused")
                }
            }
        }
        Ok(fired)
    }

    /// Follows the bus (resuming from the last offset after a drop) and fires event triggers.
    async fn listen_for_events(&self, stop: CancellationToken) {
        let mut after: Option<u64> = None;
        let mut triggers: Vec<(AgentId, usize, String, String)> = Vec::new();
        let mut loaded_at = std::time::Instant::now() - Duration::from_secs(60);
        loop {
            let sub =
                self.bus.subscribe(EventFilter::default(), after, DeliveryPolicy::DropSlow).await;
            let mut sub = match sub {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "event triggers cannot subscribe; retrying");
                    tokio::select! { () = tokio::time::sleep(Duration::from_secs(2)) => continue, () = stop.cancelled() => return }
                }
            };
            loop {
                let event = tokio::select! { e = sub.recv() => e, () = stop.cancelled() => return };
                let Some(event) = event else { break };
                after = event.offset.or(after);
                if loaded_at.elapsed() > Duration::from_secs(2)
                    || event.kind.as_str().starts_with("AGENT_STATE")
                {
                    triggers = self.event_triggers().await.unwrap_or_default();
                    loaded_at = std::time::Instant::now();
                }
                if triggers.is_empty() {
                    continue;
                }
                if let Err(e) = self.fire_events(&triggers, &event).await {
                    tracing::warn!(error = %e, "event trigger failed");
                }
            }
        }
    }

    async fn event_triggers(&self) -> Result<Vec<(AgentId, usize, String, String)>> {
        let mut out = Vec::new();
        for a in self.agents.list().await? {
            if !a.state.is_runnable() {
                continue;
            }
            for (i, t) in a.definition.triggers.iter().enumerate() {
                if t.kind == TriggerKind::Event {
                    out.push((a.id().clone(), i, t.pattern.clone(), t.goal.clone()));
                }
            }
        }
        Ok(out)
    }

    /// Fires the triggers matching `event` (once per trigger and event, across restarts).
    pub async fn fire_events(
        &self,
        triggers: &[(AgentId, usize, String, String)],
        event: &kai_core::Envelope,
    ) -> Result<usize> {
        let kind = event.kind.as_str();
        let hits: Vec<_> = triggers.iter().filter(|(_, _, p, _)| matches(p, kind)).collect();
        if hits.is_empty() {
            return Ok(0);
        }
        if let Some(task) = &event.task_id
            && self.store.task(task).await?.is_some_and(|t| t.source == "trigger")
        {
            return Ok(0);
        }
        let mut payload = event.payload.to_string();
        if payload.len() > 4096 {
            let cut = (0..=4096).rev().find(|&i| payload.is_char_boundary(i)).unwrap_or(0);
            payload.truncate(cut);
        }
        let mut fired = 0;
        for (agent, i, _, goal) in hits {
            let id = format!("event:{agent}:{i}:{}", event.id);
            if !self.store.mark_trigger_fired(&id, None, now_us()).await? {
                continue;
            }
            let goal = if goal.is_empty() {
                format!("react to {kind}: {{{{event}}}}")
            } else {
                goal.clone()
            };
            let goal = goal.replace("{{event}}", &payload);
            self.submit(Submit {
                graph: Some(single_step(agent, goal.clone())),
                goal,
                owner: format!("agent:{agent}"),
                source: "trigger".into(),
                skip_review: true,
                idempotency_key: Some(id),
                ..Submit::default()
            })
            .await?;
            fired += 1;
        }
        Ok(fired)
    }

    /// Creates (or re-keys) a webhook; returns the signing secret, shown once. `target` is
    /// `{"workflow": NAME}` or `{"agent": ID, "goal": TEXT}` (`{{body}}` in the goal is the
    /// delivered body).
    pub async fn create_webhook(
        &self,
        name: &str,
        target: &Value,
        actor: &str,
    ) -> Result<(kai_store::WebhookRow, String)> {
        if !super::valid_name(name) {
            return Err(TaskError::BadRequest(format!(
                "webhook name {name:?}: 1 to 64 of a-z, 0-9, - and _"
            )));
        }
        match (target["workflow"].as_str(), target["agent"].as_str()) {
            (Some(w), None) => {
                self.workflow(w).await?;
            }
            (None, Some(a)) => {
                self.agents.get(a).await?;
                if target["goal"].as_str().is_none_or(str::is_empty) {
                    return Err(TaskError::BadRequest("an agent webhook needs a goal".into()));
                }
            }
            _ => {
                return Err(TaskError::BadRequest(
                    "target is {\"workflow\": NAME} or {\"agent\": ID, \"goal\": TEXT}".into(),
                ));
            }
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let secret_name = format!("webhook-{name}");
        self.audit()?
            .record(
                actor,
                "webhook.create",
                &format!("webhook:{name}"),
                kai_crypto::audit::Outcome::Success,
                json!({"target": target}),
            )
            .await?;
        self.tools
            .vault
            .put(crate::vault::SECRET, &secret_name, secret.as_bytes(), None, None, actor)
            .await
            .map_err(|e| TaskError::BadRequest(format!("cannot keep the webhook secret: {e}")))?;
        let row = kai_store::WebhookRow {
            name: name.to_owned(),
            secret_name,
            target: target.to_string(),
            created_at_us: now_us(),
        };
        self.store.upsert_webhook(&row).await?;
        Ok((row, secret))
    }

    /// Verifies and runs a delivery. `signature` is `sha256=HEX` of HMAC-SHA256(secret,
    /// `timestamp.body`); `timestamp` is Unix seconds.
    pub async fn deliver_webhook(
        &self,
        name: &str,
        timestamp: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<kai_store::TaskRow> {
        let unauthorized =
            || TaskError::NotFound("no such webhook, or the signature does not match".into());
        if body.len() > MAX_WEBHOOK_BYTES {
            return Err(TaskError::BadRequest(format!(
                "a delivery is at most {MAX_WEBHOOK_BYTES} bytes"
            )));
        }
        let hook = self.store.webhook(name).await?.ok_or_else(unauthorized)?;
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| TaskError::BadRequest("X-Kai-Timestamp must be Unix seconds".into()))?;
        if (Utc::now().timestamp() - ts).abs() > WEBHOOK_WINDOW_SECS {
            return Err(TaskError::BadRequest(format!(
                "the delivery's timestamp is more than {WEBHOOK_WINDOW_SECS} s from the node's clock"
            )));
        }
        let given = signature
            .trim()
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(unauthorized)?;
        let secret = self
            .tools
            .vault
            .read_internal(crate::vault::SECRET, &hook.secret_name)
            .await
            .map_err(|_| unauthorized())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).map_err(|_| unauthorized())?;
        mac.update(timestamp.trim().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&given).map_err(|_| unauthorized())?;
        let delivery = format!("webhook:{name}:{}", hex::encode(&given[..16.min(given.len())]));
        if !self.store.mark_trigger_fired(&delivery, None, now_us()).await? {
            return Err(TaskError::Conflict("this delivery was already received (replay)".into()));
        }
        let target: Value = serde_json::from_str(&hook.target).unwrap_or(Value::Null);
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        if let Some(w) = target["workflow"].as_str() {
            let params = parsed["params"].as_object().cloned().unwrap_or_default();
            return self
                .run_workflow(w, &params, &format!("webhook:{name}"), "webhook", Some(delivery))
                .await;
        }
        let agent: AgentId = target["agent"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|_| TaskError::BadRequest("the webhook's agent is invalid".into()))?;
        let text = String::from_utf8_lossy(body);
        let goal = target["goal"].as_str().unwrap_or_default().replace("{{body}}", &text);
        self.submit(Submit {
            graph: Some(single_step(&agent, goal.clone())),
            goal,
            owner: format!("webhook:{name}"),
            source: "webhook".into(),
            idempotency_key: Some(delivery),
            ..Submit::default()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_cron() {
        assert!(
            matches("TASK_*", "TASK_COMPLETED")
                && matches("X", "X")
                && !matches("TASK_", "TASK_COMPLETED")
        );
        let cron = parse_cron("*/5 * * * *").unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T10:02:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(next_after(&cron, t).unwrap().to_rfc3339(), "2026-12-01T10:05:00+00:00");
        assert!(parse_cron("every day").is_err());
    }
}
