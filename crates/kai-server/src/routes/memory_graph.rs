//! `/memory/graph`, `/memory/entities`, `/memory/relations`: the memory graph — entities
//! (deduplicated by normalized name and kind, mergeable), typed relations, links from memories,
//! and traversal to depth N by relation type. Owner-scoped like memories; writes are audited.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kai_runtime::memory::{EndRef, Entity, EntityInput, Graph, Relation, RelationInput};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::audit;
use super::memory::caller;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, Problem};

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default()
}

fn entity_json(e: &Entity) -> Value {
    json!({
        "id": e.id, "name": e.name, "kind": e.kind, "properties": e.properties,
        "created_at": rfc3339(e.created_at_us), "updated_at": rfc3339(e.updated_at_us),
    })
}

fn relation_json(r: &Relation) -> Value {
    json!({
        "id": r.id, "source": r.source_id, "target": r.target_id, "type": r.rel_type,
        "memory_id": r.memory_id, "properties": r.properties, "created_at": rfc3339(r.created_at_us),
    })
}

fn graph_json(g: &Graph) -> Value {
    json!({
        "entities": g.entities.iter().map(entity_json).collect::<Vec<_>>(),
        "relations": g.relations.iter().map(relation_json).collect::<Vec<_>>(),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct GraphParams {
    /// Start here (an entity id or exact name); default: all your entities (up to `limit`).
    pub entity: Option<String>,
    /// Hops from the start, 0 to 5 (default 1).
    pub depth: Option<usize>,
    /// Follow only relations of this type.
    pub relation: Option<String>,
    /// Most entities returned, 1 to 500 (default 100).
    pub limit: Option<usize>,
}

/// Your memory graph, or the neighbourhood of one entity to a depth.
#[utoipa::path(get, path = "/memory/graph", tag = "memory", security(("bearer" = [])), params(GraphParams), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn graph(
    State(state): State<AppState>,
    principal: Principal,
    Query(p): Query<GraphParams>,
) -> ApiResult<Json<Value>> {
    if p.entity.as_ref().is_some_and(|e| e.len() > 256) {
        return Err(ApiError::BadRequest("entity is at most 256 bytes".into()));
    }
    let g = state
        .memory
        .graph(
            &caller(&principal),
            p.entity.as_deref(),
            p.depth.unwrap_or(1),
            p.relation.as_deref(),
            p.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(graph_json(&g)))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EntityList {
    /// Names containing this (case-insensitive).
    pub q: Option<String>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// Your entities, by name.
#[utoipa::path(get, path = "/memory/entities", tag = "memory", security(("bearer" = [])), params(EntityList), responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
))]
pub async fn entities(
    State(state): State<AppState>,
    principal: Principal,
    Query(p): Query<EntityList>,
) -> ApiResult<Json<Value>> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) || p.q.as_ref().is_some_and(|q| q.len() > 200) {
        return Err(ApiError::BadRequest("limit is 1 to 500 and q at most 200 bytes".into()));
    }
    let list = state.memory.entities(&caller(&principal), p.q.as_deref(), limit).await?;
    Ok(Json(json!({"entities": list.iter().map(entity_json).collect::<Vec<_>>()})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEntity {
    pub name: String,
    /// a-z, 0-9, `_`, `-` (e.g. person, place, project); default `thing`.
    pub kind: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// Your memories that mention it.
    #[serde(default)]
    pub memory_ids: Vec<String>,
}

/// Adds an entity; one with the same normalized name and kind is reused (properties merged).
#[utoipa::path(post, path = "/memory/entities", tag = "memory", security(("bearer" = [])), request_body = NewEntity, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn add_entity(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewEntity>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if req.memory_ids.len() > 100 {
        return Err(ApiError::BadRequest("at most 100 memory_ids".into()));
    }
    let caller = caller(&principal);
    audit(
        &state,
        &principal.actor(),
        "memory.entity.add",
        &format!("memories:{}", caller.owner),
        json!({"links": req.memory_ids.len()}),
    )
    .await?;
    let input = EntityInput {
        name: req.name,
        kind: req.kind.unwrap_or_else(|| "thing".into()),
        properties: req.properties,
        memory_ids: req.memory_ids,
    };
    let e = state.memory.add_entity(&caller, input).await?;
    Ok((StatusCode::CREATED, Json(entity_json(&e))))
}

/// One entity with its relations.
#[utoipa::path(get, path = "/memory/entities/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 200, body = Object),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn get_entity(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    let e = state.memory.entity(&caller, &id).await?;
    let g = state.memory.graph(&caller, Some(&id), 1, None, 500).await?;
    Ok(Json(
        json!({"entity": entity_json(&e), "relations": g.relations.iter().map(relation_json).collect::<Vec<_>>()}),
    ))
}

/// Deletes an entity with its relations and links.
#[utoipa::path(delete, path = "/memory/entities/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_entity(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&principal);
    state.memory.entity(&caller, &id).await?;
    audit(&state, &principal.actor(), "memory.entity.delete", &format!("entity:{id}"), json!({}))
        .await?;
    state.memory.delete_entity(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// Duplicates folded into this entity (then deleted).
    pub from: Vec<String>,
}

/// Merges duplicate entities into this one: their relations and memory links move here
/// (repeats and self-loops dropped), properties merge (this entity's win).
#[utoipa::path(post, path = "/memory/entities/{id}/merge", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), request_body = MergeBody, responses(
    (status = 200, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn merge(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    Json(req): Json<MergeBody>,
) -> ApiResult<Json<Value>> {
    let caller = caller(&principal);
    state.memory.entity(&caller, &id).await?;
    audit(
        &state,
        &principal.actor(),
        "memory.entity.merge",
        &format!("entity:{id}"),
        json!({"from": req.from}),
    )
    .await?;
    Ok(Json(entity_json(&state.memory.merge_entities(&caller, &id, &req.from).await?)))
}

/// One end of a relation: an entity id, or a name (created if missing).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndBody {
    pub id: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
}

impl EndBody {
    fn into_ref(self) -> Result<EndRef, ApiError> {
        match (self.id, self.name) {
            (Some(id), None) => Ok(EndRef::Id(id)),
            (None, Some(name)) => {
                Ok(EndRef::Name { name, kind: self.kind.unwrap_or_else(|| "thing".into()) })
            }
            _ => Err(ApiError::BadRequest(
                "a relation end has `id`, or `name` (and optional `kind`)".into(),
            )),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelation {
    pub source: EndBody,
    pub target: EndBody,
    /// a-z, 0-9, `_`, `-`, e.g. `works_at`.
    #[serde(rename = "type")]
    pub rel_type: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Map<String, Value>,
    /// The memory it comes from (both ends get linked to it).
    pub memory_id: Option<String>,
}

/// Adds a typed relation between two entities (a repeated one is the same edge).
#[utoipa::path(post, path = "/memory/relations", tag = "memory", security(("bearer" = [])), request_body = NewRelation, responses(
    (status = 201, body = Object),
    (status = 400, body = Problem, content_type = "application/problem+json"),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn add_relation(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<NewRelation>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let caller = caller(&principal);
    let input = RelationInput {
        source: req.source.into_ref()?,
        target: req.target.into_ref()?,
        rel_type: req.rel_type,
        properties: req.properties,
        memory_id: req.memory_id,
    };
    audit(
        &state,
        &principal.actor(),
        "memory.relation.add",
        &format!("memories:{}", caller.owner),
        json!({"type": input.rel_type}),
    )
    .await?;
    let r = state.memory.add_relation(&caller, input).await?;
    Ok((StatusCode::CREATED, Json(relation_json(&r))))
}

/// Deletes a relation.
#[utoipa::path(delete, path = "/memory/relations/{id}", tag = "memory", security(("bearer" = [])), params(("id" = String, Path)), responses(
    (status = 204),
    (status = 404, body = Problem, content_type = "application/problem+json"),
))]
pub async fn delete_relation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller(&principal);
    audit(
        &state,
        &principal.actor(),
        "memory.relation.delete",
        &format!("relation:{id}"),
        json!({}),
    )
    .await?;
    state.memory.delete_relation(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
