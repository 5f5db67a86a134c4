//! Memory for chat: what a reply recalls into its context, and the episodic memories of each
//! turn and each summary of a thread (so what a thread did survives its summarization and is
//! found from other threads). Chat calls these; failures are logged, never fatal to a reply.

use std::collections::HashSet;

use kai_store::{ChatMessageRow, ChatSummaryRow};
use serde_json::{Map, Value, json};

use super::Memory;
use super::types::{Caller, MAX_TEXT_BYTES, MemoryView, Recalled};

/// Longest recalled text put into a prompt (characters).
const RECALL_CHARS: usize = 600;

fn clip(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

impl Memory {
    /// Memories relevant to the newest user message of `context`, leaving out episodes of
    /// turns that are already in `context` verbatim.
    pub async fn recall_for_chat(
        &self,
        caller: &Caller,
        context: &[ChatMessageRow],
    ) -> Vec<Recalled> {
        let k = self.settings.recall_k;
        let Some(query) =
            context.iter().rev().find(|m| m.role == "user").map(|m| m.content.clone())
        else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let shown: HashSet<String> = context.iter().map(|m| m.id.clone()).collect();
        let skip = move |v: &MemoryView| {
            v.metadata.get("message_ids").and_then(Value::as_array).is_some_and(|ids| {
                !ids.is_empty() && ids.iter().all(|i| i.as_str().is_some_and(|s| shown.contains(s)))
            })
        };
        match self.recall(caller, &query, k, &skip).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(code = e.code(), "memory recall failed; replying without it");
                Vec::new()
            }
        }
    }

    /// The system message that carries recalled memories into a prompt.
    pub fn recall_prompt(recalled: &[Recalled]) -> String {
        let mut out = String::from(
            "Memories the node recalled for this conversation (from earlier conversations and notes; use them if they help):\n",
        );
        for r in recalled {
            out.push_str(&format!("- [{}] {}\n", r.tier.as_str(), clip(&r.text, RECALL_CHARS)));
        }
        out
    }

    /// What a reply's metadata says it recalled.
    pub fn recalled_json(recalled: &[Recalled]) -> Value {
        Value::Array(
            recalled
                .iter()
                .map(|r| json!({"id": r.id, "tier": r.tier.as_str(), "text": clip(&r.text, 200), "score": r.score}))
                .collect(),
        )
    }

    /// Stores the episode of one turn: the user's message and the reply.
    pub async fn remember_turn(
        &self,
        caller: &Caller,
        thread_id: &str,
        asked: Option<&ChatMessageRow>,
        reply: &ChatMessageRow,
    ) {
        if !self.settings.episodic || reply.content.trim().is_empty() {
            return;
        }
        let mut text = String::new();
        if let Some(a) = asked {
            text.push_str(&format!("User: {}\n", clip(&a.content, MAX_TEXT_BYTES / 8)));
        }
        text.push_str(&format!("Assistant: {}", clip(&reply.content, MAX_TEXT_BYTES / 8)));
        let mut ids = Vec::new();
        if let Some(a) = asked {
            ids.push(json!(a.id));
        }
        ids.push(json!(reply.id));
        let mut meta = Map::new();
        meta.insert("kind".into(), json!("chat_turn"));
        meta.insert("thread_id".into(), json!(thread_id));
        meta.insert("message_ids".into(), Value::Array(ids));
        if let Err(e) = self.record_episode(caller, thread_id, text, meta).await {
            tracing::warn!(code = e.code(), "episodic memory of a chat turn not stored");
        }
    }

    /// Stores the episode of a thread summary.
    pub async fn remember_summary(&self, caller: &Caller, summary: &ChatSummaryRow) {
        if !self.settings.episodic || summary.content.trim().is_empty() {
            return;
        }
        let mut meta = Map::new();
        meta.insert("kind".into(), json!("chat_summary"));
        meta.insert("thread_id".into(), json!(summary.thread_id));
        meta.insert("summary_id".into(), json!(summary.id));
        let text = clip(&summary.content, MAX_TEXT_BYTES / 4);
        if let Err(e) = self.record_episode(caller, &summary.thread_id, text, meta).await {
            tracing::warn!(code = e.code(), "episodic memory of a chat summary not stored");
        }
    }
}
