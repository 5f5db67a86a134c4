//! `kai-memory`: the node's in-process retrieval engine.
//!
//! - [`hnsw`]: approximate nearest-neighbour search over unit vectors (HNSW, f32 or int8 with
//!   exact re-ranking), incremental inserts and deletes, id filters, checksummed persistence.
//! - [`bm25`]: a BM25 full-text index with a small Unicode tokenizer, same persistence rules.
//! - [`hybrid`]: reciprocal rank fusion of the two result lists under one id filter.
//! - [`exact`]: brute-force search, the ground truth for recall tests and the fallback for tiny
//!   candidate sets.
//!
//! This crate owns indexes, not records: ids are the caller's `u64`s, and the caller (the memory
//! service) keeps the source records in the store and rebuilds an index from them when its file
//! is missing or corrupt (`rebuild_from`, [`Error::needs_rebuild`]). It knows nothing about
//! namespaces, tiers or TTLs beyond the id filter it is given. Its only network I/O is the
//! optional Qdrant backend ([`qdrant`], feature `qdrant`) behind the same [`VectorIndex`] trait.

pub mod bm25;
pub mod distance;
mod error;
pub mod exact;
pub mod hnsw;
pub mod hybrid;
mod persist;
#[cfg(feature = "qdrant")]
pub mod qdrant;
pub mod synthetic;

pub use bm25::{Bm25Index, Bm25Params};
pub use error::{Error, Result};
pub use hnsw::{Hit, HnswIndex, HnswParams, IndexStats, SearchParams, Storage, VectorIndex};
pub use hybrid::{FusedHit, HybridQuery, hybrid_search, reciprocal_rank_fusion};
