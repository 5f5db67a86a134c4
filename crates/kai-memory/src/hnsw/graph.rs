//! Adjacency lists of the HNSW graph and the neighbour-selection heuristic.
//!
//! **Layout.** A list is one header word (a count and a sequence number, see below) followed by
//! the neighbours' slot numbers bit-packed at [`Graph::bits`] bits each: just enough for the
//! number of slots (17 bits for 100k slots), so a layer-0 list with M = 16 takes 18 words (72 B)
//! where plain `u32` entries took 33 (132 B). Layer-0 lists live in one flat array with a fixed
//! stride, like hnswlib's level-0 block; upper-layer lists (about 1/M of the nodes) live in a map
//! from slot to a boxed array of `level` lists. When the slots outgrow the width, every list is
//! repacked one or more bits wider; that needs `&mut self` (never during a search or a parallel
//! link) and, as it happens at powers of two, costs amortized O(1) per insert like a `Vec`'s
//! growth.
//!
//! **Concurrency.** Every word is an `AtomicU32`, so searches read lists without locks while a
//! parallel build writes them (on x86 a relaxed atomic load is a plain load). Packed entries
//! straddle words, so a read racing a write could see half of an entry; the header is therefore
//! a seqlock as well as the count. A writer (holding the node's lock — striped, never two at once,
//! so no deadlock — or with exclusive access) makes the sequence odd, writes, then makes it even
//! with the new count; a reader retries until it saw the same even header before and after
//! reading the entries. A reader thus sees a list as it was before or after a write, never a mix,
//! and every entry it gets is a slot some writer stored.
//!
//! This module must not know about vectors or distances beyond the closures it is given.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::sync::{Mutex, MutexGuard};

/// Number of lock stripes; a power of two.
const STRIPES: usize = 1024;
/// Header word: the count in the low bits (degrees go up to 512), the sequence number above.
const COUNT_BITS: u32 = 10;
const COUNT_MASK: u32 = (1 << COUNT_BITS) - 1;
/// One step of the sequence number; an odd sequence (this bit set) means a write in progress.
const SEQ_ONE: u32 = 1 << COUNT_BITS;
/// Narrowest entry width, so that small indexes are not repacked at every doubling.
const MIN_BITS: u32 = 8;

pub(crate) struct Graph {
    pub(crate) m: usize,
    pub(crate) m0: usize,
    /// Bits per packed entry; every slot number is below `1 << bits`.
    bits: u32,
    links0: Vec<AtomicU32>,
    upper: HashMap<u32, Box<[AtomicU32]>>,
    locks: Box<[Mutex<()>]>,
}

/// Bits needed for slot numbers below `slots`.
fn bits_for(slots: usize) -> u32 {
    let max = u64::try_from(slots.saturating_sub(1)).unwrap_or(u64::MAX);
    (u64::BITS - max.leading_zeros()).clamp(MIN_BITS, u32::BITS)
}

/// Words of a list of `degree` entries of `bits` bits, header included.
fn list_words(degree: usize, bits: u32) -> usize {
    1 + (degree * bits as usize).div_ceil(32)
}

/// Appends `n` entries of `bits` bits unpacked from `words` to `out`.
#[inline]
fn unpack(words: &[AtomicU32], bits: u32, n: usize, out: &mut Vec<u32>) {
    let mask = (1u64 << bits) - 1;
    let (mut acc, mut have) = (0u64, 0u32);
    let mut words = words.iter();
    for _ in 0..n {
        if have < bits {
            let w = words.next().map_or(0, |w| w.load(Ordering::Relaxed));
            acc |= u64::from(w) << have;
            have += 32;
        }
        out.push((acc & mask) as u32);
        acc >>= bits;
        have -= bits;
    }
}

/// Packs `items` at `bits` bits each into `words` (which must hold them).
#[inline]
fn pack(items: &[u32], bits: u32, words: &[AtomicU32]) {
    let mask = (1u64 << bits) - 1;
    let (mut acc, mut have) = (0u64, 0u32);
    let mut words = words.iter();
    for &v in items {
        debug_assert!(u64::from(v) <= mask, "slot {v} does not fit in {bits} bits");
        acc |= (u64::from(v) & mask) << have;
        have += bits;
        if have >= 32 {
            if let Some(w) = words.next() {
                w.store(acc as u32, Ordering::Relaxed);
            }
            acc >>= 32;
            have -= 32;
        }
    }
    if have > 0
        && let Some(w) = words.next()
    {
        w.store(acc as u32, Ordering::Relaxed);
    }
}

impl Graph {
    pub(crate) fn new(m: usize) -> Self {
        Self {
            m,
            m0: 2 * m,
            bits: MIN_BITS,
            links0: Vec::new(),
            upper: HashMap::new(),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Bits per packed neighbour entry.
    #[cfg(test)]
    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    /// Words of one list at `level` (all upper levels have the same).
    fn stride(&self, level: u8) -> usize {
        list_words(self.max_degree(level), self.bits)
    }

    /// Number of slots with a layer-0 list.
    pub(crate) fn slots(&self) -> usize {
        self.links0.len() / self.stride(0)
    }

    /// Number of upper layers `slot` has lists for.
    pub(crate) fn upper_levels(&self, slot: u32) -> u8 {
        let lists = self.upper.get(&slot).map_or(0, |l| l.len() / self.stride(1));
        u8::try_from(lists).unwrap_or(u8::MAX)
    }

    /// The slots that have upper-layer lists, ascending.
    pub(crate) fn upper_slots(&self) -> Vec<u32> {
        let mut slots: Vec<u32> = self.upper.keys().copied().collect();
        slots.sort_unstable();
        slots
    }

    /// Makes room for `slots` slots in all, at the entry width they need, without regrowth.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.widen(bits_for(slots));
        let want = slots * self.stride(0);
        self.links0.reserve(want.saturating_sub(self.links0.len()));
    }

    /// Makes room for `slots` slots (new ones have empty lists).
    pub(crate) fn grow_to(&mut self, slots: usize) {
        self.widen(bits_for(slots));
        let want = slots * self.stride(0);
        if self.links0.len() < want {
            self.links0.resize_with(want, || AtomicU32::new(0));
        }
    }

    /// Repacks every list at `bits` bits per entry if that is wider than now.
    fn widen(&mut self, bits: u32) {
        if bits <= self.bits {
            return;
        }
        let slots = self.slots();
        let mut wider = Self {
            m: self.m,
            m0: self.m0,
            bits,
            links0: Vec::new(),
            upper: HashMap::with_capacity(self.upper.len()),
            locks: std::mem::take(&mut self.locks),
        };
        wider.links0.resize_with(slots * wider.stride(0), || AtomicU32::new(0));
        let mut buf = Vec::with_capacity(self.m0);
        for slot in 0..slots {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            let levels = self.upper_levels(slot);
            wider.set_upper_levels(slot, levels);
            for level in 0..=levels {
                self.neighbors_into(slot, level, &mut buf);
                wider.set_neighbors(slot, level, &buf);
            }
        }
        *self = wider;
    }

    /// Empties every list of `slot` and gives it upper lists for `level` layers.
    pub(crate) fn reset_slot(&mut self, slot: u32, level: u8) {
        let base = slot as usize * self.stride(0);
        if let Some(header) = self.links0.get(base) {
            header.store(0, Ordering::Relaxed);
        }
        self.set_upper_levels(slot, level);
    }

    /// Gives `slot` empty upper lists for `level` layers (none for 0); layer 0 is left as is.
    pub(crate) fn set_upper_levels(&mut self, slot: u32, level: u8) {
        if level == 0 {
            self.upper.remove(&slot);
        } else {
            let words = usize::from(level) * self.stride(1);
            self.upper.insert(slot, (0..words).map(|_| AtomicU32::new(0)).collect());
        }
    }

    pub(crate) fn lock(&self, slot: u32) -> MutexGuard<'_, ()> {
        // A poisoned stripe only means another writer panicked; the lists are still valid slots.
        self.locks[slot as usize & (STRIPES - 1)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The words of `slot`'s list at `level` (header first), or an empty slice if it has none.
    #[inline]
    fn list(&self, slot: u32, level: u8) -> &[AtomicU32] {
        let stride = self.stride(level);
        if level == 0 {
            let base = slot as usize * stride;
            self.links0.get(base..base + stride).unwrap_or(&[])
        } else {
            let start = (usize::from(level) - 1) * stride;
            self.upper.get(&slot).and_then(|l| l.get(start..start + stride)).unwrap_or(&[])
        }
    }

    /// Loads the header of `slot`'s list (a prefetch stand-in; see `Metric::warm`).
    #[inline]
    pub(crate) fn warm(&self, slot: u32, level: u8) {
        if let Some(header) = self.list(slot, level).first() {
            std::hint::black_box(header.load(Ordering::Relaxed));
        }
    }

    /// Copies `slot`'s neighbours at `level` into `out` (cleared first): a consistent snapshot
    /// even while another thread rewrites the list.
    #[inline]
    pub(crate) fn neighbors_into(&self, slot: u32, level: u8, out: &mut Vec<u32>) {
        out.clear();
        let Some((header, words)) = self.list(slot, level).split_first() else { return };
        let cap = self.max_degree(level);
        let mut spins = 0u32;
        loop {
            let h = header.load(Ordering::Acquire);
            if h & SEQ_ONE == 0 {
                unpack(words, self.bits, ((h & COUNT_MASK) as usize).min(cap), out);
                fence(Ordering::Acquire);
                if header.load(Ordering::Relaxed) == h {
                    return;
                }
                out.clear();
            }
            // A writer is between its two header stores (a few dozen instructions).
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Replaces `slot`'s list at `level` with `items` (truncated to the list's capacity; every
    /// item must be a slot below [`Graph::slots`]). The caller holds `slot`'s lock or has
    /// exclusive access.
    pub(crate) fn set_neighbors(&self, slot: u32, level: u8, items: &[u32]) {
        let Some((header, words)) = self.list(slot, level).split_first() else { return };
        let n = items.len().min(self.max_degree(level));
        let h = header.load(Ordering::Relaxed);
        let seq = h & !COUNT_MASK;
        header.store(seq.wrapping_add(SEQ_ONE) | (h & COUNT_MASK), Ordering::Relaxed);
        fence(Ordering::Release);
        pack(&items[..n], self.bits, words);
        header.store(seq.wrapping_add(2 * SEQ_ONE) | n as u32, Ordering::Release);
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
    fn packing_round_trips_at_every_width() {
        for bits in MIN_BITS..=32 {
            let max = u32::try_from((1u64 << bits) - 1).unwrap_or(u32::MAX);
            let items: Vec<u32> =
                (0..37u32).map(|i| if i % 3 == 0 { max - i } else { i * 7919 % max }).collect();
            let words: Vec<AtomicU32> =
                (0..list_words(items.len(), bits)).map(|_| AtomicU32::new(0)).collect();
            pack(&items, bits, &words[1..]);
            let mut out = Vec::new();
            unpack(&words[1..], bits, items.len(), &mut out);
            assert_eq!(out, items, "{bits} bits");
        }
        assert_eq!((bits_for(0), bits_for(256), bits_for(257)), (8, 8, 9));
        assert_eq!((bits_for(100_000), bits_for(1 << 17), bits_for((1 << 17) + 1)), (17, 17, 18));
        // 100k slots, M = 16: 18 words per layer-0 list instead of 33.
        assert_eq!(list_words(32, bits_for(100_000)), 18);
    }

    #[test]
    fn growing_past_a_power_of_two_repacks_every_list() {
        let mut g = Graph::new(4);
        g.grow_to(200);
        g.reset_slot(5, 2);
        let lists = |g: &Graph| {
            let mut all = Vec::new();
            let mut out = Vec::new();
            for s in 0..g.slots() as u32 {
                for level in 0..=g.upper_levels(s) {
                    g.neighbors_into(s, level, &mut out);
                    all.push((s, level, out.clone()));
                }
            }
            all
        };
        for s in 0..200u32 {
            let nb: Vec<u32> = (1..=8).map(|k| (s * 31 + k * 17) % 200).collect();
            g.set_neighbors(s, 0, &nb);
        }
        g.set_neighbors(5, 1, &[199, 0, 7]);
        g.set_neighbors(5, 2, &[3]);
        let before = lists(&g);
        assert_eq!(g.bits(), 8);
        g.grow_to(70_000);
        assert_eq!(g.bits(), 17);
        assert_eq!(g.slots(), 70_000);
        let after = lists(&g);
        assert_eq!(&after[..before.len()], &before[..]);
        assert!(after[before.len()..].iter().all(|(_, _, l)| l.is_empty()));
        g.set_neighbors(69_999, 0, &[69_998, 0, 65_536]);
        let mut out = Vec::new();
        g.neighbors_into(69_999, 0, &mut out);
        assert_eq!(out, [69_998, 0, 65_536]);
        // Reserving ahead widens too, so a batch does not repack while it grows.
        g.reserve(1 << 20);
        assert_eq!(g.bits(), 20);
        assert_eq!(&lists(&g)[..before.len()], &before[..]);
    }

    /// Readers racing a writer see one whole version of a list, never a mix of two.
    #[test]
    fn readers_never_see_a_torn_list() {
        let mut g = Graph::new(16);
        g.grow_to(1 << 20);
        let a: Vec<u32> = (0..32).map(|i| 0x000f_ffff - i).collect();
        let b: Vec<u32> = (0..20).map(|i| 0x0005_5555 + i).collect();
        g.set_neighbors(3, 0, &a);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..200_000 {
                    let _guard = g.lock(3);
                    g.set_neighbors(3, 0, if i % 2 == 0 { &b } else { &a });
                }
                stop.store(true, Ordering::Relaxed);
            });
            let mut out = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) || reads == 0 {
                g.neighbors_into(3, 0, &mut out);
                assert!(out == a || out == b, "torn read: {out:?}");
                reads += 1;
            }
        });
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
