//! Adjacency lists of the HNSW graph and the neighbour-selection heuristic.
//!
//! Layer 0 lists live in one flat array with a fixed stride (`1 + m0` words: a count, then the
//! neighbours), like hnswlib's level-0 block; upper-layer lists (about 1/M of the nodes) live in a
//! map from slot to a boxed array of `level * (1 + m)` words. Every word is an `AtomicU32`, so
//! searches read lists without locks while a parallel build writes them: on x86 a relaxed atomic
//! load is a plain load. Writers hold the node's lock (striped, never two at once, so no
//! deadlock) around read-modify-write of that node's lists. A reader racing a writer may see a
//! mix of old and new entries; every entry is always a valid slot, which is all search needs.
//!
//! This module must not know about vectors or distances beyond the closures it is given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Number of lock stripes; a power of two.
const STRIPES: usize = 1024;

pub(crate) struct Graph {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    pub(crate) links0: Vec<AtomicU32>,
    pub(crate) upper: HashMap<u32, Box<[AtomicU32]>>,
    locks: Box<[Mutex<()>]>,
}

impl Graph {
    pub(crate) fn new(m: usize) -> Self {
        Self {
            m,
            m0: 2 * m,
            links0: Vec::new(),
            upper: HashMap::new(),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Number of slots with a layer-0 list.
    pub(crate) fn slots(&self) -> usize {
        self.links0.len() / (self.m0 + 1)
    }

    /// Makes room for `slots` slots (new ones have empty lists).
    pub(crate) fn grow_to(&mut self, slots: usize) {
        let want = slots * (self.m0 + 1);
        if self.links0.len() < want {
            self.links0.resize_with(want, || AtomicU32::new(0));
        }
    }

    /// Empties every list of `slot` and gives it upper lists for `level` layers.
    pub(crate) fn reset_slot(&mut self, slot: u32, level: u8) {
        let base = slot as usize * (self.m0 + 1);
        if let Some(count) = self.links0.get(base) {
            count.store(0, Ordering::Relaxed);
        }
        if level == 0 {
            self.upper.remove(&slot);
        } else {
            let words = usize::from(level) * (self.m + 1);
            self.upper.insert(slot, (0..words).map(|_| AtomicU32::new(0)).collect());
        }
    }

    pub(crate) fn lock(&self, slot: u32) -> MutexGuard<'_, ()> {
        // A poisoned stripe only means another writer panicked; the lists are still valid slots.
        self.locks[slot as usize & (STRIPES - 1)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The words of `slot`'s list at `level` (count first), or an empty slice if it has none.
    #[inline]
    pub(crate) fn list(&self, slot: u32, level: u8) -> &[AtomicU32] {
        if level == 0 {
            let stride = self.m0 + 1;
            let base = slot as usize * stride;
            self.links0.get(base..base + stride).unwrap_or(&[])
        } else {
            let stride = self.m + 1;
            let start = (usize::from(level) - 1) * stride;
            self.upper.get(&slot).and_then(|l| l.get(start..start + stride)).unwrap_or(&[])
        }
    }

    /// Loads the first word of `slot`'s list (a prefetch stand-in; see `Metric::warm`).
    #[inline]
    pub(crate) fn warm(&self, slot: u32, level: u8) {
        if let Some(count) = self.list(slot, level).first() {
            std::hint::black_box(count.load(Ordering::Relaxed));
        }
    }

    /// Calls `f` on every neighbour of `slot` at `level`.
    #[inline]
    pub(crate) fn for_each_neighbor(&self, slot: u32, level: u8, mut f: impl FnMut(u32)) {
        let list = self.list(slot, level);
        if let Some((count, items)) = list.split_first() {
            let n = (count.load(Ordering::Acquire) as usize).min(items.len());
            for item in &items[..n] {
                f(item.load(Ordering::Relaxed));
            }
        }
    }

    /// Copies `slot`'s neighbours at `level` into `out` (cleared first).
    pub(crate) fn neighbors_into(&self, slot: u32, level: u8, out: &mut Vec<u32>) {
        out.clear();
        self.for_each_neighbor(slot, level, |n| out.push(n));
    }

    /// Replaces `slot`'s list at `level` with `items` (truncated to the list's capacity).
    /// The caller holds `slot`'s lock or has exclusive access.
    pub(crate) fn set_neighbors(&self, slot: u32, level: u8, items: &[u32]) {
        let list = self.list(slot, level);
        if let Some((count, words)) = list.split_first() {
            let n = items.len().min(words.len());
            for (w, v) in words.iter().zip(&items[..n]) {
                w.store(*v, Ordering::Relaxed);
            }
            count.store(n as u32, Ordering::Release);
        }
    }

    /// Maximum degree at `level`.
    pub(crate) fn max_degree(&self, level: u8) -> usize {
        if level == 0 { self.m0 } else { self.m }
    }

    /// Bytes held by the lists.
    pub(crate) fn memory_bytes(&self) -> usize {
        let upper: usize = self.upper.values().map(|l| l.len() * 4 + 16).sum();
        self.links0.capacity() * 4 + upper + self.upper.capacity() * 24 + self.locks.len() * 8
    }
}

/// The HNSW neighbour heuristic (Malkov & Yashunin, algorithm 4, as hnswlib does it): walk the
/// candidates from nearest to farthest and keep one only if it is closer to the base than to
/// every neighbour kept so far. `candidates` are `(distance to base, slot)`; they are sorted here.
pub(crate) fn select_neighbors(
    candidates: &mut Vec<(f32, u32)>,
    m: usize,
    pair_dist: impl Fn(u32, u32) -> f32,
    out: &mut Vec<u32>,
) {
    out.clear();
    candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    candidates.dedup_by_key(|c| c.1);
    if candidates.len() <= m {
        out.extend(candidates.iter().map(|c| c.1));
        return;
    }
    for &(d, c) in candidates.iter() {
        if out.len() >= m {
            break;
        }
        if out.iter().all(|&kept| pair_dist(c, kept) >= d) {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_truncate() {
        let mut g = Graph::new(2);
        g.grow_to(3);
        g.reset_slot(1, 2);
        g.set_neighbors(0, 0, &[1, 2, 1, 2, 1]);
        let mut out = Vec::new();
        g.neighbors_into(0, 0, &mut out);
        assert_eq!(out, [1, 2, 1, 2]);
        g.set_neighbors(1, 2, &[0, 2, 0]);
        g.neighbors_into(1, 2, &mut out);
        assert_eq!(out, [0, 2]);
        g.neighbors_into(1, 1, &mut out);
        assert!(out.is_empty());
        // Level beyond the node's own: empty, not a panic.
        g.neighbors_into(1, 3, &mut out);
        assert!(out.is_empty());
        g.neighbors_into(7, 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn heuristic_prefers_diverse_neighbors() {
        // Points on a line: base at 0; candidates at 1, 1.1 and -1. 1.1 is closer to 1 than to 0.
        let pos = [0.0f32, 1.0, 1.1, -1.0];
        let pair = |a: u32, b: u32| (pos[a as usize] - pos[b as usize]).abs();
        let mut cands = vec![(1.1, 2), (1.0, 1), (1.0, 3)];
        let mut out = Vec::new();
        select_neighbors(&mut cands, 2, pair, &mut out);
        assert_eq!(out, [1, 3]);
    }
}
