//! The Qdrant client against the fake Qdrant server: collection creation, upsert, search
//! (plain, filtered, among ids), delete, scroll, API keys, errors, and recall against exact
//! search on generated data.

use std::time::Duration;

use super::fake::FakeQdrant;
use super::*;
use crate::exact::top_k;
use crate::synthetic::Clustered;

fn config(url: String, key: Option<&str>) -> QdrantConfig {
    QdrantConfig {
        url,
        collection: "kai_memory".into(),
        api_key: key.map(str::to_owned),
        timeout: Duration::from_secs(10),
    }
}

/// Runs `f` on a blocking thread, as the memory service does.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce(tokio::runtime::Handle) -> T + Send + 'static,
) -> T {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || f(handle)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_search_delete_and_scroll_over_the_rest_api() {
    let fake = FakeQdrant::start().await.unwrap();
    fake.require_key(Some("sekret"));
    let url = fake.url();
    let (wrong, ids, log_ok) = blocking(move |rt| {
        let wrong = QdrantIndex::open(&config(url.clone(), Some("nope")), 3, rt.clone()).err();
        let mut ix =
            QdrantIndex::open(&config(url.clone(), Some("sekret")), 3, rt.clone()).unwrap();
        assert_eq!(ix.len(), 0);
        ix.upsert_batch(&[
            (1, vec![1.0, 0.0, 0.0]),
            (2, vec![0.9, 0.1, 0.0]),
            (3, vec![0.0, 1.0, 0.0]),
        ])
        .unwrap();
        ix.upsert(4, &[0.0, 0.0, 2.0]).unwrap();
        assert_eq!(ix.len(), 4);
        let hits = ix.search(&[1.0, 0.0, 0.0], &SearchParams::new(2, 16), None).unwrap();
        assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2]);
        assert!((hits[0].score - 1.0).abs() < 1e-5);
        let odd = |id: u64| id % 2 == 1;
        let filtered = ix.search(&[1.0, 0.0, 0.0], &SearchParams::new(2, 16), Some(&odd)).unwrap();
        assert_eq!(filtered.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 3]);
        let among = ix.search_ids(&[0.0, 1.0, 0.0], 5, &[2, 4]).unwrap();
        assert_eq!(among.iter().map(|h| h.id).collect::<Vec<_>>(), [2, 4]);
        // Replacing a vector keeps the count.
        ix.upsert(2, &[0.0, 0.0, 1.0]).unwrap();
        assert_eq!(ix.len(), 4);
        assert!(ix.remove(3).unwrap());
        assert!(!ix.remove(3).unwrap());
        assert!(matches!(ix.upsert(9, &[1.0]), Err(Error::DimensionMismatch { .. })));
        assert!(matches!(ix.upsert(9, &[0.0, 0.0, 0.0]), Err(Error::InvalidVector(_))));
        let mut ids = ix.all_ids().unwrap();
        ids.sort_unstable();
        // Reopening finds the collection; another dimension is refused.
        let again = QdrantIndex::open(&config(url.clone(), Some("sekret")), 3, rt.clone()).unwrap();
        assert_eq!(again.len(), 3);
        let other = QdrantIndex::open(&config(url, Some("sekret")), 4, rt).err();
        assert!(matches!(other, Some(Error::DimensionMismatch { expected: 4, got: 3 })));
        (wrong, ids, true)
    })
    .await;
    assert!(log_ok);
    let wrong = wrong.expect("a wrong key is refused");
    assert_eq!(wrong.code(), "vector_backend_unavailable");
    assert!(wrong.to_string().contains("401"), "{wrong}");
    assert_eq!(ids, [1, 2, 4]);
    assert_eq!(fake.point_ids("kai_memory"), [1, 2, 4]);
    let log = fake.requests();
    assert!(log.iter().any(|r| r == "PUT /collections/kai_memory"), "{log:?}");
    assert!(log.iter().any(|r| r == "PUT /collections/kai_memory/points?wait=true"));
    assert!(log.iter().any(|r| r == "POST /collections/kai_memory/points/search"));

    fake.set_failing(true);
    let url = fake.url();
    let err = blocking(move |rt| {
        QdrantIndex::open(&config(url, Some("sekret")), 3, rt).err().map(|e| e.to_string())
    })
    .await;
    assert!(err.unwrap().contains("500"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scroll_pages_and_recall_against_exact_search() {
    let fake = FakeQdrant::start().await.unwrap();
    let url = fake.url();
    let (recall, n_ids) = blocking(move |rt| {
        let dim = 16;
        let data = Clustered::new(dim, 20, 0.3, 7).sample(2_500, 1);
        let mut ix = QdrantIndex::open(&config(url, None), dim, rt).unwrap();
        let records: Vec<(u64, Vec<f32>)> =
            data.chunks_exact(dim).enumerate().map(|(i, v)| (i as u64, v.to_vec())).collect();
        ix.upsert_batch(&records).unwrap();
        let n_ids = ix.all_ids().unwrap().len();
        let mut found = 0;
        let queries = 20;
        for q in 0..queries {
            let query = &data[q * 97 * dim..(q * 97 + 1) * dim];
            let truth: Vec<u64> =
                top_k(&data, dim, query, 10, |_| true).into_iter().map(|(r, _)| r as u64).collect();
            let got = ix.search(query, &SearchParams::new(10, 64), None).unwrap();
            found += got.iter().filter(|h| truth.contains(&h.id)).count();
        }
        (found as f64 / (queries * 10) as f64, n_ids)
    })
    .await;
    assert_eq!(n_ids, 2_500, "scroll visits every page once");
    assert!(recall >= 0.99, "recall@10 {recall}");
}
