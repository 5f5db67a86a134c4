//! Tests of the HNSW index: exactness on small data, recall on clustered data against brute
//! force, deletes, filters (property test), upserts, persistence round trips and corruption.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::exact::{ground_truth, mean_recall};
use crate::synthetic::Clustered;

fn params(storage: Storage) -> HnswParams {
    HnswParams { storage, ..HnswParams::default() }
}

fn build(data: &[f32], dim: usize, storage: Storage) -> HnswIndex {
    let records: Vec<(u64, &[f32])> =
        data.chunks_exact(dim).enumerate().map(|(i, v)| (i as u64 * 3 + 7, v)).collect();
    let mut index = HnswIndex::new(dim, params(storage)).unwrap();
    index.insert_batch(&records).unwrap();
    index
}

fn ids_of(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

/// Mean recall@10 of `index` (built by [`build`]) against brute force.
fn recall_at_10(index: &HnswIndex, data: &[f32], queries: &[f32], dim: usize, ef: usize) -> f64 {
    let truth: Vec<Vec<u64>> = ground_truth(data, queries, dim, 10)
        .into_iter()
        .map(|t| t.into_iter().map(|r| r as u64 * 3 + 7).collect())
        .collect();
    let got: Vec<Vec<u64>> = queries
        .chunks_exact(dim)
        .map(|q| ids_of(&index.search(q, &SearchParams::new(10, ef), None).unwrap()))
        .collect();
    mean_recall(&got, &truth)
}

const ALL: [Storage; 3] = [Storage::F32, Storage::Int8, Storage::Int8FileRerank];

#[test]
fn small_index_with_wide_beam_is_exact() {
    let g = Clustered::new(8, 5, 0.8, 1);
    let data = g.sample(300, 2);
    for storage in ALL {
        let index = build(&data, 8, storage);
        assert_eq!(index.len(), 300);
        for q in g.sample(20, 3).chunks_exact(8) {
            let got = index.search(q, &SearchParams::new(5, 300), None).unwrap();
            let want: Vec<u64> = crate::exact::top_k(&data, 8, q, 5, |_| true)
                .iter()
                .map(|(r, _)| *r as u64 * 3 + 7)
                .collect();
            assert_eq!(ids_of(&got), want, "{storage:?}");
            assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        }
    }
}

/// The recall test: 20k × 384 unit vectors in clusters of about 20 (noise 1.5, the
/// benchmark's shape), 200 queries, recall@10 ≥ 0.95 at ef = 64 for f32 and int8 storage.
/// Debug builds (CI) run it on 4k vectors to stay fast; `--release` runs the full size.
#[test]
fn recall_at_10_on_clustered_data() {
    let n = if cfg!(debug_assertions) { 4_000 } else { 20_000 };
    let dim = 384;
    let g = Clustered::new(dim, n / 20, 1.5, 11);
    let data = g.sample(n, 12);
    let queries = g.sample(200, 13);
    for storage in [Storage::F32, Storage::Int8] {
        let index = build(&data, dim, storage);
        let recall = recall_at_10(&index, &data, &queries, dim, 64);
        eprintln!("{storage:?}: n={n} recall@10 at ef=64: {recall:.4}");
        assert!(recall >= 0.95, "{storage:?}: recall {recall}");
    }
}

#[test]
fn deleted_ids_are_never_returned_and_slots_are_recycled() {
    let dim = 16;
    let g = Clustered::new(dim, 10, 0.7, 21);
    let data = g.sample(2_000, 22);
    let queries = g.sample(50, 23);
    for storage in ALL {
        let mut index = build(&data, dim, storage);
        let deleted: HashSet<u64> =
            (0..2_000u64).filter(|i| i.is_multiple_of(2)).map(|i| i * 3 + 7).collect();
        for (i, id) in deleted.iter().enumerate() {
            assert!(index.delete(*id));
            if i % 97 == 0 {
                // Mid-way searches (tombstones and repaired lists mixed) never see deleted ids.
                for q in queries.chunks_exact(dim).take(5) {
                    let got = index.search(q, &SearchParams::new(10, 40), None).unwrap();
                    assert!(got.iter().all(|h| index.contains(h.id)));
                }
            }
        }
        assert!(!index.delete(7), "7 was deleted already");
        assert_eq!(index.len(), 1_000);
        // The survivors are still found well.
        let keep = |row: usize| !row.is_multiple_of(2);
        let mut total = 0.0;
        for q in queries.chunks_exact(dim) {
            let got = ids_of(&index.search(q, &SearchParams::new(10, 64), None).unwrap());
            assert!(got.iter().all(|id| !deleted.contains(id)), "{storage:?}");
            let want: Vec<u64> = crate::exact::top_k(&data, dim, q, 10, keep)
                .iter()
                .map(|(r, _)| *r as u64 * 3 + 7)
                .collect();
            total += crate::exact::recall(&got, &want);
        }
        let recall = total / 50.0;
        assert!(recall >= 0.9, "{storage:?}: recall after deletes {recall}");
        // Tombstones were compacted into free slots, which new inserts reuse.
        index.compact();
        let stats = index.stats();
        assert_eq!((stats.live, stats.tombstones, stats.free_slots), (1_000, 0, 1_000));
        let fresh = g.sample(10, 24);
        for (i, v) in fresh.chunks_exact(dim).enumerate() {
            index.insert(1_000_000 + i as u64, v).unwrap();
        }
        assert_eq!(index.stats().free_slots, 990);
        let got = index.search(&fresh[..dim], &SearchParams::new(1, 64), None).unwrap();
        assert_eq!(ids_of(&got), [1_000_000]);
    }
}

#[test]
fn exact_search_among_a_few_ids() {
    let g = Clustered::new(8, 3, 0.8, 51);
    let data = g.sample(400, 52);
    for storage in ALL {
        let mut index = build(&data, 8, storage);
        let allowed = [7u64, 10, 13, 16, 99_999];
        index.delete(10);
        let q = &data[..8];
        let got = index.search_exact(q, 10, allowed.iter().copied().chain([7])).unwrap();
        assert_eq!(ids_of(&got), [7, 13, 16], "{storage:?}: 7 is the query itself; 10 deleted");
        assert!((got[0].score - 1.0).abs() < 1e-5);
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(index.search_exact(q, 1, allowed).unwrap().len(), 1);
    }
}

#[test]
fn delete_everything_then_insert_again() {
    let mut index = HnswIndex::new(4, HnswParams::default()).unwrap();
    for i in 0..100u64 {
        index.insert(i, &[1.0, i as f32, 0.5, -1.0]).unwrap();
    }
    for i in 0..100u64 {
        assert!(index.delete(i));
    }
    index.compact();
    assert!(index.is_empty());
    assert!(
        index.search(&[1.0, 0.0, 0.0, 0.0], &SearchParams::new(3, 10), None).unwrap().is_empty()
    );
    index.insert(5, &[0.0, 1.0, 0.0, 0.0]).unwrap();
    let got = index.search(&[0.0, 1.0, 0.0, 0.0], &SearchParams::new(3, 10), None).unwrap();
    assert_eq!(ids_of(&got), [5]);
    assert!((got[0].score - 1.0).abs() < 1e-5);
}

#[test]
fn upsert_replaces_and_bad_input_is_refused() {
    let mut index = HnswIndex::new(3, HnswParams::default()).unwrap();
    assert!(index.search(&[1.0, 0.0, 0.0], &SearchParams::new(1, 10), None).unwrap().is_empty());
    index.insert(1, &[1.0, 0.0, 0.0]).unwrap();
    index.insert(2, &[0.0, 1.0, 0.0]).unwrap();
    index.insert(1, &[0.0, 0.0, 2.0]).unwrap();
    assert_eq!(index.len(), 2);
    let got = index.search(&[0.0, 0.0, 1.0], &SearchParams::new(2, 10), None).unwrap();
    assert_eq!(ids_of(&got), [1, 2]);
    assert!((got[0].score - 1.0).abs() < 1e-6);
    assert_eq!(index.insert(3, &[1.0]).map_err(|e| e.code()), Err("dimension_mismatch"));
    assert_eq!(index.insert(3, &[f32::NAN, 0.0, 0.0]).map_err(|e| e.code()), Err("invalid_vector"));
    assert_eq!(index.insert(3, &[0.0; 3]).map_err(|e| e.code()), Err("invalid_vector"));
    assert!(index.search(&[1.0, 2.0], &SearchParams::new(1, 10), None).is_err());
    // A batch with one bad record inserts nothing.
    let batch = vec![(10u64, vec![1.0, 1.0, 1.0]), (11, vec![f32::INFINITY, 0.0, 0.0])];
    assert!(index.insert_batch(&batch).is_err());
    assert!(!index.contains(10));
    assert!(index.search(&[1.0, 0.0, 0.0], &SearchParams::new(0, 10), None).unwrap().is_empty());
    assert!(HnswIndex::new(0, HnswParams::default()).is_err());
    assert!(HnswIndex::new(3, HnswParams { m: 1, ..HnswParams::default() }).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Namespace isolation: whatever the ids and the filter, results are a subset of the
    /// allowed live ids, and as many as possible are returned.
    #[test]
    fn filtered_results_stay_inside_the_allowed_set(
        ids in prop::collection::hash_set(any::<u64>(), 1..300),
        allowed_ratio in 0.0f64..1.0,
        k in 1usize..20,
        seed in any::<u64>(),
        storage_tag in 0u8..3,
    ) {
        let storage = Storage::from_tag(storage_tag).unwrap_or_default();
        let dim = 8;
        let g = Clustered::new(dim, 4, 0.8, seed);
        let ids: Vec<u64> = ids.into_iter().collect();
        let data = g.sample(ids.len(), seed ^ 1);
        let records: Vec<(u64, &[f32])> = ids.iter().copied().zip(data.chunks_exact(dim)).collect();
        let index = HnswIndex::rebuild_from(dim, params(storage), records).unwrap();
        let cut = (ids.len() as f64 * allowed_ratio) as usize;
        let allowed: HashSet<u64> = ids[..cut].iter().copied().collect();
        let filter = |id: u64| allowed.contains(&id);
        for q in g.sample(5, seed ^ 2).chunks_exact(dim) {
            let got = index.search(q, &SearchParams::new(k, 16), Some(&filter)).unwrap();
            prop_assert!(got.iter().all(|h| allowed.contains(&h.id)));
            prop_assert_eq!(got.len(), k.min(allowed.len()));
        }
    }
}

fn corrupt_copies(good: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let step = (good.len() / 97).max(1);
    for i in (0..good.len()).step_by(step) {
        let mut bad = good.to_vec();
        bad[i] ^= 0x5a;
        out.push(bad);
    }
    for cut in [0, 5, 12, 40, good.len() / 2, good.len() - 33, good.len() - 1] {
        out.push(good[..cut].to_vec());
    }
    out
}

#[test]
fn persistence_round_trip_and_corruption() {
    let dim = 24;
    let g = Clustered::new(dim, 8, 0.8, 31);
    let data = g.sample(1_500, 32);
    let queries = g.sample(30, 33);
    let dir = tempfile::tempdir().unwrap();
    for storage in ALL {
        let path = dir.path().join(format!("{storage:?}.hnsw"));
        assert_eq!(HnswIndex::load(&path).err().map(|e| e.code()), Some("index_file_missing"));
        let mut index = build(&data, dim, storage);
        for id in [7u64, 10, 13] {
            index.delete(id);
        }
        let before: Vec<Vec<Hit>> = queries
            .chunks_exact(dim)
            .map(|q| index.search(q, &SearchParams::new(10, 50), None).unwrap())
            .collect();
        index.save(&path).unwrap();
        let loaded = HnswIndex::load(&path).unwrap();
        assert_eq!(loaded.stats().tombstones, 3);
        for (q, want) in queries.chunks_exact(dim).zip(&before) {
            assert_eq!(&loaded.search(q, &SearchParams::new(10, 50), None).unwrap(), want);
            assert_eq!(
                &index.search(q, &SearchParams::new(10, 50), None).unwrap(),
                want,
                "after save"
            );
        }
        let good = std::fs::read(&path).unwrap();
        for bad in corrupt_copies(&good) {
            std::fs::write(&path, &bad).unwrap();
            let err = HnswIndex::load(&path).err().unwrap();
            assert!(err.needs_rebuild(), "{storage:?}: {err}");
        }
        // The caller's recovery path: rebuild from the source records.
        let records =
            data.chunks_exact(dim).enumerate().map(|(i, v)| (i as u64 * 3 + 7, v.to_vec()));
        let rebuilt = HnswIndex::rebuild_from(dim, params(storage), records).unwrap();
        assert_eq!(rebuilt.len(), 1_500);
    }
}

#[test]
fn file_rerank_keeps_new_vectors_until_the_next_save() {
    let dim = 16;
    let g = Clustered::new(dim, 4, 0.8, 41);
    let data = g.sample(500, 42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    let mut index = build(&data, dim, Storage::Int8FileRerank);
    let full = index.memory_bytes();
    index.save(&path).unwrap();
    assert!(index.memory_bytes() < full - 500 * dim * 4 + 1, "originals released after save");
    let extra = g.sample(20, 43);
    for (i, v) in extra.chunks_exact(dim).enumerate() {
        index.insert(9_000 + i as u64, v).unwrap();
    }
    let hit = index.search(&extra[..dim], &SearchParams::new(1, 32), None).unwrap();
    assert_eq!(ids_of(&hit), [9_000]);
    index.save(&path).unwrap();
    let loaded = HnswIndex::load(&path).unwrap();
    assert_eq!(loaded.len(), 520);
    assert_eq!(
        ids_of(&loaded.search(&extra[dim..2 * dim], &SearchParams::new(1, 32), None).unwrap()),
        [9_001]
    );
}

/// Every live node is reachable on layer 0 after a batch build (no orphaned clusters).
#[test]
fn batch_builds_leave_no_unreachable_nodes() {
    let g = Clustered::new(8, 5, 0.8, 1);
    let data = g.sample(300, 2);
    for storage in ALL {
        for _ in 0..10 {
            let index = build(&data, 8, storage);
            assert_eq!(index.unreachable().len(), 0, "{storage:?}");
        }
    }
}

/// A loaded index keeps taking inserts (past a power of two of slots, so every packed list is
/// widened) and deletes (past the compaction threshold), keeps its recall, and saves and loads
/// again with the same answers.
#[test]
fn loaded_index_takes_inserts_and_deletes() {
    let dim = 24;
    let g = Clustered::new(dim, 12, 0.8, 61);
    let data = g.sample(2_400, 62);
    let queries = g.sample(40, 63);
    let dir = tempfile::tempdir().unwrap();
    for storage in ALL {
        let path = dir.path().join(format!("{storage:?}.hnsw"));
        // 1 500 slots need 11 bits; 2 400 need 12.
        let mut index = build(&data[..1_500 * dim], dim, storage);
        index.save(&path).unwrap();
        let mut index = HnswIndex::load(&path).unwrap();
        assert_eq!(index.graph.bits(), 11);
        let more: Vec<(u64, &[f32])> = data[1_500 * dim..]
            .chunks_exact(dim)
            .enumerate()
            .map(|(i, v)| ((1_500 + i) as u64 * 3 + 7, v))
            .collect();
        for (id, v) in &more[..100] {
            index.insert(*id, v).unwrap();
        }
        index.insert_batch(&more[100..]).unwrap();
        assert_eq!(index.graph.bits(), 12);
        assert_eq!(index.len(), 2_400);
        let deleted: HashSet<u64> =
            (0..2_400u64).filter(|r| r % 7 == 3).map(|r| r * 3 + 7).collect();
        for id in &deleted {
            assert!(index.delete(*id));
        }
        assert!(index.stats().free_slots > 0, "{storage:?}: compaction ran");
        assert!(index.unreachable().is_empty(), "{storage:?}");
        let keep = |row: usize| row % 7 != 3;
        let mut total = 0.0;
        let mut answers = Vec::new();
        for q in queries.chunks_exact(dim) {
            let got = ids_of(&index.search(q, &SearchParams::new(10, 64), None).unwrap());
            assert!(got.iter().all(|id| !deleted.contains(id)), "{storage:?}");
            let want: Vec<u64> = crate::exact::top_k(&data, dim, q, 10, keep)
                .iter()
                .map(|(r, _)| *r as u64 * 3 + 7)
                .collect();
            total += crate::exact::recall(&got, &want);
            answers.push(got);
        }
        let recall = total / 40.0;
        assert!(recall >= 0.9, "{storage:?}: recall after load, inserts and deletes {recall}");
        index.save(&path).unwrap();
        let again = HnswIndex::load(&path).unwrap();
        assert_eq!(again.len(), 2_400 - deleted.len());
        for (q, want) in queries.chunks_exact(dim).zip(&answers) {
            let got = ids_of(&again.search(q, &SearchParams::new(10, 64), None).unwrap());
            assert_eq!(&got, want, "{storage:?}");
        }
        let mut ids: Vec<u64> = again.ids().collect();
        ids.sort_unstable();
        let mut want: Vec<u64> =
            (0..2_400u64).map(|r| r * 3 + 7).filter(|id| !deleted.contains(id)).collect();
        want.sort_unstable();
        assert_eq!(ids, want);
    }
}

/// The memory of a loaded index: layer-0 lists bit-packed at 12 bits (4 000 slots) and the id
/// map at 4 bytes an entry, at most 80 % full.
#[test]
fn loaded_index_is_compact() {
    let (n, dim) = (4_000, 16);
    let g = Clustered::new(dim, 40, 0.8, 71);
    let data = g.sample(n, 72);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idx");
    build(&data, dim, Storage::Int8FileRerank).save(&path).unwrap();
    let index = HnswIndex::load(&path).unwrap();
    assert_eq!(index.graph.bits(), 12);
    // 1 header word + 32 × 12 bits = 13 words a list (it was 33 words with u32 entries).
    let layer0 = n * 13 * 4;
    let upper_and_locks = index.graph.memory_bytes() - layer0;
    assert!(upper_and_locks < n * 12 + 1024 * 8, "upper lists and locks: {upper_and_locks} B");
    assert!(index.slot_of.memory_bytes() <= n * 5 + 8, "{}", index.slot_of.memory_bytes());
    let per_vector = index.memory_bytes() / n;
    // codes 16 + scale 4 + layer 0 52 + id 8 + level/state 2 + map 5 + upper ≈ 90.
    assert!(per_vector <= 100, "{per_vector} B per vector");
}
