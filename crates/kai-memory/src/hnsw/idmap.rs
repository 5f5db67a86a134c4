//! The map from callers' ids to live slots: an open-addressing table (linear probing,
//! backward-shift deletion) of bare `u32` slot numbers whose keys are read from the index's
//! `ids` array. An entry takes 4 bytes, where a `HashMap<u64, u32>` takes 16 plus a control
//! byte; at most 80 % full, that is about 5 bytes per vector instead of about 22.
//!
//! The table does not own the ids: every call is given the `ids` slice, and the caller keeps
//! `ids[slot]` equal to the key of each slot for as long as the slot is in the table. Ids are
//! hashed with std's randomly keyed SipHash, as `HashMap` does, so that chosen ids cannot force
//! long probe runs.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// An empty table entry (never a slot: slots are below `u32::MAX`).
const EMPTY: u32 = u32::MAX;

pub(crate) struct IdMap {
    table: Vec<u32>,
    len: usize,
    hasher: RandomState,
}

impl Default for IdMap {
    fn default() -> Self {
        Self { table: Vec::new(), len: 0, hasher: RandomState::new() }
    }
}

/// Table size for `n` entries at most 80 % full.
fn capacity_for(n: usize) -> usize {
    (n + n / 4 + 1).max(8)
}

impl IdMap {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the probe for `id` starts in a table of `cap` entries (`cap > 0`).
    #[inline]
    fn home(&self, id: u64, cap: usize) -> usize {
        ((u128::from(self.hasher.hash_one(id)) * cap as u128) >> 64) as usize
    }

    /// The table index holding `id`'s slot.
    fn find(&self, id: u64, ids: &[u64]) -> Option<usize> {
        let cap = self.table.len();
        if cap == 0 {
            return None;
        }
        let mut i = self.home(id, cap);
        loop {
            let slot = self.table[i];
            if slot == EMPTY {
                return None;
            }
            if ids.get(slot as usize) == Some(&id) {
                return Some(i);
            }
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
    }

    /// The slot of `id`, if it is live.
    pub(crate) fn get(&self, id: u64, ids: &[u64]) -> Option<u32> {
        self.find(id, ids).map(|i| self.table[i])
    }

    /// Maps `ids[slot]` to `slot`; returns the slot it replaced, if the id was there already.
    pub(crate) fn insert(&mut self, slot: u32, ids: &[u64]) -> Option<u32> {
        let id = ids[slot as usize];
        if let Some(i) = self.find(id, ids) {
            return Some(std::mem::replace(&mut self.table[i], slot));
        }
        self.reserve(1, ids);
        self.place(slot, id);
        self.len += 1;
        None
    }

    /// Puts `slot` (whose id is `id`, not in the table) in the first free entry of its probe.
    fn place(&mut self, slot: u32, id: u64) {
        let cap = self.table.len();
        let mut i = self.home(id, cap);
        while self.table[i] != EMPTY {
            i = if i + 1 == cap { 0 } else { i + 1 };
        }
        self.table[i] = slot;
    }

    /// Removes `id`; returns its slot if it was there.
    pub(crate) fn remove(&mut self, id: u64, ids: &[u64]) -> Option<u32> {
        let found = self.find(id, ids)?;
        let slot = self.table[found];
        let cap = self.table.len();
        let next = |i: usize| if i + 1 == cap { 0 } else { i + 1 };
        // Backward shift: pull later entries of the run into the hole while their probe
        // starts at or before it, so that no probe meets an empty entry before its key.
        let mut hole = found;
        let mut j = next(found);
        loop {
            let s = self.table[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(ids[s as usize], cap);
            if (j + cap - home) % cap >= (j + cap - hole) % cap {
                self.table[hole] = s;
                hole = j;
            }
            j = next(j);
        }
        self.table[hole] = EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// Makes room for `additional` more entries without regrowth (rehashes if needed).
    pub(crate) fn reserve(&mut self, additional: usize, ids: &[u64]) {
        let needed = self.len + additional;
        if needed * 5 <= self.table.len() * 4 {
            return;
        }
        // Growing: half as much room again, so that single inserts rehash rarely.
        let cap = capacity_for(needed.max(self.len + self.len / 2));
        let old = std::mem::replace(&mut self.table, vec![EMPTY; cap]);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            self.place(slot, ids[slot as usize]);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.len = 0;
    }

    /// Every live slot, in table order.
    pub(crate) fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied().filter(|&s| s != EMPTY)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.table.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random inserts, replacements and removals agree with a `HashMap` (small ids, so that
    /// probe runs collide and wrap around a lot).
    #[test]
    fn agrees_with_a_hash_map() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut ids: Vec<u64> = Vec::new();
        let mut map = IdMap::default();
        let mut want: HashMap<u64, u32> = HashMap::new();
        for step in 0..20_000 {
            let id = rng.gen_range(0..600u64);
            if rng.gen_bool(0.55) {
                let slot = ids.len() as u32;
                ids.push(id);
                assert_eq!(map.insert(slot, &ids), want.insert(id, slot), "step {step}");
            } else {
                assert_eq!(map.remove(id, &ids), want.remove(&id), "step {step}");
            }
            assert_eq!(map.len(), want.len());
            if step % 997 == 0 {
                for probe in 0..600u64 {
                    assert_eq!(map.get(probe, &ids), want.get(&probe).copied());
                }
                let mut slots: Vec<u32> = map.slots().collect();
                let mut expected: Vec<u32> = want.values().copied().collect();
                slots.sort_unstable();
                expected.sort_unstable();
                assert_eq!(slots, expected);
            }
        }
        assert!(map.table.len() * 4 >= map.len() * 5, "never more than 80 % full");
    }

    #[test]
    fn reserve_sizes_the_table_once() {
        let ids: Vec<u64> = (0..100_000u64).map(|i| i * 7 + 3).collect();
        let mut map = IdMap::default();
        map.reserve(ids.len(), &ids);
        let cap = map.table.len();
        for slot in 0..ids.len() as u32 {
            assert_eq!(map.insert(slot, &ids), None);
        }
        assert_eq!(map.table.len(), cap);
        assert!(map.memory_bytes() <= 100_000 * 5 + 64);
        assert_eq!(map.get(7 * 500 + 3, &ids), Some(500));
        assert_eq!(map.get(4, &ids), None);
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.get(3, &ids), None);
    }
}
