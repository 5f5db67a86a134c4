//! The embedded models, for real: the installed weights from `KAI_TEST_MODELS_DIR` (installed by
//! `scripts/test.sh` with `kai models install`). Without it these tests say so and pass, unless
//! `KAI_TEST_REQUIRE_MODELS=1` (as in CI) makes a missing model a failure.

use std::sync::{Arc, OnceLock};

use futures::StreamExt as _;
use kai_llm::{
    ChatChunk, ChatRequest, EmbedRequest, FinishReason, LlmError, Message, Provider, ToolChoice,
    collect_stream,
};
use kai_local::catalog::{MINILM, SMOLLM2};
use kai_local::{LocalProvider, LocalSettings, ModelDir};

fn models() -> Option<ModelDir> {
    let dir = std::env::var("KAI_TEST_MODELS_DIR").ok().map(ModelDir::new);
    let ready = dir.as_ref().is_some_and(|d| d.is_installed(&MINILM) && d.is_installed(&SMOLLM2));
    if !ready {
        assert!(
            std::env::var("KAI_TEST_REQUIRE_MODELS").ok().as_deref() != Some("1"),
            "KAI_TEST_REQUIRE_MODELS=1 but KAI_TEST_MODELS_DIR holds no installed models (run `kai models install`)"
        );
        eprintln!("skipped: set KAI_TEST_MODELS_DIR to a directory made by `kai models install`");
        return None;
    }
    dir
}

/// One provider per test binary: the weights load once.
fn provider() -> Option<Arc<LocalProvider>> {
    static SHARED: OnceLock<Option<Arc<LocalProvider>>> = OnceLock::new();
    SHARED
        .get_or_init(|| models().map(|d| Arc::new(LocalProvider::new(LocalSettings::new(d)))))
        .clone()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embeddings_are_unit_vectors_that_rank_meaning() {
    let Some(p) = provider() else { return };
    let inputs = vec![
        "A man is eating food.".to_owned(),
        "A man is eating a piece of bread.".to_owned(),
        "The new movie is awesome.".to_owned(),
        "A man is riding a horse.".to_owned(),
    ];
    let resp = p.embed(EmbedRequest::new(inputs)).await.unwrap();
    assert_eq!(resp.model, MINILM.name);
    assert_eq!(resp.embeddings.len(), 4);
    for e in &resp.embeddings {
        assert_eq!(e.len(), 384);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let e = &resp.embeddings;
    let food = cosine(&e[0], &e[1]);
    assert!(food > 0.6, "paraphrases score {food}");
    assert!(food > cosine(&e[0], &e[2]) + 0.3, "unrelated sentences score lower");
    assert!(cosine(&e[0], &e[3]) > cosine(&e[0], &e[2]), "a man doing something beats a movie");
    assert!(resp.usage.prompt_tokens >= 4 * 7, "tokens counted: {}", resp.usage.prompt_tokens);
}

/// Values sentence-transformers 6.2 (PyTorch 2.15) gives for these sentences with
/// `SentenceTransformer("all-MiniLM-L6-v2")` loaded from the same wheel: the first 6 dimensions
/// (see `bench/embed/reference.py`).
const REFERENCE: [(&str, [f32; 6]); 2] = [
    (
        "The quick brown fox jumps over the lazy dog.",
        [0.04393, 0.05893, 0.04818, 0.07755, 0.02674, -0.03763],
    ),
    ("kai keeps a signed audit log.", [-0.075, 0.07425, -0.02446, 0.0077, 0.05474, -0.02626]),
];

#[tokio::test]
async fn embeddings_match_sentence_transformers() {
    let Some(p) = provider() else { return };
    let inputs = REFERENCE.iter().map(|(s, _)| (*s).to_owned()).collect();
    let resp = p.embed(EmbedRequest::new(inputs)).await.unwrap();
    for ((sentence, want), got) in REFERENCE.iter().zip(&resp.embeddings) {
        for (i, (w, g)) in want.iter().zip(got).enumerate() {
            assert!(
                (w - g).abs() < 2e-3,
                "{sentence:?} dim {i}: sentence-transformers {w}, kai {g}"
            );
        }
    }
}

#[tokio::test]
async fn batching_and_padding_do_not_change_a_vector() {
    let Some(p) = provider() else { return };
    let short = "hello".to_owned();
    let long =
        "a much longer sentence with many more words in it, so the batch is padded".repeat(3);
    let alone = p.embed(EmbedRequest::new(vec![short.clone()])).await.unwrap();
    let batch = p.embed(EmbedRequest::new(vec![long, short])).await.unwrap();
    let c = cosine(&alone.embeddings[0], &batch.embeddings[1]);
    assert!(c > 0.9999, "same text, same vector whatever it is batched with: {c}");
}

fn ask(question: &str, max_tokens: u32) -> ChatRequest {
    let mut req = ChatRequest::new(vec![Message::user(question)]);
    req.params.temperature = Some(0.0);
    req.params.max_tokens = Some(max_tokens);
    req
}

#[tokio::test]
async fn the_chat_model_answers_and_streams_the_same_text() {
    let Some(p) = provider() else { return };
    let answer = p.chat(ask("What is the capital of France?", 40)).await.unwrap();
    assert_eq!(answer.model, SMOLLM2.name);
    assert!(answer.message.content.contains("Paris"), "{:?}", answer.message.content);
    assert!(answer.usage.prompt_tokens > 10 && answer.usage.completion_tokens > 0);

    let mut stream = p.stream(ask("What is the capital of France?", 40)).await.unwrap();
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::Text(t) => pieces.push(t),
            ChatChunk::Done(d) => done = Some(d),
            ChatChunk::ToolCallDelta(_) => panic!("no tool calls from the local model"),
        }
    }
    assert!(pieces.len() > 1, "text arrives in pieces, not at the end");
    assert_eq!(pieces.concat(), answer.message.content, "greedy decoding is deterministic");
    assert_eq!(done.unwrap().usage, answer.usage);
}

#[tokio::test]
async fn limits_and_stop_sequences_end_the_answer() {
    let Some(p) = provider() else { return };
    let short = p.chat(ask("Write a long story about a dragon.", 5)).await.unwrap();
    assert_eq!(short.finish_reason, FinishReason::Length);
    assert_eq!(short.usage.completion_tokens, 5);

    let full = p.chat(ask("Count from 1 to 10, separated by commas.", 60)).await.unwrap();
    let text = &full.message.content;
    let mut req = ask("Count from 1 to 10, separated by commas.", 60);
    let stop = text.find('5').map(|i| &text[i..=i]).unwrap_or(",").to_owned();
    req.params.stop = vec![stop.clone()];
    let cut = p.chat(req).await.unwrap();
    assert_eq!(cut.finish_reason, FinishReason::Stop);
    assert!(
        !cut.message.content.contains(&stop),
        "{:?} stops before {stop:?}",
        cut.message.content
    );
    assert!(text.starts_with(&cut.message.content));
}

#[tokio::test]
async fn a_dropped_stream_frees_the_model_for_the_next_request() {
    let Some(p) = provider() else { return };
    let mut stream = p.stream(ask("Write a long story about a dragon.", 400)).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, ChatChunk::Text(_)));
    drop(stream);
    // One generation at a time: this waits for the slot the dropped stream held.
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        collect_stream(p.stream(ask("Say hi.", 3)).await.unwrap()),
    )
    .await
    .expect("the abandoned generation released its slot")
    .unwrap();
    assert!(next.usage.completion_tokens <= 3);
}

#[tokio::test]
async fn required_tool_calls_and_unknown_models_are_refused_clearly() {
    let Some(p) = provider() else { return };
    let mut req = ask("hi", 5);
    req.tool_choice = Some(ToolChoice::Required);
    let err = p.chat(req).await.unwrap_err();
    assert_eq!(err.code(), "unsupported");
    let err = p.chat(ask("hi", 5).with_model("gpt-4o")).await.unwrap_err();
    assert_eq!(err.code(), "bad_request");
    assert!(err.to_string().contains(SMOLLM2.name));
}

#[tokio::test]
async fn without_weights_every_call_says_how_to_install_them() {
    let tmp = tempfile::tempdir().unwrap();
    let p = LocalProvider::new(LocalSettings::new(ModelDir::new(tmp.path())));
    for err in [
        p.chat(ask("hi", 5)).await.unwrap_err(),
        p.embed(EmbedRequest::new(vec!["hi".into()])).await.unwrap_err(),
    ] {
        assert!(matches!(err, LlmError::NotInstalled { .. }), "{err:?}");
        assert!(err.to_string().contains("kai models install"), "{err}");
        assert!(err.should_fall_back(), "a fallback chain moves on to the next provider");
    }
    assert!(p.models().await.unwrap().is_empty());
}
