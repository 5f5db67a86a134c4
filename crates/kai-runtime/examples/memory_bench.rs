//! Hybrid search latency of the memory service over N memories (issue 6), end to end in
//! process: a real SQLite store (WAL, `synchronous=FULL`), a real vault, the int8 HNSW with exact
//! re-ranking, BM25 and rank fusion, the filter table, and the fetch and decode of the k results
//! from the store. Vectors are generated (clustered, 384 dims, as in `bench/ann`) and passed in
//! with each memory, so no embedding model is timed; texts are generated sentences over a
//! 5,000-word Zipf vocabulary.
//!
//! ```text
//! cargo run --release -p kai-runtime --example memory_bench -- [N=100000] [QUERIES=1000] [OUT]
//! ```
//! Prints and writes JSON (default `bench/results/memory_hybrid.json`).

use std::sync::Arc;
use std::time::Instant;

use kai_crypto::vault::{KdfParams, KdfPolicy};
use kai_memory::synthetic::Clustered;
use kai_runtime::Vault;
use kai_runtime::llm::Llm;
use kai_runtime::memory::{Caller, Memory, MemorySettings, NewMemory, SearchQuery, Tier};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

const DIM: usize = 384;
const K: usize = 10;

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

/// A Zipf-like pick: rank r with probability ∝ 1/(r+1).
fn zipf(rng: &mut StdRng, n: usize) -> usize {
    let x: f64 = rng.r#gen();
    let v = ((n as f64 + 1.0).powf(x) - 1.0) as usize;
    v.min(n - 1)
}

fn sentence(words: &[String], rng: &mut StdRng) -> String {
    let len = rng.gen_range(12..30);
    (0..len).map(|_| words[zipf(rng, words.len())].as_str()).collect::<Vec<_>>().join(" ")
}

fn stats(mut us: Vec<f64>) -> Value {
    us.sort_by(f64::total_cmp);
    let pct =
        |p: f64| us[((us.len() as f64 * p).ceil() as usize).saturating_sub(1).min(us.len() - 1)];
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    json!({"p50_ms": pct(0.50) / 1000.0, "p99_ms": pct(0.99) / 1000.0, "mean_ms": mean / 1000.0,
           "max_ms": pct(1.0) / 1000.0, "queries": us.len()})
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(Ok(100_000), |a| a.parse())?;
    let queries: usize = args.get(1).map_or(Ok(1000), |a| a.parse())?;
    let out = args.get(2).cloned().unwrap_or_else(|| "bench/results/memory_hybrid.json".into());
    let load_start = loadavg();

    let dir = tempfile::tempdir()?;
    let store =
        kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 8).await?;
    let vault = Arc::new(Vault::new(store.clone(), KdfPolicy::AllowWeakForTests));
    vault
        .create(
            &secrecy::SecretString::from("bench".to_owned()),
            KdfParams::testing_only_fast(),
            false,
        )
        .await?;
    let llm = Arc::new(Llm::new(&[], &[], None, vault.clone()));
    let settings = MemorySettings::new(dir.path().join("memory"));
    let memory = Memory::new(store.clone(), vault.clone(), llm.clone(), settings.clone());
    let caller = Caller::user("bench", "user:bench");

    let mut rng = StdRng::seed_from_u64(6);
    let words = vocabulary(5000, &mut rng);
    let source = Clustered::new(DIM, 1000, 1.5, 42);
    let tiers = [Tier::ShortTerm, Tier::Working, Tier::LongTerm, Tier::Episodic];
    eprintln!("inserting {n} memories…");
    let started = Instant::now();
    let batch = 256;
    let mut done = 0;
    while done < n {
        let take = batch.min(n - done);
        let vectors = source.sample(take, 1000 + done as u64);
        let items: Vec<NewMemory> = vectors
            .chunks_exact(DIM)
            .map(|v| {
                let mut m = NewMemory::new(sentence(&words, &mut rng));
                m.tier = tiers[rng.gen_range(0..4)];
                m.embedding = Some(v.to_vec());
                m
            })
            .collect();
        memory.add(&caller, items, false).await?;
        done += take;
    }
    let insert_secs = started.elapsed().as_secs_f64();
    eprintln!("inserted in {insert_secs:.1} s; saving the index…");
    let t = Instant::now();
    memory.save().await?;
    let save_secs = t.elapsed().as_secs_f64();

    let qv = source.sample(queries + 50, 7);
    let qtexts: Vec<String> = (0..queries + 50)
        .map(|_| (0..3).map(|_| words[zipf(&mut rng, 2000)].as_str()).collect::<Vec<_>>().join(" "))
        .collect();
    let run = |mode: &'static str| {
        let (memory, caller, qv, qtexts) =
            (memory.clone(), caller.clone(), qv.clone(), qtexts.clone());
        async move {
            let mut lat = Vec::with_capacity(queries);
            let mut found = 0usize;
            for i in 0..queries + 50 {
                let mut q = SearchQuery::text(qtexts[i].clone(), K);
                let v = qv[i * DIM..(i + 1) * DIM].to_vec();
                match mode {
                    "hybrid" => q.vector = Some(v),
                    "hybrid_tier_filter" => {
                        q.vector = Some(v);
                        q.tiers = vec![Tier::Working];
                    }
                    "vector" => {
                        q.text = None;
                        q.vector = Some(v);
                    }
                    _ => {}
                }
                let t = Instant::now();
                let r = memory.search(&caller, q).await.expect("search");
                let us = t.elapsed().as_secs_f64() * 1e6;
                if i >= 50 {
                    lat.push(us);
                    found += r.hits.len();
                }
            }
            (stats(lat), found as f64 / queries as f64)
        }
    };
    let mut results = serde_json::Map::new();
    for mode in ["hybrid", "hybrid_tier_filter", "vector", "text"] {
        let (s, avg_hits) = run(mode).await;
        eprintln!("{mode}: {s}");
        results.insert(mode.into(), json!({"latency": s, "hits_per_query": avg_hits}));
    }
    let rss_after = rss_mb();

    // A fresh service over the same store and index file: load (reconcile) time.
    let t = Instant::now();
    let reloaded = Memory::new(store.clone(), vault.clone(), llm.clone(), settings.clone());
    let count = reloaded.indexed().await?;
    let load_secs = t.elapsed().as_secs_f64();
    drop(reloaded);
    // …and without the index file: rebuilt from the store.
    std::fs::remove_file(dir.path().join("memory").join("vectors.hnsw"))?;
    let t = Instant::now();
    let rebuilt = Memory::new(store.clone(), vault, llm, settings);
    rebuilt.indexed().await?;
    let rebuild_secs = t.elapsed().as_secs_f64();

    let report = json!({
        "bench": "memory_hybrid_search",
        "memories": n, "dim": DIM, "k": K, "storage": "int8 + exact re-rank", "store": "sqlite",
        "insert_secs": insert_secs, "inserts_per_sec": n as f64 / insert_secs,
        "index_save_secs": save_secs, "load_with_index_file_secs": load_secs, "indexed_after_load": count,
        "rebuild_without_index_file_secs": rebuild_secs, "process_rss_mb": rss_after,
        "results": results,
        "loadavg_start": load_start, "loadavg_end": loadavg(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "date": chrono::Utc::now().to_rfc3339(),
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, text + "\n")?;
    Ok(())
}
