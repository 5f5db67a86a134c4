//! Embedding throughput of the embedded MiniLM, for `bench/embed/compare.sh`: reads a JSON list
//! of sentences, embeds them all ROUNDS times (the node's own batching: 32 per pass, sorted by
//! length) and prints the best sentences/s, the tokens read and the first vector's head as JSON.
//!
//! Usage: embed_bench MODELS_DIR SENTENCES_JSON ROUNDS

use std::time::Instant;

use kai_local::ModelDir;
use kai_local::catalog::MINILM;
use kai_local::embed::Embedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, sentences, rounds] = args.as_slice() else {
        return Err("usage: embed_bench MODELS_DIR SENTENCES_JSON ROUNDS".into());
    };
    let started = Instant::now();
    let embedder = Embedder::load(&ModelDir::new(dir).model(&MINILM))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let sentences: Vec<String> = serde_json::from_slice(&std::fs::read(sentences)?)?;
    let rounds: usize = rounds.parse()?;
    embedder.embed(&sentences[..sentences.len().min(32)])?;
    let mut best = f64::MAX;
    let mut tokens = 0;
    let mut head = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let (vectors, n) = embedder.embed(&sentences)?;
        best = best.min(t.elapsed().as_secs_f64());
        tokens = n;
        head = vectors[0][..6].to_vec();
    }
    let one = Instant::now();
    embedder.embed(&sentences[..1])?;
    let single_ms = one.elapsed().as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "impl": "kai (candle)", "sentences": sentences.len(), "tokens": tokens,
            "seconds": best, "sentences_per_s": sentences.len() as f64 / best,
            "single_sentence_ms": single_ms, "load_ms": load_ms, "head": head,
        })
    );
    Ok(())
}
