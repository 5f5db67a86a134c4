//! BM25 tests: scores checked against a hand computation, updates and deletes, filters,
//! persistence and corruption.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn index(docs: &[(u64, &str)]) -> Bm25Index {
    Bm25Index::rebuild_from(Bm25Params::default(), docs.iter().map(|(id, t)| (*id, *t))).unwrap()
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

/// Three documents, by hand (k1 = 1.2, b = 0.75, stop words on):
/// d1 "cat cat dog" (3 tokens), d2 "dog bird" (2), d3 "the fish" → "fish" (1). avgdl = 2.
/// Query "cat": df = 1, N = 3, idf = ln(1 + 2.5/1.5) = ln(8/3) = 0.980829.
///   d1: tf 2, norm = 1.2·(0.25 + 0.75·3/2) = 1.65; 0.980829 · 2·2.2 / 3.65 = 1.182368.
/// Query "dog": df = 2, idf = ln(1 + 1.5/2.5) = ln 1.6 = 0.470004.
///   d1: tf 1, norm 1.65 → 0.470004 · 2.2/2.65 = 0.390192.
///   d2: tf 1, norm = 1.2·(0.25 + 0.75) = 1.2 → 0.470004 · 2.2/2.2 = 0.470004.
#[test]
fn scores_match_the_hand_computation() {
    let idx = index(&[(1, "cat cat dog"), (2, "dog bird"), (3, "the fish")]);
    let cat = idx.search("cat", 10, None);
    assert_eq!(ids(&cat), [1]);
    assert!((cat[0].score - 1.182_368).abs() < 1e-5, "{}", cat[0].score);
    let dog = idx.search("Dog!", 10, None);
    assert_eq!(ids(&dog), [2, 1]);
    assert!((dog[0].score - 0.470_004).abs() < 1e-5);
    assert!((dog[1].score - 0.390_192).abs() < 1e-5);
    // Multi-term queries add up; repeated query terms count once.
    let both = idx.search("cat dog cat", 10, None);
    assert_eq!(ids(&both), [1, 2]);
    assert!((both[0].score - (1.182_368 + 0.390_192)).abs() < 1e-5);
    // Stop words alone match nothing; unknown words match nothing.
    assert!(idx.search("the", 10, None).is_empty());
    assert!(idx.search("zebra", 10, None).is_empty());
    assert_eq!(ids(&idx.search("dog", 1, None)), [2]);
    assert!(idx.search("dog", 0, None).is_empty());
}

#[test]
fn parameters_are_validated_and_b_zero_ignores_length() {
    assert!(Bm25Index::new(Bm25Params { k1: -1.0, ..Bm25Params::default() }).is_err());
    assert!(Bm25Index::new(Bm25Params { b: 1.5, ..Bm25Params::default() }).is_err());
    assert!(Bm25Index::new(Bm25Params { k1: f32::NAN, ..Bm25Params::default() }).is_err());
    let params = Bm25Params { b: 0.0, ..Bm25Params::default() };
    let idx = Bm25Index::rebuild_from(params, [(1, "dog"), (2, "dog a b c d e f g h")]).unwrap();
    let hits = idx.search("dog", 10, None);
    assert_eq!(hits[0].score, hits[1].score);
    assert_eq!(ids(&hits), [1, 2], "ties break by ascending id");
}

#[test]
fn updates_and_deletes_change_scores_and_statistics() {
    let mut idx = index(&[(1, "cat cat dog"), (2, "dog bird"), (3, "the fish")]);
    idx.insert(1, "bird").unwrap();
    assert_eq!(idx.len(), 3);
    assert!(idx.search("cat", 10, None).is_empty());
    assert_eq!(ids(&idx.search("bird", 10, None)), [1, 2]);
    assert!(idx.delete(2));
    assert!(!idx.delete(2));
    assert_eq!(ids(&idx.search("bird dog", 10, None)), [1]);
    // Same scores as an index built from the surviving documents alone.
    let fresh = index(&[(1, "bird"), (3, "the fish")]);
    assert_eq!(idx.search("bird fish", 10, None), fresh.search("bird fish", 10, None));
    idx.compact();
    assert_eq!(idx.search("bird fish", 10, None), fresh.search("bird fish", 10, None));
}

#[test]
fn many_deletes_trigger_compaction_and_keep_results_right() {
    let mut idx = Bm25Index::new(Bm25Params::default()).unwrap();
    for i in 0..500u64 {
        idx.insert(i, &format!("common word{} shared{}", i, i % 7)).unwrap();
    }
    for i in 0..400u64 {
        idx.delete(i);
    }
    assert!(idx.docs.len() < 500, "compacted");
    let hits = idx.search("common", 1000, None);
    assert_eq!(hits.len(), 100);
    assert!(hits.iter().all(|h| h.id >= 400));
    assert_eq!(ids(&idx.search("word450", 10, None)), [450]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn filtered_results_stay_inside_the_allowed_set(
        docs in prop::collection::vec((0u64..200, "[a-e ]{0,30}"), 1..60),
        allowed in prop::collection::hash_set(0u64..200, 0..100),
        query in "[a-e ]{1,10}",
        k in 1usize..15,
    ) {
        let idx = Bm25Index::rebuild_from(Bm25Params::default(), docs.iter().map(|(i, t)| (*i, t.as_str()))).unwrap();
        let filter = |id: u64| allowed.contains(&id);
        let got = idx.search(&query, k, Some(&filter));
        prop_assert!(got.iter().all(|h| allowed.contains(&h.id)));
        prop_assert!(got.len() <= k);
        let unique: HashSet<u64> = got.iter().map(|h| h.id).collect();
        prop_assert_eq!(unique.len(), got.len());
        // The filtered list is the unfiltered ranking restricted to the allowed ids.
        let all = idx.search(&query, 1000, None);
        let want: Vec<u64> = all.iter().map(|h| h.id).filter(|id| allowed.contains(id)).take(k).collect();
        prop_assert_eq!(ids(&got), want);
    }
}

#[test]
fn persistence_round_trip_and_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.bm25");
    assert_eq!(Bm25Index::load(&path).err().map(|e| e.code()), Some("index_file_missing"));
    let mut idx =
        index(&[(1, "cat cat dog"), (2, "dog bird"), (3, "the fish"), (4, "Ünïcode wörds")]);
    idx.delete(3);
    idx.save(&path).unwrap();
    let loaded = Bm25Index::load(&path).unwrap();
    for q in ["cat", "dog bird", "fish", "wörds", "ünïcode"] {
        assert_eq!(loaded.search(q, 10, None), idx.search(q, 10, None), "{q}");
    }
    assert_eq!(loaded.len(), 3);
    let good = std::fs::read(&path).unwrap();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        assert!(Bm25Index::load(&path).err().is_some_and(|e| e.needs_rebuild()), "flip at {i}");
    }
    for cut in 0..good.len() {
        std::fs::write(&path, &good[..cut]).unwrap();
        assert!(Bm25Index::load(&path).err().is_some_and(|e| e.needs_rebuild()), "cut at {cut}");
    }
}
