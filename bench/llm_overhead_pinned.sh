#!/usr/bin/env bash
# Issue 4: what the node adds to a streamed completion, with the node on a core of its own.
# `kai-bench llm-overhead` runs the fake server and the client in its own process and starts
# `kai serve` beside them; on a 2-core machine the three share both cores, and the scheduler's
# delays then make most of the node's p99 (docs/benchmarks.md, 2026-12-04). This runs kai-bench
# (client + fake) on CPU 0 and the node on CPU 1, as a client and a model server on other
# machines would leave it. The JSON line goes to stdout and to bench/results/llm_overhead_pinned.jsonl.
# Usage: bench/llm_overhead_pinned.sh [KAI_BIN] [REQUESTS] [TOKENS] [KAI_BENCH_BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
KAI=$(realpath "${1:-$TARGET/release/kai}")
REQUESTS=${2:-1500}
TOKENS=${3:-200}
BENCH=${4:-$TARGET/release/kai-bench}
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "pinning needs at least 2 cores" >&2; exit 1; }
WRAP=$(mktemp -d)
trap 'rm -rf "$WRAP"' EXIT
# kai-bench starts the node itself: a wrapper pins it (and every thread it starts) to CPU 1.
printf '#!/bin/sh\nexec taskset -c 1 %q "$@"\n' "$KAI" > "$WRAP/kai"
chmod +x "$WRAP/kai"
mkdir -p bench/results
taskset -c 0 "$BENCH" llm-overhead "$WRAP/kai" "$REQUESTS" "$TOKENS" | tail -n 1 \
  | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); d["pinned"]="kai-bench on CPU 0, node on CPU 1"; print(json.dumps(d))' \
  | tee -a bench/results/llm_overhead_pinned.jsonl
