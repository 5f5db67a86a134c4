//! Exact (brute-force) inner-product search over a flat array of unit vectors: the ground truth
//! for recall measurements, and the right tool when a filter leaves only a handful of
//! candidates. Scans are single-threaded per query; [`ground_truth`] spreads queries over rayon.

use std::collections::BinaryHeap;

use rayon::prelude::*;

use crate::distance::dot_f32;
use crate::hnsw::Near;

/// The `k` rows of `data` (row-major, `dim` columns) with the highest inner product with
/// `query`, best first, as `(row, score)`. Rows rejected by `keep` are skipped.
#[must_use]
pub fn top_k(
    data: &[f32],
    dim: usize,
    query: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<(usize, f32)> {
    if k == 0 || dim == 0 {
        return Vec::new();
    }
    // Max-heap on distance keeps the worst of the best k on top.
    let mut heap: BinaryHeap<Near> = BinaryHeap::with_capacity(k + 1);
    for (row, v) in data.chunks_exact(dim).enumerate() {
        if !keep(row) {
            continue;
        }
        let d = 1.0 - dot_f32(query, v);
        if heap.len() < k {
            heap.push(Near(d, row as u32));
        } else if heap.peek().is_some_and(|w| d < w.0) {
            heap.pop();
            heap.push(Near(d, row as u32));
        }
    }
    let mut out: Vec<Near> = heap.into_vec();
    out.sort_unstable();
    out.into_iter().map(|n| (n.1 as usize, 1.0 - n.0)).collect()
}

/// Exact top-`k` rows for every query (row-major `queries`), computed on all rayon threads.
#[must_use]
pub fn ground_truth(data: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<usize>> {
    queries
        .par_chunks_exact(dim.max(1))
        .map(|q| top_k(data, dim, q, k, |_| true).into_iter().map(|(row, _)| row).collect())
        .collect()
}

/// Fraction of `truth` found in `got` (recall@k with k = `truth.len()`).
#[must_use]
pub fn recall(got: &[u64], truth: &[u64]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hits = truth.iter().filter(|t| got.contains(t)).count();
    hits as f64 / truth.len() as f64
}

/// Mean of [`recall`] over queries.
#[must_use]
pub fn mean_recall(got: &[Vec<u64>], truth: &[Vec<u64>]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    got.iter().zip(truth).map(|(g, t)| recall(g, t)).sum::<f64>() / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_filters() {
        let data = [1.0, 0.0, 0.0, 1.0, 0.6, 0.8, -1.0, 0.0];
        let got = top_k(&data, 2, &[1.0, 0.0], 3, |_| true);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [0, 2, 1]);
        assert!((got[1].1 - 0.6).abs() < 1e-6);
        let got = top_k(&data, 2, &[1.0, 0.0], 10, |row| row != 0);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [2, 1, 3]);
        assert!(top_k(&data, 2, &[1.0, 0.0], 0, |_| true).is_empty());
    }

    #[test]
    fn recall_counts_overlap() {
        assert_eq!(recall(&[1, 2, 3], &[3, 4]), 0.5);
        assert_eq!(mean_recall(&[vec![1], vec![2]], &[vec![1], vec![3]]), 0.5);
    }
}
