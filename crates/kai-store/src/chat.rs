//! Storage of chat threads: threads, their message tree and the summaries of old turns.

use async_trait::async_trait;

use crate::StoreResult;

/// A chat thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub id: String,
    /// The audit actor who owns it (`user:…`, `token:…`); only they see it.
    pub owner: String,
    pub title: String,
    pub persona: String,
    /// The newest message of the branch the thread shows.
    pub head_id: Option<String>,
    /// Messages in every branch.
    pub message_count: i64,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// One message of a thread. Messages form a tree through `parent_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessageRow {
    pub id: String,
    pub thread_id: String,
    pub parent_id: Option<String>,
    /// Order of arrival within the thread (set by the store).
    pub seq: i64,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    /// JSON array of tool calls (assistant messages).
    pub tool_calls: Option<String>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
    /// The persona that wrote an assistant message.
    pub persona: Option<String>,
    /// JSON object: usage, finish reason, what it regenerates, …
    pub meta: String,
    pub created_at_us: i64,
}

/// A summary of a branch's turns up to and including `upto_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSummaryRow {
    pub id: String,
    pub thread_id: String,
    pub upto_id: String,
    /// JSON array of the message ids the summary covers.
    pub covered: String,
    pub content: String,
    pub created_at_us: i64,
}

/// Threads, messages and summaries.
#[async_trait]
pub trait ChatStore: Send + Sync {
    async fn insert_thread(&self, thread: &ThreadRow) -> StoreResult<()>;
    async fn thread(&self, id: &str) -> StoreResult<Option<ThreadRow>>;
    /// Up to `limit` threads of `owner`, most recently active first. `query` keeps those whose
    /// title or any message contains it (case-insensitive).
    async fn threads(
        &self,
        owner: &str,
        query: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ThreadRow>>;
    /// Changes the given fields; `NotFound` if there is no such thread.
    async fn update_thread(
        &self,
        id: &str,
        title: Option<&str>,
        persona: Option<&str>,
        head_id: Option<&str>,
        at_us: i64,
    ) -> StoreResult<()>;
    /// Deletes a thread with its messages and summaries; `NotFound` if there is none.
    async fn delete_thread(&self, id: &str) -> StoreResult<()>;
    /// Appends a message and makes it the thread's head, in one transaction; returns its `seq`
    /// (the row's own `seq` is ignored). `NotFound` if the thread is gone.
    async fn append_message(&self, message: &ChatMessageRow) -> StoreResult<i64>;
    /// Every message of a thread, in arrival order.
    async fn thread_messages(&self, thread_id: &str) -> StoreResult<Vec<ChatMessageRow>>;
    async fn insert_summary(&self, summary: &ChatSummaryRow) -> StoreResult<()>;
    /// A thread's summaries, oldest first.
    async fn summaries(&self, thread_id: &str) -> StoreResult<Vec<ChatSummaryRow>>;
}
