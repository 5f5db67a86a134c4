//! Generation speed of the embedded SmolLM2: time to first token and decode tokens/s for a
//! fixed prompt, greedy, best of ROUNDS, as JSON (recorded in `docs/benchmarks.md`).
//!
//! Usage: generate_bench MODELS_DIR TOKENS ROUNDS

use std::time::Instant;

use kai_llm::{Message, SamplingParams};
use kai_local::ModelDir;
use kai_local::catalog::SMOLLM2;
use kai_local::generate::Generator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, tokens, rounds] = args.as_slice() else {
        return Err("usage: generate_bench MODELS_DIR TOKENS ROUNDS".into());
    };
    let started = Instant::now();
    let generator = Generator::load(&ModelDir::new(dir).model(&SMOLLM2))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let messages = [Message::user("Write a short story about a lighthouse keeper and a storm.")];
    let params = SamplingParams {
        temperature: Some(0.0),
        max_tokens: Some(tokens.parse()?),
        ..SamplingParams::default()
    };
    let (mut best_first, mut best_rate, mut generated, mut prompt) = (f64::MAX, 0.0f64, 0, 0);
    for _ in 0..rounds.parse::<usize>()? {
        let t = Instant::now();
        let mut first = None;
        let done = generator.generate(&messages, &params, 0, |_| {
            first.get_or_insert_with(|| t.elapsed().as_secs_f64());
            true
        })?;
        let total = t.elapsed().as_secs_f64();
        let first = first.unwrap_or(total);
        best_first = best_first.min(first);
        let decode = done.completion_tokens.saturating_sub(1) as f64 / (total - first).max(1e-9);
        best_rate = best_rate.max(decode);
        generated = done.completion_tokens;
        prompt = done.prompt_tokens;
    }
    println!(
        "{}",
        serde_json::json!({
            "impl": "kai (candle quantized_llama)", "model": SMOLLM2.name, "prompt_tokens": prompt,
            "completion_tokens": generated, "first_token_ms": best_first * 1000.0,
            "decode_tokens_per_s": best_rate, "load_ms": load_ms,
        })
    );
    Ok(())
}
