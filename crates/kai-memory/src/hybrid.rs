//! Hybrid retrieval: reciprocal rank fusion (Cormack, Clarke & Büttcher 2009) of a vector result
//! list and a BM25 result list.
//!
//! `fused(d) = Σ_lists 1 / (k + rank(d))` with 1-based ranks and `k = 60` by default. RRF uses
//! ranks only, so cosine similarities and BM25 scores need no calibration. Ties are broken by
//! the better single rank, then by ascending id, so the order is deterministic.
//!
//! [`hybrid_search`] runs both searches under the same id filter (namespace isolation applies to
//! both lists, so a fused result can never carry a filtered-out id) and fuses them.

use std::collections::HashMap;

use crate::bm25::Bm25Index;
use crate::error::Result;
use crate::hnsw::{Hit, SearchParams, VectorIndex};

/// The RRF constant of the original paper and of most engines.
pub const DEFAULT_RRF_K: f64 = 60.0;

/// Where a fused result stood in one component list.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component {
    /// 1-based rank in that list.
    pub rank: usize,
    /// The list's own score (cosine similarity, or BM25).
    pub score: f32,
}

/// One fused result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FusedHit {
    pub id: u64,
    /// The RRF score.
    pub score: f64,
    pub vector: Option<Component>,
    pub text: Option<Component>,
}

impl FusedHit {
    fn best_rank(&self) -> usize {
        let v = self.vector.map_or(usize::MAX, |c| c.rank);
        let t = self.text.map_or(usize::MAX, |c| c.rank);
        v.min(t)
    }
}

/// Fuses two ranked lists (best first) and returns the best `limit`. An id repeated within a
/// list counts at its first (best) position only.
#[must_use]
pub fn reciprocal_rank_fusion(
    vector: &[Hit],
    text: &[Hit],
    rrf_k: f64,
    limit: usize,
) -> Vec<FusedHit> {
    let mut fused: HashMap<u64, FusedHit> = HashMap::new();
    for (list, is_vector) in [(vector, true), (text, false)] {
        for (i, hit) in list.iter().enumerate() {
            let entry = fused.entry(hit.id).or_insert(FusedHit {
                id: hit.id,
                score: 0.0,
                vector: None,
                text: None,
            });
            let slot = if is_vector { &mut entry.vector } else { &mut entry.text };
            if slot.is_none() {
                *slot = Some(Component { rank: i + 1, score: hit.score });
                entry.score += 1.0 / (rrf_k + (i + 1) as f64);
            }
        }
    }
    let mut out: Vec<FusedHit> = fused.into_values().collect();
    out.sort_unstable_by(|a, b| {
        b.score.total_cmp(&a.score).then(a.best_rank().cmp(&b.best_rank())).then(a.id.cmp(&b.id))
    });
    out.truncate(limit);
    out
}

/// A hybrid query: either part may be absent (then only the other list is used).
#[derive(Clone, Copy, Debug)]
pub struct HybridQuery<'a> {
    pub vector: Option<&'a [f32]>,
    pub text: Option<&'a str>,
    /// Results wanted.
    pub k: usize,
    /// Results taken from each list before fusion (at least `k`).
    pub candidates: usize,
    /// Beam width of the vector search.
    pub ef: usize,
    pub rrf_k: f64,
}

impl<'a> HybridQuery<'a> {
    /// Defaults: 4·k candidates per list, ef = max(64, candidates), RRF k = 60.
    #[must_use]
    pub fn new(vector: Option<&'a [f32]>, text: Option<&'a str>, k: usize) -> Self {
        let candidates = k.saturating_mul(4);
        Self { vector, text, k, candidates, ef: candidates.max(64), rrf_k: DEFAULT_RRF_K }
    }
}

/// Runs the vector and text searches under the same `filter` and fuses them.
pub fn hybrid_search(
    vectors: &dyn VectorIndex,
    text: &Bm25Index,
    query: &HybridQuery<'_>,
    filter: Option<&dyn Fn(u64) -> bool>,
) -> Result<Vec<FusedHit>> {
    let n = query.candidates.max(query.k);
    let vector_hits = match query.vector {
        Some(v) => vectors.search(v, &SearchParams::new(n, query.ef.max(n)), filter)?,
        None => Vec::new(),
    };
    let text_hits = match query.text {
        Some(q) => text.search(q, n, filter),
        None => Vec::new(),
    };
    Ok(reciprocal_rank_fusion(&vector_hits, &text_hits, query.rrf_k, query.k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::Bm25Params;
    use crate::hnsw::{HnswIndex, HnswParams};

    fn hits(ids: &[u64]) -> Vec<Hit> {
        ids.iter().enumerate().map(|(i, &id)| Hit { id, score: 1.0 - i as f32 / 10.0 }).collect()
    }

    #[test]
    fn rrf_orders_by_summed_reciprocal_ranks() {
        // a: 1/61 + 1/63; b: 1/62 + 1/61; c: 1/63; d: 1/62.
        let fused = reciprocal_rank_fusion(&hits(&[1, 2, 3]), &hits(&[2, 4, 1]), 60.0, 10);
        let order: Vec<u64> = fused.iter().map(|f| f.id).collect();
        assert_eq!(order, [2, 1, 4, 3]);
        assert!((fused[0].score - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
        assert_eq!(fused[0].vector, Some(Component { rank: 2, score: 0.9 }));
        assert_eq!(fused[0].text, Some(Component { rank: 1, score: 1.0 }));
        assert_eq!(fused[2].vector, None);
        assert_eq!(fused[2].text.map(|c| c.rank), Some(2));
        // 4 (rank 2 in text) and 2-only-in-vector tie on score: the better rank, then the id.
        let tie = reciprocal_rank_fusion(&hits(&[9, 5]), &hits(&[7, 3]), 60.0, 10);
        assert_eq!(tie.iter().map(|f| f.id).collect::<Vec<_>>(), [7, 9, 3, 5]);
        assert_eq!(reciprocal_rank_fusion(&hits(&[1, 2]), &[], 60.0, 1).len(), 1);
        assert!(reciprocal_rank_fusion(&[], &[], 60.0, 5).is_empty());
        // A duplicate inside one list counts once, at its best rank.
        let dup = reciprocal_rank_fusion(&hits(&[1, 1]), &[], 60.0, 5);
        assert_eq!(dup.len(), 1);
        assert!((dup[0].score - 1.0 / 61.0).abs() < 1e-12);
    }

    #[test]
    fn hybrid_search_applies_the_filter_to_both_lists() {
        let docs = [
            (1u64, "rust memory index", [1.0, 0.0, 0.0]),
            (2, "rust async runtime", [0.9, 0.1, 0.0]),
            (3, "python memory", [0.0, 1.0, 0.0]),
            (4, "memory graph", [0.7, 0.7, 0.0]),
        ];
        let mut vectors = HnswIndex::new(3, HnswParams::default()).unwrap();
        let mut text = Bm25Index::new(Bm25Params::default()).unwrap();
        for (id, t, v) in docs {
            vectors.insert(id, &v).unwrap();
            text.insert(id, t).unwrap();
        }
        let q = HybridQuery::new(Some(&[1.0, 0.0, 0.0]), Some("memory"), 3);
        let all = hybrid_search(&vectors, &text, &q, None).unwrap();
        assert_eq!(all[0].id, 1, "first in both lists");
        assert!(all[0].vector.is_some() && all[0].text.is_some());
        let even = |id: u64| id.is_multiple_of(2);
        let filtered = hybrid_search(&vectors, &text, &q, Some(&even)).unwrap();
        assert!(!filtered.is_empty());
        assert!(filtered.iter().all(|f| f.id.is_multiple_of(2)));
        let text_only =
            hybrid_search(&vectors, &text, &HybridQuery::new(None, Some("python"), 3), None)
                .unwrap();
        assert_eq!(text_only.iter().map(|f| f.id).collect::<Vec<_>>(), [3]);
        assert!(text_only[0].vector.is_none());
    }
}
