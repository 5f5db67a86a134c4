//! The memory service's vocabulary: tiers, namespaces, callers, what is added and what a search
//! asks and answers, and the error type. Parsing happens here, once; the rest of the service
//! trusts these types.

use serde_json::{Map, Value};

use crate::llm::ModelError;
use crate::vault::VaultError;
use kai_store::StoreError;

/// Longest memory text accepted (bytes).
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Largest metadata object accepted (bytes of JSON).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most memories one add request may carry.
pub const MAX_BATCH: usize = 256;
/// Largest `k` a search may ask for.
pub const MAX_K: usize = 100;
/// Longest TTL (ten years, in seconds).
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// Why a memory operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// Vector operations were asked for but no embedding provider is configured.
    #[error(
        "no embedding provider is configured, so vectors cannot be computed: set [memory] embedding_provider to the name of a [[providers]] entry"
    )]
    NoEmbedder,
    #[error("the embedding provider answered {got} vectors for {asked} texts")]
    EmbedderProtocol { asked: usize, got: usize },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("vector index: {0}")]
    Index(#[from] kai_memory::Error),
    #[error("memory task failed: {0}")]
    Internal(String),
}

impl MemoryError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::NoEmbedder => "embedding_unavailable",
            Self::EmbedderProtocol { .. } => "provider_protocol",
            Self::Model(e) => e.code(),
            Self::Vault(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Index(e) => e.code(),
            Self::Internal(_) => "internal",
        }
    }
}

pub type Result<T, E = MemoryError> = std::result::Result<T, E>;

fn bad(msg: impl Into<String>) -> MemoryError {
    MemoryError::BadRequest(msg.into())
}

/// How long a memory is meant to live; a label for filtering (expiry is the TTL's job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    ShortTerm,
    Working,
    LongTerm,
    Episodic,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::ShortTerm, Tier::Working, Tier::LongTerm, Tier::Episodic];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShortTerm => "short_term",
            Self::Working => "working",
            Self::LongTerm => "long_term",
            Self::Episodic => "episodic",
        }
    }
}

impl std::str::FromStr for Tier {
    type Err = MemoryError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            bad(format!("tier {s:?} is not one of short_term, working, long_term, episodic"))
        })
    }
}

/// What a namespace groups memories by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    User,
    Agent,
    Session,
    Thread,
}

impl NamespaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Agent => "agent",
            Self::Session => "session",
            Self::Thread => "thread",
        }
    }
}

impl std::str::FromStr for NamespaceKind {
    type Err = MemoryError;
    fn from_str(s: &str) -> Result<Self> {
        [Self::User, Self::Agent, Self::Session, Self::Thread]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                bad(format!("namespace kind {s:?} is not one of user, agent, session, thread"))
            })
    }
}

/// A namespace: `kind:id`, e.g. `thread:thr_0190…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace {
    pub kind: NamespaceKind,
    pub id: String,
}

impl Namespace {
    /// Parses `kind:id` (or a bare `kind`, whose id the caller fills in).
    pub fn parse(text: &str) -> Result<(NamespaceKind, Option<String>)> {
        match text.split_once(':') {
            Some((k, id)) => {
                check_ns_id(id)?;
                Ok((k.parse()?, Some(id.to_owned())))
            }
            None => Ok((text.parse()?, None)),
        }
    }

    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

fn check_ns_id(id: &str) -> Result<()> {
    let ok = (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(bad("a namespace id is 1 to 128 characters of letters, digits, `_ - . : @`"))
    }
}

/// Who is asking. Every memory belongs to exactly one owner and only that owner reads it:
/// a user's memories are shared by all of that user's sessions and tokens, an agent's are its
/// own, and a token without a user has its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `user:ID`, `agent:kClass:name` or `token:ID`.
    pub owner: String,
    user_id: Option<String>,
    agent_id: Option<String>,
    /// The audit actor (creates the vault key of private memories).
    pub actor: String,
}

impl Caller {
    pub fn user(id: &str, actor: &str) -> Self {
        Self {
            owner: format!("user:{id}"),
            user_id: Some(id.to_owned()),
            agent_id: None,
            actor: actor.to_owned(),
        }
    }
    pub fn agent(id: &str) -> Self {
        Self {
            owner: format!("agent:{id}"),
            user_id: None,
            agent_id: Some(id.to_owned()),
            actor: format!("agent:{id}"),
        }
    }
    /// A token that acts for no user; `token` is `token:ID`.
    pub fn token(token: &str) -> Self {
        Self { owner: token.to_owned(), user_id: None, agent_id: None, actor: token.to_owned() }
    }

    /// The namespace `kind[:id]` resolves to for this caller. `user` and `agent` namespaces
    /// are the caller's own (the id may be omitted; another id is refused); `session` and
    /// `thread` need an id.
    pub fn namespace(&self, kind: NamespaceKind, id: Option<String>) -> Result<Namespace> {
        let own = match kind {
            NamespaceKind::User => Some((&self.user_id, "user")),
            NamespaceKind::Agent => Some((&self.agent_id, "agent")),
            NamespaceKind::Session | NamespaceKind::Thread => None,
        };
        let id = match (own, id) {
            (Some((Some(mine), _)), None) => mine.clone(),
            (Some((Some(mine), _)), Some(id)) if *mine == id => id,
            (Some((Some(_), what)), Some(_)) | (Some((None, what)), _) => {
                return Err(bad(format!(
                    "a {what} namespace belongs to that {what} only; you may use {}",
                    self.allowed()
                )));
            }
            (None, Some(id)) => id,
            (None, None) => {
                return Err(bad(format!("a {} namespace needs an id: {0}:ID", kind.as_str())));
            }
        };
        check_ns_id(&id)?;
        Ok(Namespace { kind, id })
    }

    /// The namespace memories go to when none is given.
    pub fn default_namespace(&self) -> Namespace {
        match (&self.user_id, &self.agent_id) {
            (Some(u), _) => Namespace { kind: NamespaceKind::User, id: u.clone() },
            (None, Some(a)) => Namespace { kind: NamespaceKind::Agent, id: a.clone() },
            _ => Namespace {
                kind: NamespaceKind::Session,
                id: self.owner.trim_start_matches("token:").to_owned(),
            },
        }
    }

    fn allowed(&self) -> String {
        let mut out = Vec::new();
        if let Some(u) = &self.user_id {
            out.push(format!("user:{u}"));
        }
        if let Some(a) = &self.agent_id {
            out.push(format!("agent:{a}"));
        }
        out.push("session:ID".into());
        out.push("thread:ID".into());
        out.join(", ")
    }
}

/// A memory to add.
#[derive(Debug, Clone)]
pub struct NewMemory {
    pub text: String,
    pub metadata: Map<String, Value>,
    pub namespace: Option<Namespace>,
    pub tier: Tier,
    /// Seconds until it expires.
    pub ttl_secs: Option<u64>,
    /// Encrypt at rest with the owner's vault key (the database then holds no plaintext).
    pub private: bool,
    /// A vector to store instead of computing one (its dimension must match the index).
    pub embedding: Option<Vec<f32>>,
}

impl NewMemory {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            metadata: Map::new(),
            namespace: None,
            tier: Tier::LongTerm,
            ttl_secs: None,
            private: false,
            embedding: None,
        }
    }
}

/// Checks text, metadata and TTL bounds.
pub(crate) fn check_content(
    text: &str,
    metadata: &Map<String, Value>,
    ttl: Option<u64>,
) -> Result<()> {
    if text.trim().is_empty() {
        return Err(bad("text must not be empty"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(bad(format!("text is {} bytes; the limit is {MAX_TEXT_BYTES}", text.len())));
    }
    let meta_len = Value::Object(metadata.clone()).to_string().len();
    if meta_len > MAX_METADATA_BYTES {
        return Err(bad(format!(
            "metadata is {meta_len} bytes of JSON; the limit is {MAX_METADATA_BYTES}"
        )));
    }
    if let Some(t) = ttl
        && !(1..=MAX_TTL_SECS).contains(&t)
    {
        return Err(bad(format!("ttl_secs is 1 to {MAX_TTL_SECS}")));
    }
    Ok(())
}

/// A change to a memory; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct MemoryPatch {
    pub text: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub tier: Option<Tier>,
    /// `Some(None)` removes the expiry.
    pub ttl_secs: Option<Option<u64>>,
}

/// A memory as the service returns it (decrypted for its owner).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryView {
    pub id: String,
    pub namespace: Namespace,
    pub tier: Tier,
    pub text: String,
    pub metadata: Map<String, Value>,
    pub private: bool,
    /// Whether the record has a vector (false while it waits for the embedder).
    pub embedded: bool,
    pub embedding_model: Option<String>,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub expires_at_us: Option<i64>,
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    /// Text to search for (full-text, and embedded for the vector search).
    pub text: Option<String>,
    /// A vector to search with instead of embedding `text`.
    pub vector: Option<Vec<f32>>,
    pub k: usize,
    pub namespaces: Vec<Namespace>,
    pub tiers: Vec<Tier>,
    pub created_after_us: Option<i64>,
    pub created_before_us: Option<i64>,
    /// Top-level metadata keys that must equal these values.
    pub metadata: Map<String, Value>,
    /// Add memories that mention entities related to the hits' entities.
    pub expand_graph: bool,
}

impl SearchQuery {
    pub fn text(q: impl Into<String>, k: usize) -> Self {
        Self {
            text: Some(q.into()),
            vector: None,
            k,
            namespaces: Vec::new(),
            tiers: Vec::new(),
            created_after_us: None,
            created_before_us: None,
            metadata: Map::new(),
            expand_graph: false,
        }
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Ranked by the fused vector and full-text lists.
    Search,
    /// Added by graph expansion.
    Graph,
}

/// One search result.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub memory: MemoryView,
    /// RRF score (0 for graph additions).
    pub score: f64,
    /// 1-based rank and cosine similarity in the vector list, if it was there.
    pub vector: Option<(usize, f32)>,
    /// 1-based rank and BM25 score in the full-text list, if it was there.
    pub text: Option<(usize, f32)>,
    pub via: Via,
}

/// A search's answer: the hits, and whether the vector half ran (and why not).
#[derive(Debug, Clone)]
pub struct SearchResult {
    pub hits: Vec<SearchHit>,
    pub vector_search: bool,
    /// Why there was no vector search, when there was none.
    pub notice: Option<String>,
}

/// What was recalled into a chat reply's context.
#[derive(Debug, Clone, PartialEq)]
pub struct Recalled {
    pub id: String,
    pub tier: Tier,
    pub text: String,
    pub score: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_belong_to_their_owner() {
        let u = Caller::user("u1", "user:u1");
        assert_eq!(u.namespace(NamespaceKind::User, None).unwrap().key(), "user:u1");
        assert!(u.namespace(NamespaceKind::User, Some("u2".into())).is_err());
        assert!(u.namespace(NamespaceKind::Agent, None).is_err());
        assert_eq!(
            u.namespace(NamespaceKind::Thread, Some("t1".into())).unwrap().key(),
            "thread:t1"
        );
        assert!(u.namespace(NamespaceKind::Session, None).is_err());
        let a = Caller::agent("kBridge:mail");
        assert_eq!(a.owner, "agent:kBridge:mail");
        assert_eq!(a.namespace(NamespaceKind::Agent, None).unwrap().key(), "agent:kBridge:mail");
        let err = a.namespace(NamespaceKind::Agent, Some("kOther:x".into())).unwrap_err();
        assert!(err.to_string().contains("agent:kBridge:mail"), "{err}");
        assert!(a.namespace(NamespaceKind::User, None).is_err());
        assert_eq!(a.default_namespace().key(), "agent:kBridge:mail");
        assert_eq!(Caller::token("token:t9").default_namespace().key(), "session:t9");
        assert!(u.namespace(NamespaceKind::Thread, Some("bad id".into())).is_err());
    }

    #[test]
    fn parsing_and_bounds() {
        assert_eq!("episodic".parse::<Tier>().unwrap(), Tier::Episodic);
        assert!("forever".parse::<Tier>().is_err());
        assert_eq!(
            Namespace::parse("thread:abc").unwrap(),
            (NamespaceKind::Thread, Some("abc".into()))
        );
        assert_eq!(Namespace::parse("user").unwrap(), (NamespaceKind::User, None));
        assert!(Namespace::parse("group:x").is_err());
        let m = Map::new();
        assert!(check_content("ok", &m, Some(60)).is_ok());
        assert!(check_content("  ", &m, None).is_err());
        assert!(check_content(&"x".repeat(MAX_TEXT_BYTES + 1), &m, None).is_err());
        assert!(check_content("ok", &m, Some(0)).is_err());
        let mut big = Map::new();
        big.insert("k".into(), Value::String("v".repeat(MAX_METADATA_BYTES)));
        assert!(check_content("ok", &big, None).is_err());
    }
}
