//! Storage of memories and the memory graph: records (text, metadata, embedding, tier,
//! namespace, owner, expiry), entities, typed relations and mentions.
//!
//! The store keeps what the memory service hands it and decides nothing: encryption, namespace
//! rules and the indexes live in `kai-runtime::memory`. Private records arrive here already
//! encrypted (`encrypted = true`: `text`, `metadata` and `embedding` hold vault ciphertext).

use async_trait::async_trait;

use crate::StoreResult;

/// One memory record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRow {
    pub id: String,
    /// Dense id assigned by the store on insert (the row's own value is ignored then); the
    /// indexes know records by it.
    pub num: i64,
    /// The principal that owns it (`user:…`, `agent:…`, `token:…`); only it can read it.
    pub owner: String,
    /// `user`, `agent`, `session` or `thread`.
    pub ns_kind: String,
    pub ns_id: String,
    /// `short_term`, `working`, `long_term` or `episodic`.
    pub tier: String,
    /// Plain text, or ciphertext when `encrypted`.
    pub text: String,
    /// A JSON object, or ciphertext when `encrypted`.
    pub metadata: String,
    /// Little-endian f32s, or the bytes of a ciphertext when `encrypted`; `None` until embedded.
    pub embedding: Option<Vec<u8>>,
    pub embedding_model: Option<String>,
    pub encrypted: bool,
    /// The graph extractor has not looked at this record yet.
    pub needs_extraction: bool,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub expires_at_us: Option<i64>,
}

/// A node of the memory graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRow {
    pub id: String,
    pub owner: String,
    pub name: String,
    /// The normalized name duplicates are detected by (with `kind`).
    pub norm: String,
    pub kind: String,
    /// A JSON object.
    pub properties: String,
    pub created_at_us: i64,
    pub updated_at_us: i64,
}

/// A typed, directed edge of the memory graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationRow {
    pub id: String,
    pub owner: String,
    pub source_id: String,
    pub target_id: String,
    pub rel_type: String,
    /// The memory the relation was extracted from, if any.
    pub memory_id: Option<String>,
    /// A JSON object.
    pub properties: String,
    pub created_at_us: i64,
}

/// Memories and the memory graph.
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Inserts records in one transaction; returns their assigned `num`s in order.
    async fn insert_memories(&self, rows: &[MemoryRow]) -> StoreResult<Vec<i64>>;
    async fn memory(&self, id: &str) -> StoreResult<Option<MemoryRow>>;
    /// The records with these `num`s that exist, in no particular order.
    async fn memories_by_num(&self, nums: &[i64]) -> StoreResult<Vec<MemoryRow>>;
    /// Replaces every field but `id`, `num`, `owner` and `created_at_us`; `NotFound` if absent.
    async fn update_memory(&self, row: &MemoryRow) -> StoreResult<()>;
    /// Stores an embedding computed for the record as it was at `updated_at_us`; returns false
    /// (and changes nothing) if the record was changed or deleted since.
    async fn set_memory_embedding(
        &self,
        id: &str,
        updated_at_us: i64,
        embedding: &[u8],
        model: &str,
    ) -> StoreResult<bool>;
    /// Deletes a record (with its mentions); returns its `num`, `None` if there was none.
    async fn delete_memory(&self, id: &str) -> StoreResult<Option<i64>>;
    /// Up to `limit` records with `num > after`, by `num` (all owners: index rebuilds).
    async fn memories_after(&self, after: i64, limit: u32) -> StoreResult<Vec<MemoryRow>>;
    /// Up to `limit` records of `owner` with `num > after`, by `num` (export).
    async fn owner_memories_after(
        &self,
        owner: &str,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<MemoryRow>>;
    /// Up to `limit` records without an embedding with `num > after`, oldest first.
    async fn memories_without_embedding(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<MemoryRow>>;
    /// Up to `limit` records the graph extractor has not seen with `num > after`, oldest first.
    async fn memories_needing_extraction(
        &self,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<MemoryRow>>;
    async fn mark_memory_extracted(&self, id: &str) -> StoreResult<()>;
    /// Deletes up to `limit` records whose expiry is at or before `now_us`; returns their `num`s.
    async fn delete_expired_memories(&self, now_us: i64, limit: u32) -> StoreResult<Vec<i64>>;

    /// Inserts an entity, or returns the existing one with the same owner, `norm` and `kind`
    /// (its properties merged with the new ones, new keys winning).
    async fn upsert_entity(&self, entity: &EntityRow) -> StoreResult<EntityRow>;
    async fn entity(&self, id: &str) -> StoreResult<Option<EntityRow>>;
    /// Up to `limit` entities of `owner`, by name; `query` keeps names containing it.
    async fn entities(
        &self,
        owner: &str,
        query: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<EntityRow>>;
    async fn entities_by_id(&self, ids: &[String]) -> StoreResult<Vec<EntityRow>>;
    /// Deletes an entity with its relations and mentions; `NotFound` if absent.
    async fn delete_entity(&self, id: &str) -> StoreResult<()>;
    /// Inserts a relation, or returns the existing one with the same ends and type.
    async fn insert_relation(&self, relation: &RelationRow) -> StoreResult<RelationRow>;
    async fn relation(&self, id: &str) -> StoreResult<Option<RelationRow>>;
    async fn delete_relation(&self, id: &str) -> StoreResult<()>;
    /// Relations of `owner` with an end in `entity_ids` (and of `rel_type`, if given).
    async fn relations_touching(
        &self,
        owner: &str,
        entity_ids: &[String],
        rel_type: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<RelationRow>>;
    /// Folds the entities `from` into `into` in one transaction: their relations and mentions
    /// move to `into` (duplicates and self-loops dropped), their properties merge into `into`'s,
    /// and they are deleted.
    async fn merge_entities(&self, into: &str, from: &[String], at_us: i64) -> StoreResult<()>;
    /// Records that `memory_id` mentions these entities (repeats ignored).
    async fn add_mentions(&self, memory_id: &str, entity_ids: &[String]) -> StoreResult<()>;
    /// `(memory id, entity id)` for every mention by these memories.
    async fn mentions_of(&self, memory_ids: &[String]) -> StoreResult<Vec<(String, String)>>;
    /// The `num`s of up to `limit` memories that mention any of these entities.
    async fn memories_mentioning(&self, entity_ids: &[String], limit: u32)
    -> StoreResult<Vec<i64>>;
}
