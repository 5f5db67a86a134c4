//! The layer search of HNSW (greedy descent on upper layers, beam search with `ef` on a layer)
//! and the per-search scratch space (visited marks, heaps) pooled inside the index.
//!
//! Search is single-threaded per query and allocation-free once a scratch is warm. `accept`
//! decides which nodes may enter the result set (tombstones and filtered-out ids never do); all
//! nodes are still used to navigate, so a selective filter makes the search explore further
//! instead of returning foreign ids.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::{Mutex, PoisonError};

use super::graph::Graph;

/// A distance with a total order, paired with a slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Near(pub f32, pub u32);

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Reusable memory for one search.
#[derive(Default)]
pub(crate) struct Scratch {
    visited: Vec<u16>,
    epoch: u16,
    candidates: BinaryHeap<Reverse<Near>>,
    /// Max-heap of the best results so far (worst on top).
    pub(crate) results: BinaryHeap<Near>,
    pub(crate) buf: Vec<u32>,
    pub(crate) pairs: Vec<(f32, u32)>,
    pub(crate) floats: Vec<f32>,
}

impl Scratch {
    /// Starts a new visit over `slots` slots.
    fn begin(&mut self, slots: usize) {
        if self.visited.len() < slots {
            self.visited.resize(slots, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.fill(0);
            self.epoch = 1;
        }
        self.candidates.clear();
        self.results.clear();
    }

    /// Marks `slot` visited; false if it already was (or is out of range).
    #[inline]
    fn visit(&mut self, slot: u32) -> bool {
        match self.visited.get_mut(slot as usize) {
            Some(mark) if *mark != self.epoch => {
                *mark = self.epoch;
                true
            }
            _ => false,
        }
    }
}

/// What a layer search needs to know about vectors: distances to the query, and a hint to start
/// loading a batch of vectors before their distances are computed (a safe stand-in for
/// prefetch instructions: plain loads whose results are discarded).
pub(crate) trait Metric {
    fn dist(&self, slot: u32) -> f32;
    fn warm(&self, _slots: &[u32]) {}
}

impl<F: Fn(u32) -> f32> Metric for F {
    fn dist(&self, slot: u32) -> f32 {
        self(slot)
    }
}

/// A pool of scratch spaces so that `&self` searches on several threads each get their own.
#[derive(Default)]
pub(crate) struct ScratchPool(Mutex<Vec<Scratch>>);

impl ScratchPool {
    pub(crate) fn take(&self) -> Scratch {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default()
    }
    pub(crate) fn give(&self, s: Scratch) {
        let mut pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < 64 {
            pool.push(s);
        }
    }
    pub(crate) fn memory_bytes(&self) -> usize {
        let pool = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        pool.iter()
            .map(|s| {
                s.visited.capacity() * 2 + s.candidates.capacity() * 8 + s.results.capacity() * 8
            })
            .sum()
    }
}

/// Greedy descent from `entry` through layers `top..=bottom+1` (top first); returns the closest
/// node found at layer `bottom + 1` with its distance. `buf` is scratch for neighbour lists.
pub(crate) fn descend(
    graph: &Graph,
    entry: Near,
    top: u8,
    bottom: u8,
    dist: &impl Metric,
    buf: &mut Vec<u32>,
) -> Near {
    let mut cur = entry;
    let mut level = top;
    while level > bottom {
        let mut changed = true;
        while changed {
            changed = false;
            graph.neighbors_into(cur.1, level, buf);
            for &n in buf.iter() {
                let d = dist.dist(n);
                if d < cur.0 {
                    cur = Near(d, n);
                    changed = true;
                }
            }
        }
        level -= 1;
    }
    cur
}

/// Beam search on one layer. Leaves up to `ef` accepted nodes in `scratch.results`.
pub(crate) fn search_layer(
    graph: &Graph,
    level: u8,
    entry: Near,
    ef: usize,
    dist: &impl Metric,
    accept: &impl Fn(u32) -> bool,
    scratch: &mut Scratch,
) {
    scratch.begin(graph.slots());
    scratch.visit(entry.1);
    scratch.candidates.push(Reverse(entry));
    if accept(entry.1) {
        scratch.results.push(entry);
    }
    let mut worst = if scratch.results.len() >= ef { entry.0 } else { f32::INFINITY };
    while let Some(Reverse(Near(d, c))) = scratch.candidates.pop() {
        if d > worst {
            break;
        }
        // Start loading the list of the next candidate while this one is processed.
        if let Some(Reverse(next)) = scratch.candidates.peek() {
            graph.warm(next.1, level);
        }
        // Gather the unvisited neighbours first, then compute their distances back to back:
        // independent loads let the CPU fetch several vectors at once.
        let mut batch = std::mem::take(&mut scratch.buf);
        graph.neighbors_into(c, level, &mut batch);
        batch.retain(|&n| scratch.visit(n));
        let mut dists = std::mem::take(&mut scratch.floats);
        dists.clear();
        dist.warm(&batch);
        dists.extend(batch.iter().map(|&n| dist.dist(n)));
        for (&n, &dn) in batch.iter().zip(&dists) {
            if dn < worst || scratch.results.len() < ef {
                scratch.candidates.push(Reverse(Near(dn, n)));
                if accept(n) {
                    scratch.results.push(Near(dn, n));
                    if scratch.results.len() > ef {
                        scratch.results.pop();
                    }
                    if scratch.results.len() >= ef {
                        worst = scratch.results.peek().map_or(f32::INFINITY, |w| w.0);
                    }
                }
            }
        }
        scratch.buf = batch;
        scratch.floats = dists;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path graph 0-1-2-…-9 with 1-D positions; search from 0 for position 7.3.
    #[test]
    fn beam_search_walks_to_the_target_and_respects_accept() {
        let mut g = Graph::new(2);
        g.grow_to(10);
        for i in 0u32..10 {
            let mut nb = Vec::new();
            if i > 0 {
                nb.push(i - 1);
            }
            if i < 9 {
                nb.push(i + 1);
            }
            g.set_neighbors(i, 0, &nb);
        }
        let dist = |s: u32| (s as f32 - 7.3).abs();
        let mut scratch = Scratch::default();
        search_layer(&g, 0, Near(dist(0), 0), 3, &dist, &|_| true, &mut scratch);
        let mut got: Vec<u32> = scratch.results.iter().map(|n| n.1).collect();
        got.sort_unstable();
        assert_eq!(got, [6, 7, 8]);

        // Only even slots accepted: the search goes on past rejected nodes.
        search_layer(&g, 0, Near(dist(0), 0), 3, &dist, &|s| s.is_multiple_of(2), &mut scratch);
        let mut got: Vec<u32> = scratch.results.iter().map(|n| n.1).collect();
        got.sort_unstable();
        assert_eq!(got, [4, 6, 8]);

        // Nothing accepted: empty, not a panic; every node was visited.
        search_layer(&g, 0, Near(dist(0), 0), 3, &dist, &|_| false, &mut scratch);
        assert!(scratch.results.is_empty());

        // Many searches wrap the epoch counter without stale marks.
        for _ in 0..70_000 {
            scratch.begin(10);
        }
        search_layer(&g, 0, Near(dist(0), 0), 1, &dist, &|_| true, &mut scratch);
        assert_eq!(scratch.results.peek().map(|n| n.1), Some(7));
    }
}
