//! `memory_store` and `memory_search`: an agent's own memories (namespace `agent:<id>`, plus
//! the namespaces its definition grants), through the memory service's ownership checks.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolSpec};
use crate::memory::{Caller, Memory, MemoryError, NewMemory, SearchQuery};

pub struct MemoryStore(pub Arc<Memory>);
pub struct MemorySearch(pub Arc<Memory>);

fn err(e: MemoryError) -> ToolError {
    match e.code() {
        "bad_request" | "invalid" => ToolError::InvalidArgs(e.to_string()),
        "forbidden" | "not_found" => ToolError::Denied(e.to_string()),
        _ => ToolError::Failed(e.to_string()),
    }
}

fn text(args: &Value, key: &str, max: usize) -> Result<String, ToolError> {
    let t = args[key].as_str().map(str::trim).unwrap_or_default();
    if t.is_empty() || t.len() > max {
        return Err(ToolError::InvalidArgs(format!("{key}: 1 to {max} bytes of text")));
    }
    Ok(t.to_owned())
}

#[async_trait]
impl Tool for MemoryStore {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memory_store".into(),
            description: "Remember a fact for later tasks (stored in your own memory namespace)."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": 8000}},
                "required": ["text"],
                "additionalProperties": false,
            })
            .into(),
            risky: false,
        }
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let mut item = NewMemory::new(text(&args, "text", 8000)?);
        item.metadata.insert("source".into(), json!("agent"));
        if let Some(t) = &ctx.task_id {
            item.metadata.insert("task_id".into(), json!(t));
        }
        let views = self.0.add(&Caller::agent(&ctx.agent), vec![item], false).await.map_err(err)?;
        Ok(json!({"stored": views.first().map(|v| v.id.clone())}))
    }
}

#[async_trait]
impl Tool for MemorySearch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "memory_search".into(),
            description: "Search your memories (hybrid full-text and vector search).".into(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "maxLength": 500}, "k": {"type": "integer", "minimum": 1, "maximum": 20}},
                "required": ["query"],
                "additionalProperties": false,
            }).into(),
            risky: false,
        }
    }

    async fn call(&self, ctx: &ToolContext, args: Value) -> Result<Value, ToolError> {
        let k = args["k"].as_u64().unwrap_or(5).clamp(1, 20) as usize;
        let q = SearchQuery::text(text(&args, "query", 500)?, k);
        let found = self.0.search(&Caller::agent(&ctx.agent), q).await.map_err(err)?;
        let hits: Vec<Value> = found
            .hits
            .iter()
            .map(|h| json!({"id": h.memory.id, "text": h.memory.text, "score": h.score}))
            .collect();
        Ok(json!({"hits": hits}))
    }
}
