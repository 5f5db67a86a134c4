//! Embedding throughput of the embedded MiniLM, for `bench/embed/compare.sh`: reads a JSON list
//! of sentences, embeds them all ROUNDS times (the node's own batching: 32 per pass, sorted by
//! length) and prints the best sentences/s, the tokens read and the first vector's head as JSON.
//! With VECTORS_OUT it also writes every vector (a JSON list, in input order) there, for the
//! agreement check against sentence-transformers. Threads: candle's (`RAYON_NUM_THREADS`).
//!
//! Usage: embed_bench MODELS_DIR SENTENCES_JSON ROUNDS [VECTORS_OUT]

use std::time::Instant;

use kai_local::ModelDir;
use kai_local::catalog::MINILM;
use kai_local::embed::Embedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, sentences, rounds, out) = match args.as_slice() {
        [_, d, s, r] => (d, s, r, None),
        [_, d, s, r, o] => (d, s, r, Some(o)),
        _ => return Err("usage: embed_bench MODELS_DIR SENTENCES_JSON ROUNDS [VECTORS_OUT]".into()),
    };
    let started = Instant::now();
    let embedder = Embedder::load(&ModelDir::new(dir).model(&MINILM))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sentences: Vec<String> = serde_json::from_slice(&std::fs::read(sentences)?)?;
    let rounds: usize = rounds.parse()?;
    embedder.embed(&sentences[..sentences.len().min(32)])?;
    let mut best = f64::MAX;
    let mut tokens = 0;
    let mut all = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let (vectors, n) = embedder.embed(&sentences)?;
        best = best.min(t.elapsed().as_secs_f64());
        tokens = n;
        all = vectors;
    }
    let head = all.first().map(|v| v[..6].to_vec()).unwrap_or_default();
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_vec(&all)?)?;
    }
    let one = Instant::now();
    embedder.embed(&sentences[..1])?;
    let single_ms = one.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "impl": "kai (candle)", "threads": candle_core::utils::get_num_threads(), "sentences": sentences.len(), "tokens": tokens,
            "seconds": best, "sentences_per_s": sentences.len() as f64 / best,
            "single_sentence_ms": single_ms, "load_ms": load_ms, "head": head,
        })
    );
    Ok(())
}
