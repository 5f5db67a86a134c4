#!/usr/bin/env bash
# ANN benchmark of issue 6: kai-memory's HNSW (f32, int8 + exact re-rank with originals in memory
# or in the index file) side by side with hnswlib (PyPI) on the same data, in the same run.
#
#   data     N × 384 unit vectors around 1000 random centroids (noise 1.5), 1000 queries from the
#            same distribution, exact top-10 ground truth; written once as raw f32 files that both
#            sides read (bench/results/tmp/ann/).
#   build    M=16, efConstruction ∈ {128, 200}, 2 threads; build time and RSS growth.
#   query    one core (`taskset -c 0`, one thread), ef ∈ {16, 24, 32, 48, 64, 128}, 1000 queries,
#            best of ANN_PASSES passes; recall@10; RSS growth when loading the saved index.
#            The runs of both libraries alternate, ROUNDS times, and the best is kept, so that
#            load from other processes on a shared machine hurts both alike. `qps_cpu` divides by
#            the thread's scheduler CPU time instead of wall time.
#
# Both sides are compiled for this CPU: hnswlib's setup.py uses -march=native, so the Rust
# example is built with -C target-cpu=native (in its own target dir); the portable build (x86-64
# baseline, SSE2 only) is measured too.
#
# Writes bench/results/ann.json. Usage: bench/ann/compare.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-100000}
ROUNDS=${2:-3}
EFS=16,24,32,48,64,128
export ANN_PASSES=${ANN_PASSES:-3}
DATA=bench/results/tmp/ann/data-$N
IDX=bench/results/tmp/ann/idx-$N
mkdir -p "$DATA" "$IDX" bench/results
LOG=bench/results/tmp/ann/runs-$N.jsonl
: > "$LOG"
say() { echo "$@" >&2; }

python3 -c 'import hnswlib, numpy' 2>/dev/null || pip install -q hnswlib numpy
NATIVE_TARGET=${CARGO_TARGET_DIR:-target}/ann-native
RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR=$NATIVE_TARGET \
  cargo build -q --release -p kai-memory --example ann_bench
cargo build -q --release -p kai-memory --example ann_bench
RS=$NATIVE_TARGET/release/examples/ann_bench
RS_PORTABLE=${CARGO_TARGET_DIR:-target}/release/examples/ann_bench
PY="python3 bench/ann/hnswlib_bench.py"

if [ ! -f "$DATA/gt.u32" ]; then
  say "== generating $N × 384 vectors and the ground truth"
  $RS gen "$DATA" "$N" 1000 384 1000 1.5 >/dev/null
fi
tag() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r.update(json.loads(sys.argv[1])); print(json.dumps(r))' "$1"; }

for EFC in 128 200; do
  say "== build efConstruction=$EFC"
  $PY build "$DATA" 16 $EFC "$IDX/hnswlib-$EFC.bin" 2 | tag "{\"efc\":$EFC}" >> "$LOG"
  $RS build "$DATA" f32 16 $EFC "$IDX/kai-f32-$EFC.hnsw" | tag "{\"efc\":$EFC}" >> "$LOG"
  $RS build "$DATA" int8 16 $EFC "$IDX/kai-int8-$EFC.hnsw" | tag "{\"efc\":$EFC}" >> "$LOG"
done

for ROUND in $(seq "$ROUNDS"); do
  for EFC in 128 200; do
    say "== queries, round $ROUND, efConstruction=$EFC"
    T="{\"efc\":$EFC,\"round\":$ROUND"
    taskset -c 0 $PY query "$DATA" "$IDX/hnswlib-$EFC.bin" $EFS | tag "$T}" >> "$LOG"
    taskset -c 0 $RS query "$DATA" f32 "$IDX/kai-f32-$EFC.hnsw" $EFS | tag "$T,\"build\":\"native\"}" >> "$LOG"
    taskset -c 0 $RS query "$DATA" int8 "$IDX/kai-int8-$EFC.hnsw" $EFS | tag "$T,\"build\":\"native\"}" >> "$LOG"
    taskset -c 0 $RS query "$DATA" int8file "$IDX/kai-int8-$EFC.hnsw" $EFS | tag "$T,\"build\":\"native\"}" >> "$LOG"
    ANN_RERANK=20 taskset -c 0 $RS query "$DATA" int8file "$IDX/kai-int8-$EFC.hnsw" $EFS | tag "$T,\"build\":\"native\"}" >> "$LOG"
    if [ "$EFC" = 128 ]; then
      taskset -c 0 $RS_PORTABLE query "$DATA" f32 "$IDX/kai-f32-$EFC.hnsw" $EFS | tag "$T,\"build\":\"portable\"}" >> "$LOG"
      taskset -c 0 $RS_PORTABLE query "$DATA" int8 "$IDX/kai-int8-$EFC.hnsw" $EFS | tag "$T,\"build\":\"portable\"}" >> "$LOG"
    fi
  done
done

python3 bench/ann/summarize.py "$LOG" "$DATA/meta.json" "$(nproc)" "$(uptime)" > bench/results/ann.json
python3 bench/ann/summarize.py --table bench/results/ann.json
