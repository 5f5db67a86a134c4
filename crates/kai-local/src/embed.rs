//! The embedding model: all-MiniLM-L6-v2 (a 6-layer BERT) in candle, with sentence-transformers'
//! recipe — WordPiece tokens truncated at 256, mean pooling over the attention mask, L2
//! normalization — so vectors match what `SentenceTransformer("all-MiniLM-L6-v2")` produces.
//!
//! Blocking and CPU-bound: callers run it on a blocking thread.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::LoadError;

/// sentence-transformers' `max_seq_length` for this model.
pub const MAX_TOKENS: usize = 256;
/// Sentences encoded in one forward pass.
const BATCH: usize = 32;

/// A loaded sentence encoder.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dimensions", &self.dimensions).finish_non_exhaustive()
    }
}

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let device = Device::Cpu;
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| LoadError::file(&dir.join(name), &e))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| LoadError::format(&dir.join("config.json"), e))?;
        let weights = read("model.safetensors")?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| LoadError::format(&dir.join("model.safetensors"), e))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| LoadError::format(&dir.join("model.safetensors"), e))?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| LoadError::format(&dir.join("tokenizer.json"), e))?;
        // The shipped tokenizer pads every input to 128 and truncates there; sentence-transformers
        // truncates at 256 and pads only to the longest input of a batch.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| LoadError::format(&dir.join("tokenizer.json"), e))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(Self { model, tokenizer, device, dimensions: config.hidden_size })
    }

    /// Vector length.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// One unit-length vector per input, in input order, and the number of tokens read.
    pub fn embed(&self, inputs: &[String]) -> Result<(Vec<Vec<f32>>, u64), candle_core::Error> {
        // Batches of similar length waste less work on padding.
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| inputs[i].len());
        let mut out = vec![Vec::new(); inputs.len()];
        let mut tokens = 0u64;
        for chunk in order.chunks(BATCH) {
            let texts: Vec<&str> = chunk.iter().map(|&i| inputs[i].as_str()).collect();
            let (vectors, n) = self.embed_batch(&texts)?;
            tokens += n;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok((out, tokens))
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), candle_core::Error> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| candle_core::Error::Msg(format!("tokenizer: {e}")))?;
        let rows = encodings.len();
        let cols = encodings.first().map_or(0, tokenizers::Encoding::len);
        let mut ids = Vec::with_capacity(rows * cols);
        let mut types = Vec::with_capacity(rows * cols);
        let mut mask = Vec::with_capacity(rows * cols);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            types.extend_from_slice(e.get_type_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let tokens: u64 = mask.iter().map(|&m| u64::from(m)).sum();
        let ids = Tensor::from_vec(ids, (rows, cols), &self.device)?;
        let types = Tensor::from_vec(types, (rows, cols), &self.device)?;
        let mask = Tensor::from_vec(mask, (rows, cols), &self.device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens: sum(hidden * mask) / sum(mask).
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norms)?;
        Ok((unit.to_vec2::<f32>()?, tokens))
    }
}
