//! BM25 query latency on N generated documents (issue 6): texts of 12–30 words from a
//! 5,000-word Zipf vocabulary (as `kai-runtime`'s `memory_bench`), 3-word Zipf queries, k = 10,
//! unfiltered and with a filter that accepts a quarter of the documents (the tier filter of the
//! memory service). One query at a time on one thread.
//!
//! ```text
//! cargo run --release -p kai-memory --example bm25_bench -- [N=100000] [QUERIES=1000]
//! ```
//! Prints one JSON object.

use std::time::Instant;

use kai_memory::bm25::{Bm25Index, Bm25Params};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn vocabulary(n: usize, rng: &mut StdRng) -> Vec<String> {
    const SYL: [&str; 24] = [
        "ka", "ri", "mo", "ten", "sa", "lu", "vor", "ne", "pi", "dra", "col", "um", "es", "ta",
        "bri", "gon", "fe", "li", "ox", "ra", "shi", "ven", "tu", "ael",
    ];
    (0..n)
        .map(|i| {
            let parts = 2 + (i % 3);
            let mut w: String = (0..parts).map(|_| SYL[rng.gen_range(0..SYL.len())]).collect();
            w.push_str(&(i % 97).to_string());
            w
        })
        .collect()
}

fn zipf(rng: &mut StdRng, n: usize) -> usize {
    let x: f64 = rng.r#gen();
    let v = ((n as f64 + 1.0).powf(x) - 1.0) as usize;
    v.min(n - 1)
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let queries: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut rng = StdRng::seed_from_u64(7);
    let words = vocabulary(5000, &mut rng);
    let mut index = Bm25Index::new(Bm25Params::default()).expect("params");
    let t = Instant::now();
    for id in 0..n as u64 {
        let len = rng.gen_range(12..30);
        let text = (0..len)
            .map(|_| words[zipf(&mut rng, words.len())].as_str())
            .collect::<Vec<_>>()
            .join(" ");
        index.insert(id, &text).expect("insert");
    }
    let build = t.elapsed().as_secs_f64();
    let qs: Vec<String> = (0..queries)
        .map(|_| (0..3).map(|_| words[zipf(&mut rng, 2000)].as_str()).collect::<Vec<_>>().join(" "))
        .collect();
    let quarter = |id: u64| id.is_multiple_of(4);
    let mut plain = Vec::new();
    let mut filtered = Vec::new();
    let mut hits = 0usize;
    for q in &qs {
        let t = Instant::now();
        hits += index.search(q, 10, None).len();
        plain.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        hits += index.search(q, 10, Some(&quarter)).len();
        filtered.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "{}",
        serde_json::json!({
            "docs": n, "queries": queries, "build_s": build, "hits": hits,
            "unfiltered_ms": {"p50": pct(plain.clone(), 0.5), "p99": pct(plain, 0.99)},
            "filter_quarter_ms": {"p50": pct(filtered.clone(), 0.5), "p99": pct(filtered, 0.99)},
        })
    );
}
