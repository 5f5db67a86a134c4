//! Chat threads: persisted conversations with a persona, streamed replies, regenerate and
//! branch from any message, and context-window management that summarizes old turns (the
//! summary is stored and shown; the originals are kept).
//!
//! Messages form a tree through `parent_id`; a thread shows the branch ending at its head. A
//! reply is generated in its own task so that a client hanging up loses nothing: the answer is
//! still stored. Progress is published on the bus (`CHAT_MESSAGE`, `CHAT_SUMMARY`, and
//! `CHAT_DELTA` batched to at most ten events a second per reply) with the thread id in the
//! payload, so WebSocket clients can follow a thread.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt as _;
use kai_core::Envelope;
use kai_llm::{ChatChunk, ChatRequest, Message, ToolCall, ToolDefinition};
use kai_store::{ChatMessageRow, ChatSummaryRow, Store, StoreError, ThreadRow};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::EventBus;
use crate::llm::{Llm, ModelError};
use crate::memory::{Caller, Memory};
use crate::spend;

/// Longest message accepted, in bytes.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Longest thread title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Messages kept verbatim after a summary when old turns are summarized.
const KEEP_RECENT: usize = 4;
/// Share of the persona's context window the history may fill before old turns are summarized.
const SUMMARIZE_AT: f64 = 0.75;
/// How often streamed text is published on the bus (per reply).
const DELTA_EVERY: Duration = Duration::from_millis(100);

/// Why a chat operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChatError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::Model(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }
}

type Result<T> = std::result::Result<T, ChatError>;

/// What a reply's stream carries, in order: the stored input message, a summary if old turns
/// were summarized, text deltas, then the stored reply (or an error).
#[derive(Debug, Clone)]
pub enum ChatEvent {
    Message(ChatMessageRow),
    Summary(ChatSummaryRow),
    Delta(String),
    Done(ChatMessageRow),
    Error { code: &'static str, detail: String },
}

/// A thread with the branch it shows and its summaries.
#[derive(Debug, Clone)]
pub struct ThreadView {
    pub thread: ThreadRow,
    /// The messages from the root to the head, oldest first.
    pub branch: Vec<ChatMessageRow>,
    pub summaries: Vec<ChatSummaryRow>,
}

/// A new input to a thread: a user message, or the result of a tool call the last reply made.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub content: String,
    /// Set for a tool result: the id of the call it answers.
    pub tool_call_id: Option<String>,
    /// The message to continue from; default the thread's head. A non-head message starts a
    /// new branch.
    pub parent_id: Option<String>,
    /// Tools the model may call in its reply (their calls are stored on the reply).
    pub tools: Vec<ToolDefinition>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// Whose memories the reply recalls and where its episode is stored (none: no memory).
    pub memory: Option<Caller>,
}

/// The chat service.
pub struct Chat {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    llm: Arc<Llm>,
    memory: Option<Arc<Memory>>,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The path from the root to `head`, oldest first.
pub fn branch_to(all: &[ChatMessageRow], head: Option<&str>) -> Vec<ChatMessageRow> {
    let by_id: std::collections::HashMap<&str, &ChatMessageRow> =
        all.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut out = Vec::new();
    let mut next = head;
    let mut seen = HashSet::new();
    while let Some(id) = next {
        let Some(m) = by_id.get(id) else { break };
        if !seen.insert(id) {
            break;
        }
        out.push((*m).clone());
        next = m.parent_id.as_deref();
    }
    out.reverse();
    out
}

/// A rough token count (4 bytes a token), enough to decide when to summarize.
fn estimate_tokens(text: &str) -> usize {
    text.len() / 4 + 4
}

fn to_message(m: &ChatMessageRow) -> Message {
    match m.role.as_str() {
        "system" => Message::system(m.content.clone()),
        "assistant" => {
            let calls: Vec<ToolCall> = m
                .tool_calls
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_default();
            Message::assistant_tool_calls(m.content.clone(), calls)
        }
        "tool" => {
            Message::tool_result(m.tool_call_id.clone().unwrap_or_default(), m.content.clone())
        }
        _ => Message::user(m.content.clone()),
    }
}

impl Chat {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn EventBus>, llm: Arc<Llm>) -> Self {
        Self { store, bus, llm, memory: None }
    }

    /// Replies recall memories into their context and store episodes of their turns.
    #[must_use]
    pub fn with_memory(mut self, memory: Arc<Memory>) -> Self {
        self.memory = Some(memory);
        self
    }

    fn check_title(title: &str) -> Result<()> {
        if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
            return Err(ChatError::BadRequest(format!(
                "title is at most {MAX_TITLE_CHARS} characters without control characters"
            )));
        }
        Ok(())
    }

    fn check_persona(&self, persona: &str) -> Result<()> {
        if self.llm.personas().any(|p| p.name == persona) {
            Ok(())
        } else {
            Err(ChatError::BadRequest(format!("no persona named {persona:?}; see GET /v1/models")))
        }
    }

    /// The persona new threads get: the first configured one.
    pub fn default_persona(&self) -> Option<String> {
        self.llm.personas().next().map(|p| p.name.clone())
    }

    /// Creates a thread owned by `owner`.
    pub async fn create(
        &self,
        owner: &str,
        title: Option<&str>,
        persona: Option<&str>,
    ) -> Result<ThreadRow> {
        let persona = match persona {
            Some(p) => p.to_owned(),
            None => self.default_persona().ok_or_else(|| {
                ChatError::BadRequest("no persona is configured: add one under [[personas]]".into())
            })?,
        };
        self.check_persona(&persona)?;
        let title = title.unwrap_or("New chat").trim();
        Self::check_title(title)?;
        let at = now_us();
        let thread = ThreadRow {
            id: new_id("thr"),
            owner: owner.to_owned(),
            title: if title.is_empty() { "New chat".into() } else { title.to_owned() },
            persona,
            head_id: None,
            message_count: 0,
            created_at_us: at,
            updated_at_us: at,
        };
        self.store.insert_thread(&thread).await?;
        Ok(thread)
    }

    /// The thread if `owner` owns it (anyone else gets `NotFound`: ids do not leak).
    pub async fn get(&self, owner: &str, id: &str) -> Result<ThreadRow> {
        match self.store.thread(id).await? {
            Some(t) if t.owner == owner => Ok(t),
            _ => Err(ChatError::NotFound(format!("no thread {id:?}"))),
        }
    }

    /// The thread, its shown branch and its summaries.
    pub async fn view(&self, owner: &str, id: &str) -> Result<ThreadView> {
        let thread = self.get(owner, id).await?;
        let all = self.store.thread_messages(id).await?;
        let branch = branch_to(&all, thread.head_id.as_deref());
        let summaries = self.store.summaries(id).await?;
        Ok(ThreadView { thread, branch, summaries })
    }

    /// Every message of every branch.
    pub async fn all_messages(&self, owner: &str, id: &str) -> Result<Vec<ChatMessageRow>> {
        self.get(owner, id).await?;
        Ok(self.store.thread_messages(id).await?)
    }

    pub async fn list(
        &self,
        owner: &str,
        query: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ThreadRow>> {
        Ok(self.store.threads(owner, query, limit).await?)
    }

    /// Renames, changes persona, or switches the shown branch (`head_id` must be a message of
    /// the thread).
    pub async fn update(
        &self,
        owner: &str,
        id: &str,
        title: Option<&str>,
        persona: Option<&str>,
        head_id: Option<&str>,
    ) -> Result<ThreadRow> {
        self.get(owner, id).await?;
        let title = title.map(str::trim);
        if let Some(t) = title {
            Self::check_title(t)?;
            if t.is_empty() {
                return Err(ChatError::BadRequest("title must not be empty".into()));
            }
        }
        if let Some(p) = persona {
            self.check_persona(p)?;
        }
        if let Some(h) = head_id
            && !self.store.thread_messages(id).await?.iter().any(|m| m.id == h)
        {
            return Err(ChatError::BadRequest(format!("message {h:?} is not in this thread")));
        }
        self.store.update_thread(id, title, persona, head_id, now_us()).await?;
        self.get(owner, id).await
    }

    pub async fn delete(&self, owner: &str, id: &str) -> Result<()> {
        self.get(owner, id).await?;
        self.store.delete_thread(id).await?;
        self.publish("CHAT_THREAD_DELETED", id, owner, json!({})).await;
        Ok(())
    }

    async fn publish(&self, kind: &str, thread: &str, owner: &str, mut payload: Value) {
        payload["thread_id"] = json!(thread);
        payload["owner"] = json!(owner);
        let Ok(kind) = kind.parse() else {
            tracing::error!(kind, "not an event type");
            return;
        };
        if let Err(e) = self.bus.publish(Envelope::new(kind, payload, Utc::now())).await {
            // The thread itself is stored; only live followers miss this event.
            tracing::warn!(error = %e, "could not publish a chat event");
        }
    }

    /// Adds `input` to the thread and streams the persona's reply. The returned channel ends
    /// after [`ChatEvent::Done`] or [`ChatEvent::Error`]; dropping it does not stop the reply.
    pub async fn send(
        self: &Arc<Self>,
        actor: &str,
        id: &str,
        input: Input,
    ) -> Result<mpsc::Receiver<ChatEvent>> {
        let thread = self.get(actor, id).await?;
        if input.content.len() > MAX_CONTENT_BYTES {
            return Err(ChatError::BadRequest(format!(
                "content is {} bytes; the limit is {MAX_CONTENT_BYTES}",
                input.content.len()
            )));
        }
        let all = self.store.thread_messages(id).await?;
        let parent = input.parent_id.clone().or_else(|| thread.head_id.clone());
        if let Some(p) = &parent
            && !all.iter().any(|m| &m.id == p)
        {
            return Err(ChatError::BadRequest(format!("message {p:?} is not in this thread")));
        }
        if input.tool_call_id.is_none() && input.content.trim().is_empty() {
            return Err(ChatError::BadRequest("content must not be empty".into()));
        }
        if let Some(call) = &input.tool_call_id {
            let asked = branch_to(&all, parent.as_deref())
                .last()
                .and_then(|m| m.tool_calls.as_deref().map(|t| t.contains(&format!("\"{call}\""))))
                .unwrap_or(false);
            if !asked {
                return Err(ChatError::BadRequest(format!(
                    "tool_call_id {call:?} does not answer a tool call of the message it follows"
                )));
            }
        }
        // Resolve the persona before storing anything: an unknown persona or a missing key
        // fails the request rather than leaving an unanswered message.
        self.llm.persona(&thread.persona).await?;
        let message = ChatMessageRow {
            id: new_id("msg"),
            thread_id: id.to_owned(),
            parent_id: parent,
            seq: 0,
            role: if input.tool_call_id.is_some() { "tool" } else { "user" }.into(),
            content: input.content.clone(),
            tool_calls: None,
            tool_call_id: input.tool_call_id.clone(),
            persona: None,
            meta: "{}".into(),
            created_at_us: now_us(),
        };
        let seq = self.store.append_message(&message).await?;
        let message = ChatMessageRow { seq, ..message };
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.send(ChatEvent::Message(message.clone())).await;
        self.publish("CHAT_MESSAGE", id, actor, json!({"message": message_json(&message)})).await;
        let this = self.clone();
        let actor = actor.to_owned();
        tokio::spawn(async move {
            this.reply(&actor, thread, message.id.clone(), input, None, tx).await;
        });
        Ok(rx)
    }

    /// Generates a new answer to the message `message_id` answered, as a sibling branch.
    pub async fn regenerate(
        self: &Arc<Self>,
        actor: &str,
        id: &str,
        message_id: &str,
        memory: Option<Caller>,
    ) -> Result<mpsc::Receiver<ChatEvent>> {
        let thread = self.get(actor, id).await?;
        let all = self.store.thread_messages(id).await?;
        let target = all.iter().find(|m| m.id == message_id).ok_or_else(|| {
            ChatError::NotFound(format!("no message {message_id:?} in this thread"))
        })?;
        // An assistant message gets a sibling; a user or tool message (one left unanswered
        // by a failed call, say) gets an answer.
        let (parent, replaces) = if target.role == "assistant" {
            let Some(parent) = target.parent_id.clone() else {
                return Err(ChatError::BadRequest("this message answers nothing".into()));
            };
            (parent, Some(message_id.to_owned()))
        } else if target.role == "system" {
            return Err(ChatError::BadRequest("a system message cannot be answered".into()));
        } else {
            (target.id.clone(), None)
        };
        self.llm.persona(&thread.persona).await?;
        let (tx, rx) = mpsc::channel(256);
        let this = self.clone();
        let actor = actor.to_owned();
        tokio::spawn(async move {
            let input = Input { memory, ..Input::default() };
            this.reply(&actor, thread, parent, input, replaces, tx).await;
        });
        Ok(rx)
    }

    /// Produces and stores the reply to `parent`; every outcome ends the channel.
    async fn reply(
        &self,
        actor: &str,
        thread: ThreadRow,
        parent: String,
        input: Input,
        regenerates: Option<String>,
        tx: mpsc::Sender<ChatEvent>,
    ) {
        if let Err(e) = self.try_reply(actor, &thread, &parent, input, regenerates, &tx).await {
            tracing::warn!(thread = %thread.id, code = e.code(), "chat reply failed");
            let detail = match &e {
                ChatError::Model(ModelError::Llm(l)) => {
                    format!("the model provider failed: {}", l.code())
                }
                other => other.to_string(),
            };
            let _ = tx.send(ChatEvent::Error { code: e.code(), detail }).await;
        }
    }

    async fn try_reply(
        &self,
        actor: &str,
        thread: &ThreadRow,
        parent: &str,
        input: Input,
        regenerates: Option<String>,
        tx: &mpsc::Sender<ChatEvent>,
    ) -> Result<()> {
        let (persona, provider) = self.llm.persona(&thread.persona).await?;
        let all = self.store.thread_messages(&thread.id).await?;
        let branch = branch_to(&all, Some(parent));
        let mut summaries = self.store.summaries(&thread.id).await?;
        let budget = persona.context_tokens as usize;
        if let Some(s) = self
            .summarize_if_needed(actor, thread, &persona, &provider, &branch, &summaries, budget)
            .await?
        {
            let _ = tx.send(ChatEvent::Summary(s.clone())).await;
            if let (Some(m), Some(c)) = (&self.memory, &input.memory) {
                m.remember_summary(c, &s).await;
            }
            summaries.push(s);
        }
        let mut messages = Vec::new();
        if !persona.system_prompt.is_empty() {
            messages.push(Message::system(persona.system_prompt.clone()));
        }
        let (summary, rest) = context_after_summary(&branch, &summaries);
        if let Some(s) = summary {
            messages.push(Message::system(format!(
                "Summary of the earlier conversation (the full messages are kept in the thread):\n{}",
                s.content
            )));
        }
        let recalled = match (&self.memory, &input.memory) {
            (Some(m), Some(c)) => m.recall_for_chat(c, rest).await,
            _ => Vec::new(),
        };
        if !recalled.is_empty() {
            messages.push(Message::system(Memory::recall_prompt(&recalled)));
        }
        messages.extend(rest.iter().map(to_message));
        let asked = rest.last().filter(|m| m.role == "user").cloned();
        let caller = input.memory.clone();
        let mut request = ChatRequest::new(messages).with_tools(input.tools);
        request.model = Some(persona.name.clone());
        request.params.temperature = input.temperature.or(persona.temperature);
        request.params.max_tokens = input.max_tokens;
        let mut stream = provider.stream(request).await.map_err(ModelError::from)?;
        let mut text = String::new();
        let mut pending = String::new();
        let mut last_publish = Instant::now();
        let reply_id = new_id("msg");
        let mut done = None;
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(ModelError::from)? {
                ChatChunk::Text(t) => {
                    text.push_str(&t);
                    pending.push_str(&t);
                    let _ = tx.send(ChatEvent::Delta(t)).await;
                    if last_publish.elapsed() >= DELTA_EVERY {
                        let chunk = std::mem::take(&mut pending);
                        self.publish(
                            "CHAT_DELTA",
                            &thread.id,
                            actor,
                            json!({"message_id": reply_id, "text": chunk}),
                        )
                        .await;
                        last_publish = Instant::now();
                    }
                }
                ChatChunk::ToolCallDelta(_) => {}
                ChatChunk::Done(d) => done = Some(d),
            }
        }
        let done = done.ok_or_else(|| {
            ChatError::Model(ModelError::Llm(kai_llm::LlmError::Protocol {
                provider: persona.name.clone(),
                message: "the stream ended without a final chunk".into(),
            }))
        })?;
        if !pending.is_empty() {
            self.publish(
                "CHAT_DELTA",
                &thread.id,
                actor,
                json!({"message_id": reply_id, "text": pending}),
            )
            .await;
        }
        let prices = self.llm.prices(&persona.name, &done.model);
        spend::record_usage(self.store.as_ref(), actor, &persona.name, &done.usage, prices).await;
        let meta = json!({
            "model": done.model,
            "finish_reason": done.finish_reason,
            "usage": done.usage,
            "regenerates": regenerates,
            "recalled": Memory::recalled_json(&recalled),
        });
        let reply = ChatMessageRow {
            id: reply_id,
            thread_id: thread.id.clone(),
            parent_id: Some(parent.to_owned()),
            seq: 0,
            role: "assistant".into(),
            content: text,
            tool_calls: (!done.tool_calls.is_empty())
                .then(|| serde_json::to_string(&done.tool_calls).unwrap_or_default()),
            tool_call_id: None,
            persona: Some(persona.name.clone()),
            meta: meta.to_string(),
            created_at_us: now_us(),
        };
        let seq = self.store.append_message(&reply).await?;
        let reply = ChatMessageRow { seq, ..reply };
        self.publish("CHAT_MESSAGE", &thread.id, actor, json!({"message": message_json(&reply)}))
            .await;
        let _ = tx.send(ChatEvent::Done(reply.clone())).await;
        if let (Some(m), Some(c)) = (&self.memory, &caller) {
            m.remember_turn(c, &thread.id, asked.as_ref(), &reply).await;
        }
        Ok(())
    }

    /// When the branch's unsummarized part exceeds the share of the context window, summarizes
    /// all but the last few messages (folding in the previous summary) and stores the summary.
    #[allow(clippy::too_many_arguments)]
    async fn summarize_if_needed(
        &self,
        actor: &str,
        thread: &ThreadRow,
        persona: &kai_core::config::PersonaEntry,
        provider: &Arc<dyn kai_llm::Provider>,
        branch: &[ChatMessageRow],
        summaries: &[ChatSummaryRow],
        budget: usize,
    ) -> Result<Option<ChatSummaryRow>> {
        let (previous, rest) = context_after_summary(branch, summaries);
        let used: usize = estimate_tokens(&persona.system_prompt)
            + previous.map_or(0, |s| estimate_tokens(&s.content))
            + rest.iter().map(|m| estimate_tokens(&m.content)).sum::<usize>();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let limit = (budget as f64 * SUMMARIZE_AT) as usize;
        if used <= limit || rest.len() <= KEEP_RECENT {
            return Ok(None);
        }
        // Never split a tool call from its result: extend the kept tail back to a user message.
        let mut cut = rest.len() - KEEP_RECENT;
        while cut > 0 && rest[cut].role != "user" {
            cut -= 1;
        }
        if cut == 0 {
            return Ok(None);
        }
        let old = &rest[..cut];
        let mut transcript = String::new();
        if let Some(p) = previous {
            transcript.push_str(&format!("Earlier summary:\n{}\n\n", p.content));
        }
        for m in old {
            transcript.push_str(&format!("{}: {}\n", m.role, m.content));
        }
        let request = ChatRequest::new(vec![
            Message::system(
                "Summarize this conversation for your own later reference. Keep facts, names, numbers, decisions and open questions. Be concise.",
            ),
            Message::user(transcript),
        ]);
        let resp = provider.chat(request).await.map_err(ModelError::from)?;
        let prices = self.llm.prices(&persona.name, &resp.model);
        spend::record_usage(self.store.as_ref(), actor, &persona.name, &resp.usage, prices).await;
        let mut ids: Vec<String> = previous
            .map(|p| serde_json::from_str::<Vec<String>>(&p.covered).unwrap_or_default())
            .unwrap_or_default();
        ids.extend(old.iter().map(|m| m.id.clone()));
        let summary = ChatSummaryRow {
            id: new_id("sum"),
            thread_id: thread.id.clone(),
            upto_id: old[old.len() - 1].id.clone(),
            covered: serde_json::to_string(&ids).unwrap_or_default(),
            content: resp.message.content,
            created_at_us: now_us(),
        };
        self.store.insert_summary(&summary).await?;
        self.publish(
            "CHAT_SUMMARY",
            &thread.id,
            actor,
            json!({"summary_id": summary.id, "upto_id": summary.upto_id, "messages": ids.len()}),
        )
        .await;
        Ok(Some(summary))
    }
}

/// The newest summary that covers a prefix of `branch`, and the messages after it.
fn context_after_summary<'a>(
    branch: &'a [ChatMessageRow],
    summaries: &'a [ChatSummaryRow],
) -> (Option<&'a ChatSummaryRow>, &'a [ChatMessageRow]) {
    let mut best: Option<(usize, &ChatSummaryRow)> = None;
    for s in summaries {
        if let Some(i) = branch.iter().position(|m| m.id == s.upto_id)
            && best.is_none_or(|(j, _)| i >= j)
        {
            best = Some((i, s));
        }
    }
    match best {
        Some((i, s)) => (Some(s), &branch[i + 1..]),
        None => (None, branch),
    }
}

/// A message in the API's JSON shape.
pub fn message_json(m: &ChatMessageRow) -> Value {
    let tool_calls: Value =
        m.tool_calls.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or(Value::Null);
    let meta: Value = serde_json::from_str(&m.meta).unwrap_or(Value::Null);
    json!({
        "id": m.id,
        "thread_id": m.thread_id,
        "parent_id": m.parent_id,
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "tool_calls": tool_calls,
        "tool_call_id": m.tool_call_id,
        "persona": m.persona,
        "meta": meta,
        "created_at": us_to_rfc3339(m.created_at_us),
    })
}

/// A thread in the API's JSON shape.
pub fn thread_json(t: &ThreadRow) -> Value {
    json!({
        "id": t.id,
        "title": t.title,
        "persona": t.persona,
        "head_id": t.head_id,
        "message_count": t.message_count,
        "created_at": us_to_rfc3339(t.created_at_us),
        "updated_at": us_to_rfc3339(t.updated_at_us),
    })
}

/// A summary in the API's JSON shape.
pub fn summary_json(s: &ChatSummaryRow) -> Value {
    let covered: Value = serde_json::from_str(&s.covered).unwrap_or(Value::Null);
    json!({
        "id": s.id,
        "upto_id": s.upto_id,
        "covered": covered,
        "content": s.content,
        "created_at": us_to_rfc3339(s.created_at_us),
    })
}

fn us_to_rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// The thread as Markdown: title, then each message of the shown branch under its role, tool
/// calls as JSON blocks, and summaries where they apply.
pub fn export_markdown(view: &ThreadView) -> String {
    let mut out = format!("# {}\n\n_Persona: {}_\n\n", view.thread.title, view.thread.persona);
    for m in &view.branch {
        let who = match m.role.as_str() {
            "assistant" => format!("Assistant ({})", m.persona.as_deref().unwrap_or("?")),
            "tool" => format!("Tool result ({})", m.tool_call_id.as_deref().unwrap_or("?")),
            "user" => "User".into(),
            other => other.to_owned(),
        };
        out.push_str(&format!("## {who}\n\n{}\n\n", m.content));
        if let Some(calls) = &m.tool_calls {
            let pretty = serde_json::from_str::<Value>(calls)
                .and_then(|v| serde_json::to_string_pretty(&v))
                .unwrap_or_else(|_| calls.clone());
            out.push_str(&format!("Tool calls:\n\n```json\n{pretty}\n```\n\n"));
        }
        for s in view.summaries.iter().filter(|s| s.upto_id == m.id) {
            out.push_str(&format!("> **Summary of the conversation so far:** {}\n\n", s.content));
        }
    }
    out
}
