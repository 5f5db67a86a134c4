"""Summarizes `bench/embed/compare.sh`: reads one JSON run per stdin line, keeps the best run of
each (set, implementation), checks that both implementations' vectors agree (cosine per
sentence), and writes the result JSON.

Usage: summarize.py TMP_DIR GENERATION_JSON OUT_JSON"""
import json
import math
import os
import sys

tmp, generation, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(line) for line in sys.stdin if line.strip()]


def cosine(x, y):
    return sum(p * q for p, q in zip(x, y)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))


agreement = {}
for kind in ("short", "long"):
    a = json.load(open(f"{tmp}/{kind}.st.vectors.json"))
    b = json.load(open(f"{tmp}/{kind}.kai.vectors.json"))
    if len(a) != len(b):
        sys.exit(f"{kind}: {len(a)} vs {len(b)} vectors")
    c = sorted(cosine(x, y) for x, y in zip(a, b))
    agreement[kind] = {
        "sentences": len(c),
        "min_cosine": c[0],
        "mean_cosine": sum(c) / len(c),
        "below_0_999": sum(1 for v in c if v < 0.999),
    }

best = {}
for r in runs:
    k = (r["set"], r["impl"])
    if k not in best or r["sentences_per_s"] > best[k]["sentences_per_s"]:
        best[k] = r
out = {
    "embedding": sorted(best.values(), key=lambda r: (r["set"], r["impl"])),
    "agreement": agreement,
    "generation": json.loads(generation),
    "all_runs": runs,
    "load_average_after": os.getloadavg(),
}
json.dump(out, open(out_path, "w"), indent=1)
for r in out["embedding"]:
    print(f"{r['set']:5} {r['impl']:50} {r['sentences_per_s']:8.1f} sentences/s"
          f"  single {r['single_sentence_ms']:6.1f} ms  head {r['head'][:3]}")
print(json.dumps(agreement))
print(json.dumps(out["generation"]))
