//! `POST /events` publishes an event (audited, durable before the reply); `GET /events` pages
//! through the event log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use kai_core::Envelope;
use kai_crypto::audit::Outcome;

use crate::AppState;
use crate::api::{Event, EventPage, EventQuery, Paging, PublishEvent};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

/// Publishes an event on the bus. The reply comes after the event is persisted and audited.
#[utoipa::path(post, path = "/events", tag = "events", security(("bearer" = [])), request_body = PublishEvent, responses(
    (status = 201, body = Event),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
    (status = 503, body = Problem, content_type = "application/problem+json"),
))]
pub async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<PublishEvent>,
) -> ApiResult<(StatusCode, Json<Event>)> {
    let kind = req
        .kind
        .parse()
        .map_err(|e: kai_core::event::EventTypeError| ApiError::BadRequest(e.to_string()))?;
    let mut event = Envelope::new(kind, req.payload, chrono::Utc::now());
    if let Some(agent) = req.agent {
        event.agent =
            Some(agent.parse().map_err(|e: kai_core::agent_id::AgentIdError| {
                ApiError::BadRequest(e.to_string())
            })?);
    }
    if let Some(task) = req.task_id {
        if task.is_empty() || task.len() > 128 {
            return Err(ApiError::BadRequest("task_id must be 1 to 128 characters".into()));
        }
        event.task_id = Some(task);
    }
    let actor = principal.actor();
    let target = format!("event:{}", event.id);
    let details = serde_json::json!({"type": event.kind.as_str()});
    let audit = state.node.unsealed()?.audit;
    // Audit first (fail closed: no audit, no event); a failed publish is recorded as such.
    audit.record(&actor, "event.publish", &target, Outcome::Success, details).await?;
    match state.node.bus.publish(event).await {
        Ok(published) => Ok((StatusCode::CREATED, Json(published.into()))),
        Err(e) => {
            let _ = audit
                .record(
                    &actor,
                    "event.publish",
                    &target,
                    Outcome::Failure,
                    serde_json::json!({"error": e.code()}),
                )
                .await;
            Err(e.into())
        }
    }
}

/// Events after an offset, oldest first; or (`tail`) the newest ones.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])), params(EventQuery), responses(
    (status = 200, body = EventPage),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 401, body = Problem, content_type = "application/problem+json"),
))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let (after, limit, end) = match q.tail {
        None => {
            let (after, limit) = Paging { after: q.after, limit: q.limit }.get()?;
            (after, limit, None)
        }
        Some(_) if q.after.is_some() || q.limit.is_some() => {
            return Err(ApiError::BadRequest("give either tail, or after and limit".into()));
        }
        Some(tail) if !(1..=1000).contains(&tail) => {
            return Err(ApiError::BadRequest(format!(
                "tail {tail} is out of range; allowed: 1 to 1000"
            )));
        }
        Some(tail) => {
            let last = state.node.bus.last_offset().await?;
            (last.saturating_sub(u64::from(tail)), tail, Some(last))
        }
    };
    let events = state.node.bus.read(after, limit).await?;
    let next_after = events.last().and_then(|e| e.offset).or(end).unwrap_or(after);
    let actor = principal.actor();
    Ok(Json(EventPage {
        events: events.into_iter().filter(|e| visible_to(&actor, e)).map(Event::from).collect(),
        next_after,
    }))
}

/// Whether `actor` may see an event: events about something one principal owns (a chat
/// thread's) carry `owner` in the payload and reach that owner only.
pub(crate) fn visible_to(actor: &str, e: &kai_core::Envelope) -> bool {
    e.payload.get("owner").and_then(serde_json::Value::as_str).is_none_or(|o| o == actor)
}
