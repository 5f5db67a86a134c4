"""Embedding throughput of sentence-transformers (PyTorch, CPU) on the same sentences and the
same model files as `crates/kai-local/examples/embed_bench.rs`; prints JSON like it.

With VECTORS_OUT it also writes every vector (a JSON list, in input order) there.

Usage: python st_bench.py MODEL_DIR SENTENCES_JSON ROUNDS THREADS [VECTORS_OUT]"""
import json
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

model_dir, sentences_file, rounds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
vectors_out = sys.argv[5] if len(sys.argv) > 5 else None
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
load_ms = (time.perf_counter() - t0) * 1000
sentences = json.load(open(sentences_file))
model.encode(sentences[:32], batch_size=32, normalize_embeddings=True)
best = float("inf")
head = []
with torch.inference_mode():
    for _ in range(rounds):
        t = time.perf_counter()
        vectors = model.encode(sentences, batch_size=32, normalize_embeddings=True)
        best = min(best, time.perf_counter() - t)
        head = [round(float(x), 5) for x in vectors[0][:6]]
    if vectors_out:
        json.dump([[float(x) for x in v] for v in vectors], open(vectors_out, "w"))
    t = time.perf_counter()
    model.encode(sentences[:1], normalize_embeddings=True)
    single_ms = (time.perf_counter() - t) * 1000
print(json.dumps({
    "impl": f"sentence-transformers {__import__('sentence_transformers').__version__} (torch {torch.__version__})",
    "threads": torch.get_num_threads(), "batch_size": 32,
    "sentences": len(sentences), "seconds": best, "sentences_per_s": len(sentences) / best,
    "single_sentence_ms": single_ms, "load_ms": load_ms, "head": head,
}))
