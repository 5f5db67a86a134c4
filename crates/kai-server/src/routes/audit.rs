//! `GET /audit/entries` pages through the signed log; `GET /audit/verify` checks all of it.

use axum::Json;
use axum::extract::{Query, State};

use crate::AppState;
use crate::api::{AuditEntry, AuditPage, AuditVerification, Paging};
use crate::error::{ApiResult, Problem};

/// Audit entries with `seq` greater than `after`.
#[utoipa::path(get, path = "/audit/entries", tag = "audit", security(("bearer" = [])), params(Paging), responses(
    (status = 200, body = AuditPage),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn entries(
    State(state): State<AppState>,
    Query(paging): Query<Paging>,
) -> ApiResult<Json<AuditPage>> {
    let (after, limit) = paging.get()?;
    let entries = state.node.store.audit_range(after + 1, limit).await?;
    let next_after = entries.last().map_or(after, |e| e.seq);
    Ok(Json(AuditPage { entries: entries.into_iter().map(AuditEntry::from).collect(), next_after }))
}

/// Verifies every entry, link, signature and checkpoint, and names the first bad entry.
#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("bearer" = [])), responses(
    (status = 200, body = AuditVerification),
    (status = 401, body = Problem, content_type = "application/problem+json"),
    (status = 403, body = Problem, content_type = "application/problem+json"),
))]
pub async fn verify(State(state): State<AppState>) -> ApiResult<Json<AuditVerification>> {
    let result = kai_runtime::audit::verify_store(state.node.store.as_ref(), None, None).await?;
    Ok(Json(match result {
        Ok(r) => AuditVerification {
            ok: true,
            entries: r.entries,
            checkpoints: r.checkpoints,
            root: Some(r.root),
            signers: r.signers,
            first_bad_entry: None,
            reason: None,
        },
        Err(e) => AuditVerification {
            ok: false,
            entries: state.node.unsealed().map(|u| u.audit.len()).unwrap_or(0),
            checkpoints: 0,
            root: None,
            signers: vec![],
            first_bad_entry: Some(e.seq),
            reason: Some(e.reason),
        },
    }))
}
