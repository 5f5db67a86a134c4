//! Inserting into and repairing the HNSW graph.
//!
//! Inserts happen in two phases. `stage` (exclusive) gives the record a slot (a recycled one if
//! any), stores its vector and draws its level. `link_staged` then connects the staged slots:
//! the one with the highest level goes first, alone, so the entry point never changes while the
//! rest are linked in parallel on rayon (vectors are read-only by then; adjacency words are
//! atomics and each list is rewritten under its node's lock).
//!
//! `compact` turns tombstones into free slots: every live list that points to a tombstone is
//! rebuilt from its live neighbours plus the tombstones' live neighbours, topped up by a graph
//! search when that leaves too few; the entry point moves to a live node of the highest level.

use rand::Rng;
use rayon::prelude::*;

use super::graph::select_neighbors;
use super::search::{Metric, Near, Scratch, descend, search_layer};
use super::vectors::SlotMetric;
use super::{FREE, HnswIndex, LIVE, TOMBSTONE};
use crate::error::{Error, Result};

/// Below this many staged nodes, linking stays on the calling thread.
const PARALLEL_MIN: usize = 256;
/// Highest level drawn (the probability of reaching it is negligible).
const MAX_LEVEL: u8 = 30;

impl HnswIndex {
    /// Gives `id` a slot holding the unit vector `v`; an older vector of `id` becomes a tombstone.
    pub(super) fn stage(&mut self, id: u64, v: &[f32]) -> Result<u32> {
        if let Some(old) = self.slot_of.remove(id, &self.ids) {
            self.state[old as usize] = TOMBSTONE;
            self.tombstones += 1;
        }
        let level = self.random_level();
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.ids.len()).ok().filter(|s| *s < u32::MAX);
                let slot = slot.ok_or(Error::Capacity(self.ids.len()))?;
                self.ids.push(id);
                self.levels.push(level);
                self.state.push(LIVE);
                self.graph.grow_to(self.ids.len());
                slot
            }
        };
        let s = slot as usize;
        self.ids[s] = id;
        self.levels[s] = level;
        self.state[s] = LIVE;
        self.graph.reset_slot(slot, level);
        self.vectors.put(slot, v);
        let replaced = self.slot_of.insert(slot, &self.ids);
        debug_assert!(replaced.is_none(), "{id} was removed above");
        Ok(slot)
    }

    fn random_level(&mut self) -> u8 {
        let mult = 1.0 / (self.params.m as f64).ln();
        let u: f64 = self.rng.gen_range(f64::MIN_POSITIVE..1.0);
        let level = (-u.ln() * mult).floor();
        if level >= f64::from(MAX_LEVEL) { MAX_LEVEL } else { level as u8 }
    }

    /// Connects staged slots to the graph (see the module documentation).
    pub(super) fn link_staged(&mut self, mut staged: Vec<u32>) {
        staged.retain(|s| self.state[*s as usize] == LIVE);
        let batch = staged.len();
        let Some(pos) = (0..staged.len()).max_by_key(|&i| self.levels[staged[i] as usize]) else {
            return;
        };
        let first = staged.swap_remove(pos);
        let first_level = self.levels[first as usize];
        match self.entry {
            None => {
                self.entry = Some(first);
                self.max_level = first_level;
            }
            Some(entry) => {
                self.link(first, entry, self.max_level);
                if first_level > self.max_level {
                    self.entry = Some(first);
                    self.max_level = first_level;
                }
            }
        }
        let (entry, top) = (self.entry.unwrap_or(first), self.max_level);
        if staged.len() >= PARALLEL_MIN {
            staged.par_iter().for_each(|&s| self.link(s, entry, top));
        } else {
            staged.iter().for_each(|&s| self.link(s, entry, top));
        }
        if self.tombstones >= 64.max(self.len() / 10) {
            self.compact();
        } else if batch >= PARALLEL_MIN || batch * 16 >= self.len() {
            // Large batches, or batches that are a good part of the index (a rebuild), get the
            // reachability pass; a trickle of single inserts into a big index does not.
            self.connect_unreachable();
        }
    }

    /// Links `slot` into every layer up to its level, starting the descent at `entry` on `top`.
    fn link(&self, slot: u32, entry: u32, top: u8) {
        let level = self.levels[slot as usize];
        let dist = SlotMetric { vectors: &self.vectors, slot };
        let accept = |n: u32| n != slot && self.state[n as usize] == LIVE;
        let mut scratch = self.pool.take();
        let mut cur = Near(dist.dist(entry), entry);
        if level < top {
            cur = descend(&self.graph, cur, top, level, &dist, &mut scratch.buf);
        }
        let mut chosen = Vec::with_capacity(self.graph.m0);
        for lev in (0..=level.min(top)).rev() {
            search_layer(
                &self.graph,
                lev,
                cur,
                self.params.ef_construction,
                &dist,
                &accept,
                &mut scratch,
            );
            let mut pairs: Vec<(f32, u32)> = scratch.results.drain().map(|n| (n.0, n.1)).collect();
            if let Some(best) = pairs.iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
                cur = Near(best.0, best.1);
            }
            select_neighbors(
                &mut pairs,
                self.params.m,
                |a, b| self.vectors.pair_dist(a, b),
                &mut chosen,
            );
            {
                let _guard = self.graph.lock(slot);
                self.graph.set_neighbors(slot, lev, &chosen);
            }
            for &n in &chosen {
                self.add_link(n, slot, lev, &mut scratch);
            }
        }
        self.pool.give(scratch);
    }

    /// Adds `new` to `node`'s list at `level`, pruning with the heuristic when it is full.
    fn add_link(&self, node: u32, new: u32, level: u8, scratch: &mut Scratch) {
        let _guard = self.graph.lock(node);
        self.graph.neighbors_into(node, level, &mut scratch.buf);
        if scratch.buf.contains(&new) {
            return;
        }
        let max = self.graph.max_degree(level);
        scratch.buf.push(new);
        if scratch.buf.len() <= max {
            self.graph.set_neighbors(node, level, &scratch.buf);
            return;
        }
        scratch.pairs.clear();
        scratch.pairs.extend(scratch.buf.iter().map(|&n| (self.vectors.pair_dist(node, n), n)));
        let mut kept = Vec::with_capacity(max);
        select_neighbors(&mut scratch.pairs, max, |a, b| self.vectors.pair_dist(a, b), &mut kept);
        self.graph.set_neighbors(node, level, &kept);
    }

    /// Repairs every list that points to a tombstone and recycles tombstoned slots now.
    pub fn compact(&mut self) {
        if self.tombstones == 0 {
            return;
        }
        // A live node of the highest level becomes the entry point if the old one is gone.
        if self.entry.is_some_and(|e| self.state[e as usize] != LIVE) {
            let best = (0..self.ids.len())
                .filter(|&s| self.state[s] == LIVE)
                .max_by_key(|&s| self.levels[s]);
            self.entry = best.and_then(|s| u32::try_from(s).ok());
            self.max_level = best.map_or(0, |s| self.levels[s]);
        }
        let live: Vec<u32> = (0..self.ids.len())
            .filter(|&s| self.state[s] == LIVE)
            .filter_map(|s| u32::try_from(s).ok())
            .collect();
        if let Some(entry) = self.entry {
            live.par_iter().for_each(|&s| self.repair(s, entry));
        }
        for s in 0..self.ids.len() {
            if self.state[s] == TOMBSTONE {
                self.state[s] = FREE;
                self.levels[s] = 0;
                if let Ok(slot) = u32::try_from(s) {
                    self.graph.reset_slot(slot, 0);
                    self.free.push(slot);
                }
            }
        }
        self.tombstones = 0;
        self.connect_unreachable();
    }

    /// Live slots that a walk over layer 0 from the entry point does not reach.
    #[cfg(test)]
    pub(super) fn unreachable(&self) -> Vec<u32> {
        let Some(entry) = self.entry else { return Vec::new() };
        let mut seen = vec![false; self.ids.len()];
        self.mark_reachable(entry, &mut seen);
        (0..self.ids.len())
            .filter(|&s| !seen[s] && self.state[s] == LIVE)
            .filter_map(|s| u32::try_from(s).ok())
            .collect()
    }

    fn mark_reachable(&self, from: u32, seen: &mut [bool]) {
        let mut stack = vec![from];
        if let Some(s) = seen.get_mut(from as usize) {
            *s = true;
        }
        let mut buf = Vec::new();
        while let Some(n) = stack.pop() {
            self.graph.neighbors_into(n, 0, &mut buf);
            for &m in &buf {
                if let Some(s) = seen.get_mut(m as usize).filter(|s| !**s) {
                    *s = true;
                    stack.push(m);
                }
            }
        }
    }

    /// The heuristic can prune every edge into a small cluster, leaving it unreachable. This
    /// links each such cluster from its nearest reachable node (an O(n·M) walk, run after batch
    /// inserts and compaction, not after single inserts).
    fn connect_unreachable(&mut self) {
        let Some(entry) = self.entry else { return };
        let mut seen = vec![false; self.ids.len()];
        self.mark_reachable(entry, &mut seen);
        let mut scratch = self.pool.take();
        for orphan in 0..self.ids.len() {
            if seen[orphan] || self.state[orphan] != LIVE {
                continue;
            }
            let orphan = orphan as u32;
            let dist = SlotMetric { vectors: &self.vectors, slot: orphan };
            let accept = |n: u32| n != orphan && self.state[n as usize] == LIVE;
            let start = descend(
                &self.graph,
                Near(dist.dist(entry), entry),
                self.max_level,
                0,
                &dist,
                &mut scratch.buf,
            );
            search_layer(
                &self.graph,
                0,
                start,
                self.params.ef_construction,
                &dist,
                &accept,
                &mut scratch,
            );
            let Some(Near(_, near)) = scratch.results.iter().min().copied() else { continue };
            // Append, or replace the farthest neighbour: this edge must survive.
            self.graph.neighbors_into(near, 0, &mut scratch.buf);
            if scratch.buf.len() < self.graph.m0 {
                scratch.buf.push(orphan);
            } else if let Some(far) = (0..scratch.buf.len()).max_by(|&a, &b| {
                self.vectors
                    .pair_dist(near, scratch.buf[a])
                    .total_cmp(&self.vectors.pair_dist(near, scratch.buf[b]))
            }) {
                scratch.buf[far] = orphan;
            }
            self.graph.set_neighbors(near, 0, &scratch.buf);
            self.mark_reachable(orphan, &mut seen);
        }
        self.pool.give(scratch);
    }

    /// Rebuilds `slot`'s lists that point to tombstones.
    fn repair(&self, slot: u32, entry: u32) {
        let dead = |n: u32| self.state.get(n as usize) != Some(&LIVE);
        let mut scratch = self.pool.take();
        let mut own = Vec::new();
        let mut hop = Vec::new();
        for lev in 0..=self.levels[slot as usize].min(self.max_level) {
            self.graph.neighbors_into(slot, lev, &mut own);
            if !own.iter().any(|&n| dead(n)) {
                continue;
            }
            let mut cands: Vec<u32> = own.iter().copied().filter(|&n| !dead(n)).collect();
            for &d in own.iter().filter(|&&n| dead(n)) {
                self.graph.neighbors_into(d, lev, &mut hop);
                cands.extend(hop.iter().copied().filter(|&n| n != slot && !dead(n)));
            }
            let dist = SlotMetric { vectors: &self.vectors, slot };
            let max = self.graph.max_degree(lev);
            let mut pairs: Vec<(f32, u32)> = cands.iter().map(|&n| (dist.dist(n), n)).collect();
            if pairs.len() < self.params.m / 2 + 1 {
                let accept = |n: u32| n != slot && !dead(n);
                let start = descend(
                    &self.graph,
                    Near(dist.dist(entry), entry),
                    self.max_level,
                    lev,
                    &dist,
                    &mut scratch.buf,
                );
                search_layer(
                    &self.graph,
                    lev,
                    start,
                    self.params.ef_construction,
                    &dist,
                    &accept,
                    &mut scratch,
                );
                pairs.extend(scratch.results.drain().map(|n| (n.0, n.1)));
            }
            let mut kept = Vec::with_capacity(max);
            select_neighbors(&mut pairs, max, |a, b| self.vectors.pair_dist(a, b), &mut kept);
            let _guard = self.graph.lock(slot);
            self.graph.set_neighbors(slot, lev, &kept);
        }
        self.pool.give(scratch);
    }
}
